import Foundation
import Testing
import TensorCore
@testable import ModelRuntime

@Suite("Hugging Face Llama config.json")
struct SafetensorsConfigTests {
    typealias F = SafetensorsFixtures

    static func base() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: F.path("smollm2-like-config.json")))) as! [String: Any]
    }

    /// The SmolLM2-like config with `key` set to the JSON `literal` (nil removes it).
    static func variant(_ edits: [(String, String?)]) throws -> [UInt8] {
        var json = try base()
        for (key, literal) in edits {
            if let literal {
                json[key] = try JSONSerialization.jsonObject(with: Data(literal.utf8), options: .fragmentsAllowed)
            } else {
                json.removeValue(forKey: key)
            }
        }
        return [UInt8](try JSONSerialization.data(withJSONObject: json))
    }

    @Test("a SmolLM2-like config decodes with the values in the file and the documented defaults")
    func smolLM2() throws {
        let config = try HuggingFaceLlamaConfig(contentsOf: F.path("smollm2-like-config.json"))
        #expect(config.architecture == .llama)
        #expect(config.architectures == ["LlamaForCausalLM"])
        #expect(config.hiddenSize == 576)
        #expect(config.intermediateSize == 1536)
        #expect(config.numHiddenLayers == 30)
        #expect(config.numAttentionHeads == 9)
        #expect(config.numKeyValueHeads == 3)
        #expect(config.headDim == 64)
        #expect(config.rmsNormEps == 1e-5)
        #expect(config.ropeTheta == 100_000)
        #expect(config.ropeScaling == nil)
        #expect(config.maxPositionEmbeddings == 8192)
        #expect(config.vocabSize == 49152)
        #expect(config.tieWordEmbeddings)
        #expect(config.bosTokenIds == [0] && config.eosTokenIds == [0])
        #expect(config.torchDtype == "bfloat16")
        #expect(!config.attentionQKVBias && !config.attentionOutputBias && !config.mlpBias)
        #expect(config.slidingWindow == nil)
        #expect(config.source.hasSuffix("smollm2-like-config.json"))
    }

    @Test("absent optional fields take transformers' defaults")
    func defaults() throws {
        let config = try HuggingFaceLlamaConfig(jsonBytes: Self.variant([
            ("num_key_value_heads", nil), ("rope_theta", nil), ("tie_word_embeddings", nil), ("rope_scaling", nil),
            ("bos_token_id", nil), ("eos_token_id", "null"), ("torch_dtype", nil), ("hidden_act", nil),
        ]))
        #expect(config.numKeyValueHeads == 9)
        #expect(config.ropeTheta == 10_000)
        #expect(!config.tieWordEmbeddings)
        #expect(config.bosTokenIds.isEmpty && config.eosTokenIds.isEmpty)
        #expect(config.torchDtype == nil)
        #expect(config.hiddenAct == "silu")
        #expect(config.expectedTensors.last?.name == "lm_head.weight")
    }

    @Test("an explicit head_dim wins, even when hidden_size is not divisible by the heads; eos may be a list; dtype is the newer torch_dtype")
    func explicitValues() throws {
        let config = try HuggingFaceLlamaConfig(jsonBytes: Self.variant([
            ("hidden_size", "580"), ("head_dim", "128"), ("eos_token_id", "[2, 7]"), ("torch_dtype", nil), ("dtype", "\"float16\""),
        ]))
        #expect(config.headDim == 128)
        #expect(config.eosTokenIds == [2, 7])
        #expect(config.torchDtype == "float16")
        #expect(config.expectedTensors(layer: 0).first { $0.name.hasSuffix("q_proj.weight") }?.shape == [9 * 128, 580])
    }

    static let invalid: [(edits: [(String, String?)], field: String)] = [
        ([("hidden_size", nil)], "hidden_size"),
        ([("intermediate_size", nil)], "intermediate_size"),
        ([("num_hidden_layers", "0")], "num_hidden_layers"),
        ([("num_attention_heads", "0")], "num_attention_heads"),
        ([("num_attention_heads", nil)], "num_attention_heads"),
        ([("hidden_size", "577")], "hidden_size"),
        ([("num_key_value_heads", "4")], "num_key_value_heads"),
        ([("num_key_value_heads", "0")], "num_key_value_heads"),
        ([("num_key_value_heads", "-3")], "num_key_value_heads"),
        ([("head_dim", "0")], "head_dim"),
        ([("head_dim", "63")], "head_dim"),
        ([("hidden_size", "594"), ("num_attention_heads", "18"), ("num_key_value_heads", "6")], "head_dim"),
        ([("rms_norm_eps", nil)], "rms_norm_eps"),
        ([("rms_norm_eps", "-1e-5")], "rms_norm_eps"),
        ([("rms_norm_eps", "\"1e-5\"")], "rms_norm_eps"),
        ([("rope_theta", "0")], "rope_theta"),
        ([("max_position_embeddings", nil)], "max_position_embeddings"),
        ([("vocab_size", "0")], "vocab_size"),
        ([("vocab_size", "49152.5")], "vocab_size"),
        ([("tie_word_embeddings", "\"yes\"")], "tie_word_embeddings"),
        ([("bos_token_id", "49152")], "bos_token_id"),
        ([("eos_token_id", "[0, \"x\"]")], "eos_token_id"),
        ([("eos_token_id", "-1")], "eos_token_id"),
        ([("hidden_act", "\"gelu\"")], "hidden_act"),
        ([("rope_scaling", "5")], "rope_scaling"),
        ([("rope_scaling", "{\"rope_type\": \"longrope\", \"factor\": 4}")], "rope_scaling"),
        ([("rope_scaling", "{\"factor\": 4}")], "rope_scaling"),
        ([("rope_scaling", "{\"rope_type\": \"linear\", \"factor\": 2}")], "rope_scaling"),
        ([("rope_scaling", "{\"rope_type\": \"linear\", \"factor\": 0}")], "rope_scaling.factor"),
        ([("architectures", "\"LlamaForCausalLM\"")], "architectures"),
    ]

    @Test("each nonsense or missing value throws invalidConfiguration naming the field and the file", arguments: 0..<invalid.count)
    func invalidVariants(index: Int) throws {
        let (edits, field) = Self.invalid[index]
        let bytes = try Self.variant(edits)
        let error = #expect(throws: ModelRuntimeError.self) { try HuggingFaceLlamaConfig(jsonBytes: bytes, source: "variant-\(index).json") }
        #expect(error?.code == .invalidConfiguration, "\(edits)")
        #expect(error?.message.contains("'\(field)'") == true, "\(edits): \(error?.message ?? "-")")
        #expect(error?.message.contains("variant-\(index).json") == true)
    }

    @Test("rope_scaling kinds decode their fields; only kinds the caller supports are accepted")
    func ropeScaling() throws {
        let llama3 = #"{"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}"#
        let bytes = try Self.variant([("rope_scaling", llama3), ("rope_theta", "500000.0")])
        let config = try HuggingFaceLlamaConfig(jsonBytes: bytes, supportedRopeScaling: [.llama3])
        #expect(config.ropeScaling == .llama3(factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192))
        #expect(config.ropeTheta == 500_000)
        let refused = #expect(throws: ModelRuntimeError.self) { try HuggingFaceLlamaConfig(jsonBytes: bytes) }
        #expect(refused?.code == .invalidConfiguration)
        #expect(refused?.message.contains("llama3") == true)

        let missingField = try Self.variant([("rope_scaling", #"{"rope_type": "llama3", "factor": 8, "high_freq_factor": 4, "original_max_position_embeddings": 8192}"#)])
        let fieldError = #expect(throws: ModelRuntimeError.self) { try HuggingFaceLlamaConfig(jsonBytes: missingField, supportedRopeScaling: [.llama3]) }
        #expect(fieldError?.message.contains("'rope_scaling.low_freq_factor'") == true)

        let yarn = try Self.variant([("rope_scaling", #"{"type": "yarn", "factor": 4, "original_max_position_embeddings": 32768}"#)])
        #expect(try HuggingFaceLlamaConfig(jsonBytes: yarn, supportedRopeScaling: Set(HuggingFaceRopeScaling.Kind.allCases)).ropeScaling
            == .yarn(factor: 4, originalMaxPositionEmbeddings: 32768, betaFast: 32, betaSlow: 1, attentionFactor: nil))
        let linear = try Self.variant([("rope_scaling", #"{"rope_type": "linear", "factor": 2}"#)])
        #expect(try HuggingFaceLlamaConfig(jsonBytes: linear, supportedRopeScaling: [.linear]).ropeScaling?.factor == 2)
        let plain = try Self.variant([("rope_scaling", #"{"rope_type": "default"}"#)])
        #expect(try HuggingFaceLlamaConfig(jsonBytes: plain).ropeScaling == nil)
    }

    @Test("unknown architectures throw unsupportedArchitecture naming it and listing the supported ones")
    func architectures() throws {
        for edits: [(String, String?)] in [[("model_type", "\"gemma\"")], [("model_type", nil), ("architectures", "[\"PhiForCausalLM\"]")], [("model_type", nil), ("architectures", nil)]] {
            let error = #expect(throws: ModelRuntimeError.self) { try HuggingFaceLlamaConfig(jsonBytes: Self.variant(edits)) }
            #expect(error?.code == .unsupportedArchitecture, "\(edits)")
            #expect(error?.message.contains("llama, mistral, qwen2") == true)
        }
        let gemma = #expect(throws: ModelRuntimeError.self) { try HuggingFaceLlamaConfig(jsonBytes: Self.variant([("model_type", "\"gemma\"")])) }
        #expect(gemma?.message.contains("'gemma'") == true)
        let inferred = try HuggingFaceLlamaConfig(jsonBytes: Self.variant([("model_type", nil), ("architectures", "[\"MistralForCausalLM\"]")]))
        #expect(inferred.architecture == .mistral)
    }

    @Test("Qwen2 has q/k/v biases and full attention unless use_sliding_window; Mistral keeps its window")
    func qwen2AndMistral() throws {
        let qwen = try HuggingFaceLlamaConfig(jsonBytes: Self.variant([
            ("model_type", "\"qwen2\""), ("sliding_window", "4096"), ("use_sliding_window", "false"),
        ]))
        #expect(qwen.attentionQKVBias && !qwen.attentionOutputBias)
        #expect(qwen.slidingWindow == nil)
        let names = qwen.tensorNames(layer: 3)
        #expect(names.queryBias == "model.layers.3.self_attn.q_proj.bias")
        #expect(names.outputBias == nil)
        #expect(qwen.expectedTensors(layer: 3).contains(HuggingFaceTensorSpec(name: "model.layers.3.self_attn.k_proj.bias", shape: [192], layer: 3)))
        let mistral = try HuggingFaceLlamaConfig(jsonBytes: Self.variant([("model_type", "\"mistral\""), ("sliding_window", "4096")]))
        #expect(mistral.slidingWindow == 4096)
        #expect(!mistral.attentionQKVBias)
    }

    @Test("expected tensor names and shapes follow the Llama layout")
    func expectedTensors() throws {
        let config = try HuggingFaceLlamaConfig(contentsOf: F.path("tiny-llama/config.json"))
        let specs = config.expectedTensors
        #expect(specs.count == 1 + 2 * 9 + 2)
        #expect(Set(specs.map(\.name)).count == specs.count)
        let byName = Dictionary(uniqueKeysWithValues: specs.map { ($0.name, $0.shape) })
        #expect(byName["model.embed_tokens.weight"] == [32, 16])
        #expect(byName["model.layers.1.self_attn.q_proj.weight"] == [16, 16])
        #expect(byName["model.layers.1.self_attn.k_proj.weight"] == [8, 16])
        #expect(byName["model.layers.1.self_attn.v_proj.weight"] == [8, 16])
        #expect(byName["model.layers.1.self_attn.o_proj.weight"] == [16, 16])
        #expect(byName["model.layers.0.mlp.gate_proj.weight"] == [24, 16])
        #expect(byName["model.layers.0.mlp.up_proj.weight"] == [24, 16])
        #expect(byName["model.layers.0.mlp.down_proj.weight"] == [16, 24])
        #expect(byName["model.layers.0.input_layernorm.weight"] == [16])
        #expect(byName["model.layers.0.post_attention_layernorm.weight"] == [16])
        #expect(byName["model.norm.weight"] == [16])
        #expect(byName["lm_head.weight"] == [32, 16])
        let tied = try HuggingFaceLlamaConfig(contentsOf: F.path("smollm2-like-config.json"))
        #expect(!tied.expectedTensors.contains { $0.name == HuggingFaceLlamaConfig.outputName })
    }

    @Test("malformed JSON and unreadable paths throw the right codes")
    func unreadable() throws {
        let bad = #expect(throws: ModelRuntimeError.self) { try HuggingFaceLlamaConfig(jsonBytes: Array("{\"hidden_size\": 5,".utf8), source: "cut.json") }
        #expect(bad?.code == .invalidConfiguration)
        #expect(bad?.message.contains("cut.json") == true)
        // JSONSerialization would re-serialize 1536.0 as 1536, so write this variant by hand.
        let text = try String(decoding: Self.variant([("intermediate_size", "777")]), as: UTF8.self).replacingOccurrences(of: "777", with: "1536.0")
        let float = #expect(throws: ModelRuntimeError.self) { try HuggingFaceLlamaConfig(jsonBytes: Array(text.utf8)) }
        #expect(float?.message.contains("'intermediate_size'") == true)
        let array = #expect(throws: ModelRuntimeError.self) { try HuggingFaceLlamaConfig(jsonBytes: Array("[1]".utf8)) }
        #expect(array?.code == .invalidConfiguration)
        let absent = #expect(throws: ModelRuntimeError.self) { try HuggingFaceLlamaConfig(contentsOf: F.path("nope/config.json")) }
        #expect(absent?.code == .io)
    }
}
