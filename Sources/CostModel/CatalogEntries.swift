/// A transformer architecture and its published size.
///
/// Parameter counts are computed from the architecture (``parameterCount``)
/// and checked against ``publishedParameters`` in the tests. Shapes follow the
/// Hugging Face `config.json` names: a layer holds Q `[hidden, H·D]`,
/// K and V `[hidden, Hkv·D]`, O `[H·D, hidden]`, and a gated MLP
/// (gate, up `[hidden, I]`, down `[I, hidden]`) per expert.
public struct ModelSpec: Sendable, Hashable, Codable {
    /// Catalog key, lower-case (e.g. `llama-3.1-70b`).
    public var name: String
    public var displayName: String
    public var aliases: [String]
    /// Hugging Face repository id, when the weights are public.
    public var huggingFaceID: String?
    public var layers: Int
    public var hiddenSize: Int
    public var attentionHeads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var intermediateSize: Int
    public var vocabSize: Int
    public var tiedEmbeddings: Bool
    /// Q/K/V projections carry a bias (Qwen2).
    public var attentionBias: Bool
    /// Number of MLP experts per layer (1 for dense models).
    public var experts: Int
    /// Experts each token is routed to (1 for dense models).
    public var activeExperts: Int
    /// Longest context the model supports, in tokens.
    public var maxContext: Int
    /// Total parameters published by the model's authors.
    public var publishedParameters: Double
    /// The size in the model's name / the reference's table (e.g. 70e9).
    public var nominalParameters: Double
    /// True when the architecture is a public estimate, not a published fact.
    public var estimate: Bool
    public var source: String
    public var date: String

    public init(
        name: String, displayName: String? = nil, aliases: [String] = [], huggingFaceID: String? = nil,
        layers: Int, hiddenSize: Int, attentionHeads: Int, kvHeads: Int, headDim: Int? = nil,
        intermediateSize: Int, vocabSize: Int, tiedEmbeddings: Bool = false, attentionBias: Bool = false,
        experts: Int = 1, activeExperts: Int = 1, maxContext: Int,
        publishedParameters: Double? = nil, nominalParameters: Double? = nil, estimate: Bool = false,
        source: String, date: String
    ) {
        self.name = name
        self.displayName = displayName ?? name
        self.aliases = aliases
        self.huggingFaceID = huggingFaceID
        self.layers = layers
        self.hiddenSize = hiddenSize
        self.attentionHeads = attentionHeads
        self.kvHeads = kvHeads
        self.headDim = headDim ?? (attentionHeads > 0 ? hiddenSize / attentionHeads : 0)
        self.intermediateSize = intermediateSize
        self.vocabSize = vocabSize
        self.tiedEmbeddings = tiedEmbeddings
        self.attentionBias = attentionBias
        self.experts = experts
        self.activeExperts = activeExperts
        self.maxContext = maxContext
        self.estimate = estimate
        self.source = source
        self.date = date
        self.publishedParameters = 0
        self.nominalParameters = 0
        let computed = parameterCount
        self.publishedParameters = publishedParameters ?? computed
        self.nominalParameters = nominalParameters ?? self.publishedParameters
    }

    // MARK: Parameter counts (computed from the architecture)

    /// Parameters of one layer's attention block: Q, K, V, O (+ Q/K/V bias).
    public var attentionParametersPerLayer: Double {
        let q = Double(hiddenSize) * Double(attentionHeads * headDim)
        let kv = 2 * Double(hiddenSize) * Double(kvHeads * headDim)
        let o = Double(attentionHeads * headDim) * Double(hiddenSize)
        let bias = attentionBias ? Double(attentionHeads * headDim + 2 * kvHeads * headDim) : 0
        return q + kv + o + bias
    }

    /// Parameters of one expert's gated MLP (gate, up, down).
    public var parametersPerExpert: Double { 3 * Double(hiddenSize) * Double(intermediateSize) }

    /// Router and the two RMSNorm weight vectors of one layer.
    var smallParametersPerLayer: Double {
        (experts > 1 ? Double(hiddenSize * experts) : 0) + 2 * Double(hiddenSize)
    }

    /// Input embedding + output head (shared when tied) + final norm.
    public var embeddingParameters: Double {
        Double(vocabSize) * Double(hiddenSize) * (tiedEmbeddings ? 1 : 2) + Double(hiddenSize)
    }

    /// Total parameters computed from the architecture.
    public var parameterCount: Double {
        let perLayer = attentionParametersPerLayer + Double(experts) * parametersPerExpert + smallParametersPerLayer
        return Double(layers) * perLayer + embeddingParameters
    }

    /// Parameters touched per token (MoE: only the active experts).
    public var activeParameterCount: Double {
        let perLayer = attentionParametersPerLayer + Double(activeExperts) * parametersPerExpert + smallParametersPerLayer
        return Double(layers) * perLayer + embeddingParameters
    }

    /// Parameters multiplied per token excluding the input embedding lookup
    /// (the output head is a matmul and is included).
    public var activeMatmulParameters: Double {
        let perLayer = attentionParametersPerLayer + Double(activeExperts) * parametersPerExpert + smallParametersPerLayer
        return Double(layers) * perLayer + Double(vocabSize) * Double(hiddenSize)
    }

    public var isMixtureOfExperts: Bool { experts > 1 }

    /// KV-cache bytes for one token: 2 (K and V) × layers × KV heads × head dim × bytes.
    /// GQA-aware: only the `kvHeads` heads are stored.
    public func kvBytesPerToken(_ precision: Precision) -> Double {
        2 * Double(layers) * Double(kvHeads) * Double(headDim) * precision.kvBytesPerElement
    }
}

/// What kind of device a ``GPUSpec`` describes.
public enum DeviceKind: String, Sendable, Hashable, Codable { case gpu, cpu }

/// An accelerator (or a CPU socket) with its datasheet figures.
///
/// Throughputs are dense (no structured sparsity). Bandwidths are in GB/s
/// (10⁹ bytes/s); ``interconnectGBs`` is per direction, per GPU.
public struct GPUSpec: Sendable, Hashable, Codable {
    public var name: String
    public var aliases: [String]
    public var vendor: String
    public var kind: DeviceKind
    /// Memory in GiB (2³⁰ bytes), as marketed.
    public var memoryGiB: Double
    public var memoryBandwidthGBs: Double
    public var fp32TFLOPS: Double
    /// Dense FP16/BF16 tensor throughput.
    public var fp16TFLOPS: Double
    /// Dense FP8 throughput; `nil` when FP8 runs weight-only at the FP16 rate.
    public var fp8TFLOPS: Double?
    /// Dense INT8 throughput; `nil` when INT8 runs weight-only at the FP16 rate.
    public var int8TOPS: Double?
    public var interconnect: String
    public var interconnectGBs: Double
    /// Fixed latency of one all-reduce over the interconnect.
    public var allReduceLatencyMicroseconds: Double
    /// Weight precisions a mainstream serving engine supports on this device.
    public var precisions: [Precision]
    public var source: String
    public var date: String

    public init(
        name: String, aliases: [String] = [], vendor: String, kind: DeviceKind = .gpu, memoryGiB: Double,
        memoryBandwidthGBs: Double, fp32TFLOPS: Double, fp16TFLOPS: Double, fp8TFLOPS: Double? = nil,
        int8TOPS: Double? = nil, interconnect: String, interconnectGBs: Double, allReduceLatencyMicroseconds: Double,
        precisions: [Precision] = Precision.allCases, source: String, date: String
    ) {
        self.name = name
        self.aliases = aliases
        self.vendor = vendor
        self.kind = kind
        self.memoryGiB = memoryGiB
        self.memoryBandwidthGBs = memoryBandwidthGBs
        self.fp32TFLOPS = fp32TFLOPS
        self.fp16TFLOPS = fp16TFLOPS
        self.fp8TFLOPS = fp8TFLOPS
        self.int8TOPS = int8TOPS
        self.interconnect = interconnect
        self.interconnectGBs = interconnectGBs
        self.allReduceLatencyMicroseconds = allReduceLatencyMicroseconds
        self.precisions = precisions
        self.source = source
        self.date = date
    }

    public var memoryBytes: Double { memoryGiB * 1_073_741_824 }

    /// Peak dense matmul throughput (FLOP/s) for weights in `precision`.
    /// FP8/INT8 use their own tensor rate where the device has one; weight-only
    /// formats (INT4, or FP8/INT8 without hardware support) compute at FP16.
    public func peakFLOPS(for precision: Precision) -> Double {
        switch precision {
        case .fp32: fp32TFLOPS * 1e12
        case .fp16, .bf16, .int4: fp16TFLOPS * 1e12
        case .fp8: (fp8TFLOPS ?? fp16TFLOPS) * 1e12
        case .int8: (int8TOPS ?? fp16TFLOPS) * 1e12
        }
    }

    public func supports(_ precision: Precision) -> Bool { precisions.contains(precision) }
}

/// An Azure VM size with GPUs.
public struct VMSKU: Sendable, Hashable, Codable {
    /// Azure size name without the `Standard_` prefix (e.g. `NC24ads_A100_v4`).
    public var name: String
    /// NC, ND or NV.
    public var series: String
    /// Catalog name of the GPU.
    public var gpu: String
    public var gpuCount: Int
    public var vramPerGPUGB: Double
    public var vcpus: Int?
    public var ramGB: Double?
    /// Pay-as-you-go price; `nil` when unpublished ("Contact Microsoft").
    public var pricePerHour: Double?
    /// Node-to-node network (InfiniBand or Ethernet).
    public var network: String
    public var useCase: String
    public var notes: [String]
    public var regions: [String]
    public var source: String
    public var date: String

    public init(
        name: String, series: String, gpu: String, gpuCount: Int, vramPerGPUGB: Double, vcpus: Int? = nil,
        ramGB: Double? = nil, pricePerHour: Double? = nil, network: String = "Ethernet", useCase: String = "",
        notes: [String] = [], regions: [String] = [], source: String, date: String
    ) {
        self.name = name
        self.series = series
        self.gpu = gpu
        self.gpuCount = gpuCount
        self.vramPerGPUGB = vramPerGPUGB
        self.vcpus = vcpus
        self.ramGB = ramGB
        self.pricePerHour = pricePerHour
        self.network = network
        self.useCase = useCase
        self.notes = notes
        self.regions = regions
        self.source = source
        self.date = date
    }

    /// The name Azure CLI and ARM expect (`Standard_…`).
    public var azureSize: String { "Standard_" + name }
    public var totalVRAMGB: Double { vramPerGPUGB * Double(gpuCount) }
    public var hasInfiniBand: Bool { network.lowercased().contains("infiniband") }
}

/// Pay-as-you-go token prices of a hosted model, in USD per 1M tokens.
public struct APIPrice: Sendable, Hashable, Codable {
    public var model: String
    public var inputPer1M: Double
    public var cachedInputPer1M: Double?
    public var outputPer1M: Double
    /// Fraction taken off by the Batch API (0.5 = 50%).
    public var batchDiscount: Double
    public var source: String
    public var date: String

    public init(model: String, inputPer1M: Double, cachedInputPer1M: Double? = nil, outputPer1M: Double,
                batchDiscount: Double = 0.5, source: String, date: String) {
        self.model = model
        self.inputPer1M = inputPer1M
        self.cachedInputPer1M = cachedInputPer1M
        self.outputPer1M = outputPer1M
        self.batchDiscount = batchDiscount
        self.source = source
        self.date = date
    }
}

/// Provisioned-throughput (PTU) parameters of a hosted model.
///
/// Capacity: one PTU processes ``tokensPerMinutePerPTU`` weighted tokens per
/// minute, where an output token counts ``outputTokenWeight`` input tokens.
public struct PTUProfile: Sendable, Hashable, Codable {
    public var name: String
    public var model: String
    public var pricePerPTUHour: Double
    public var monthlyReservationPerPTU: Double?
    public var yearlyReservationPerPTUMonth: Double?
    public var minimumPTUs: Int
    public var increment: Int
    public var tokensPerMinutePerPTU: Double
    public var outputTokenWeight: Double
    public var source: String
    public var date: String

    public init(name: String, model: String, pricePerPTUHour: Double, monthlyReservationPerPTU: Double? = nil,
                yearlyReservationPerPTUMonth: Double? = nil, minimumPTUs: Int, increment: Int,
                tokensPerMinutePerPTU: Double, outputTokenWeight: Double, source: String, date: String) {
        self.name = name
        self.model = model
        self.pricePerPTUHour = pricePerPTUHour
        self.monthlyReservationPerPTU = monthlyReservationPerPTU
        self.yearlyReservationPerPTUMonth = yearlyReservationPerPTUMonth
        self.minimumPTUs = minimumPTUs
        self.increment = increment
        self.tokensPerMinutePerPTU = tokensPerMinutePerPTU
        self.outputTokenWeight = outputTokenWeight
        self.source = source
        self.date = date
    }
}

/// Which part of a bill a cost lever acts on.
public enum LeverTarget: String, Sendable, Hashable, Codable { case api, gpu }

/// One cost-optimisation lever with the reference's savings range.
public struct CostLeverSpec: Sendable, Hashable, Codable {
    public var name: String
    public var displayName: String
    public var appliesTo: LeverTarget
    public var savingsLow: Double
    public var savingsHigh: Double
    public var effort: String
    public var tradeOff: String
    public var source: String
    public var date: String

    public init(name: String, displayName: String, appliesTo: LeverTarget, savingsLow: Double, savingsHigh: Double,
                effort: String, tradeOff: String, source: String, date: String) {
        self.name = name
        self.displayName = displayName
        self.appliesTo = appliesTo
        self.savingsLow = savingsLow
        self.savingsHigh = savingsHigh
        self.effort = effort
        self.tradeOff = tradeOff
        self.source = source
        self.date = date
    }
}
