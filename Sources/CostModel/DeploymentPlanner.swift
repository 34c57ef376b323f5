import Foundation

/// Knobs of the planner's search. Defaults are what a careful architect would pick first.
public struct PlannerOptions: Sendable, Hashable, Codable {
    /// VM SKUs to consider; `nil` = every SKU in the catalog.
    public var skus: [String]?
    public var precisions: [Precision]
    /// KV-cache precision; `nil` = FP8 when the weights are FP8, otherwise BF16.
    public var kvPrecision: Precision?
    public var gpuMemoryUtilization: Double
    /// Highest average load of a replica relative to its capacity (headroom for bursts).
    public var targetUtilisation: Double
    /// Batched-token budget per step (vLLM `--max-num-batched-tokens`, chunked prefill).
    public var maxBatchedTokens: Int
    /// Most VMs one replica may span with pipeline parallelism (InfiniBand SKUs only).
    public var maxPipelineNodes: Int
    public var efficiency: RooflineEfficiency

    public init(skus: [String]? = nil, precisions: [Precision] = [.bf16, .fp8, .int8, .int4], kvPrecision: Precision? = nil,
                gpuMemoryUtilization: Double = 0.90, targetUtilisation: Double = 0.8, maxBatchedTokens: Int = 8192,
                maxPipelineNodes: Int = 4, efficiency: RooflineEfficiency = .default) {
        self.skus = skus
        self.precisions = precisions
        self.kvPrecision = kvPrecision
        self.gpuMemoryUtilization = gpuMemoryUtilization
        self.targetUtilisation = targetUtilisation
        self.maxBatchedTokens = maxBatchedTokens
        self.maxPipelineNodes = maxPipelineNodes
        self.efficiency = efficiency
    }

    func validate() throws(CostModelError) {
        guard !precisions.isEmpty else { throw CostModelError(.invalidInput, "No precisions to try; give at least one (e.g. bf16).") }
        try Check.fraction(gpuMemoryUtilization, "GPU memory utilisation", allowZero: false)
        try Check.fraction(targetUtilisation, "Target utilisation", allowZero: false)
        try Check.positive(maxBatchedTokens, "Max batched tokens", max: 1 << 20)
        try Check.positive(maxPipelineNodes, "Max pipeline nodes", max: 16)
        try efficiency.validate()
    }
}

/// One feasible deployment.
public struct DeploymentPlan: Sendable, Hashable, Codable {
    public var sku: String
    public var gpu: String
    public var gpusPerVM: Int
    public var tensorParallel: Int
    public var pipelineParallel: Int
    public var gpusPerReplica: Int { tensorParallel * pipelineParallel }
    public var weightPrecision: Precision
    public var kvPrecision: Precision
    /// Concurrent sequences per replica (vLLM `--max-num-seqs`).
    public var maxBatch: Int
    /// Longest sequence accepted (vLLM `--max-model-len`).
    public var maxModelLen: Int
    public var gpuMemoryUtilization: Double
    public var maxBatchedTokens: Int
    public var replicas: Int
    public var vmCount: Int
    /// KV tokens each replica can hold.
    public var kvCapacityTokens: Int
    public var predictedP95TimeToFirstToken: Double
    public var predictedP95TimePerOutputToken: Double
    public var predictedMeanTimePerOutputToken: Double
    /// Average load of each replica relative to its capacity.
    public var replicaUtilisation: Double
    /// Requests per second one replica sustains at `maxBatch`.
    public var replicaCapacityRequestsPerSecond: Double
    public var dollarsPerHour: Double
    /// $/h divided by the workload's tokens (prompt + output) per hour × 10⁶.
    public var dollarsPerMillionTokens: Double
    public var notes: [String]
}

/// Why a candidate was not planned.
public struct RejectedCandidate: Sendable, Hashable, Codable {
    public enum Reason: String, Sendable, Hashable, Codable {
        case noPrice, unsupportedPrecision, doesNotFit, needsInterconnect, contextTooLong, missesTTFT, missesTPOT, unstable
    }
    public var sku: String
    public var precision: Precision?
    public var reason: Reason
    public var detail: String
}

/// The planner's answer: ranked plans, every rejection, and an explanation when nothing fits.
public struct PlanResult: Sendable, Hashable, Codable {
    public var model: String
    public var workload: Workload
    public var slos: ServiceLevelObjectives
    /// Feasible plans, cheapest $/1M tokens first.
    public var plans: [DeploymentPlan]
    public var rejected: [RejectedCandidate]
    /// Set when `plans` is empty: what blocked every candidate and what to change.
    public var explanation: String?
}

/// Searches SKUs × precisions × parallelism × batch sizes for the cheapest
/// deployments that meet a workload's SLOs.
///
/// For each VM SKU and weight precision it tries tensor-parallel degrees that
/// divide the attention heads and fit in one VM, then pipeline parallelism over
/// 2…`maxPipelineNodes` InfiniBand-connected VMs when one VM is too small. For a
/// configuration that fits (``MemoryEstimator``), every batch cap up to the
/// KV-cache limit is scored with the ``RooflineModel``:
///
/// - decode step `t_d(B)` with B sequences at the mean context (prompt + output/2);
/// - replica capacity `X = PP / (t_prefill(mean prompt) + output_mean × t_d(B) / B)` requests/s;
/// - replicas = ⌈λ / (X × target utilisation)⌉, rounded up to fill whole VMs;
/// - p95 TPOT = a decode step that also carries a prefill chunk when more than 5% of steps do, else `t_d(B)`;
/// - p95 TTFT = chunked prefill of the p95 prompt (each chunk sharing its step with B decodes)
///   + one decode step of scheduling delay + 3 × the M/D/1 mean wait for the prefill server.
///
/// These are analytical estimates; the Scheduling module's simulator replays a
/// plan step by step. The cheapest batch cap per (SKU, precision) becomes a plan.
public struct DeploymentPlanner: Sendable {
    public var catalog: Catalog

    public init(catalog: Catalog) { self.catalog = catalog }

    public func plan(model: ModelSpec, workload: Workload, slos: ServiceLevelObjectives,
                     options: PlannerOptions = .init()) throws(CostModelError) -> PlanResult {
        try workload.validate()
        try slos.validate()
        try options.validate()
        let skus: [VMSKU]
        if let names = options.skus {
            guard !names.isEmpty else {
                throw CostModelError(.invalidInput, "The list of SKUs to try is empty; name at least one (e.g. ND96isr_H100_v5) or leave it unset to try the whole catalog.")
            }
            var list: [VMSKU] = []
            for n in names { list.append(try catalog.vmSKU(named: n)) }
            skus = list
        } else {
            skus = catalog.vmSKUs
        }
        var plans: [DeploymentPlan] = []
        var rejected: [RejectedCandidate] = []
        let maxLen = workload.maxSequenceTokens
        for sku in skus {
            guard let price = sku.pricePerHour else {
                rejected.append(.init(sku: sku.name, precision: nil, reason: .noPrice,
                                      detail: "no price in the catalog; add pricePerHour for it in a catalog file (--catalog) to plan with it"))
                continue
            }
            let gpu = try catalog.gpu(named: sku.gpu)
            if maxLen > model.maxContext {
                rejected.append(.init(sku: sku.name, precision: nil, reason: .contextTooLong,
                                      detail: "max prompt + max output = \(maxLen) tokens exceeds \(model.displayName)'s \(model.maxContext)-token context"))
                continue
            }
            for precision in options.precisions {
                guard gpu.supports(precision) else {
                    rejected.append(.init(sku: sku.name, precision: precision, reason: .unsupportedPrecision,
                                          detail: "\(gpu.name) does not support \(precision.label) weights"))
                    continue
                }
                switch bestPlan(model: model, sku: sku, gpu: gpu, price: price, precision: precision,
                                workload: workload, slos: slos, options: options) {
                case .plan(let plan): plans.append(plan)
                case .rejected(let rejection): rejected.append(rejection)
                }
            }
        }
        plans.sort(by: DeploymentPlan.ranksBefore)
        var explanation: String?
        if plans.isEmpty { explanation = Self.explain(rejected, model: model, workload: workload, slos: slos) }
        return PlanResult(model: model.name, workload: workload, slos: slos, plans: plans, rejected: rejected, explanation: explanation)
    }

    private enum Outcome {
        case plan(DeploymentPlan)
        case rejected(RejectedCandidate)
    }

    private struct Layout {
        var tp: Int
        var pp: Int
    }

    private func bestPlan(model: ModelSpec, sku: VMSKU, gpu: GPUSpec, price: Double, precision: Precision,
                          workload: Workload, slos: ServiceLevelObjectives, options: PlannerOptions) -> Outcome {
        let kvPrecision = options.kvPrecision ?? (precision == .fp8 ? .fp8 : .bf16)
        let maxLen = workload.maxSequenceTokens
        var layouts: [Layout] = divisors(model.attentionHeads).filter { $0 <= sku.gpuCount && sku.gpuCount % $0 == 0 }.map { Layout(tp: $0, pp: 1) }
        if options.maxPipelineNodes >= 2, sku.gpuCount > 1 || sku.hasInfiniBand {
            let tpFull = divisors(model.attentionHeads).filter { $0 <= sku.gpuCount }.max() ?? 1
            for pp in 2...options.maxPipelineNodes where pp <= model.layers { layouts.append(Layout(tp: tpFull, pp: pp)) }
        }
        var best: DeploymentPlan?
        var lastMemory: MemoryBreakdown?
        var latencyMiss: RejectedCandidate?
        var needsInterconnect: RejectedCandidate?
        for layout in layouts {
            // A smaller layout that already fits and meets the SLOs beats pipeline over more nodes.
            if layout.pp > 1, best != nil { break }
            if layout.pp > 1, !sku.hasInfiniBand {
                needsInterconnect = .init(sku: sku.name, precision: precision, reason: .needsInterconnect,
                                          detail: "does not fit in one VM and \(sku.name) has no InfiniBand for pipeline parallelism across VMs")
                break
            }
            let config = ServingConfiguration(weightPrecision: precision, kvPrecision: kvPrecision, tensorParallel: layout.tp,
                                              pipelineParallel: layout.pp, gpuMemoryUtilization: options.gpuMemoryUtilization,
                                              maxBatchedTokens: options.maxBatchedTokens)
            guard let memory = try? MemoryEstimator.breakdown(model: model, gpu: gpu, configuration: config) else { continue }
            lastMemory = memory
            guard memory.kvCapacityTokens >= maxLen else { continue }
            guard let roofline = try? RooflineModel(model: model, gpu: gpu, precision: precision, kvPrecision: kvPrecision,
                                                    tensorParallel: layout.tp, pipelineParallel: layout.pp, efficiency: options.efficiency)
            else { continue }
            switch score(model: model, sku: sku, gpu: gpu, price: price, memory: memory, roofline: roofline,
                         workload: workload, slos: slos, options: options) {
            case .plan(let plan):
                if plan.isCheaper(than: best) { best = plan }
            case .rejected(let miss):
                if latencyMiss == nil { latencyMiss = miss }
            }
        }
        if let best { return .plan(best) }
        if let latencyMiss { return .rejected(latencyMiss) }
        if let needsInterconnect { return .rejected(needsInterconnect) }
        let detail: String
        if let m = lastMemory {
            let gib = 1_073_741_824.0
            let need = m.weightBytesPerGPU + m.activationBytesPerGPU + m.overheadBytesPerGPU + Double(maxLen) * m.kvBytesPerTokenPerGPU
            detail = "does not fit even at TP \(m.configuration.tensorParallel) × PP \(m.configuration.pipelineParallel): each GPU needs \(fmt(m.weightBytesPerGPU / gib)) GiB weights + \(fmt((m.activationBytesPerGPU + m.overheadBytesPerGPU) / gib)) GiB activations/runtime + \(fmt(Double(maxLen) * m.kvBytesPerTokenPerGPU / gib, 2)) GiB KV for one \(maxLen)-token sequence = \(fmt(need / gib)) GiB, but only \(fmt(m.usableBytesPerGPU / gib)) GiB is usable (\(pct(options.gpuMemoryUtilization)) of \(fmt(gpu.memoryGiB, 0)) GiB)"
        } else {
            detail = "no tensor-parallel degree divides \(model.attentionHeads) heads within \(sku.gpuCount) GPUs"
        }
        return .rejected(.init(sku: sku.name, precision: precision, reason: .doesNotFit, detail: detail))
    }

    private func score(model: ModelSpec, sku: VMSKU, gpu: GPUSpec, price: Double, memory: MemoryBreakdown, roofline: RooflineModel,
                       workload: Workload, slos: ServiceLevelObjectives, options: PlannerOptions) -> Outcome {
        let tp = memory.configuration.tensorParallel, pp = memory.configuration.pipelineParallel
        let perSequence = Int((workload.prompt.mean + workload.output.mean).rounded(.up))
        let memoryCap = min(1024, memory.kvCapacityTokens / max(1, perSequence))
        guard memoryCap >= 1 else {
            return .rejected(.init(sku: sku.name, precision: memory.configuration.weightPrecision, reason: .doesNotFit,
                                  detail: "KV cache holds \(memory.kvCapacityTokens) tokens, less than one average request (\(perSequence))"))
        }
        var batches = [1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024].filter { $0 < memoryCap }
        batches.append(memoryCap)
        let chunk = options.maxBatchedTokens
        let meanContext = Int(workload.prompt.mean + workload.output.mean / 2)
        let prefillMean = roofline.timeToFirstToken(promptTokens: Int(workload.prompt.mean.rounded()), chunkTokens: chunk)
        let p95Prompt = Int(workload.prompt.p95.rounded(.up))
        let chunksP95 = (p95Prompt + chunk - 1) / chunk
        let replicasPerVM = pp > 1 ? 1 : sku.gpuCount / tp
        let vmsPerReplica = pp
        let tokensPerHour = workload.tokensPerSecond * 3600
        var best: DeploymentPlan?
        var bestMiss: (RejectedCandidate, Double)?
        for b in batches {
            let td = roofline.timePerOutputToken(batch: b, contextTokens: meanContext)
            let perRequest = prefillMean + workload.output.mean * td / Double(b)
            let capacity = Double(pp) / perRequest
            // Hardware described as absurdly slow (a hand-built catalog entry) can make a request take
            // forever; more than a million replicas is not a plan.
            let neededReplicas = (workload.requestsPerSecond / (capacity * options.targetUtilisation)).rounded(.up)
            guard neededReplicas.isFinite, neededReplicas <= 1e6 else { continue }
            let needed = Int(neededReplicas)
            let vms = pp > 1 ? needed * vmsPerReplica : (needed + replicasPerVM - 1) / replicasPerVM
            let replicas = pp > 1 ? needed : vms * replicasPerVM
            let lambda = workload.requestsPerSecond / Double(replicas)
            let rho = lambda / capacity
            let prefillBusy = lambda * prefillMean / Double(pp)
            guard prefillBusy < 1 else { continue }
            // TPOT per request (vLLM's benchmark definition: (E2E − TTFT) / (output − 1)). During a request's
            // decode, some steps also carry another request's prefill chunk and take `mixed` instead of `td`.
            // The number of such steps among its O steps is Poisson with mean O × (fraction of steps with a
            // prefill); the p95 request sees the Poisson 95th percentile of them.
            let meanPrompt = Int(workload.prompt.mean.rounded(.up))
            let chunksPerPrompt = Double((meanPrompt + chunk - 1) / chunk)
            let mixedFraction = min(1, lambda * chunksPerPrompt * td)
            let mixed = roofline.stepTime(prefillTokens: min(chunk, meanPrompt), decodeTokens: b, contextTokens: b * meanContext)
            let outputSteps = max(1, workload.output.mean)
            let k95 = poissonQuantile95(mean: outputSteps * mixedFraction)
            let tpotP95 = td + min(outputSteps, k95) * (mixed - td) / outputSteps
            let tpotMean = td + mixedFraction * (mixed - td)
            // p95 TTFT: chunked prefill of the p95 prompt alongside B decodes, one step of scheduling delay,
            // and queueing for the prefill server (M/D/1 mean wait ρ/(2(1−ρ)) × service, p95 ≈ 3× mean).
            var ttft = 0.0
            var done = 0
            for _ in 0..<chunksP95 {
                let n = min(chunk, p95Prompt - done)
                ttft += roofline.stepTime(prefillTokens: n, decodeTokens: b, contextTokens: b * meanContext + done)
                done += n
            }
            let queue = 3 * prefillBusy / (2 * (1 - prefillBusy)) * prefillMean
            ttft += td + queue
            let dollars = Double(vms) * price
            let precision = memory.configuration.weightPrecision
            if tpotP95 > slos.p95TimePerOutputToken {
                if tpotP95 < (bestMiss?.1 ?? .infinity) {
                    bestMiss = (.init(sku: sku.name, precision: precision, reason: .missesTPOT,
                                      detail: "p95 TPOT misses the \(ms(slos.p95TimePerOutputToken)) SLO at every batch size; the best is \(ms(tpotP95)) at batch \(b) (TP \(tp), PP \(pp)) on \(gpu.name)"), tpotP95)
                }
                continue
            }
            if ttft > slos.p95TimeToFirstToken {
                if bestMiss == nil || bestMiss?.0.reason == .missesTPOT {
                    bestMiss = (.init(sku: sku.name, precision: precision, reason: .missesTTFT,
                                      detail: "p95 TTFT \(ms(ttft)) for a \(p95Prompt)-token prompt at batch \(b) (TP \(tp), PP \(pp)) exceeds the \(ms(slos.p95TimeToFirstToken)) SLO"), ttft)
                }
                continue
            }
            var notes = sku.notes.filter { !$0.lowercased().contains("from azure") && !$0.lowercased().contains("not in the reference") }
            if pp > 1 { notes.append("Pipeline parallelism over \(pp) VMs via \(sku.network)") }
            if precision == .int4 { notes.append("Needs a pre-quantized INT4 checkpoint (AWQ or GPTQ)") }
            if precision == .int8 { notes.append("Needs a pre-quantized INT8 W8A8 checkpoint") }
            let plan = DeploymentPlan(
                sku: sku.name, gpu: gpu.name, gpusPerVM: sku.gpuCount, tensorParallel: tp, pipelineParallel: pp,
                weightPrecision: precision, kvPrecision: memory.configuration.kvPrecision, maxBatch: b,
                maxModelLen: workload.maxSequenceTokens, gpuMemoryUtilization: options.gpuMemoryUtilization,
                maxBatchedTokens: chunk, replicas: replicas, vmCount: vms, kvCapacityTokens: memory.kvCapacityTokens,
                predictedP95TimeToFirstToken: ttft, predictedP95TimePerOutputToken: tpotP95, predictedMeanTimePerOutputToken: tpotMean,
                replicaUtilisation: rho, replicaCapacityRequestsPerSecond: capacity, dollarsPerHour: dollars,
                dollarsPerMillionTokens: dollars / tokensPerHour * 1e6, notes: notes)
            if plan.isCheaper(than: best) { best = plan }
        }
        if let best { return .plan(best) }
        if let bestMiss { return .rejected(bestMiss.0) }
        return .rejected(.init(sku: sku.name, precision: memory.configuration.weightPrecision, reason: .unstable,
                              detail: "prefill alone keeps every replica busy at this load; the queue would grow without bound"))
    }

    static func explain(_ rejected: [RejectedCandidate], model: ModelSpec, workload: Workload, slos: ServiceLevelObjectives) -> String {
        var counts: [RejectedCandidate.Reason: Int] = [:]
        for r in rejected { counts[r.reason, default: 0] += 1 }
        var parts: [String] = []
        if let n = counts[.doesNotFit] { parts.append("\(n) candidate(s) do not fit in GPU memory (try INT4/FP8, fewer max tokens or a larger SKU)") }
        if let n = counts[.missesTPOT] { parts.append("\(n) miss the p95 TPOT SLO of \(ms(slos.p95TimePerOutputToken)) (relax it or use faster-memory GPUs such as H100/H200/MI300X)") }
        if let n = counts[.missesTTFT] { parts.append("\(n) miss the p95 TTFT SLO of \(ms(slos.p95TimeToFirstToken)) (relax it or shorten prompts)") }
        if let n = counts[.noPrice] { parts.append("\(n) SKU(s) have no price (add pricePerHour in a catalog file)") }
        if let n = counts[.needsInterconnect] { parts.append("\(n) need pipeline parallelism across VMs without InfiniBand") }
        if let n = counts[.contextTooLong] { parts.append("\(n) reject max prompt + max output = \(workload.maxSequenceTokens) tokens above the model's \(model.maxContext)-token context") }
        if let n = counts[.unsupportedPrecision] { parts.append("\(n) use a precision the GPU does not support") }
        if let n = counts[.unstable] { parts.append("\(n) cannot keep up with \(fmt(workload.requestsPerSecond, 2)) requests/s") }
        return "No deployment of \(model.displayName) meets this workload and these SLOs: " + parts.joined(separator: "; ") + "."
    }
}

func ms(_ seconds: Double) -> String {
    seconds >= 1 ? fmt(seconds, 2) + " s" : fmt(seconds * 1000, 1) + " ms"
}

extension DeploymentPlan {
    /// The ranking order: cost per million tokens, then p95 time per output token, then — so that
    /// equal-cost plans (two SKUs with the same price, or a duplicated catalog entry) always come out
    /// in the same order — fewer GPUs per replica, the SKU name, the precision and the parallel layout.
    static func ranksBefore(_ a: DeploymentPlan, _ b: DeploymentPlan) -> Bool {
        if a.dollarsPerMillionTokens != b.dollarsPerMillionTokens { return a.dollarsPerMillionTokens < b.dollarsPerMillionTokens }
        if a.predictedP95TimePerOutputToken != b.predictedP95TimePerOutputToken {
            return a.predictedP95TimePerOutputToken < b.predictedP95TimePerOutputToken
        }
        if a.gpusPerReplica != b.gpusPerReplica { return a.gpusPerReplica < b.gpusPerReplica }
        if a.sku != b.sku { return a.sku < b.sku }
        let pa = Precision.allCases.firstIndex(of: a.weightPrecision) ?? 0, pb = Precision.allCases.firstIndex(of: b.weightPrecision) ?? 0
        if pa != pb { return pa < pb }
        if a.tensorParallel != b.tensorParallel { return a.tensorParallel < b.tensorParallel }
        return a.maxBatch < b.maxBatch
    }

    /// Lower $/h wins; equal cost goes to the lower p95 TPOT.
    func isCheaper(than other: DeploymentPlan?) -> Bool {
        guard let other else { return true }
        if dollarsPerHour != other.dollarsPerHour { return dollarsPerHour < other.dollarsPerHour }
        return predictedP95TimePerOutputToken < other.predictedP95TimePerOutputToken
    }
}

/// The smallest k with P(Poisson(mean) ≤ k) ≥ 0.95 (normal approximation above mean 100).
func poissonQuantile95(mean: Double) -> Double {
    guard mean > 0 else { return 0 }
    if mean > 100 { return (mean + 1.645 * mean.squareRoot()).rounded(.up) }
    var term = _exp(-mean), cdf = term, k = 0.0
    while cdf < 0.95, k < 1000 {
        k += 1
        term *= mean / k
        cdf += term
    }
    return k
}

func _exp(_ x: Double) -> Double { Foundation.exp(x) }
