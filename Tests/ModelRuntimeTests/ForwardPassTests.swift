import Foundation
import KVPaging
import Quantization
import TensorCore
import Testing
@testable import ModelRuntime

/// The fast CPU path against the backend path on ReferenceBackend (Float64 accumulation over the
/// dequantized weights), on random tiny models of odd shapes.
@Suite("Forward pass: fast path vs reference")
struct ForwardPassTests {
    /// GQA group sizes 1, 3 and 4; hidden sizes that are odd multiples of 32 for the quantized
    /// kernels and not multiples of 32 at all for Float32/Float16 weights (the BLAS path).
    static let specs: [TinyModelSpec] = [
        TinyModelSpec(hidden: 96, heads: 3, kvHeads: 1, ffn: 160, layers: 2, vocab: 67, projectionType: .q4_1, embeddingType: .q8_0, seed: 11),
        TinyModelSpec(hidden: 160, heads: 5, kvHeads: 5, ffn: 224, layers: 3, vocab: 53, projectionType: .q8_0, embeddingType: .q8_0, tied: false, seed: 12),
        TinyModelSpec(hidden: 128, heads: 8, kvHeads: 2, ffn: 96, layers: 2, vocab: 71, projectionType: .q4_0, embeddingType: .f16, seed: 13),
        TinyModelSpec(hidden: 72, heads: 3, kvHeads: 1, ffn: 100, layers: 2, vocab: 45, projectionType: .f32, embeddingType: .f32, seed: 14),
        TinyModelSpec(hidden: 84, heads: 6, kvHeads: 2, ffn: 50, layers: 1, vocab: 40, projectionType: .f16, embeddingType: .f32, tied: false, seed: 15),
    ]

    /// Stated tolerances: quantized projections quantize activations to 8 bits per block of 32 (the
    /// fast path) while the reference multiplies Float32 activations, so logits differ by up to a few
    /// percent of their range; Float32/Float16 weights differ only by summation order.
    static func tolerance(_ s: TinyModelSpec) -> Float { s.projectionType == .f32 || s.projectionType == .f16 ? 1e-4 : 0.06 }

    func prompt(_ spec: TinyModelSpec, length: Int, seed: UInt64) -> [Int] {
        var rng = SplitMix64(seed: seed)
        return (0..<length).map { _ in 3 + Int(rng.next() % UInt64(spec.vocab - 3)) }
    }

    @Test("prompt logits (all rows) match the reference", arguments: specs)
    func promptLogits(spec: TinyModelSpec) throws {
        let model = try spec.build()
        let fast = CPUForwardPass(model: model, threads: 2)
        let ref = try BackendForwardPass(model: model, backend: ReferenceBackend())
        var cacheA = try KVCache(configuration: model.configuration, blockCount: 8, blockSize: 8)
        var cacheB = cacheA
        var batch = ForwardBatch()
        let ids = prompt(spec, length: 19, seed: spec.seed)
        batch.append(tokens: ids, startPosition: 0, blockTable: [5, 2, 7], logits: .all)
        var logits = Logits()
        try fast.run(batch, cache: &cacheA, logits: &logits)
        let expected = try ref.run(batch, cache: &cacheB)
        #expect(logits.rowCount == ids.count && expected.count == ids.count)
        var worst: Float = 0
        for r in 0..<ids.count { worst = max(worst, LogitCheck.relativeError(logits.row(r), expected[r])) }
        #expect(worst <= Self.tolerance(spec), "\(spec): worst relative logit error \(worst)")
    }

    @Test("32 greedy decode steps pick the reference's tokens", arguments: specs)
    func greedyDecode(spec: TinyModelSpec) throws {
        let model = try spec.build()
        let fast = CPUForwardPass(model: model, threads: 2)
        let ref = try BackendForwardPass(model: model, backend: ReferenceBackend())
        var cacheA = try KVCache(configuration: model.configuration, blockCount: 12, blockSize: 4)
        var cacheB = cacheA
        let table = [3, 9, 0, 11, 1, 7, 2, 10, 4, 8, 6, 5]  // scattered blocks
        var tokens = prompt(spec, length: 7, seed: spec.seed + 100)
        var batch = ForwardBatch()
        batch.append(tokens: tokens, startPosition: 0, blockTable: table.prefix(2))
        var logits = Logits()
        var agree = 0, contested = 0
        for step in 0..<32 {
            try fast.run(batch, cache: &cacheA, logits: &logits)
            let expected = try ref.run(batch, cache: &cacheB)[0]
            let got = logits.row(0)
            let want = LogitCheck.argmax(expected)
            if LogitCheck.argmax(got) == want {
                agree += 1
            } else {
                // A flip is only allowed where the reference's top two are within the stated tolerance.
                contested += 1
                let range = expected.map(abs).max()!
                #expect(LogitCheck.margin(expected) <= 2 * Self.tolerance(spec) * range, "\(spec) step \(step): fast path picked another token with a clear margin")
            }
            // Both continue with the reference's token (teacher forcing), so one near-tie does not derail the rest.
            let position = tokens.count
            tokens.append(want)
            batch.removeAll()
            batch.append(tokens: [want], startPosition: position, blockTable: table.prefix(position / 4 + 1))
        }
        #expect(agree >= 31, "\(spec): \(agree)/32 greedy tokens agree (\(contested) near-ties)")
    }

    @Test("paged (scattered blocks, other block size) equals contiguous blocks", arguments: [specs[0], specs[3]])
    func pagedEqualsContiguous(spec: TinyModelSpec) throws {
        let model = try spec.build()
        let fast = CPUForwardPass(model: model, threads: 2)
        let ids = prompt(spec, length: 37, seed: 7)
        func run(blockSize: Int, table: [Int]) throws -> [[Float]] {
            var cache = try KVCache(configuration: model.configuration, blockCount: table.max()! + 1, blockSize: blockSize)
            var batch = ForwardBatch()
            // Prompt in two chunks (the second attends to the first through the cache), then one decode step.
            batch.append(tokens: ids[0..<20], startPosition: 0, blockTable: table, logits: .none)
            var logits = Logits()
            try fast.run(batch, cache: &cache, logits: &logits)
            batch.removeAll()
            batch.append(tokens: ids[20...], startPosition: 20, blockTable: table, logits: .all)
            try fast.run(batch, cache: &cache, logits: &logits)
            return (0..<logits.rowCount).map { logits.row($0) }
        }
        let contiguous = try run(blockSize: 64, table: [0])
        let scattered = try run(blockSize: 8, table: [4, 0, 6, 2, 5])
        let tiny = try run(blockSize: 3, table: Array((0..<13).reversed()))
        // Other block sizes change only the order of the online-softmax updates (float rounding, ~1e-7);
        // with quantized projections a rounding difference can move an activation across an 8-bit
        // step, so the bound there is the size of one step's effect.
        let bound: Float = spec.projectionType.quantizationFormat == nil ? 1e-5 : 3e-3
        for r in contiguous.indices {
            #expect(LogitCheck.relativeError(scattered[r], contiguous[r]) <= bound, "row \(r)")
            #expect(LogitCheck.relativeError(tiny[r], contiguous[r]) <= bound, "row \(r)")
        }
        // The same block size with the blocks scattered is the same arithmetic: identical.
        let shuffled = try run(blockSize: 8, table: [1, 3, 0, 2, 4])
        #expect(shuffled == scattered)
    }

    @Test("a sequence's logits do not depend on the rest of the batch", arguments: [specs[0], specs[2]])
    func batchedEqualsAlone(spec: TinyModelSpec) throws {
        let model = try spec.build()
        let fast = CPUForwardPass(model: model, threads: 2)
        let a = prompt(spec, length: 11, seed: 1), b = prompt(spec, length: 23, seed: 2), c = prompt(spec, length: 1, seed: 3)
        func alone(_ ids: [Int]) throws -> [Float] {
            var cache = try KVCache(configuration: model.configuration, blockCount: 4, blockSize: 8)
            var batch = ForwardBatch()
            batch.append(tokens: ids, startPosition: 0, blockTable: [0, 1, 2])
            var logits = Logits()
            try fast.run(batch, cache: &cache, logits: &logits)
            return logits.row(0)
        }
        var cache = try KVCache(configuration: model.configuration, blockCount: 12, blockSize: 8)
        var batch = ForwardBatch()
        batch.append(tokens: a, startPosition: 0, blockTable: [9, 1])
        batch.append(tokens: b, startPosition: 0, blockTable: [2, 8, 4])
        batch.append(tokens: c, startPosition: 0, blockTable: [11])
        var logits = Logits()
        try fast.run(batch, cache: &cache, logits: &logits)
        #expect(logits.rowCount == 3)
        for (i, ids) in [a, b, c].enumerated() {
            #expect(LogitCheck.relativeError(logits.row(i), try alone(ids)) <= 1e-5, "sequence \(i)")
        }
    }

    @Test("bad batches are typed errors that name the problem")
    func badBatches() throws {
        let model = try Self.specs[0].build()
        let fast = CPUForwardPass(model: model, threads: 1)
        var cache = try KVCache(configuration: model.configuration, blockCount: 2, blockSize: 4)
        var logits = Logits()
        func expectCode(_ code: ModelRuntimeError.Code, _ batch: ForwardBatch, _ what: String) {
            do {
                try fast.run(batch, cache: &cache, logits: &logits)
                Issue.record("\(what): no error")
            } catch {
                #expect(error.code == code, "\(what): \(error)")
            }
        }
        expectCode(.invalidBatch, ForwardBatch(), "empty batch")
        var b = ForwardBatch()
        b.append(tokens: [Int](), startPosition: 0, blockTable: [0])
        expectCode(.invalidBatch, b, "empty prompt")
        b = ForwardBatch()
        b.append(tokens: [5, 999], startPosition: 0, blockTable: [0])
        expectCode(.invalidBatch, b, "out-of-vocabulary id")
        b = ForwardBatch()
        b.append(tokens: [5, -1], startPosition: 0, blockTable: [0])
        expectCode(.invalidBatch, b, "negative id")
        // Past Int32: must stay out of range (a wrapped 2³² + 5 would silently run token 5).
        b = ForwardBatch()
        b.append(tokens: [5, (1 << 32) + 5], startPosition: 0, blockTable: [0])
        expectCode(.invalidBatch, b, "id past Int32")
        b = ForwardBatch()
        b.append(tokens: [5], startPosition: 0, blockTable: [(1 << 32) + 1])
        expectCode(.invalidBatch, b, "block id past Int32")
        b = ForwardBatch()
        b.append(tokens: Array(repeating: 5, count: 9), startPosition: 0, blockTable: [0, 1])
        expectCode(.invalidBatch, b, "more positions than the blocks hold")
        b = ForwardBatch()
        b.append(tokens: [5], startPosition: 0, blockTable: [7])
        expectCode(.invalidBatch, b, "block outside the cache")
        b = ForwardBatch()
        b.append(tokens: [5], startPosition: 256, blockTable: Array(repeating: 0, count: 65))
        expectCode(.contextOverflow, b, "past the model's context")
    }

    @Test("a NaN Float32 weight is refused at load, naming the tensor")
    func nanWeight() throws {
        var spec = Self.specs[3]
        spec.seed = 99
        // A Float32 weight is checked while loading: the error names the tensor.
        do {
            _ = try spec.build(poison: "blk.0.ffn_up.weight")
            Issue.record("a NaN weight loaded")
        } catch let error as ModelRuntimeError {
            #expect(error.code == .nonFinite && error.message.contains("blk.0.ffn_up.weight"), "\(error)")
        }
    }

    @Test("a NaN in a quantized weight's scale surfaces as nonFinite, not as garbage tokens")
    func corruptQuantizedScale() throws {
        // The first block scale of a stored Q4_1 projection set to the Float16 NaN pattern.
        let spec = Self.specs[0]
        var bytes = try spec.serialized()
        let file = try GGUFFile(bytes: bytes)
        let t = try file.info(named: "blk.1.attn_v.weight")
        let at = file.dataOffset + t.offset
        bytes[at] = 0x00
        bytes[at + 1] = 0x7E  // 0x7E00: Float16 NaN
        let model = try LlamaModel(file: try GGUFFile(bytes: bytes))
        let fast = CPUForwardPass(model: model, threads: 1)
        var cache = try KVCache(configuration: model.configuration, blockCount: 2, blockSize: 8)
        var batch = ForwardBatch()
        batch.append(tokens: [4, 5, 6], startPosition: 0, blockTable: [0])
        var logits = Logits()
        do {
            try fast.run(batch, cache: &cache, logits: &logits)
            Issue.record("a NaN scale produced finite logits")
        } catch {
            #expect(error.code == .nonFinite, "\(error)")
        }
    }
}
