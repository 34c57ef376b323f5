import Foundation

/// How close to datasheet peaks a serving engine runs, plus its fixed per-step cost.
///
/// Defaults (calibrate them with ``calibrated(_:from:)`` when you have measurements):
/// - `mfu` 0.5 — model FLOPs utilisation of large prefill GEMMs. Well-tuned
///   transformer matmuls reach 50–60% of dense peak (Megatron-LM and PaLM report
///   46–57% end-to-end MFU in training; inference prefill is similar or lower).
/// - `mbu` 0.6 — model bandwidth utilisation of decode. Databricks' "LLM
///   Inference Performance Engineering: Best Practices" (2023) measured ~60% MBU
///   for Llama-2 70B decode on A100/H100 with TensorRT-LLM.
/// - `stepOverheadSeconds` 2 ms — scheduling, sampling, kernel launches per engine
///   step with CUDA graphs (vLLM profiles show 1–3 ms). An assumption, not a measurement.
public struct RooflineEfficiency: Sendable, Hashable, Codable {
    public var mfu: Double
    public var mbu: Double
    public var stepOverheadSeconds: Double

    public init(mfu: Double = 0.5, mbu: Double = 0.6, stepOverheadSeconds: Double = 0.002) {
        self.mfu = mfu
        self.mbu = mbu
        self.stepOverheadSeconds = stepOverheadSeconds
    }

    public static let `default` = RooflineEfficiency()

    func validate() throws(CostModelError) {
        try Check.fraction(mfu, "MFU", allowZero: false)
        try Check.fraction(mbu, "MBU", allowZero: false)
        try Check.nonNegative(stepOverheadSeconds, "Per-step overhead (s)", max: 10)
    }
}

/// One measured engine step, for calibration.
public struct StepMeasurement: Sendable, Hashable, Codable {
    public var prefillTokens: Int
    public var decodeTokens: Int
    public var contextTokens: Int
    public var seconds: Double

    public init(prefillTokens: Int, decodeTokens: Int, contextTokens: Int, seconds: Double) {
        self.prefillTokens = prefillTokens
        self.decodeTokens = decodeTokens
        self.contextTokens = contextTokens
        self.seconds = seconds
    }
}

/// The cost of one engine step, term by term.
public struct StepBreakdown: Sendable, Hashable, Codable {
    /// FLOPs per GPU.
    public var flops: Double
    /// Bytes read and written per GPU (weights, KV cache).
    public var bytes: Double
    public var computeSeconds: Double
    public var memorySeconds: Double
    public var communicationSeconds: Double
    public var overheadSeconds: Double
    public var totalSeconds: Double
    public var isComputeBound: Bool { computeSeconds > memorySeconds }
}

/// Roofline step-time model of one model replica on `tensorParallel × pipelineParallel` devices.
///
/// One engine step processes `prefillTokens` new prompt tokens and
/// `decodeTokens` sequences that each generate one token, attending to
/// `contextTokens` cached tokens in total. Its time is
///
///     max(FLOPs / (peak × MFU), bytes / (bandwidth × MBU)) + overhead + all-reduce
///
/// per GPU, where FLOPs = 2 × active matmul parameters / TP per token plus
/// attention 4 × layers × H × D / TP per (query, key) pair, and bytes = weights
/// read once per step (MoE: only the experts the step's tokens touch) plus the
/// KV cache read and written. Tensor parallelism adds two ring all-reduces per
/// layer of `[tokens, hidden]` 16-bit activations:
/// 2 (TP − 1) / TP × size / link bandwidth + link latency.
/// Pipeline parallelism returns the latency of one pass through every stage
/// (stages run one after another for a given batch).
///
/// Everything the step time needs is precomputed in `init`, so
/// ``stepTime(prefillTokens:decodeTokens:contextTokens:)`` is a handful of
/// floating-point operations with no allocation — cheap enough for a
/// simulator that calls it millions of times.
public struct RooflineModel: Sendable, Hashable {
    public let model: ModelSpec
    public let gpu: GPUSpec
    public let precision: Precision
    public let kvPrecision: Precision
    public let tensorParallel: Int
    public let pipelineParallel: Int
    public let efficiency: RooflineEfficiency

    // Precomputed per-GPU constants (whole pass over all pipeline stages).
    @usableFromInline let matmulFlopsPerToken: Double
    @usableFromInline let lmHeadFlopsPerToken: Double
    @usableFromInline let attentionFlopsPerPair: Double
    @usableFromInline let denseWeightBytes: Double
    @usableFromInline let expertBytesPerExpert: Double
    @usableFromInline let experts: Double
    @usableFromInline let expertMissFraction: Double
    @usableFromInline let kvBytesPerToken: Double
    @usableFromInline let flopsRate: Double
    @usableFromInline let bytesRate: Double
    @usableFromInline let allReducesPerStep: Double
    @usableFromInline let allReduceSecondsPerByte: Double
    @usableFromInline let allReduceFixedSeconds: Double
    @usableFromInline let activationBytesPerToken: Double
    @usableFromInline let pipelineSecondsPerByte: Double
    @usableFromInline let pipelineFixedSeconds: Double
    @usableFromInline let overhead: Double

    /// - Parameters:
    ///   - model: the architecture being served.
    ///   - gpu: the device each shard runs on (a ``DeviceKind/cpu`` entry allows TP = PP = 1 only).
    ///   - precision: weight precision (sets the bytes read and the compute peak used).
    ///   - kvPrecision: KV-cache precision; defaults to BF16.
    ///   - tensorParallel: GPUs sharing every layer; must divide the attention heads.
    ///   - pipelineParallel: consecutive groups of layers on separate GPUs (or nodes).
    ///   - efficiency: MFU, MBU and per-step overhead.
    ///   - interNodeGBs: link bandwidth between pipeline stages in GB/s (default 50 = 400 Gb/s InfiniBand).
    public init(model: ModelSpec, gpu: GPUSpec, precision: Precision, kvPrecision: Precision = .bf16,
                tensorParallel: Int = 1, pipelineParallel: Int = 1, efficiency: RooflineEfficiency = .default,
                interNodeGBs: Double = 50) throws(CostModelError) {
        let config = ServingConfiguration(weightPrecision: precision, kvPrecision: kvPrecision,
                                          tensorParallel: tensorParallel, pipelineParallel: pipelineParallel)
        try config.validate(for: model)
        try efficiency.validate()
        try Check.positive(interNodeGBs, "Inter-node bandwidth (GB/s)", max: 1e5)
        guard gpu.supports(precision) else {
            throw CostModelError(.unsupported, "\(gpu.name) does not support \(precision.label) weights; pick one of \(gpu.precisions.map(\.label).joined(separator: ", ")).")
        }
        if gpu.kind == .cpu, tensorParallel * pipelineParallel > 1 {
            throw CostModelError(.unsupported, "Parallelism is modelled for GPUs only; use tensorParallel = pipelineParallel = 1 on \(gpu.name).")
        }
        if tensorParallel > 1, gpu.interconnectGBs <= 0 {
            throw CostModelError(.unsupported, "\(gpu.name) has no GPU interconnect in the catalog, so tensor parallelism cannot be modelled; set interconnectGBs.")
        }
        self.model = model
        self.gpu = gpu
        self.precision = precision
        self.kvPrecision = kvPrecision
        self.tensorParallel = tensorParallel
        self.pipelineParallel = pipelineParallel
        self.efficiency = efficiency

        let tp = Double(tensorParallel)
        let bytesPerWeight = precision.bitsPerWeight / 8
        let lmHead = Double(model.vocabSize) * Double(model.hiddenSize)
        matmulFlopsPerToken = 2 * (model.activeMatmulParameters - lmHead) / tp
        lmHeadFlopsPerToken = 2 * lmHead / tp
        attentionFlopsPerPair = 4 * Double(model.layers) * Double(model.attentionHeads * model.headDim) / tp
        // Weights read per step: everything except the input embedding table (a row lookup).
        let expertParams = model.isMixtureOfExperts ? Double(model.layers) * model.parametersPerExpert : 0
        let allExpertParams = expertParams * Double(model.experts)
        let readParams = model.parameterCount - Double(model.vocabSize) * Double(model.hiddenSize) * (model.tiedEmbeddings ? 0 : 1)
        denseWeightBytes = (readParams - allExpertParams) * bytesPerWeight / tp
        expertBytesPerExpert = expertParams * bytesPerWeight / tp
        experts = Double(model.experts)
        expertMissFraction = model.isMixtureOfExperts ? 1 - Double(model.activeExperts) / Double(model.experts) : 0
        kvBytesPerToken = 2 * Double(model.layers) * max(1, Double(model.kvHeads) / tp) * Double(model.headDim) * kvPrecision.kvBytesPerElement
        flopsRate = gpu.peakFLOPS(for: precision) * efficiency.mfu
        bytesRate = gpu.memoryBandwidthGBs * 1e9 * efficiency.mbu
        activationBytesPerToken = Double(model.hiddenSize) * 2
        if tensorParallel > 1 {
            allReducesPerStep = 2 * Double(model.layers)
            allReduceSecondsPerByte = 2 * (tp - 1) / tp / (gpu.interconnectGBs * 1e9)
            allReduceFixedSeconds = gpu.allReduceLatencyMicroseconds * 1e-6
        } else {
            allReducesPerStep = 0
            allReduceSecondsPerByte = 0
            allReduceFixedSeconds = 0
        }
        let hops = Double(pipelineParallel - 1)
        pipelineSecondsPerByte = hops / (interNodeGBs * 1e9)
        pipelineFixedSeconds = hops * 10e-6
        overhead = efficiency.stepOverheadSeconds
    }

    /// Seconds for one engine step (see the type's documentation). Negative counts are treated as zero;
    /// an empty step takes zero seconds.
    @inlinable
    public func stepTime(prefillTokens: Int, decodeTokens: Int, contextTokens: Int) -> Double {
        let p = Double(max(0, prefillTokens)), d = Double(max(0, decodeTokens)), c = Double(max(0, contextTokens))
        let tokens = p + d
        if tokens == 0 { return 0 }
        let sampled = d + (p > 0 ? 1 : 0)
        let flops = matmulFlopsPerToken * tokens + lmHeadFlopsPerToken * sampled + attentionFlopsPerPair * (c + 0.5 * p * p)
        var weightBytes = denseWeightBytes
        if experts > 1 {
            // Expected distinct experts touched per layer by `tokens` tokens routed top-k uniformly.
            let touched = experts * (1 - _pow(expertMissFraction, tokens))
            weightBytes += expertBytesPerExpert * touched
        }
        let bytes = weightBytes + kvBytesPerToken * (c + tokens)
        let roofline = max(flops / flopsRate, bytes / bytesRate)
        let activation = activationBytesPerToken * tokens
        let comm = allReducesPerStep * (allReduceSecondsPerByte * activation + allReduceFixedSeconds)
            + pipelineSecondsPerByte * activation + pipelineFixedSeconds
        return roofline + overhead + comm
    }

    /// The same computation as ``stepTime(prefillTokens:decodeTokens:contextTokens:)``, term by term.
    public func stepBreakdown(prefillTokens: Int, decodeTokens: Int, contextTokens: Int) -> StepBreakdown {
        let p = Double(max(0, prefillTokens)), d = Double(max(0, decodeTokens)), c = Double(max(0, contextTokens))
        let tokens = p + d
        guard tokens > 0 else {
            return StepBreakdown(flops: 0, bytes: 0, computeSeconds: 0, memorySeconds: 0, communicationSeconds: 0, overheadSeconds: 0, totalSeconds: 0)
        }
        let sampled = d + (p > 0 ? 1 : 0)
        let flops = matmulFlopsPerToken * tokens + lmHeadFlopsPerToken * sampled + attentionFlopsPerPair * (c + 0.5 * p * p)
        var weightBytes = denseWeightBytes
        if experts > 1 { weightBytes += expertBytesPerExpert * experts * (1 - _pow(expertMissFraction, tokens)) }
        let bytes = weightBytes + kvBytesPerToken * (c + tokens)
        let activation = activationBytesPerToken * tokens
        let comm = allReducesPerStep * (allReduceSecondsPerByte * activation + allReduceFixedSeconds)
            + pipelineSecondsPerByte * activation + pipelineFixedSeconds
        let total = stepTime(prefillTokens: prefillTokens, decodeTokens: decodeTokens, contextTokens: contextTokens)
        return StepBreakdown(flops: flops, bytes: bytes, computeSeconds: flops / flopsRate, memorySeconds: bytes / bytesRate,
                             communicationSeconds: comm, overheadSeconds: overhead, totalSeconds: total)
    }

    /// Time to first token for one prompt processed alone, in chunks of `chunkTokens` (the
    /// engine's batched-token budget). Excludes queueing.
    public func timeToFirstToken(promptTokens: Int, chunkTokens: Int = 8192) -> Double {
        let prompt = max(1, promptTokens), chunk = max(1, chunkTokens)
        var done = 0, seconds = 0.0
        while done < prompt {
            let n = min(chunk, prompt - done)
            seconds += stepTime(prefillTokens: n, decodeTokens: 0, contextTokens: done)
            done += n
        }
        return seconds
    }

    /// Time per output token for `batch` sequences decoding together, each with `contextTokens` of context.
    public func timePerOutputToken(batch: Int, contextTokens: Int) -> Double {
        let b = max(1, batch)
        return stepTime(prefillTokens: 0, decodeTokens: b, contextTokens: b * max(0, contextTokens))
    }

    /// Output tokens per second of the replica at that batch.
    public func decodeTokensPerSecond(batch: Int, contextTokens: Int) -> Double {
        Double(max(1, batch)) / timePerOutputToken(batch: batch, contextTokens: contextTokens)
    }

    /// A copy with MFU/MBU/overhead replaced.
    public func with(efficiency: RooflineEfficiency) throws(CostModelError) -> RooflineModel {
        try RooflineModel(model: model, gpu: gpu, precision: precision, kvPrecision: kvPrecision,
                          tensorParallel: tensorParallel, pipelineParallel: pipelineParallel, efficiency: efficiency)
    }
}

@usableFromInline func _pow(_ base: Double, _ exponent: Double) -> Double {
    Foundation.pow(base, exponent)
}

extension RooflineEfficiency {
    /// MFU and MBU fitted to measured step times of `model`'s model/GPU/precision.
    ///
    /// Each measurement is classified by the roofline at 100% efficiency: where
    /// compute time exceeds memory time it informs MFU, otherwise MBU. A
    /// measurement's efficiency is the ideal time divided by the measured time
    /// minus the (known) overhead and communication; each estimate is the
    /// median over its regime. A regime with no measurement keeps the value of
    /// `model.efficiency`. The per-step overhead is taken from `model.efficiency`.
    public static func calibrated(_ model: RooflineModel, from measurements: [StepMeasurement]) throws(CostModelError) -> RooflineEfficiency {
        guard !measurements.isEmpty else {
            throw CostModelError(.invalidInput, "Calibration needs at least one measured step; pass measurements of prefill and decode steps.")
        }
        let ideal = try model.with(efficiency: RooflineEfficiency(mfu: 1, mbu: 1, stepOverheadSeconds: model.efficiency.stepOverheadSeconds))
        var mfus: [Double] = [], mbus: [Double] = []
        for (i, m) in measurements.enumerated() {
            try Check.positive(m.seconds, "Measured step \(i) seconds", max: 3600)
            guard m.prefillTokens >= 0, m.decodeTokens >= 0, m.contextTokens >= 0, m.prefillTokens + m.decodeTokens > 0 else {
                throw .invalid("Measured step \(i) token counts", "\(m.prefillTokens)/\(m.decodeTokens)/\(m.contextTokens)",
                               expected: "non-negative with at least one prefill or decode token")
            }
            let b = ideal.stepBreakdown(prefillTokens: m.prefillTokens, decodeTokens: m.decodeTokens, contextTokens: m.contextTokens)
            let busy = m.seconds - b.overheadSeconds - b.communicationSeconds
            guard busy > 0 else {
                throw CostModelError(.invalidInput, "Measured step \(i) (\(m.seconds) s) is shorter than the modelled overhead and communication (\(b.overheadSeconds + b.communicationSeconds) s); lower stepOverheadSeconds or check the measurement.")
            }
            if b.isComputeBound { mfus.append(min(1, b.computeSeconds / busy)) } else { mbus.append(min(1, b.memorySeconds / busy)) }
        }
        func median(_ v: [Double]) -> Double? {
            guard !v.isEmpty else { return nil }
            let s = v.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        return RooflineEfficiency(mfu: median(mfus) ?? model.efficiency.mfu, mbu: median(mbus) ?? model.efficiency.mbu,
                                  stepOverheadSeconds: model.efficiency.stepOverheadSeconds)
    }
}
