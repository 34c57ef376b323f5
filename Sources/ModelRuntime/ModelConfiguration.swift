import Quantization

/// The hyperparameters of a Llama-family decoder, read from a GGUF file's `<arch>.*` metadata or a
/// Hugging Face `config.json`.
///
/// Every size the forward pass relies on is validated here once (positive, heads dividing the
/// hidden size, query heads a multiple of KV heads, an even head dimension), so the kernels never
/// see an inconsistent shape.
public struct ModelConfiguration: Sendable, Hashable, CustomStringConvertible {
    /// Architectures this runtime runs: the plain Llama layout (pre-norm, RMSNorm, RoPE, GQA, SwiGLU).
    public static let supportedArchitectures = ["llama"]

    /// The GGUF `general.architecture` (or the Hugging Face `model_type`), e.g. `llama`.
    public var architecture: String
    /// `embedding_length`: the residual stream width.
    public var hiddenSize: Int
    /// `feed_forward_length`: the SwiGLU inner width.
    public var intermediateSize: Int
    /// `block_count`: decoder layers.
    public var layerCount: Int
    /// `attention.head_count`: query heads.
    public var headCount: Int
    /// `attention.head_count_kv`: key/value heads (GQA when fewer than ``headCount``).
    public var kvHeadCount: Int
    /// Width of one head (`hiddenSize / headCount` unless the file says otherwise).
    public var headDimension: Int
    /// Dimensions of each head that RoPE rotates (`rope.dimension_count`, normally ``headDimension``).
    public var ropeDimensionCount: Int
    /// `rope.freq_base` (θ).
    public var ropeTheta: Float
    /// `attention.layer_norm_rms_epsilon`.
    public var rmsNormEpsilon: Float
    /// Tokens in the vocabulary (rows of the embedding table).
    public var vocabularySize: Int
    /// `context_length`: the longest sequence the model was trained for.
    public var contextLength: Int
    /// True when the output projection reuses the token embedding table (no `output.weight`).
    public var tiedEmbeddings: Bool

    public init(
        architecture: String = "llama", hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int,
        kvHeadCount: Int, headDimension: Int? = nil, ropeDimensionCount: Int? = nil, ropeTheta: Float = 10_000,
        rmsNormEpsilon: Float = 1e-5, vocabularySize: Int, contextLength: Int, tiedEmbeddings: Bool = false
    ) throws(ModelRuntimeError) {
        self.architecture = architecture
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        let hd = headDimension ?? (headCount > 0 ? hiddenSize / headCount : 0)
        self.headDimension = hd
        self.ropeDimensionCount = ropeDimensionCount ?? hd
        self.ropeTheta = ropeTheta
        self.rmsNormEpsilon = rmsNormEpsilon
        self.vocabularySize = vocabularySize
        self.contextLength = contextLength
        self.tiedEmbeddings = tiedEmbeddings
        try validate()
    }

    /// Query heads per KV head.
    public var groupSize: Int { headCount / kvHeadCount }
    /// Width of the concatenated query heads (`headCount · headDimension`).
    public var queryWidth: Int { headCount * headDimension }
    /// Width of the concatenated key (or value) heads (`kvHeadCount · headDimension`).
    public var kvWidth: Int { kvHeadCount * headDimension }
    /// Bytes of Float32 K and V per token over all layers.
    public var kvBytesPerToken: Int { 2 * layerCount * kvWidth * MemoryLayout<Float>.size }

    public var description: String {
        "\(architecture): \(layerCount) layers, hidden \(hiddenSize), FFN \(intermediateSize), \(headCount) heads / \(kvHeadCount) KV heads × \(headDimension), vocab \(vocabularySize), context \(contextLength), RoPE θ \(ropeTheta)\(tiedEmbeddings ? ", tied output" : "")"
    }

    func validate() throws(ModelRuntimeError) {
        func need(_ ok: Bool, _ what: String) throws(ModelRuntimeError) {
            if !ok { throw ModelRuntimeError(.invalidConfiguration, "model configuration: \(what)") }
        }
        try need(Self.supportedArchitectures.contains(architecture),
                 "architecture '\(architecture)' is not supported; this runtime runs \(Self.supportedArchitectures.joined(separator: ", "))")
        try need(hiddenSize > 0, "hidden size \(hiddenSize) must be positive")
        try need(intermediateSize > 0, "feed-forward size \(intermediateSize) must be positive")
        try need(layerCount > 0 && layerCount <= 1024, "layer count \(layerCount) must be between 1 and 1024")
        try need(headCount > 0 && kvHeadCount > 0, "head counts \(headCount)/\(kvHeadCount) must be positive")
        try need(headCount % kvHeadCount == 0, "\(headCount) query heads are not a multiple of \(kvHeadCount) KV heads")
        try need(headDimension > 0 && headDimension % 2 == 0 && headDimension <= 512, "head dimension \(headDimension) must be even and at most 512")
        try need(ropeDimensionCount > 0 && ropeDimensionCount <= headDimension && ropeDimensionCount % 2 == 0,
                 "RoPE dimension count \(ropeDimensionCount) must be even and at most the head dimension \(headDimension)")
        try need(groupSize <= 64, "\(groupSize) query heads per KV head is more than the attention kernel takes (64)")
        try need(ropeTheta.isFinite && ropeTheta > 0, "RoPE base \(ropeTheta) must be positive")
        try need(rmsNormEpsilon.isFinite && rmsNormEpsilon > 0, "RMSNorm epsilon \(rmsNormEpsilon) must be positive")
        try need(vocabularySize > 0 && vocabularySize < 1 << 24, "vocabulary size \(vocabularySize) must be between 1 and 2²⁴")
        try need(contextLength > 0 && contextLength <= 1 << 24, "context length \(contextLength) must be between 1 and 2²⁴")
    }
}

extension ModelConfiguration {
    /// Reads the configuration from a GGUF file's metadata (`general.architecture` and `<arch>.*`).
    ///
    /// Throws ``ModelRuntimeError/Code/unsupportedArchitecture`` for an architecture other than
    /// ``supportedArchitectures``, and ``ModelRuntimeError/Code/invalidConfiguration`` naming a key
    /// that is missing or mistyped.
    public init(gguf file: GGUFFile) throws(ModelRuntimeError) {
        let meta = file.metadata
        guard case let .string(arch)? = meta["general.architecture"] else {
            throw ModelRuntimeError(.invalidConfiguration, "the file has no general.architecture string; is it a model GGUF file?")
        }
        guard Self.supportedArchitectures.contains(arch) else {
            throw ModelRuntimeError(.unsupportedArchitecture,
                "architecture '\(arch)' is not supported; this runtime runs \(Self.supportedArchitectures.joined(separator: ", ")) (Llama-layout GGUF files such as Llama 2/3, SmolLM, TinyLlama, Mistral converted as llama)")
        }
        func int(_ key: String, required: Bool = true) throws(ModelRuntimeError) -> Int? {
            guard let v = meta["\(arch).\(key)"] else {
                if required { throw ModelRuntimeError(.invalidConfiguration, "metadata key '\(arch).\(key)' is missing") }
                return nil
            }
            guard let i = v.intValue, i >= 0, i <= Int(Int32.max) else {
                throw ModelRuntimeError(.invalidConfiguration, "metadata key '\(arch).\(key)' is \(v) (\(v.type)); expected a non-negative integer")
            }
            return i
        }
        func float(_ key: String) throws(ModelRuntimeError) -> Float? {
            guard let v = meta["\(arch).\(key)"] else { return nil }
            switch v {
            case let .float32(f): return f
            case let .float64(d): return Float(d)
            default:
                if let i = v.intValue { return Float(i) }
                throw ModelRuntimeError(.invalidConfiguration, "metadata key '\(arch).\(key)' is \(v) (\(v.type)); expected a number")
            }
        }
        let hidden = try int("embedding_length")!
        let heads = try int("attention.head_count")!
        let kvHeads = try int("attention.head_count_kv", required: false) ?? heads
        let headDim = try int("attention.key_length", required: false) ?? (heads > 0 ? hidden / heads : 0)
        var vocab = try int("vocab_size", required: false)
        let embedding = file.tensors.first { $0.name == "token_embd.weight" }
        if vocab == nil, let embedding, embedding.dimensions.count == 2 { vocab = embedding.dimensions[1] }
        if vocab == nil, case let .array(_, tokens)? = meta["tokenizer.ggml.tokens"] { vocab = tokens.count }
        guard let vocab else {
            throw ModelRuntimeError(.invalidConfiguration, "no vocabulary size: neither '\(arch).vocab_size', token_embd.weight nor tokenizer.ggml.tokens is present")
        }
        try self.init(
            architecture: arch, hiddenSize: hidden, intermediateSize: try int("feed_forward_length")!,
            layerCount: try int("block_count")!, headCount: heads, kvHeadCount: kvHeads, headDimension: headDim,
            ropeDimensionCount: try int("rope.dimension_count", required: false),
            ropeTheta: try float("rope.freq_base") ?? 10_000,
            rmsNormEpsilon: try float("attention.layer_norm_rms_epsilon") ?? 1e-5,
            vocabularySize: vocab, contextLength: try int("context_length")!,
            tiedEmbeddings: !file.tensors.contains { $0.name == "output.weight" })
        if let s = meta["\(arch).rope.scaling.type"], case let .string(kind) = s, kind != "none" {
            throw ModelRuntimeError(.invalidConfiguration, "RoPE scaling '\(kind)' is not implemented; this runtime runs unscaled RoPE only")
        }
    }
}
