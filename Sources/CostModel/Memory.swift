/// How a model is served on a group of GPUs: precisions, parallelism and the
/// engine settings that decide how much memory is left for the KV cache.
///
/// Defaults follow vLLM: 90% of GPU memory usable, KV in the weights'
/// 16-bit format, 16-token KV blocks, 8,192 batched tokens per step.
public struct ServingConfiguration: Sendable, Hashable, Codable {
    public var weightPrecision: Precision
    public var kvPrecision: Precision
    public var tensorParallel: Int
    public var pipelineParallel: Int
    /// Fraction of each GPU's memory the engine may use (vLLM `--gpu-memory-utilization`, default 0.90).
    public var gpuMemoryUtilization: Double
    /// Tokens processed in one step; sizes the activation peak (vLLM `--max-num-batched-tokens`).
    public var maxBatchedTokens: Int
    /// Per-GPU CUDA context, framework and CUDA-graph memory. The reference
    /// gives 500 MB – 2 GB; the default takes the upper end, 2 GiB.
    public var runtimeOverheadGiB: Double
    /// KV-cache block size in tokens (vLLM default 16); sequences round up to whole blocks.
    public var blockSize: Int

    public init(weightPrecision: Precision = .bf16, kvPrecision: Precision = .bf16, tensorParallel: Int = 1,
                pipelineParallel: Int = 1, gpuMemoryUtilization: Double = 0.90, maxBatchedTokens: Int = 8192,
                runtimeOverheadGiB: Double = 2.0, blockSize: Int = 16) {
        self.weightPrecision = weightPrecision
        self.kvPrecision = kvPrecision
        self.tensorParallel = tensorParallel
        self.pipelineParallel = pipelineParallel
        self.gpuMemoryUtilization = gpuMemoryUtilization
        self.maxBatchedTokens = maxBatchedTokens
        self.runtimeOverheadGiB = runtimeOverheadGiB
        self.blockSize = blockSize
    }

    public var gpuCount: Int { tensorParallel * pipelineParallel }

    func validate(for model: ModelSpec) throws(CostModelError) {
        try Check.positive(tensorParallel, "Tensor-parallel degree", max: 64)
        try Check.positive(pipelineParallel, "Pipeline-parallel degree", max: 64)
        guard model.attentionHeads % tensorParallel == 0 else {
            throw CostModelError(.unsupported, "Tensor-parallel degree \(tensorParallel) does not divide \(model.displayName)'s \(model.attentionHeads) attention heads; use a divisor such as \(divisors(model.attentionHeads).filter { $0 <= 16 }.map(String.init).joined(separator: ", ")).")
        }
        guard pipelineParallel <= model.layers else {
            throw .invalid("Pipeline-parallel degree", "\(pipelineParallel)", expected: "at most the \(model.layers) layers of \(model.displayName)")
        }
        try Check.fraction(gpuMemoryUtilization, "GPU memory utilisation", allowZero: false)
        try Check.positive(maxBatchedTokens, "Max batched tokens", max: 1 << 22)
        try Check.nonNegative(runtimeOverheadGiB, "Runtime overhead (GiB)", max: 1024)
        try Check.positive(blockSize, "KV block size", max: 4096)
    }
}

func divisors(_ n: Int) -> [Int] { (1...max(1, n)).filter { n % $0 == 0 } }

/// Where each byte of GPU memory goes when a model is served (per GPU unless named total).
public struct MemoryBreakdown: Sendable, Hashable, Codable {
    public var model: String
    public var gpu: String
    public var configuration: ServingConfiguration
    /// All weights at the chosen precision, scale overhead included.
    public var weightBytesTotal: Double
    public var weightBytesPerGPU: Double
    /// KV bytes of one token for the whole model (2 × layers × KV heads × head dim × bytes).
    public var kvBytesPerToken: Double
    /// KV bytes of one token held by each GPU (heads split by TP, layers by PP; replicated when TP > KV heads).
    public var kvBytesPerTokenPerGPU: Double
    public var activationBytesPerGPU: Double
    public var overheadBytesPerGPU: Double
    public var gpuBytes: Double
    /// GPU memory × utilisation.
    public var usableBytesPerGPU: Double
    /// What remains for the KV cache on each GPU (negative when the model does not fit).
    public var kvCapacityBytesPerGPU: Double

    /// True when weights, activations and overhead leave room for at least one KV block.
    public var fits: Bool { kvCapacityTokens >= configuration.blockSize }

    /// Tokens of KV cache the GPU group can hold.
    public var kvCapacityTokens: Int {
        guard kvCapacityBytesPerGPU > 0, kvBytesPerTokenPerGPU > 0 else { return 0 }
        let tokens = (kvCapacityBytesPerGPU / kvBytesPerTokenPerGPU).rounded(.down)
        let blocks = (tokens / Double(configuration.blockSize)).rounded(.down)
        return Int(min(blocks * Double(configuration.blockSize), Double(Int32.max)))
    }

    /// Sequences of `contextTokens` tokens that fit at once (each rounded up to whole KV blocks).
    public func maxConcurrentSequences(contextTokens: Int) throws(CostModelError) -> Int {
        try Check.positive(contextTokens, "Context length", max: 1 << 24)
        let block = configuration.blockSize
        let rounded = (contextTokens + block - 1) / block * block
        return kvCapacityTokens / rounded
    }

    /// Memory the serving process needs per GPU for `sequences` sequences of `contextTokens`.
    public func requiredBytesPerGPU(sequences: Int, contextTokens: Int) -> Double {
        weightBytesPerGPU + activationBytesPerGPU + overheadBytesPerGPU
            + Double(sequences) * Double(contextTokens) * kvBytesPerTokenPerGPU
    }
}

/// Memory arithmetic for serving: weights, KV cache, activations, overhead.
public enum MemoryEstimator {
    /// Weight bytes at `precision` using the stored bits per weight (scales included).
    public static func weightBytes(_ model: ModelSpec, _ precision: Precision) -> Double {
        model.parameterCount * precision.bitsPerWeight / 8
    }

    /// The reference table's rule of thumb: nominal parameters × nominal bytes (decimal GB = 10⁹ bytes).
    public static func ruleOfThumbGB(_ model: ModelSpec, _ precision: Precision) -> Double {
        model.nominalParameters * precision.nominalBytesPerParameter / 1e9
    }

    /// KV bytes of one request of `tokens` tokens (GQA-aware).
    public static func kvBytes(_ model: ModelSpec, tokens: Int, precision: Precision) -> Double {
        model.kvBytesPerToken(precision) * Double(tokens)
    }

    /// Peak activation memory per GPU for one step of `tokens` tokens.
    ///
    /// Largest live tensors of one layer in 16-bit: the gate and up projections
    /// `[tokens, 2·I/TP]` (× active experts), Q/K/V `[tokens, (H + 2·Hkv)·D/TP]` and
    /// two residual-stream copies `[tokens, 2·hidden]`, plus FP32 logits for up to 256
    /// sampled rows `[256, vocab/TP]`. A planning estimate: engines measure theirs by a
    /// profiling run at start-up.
    public static func activationBytes(_ model: ModelSpec, tokens: Int, tensorParallel: Int) -> Double {
        let tp = Double(tensorParallel)
        let mlp = 2 * Double(model.intermediateSize) * Double(model.activeExperts) / tp
        let qkv = Double((model.attentionHeads + 2 * model.kvHeads) * model.headDim) / tp
        let perToken = (mlp + qkv + 2 * Double(model.hiddenSize)) * 2
        let logits = Double(min(tokens, 256)) * Double(model.vocabSize) / tp * 4
        return Double(tokens) * perToken + logits
    }

    /// The memory breakdown of serving `model` on `gpu` with `configuration`.
    public static func breakdown(model: ModelSpec, gpu: GPUSpec, configuration: ServingConfiguration = .init()) throws(CostModelError) -> MemoryBreakdown {
        try configuration.validate(for: model)
        guard gpu.supports(configuration.weightPrecision) else {
            throw CostModelError(.unsupported, "\(gpu.name) does not support \(configuration.weightPrecision.label) weights in mainstream engines; pick one of \(gpu.precisions.map(\.label).joined(separator: ", ")).")
        }
        if gpu.kind == .cpu, configuration.gpuCount > 1 {
            throw CostModelError(.unsupported, "Tensor/pipeline parallelism is modelled for GPUs only; use tensorParallel = pipelineParallel = 1 on \(gpu.name).")
        }
        let tp = configuration.tensorParallel, pp = configuration.pipelineParallel
        let weights = weightBytes(model, configuration.weightPrecision)
        let kvHeadsPerGPU = max(1.0, Double(model.kvHeads) / Double(tp))
        let layersPerGPU = (Double(model.layers) / Double(pp)).rounded(.up)
        let kvPerTokenPerGPU = 2 * layersPerGPU * kvHeadsPerGPU * Double(model.headDim) * configuration.kvPrecision.kvBytesPerElement
        let usable = gpu.memoryBytes * configuration.gpuMemoryUtilization
        let activation = activationBytes(model, tokens: configuration.maxBatchedTokens, tensorParallel: tp)
        let overhead = configuration.runtimeOverheadGiB * 1_073_741_824
        let weightsPerGPU = weights / Double(tp * pp)
        return MemoryBreakdown(
            model: model.name, gpu: gpu.name, configuration: configuration,
            weightBytesTotal: weights, weightBytesPerGPU: weightsPerGPU,
            kvBytesPerToken: model.kvBytesPerToken(configuration.kvPrecision), kvBytesPerTokenPerGPU: kvPerTokenPerGPU,
            activationBytesPerGPU: activation, overheadBytesPerGPU: overhead, gpuBytes: gpu.memoryBytes,
            usableBytesPerGPU: usable, kvCapacityBytesPerGPU: usable - weightsPerGPU - activation - overhead)
    }

    /// The smallest tensor-parallel degree (a divisor of the attention heads, at most
    /// `maxGPUs`) at which `sequences` sequences of `contextTokens` fit; `nil` if none does.
    public static func smallestTensorParallel(
        model: ModelSpec, gpu: GPUSpec, configuration: ServingConfiguration = .init(),
        maxGPUs: Int = 8, contextTokens: Int? = nil, sequences: Int = 1
    ) throws(CostModelError) -> Int? {
        try Check.positive(maxGPUs, "Maximum GPUs", max: 64)
        try Check.positive(sequences, "Sequences", max: 1 << 20)
        let context = contextTokens ?? model.maxContext
        try Check.positive(context, "Context length", max: 1 << 24)
        for tp in divisors(model.attentionHeads) where tp <= maxGPUs {
            if gpu.kind == .cpu, tp > 1 { break }
            var config = configuration
            config.tensorParallel = tp
            config.pipelineParallel = 1
            let b = try breakdown(model: model, gpu: gpu, configuration: config)
            if b.fits, try b.maxConcurrentSequences(contextTokens: context) >= sequences { return tp }
        }
        return nil
    }
}
