import Foundation
import Quantization
import TensorCore
import Tokenization

/// A Llama-layout decoder loaded from a GGUF file: its configuration, its weights in the forms the
/// fast CPU path runs (quantized matrices repacked for the C kernels, norms as Float32), and the
/// tokenizer the file describes.
///
/// The model is immutable and `Sendable`; run it with a ``CPUForwardPass`` (one per thread that
/// runs steps) over a ``KVCache``, or generate text with ``TextGenerator``.
///
/// ```swift
/// let model = try LlamaModel(contentsOf: "SmolLM2-135M-Instruct.Q4_1.gguf")
/// print(model.configuration)            // llama: 30 layers, hidden 576, …
/// let ids = model.tokenizer.encode("Hello")
/// ```
public final class LlamaModel: Sendable {
    public let configuration: ModelConfiguration
    /// The tokenizer described by the file's `tokenizer.ggml.*` metadata.
    public let tokenizer: Tokenizer
    /// The parsed file (memory-mapped; the embedding table is read from it in place).
    public let file: GGUFFile
    /// The path the model was loaded from.
    public let path: String
    /// The file's `tokenizer.chat_template` (Jinja source), if any.
    public let chatTemplateSource: String?
    let weights: LlamaWeights

    /// Loads a GGUF file: parses it, checks the architecture and every tensor, repacks the quantized
    /// projections for the kernels, and reads the tokenizer.
    ///
    /// - Parameter progress: called with (layers done, layers in all) while loading.
    /// - Throws: ``ModelRuntimeError`` — `.io` when the file cannot be read, `.invalidFile` when it is
    ///   not a valid GGUF file (truncated, corrupt, hostile), `.unsupportedArchitecture`,
    ///   `.missingTensor`, `.tensorShape`, `.unsupportedTensorType`, `.invalidConfiguration`.
    public convenience init(contentsOf path: String, progress: (@Sendable (Int, Int) -> Void)? = nil) throws(ModelRuntimeError) {
        let file: GGUFFile
        do {
            file = try GGUFFile(contentsOf: path)
        } catch let e as QuantizationError {
            throw ModelRuntimeError(e.code == .io ? .io : .invalidFile, "cannot load '\(path)': \(e.message)", underlying: e.underlying)
        } catch {
            throw ModelRuntimeError(.invalidFile, "cannot load '\(path)'", underlying: "\(error)")
        }
        try self.init(file: file, path: path, progress: progress)
    }

    /// Loads a model from an already parsed GGUF file (for example one built in memory).
    public init(file: GGUFFile, path: String = "<memory>", progress: (@Sendable (Int, Int) -> Void)? = nil) throws(ModelRuntimeError) {
        let config = try ModelConfiguration(gguf: file)
        let tokenizer = try Tokenizer(gguf: file)
        guard tokenizer.vocabularySize == config.vocabularySize else {
            throw ModelRuntimeError(.invalidConfiguration,
                "the tokenizer has \(tokenizer.vocabularySize) tokens but the embedding table has \(config.vocabularySize) rows; the file is inconsistent")
        }
        weights = try GGUFWeightLoader(file: file, config: config, progress: progress).load()
        configuration = config
        self.tokenizer = tokenizer
        self.file = file
        self.path = path
        chatTemplateSource = file.metadata["tokenizer.chat_template"]?.stringValue
    }

    /// Bytes of projection weights one forward step streams (the decode step's memory traffic, less
    /// the embedding rows, norms and KV).
    public var projectionBytes: Int { weights.projectionBytes }

    /// A short name for reports: the file's `general.name` or its file name.
    public var displayName: String {
        if let n = file.metadata["general.name"]?.stringValue, !n.isEmpty { return n }
        return (path as NSString).lastPathComponent
    }
}

extension Tokenizer {
    /// The tokenizer a GGUF file describes in its `tokenizer.ggml.*` and `tokenizer.chat_template` metadata.
    public convenience init(gguf file: GGUFFile) throws(ModelRuntimeError) {
        let configuration = try TokenizerConfiguration(gguf: file)
        do {
            try self.init(configuration)
        } catch {
            throw ModelRuntimeError(.invalidConfiguration, "the file's tokenizer cannot be built: \(error.message)", underlying: error.code.rawValue)
        }
    }
}

extension TokenizerConfiguration {
    /// Reads `tokenizer.ggml.*` metadata (model, pre-tokenizer, tokens, token types, merges, scores,
    /// special token ids, add-BOS/EOS flags).
    public init(gguf file: GGUFFile) throws(ModelRuntimeError) {
        let m = file.metadata
        func string(_ k: String) -> String? { m[k]?.stringValue }
        func int(_ k: String) -> Int? { m[k]?.intValue }
        func bool(_ k: String) -> Bool? { if case let .bool(b)? = m[k] { b } else { nil } }
        func array(_ k: String) -> [GGUFValue] { if case let .array(_, v)? = m[k] { v } else { [] } }
        guard let modelName = string("tokenizer.ggml.model") else {
            throw ModelRuntimeError(.invalidConfiguration, "the file has no tokenizer.ggml.model; it carries no tokenizer")
        }
        guard let model = TokenizerConfiguration.Model(rawValue: modelName) else {
            throw ModelRuntimeError(.invalidConfiguration,
                "tokenizer model '\(modelName)' is not supported; supported: gpt2 (byte-level BPE), llama (SentencePiece)")
        }
        var tokens: [String] = []
        for v in array("tokenizer.ggml.tokens") {
            guard case let .string(s) = v else { throw ModelRuntimeError(.invalidConfiguration, "tokenizer.ggml.tokens holds a \(v.type), not strings") }
            tokens.append(s)
        }
        guard !tokens.isEmpty else { throw ModelRuntimeError(.invalidConfiguration, "tokenizer.ggml.tokens is missing or empty") }
        let types = array("tokenizer.ggml.token_type").map { Int32(truncatingIfNeeded: $0.intValue ?? 1) }
        var merges: [String] = []
        for v in array("tokenizer.ggml.merges") { if case let .string(s) = v { merges.append(s) } }
        let scores: [Float] = array("tokenizer.ggml.scores").map { if case let .float32(f) = $0 { f } else { 0 } }
        var endOfTurn: [Int] = []
        for k in ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] { if let i = int(k) { endOfTurn.append(i) } }
        // As llama.cpp does: control tokens whose text ends a turn in a known chat format also end generation.
        let endTexts: Set<String> = ["<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_turn|>", "<end_of_turn>", "<|endoftext|>", "<|end|>", "<EOT>", "<|return|>"]
        for (i, t) in tokens.enumerated() where endTexts.contains(t) && (i < types.count ? types[i] == 3 || types[i] == 4 : false) && !endOfTurn.contains(i) {
            endOfTurn.append(i)
        }
        self.init(
            model: model, preTokenizer: string("tokenizer.ggml.pre") ?? "default", tokens: tokens, tokenTypes: types,
            merges: merges, scores: scores, bosTokenID: int("tokenizer.ggml.bos_token_id"), eosTokenID: int("tokenizer.ggml.eos_token_id"),
            unknownTokenID: int("tokenizer.ggml.unknown_token_id"), paddingTokenID: int("tokenizer.ggml.padding_token_id"),
            endOfTurnTokenIDs: endOfTurn, addBOS: bool("tokenizer.ggml.add_bos_token") ?? (model == .sentencePiece || (string("tokenizer.ggml.pre") ?? "").hasPrefix("llama")),
            addEOS: bool("tokenizer.ggml.add_eos_token") ?? false,
            addSpacePrefix: bool("tokenizer.ggml.add_space_prefix") ?? (model == .sentencePiece))
    }
}
