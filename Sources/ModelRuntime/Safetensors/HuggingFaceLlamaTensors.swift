import TensorCore

/// The Hugging Face name and expected shape of one tensor of a Llama-family checkpoint.
///
/// Shapes are in PyTorch order: a linear layer's weight is `[out_features, in_features]`.
public struct HuggingFaceTensorSpec: Sendable, Hashable, CustomStringConvertible {
    public let name: String
    public let shape: [Int]
    /// The decoder layer the tensor belongs to; nil for the embedding, final norm and LM head.
    public let layer: Int?

    public var description: String { "\(name) \(shape)" }
}

/// The Hugging Face tensor names of one decoder layer.
///
/// Bias names are nil when the configuration says the layer has none.
public struct HuggingFaceLayerTensorNames: Sendable, Hashable {
    public let layer: Int
    /// `model.layers.{i}.input_layernorm.weight`, the RMSNorm before attention.
    public let attentionNormWeight: String
    /// `model.layers.{i}.self_attn.q_proj.weight`, `[numAttentionHeads·headDim, hiddenSize]`, rows in half-split RoPE order.
    public let queryWeight: String
    /// `model.layers.{i}.self_attn.k_proj.weight`, `[numKeyValueHeads·headDim, hiddenSize]`, rows in half-split RoPE order.
    public let keyWeight: String
    /// `model.layers.{i}.self_attn.v_proj.weight`, `[numKeyValueHeads·headDim, hiddenSize]`.
    public let valueWeight: String
    /// `model.layers.{i}.self_attn.o_proj.weight`, `[hiddenSize, numAttentionHeads·headDim]`.
    public let outputWeight: String
    public let queryBias: String?
    public let keyBias: String?
    public let valueBias: String?
    public let outputBias: String?
    /// `model.layers.{i}.post_attention_layernorm.weight`, the RMSNorm before the MLP.
    public let ffnNormWeight: String
    /// `model.layers.{i}.mlp.gate_proj.weight`, `[intermediateSize, hiddenSize]` (the SiLU branch).
    public let gateWeight: String
    /// `model.layers.{i}.mlp.up_proj.weight`, `[intermediateSize, hiddenSize]`.
    public let upWeight: String
    /// `model.layers.{i}.mlp.down_proj.weight`, `[hiddenSize, intermediateSize]`.
    public let downWeight: String
    public let gateBias: String?
    public let upBias: String?
    public let downBias: String?
}

extension HuggingFaceLlamaConfig {
    /// `model.embed_tokens.weight`, `[vocabSize, hiddenSize]`.
    public static let embeddingName = "model.embed_tokens.weight"
    /// `model.norm.weight`, `[hiddenSize]`, the final RMSNorm.
    public static let outputNormName = "model.norm.weight"
    /// `lm_head.weight`, `[vocabSize, hiddenSize]`; absent when ``tieWordEmbeddings`` (the embedding is reused).
    public static let outputName = "lm_head.weight"

    /// The tensor names of decoder layer `layer` (0-based).
    public func tensorNames(layer: Int) -> HuggingFaceLayerTensorNames {
        let p = "model.layers.\(layer)."
        return HuggingFaceLayerTensorNames(
            layer: layer,
            attentionNormWeight: p + "input_layernorm.weight",
            queryWeight: p + "self_attn.q_proj.weight",
            keyWeight: p + "self_attn.k_proj.weight",
            valueWeight: p + "self_attn.v_proj.weight",
            outputWeight: p + "self_attn.o_proj.weight",
            queryBias: attentionQKVBias ? p + "self_attn.q_proj.bias" : nil,
            keyBias: attentionQKVBias ? p + "self_attn.k_proj.bias" : nil,
            valueBias: attentionQKVBias ? p + "self_attn.v_proj.bias" : nil,
            outputBias: attentionOutputBias ? p + "self_attn.o_proj.bias" : nil,
            ffnNormWeight: p + "post_attention_layernorm.weight",
            gateWeight: p + "mlp.gate_proj.weight",
            upWeight: p + "mlp.up_proj.weight",
            downWeight: p + "mlp.down_proj.weight",
            gateBias: mlpBias ? p + "mlp.gate_proj.bias" : nil,
            upBias: mlpBias ? p + "mlp.up_proj.bias" : nil,
            downBias: mlpBias ? p + "mlp.down_proj.bias" : nil
        )
    }

    /// Every tensor of decoder layer `layer` with its expected shape.
    public func expectedTensors(layer: Int) -> [HuggingFaceTensorSpec] {
        let names = tensorNames(layer: layer)
        let q = numAttentionHeads * headDim, kv = numKeyValueHeads * headDim
        let h = hiddenSize, f = intermediateSize
        var specs: [(String?, [Int])] = [
            (names.attentionNormWeight, [h]),
            (names.queryWeight, [q, h]), (names.queryBias, [q]),
            (names.keyWeight, [kv, h]), (names.keyBias, [kv]),
            (names.valueWeight, [kv, h]), (names.valueBias, [kv]),
            (names.outputWeight, [h, q]), (names.outputBias, [h]),
            (names.ffnNormWeight, [h]),
            (names.gateWeight, [f, h]), (names.gateBias, [f]),
            (names.upWeight, [f, h]), (names.upBias, [f]),
            (names.downWeight, [h, f]), (names.downBias, [h]),
        ]
        specs.removeAll { $0.0 == nil }
        return specs.map { HuggingFaceTensorSpec(name: $0.0!, shape: $0.1, layer: layer) }
    }

    /// Every tensor the model needs, in load order: embedding, each layer, final norm, then `lm_head` unless tied.
    public var expectedTensors: [HuggingFaceTensorSpec] {
        var specs = [HuggingFaceTensorSpec(name: Self.embeddingName, shape: [vocabSize, hiddenSize], layer: nil)]
        for layer in 0..<numHiddenLayers { specs += expectedTensors(layer: layer) }
        specs.append(HuggingFaceTensorSpec(name: Self.outputNormName, shape: [hiddenSize], layer: nil))
        if !tieWordEmbeddings {
            specs.append(HuggingFaceTensorSpec(name: Self.outputName, shape: [vocabSize, hiddenSize], layer: nil))
        }
        return specs
    }

    /// Checks that `checkpoint` holds every tensor in ``expectedTensors`` with the expected shape.
    ///
    /// Extra tensors (a tied `lm_head.weight`, `rotary_emb.inv_freq`) are allowed.
    ///
    /// - Throws: ``ModelRuntimeError/Code/missingTensor`` or ``ModelRuntimeError/Code/tensorShape`` for the first tensor that fails.
    public func checkTensors(in checkpoint: SafetensorsCheckpoint) throws(ModelRuntimeError) {
        for spec in expectedTensors {
            guard let info = checkpoint.info(named: spec.name) else {
                throw ModelRuntimeError(.missingTensor, "checkpoint '\(checkpoint.directory)' has no tensor '\(spec.name)', which a \(architecture.rawValue) model with config '\(source)' needs (shape \(spec.shape))")
            }
            guard info.shape == spec.shape else {
                throw ModelRuntimeError(.tensorShape, "checkpoint '\(checkpoint.directory)': tensor '\(spec.name)' has shape \(info.shape) but config '\(source)' implies \(spec.shape); the config does not belong to these weights")
            }
        }
    }

    /// Reorders the rows of an HF `q_proj`/`k_proj` weight (or bias) from
    /// half-split RoPE order to adjacent-pair order, exactly as llama.cpp's
    /// `convert_hf_to_gguf.py` does for Llama and Mistral.
    ///
    /// HF Llama applies RoPE with `rotate_half`: within each head of `D`
    /// dimensions it rotates the pairs `(x[j], x[j + D/2])`. llama.cpp's
    /// "normal" RoPE rotates adjacent pairs `(x[2j], x[2j+1])`, so the
    /// converter permutes each head's output rows with
    /// `w.reshape(heads, 2, D/2, cols).swapaxes(1, 2).reshape(w.shape)`:
    ///
    ///     out[h·D + 2j + t] = in[h·D + t·D/2 + j]     for t ∈ {0, 1}, j ∈ 0..<D/2
    ///
    /// i.e. GGUF row `2j` is HF row `j` and GGUF row `2j+1` is HF row `j + D/2`
    /// of the same head. `heads` is `num_attention_heads` for `q_proj` and
    /// `num_key_value_heads` for `k_proj` (the converter's
    /// `permute(w, n_head, n_head_kv)` uses `n_head_kv` when they differ);
    /// `v_proj` and `o_proj` are not permuted. Qwen2 is converted without this
    /// permutation (its GGUF uses NEOX-style, half-split RoPE), so a runtime
    /// reading Qwen2 safetensors applies half-split RoPE instead.
    ///
    /// A runtime that applies HF-style half-split RoPE can use the safetensors
    /// weights as they are; one that shares GGUF's adjacent-pair kernel calls
    /// this on q_proj/k_proj weights (and biases, when present) at load time.
    ///
    /// - Parameters:
    ///   - w: `[heads·D, cols]` (a weight) or `[heads·D]` (a bias).
    ///   - heads: the heads the rows hold; `w.shape[0]` must be a multiple of `2·heads`.
    /// - Returns: a tensor of the same shape with rows permuted.
    public static func permuteForAdjacentPairRoPE(_ w: Tensor, heads: Int) -> Tensor {
        precondition(w.rank >= 1 && heads > 0, "permuteForAdjacentPairRoPE needs a tensor of rank ≥ 1 and heads > 0 (got \(w.shape), heads \(heads))")
        let rows = w.shape[0]
        precondition(rows % (2 * heads) == 0, "permuteForAdjacentPairRoPE: \(rows) rows do not split into \(heads) heads of an even dimension")
        let headDim = rows / heads, half = headDim / 2
        let columns = rows == 0 ? 0 : w.elementCount / rows
        return w.withUnsafeBufferPointer { source in
            Tensor(shape: w.shape) { (out: inout UnsafeMutableBufferPointer<Float>) in
                for h in 0..<heads {
                    for j in 0..<half {
                        for t in 0..<2 {
                            let from = (h * headDim + t * half + j) * columns
                            let to = (h * headDim + 2 * j + t) * columns
                            for c in 0..<columns { out[to + c] = source[from + c] }
                        }
                    }
                }
            }
        }
    }
}
