import ArgumentParser
import CostModel
import Foundation
import KVPaging
import Scheduling

// MARK: - inferkit simulate

/// `inferkit simulate …` — the discrete-event serving simulator.
struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Simulate an inference server: batching policies, KV paging, preemption, autoscaling.",
        discussion: """
        Examples:
          inferkit simulate --rate 20 --requests 5000
          inferkit simulate --compare --rate 15 --svg out/
          inferkit simulate --trace requests.csv --policy priority --json
          inferkit simulate fit timings.csv
          inferkit simulate speculative --alpha 0.8 --gamma 4 --cost-ratio 0.1
        """,
        subcommands: [SimulateRun.self, SimulateFit.self, SimulateSpeculative.self],
        defaultSubcommand: SimulateRun.self
    )
}

/// Prints `message` to stderr and returns the exit code to throw (1, without the usage text that
/// ArgumentParser prints for `ValidationError`: the input was understood, its values were not).
func commandFailure(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    return ExitCode.failure
}

enum CLIError: Error, CustomStringConvertible {
    case usage(String)
    var description: String {
        switch self { case let .usage(m): m }
    }
}

func parseLengthDistribution(_ text: String, _ what: String) throws -> LengthDistribution {
    let parts = text.lowercased().split(separator: ":", maxSplits: 1).map(String.init)
    let args = parts.count > 1 ? parts[1].split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } : []
    func num(_ i: Int) throws -> Double {
        guard i < args.count, let v = Double(args[i]) else { throw CLIError.usage("--\(what) '\(text)': argument \(i + 1) is missing or not a number") }
        return v
    }
    /// A token count: a whole, finite number (`Int(_:)` traps on NaN, infinity and values beyond `Int`).
    func whole(_ i: Int) throws -> Int {
        let v = try num(i)
        guard v.isFinite, v == v.rounded(), abs(v) <= Double(InferenceRequest.maximumTokens) else {
            throw CLIError.usage("--\(what) '\(text)': argument \(i + 1) must be a whole number of tokens (1 … \(InferenceRequest.maximumTokens))")
        }
        return Int(v)
    }
    guard let kind = parts.first else {
        throw CLIError.usage("--\(what) is empty: use constant:N, uniform:MIN,MAX, lognormal:MEDIAN,SIGMA[,MIN,MAX] or chat")
    }
    switch kind {
    case "constant":
        return .constant(try whole(0))
    case "uniform":
        return .uniform(min: try whole(0), max: try whole(1))
    case "lognormal":
        let lo = args.count > 2 ? try whole(2) : 1
        let hi = args.count > 3 ? try whole(3) : 32_768
        return .logNormal(median: try num(0), sigma: try num(1), min: lo, max: hi)
    case "chat":
        return what == "prompt" ? .chatPrompt : .chatOutput
    default:
        throw CLIError.usage("--\(what) '\(text)': use constant:N, uniform:MIN,MAX, lognormal:MEDIAN,SIGMA[,MIN,MAX] or chat")
    }
}

struct WorkloadOptions: ParsableArguments {
    @Option(help: "Requests to generate.") var requests = 2000
    @Option(help: "Mean arrival rate (requests/s).") var rate = 10.0
    @Option(help: "Arrival process: poisson, gamma (bursty, see --cv) or uniform.") var arrival = "poisson"
    @Option(help: "Coefficient of variation of gamma inter-arrival times (> 1 is burstier than Poisson).") var cv = 2.0
    @Option(help: "Prompt lengths: chat | constant:N | uniform:MIN,MAX | lognormal:MEDIAN,SIGMA[,MIN,MAX].") var prompt = "chat"
    @Option(help: "Output lengths, same forms as --prompt.") var output = "chat"
    @Option(help: "Fraction of requests sharing a system prompt (prefix caching).") var sharedPrefixFraction = 0.0
    @Option(help: "Length of the shared system prompt in tokens.") var sharedPrefixTokens = 0
    @Option(help: "Priority mix as PRIORITY:WEIGHT,… (lower priority value = more urgent), e.g. 0:1,1:4.") var priorityMix: String?
    @Option(help: "Replay a trace (CSV or JSONL: arrival_time, prompt_tokens, output_tokens[, priority]) instead.") var trace: String?
    @Option(help: "Random seed.") var seed: UInt64 = 42

    func requests(rateOverride: Double? = nil) throws -> [InferenceRequest] {
        if let trace { return try TraceReader.read(path: trace) }
        let r = rateOverride ?? rate
        let process: ArrivalProcess
        switch arrival.lowercased() {
        case "poisson": process = .poisson(rate: r)
        case "gamma": process = .gamma(rate: r, cv: cv)
        case "uniform": process = .uniform(rate: r)
        default: throw CLIError.usage("--arrival '\(arrival)': use poisson, gamma or uniform")
        }
        var mix: [SyntheticWorkload.PriorityWeight] = []
        if let priorityMix {
            for item in priorityMix.split(separator: ",") {
                let kv = item.split(separator: ":")
                guard kv.count == 2, let p = Int(kv[0]), let w = Double(kv[1]) else {
                    throw CLIError.usage("--priority-mix '\(priorityMix)': use PRIORITY:WEIGHT pairs such as 0:1,1:4")
                }
                mix.append(.init(priority: p, weight: w))
            }
        }
        return try SyntheticWorkload(arrivals: process, promptLength: parseLengthDistribution(prompt, "prompt"),
                                     outputLength: parseLengthDistribution(output, "output"), count: requests,
                                     sharedPrefixFraction: sharedPrefixFraction, sharedPrefixLength: sharedPrefixTokens,
                                     priorityMix: mix, seed: seed).generate()
    }
}

struct ModelOptions: ParsableArguments {
    @Option(help: "Catalog model for the roofline execution model.") var model = "llama-3.1-8b"
    @Option(help: "Catalog GPU.") var gpu = "H100-SXM"
    @Option(help: "Weight precision: fp32, fp16, bf16, fp8, int8, int4.") var precision = "bf16"
    @Option(name: .customLong("tp"), help: "Tensor-parallel degree.") var tensorParallel = 1
    @Option(help: "Use a linear step model instead: β0,β1,β2[,β3] seconds (fixed, per prefill token, per decode token, per context token).") var linear: String?
    @Option(help: "Fit the linear step model to measured step timings (CSV) and use it.") var stepTimings: String?
    @Option(help: "KV blocks (default: what the GPU memory leaves after weights, or 4096 with a linear model).") var kvBlocks: Int?
    @Option(help: "KV block size in tokens.") var blockSize = 16
    @Option(help: "Host swap space in GiB for swap preemption.") var swapGib = 0.0
    @Option(help: "Longest sequence (default: the model's context).") var maxModelLen: Int?
    @Flag(help: "Disable automatic prefix caching.") var noPrefixCaching = false

    /// Rejects values the KV and roofline set-up would otherwise trap on (division by a zero block
    /// size, `Int(_:)` of a NaN or huge swap size).
    func validate() throws {
        guard blockSize >= 1, blockSize <= 65_536 else { throw CLIError.usage("--block-size \(blockSize): use 1 … 65,536 tokens per KV block") }
        guard swapGib.isFinite, swapGib >= 0, swapGib <= 1_048_576 else { throw CLIError.usage("--swap-gib \(swapGib): use a finite size in 0 … 1,048,576 GiB") }
        if let kvBlocks, kvBlocks < 1 || kvBlocks > 1 << 31 { throw CLIError.usage("--kv-blocks \(kvBlocks): use 1 … 2,147,483,648 blocks") }
        if let maxModelLen, maxModelLen < 1 || maxModelLen > InferenceRequest.maximumTokens {
            throw CLIError.usage("--max-model-len \(maxModelLen): use 1 … \(InferenceRequest.maximumTokens) tokens")
        }
        guard tensorParallel >= 1, tensorParallel <= 1024 else { throw CLIError.usage("--tp \(tensorParallel): use a tensor-parallel degree of 1 … 1024") }
    }

    func build() throws -> (model: any ExecutionModel, kv: KVCacheConfiguration) {
        try validate()
        if linear != nil || stepTimings != nil {
            let m: LinearStepModel
            if let path = stepTimings {
                guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
                    throw SchedulingError(.fileUnreadable, "cannot read step timings '\(path)'")
                }
                m = try LinearStepModel.fit(LinearStepModel.parseTimings(csv: text)).model
            } else {
                let b = linear!.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
                guard b.count >= 3, b.count <= 4 else { throw CLIError.usage("--linear '\(linear!)': give β0,β1,β2[,β3] as numbers") }
                m = try LinearStepModel(beta0: b[0], beta1: b[1], beta2: b[2], beta3: b.count > 3 ? b[3] : 0)
            }
            let blocks = kvBlocks ?? 4096
            let host = swapGib > 0 ? blocks : 0
            return (m, KVCacheConfiguration(blockCount: blocks, blockSize: blockSize, maxSequenceLength: maxModelLen ?? 32_768,
                                            enablePrefixCaching: !noPrefixCaching, hostBlockCount: host))
        }
        guard let p = Precision(rawValue: precision.lowercased()) else {
            throw CLIError.usage("--precision '\(precision)': use one of \(Precision.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let m = try RooflineStepModel(model: model, gpu: gpu, precision: p, tensorParallel: tensorParallel)
        var kv = m.kvCacheConfiguration(blockSize: blockSize, hostSwapGiB: swapGib, enablePrefixCaching: !noPrefixCaching)
        if let kvBlocks { kv.blockCount = kvBlocks }
        if let maxModelLen { kv.maxSequenceLength = maxModelLen }
        return (m, kv)
    }
}

struct SchedulerOptions: ParsableArguments {
    @Option(help: "Batching policy: none, static, dynamic, continuous, priority.") var policy = "continuous"
    @Option(help: "Batch size of static and dynamic batching.") var batchSize = 32
    @Option(help: "Longest wait of dynamic batching before a partial batch launches (s).") var maxWait = 0.05
    @Option(help: "Most sequences per step (vLLM max_num_seqs).") var maxNumSeqs = 256
    @Option(help: "Most tokens per step (vLLM max_num_batched_tokens).") var maxBatchedTokens = 8192
    @Flag(help: "Disable chunked prefill.") var noChunkedPrefill = false
    @Option(help: "Preemption: recompute or swap (needs --swap-gib).") var preemption = "recompute"
    @Option(help: "KV allocator: paged or contiguous (the pre-paging baseline).") var allocator = "paged"
    @Option(help: "SLO: maximum TTFT (s).") var sloTtft: Double?
    @Option(help: "SLO: maximum TPOT (s).") var sloTpot: Double?
    @Option(help: "SLO: maximum end-to-end latency (s).") var sloE2e: Double?

    func makePolicy(_ name: String? = nil) throws -> any BatchingPolicy {
        switch (name ?? policy).lowercased() {
        case "none": NoBatchingPolicy()
        case "static": try StaticBatchingPolicy(batchSize: batchSize)
        case "dynamic": try DynamicBatchingPolicy(maxBatchSize: batchSize, maxWait: maxWait)
        case "continuous": ContinuousBatchingPolicy()
        case "priority": PriorityBatchingPolicy()
        default: throw CLIError.usage("--policy '\(name ?? policy)': use none, static, dynamic, continuous or priority")
        }
    }

    func limits() throws -> SchedulerLimits {
        guard let mode = PreemptionMode(rawValue: preemption.lowercased()) else { throw CLIError.usage("--preemption '\(preemption)': use recompute or swap") }
        return SchedulerLimits(maxNumSeqs: maxNumSeqs, maxBatchedTokens: maxBatchedTokens, chunkedPrefill: !noChunkedPrefill, preemptionMode: mode)
    }

    func allocatorKind() throws -> KVAllocatorKind {
        guard let k = KVAllocatorKind(rawValue: allocator.lowercased()) else { throw CLIError.usage("--allocator '\(allocator)': use paged or contiguous") }
        return k
    }

    var slo: ServiceLevelObjective {
        if sloTtft == nil && sloTpot == nil && sloE2e == nil { return .interactive }
        return ServiceLevelObjective(name: "custom", maxTTFT: sloTtft, maxTPOT: sloTpot, maxE2E: sloE2e)
    }
}

struct SimulateRun: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run a simulation (the default).")

    @OptionGroup var workload: WorkloadOptions
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var scheduler: SchedulerOptions
    @Flag(help: "Run none, static, dynamic and continuous batching on the same workload and compare them.") var compare = false
    @Option(help: "Fixed number of replicas behind one queue.") var replicas = 1
    @Flag(help: "Autoscale replicas (scale out at >80% GPU busy or >10 queued; in at <20% for 10 min).") var autoscale = false
    @Option(help: "Autoscaling: most replicas.") var maxReplicas = 8
    @Option(help: "Autoscaling: cold-start delay (s).") var coldStart = 120.0
    @Option(help: "Autoscaling: cooldown between actions (s).") var cooldown = 60.0
    @Option(help: "Speculative decoding: acceptance rate α of draft tokens (enables it).") var speculativeAlpha: Double?
    @Option(help: "Speculative decoding: lookahead γ.") var speculativeGamma = 4
    @Option(help: "Speculative decoding: draft/target step cost ratio c.") var speculativeCostRatio = 0.1
    @Flag(help: "Print JSON instead of a table.") var json = false
    @Option(help: "Write the time series (queue depth, KV usage, …) as CSV to this file.") var csv: String?
    @Option(help: "Write per-request results as CSV to this file.") var recordsCsv: String?
    @Option(help: "Write SVG charts (latency CDFs, KV usage and queue depth over time) into this directory.") var svg: String?

    func run() throws {
        do { try execute() } catch let e as SchedulingError {
            throw commandFailure(e.description)
        } catch let e as CLIError {
            throw commandFailure(e.description)
        }
    }

    func execute() throws {
        let requests = try workload.requests()
        let (model, kv) = try modelOptions.build()
        let names = compare ? ["none", "static", "dynamic", "continuous"] : [scheduler.policy]
        let speculative = try speculativeAlpha.map {
            try SpeculativeDecodingModel(acceptanceRate: $0, lookahead: speculativeGamma, costRatio: speculativeCostRatio)
        }
        var results: [(String, SimulationResult)] = []
        for name in names {
            var config = SimulationConfiguration(
                policy: try scheduler.makePolicy(name), limits: try scheduler.limits(), kv: kv, allocator: try scheduler.allocatorKind(),
                executionModel: model, sloClasses: [scheduler.slo], replicas: replicas,
                autoscaling: autoscale ? AutoscalingConfiguration(minReplicas: max(1, replicas), maxReplicas: max(maxReplicas, replicas), cooldown: cooldown,
                                                                  coldStart: coldStart, gpusPerReplica: modelOptions.tensorParallel) : nil)
            config.speculative = speculative
            config.seed = workload.seed
            if !json { FileHandle.standardError.write(Data("simulating \(name): \(requests.count) requests, \(model.summary), \(kv.blockCount) KV blocks × \(kv.blockSize)\n".utf8)) }
            let r = try ServingSimulator.run(requests, configuration: config) { done, total in
                if !json { FileHandle.standardError.write(Data("\r  \(done)/\(total) finished".utf8)) }
            }
            if !json { FileHandle.standardError.write(Data(String(format: "\r  done in %.2f s wall (%.0f requests/s, %.0f steps/s)\n", r.wallSeconds,
                                                                  Double(requests.count) / r.wallSeconds, Double(r.summary.steps) / r.wallSeconds).utf8)) }
            results.append((name, r))
        }
        if json {
            struct Output: Encodable {
                var summaries: [SimulationSummary]
                var rejected: [RejectedRequest]
                var scalingEvents: [ScalingEvent]
            }
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            let out = Output(summaries: results.map(\.1.summary), rejected: results.flatMap(\.1.rejected), scalingEvents: results.flatMap(\.1.scalingEvents))
            print(String(decoding: try enc.encode(out), as: UTF8.self))
        } else {
            print(SimulationReport.table(results.map(\.1.summary)))
            if compare, let cont = results.last?.1.summary {
                for (name, r) in results.dropLast() {
                    let s = r.summary
                    print(String(format: "continuous vs %@: %.2f× request throughput, p95 TTFT %.2f× lower", name,
                                 cont.requestThroughput / s.requestThroughput, s.ttft.p95 / max(cont.ttft.p95, 1e-12)))
                }
            }
            for (name, r) in results where !r.rejected.isEmpty {
                print("\(name): \(r.rejected.count) rejected, e.g. request \(r.rejected[0].id): \(r.rejected[0].reason)")
            }
            for (_, r) in results {
                for e in r.scalingEvents { print(String(format: "t=%8.1f s  %@ replica %d (busy %.0f %%, queue %d)", e.time, e.event, e.replica, e.utilization * 100, e.queueDepth)) }
            }
        }
        if let csv {
            var text = ""
            for (i, (name, r)) in results.enumerated() {
                let body = SimulationReport.timeSeriesCSV(r.timeSeries)
                let lines = body.split(separator: "\n")
                if i == 0 { text += "policy," + lines[0] + "\n" }
                for l in lines.dropFirst() { text += name + "," + l + "\n" }
            }
            try text.write(toFile: csv, atomically: true, encoding: .utf8)
        }
        if let recordsCsv, let first = results.first {
            try SimulationReport.recordsCSV(first.1.records).write(toFile: recordsCsv, atomically: true, encoding: .utf8)
        }
        if let svg {
            try FileManager.default.createDirectory(atPath: svg, withIntermediateDirectories: true)
            let cdfs = SimulationReport.latencyCDFs(results.map { ($0.0, $0.1.records) })
            let span = (requests.map(\.arrivalTime).max() ?? 0) - (requests.map(\.arrivalTime).min() ?? 0)
            let ts = SimulationReport.timeSeriesCharts(results.map { ($0.0, $0.1.timeSeries) }, until: compare ? 1.5 * span : nil)
            for (file, body) in [("ttft-cdf.svg", cdfs.ttft), ("e2e-cdf.svg", cdfs.e2e), ("kv-usage.svg", ts.kv), ("queue-depth.svg", ts.queue)] {
                try body.write(toFile: (svg as NSString).appendingPathComponent(file), atomically: true, encoding: .utf8)
            }
            if !json { FileHandle.standardError.write(Data("wrote ttft-cdf.svg, e2e-cdf.svg, kv-usage.svg, queue-depth.svg to \(svg)\n".utf8)) }
        }
    }
}

struct SimulateFit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fit",
        abstract: "Fit the linear step model t = β0 + β1·prefill + β2·decode + β3·context to measured step timings.",
        discussion: "CSV header: prefill_tokens,decode_tokens[,context_tokens],step_time (s) or step_time_ms.")

    @Argument(help: "CSV file of measured steps.") var file: String
    @Flag(help: "Fit without the context term.") var noContext = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        do {
            guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
                throw SchedulingError(.fileUnreadable, "cannot read '\(file)'; check the path")
            }
            let fit = try LinearStepModel.fit(LinearStepModel.parseTimings(csv: text), includeContext: !noContext)
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(fit), as: UTF8.self))
            } else {
                let m = fit.model
                print(String(format: "β0 = %.6g s\nβ1 = %.6g s per prefill token\nβ2 = %.6g s per decode token\nβ3 = %.6g s per context token", m.beta0, m.beta1, m.beta2, m.beta3))
                print(String(format: "samples %d, RMSE %.4g s, MAPE %.2f %%, max relative error %.2f %%, R² %.5f", fit.samples, fit.rmse,
                             fit.meanAbsolutePercentageError * 100, fit.maxRelativeError * 100, fit.rSquared))
                print(String(format: "use: inferkit simulate --linear %.6g,%.6g,%.6g,%.6g", m.beta0, m.beta1, m.beta2, m.beta3))
            }
        } catch let e as SchedulingError {
            throw commandFailure(e.description)
        }
    }
}

struct SimulateSpeculative: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "speculative",
        abstract: "Expected tokens per target pass and speed-up of speculative decoding: (1 − α^(γ+1)) / (1 − α) over γ·c + 1.")

    @Option(help: "Acceptance rate α of draft tokens (0 … 1).") var alpha = 0.8
    @Option(help: "Lookahead γ (draft tokens per step); omit to tabulate 1 … 8.") var gamma: Int?
    @Option(help: "Cost ratio c = draft step time / target step time.") var costRatio = 0.1

    func run() throws {
        do {
            print("  γ  tokens/pass  iteration cost  speed-up")
            for g in gamma.map({ [$0] }) ?? Array(1...8) {
                let m = try SpeculativeDecodingModel(acceptanceRate: alpha, lookahead: g, costRatio: costRatio)
                print(String(format: "%3d  %11.3f  %14.2f  %7.2f×", g, m.expectedTokensPerStep, m.relativeIterationCost, m.speedup))
            }
            if gamma == nil {
                let best = try SpeculativeDecodingModel(acceptanceRate: alpha, lookahead: 1, costRatio: costRatio).bestLookahead(upTo: 16)
                print(String(format: "best γ up to 16: %d (%.2f× speed-up)", best.lookahead, best.speedup))
            }
        } catch let e as SchedulingError {
            throw commandFailure(e.description)
        }
    }
}

// MARK: - inferkit bench simulator

/// `inferkit bench simulator` — simulator speed and the batching comparison at equal load.
struct BenchSimulator: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulator",
        abstract: "Time the serving simulator on a million requests and compare batching policies at equal load.")

    @Option(help: "Requests in the speed run.") var requests = 1_000_000
    @Option(help: "Repetitions of the speed run (the median is reported).") var repeats = 3
    @Option(help: "Requests per policy in the comparison.") var compareRequests = 20_000
    @Option(help: "Load as a fraction of the measured continuous-batching capacity.") var load = 0.9
    @Option(help: "Batch size of static and dynamic batching in the comparison (default: maxNumSeqs).") var batchSize = 256
    @Flag(help: "A small, fast run (100k requests, 1 repetition, 5k per policy).") var quick = false
    @Option(help: "Write the comparison's SVG charts into this directory.") var svg: String?
    @Option(help: "The Python baseline simulator to time in the same run (skipped when missing or python3 is absent).")
    var pythonBaseline = "Documentation/benchmarks/simulator-baseline.py"
    @Option(help: "Requests for the Python baseline.") var baselineRequests = 10_000

    /// Runs the Python baseline on the same kind of workload with the same roofline constants.
    func runPythonBaseline(model: RooflineStepModel, kv: KVCacheConfiguration, limits: SchedulerLimits, rate: Double, requests: Int) -> [String: Double]? {
        guard FileManager.default.fileExists(atPath: pythonBaseline) else { return nil }
        // Recover the roofline's linear constants from its term-by-term breakdown.
        let r = model.roofline
        let d1 = r.stepBreakdown(prefillTokens: 0, decodeTokens: 1, contextTokens: 0)
        let d1c = r.stepBreakdown(prefillTokens: 0, decodeTokens: 1, contextTokens: 1000)
        let p2 = r.stepBreakdown(prefillTokens: 2, decodeTokens: 0, contextTokens: 0)
        let bytesKV = (d1c.bytes - d1.bytes) / 1000, attn = (d1c.flops - d1.flops) / 1000
        let mm = p2.flops - d1.flops - 2 * attn
        let params: [String: Double] = [
            "flops_mm": mm, "flops_lm": d1.flops - mm, "flops_attn": attn, "bytes_weights": d1.bytes - bytesKV, "bytes_kv": bytesKV,
            "flops_rate": d1.flops / d1.computeSeconds, "bytes_rate": d1.bytes / d1.memorySeconds, "overhead": d1.overheadSeconds,
            "block_size": Double(kv.blockSize), "blocks": Double(kv.blockCount),
            "max_num_seqs": Double(limits.maxNumSeqs), "max_batched_tokens": Double(limits.maxBatchedTokens),
        ]
        guard let json = try? JSONSerialization.data(withJSONObject: params), let paramText = String(data: json, encoding: .utf8) else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", pythonBaseline, "--requests", "\(requests)", "--rate", "\(rate)", "--params", paramText]
        let pipe = Pipe()
        p.standardOutput = pipe
        do { try p.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0, let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        var out: [String: Double] = [:]
        for (k, v) in obj { if let d = v as? Double { out[k] = d } else if let i = v as? Int { out[k] = Double(i) } }
        return out
    }

    func run() throws {
        do { try execute() } catch let e as SchedulingError { throw commandFailure(e.description) }
    }

    func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

    func execute() throws {
        let n = quick ? 100_000 : requests, reps = quick ? 1 : max(1, repeats), nc = quick ? 5_000 : compareRequests
        let model = try RooflineStepModel(model: "llama-3.1-8b", gpu: "H100-SXM", precision: .bf16)
        let kv = model.kvCacheConfiguration()
        let limits = SchedulerLimits(maxNumSeqs: 256, maxBatchedTokens: 8192)
        func config(_ p: any BatchingPolicy) -> SimulationConfiguration {
            SimulationConfiguration(policy: p, limits: limits, kv: kv, executionModel: model, sloClasses: [.interactive])
        }
        print("Serving simulator benchmark — \(model.summary); KV pool \(kv.blockCount) blocks × \(kv.blockSize) tokens (\(kv.blockCount * kv.blockSize) tokens)")
        print("Workload: chat-like lengths (prompt log-normal median 200, σ 1.0; output median 250, σ 0.8), Poisson arrivals.")
        // 1. Capacity: everything arrives within one second; throughput = what the server sustains.
        let burst = try SyntheticWorkload(arrivals: .poisson(rate: 20_000), count: 20_000, seed: 1).generate()
        let cap = try ServingSimulator.run(burst, configuration: config(ContinuousBatchingPolicy())).summary
        let rate = cap.requestThroughput * load
        print(String(format: "Continuous-batching capacity: %.1f req/s (%.0f output tokens/s); benchmark load = %.0f%% → %.1f req/s", cap.requestThroughput,
                     cap.outputTokenThroughput, load * 100, rate))
        // 2. Speed.
        let work = try SyntheticWorkload(arrivals: .poisson(rate: rate), count: n, seed: 7).generate()
        var walls: [Double] = [], cpus: [Double] = [], last: SimulationResult?
        for i in 0..<reps {
            let r = try ServingSimulator.run(work, configuration: config(ContinuousBatchingPolicy()))
            log(String(format: "  run %d: %.2f s wall, %.2f s CPU, %d steps", i + 1, r.wallSeconds, r.cpuSeconds, r.summary.steps))
            walls.append(r.wallSeconds)
            cpus.append(r.cpuSeconds)
            last = r
        }
        let wall = walls.sorted()[walls.count / 2], cpu = cpus.sorted()[cpus.count / 2]
        let s = last!.summary
        print("")
        print("## Speed (\(n) requests, continuous batching, real KVBlockManager, one thread; median of \(reps))")
        print(String(format: "wall %.2f s (runs: %@), CPU %.2f s (runs: %@)", wall, walls.map { String(format: "%.2f", $0) }.joined(separator: ", "),
                     cpu, cpus.map { String(format: "%.2f", $0) }.joined(separator: ", ")))
        print(String(format: "→ %.0f simulated requests/s and %.0f scheduler iterations/s of wall time (%.0f and %.0f per CPU second); %d iterations",
                     Double(n) / wall, Double(s.steps) / wall, Double(n) / cpu, Double(s.steps) / cpu, s.steps))
        print(String(format: "vs the ~350 requests/s of a Python simulator (vidur; DESIGN.md figure, not measured in this run): %.0f× (wall)", Double(n) / wall / 350))
        log("  Python baseline (\(baselineRequests) requests)…")
        if let py = runPythonBaseline(model: model, kv: kv, limits: limits, rate: rate, requests: baselineRequests),
           let pw = py["wall_seconds"], let pc = py["cpu_seconds"], let done = py["requests"], let steps = py["steps"] {
            print(String(format: "in-run baseline, same simulation in Python (%@, %.0f requests): %.2f s wall, %.2f s CPU → %.0f requests/s, %.0f iterations/s (wall); TTFT p50 %.0f ms",
                         pythonBaseline, done, pw, pc, done / pw, steps / pw, (py["ttft_p50"] ?? 0) * 1000))
            print(String(format: "Swift / Python: %.0f× requests/s (wall), %.0f× requests per CPU second", (Double(n) / wall) / (done / pw), (Double(n) / cpu) / (done / pc)))
        } else {
            print("in-run Python baseline: not run (\(pythonBaseline) or python3 missing)")
        }
        print(String(format: "simulated: %.0f s of serving, %.1f req/s, TTFT p50 %.0f ms p95 %.0f ms, TPOT p50 %.1f ms, mean batch %.0f, KV mean %.0f%%, preemptions %d",
                     s.duration, s.requestThroughput, s.ttft.p50 * 1000, s.ttft.p95 * 1000, s.tpot.p50 * 1000, s.batchSize.mean, s.meanKVUsage * 100, s.preemptions))
        // 3. Comparison at equal load.
        print("")
        print("## Batching policies at equal load (\(nc) requests at \(String(format: "%.1f", rate)) req/s; static/dynamic batch \(batchSize), dynamic wait 50 ms)")
        let cwork = try SyntheticWorkload(arrivals: .poisson(rate: rate), count: nc, seed: 11).generate()
        var results: [(String, SimulationResult)] = []
        for p: any BatchingPolicy in [NoBatchingPolicy(), try StaticBatchingPolicy(batchSize: batchSize), try DynamicBatchingPolicy(maxBatchSize: batchSize, maxWait: 0.05), ContinuousBatchingPolicy()] {
            let r = try ServingSimulator.run(cwork, configuration: config(p))
            log(String(format: "  %@: %.2f s wall, %d steps", p.name, r.wallSeconds, r.summary.steps))
            results.append((p.name, r))
        }
        print(SimulationReport.table(results.map(\.1.summary)))
        let c = results.last!.1.summary
        for (name, r) in results.dropLast() {
            print(String(format: "continuous vs %@: request throughput %.2f×, output tokens/s %.2f×, p95 TTFT %.1f× lower", name,
                         c.requestThroughput / r.summary.requestThroughput, c.outputTokenThroughput / r.summary.outputTokenThroughput,
                         r.summary.ttft.p95 / max(c.ttft.p95, 1e-12)))
        }
        if let svg {
            try FileManager.default.createDirectory(atPath: svg, withIntermediateDirectories: true)
            let cdfs = SimulationReport.latencyCDFs(results.map { ($0.0, $0.1.records) })
            let ts = SimulationReport.timeSeriesCharts(results.map { ($0.0, $0.1.timeSeries) }, until: 1.5 * (cwork.last!.arrivalTime - cwork[0].arrivalTime))
            for (file, body) in [("simulator-ttft-cdf.svg", cdfs.ttft), ("simulator-e2e-cdf.svg", cdfs.e2e), ("simulator-kv-usage.svg", ts.kv), ("simulator-queue-depth.svg", ts.queue)] {
                try body.write(toFile: (svg as NSString).appendingPathComponent(file), atomically: true, encoding: .utf8)
            }
        }
    }
}
