import TensorCore

/// The hyperparameters of a Llama-family model, decoded from a Hugging Face `config.json`.
///
/// Accepted architectures (``Architecture``) are the plain Llama layout: RMSNorm
/// before attention and MLP, grouped-query attention with RoPE, a SwiGLU MLP
/// (`hidden_act` must be `silu`), and the tensor names ``tensorNames(layer:)``
/// lists. `qwen2` differs only in having q/k/v biases; `mistral` only in an
/// optional sliding window (``slidingWindow``), which a runtime must apply or
/// refuse.
///
/// Defaults follow `transformers`' `LlamaConfig`: `num_key_value_heads` =
/// `num_attention_heads`, `head_dim` = `hidden_size / num_attention_heads`,
/// `rope_theta` = 10000, `tie_word_embeddings` = false, `attention_bias` and
/// `mlp_bias` = false (Qwen2 always has q/k/v biases). A missing required
/// field or a value that cannot describe a model (zero heads, `hidden_size`
/// not divisible by heads when `head_dim` is absent, key/value heads that do
/// not divide the heads, an odd head dimension RoPE cannot pair) throws
/// ``ModelRuntimeError/Code/invalidConfiguration`` naming the field and the
/// file; an unknown `model_type` throws
/// ``ModelRuntimeError/Code/unsupportedArchitecture``.
///
/// ```swift
/// let config = try HuggingFaceLlamaConfig(contentsOf: "SmolLM2-135M/config.json")
/// config.numAttentionHeads   // 9
/// config.headDim             // 64
/// ```
public struct HuggingFaceLlamaConfig: Sendable, Hashable {
    /// The `model_type` values this reader accepts.
    public enum Architecture: String, Sendable, Hashable, CaseIterable {
        case llama
        case mistral
        case qwen2

        /// The `architectures` entry `transformers` writes for each.
        public var causalLMClassName: String {
            switch self {
            case .llama: "LlamaForCausalLM"
            case .mistral: "MistralForCausalLM"
            case .qwen2: "Qwen2ForCausalLM"
            }
        }
    }

    public var architecture: Architecture
    /// The file's `architectures` list, as written (often `["LlamaForCausalLM"]`).
    public var architectures: [String]
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var headDim: Int
    public var rmsNormEps: Double
    public var ropeTheta: Double
    /// nil for `rope_scaling: null`, absent, or `rope_type: "default"`.
    public var ropeScaling: HuggingFaceRopeScaling?
    public var maxPositionEmbeddings: Int
    public var vocabSize: Int
    public var tieWordEmbeddings: Bool
    /// `bos_token_id` as a list (a single id becomes one element; null or absent is empty).
    public var bosTokenIds: [Int]
    /// `eos_token_id` as a list (Llama 3 instruct models list several).
    public var eosTokenIds: [Int]
    /// `torch_dtype` (or the newer `dtype`), e.g. `"bfloat16"`; nil when absent.
    public var torchDtype: String?
    /// `hidden_act`; always `"silu"` once decoded.
    public var hiddenAct: String
    /// Whether q_proj, k_proj and v_proj have biases (`attention_bias`; always true for Qwen2).
    public var attentionQKVBias: Bool
    /// Whether o_proj has a bias (`attention_bias` for Llama; never for Qwen2 and Mistral).
    public var attentionOutputBias: Bool
    /// Whether gate/up/down projections have biases (`mlp_bias`).
    public var mlpBias: Bool
    /// The attention window for Mistral/Qwen2 sliding-window attention; nil when attention is full.
    public var slidingWindow: Int?

    /// The file or name error messages use.
    public var source: String

    /// Reads and decodes `config.json` at `path`.
    ///
    /// - Parameter supportedRopeScaling: the `rope_scaling` kinds the caller
    ///   implements. A config with another kind throws
    ///   ``ModelRuntimeError/Code/invalidConfiguration``. The default is none:
    ///   running a Llama 3.x model with unscaled RoPE would be silently wrong.
    public init(contentsOf path: String, supportedRopeScaling: Set<HuggingFaceRopeScaling.Kind> = []) throws(ModelRuntimeError) {
        let bytes = try SafetensorsCheckpoint.readSmallFile(path, limit: 16 << 20)
        try self.init(jsonBytes: bytes, source: path, supportedRopeScaling: supportedRopeScaling)
    }

    /// Decodes the bytes of a `config.json`; `source` names it in error messages.
    public init(jsonBytes: [UInt8], source: String = "config.json", supportedRopeScaling: Set<HuggingFaceRopeScaling.Kind> = []) throws(ModelRuntimeError) {
        self.source = source
        let json: SafetensorsJSONValue
        do {
            json = try SafetensorsJSONParser.parse(jsonBytes)
        } catch {
            throw ModelRuntimeError(.invalidConfiguration, "config '\(source)': invalid JSON at byte \(error.offset): \(error.message)")
        }
        guard case let .object(object) = json else {
            throw ModelRuntimeError(.invalidConfiguration, "config '\(source)' is \(json.kindName), not a JSON object")
        }
        let fields = HuggingFaceConfigFields(object: object, source: source)

        architectures = try fields.stringList("architectures") ?? []
        architecture = try Self.resolveArchitecture(fields.string("model_type"), architectures, source: source)

        hiddenSize = try fields.positiveInt("hidden_size")
        intermediateSize = try fields.positiveInt("intermediate_size")
        numHiddenLayers = try fields.positiveInt("num_hidden_layers")
        numAttentionHeads = try fields.positiveInt("num_attention_heads")
        numKeyValueHeads = try fields.positiveInt("num_key_value_heads", default: numAttentionHeads)
        guard numAttentionHeads % numKeyValueHeads == 0 else {
            throw fields.invalid("num_key_value_heads", "is \(numKeyValueHeads), which does not divide num_attention_heads (\(numAttentionHeads)); grouped-query attention needs whole groups")
        }
        if let explicit = try fields.optionalInt("head_dim") {
            guard explicit > 0 else { throw fields.invalid("head_dim", "is \(explicit); it must be a positive integer") }
            headDim = explicit
        } else {
            guard hiddenSize % numAttentionHeads == 0 else {
                throw fields.invalid("hidden_size", "is \(hiddenSize), not divisible by num_attention_heads (\(numAttentionHeads)), and head_dim is absent; set head_dim")
            }
            headDim = hiddenSize / numAttentionHeads
        }
        guard headDim % 2 == 0 else {
            throw fields.invalid("head_dim", "is \(headDim) (explicit or hidden_size / num_attention_heads); RoPE rotates pairs, so it must be even")
        }
        rmsNormEps = try fields.positiveDouble("rms_norm_eps")
        ropeTheta = try fields.positiveDouble("rope_theta", default: 10_000)
        maxPositionEmbeddings = try fields.positiveInt("max_position_embeddings")
        vocabSize = try fields.positiveInt("vocab_size")
        tieWordEmbeddings = try fields.bool("tie_word_embeddings", default: false)
        bosTokenIds = try fields.tokenIds("bos_token_id", vocabSize: vocabSize)
        eosTokenIds = try fields.tokenIds("eos_token_id", vocabSize: vocabSize)
        let newDtype = try fields.string("dtype")
        torchDtype = try fields.string("torch_dtype") ?? newDtype
        hiddenAct = try fields.string("hidden_act") ?? "silu"
        guard hiddenAct == "silu" else {
            throw fields.invalid("hidden_act", "is '\(hiddenAct)'; the Llama layout this runtime implements uses a SwiGLU MLP with 'silu'")
        }
        let attentionBias = try fields.bool("attention_bias", default: false)
        switch architecture {
        case .qwen2:
            attentionQKVBias = true
            attentionOutputBias = false
        case .llama, .mistral:
            attentionQKVBias = attentionBias
            attentionOutputBias = attentionBias
        }
        mlpBias = try fields.bool("mlp_bias", default: false)

        let window = try fields.optionalInt("sliding_window")
        let useWindow = try fields.bool("use_sliding_window", default: architecture != .qwen2)
        if let window, useWindow {
            guard window > 0 else { throw fields.invalid("sliding_window", "is \(window); it must be positive or null") }
            slidingWindow = window
        } else {
            slidingWindow = nil
        }

        ropeScaling = try HuggingFaceRopeScaling.decode(fields, maxPositionEmbeddings: maxPositionEmbeddings)
        if let ropeScaling, !supportedRopeScaling.contains(ropeScaling.kind) {
            let supported = supportedRopeScaling.isEmpty ? "none" : supportedRopeScaling.map(\.rawValue).sorted().joined(separator: ", ")
            throw fields.invalid("rope_scaling", "has rope_type '\(ropeScaling.kind.rawValue)', which this runtime does not implement (it implements: \(supported))")
        }
    }

    private static func resolveArchitecture(_ modelType: String?, _ architectures: [String], source: String) throws(ModelRuntimeError) -> Architecture {
        let supported = Architecture.allCases.map(\.rawValue).joined(separator: ", ")
        if let modelType {
            guard let architecture = Architecture(rawValue: modelType) else {
                throw ModelRuntimeError(.unsupportedArchitecture, "config '\(source)': model_type '\(modelType)' is not supported; supported: \(supported)")
            }
            return architecture
        }
        for name in architectures {
            if let architecture = Architecture.allCases.first(where: { $0.causalLMClassName == name }) { return architecture }
        }
        let named = architectures.isEmpty ? "no model_type and no architectures" : "no model_type and architectures \(architectures)"
        throw ModelRuntimeError(.unsupportedArchitecture, "config '\(source)' has \(named); supported model_type values: \(supported)")
    }
}

/// A `rope_scaling` entry of a `config.json`, decoded but not applied.
///
/// The runtime decides what it implements via
/// `HuggingFaceLlamaConfig(contentsOf:supportedRopeScaling:)`.
public enum HuggingFaceRopeScaling: Sendable, Hashable {
    /// Positions divided by `factor`.
    case linear(factor: Double)
    /// NTK-aware scaling that grows with the sequence length.
    case dynamic(factor: Double, originalMaxPositionEmbeddings: Int?)
    /// Llama 3.1+ frequency-dependent scaling (the fields `transformers` reads).
    case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositionEmbeddings: Int)
    /// YaRN (Qwen2.5 long-context configs); `attentionFactor` nil means `transformers`' default `0.1·ln(factor)+1`.
    case yarn(factor: Double, originalMaxPositionEmbeddings: Int, betaFast: Double, betaSlow: Double, attentionFactor: Double?)

    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case linear, dynamic, llama3, yarn
    }

    public var kind: Kind {
        switch self {
        case .linear: .linear
        case .dynamic: .dynamic
        case .llama3: .llama3
        case .yarn: .yarn
        }
    }

    public var factor: Double {
        switch self {
        case let .linear(factor), let .dynamic(factor, _), let .llama3(factor, _, _, _), let .yarn(factor, _, _, _, _): factor
        }
    }

    static func decode(_ fields: HuggingFaceConfigFields, maxPositionEmbeddings: Int) throws(ModelRuntimeError) -> HuggingFaceRopeScaling? {
        guard let value = fields.object["rope_scaling"] else { return nil }
        let entries: SafetensorsJSONObject
        switch value {
        case .null: return nil
        case let .object(object): entries = object
        default: throw fields.invalid("rope_scaling", "is \(value.kindName); it must be an object or null")
        }
        let scaling = HuggingFaceConfigFields(object: entries, source: fields.source, prefix: "rope_scaling.")
        // `rope_type` is current; `type` is the older spelling.
        let legacyType = try scaling.string("type")
        guard let type = try scaling.string("rope_type") ?? legacyType else {
            throw fields.invalid("rope_scaling", "has no rope_type; expected one of \(Kind.allCases.map(\.rawValue).joined(separator: ", ")) or null")
        }
        if type == "default" { return nil }
        guard let kind = Kind(rawValue: type) else {
            throw fields.invalid("rope_scaling", "has rope_type '\(type)', which this reader does not decode; known: \(Kind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let factor = try scaling.positiveDouble("factor")
        switch kind {
        case .linear:
            return .linear(factor: factor)
        case .dynamic:
            return .dynamic(factor: factor, originalMaxPositionEmbeddings: try scaling.optionalInt("original_max_position_embeddings"))
        case .llama3:
            let low = try scaling.positiveDouble("low_freq_factor")
            let high = try scaling.positiveDouble("high_freq_factor")
            guard high > low else {
                throw scaling.invalid("high_freq_factor", "is \(high), not greater than low_freq_factor (\(low))")
            }
            return .llama3(
                factor: factor, lowFreqFactor: low, highFreqFactor: high,
                originalMaxPositionEmbeddings: try scaling.positiveInt("original_max_position_embeddings")
            )
        case .yarn:
            return .yarn(
                factor: factor,
                originalMaxPositionEmbeddings: try scaling.positiveInt("original_max_position_embeddings", default: maxPositionEmbeddings),
                betaFast: try scaling.positiveDouble("beta_fast", default: 32),
                betaSlow: try scaling.positiveDouble("beta_slow", default: 1),
                attentionFactor: try scaling.optionalPositiveDouble("attention_factor")
            )
        }
    }
}

/// Typed access to the fields of a config object, with errors that name the field and the file.
struct HuggingFaceConfigFields {
    let object: SafetensorsJSONObject
    let source: String
    var prefix = ""

    func invalid(_ field: String, _ problem: String) -> ModelRuntimeError {
        ModelRuntimeError(.invalidConfiguration, "config '\(source)': field '\(prefix)\(field)' \(problem)")
    }

    /// The value, treating JSON null as absent.
    private func value(_ key: String) -> SafetensorsJSONValue? {
        if case .null? = object[key] { return nil }
        return object[key]
    }

    func optionalInt(_ key: String) throws(ModelRuntimeError) -> Int? {
        guard let value = value(key) else { return nil }
        guard case let .integer(i) = value else { throw invalid(key, "is \(value.kindName); it must be an integer") }
        return i
    }

    func positiveInt(_ key: String, default fallback: Int? = nil) throws(ModelRuntimeError) -> Int {
        guard let i = try optionalInt(key) ?? fallback else { throw invalid(key, "is missing; it is required") }
        guard i > 0 else { throw invalid(key, "is \(i); it must be a positive integer") }
        return i
    }

    func optionalPositiveDouble(_ key: String) throws(ModelRuntimeError) -> Double? {
        guard let value = value(key) else { return nil }
        let d: Double
        switch value {
        case let .integer(i): d = Double(i)
        case let .double(x): d = x
        default: throw invalid(key, "is \(value.kindName); it must be a number")
        }
        guard d > 0, d.isFinite else { throw invalid(key, "is \(d); it must be a positive finite number") }
        return d
    }

    func positiveDouble(_ key: String, default fallback: Double? = nil) throws(ModelRuntimeError) -> Double {
        guard let d = try optionalPositiveDouble(key) ?? fallback else { throw invalid(key, "is missing; it is required") }
        return d
    }

    func bool(_ key: String, default fallback: Bool) throws(ModelRuntimeError) -> Bool {
        guard let value = value(key) else { return fallback }
        guard case let .bool(b) = value else { throw invalid(key, "is \(value.kindName); it must be true or false") }
        return b
    }

    func string(_ key: String) throws(ModelRuntimeError) -> String? {
        guard let value = value(key) else { return nil }
        guard case let .string(s) = value else { throw invalid(key, "is \(value.kindName); it must be a string") }
        return s
    }

    func stringList(_ key: String) throws(ModelRuntimeError) -> [String]? {
        guard let value = value(key) else { return nil }
        guard case let .array(items) = value else { throw invalid(key, "is \(value.kindName); it must be a list of strings") }
        var strings: [String] = []
        for item in items {
            guard case let .string(s) = item else { throw invalid(key, "holds \(item.kindName); it must be a list of strings") }
            strings.append(s)
        }
        return strings
    }

    /// An id or a list of ids, each in `0..<vocabSize`.
    func tokenIds(_ key: String, vocabSize: Int) throws(ModelRuntimeError) -> [Int] {
        guard let value = value(key) else { return [] }
        let items: [SafetensorsJSONValue]
        if case let .array(list) = value { items = list } else { items = [value] }
        var ids: [Int] = []
        for item in items {
            guard case let .integer(id) = item else { throw invalid(key, "holds \(item.kindName); it must be a token id or a list of token ids") }
            guard (0..<vocabSize).contains(id) else { throw invalid(key, "holds \(id), outside the vocabulary 0..<\(vocabSize)") }
            ids.append(id)
        }
        return ids
    }
}
