import ArgumentParser
import CostModel
import Foundation

// MARK: - Shared options and output helpers

/// `--catalog FILE` overlays and `--hf-config FILE --hf-name NAME` model additions, shared by every CostModel command.
struct CostCatalogOptions: ParsableArguments {
    @Option(name: .customLong("catalog"), help: "A JSON catalog file to lay over the bundled one (repeatable).")
    var catalogFiles: [String] = []

    @Option(name: .customLong("hf-config"), help: "Add a model from a Hugging Face config.json (name it with --hf-name).")
    var hfConfig: String?

    @Option(name: .customLong("hf-name"), help: "Catalog name for the --hf-config model.")
    var hfName: String?

    func load() throws -> Catalog {
        var catalog = try Catalog.bundled()
        for file in catalogFiles { catalog = try catalog.merging(contentsOf: file) }
        if let hfConfig {
            guard let hfName else {
                throw CostModelError(.invalidInput, "--hf-config needs --hf-name to say what to call the model.")
            }
            let data = try Catalog.readUserFile(hfConfig)
            catalog = try catalog.addingModel(huggingFaceConfig: data, name: hfName, file: hfConfig)
        }
        return catalog
    }
}

enum CostTable {
    static func json<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(value)
        print(String(decoding: data, as: UTF8.self))
    }

    /// A left-aligned text table; columns whose header starts with a space are right-aligned.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map { $0.trimmingCharacters(in: .whitespaces).count }
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        let right = header.map { $0.hasPrefix(" ") }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: max(0, widths[i] - cell.count))
                return right[i] ? pad + cell : cell + pad
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        let heading = line(header.map { $0.trimmingCharacters(in: .whitespaces) })
        let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
        return ([heading, rule] + rows.map(line)).joined(separator: "\n")
    }

    static func num(_ value: Double, _ decimals: Int = 1) -> String {
        guard value.isFinite else { return "-" }
        let text = String(format: "%.\(decimals)f", value)
        let parts = text.split(separator: ".", maxSplits: 1)
        var integer = String(parts[0])
        let negative = integer.hasPrefix("-")
        if negative { integer.removeFirst() }
        var grouped = ""
        while integer.count > 3 {
            grouped = "," + integer.suffix(3) + grouped
            integer = String(integer.dropLast(3))
        }
        grouped = (negative ? "-" : "") + integer + grouped
        return parts.count > 1 ? grouped + "." + parts[1] : grouped
    }

    static func gib(_ bytes: Double) -> String { num(bytes / 1_073_741_824, 1) }
    static func gb(_ bytes: Double) -> String { num(bytes / 1e9, 1) }
    static func ms(_ seconds: Double) -> String { num(seconds * 1000, 1) }
    static func pct(_ f: Double) -> String { num(f * 100, 0) + "%" }
    static func dollars(_ v: Double, _ decimals: Int = 2) -> String { "$" + num(v, decimals) }
}

func costParsePrecisions(_ texts: [String]) throws -> [Precision] {
    var out: [Precision] = []
    for t in texts { for part in t.split(separator: ",") { out.append(try Precision(parsing: String(part))) } }
    return out
}

// MARK: - inferkit vram

/// `inferkit vram` — memory breakdown of serving a model.
struct VRAMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vram",
        abstract: "How much GPU memory a model needs: weights by precision, KV cache, activations, overhead; fit on a GPU.")

    @Argument(help: "Model name from the catalog (see `inferkit catalog list models`).")
    var model: String

    @Option(help: "GPU to fit on (e.g. H100, A100-80GB-SXM). Without it, print weights for every precision.")
    var gpu: String?

    @Option(help: "Weight precision: fp32, fp16, bf16, fp8, int8, int4.")
    var precision: String = "bf16"

    @Option(name: .customLong("kv-precision"), help: "KV-cache precision (default: bf16).")
    var kvPrecision: String = "bf16"

    @Option(name: .customLong("tp"), help: "Tensor-parallel degree.")
    var tensorParallel: Int = 1

    @Option(help: "Context length per sequence, tokens (default: the model's maximum).")
    var context: Int?

    @Option(name: .customLong("gpu-memory-utilization"), help: "Fraction of GPU memory the engine may use.")
    var gpuMemoryUtilization: Double = 0.90

    @OptionGroup var catalogOptions: CostCatalogOptions

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    struct Report: Encodable {
        var model: String
        var parameters: Double
        var weightsGBByPrecision: [String: Double]
        var kvBytesPerToken: Double
        var contextTokens: Int
        var kvBytesPerSequence: Double
        var breakdown: MemoryBreakdown?
        var fits: Bool?
        var maxConcurrentSequences: Int?
        var smallestTensorParallel: Int?
    }

    func run() throws {
        let catalog = try catalogOptions.load()
        let m = try catalog.model(named: model)
        let weights = try Precision(parsing: precision)
        let kv = try Precision(parsing: kvPrecision)
        let ctx = context ?? m.maxContext
        guard ctx > 0, ctx <= 1 << 24 else {
            throw CostModelError(.invalidInput, "--context is \(ctx); it must be between 1 and 16,777,216 tokens.")
        }
        var report = Report(
            model: m.name, parameters: m.parameterCount,
            weightsGBByPrecision: Dictionary(uniqueKeysWithValues: Precision.allCases.map { ($0.rawValue, MemoryEstimator.weightBytes(m, $0) / 1e9) }),
            kvBytesPerToken: m.kvBytesPerToken(kv), contextTokens: ctx,
            kvBytesPerSequence: MemoryEstimator.kvBytes(m, tokens: ctx, precision: kv))
        if let gpuName = gpu {
            let g = try catalog.gpu(named: gpuName)
            let config = ServingConfiguration(weightPrecision: weights, kvPrecision: kv, tensorParallel: tensorParallel,
                                              gpuMemoryUtilization: gpuMemoryUtilization)
            let b = try MemoryEstimator.breakdown(model: m, gpu: g, configuration: config)
            report.breakdown = b
            report.fits = b.fits
            report.maxConcurrentSequences = try b.maxConcurrentSequences(contextTokens: ctx)
            report.smallestTensorParallel = try MemoryEstimator.smallestTensorParallel(model: m, gpu: g, configuration: config, maxGPUs: 8, contextTokens: ctx)
        }
        if json { return try CostTable.json(report) }

        print("\(m.displayName): \(CostTable.num(m.parameterCount / 1e9, 2))B parameters (published \(CostTable.num(m.publishedParameters / 1e9, 2))B)\(m.estimate ? " — ESTIMATE" : "")")
        print(CostTable.table(["precision", " bits/weight", " weights GB", " rule of thumb GB"],
                           Precision.allCases.map { p in
                               [p.label, CostTable.num(p.bitsPerWeight, 1), CostTable.gb(MemoryEstimator.weightBytes(m, p)),
                                CostTable.num(MemoryEstimator.ruleOfThumbGB(m, p), 1)]
                           }))
        print("")
        print("KV cache (\(kv.label)): 2 × \(m.layers) layers × \(m.kvHeads) KV heads × \(m.headDim) head dim × \(CostTable.num(kv.kvBytesPerElement, 1)) B = \(CostTable.num(m.kvBytesPerToken(kv), 0)) bytes/token")
        print("  one \(CostTable.num(Double(ctx), 0))-token sequence: \(CostTable.gb(report.kvBytesPerSequence)) GB (\(CostTable.gib(report.kvBytesPerSequence)) GiB)")
        guard let b = report.breakdown, let gpuName = gpu else { return }
        let g = try catalog.gpu(named: gpuName)
        print("")
        print("On \(tensorParallel) × \(g.name) (\(CostTable.num(g.memoryGiB, 0)) GiB each), \(weights.label) weights, \(CostTable.pct(gpuMemoryUtilization)) usable — per GPU:")
        print(CostTable.table(["component", " GiB"], [
            ["weights", CostTable.gib(b.weightBytesPerGPU)],
            ["activation peak", CostTable.gib(b.activationBytesPerGPU)],
            ["runtime overhead", CostTable.gib(b.overheadBytesPerGPU)],
            ["KV cache room", CostTable.gib(max(0, b.kvCapacityBytesPerGPU))],
            ["usable total", CostTable.gib(b.usableBytesPerGPU)],
        ]))
        if b.fits, (report.maxConcurrentSequences ?? 0) == 0 {
            print("Weights fit, but the KV room (\(CostTable.num(Double(b.kvCapacityTokens), 0)) tokens) cannot hold one \(CostTable.num(Double(ctx), 0))-token sequence.")
        } else if b.fits {
            print("Fits: KV room for \(CostTable.num(Double(b.kvCapacityTokens), 0)) tokens = \(report.maxConcurrentSequences ?? 0) concurrent sequence(s) of \(CostTable.num(Double(ctx), 0)) tokens.")
        } else {
            print("Does NOT fit: short by \(CostTable.gib(-b.kvCapacityBytesPerGPU)) GiB per GPU.")
        }
        if let tp = report.smallestTensorParallel {
            print("Smallest tensor-parallel degree holding one \(CostTable.num(Double(ctx), 0))-token sequence: \(tp) × \(g.name).")
        } else {
            print("No tensor-parallel degree up to 8 × \(g.name) holds one \(CostTable.num(Double(ctx), 0))-token sequence; use a lower precision, a shorter context or pipeline parallelism.")
        }
    }
}

// MARK: - inferkit plan

/// `inferkit plan` — ranked deployment plans for a model, workload and SLOs.
struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Rank deployments (VM SKU, GPUs, TP/PP, precision, batch, replicas) by $/1M tokens under latency SLOs.",
        discussion: """
        With no options it plans the embedded default scenario: Llama 3.1 70B serving a chat workload of \
        5 requests/s, prompts of 1,000 tokens on average (p95 3,000, max 6,144), outputs of 250 tokens on \
        average (p95 600, max 2,048), with SLOs p95 TTFT ≤ 2 s and p95 time per output token ≤ 60 ms.
        """)

    @Option(help: "Model name from the catalog.")
    var model: String = "llama-3.1-70b"

    @Option(help: "Requests per second.")
    var rps: Double = 5

    @Option(name: .customLong("prompt-mean")) var promptMean: Double = 1000
    @Option(name: .customLong("prompt-p95")) var promptP95: Double = 3000
    @Option(name: .customLong("prompt-max")) var promptMax: Int = 6144
    @Option(name: .customLong("output-mean")) var outputMean: Double = 250
    @Option(name: .customLong("output-p95")) var outputP95: Double = 600
    @Option(name: .customLong("output-max")) var outputMax: Int = 2048

    @Option(help: "p95 time-to-first-token SLO, seconds.")
    var ttft: Double = 2.0

    @Option(help: "p95 time-per-output-token SLO, seconds.")
    var tpot: Double = 0.060

    @Option(name: .customLong("sku"), help: "Restrict to these VM SKUs (repeatable).")
    var skus: [String] = []

    @Option(name: .customLong("precision"), help: "Weight precisions to try (repeatable or comma-separated; default bf16,fp8,int8,int4).")
    var precisions: [String] = []

    @Option(name: .customLong("gpu-memory-utilization")) var gpuMemoryUtilization: Double = 0.90
    @Option(name: .customLong("target-utilisation"), help: "Highest average load per replica.") var targetUtilisation: Double = 0.8
    @Option(help: "Model FLOPs utilisation for prefill.") var mfu: Double = 0.5
    @Option(help: "Model bandwidth utilisation for decode.") var mbu: Double = 0.6
    @Option(help: "Show this many plans.") var top: Int = 10

    @OptionGroup var catalogOptions: CostCatalogOptions

    @Flag(help: "Print JSON instead of tables.")
    var json = false

    struct Report: Encodable {
        var result: PlanResult
        var vllm: VLLMSettings?
        var aksNodePool: AKSNodePool?
        var azCommand: String?
        var vllmCommand: String?
    }

    func run() throws {
        let catalog = try catalogOptions.load()
        let m = try catalog.model(named: model)
        guard top > 0 else { throw CostModelError(.invalidInput, "--top is \(top); it must be at least 1.") }
        let workload = Workload(requestsPerSecond: rps,
                                prompt: TokenDistribution(mean: promptMean, p95: promptP95, max: promptMax),
                                output: TokenDistribution(mean: outputMean, p95: outputP95, max: outputMax))
        let slos = ServiceLevelObjectives(p95TimeToFirstToken: ttft, p95TimePerOutputToken: tpot)
        var options = PlannerOptions(skus: skus.isEmpty ? nil : skus, gpuMemoryUtilization: gpuMemoryUtilization,
                                     targetUtilisation: targetUtilisation,
                                     efficiency: RooflineEfficiency(mfu: mfu, mbu: mbu))
        if !precisions.isEmpty { options.precisions = try costParsePrecisions(precisions) }
        let result = try DeploymentPlanner(catalog: catalog).plan(model: m, workload: workload, slos: slos, options: options)
        let best = result.plans.first
        let vllm = best?.vllmSettings(model: m)
        let pool = best?.aksNodePool()
        if json {
            try CostTable.json(Report(result: result, vllm: vllm, aksNodePool: pool, azCommand: pool?.azCommand, vllmCommand: vllm?.commandLine))
            if result.plans.isEmpty { throw ExitCode.failure }
            return
        }
        print("Plan for \(m.displayName)\(m.estimate ? " — architecture is an ESTIMATE" : ""): \(CostTable.num(rps, 2)) req/s, prompt mean/p95/max \(CostTable.num(promptMean, 0))/\(CostTable.num(promptP95, 0))/\(promptMax), output \(CostTable.num(outputMean, 0))/\(CostTable.num(outputP95, 0))/\(outputMax) tokens")
        print("SLOs: p95 TTFT ≤ \(CostTable.ms(ttft)) ms, p95 TPOT ≤ \(CostTable.ms(tpot)) ms. Roofline MFU \(CostTable.pct(mfu)), MBU \(CostTable.pct(mbu)); replicas at ≤ \(CostTable.pct(targetUtilisation)) load.")
        print("")
        if !result.plans.isEmpty {
            let rows = result.plans.prefix(top).enumerated().map { i, p in
                [String(i + 1), p.sku, "\(p.gpusPerReplica)×\(p.gpu)", "\(p.tensorParallel)/\(p.pipelineParallel)", p.weightPrecision.label,
                 p.kvPrecision.label, String(p.maxBatch), String(p.replicas), String(p.vmCount), CostTable.ms(p.predictedP95TimeToFirstToken),
                 CostTable.ms(p.predictedP95TimePerOutputToken), CostTable.pct(p.replicaUtilisation), CostTable.dollars(p.dollarsPerHour),
                 CostTable.dollars(p.dollarsPerMillionTokens, 3)]
            }
            print(CostTable.table(["#", "VM SKU", "GPUs/replica", "TP/PP", "weights", "KV", " max batch", " replicas", " VMs",
                                " p95 TTFT ms", " p95 TPOT ms", " load", " $/hour", " $/1M tok"], rows))
        }
        if !result.rejected.isEmpty {
            print("")
            print("Rejected:")
            print(CostTable.table(["VM SKU", "precision", "reason"],
                               result.rejected.map { [$0.sku, $0.precision?.label ?? "-", $0.detail] }))
        }
        guard let best, let vllm, let pool else {
            print("")
            throw CostModelError(.noFeasiblePlan, result.explanation ?? "No deployment meets the workload and SLOs.")
        }
        print("")
        print("Chosen: \(best.vmCount) × \(best.sku) (\(best.replicas) replica(s) of \(best.gpusPerReplica) × \(best.gpu), \(best.weightPrecision.label)), \(CostTable.dollars(best.dollarsPerHour))/hour ≈ \(CostTable.dollars(best.dollarsPerHour * 730, 0))/month, \(CostTable.dollars(best.dollarsPerMillionTokens, 3)) per 1M tokens.")
        for note in best.notes { print("  note: \(note)") }
        print("")
        print("vLLM (one replica):")
        print("  " + vllm.commandLine)
        for note in vllm.notes { print("  # \(note)") }
        print("")
        print("AKS GPU node pool:")
        print("  " + pool.azCommand)
        print("  # pods request \(pool.gpuResource): \(pool.gpusPerPod); tolerate the taint \(pool.gpuResource)=present:NoSchedule")
    }
}

// MARK: - inferkit ptu

/// `inferkit ptu` — PTU sizing and PTU vs pay-as-you-go.
struct PTUCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ptu",
        abstract: "Size Azure OpenAI provisioned throughput (PTU) and compare it with pay-as-you-go.")

    @Option(help: "PTU profile (see `inferkit catalog list ptu`).") var profile: String = "gpt-4o"
    @Option(name: .customLong("price-model"), help: "API price entry for PAYG (default: the profile's model).") var priceModel: String?
    @Option(name: .customLong("peak-rpm"), help: "Peak requests per minute.") var peakRPM: Double = 120
    @Option(name: .customLong("avg-rpm"), help: "Average requests per minute over the month.") var averageRPM: Double = 60
    @Option(name: .customLong("input"), help: "Input tokens per request.") var inputTokens: Double = 500
    @Option(name: .customLong("output"), help: "Output tokens per request.") var outputTokens: Double = 200
    @Option(name: .customLong("cached"), help: "Fraction of input tokens served from the prompt cache.") var cached: Double = 0
    @OptionGroup var catalogOptions: CostCatalogOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let catalog = try catalogOptions.load()
        let p = try catalog.ptuProfile(named: profile)
        let price = try catalog.apiPrice(model: priceModel ?? p.model)
        let workload = PTUWorkload(peakRequestsPerMinute: peakRPM, averageRequestsPerMinute: averageRPM,
                                   inputTokensPerRequest: inputTokens, outputTokensPerRequest: outputTokens, cachedInputFraction: cached)
        let a = try PTUCalculator.analyse(workload, profile: p, price: price)
        if json { return try CostTable.json(a) }
        print("PTU profile \(p.name) (\(p.model)): \(CostTable.num(p.tokensPerMinutePerPTU, 0)) tokens/min per PTU, output weight \(CostTable.num(p.outputTokenWeight, 0)), $\(CostTable.num(p.pricePerPTUHour, 2))/PTU/hour")
        print("Workload: peak \(CostTable.num(peakRPM, 0)) RPM, average \(CostTable.num(averageRPM, 0)) RPM, \(CostTable.num(inputTokens, 0)) in + \(CostTable.num(outputTokens, 0)) out tokens")
        print("PTUs: \(a.ptus) (raw \(CostTable.num(a.rawPTUs, 2))), capacity \(CostTable.num(a.capacityRequestsPerMinute, 1)) RPM, average utilisation \(CostTable.pct(a.utilisation))")
        print("")
        var rows = [["PAYG", CostTable.dollars(a.paygMonthly, 0), "-"]]
        rows += a.options.map { [$0.billing.label, CostTable.dollars($0.monthlyCost, 0), CostTable.pct($0.breakEvenUtilisation)] }
        print(CostTable.table(["option", " $/month", " break-even utilisation"], rows))
        print("")
        print("Recommendation: \(a.recommendation == .provisioned ? "PTU" : "pay-as-you-go") (cheapest: \(a.cheapest))")
        for r in a.reasons { print("  - \(r)") }
    }
}

// MARK: - inferkit levers

/// `inferkit levers` — cost levers applied to a baseline bill.
struct LeversCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "levers",
        abstract: "Project a monthly AI bill under each cost lever (routing, caching, batch, quantization, spot, reserved, …).")

    @Option(name: .customLong("api"), help: "Monthly hosted-model (token) spend, USD.") var apiMonthly: Double = 50_000
    @Option(name: .customLong("gpu"), help: "Monthly self-hosted GPU spend, USD.") var gpuMonthly: Double = 20_000
    @Option(name: .customLong("input-share"), help: "Share of API spend on input tokens.") var inputShare: Double = 0.5
    @Option(name: .customLong("routed-share")) var routedShare: Double = 0.5
    @Option(name: .customLong("premium-model")) var premiumModel: String = "gpt-4o"
    @Option(name: .customLong("cheap-model")) var cheapModel: String = "gpt-4o-mini"
    @Option(name: .customLong("repeated-share")) var repeatedShare: Double = 0.3
    @Option(name: .customLong("batch-share")) var batchShare: Double = 0.2
    @Option(name: .customLong("spot-share")) var spotShare: Double = 0.3
    @Option(name: .customLong("reserved-share")) var reservedShare: Double = 0.7
    @OptionGroup var catalogOptions: CostCatalogOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let catalog = try catalogOptions.load()
        let bill = MonthlyBill(apiMonthly: apiMonthly, gpuMonthly: gpuMonthly, inputShareOfAPI: inputShare)
        let settings = LeverSettings(routedShare: routedShare, premiumModel: premiumModel, cheapModel: cheapModel,
                                     repeatedQueryShare: repeatedShare, batchEligibleShare: batchShare,
                                     spotEligibleShare: spotShare, reservedShare: reservedShare)
        let a = try CostLeverCalculator.analyse(bill, settings: settings, catalog: catalog)
        if json { return try CostTable.json(a) }
        print("Baseline: \(CostTable.dollars(bill.total, 0))/month (API \(CostTable.dollars(apiMonthly, 0)), GPU \(CostTable.dollars(gpuMonthly, 0)))")
        print(CostTable.table(["lever", "acts on", " addressable $", " savings $", " projected bill $", "trade-off"],
                           a.projections.map { p in
                               [p.lever.displayName, p.basis, CostTable.num(p.addressable, 0),
                                "\(CostTable.num(p.savingsLow, 0))–\(CostTable.num(p.savingsHigh, 0))",
                                "\(CostTable.num(p.projectedLow, 0))–\(CostTable.num(p.projectedHigh, 0))", p.lever.tradeOff]
                           }))
        print("")
        print("All levers together (compounding): \(CostTable.dollars(a.combinedLow, 0))–\(CostTable.dollars(a.combinedHigh, 0))/month, saving \(CostTable.pct(1 - a.combinedHigh / bill.total))–\(CostTable.pct(1 - a.combinedLow / bill.total)).")
    }
}

// MARK: - inferkit catalog

/// `inferkit catalog list|show`.
struct CatalogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catalog",
        abstract: "List or show catalog entries: models, GPUs, VM SKUs, API prices, PTU profiles, cost levers.",
        subcommands: [List.self, Show.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List catalog entries.")

        @Argument(help: "models, gpus, skus, prices, ptu, levers or all.") var kind: String = "all"
        @OptionGroup var catalogOptions: CostCatalogOptions
        @Flag(help: "Print JSON.") var json = false

        struct Everything: Encodable {
            var models: [ModelSpec]?
            var gpus: [GPUSpec]?
            var vmSKUs: [VMSKU]?
            var apiPrices: [APIPrice]?
            var ptuProfiles: [PTUProfile]?
            var levers: [CostLeverSpec]?
        }

        func run() throws {
            let c = try catalogOptions.load()
            let kinds = ["models", "gpus", "skus", "prices", "ptu", "levers"]
            let k = kind.lowercased()
            guard k == "all" || kinds.contains(k) else {
                throw CostModelError(.invalidInput, "Unknown catalog kind '\(kind)'; use one of \(kinds.joined(separator: ", ")) or all.")
            }
            func wants(_ name: String) -> Bool { k == "all" || k == name }
            if json {
                return try CostTable.json(Everything(models: wants("models") ? c.models : nil, gpus: wants("gpus") ? c.gpus : nil,
                                                  vmSKUs: wants("skus") ? c.vmSKUs : nil, apiPrices: wants("prices") ? c.apiPrices : nil,
                                                  ptuProfiles: wants("ptu") ? c.ptuProfiles : nil, levers: wants("levers") ? c.levers : nil))
            }
            var sections: [String] = []
            if wants("models") {
                sections.append("Models\n" + CostTable.table(
                    ["name", " params B", " layers", " hidden", " heads", " KV heads", " experts", " context", " KV B/token (BF16)", "note"],
                    c.models.map { m in
                        [m.name, CostTable.num(m.parameterCount / 1e9, 2), String(m.layers), String(m.hiddenSize), String(m.attentionHeads),
                         String(m.kvHeads), m.isMixtureOfExperts ? "\(m.activeExperts)/\(m.experts)" : "-", String(m.maxContext),
                         CostTable.num(m.kvBytesPerToken(.bf16), 0), m.estimate ? "ESTIMATE" : ""]
                    }))
            }
            if wants("gpus") {
                sections.append("GPUs\n" + CostTable.table(
                    ["name", " GiB", " GB/s", " FP16 TFLOPS", " FP8 TFLOPS", " INT8 TOPS", "interconnect"],
                    c.gpus.map { g in
                        [g.name, CostTable.num(g.memoryGiB, 0), CostTable.num(g.memoryBandwidthGBs, 0), CostTable.num(g.fp16TFLOPS, g.fp16TFLOPS < 10 ? 2 : 0),
                         g.fp8TFLOPS.map { CostTable.num($0, 0) } ?? "-", g.int8TOPS.map { CostTable.num($0, 0) } ?? "-",
                         "\(g.interconnect) (\(CostTable.num(g.interconnectGBs, 0)) GB/s)"]
                    }))
            }
            if wants("skus") {
                sections.append("Azure VM SKUs\n" + CostTable.table(
                    ["name", "GPU", " GPUs", " VRAM GB", " vCPUs", " RAM GB", " $/hour", "network"],
                    c.vmSKUs.map { v in
                        [v.name, v.gpu, String(v.gpuCount), CostTable.num(v.totalVRAMGB, 0), v.vcpus.map(String.init) ?? "-",
                         v.ramGB.map { CostTable.num($0, 0) } ?? "-", v.pricePerHour.map { CostTable.dollars($0) } ?? "n/a", v.network]
                    }))
            }
            if wants("prices") {
                sections.append("API prices (USD per 1M tokens)\n" + CostTable.table(
                    ["model", " input", " cached input", " output", " batch discount"],
                    c.apiPrices.map { p in
                        [p.model, CostTable.num(p.inputPer1M, 3), p.cachedInputPer1M.map { CostTable.num($0, 3) } ?? "-",
                         CostTable.num(p.outputPer1M, 2), CostTable.pct(p.batchDiscount)]
                    }))
            }
            if wants("ptu") {
                sections.append("PTU profiles\n" + CostTable.table(
                    ["name", "model", " $/PTU/hour", " $/PTU month (res.)", " $/PTU month (1-yr)", " min", " step", " tokens/min/PTU", " output weight"],
                    c.ptuProfiles.map { p in
                        [p.name, p.model, CostTable.num(p.pricePerPTUHour, 2), p.monthlyReservationPerPTU.map { CostTable.num($0, 0) } ?? "-",
                         p.yearlyReservationPerPTUMonth.map { CostTable.num($0, 0) } ?? "-", String(p.minimumPTUs), String(p.increment),
                         CostTable.num(p.tokensPerMinutePerPTU, 0), CostTable.num(p.outputTokenWeight, 0)]
                    }))
            }
            if wants("levers") {
                sections.append("Cost levers\n" + CostTable.table(
                    ["name", "applies to", " savings", "effort", "trade-off"],
                    c.levers.map { l in
                        [l.name, l.appliesTo.rawValue, "\(CostTable.pct(l.savingsLow))–\(CostTable.pct(l.savingsHigh))", l.effort, l.tradeOff]
                    }))
            }
            print(sections.joined(separator: "\n\n"))
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one catalog entry with its source and date.")

        @Argument(help: "A model, GPU, VM SKU, API price, PTU profile or lever name.") var name: String
        @OptionGroup var catalogOptions: CostCatalogOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let c = try catalogOptions.load()
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data: Data
            if let m = try? c.model(named: name) { data = try encoder.encode(m) }
            else if let g = try? c.gpu(named: name) { data = try encoder.encode(g) }
            else if let v = try? c.vmSKU(named: name) { data = try encoder.encode(v) }
            else if let p = try? c.ptuProfile(named: name) { data = try encoder.encode(p) }
            else if let p = try? c.apiPrice(model: name) { data = try encoder.encode(p) }
            else if let l = try? c.lever(named: name) { data = try encoder.encode(l) }
            else {
                let all = c.models.map(\.name) + c.gpus.map(\.name) + c.vmSKUs.map(\.name) + c.ptuProfiles.map(\.name)
                    + c.apiPrices.map(\.model) + c.levers.map(\.name)
                throw CostModelError.unknownEntry(name, candidates: all)
            }
            if json { return print(String(decoding: data, as: UTF8.self)) }
            // Human form: one "key: value" line per field.
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { return }
            for key in object.keys.sorted() {
                let value = object[key] ?? ""
                if let list = value as? [Any] {
                    print("\(key): \(list.map { "\($0)" }.joined(separator: "; "))")
                } else {
                    print("\(key): \(value)")
                }
            }
            if let m = try? c.model(named: name) {
                print("computedParameters: \(CostTable.num(m.parameterCount, 0)) (\(CostTable.num((m.parameterCount / m.publishedParameters - 1) * 100, 2))% vs published)")
                print("activeParameters: \(CostTable.num(m.activeParameterCount, 0))")
                print("kvBytesPerToken (BF16): \(CostTable.num(m.kvBytesPerToken(.bf16), 0))")
            }
        }
    }
}

// MARK: - inferkit bench plan

/// `inferkit bench plan` — time the planner over the whole catalog.
struct BenchPlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Time `inferkit plan` over every catalog model × every SKU × every precision (bar: < 1 s).")

    @Option(help: "Timed repetitions (median reported).") var repetitions: Int = 15
    @Option(help: "Write a Markdown report here.") var output: String?

    func run() throws {
        guard repetitions > 0, repetitions <= 1000 else {
            throw CostModelError(.invalidInput, "--repetitions is \(repetitions); use 1 to 1,000.")
        }
        let catalog = try Catalog.bundled()
        let workload = Workload(requestsPerSecond: 5, prompt: TokenDistribution(mean: 1000, p95: 3000, max: 6144),
                                output: TokenDistribution(mean: 250, p95: 600, max: 2048))
        let slos = ServiceLevelObjectives(p95TimeToFirstToken: 2, p95TimePerOutputToken: 0.06)
        let planner = DeploymentPlanner(catalog: catalog)
        let clock = ContinuousClock()

        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
        func median(_ v: [Double]) -> Double { let s = v.sorted(); return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2 }

        // Baseline: loading and parsing the bundled JSON catalog from disk (the same work any CLI call does first).
        var loadTimes: [Double] = []
        for _ in 0..<repetitions {
            let t = clock.measure { _ = try? Catalog().merging(contentsOf: Self.resourcePath("models")) }
            loadTimes.append(seconds(t))
        }
        var fullTimes: [Double] = [], defaultTimes: [Double] = []
        var plansFound = 0, rejections = 0, stepEvaluations = 0
        for _ in 0..<repetitions {
            var found = 0, rejected = 0
            let t = clock.measure {
                for m in catalog.models {
                    if let r = try? planner.plan(model: m, workload: workload, slos: slos) {
                        found += r.plans.count
                        rejected += r.rejected.count
                    }
                }
            }
            fullTimes.append(seconds(t))
            plansFound = found
            rejections = rejected
            let d = clock.measure { _ = try? planner.plan(model: catalog.model(named: "llama-3.1-70b"), workload: workload, slos: slos) }
            defaultTimes.append(seconds(d))
        }
        // Roofline step-time throughput (what a simulator calls per step).
        let roofline = try RooflineModel(model: catalog.model(named: "llama-3.1-70b"), gpu: catalog.gpu(named: "H100"), precision: .fp8, tensorParallel: 4)
        let calls = 2_000_000
        var sink = 0.0
        var stepTimes: [Double] = []
        for _ in 0..<5 {
            let t = clock.measure {
                for i in 0..<calls { sink += roofline.stepTime(prefillTokens: i & 511, decodeTokens: i & 127, contextTokens: i & 65535) }
            }
            stepTimes.append(seconds(t))
        }
        stepEvaluations = calls
        let combos = catalog.models.count * catalog.vmSKUs.count * 4
        let report = """
        # `inferkit plan` benchmark

        Command: `swift build -c release --product inferkit && .build/release/inferkit bench plan --repetitions \(repetitions)\(output.map { " --output \($0)" } ?? "")`

        Machine: 2-core AMD EPYC (Zen 4, AVX-512), shared with other builds while measured (noisy); release build.

        Workload: 5 req/s, prompt mean/p95/max 1000/3000/6144, output 250/600/2048; SLOs p95 TTFT 2 s, p95 TPOT 60 ms.

        | what | median of \(repetitions) | min | max |
        |---|---|---|---|
        | baseline: parse bundled models.json from disk | \(CostTable.num(median(loadTimes) * 1000, 3)) ms | \(CostTable.num((loadTimes.min() ?? 0) * 1000, 3)) ms | \(CostTable.num((loadTimes.max() ?? 0) * 1000, 3)) ms |
        | plan, default scenario (Llama 3.1 70B, every SKU × 4 precisions) | \(CostTable.num(median(defaultTimes) * 1000, 3)) ms | \(CostTable.num((defaultTimes.min() ?? 0) * 1000, 3)) ms | \(CostTable.num((defaultTimes.max() ?? 0) * 1000, 3)) ms |
        | plan, full catalog (\(catalog.models.count) models × \(catalog.vmSKUs.count) SKUs × 4 precisions = \(combos) candidates) | \(CostTable.num(median(fullTimes) * 1000, 3)) ms | \(CostTable.num((fullTimes.min() ?? 0) * 1000, 3)) ms | \(CostTable.num((fullTimes.max() ?? 0) * 1000, 3)) ms |

        Full-catalog planning vs the catalog-parse baseline: \(CostTable.num(median(fullTimes) / max(median(loadTimes), 1e-12), 1))× (bar: the full catalog in < 1 s: \(median(fullTimes) < 1 ? "met" : "NOT met")).
        The full-catalog run found \(plansFound) plans and \(rejections) rejections.

        Roofline `stepTime` (Llama 3.1 70B, 4 × H100, FP8): median \(CostTable.num(median(stepTimes) / Double(stepEvaluations) * 1e9, 2)) ns per call over \(CostTable.num(Double(stepEvaluations), 0)) calls, 5 repetitions (checksum \(CostTable.num(sink, 0))).
        """
        print(report)
        if let output {
            do { try (report + "\n").write(toFile: output, atomically: true, encoding: .utf8) } catch {
                throw CostModelError(.invalidInput, "Cannot write \(output); check the directory exists.", underlying: error.localizedDescription)
            }
        }
    }

    static func resourcePath(_ name: String) -> String {
        CostModelResources.path(name) ?? "/nonexistent"
    }
}
