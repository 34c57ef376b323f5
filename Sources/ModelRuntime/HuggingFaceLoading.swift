import Foundation
import Quantization
import TensorCore
import Tokenization

extension LlamaModel {
    /// Loads a Hugging Face checkpoint directory — `config.json` plus `model.safetensors` or a sharded
    /// `model.safetensors.index.json` — of a plain Llama-layout model (`llama`, `mistral`, `qwen2`
    /// without biases), with F32, F16 or BF16 weights.
    ///
    /// Every tensor is checked by name and shape against the configuration, `q_proj`/`k_proj` rows are
    /// permuted from Hugging Face's half-split RoPE order into the adjacent pairs the kernels rotate
    /// (the permutation llama.cpp's converter applies), and the weights are assembled, under their
    /// GGUF names, into an in-memory GGUF that the regular loader reads: the projections then run as
    /// Float32 on OpenBLAS. A directory carries no GGUF tokenizer, so the caller passes one (for
    /// example the `Tokenizer` of a GGUF conversion of the same model).
    ///
    /// Memory: the Float32 weights are held twice at the peak (the assembled file and the matrices
    /// the loader builds from it) — 8 bytes per parameter.
    ///
    /// - Throws: ``ModelRuntimeError`` — `.io`/`.invalidFile` for unreadable or hostile files,
    ///   `.unsupportedArchitecture` for a `model_type` or feature this runtime does not run (biases,
    ///   RoPE scaling), `.missingTensor`/`.tensorShape` naming the tensor.
    public convenience init(huggingFaceDirectory directory: String, tokenizer: TokenizerConfiguration, chatTemplate: String? = nil) throws(ModelRuntimeError) {
        let config = try HuggingFaceLlamaConfig(contentsOf: (directory as NSString).appendingPathComponent("config.json"))
        guard !config.attentionQKVBias, !config.attentionOutputBias, !config.mlpBias else {
            throw ModelRuntimeError(.unsupportedArchitecture,
                "\(config.source): projection biases (attention_bias / mlp_bias, as Qwen2 has) are not implemented; this runtime runs bias-free Llama layouts")
        }
        let checkpoint = try SafetensorsCheckpoint(directory: directory)
        try config.checkTensors(in: checkpoint)
        guard tokenizer.tokens.count == config.vocabSize else {
            throw ModelRuntimeError(.invalidConfiguration,
                "the tokenizer has \(tokenizer.tokens.count) tokens but \(config.source) says vocab_size \(config.vocabSize); pass the tokenizer of this model")
        }
        // A sliding window is exact for sequences up to its length: cap the context there.
        var context = config.maxPositionEmbeddings
        if let window = config.slidingWindow, window > 0 { context = min(context, window) }

        var w = GGUFWriter()
        w.setMetadata("general.architecture", .string("llama"))
        w.setMetadata("general.name", .string((directory as NSString).lastPathComponent))
        func u32(_ key: String, _ v: Int) { w.setMetadata("llama." + key, .uint32(UInt32(clamping: v))) }
        u32("block_count", config.numHiddenLayers)
        u32("context_length", context)
        u32("embedding_length", config.hiddenSize)
        u32("feed_forward_length", config.intermediateSize)
        u32("attention.head_count", config.numAttentionHeads)
        u32("attention.head_count_kv", config.numKeyValueHeads)
        u32("attention.key_length", config.headDim)
        u32("rope.dimension_count", config.headDim)
        u32("vocab_size", config.vocabSize)
        w.setMetadata("llama.rope.freq_base", .float32(Float(config.ropeTheta)))
        w.setMetadata("llama.attention.layer_norm_rms_epsilon", .float32(Float(config.rmsNormEps)))
        Self.writeTokenizer(tokenizer, chatTemplate: chatTemplate, into: &w)

        // Tensors are read and converted only while the file is written (one at a time).
        func add(_ gguf: String, _ hf: String, permuteHeads: Int? = nil) throws(ModelRuntimeError) {
            guard let info = checkpoint.info(named: hf) else {
                throw ModelRuntimeError(.missingTensor, "tensor '\(hf)' is missing from the checkpoint in \(directory)")
            }
            let dims = Array(info.shape.reversed())
            let count = info.shape.reduce(1, *)
            do {
                try w.addTensor(name: gguf, typeID: GGMLType.f32.rawValue, dimensions: dims, byteCount: count * 4) {
                    var t = try checkpoint.tensor(named: hf)
                    if let heads = permuteHeads { t = HuggingFaceLlamaConfig.permuteForAdjacentPairRoPE(t, heads: heads) }
                    return t.withUnsafeBufferPointer { p in Array(UnsafeRawBufferPointer(p)) }
                }
            } catch {
                throw ModelRuntimeError(.invalidFile, "cannot add tensor '\(hf)'", underlying: "\(error)")
            }
        }
        try add("token_embd.weight", HuggingFaceLlamaConfig.embeddingName)
        for l in 0..<config.numHiddenLayers {
            let n = config.tensorNames(layer: l)
            let p = "blk.\(l)."
            try add(p + "attn_norm.weight", n.attentionNormWeight)
            try add(p + "attn_q.weight", n.queryWeight, permuteHeads: config.numAttentionHeads)
            try add(p + "attn_k.weight", n.keyWeight, permuteHeads: config.numKeyValueHeads)
            try add(p + "attn_v.weight", n.valueWeight)
            try add(p + "attn_output.weight", n.outputWeight)
            try add(p + "ffn_norm.weight", n.ffnNormWeight)
            try add(p + "ffn_gate.weight", n.gateWeight)
            try add(p + "ffn_up.weight", n.upWeight)
            try add(p + "ffn_down.weight", n.downWeight)
        }
        try add("output_norm.weight", HuggingFaceLlamaConfig.outputNormName)
        if !config.tieWordEmbeddings { try add("output.weight", HuggingFaceLlamaConfig.outputName) }
        let file: GGUFFile
        do {
            file = try GGUFFile(bytes: try w.serialize())
        } catch let e as ModelRuntimeError {
            throw e
        } catch {
            throw ModelRuntimeError(.invalidFile, "cannot read the checkpoint in \(directory)", underlying: "\(error)")
        }
        try self.init(file: file, path: directory)
    }

    static func writeTokenizer(_ t: TokenizerConfiguration, chatTemplate: String?, into w: inout GGUFWriter) {
        w.setMetadata("tokenizer.ggml.model", .string(t.model.rawValue))
        w.setMetadata("tokenizer.ggml.pre", .string(t.preTokenizer))
        w.setMetadata("tokenizer.ggml.tokens", .array(elementType: .string, t.tokens.map { .string($0) }))
        if !t.tokenTypes.isEmpty { w.setMetadata("tokenizer.ggml.token_type", .array(elementType: .int32, t.tokenTypes.map { .int32($0) })) }
        if !t.merges.isEmpty { w.setMetadata("tokenizer.ggml.merges", .array(elementType: .string, t.merges.map { .string($0) })) }
        if !t.scores.isEmpty { w.setMetadata("tokenizer.ggml.scores", .array(elementType: .float32, t.scores.map { .float32($0) })) }
        for (key, id) in [("bos", t.bosTokenID), ("eos", t.eosTokenID), ("unknown", t.unknownTokenID), ("padding", t.paddingTokenID)] {
            if let id { w.setMetadata("tokenizer.ggml.\(key)_token_id", .uint32(UInt32(clamping: id))) }
        }
        w.setMetadata("tokenizer.ggml.add_bos_token", .bool(t.addBOS))
        w.setMetadata("tokenizer.ggml.add_eos_token", .bool(t.addEOS))
        w.setMetadata("tokenizer.ggml.add_space_prefix", .bool(t.addSpacePrefix))
        if let chatTemplate { w.setMetadata("tokenizer.chat_template", .string(chatTemplate)) }
    }
}
