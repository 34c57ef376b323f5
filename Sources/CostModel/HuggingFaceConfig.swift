import Foundation

/// Reads a model architecture from a Hugging Face `config.json`.
///
/// Recognised keys: `num_hidden_layers`, `hidden_size`, `num_attention_heads`,
/// `num_key_value_heads` (default: the attention heads, i.e. MHA), `head_dim`
/// (default: hidden / heads), `intermediate_size`, `vocab_size`,
/// `tie_word_embeddings` (default false), `num_local_experts` /
/// `num_experts` + `num_experts_per_tok` (MoE), `max_position_embeddings`,
/// `attention_bias` (Qwen2 models always have Q/K/V bias). Multimodal configs
/// with a nested `text_config` use that object.
public enum HuggingFaceConfig {
    public static func model(from data: Data, name: String, file: String = "config.json") throws(CostModelError) -> ModelSpec {
        guard !name.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw CostModelError(.invalidInput, "A model added from \(file) needs a non-empty name; pass --name.")
        }
        var values: [String: Any]
        do {
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw CostModelError(.malformedCatalog, "\(file) must hold a JSON object (a Hugging Face config.json).")
            }
            values = object
        } catch let error as CostModelError {
            throw error
        } catch {
            throw CostModelError(.malformedCatalog, "\(file) is not valid JSON; fix the syntax.", underlying: error.localizedDescription)
        }
        if values["num_hidden_layers"] == nil, let text = values["text_config"] as? [String: Any] { values = text }
        let f = Fields(values: values, file: file, entry: "'\(name)'")
        let heads = try f.int("num_attention_heads", max: 4096)
        let hidden = try f.int("hidden_size", max: 1 << 20)
        let kvHeads = try f.optionalInt("num_key_value_heads", max: 4096) ?? heads
        guard kvHeads <= heads, heads % kvHeads == 0 else {
            throw .malformed(file: file, entry: "'\(name)'", field: "num_key_value_heads", "\(kvHeads) must divide num_attention_heads (\(heads))")
        }
        let headDim = try f.optionalInt("head_dim", max: 4096)
        if headDim == nil, hidden % heads != 0 {
            throw .malformed(file: file, entry: "'\(name)'", field: "head_dim",
                             "missing, and hidden_size \(hidden) is not a multiple of num_attention_heads \(heads); add head_dim")
        }
        let localExperts = try f.optionalInt("num_local_experts", max: 4096)
        let namedExperts = try f.optionalInt("num_experts", max: 4096)
        let experts = localExperts ?? namedExperts ?? 1
        let active = experts > 1 ? (try f.optionalInt("num_experts_per_tok", max: 4096) ?? 1) : 1
        guard active <= experts else {
            throw .malformed(file: file, entry: "'\(name)'", field: "num_experts_per_tok", "\(active) exceeds the expert count (\(experts))")
        }
        let modelType = (values["model_type"] as? String)?.lowercased() ?? ""
        let bias = try f.optionalBool("attention_bias") ?? modelType.hasPrefix("qwen2")
        let moeIntermediate = try f.optionalInt("moe_intermediate_size", max: 1 << 22)
        let intermediate: Int
        if let moeIntermediate { intermediate = moeIntermediate } else { intermediate = try f.int("intermediate_size", max: 1 << 22) }
        return ModelSpec(
            name: name.lowercased(), displayName: name, huggingFaceID: values["_name_or_path"] as? String,
            layers: try f.int("num_hidden_layers", max: 1000), hiddenSize: hidden, attentionHeads: heads, kvHeads: kvHeads,
            headDim: headDim, intermediateSize: intermediate,
            vocabSize: try f.int("vocab_size", max: 1 << 24), tiedEmbeddings: try f.optionalBool("tie_word_embeddings") ?? false,
            attentionBias: bias, experts: experts, activeExperts: active,
            maxContext: try f.optionalInt("max_position_embeddings", max: 1 << 24) ?? 4096,
            source: "Hugging Face config \(file) (parameters computed from the architecture)", date: isoDate())
    }

    static func isoDate() -> String {
        let c = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC") ?? .current, from: Date())
        return String(format: "%04d-%02d", c.year ?? 0, c.month ?? 0)
    }
}
