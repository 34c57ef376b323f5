import Foundation
import Testing
import TensorCore
@testable import TensorCoreBLAS

/// The decode-attention kernel (CInferenceKitCPUKernels) against ReferenceBackend (Float64 accumulation)
/// on fresh random inputs of odd sizes, on every instruction-set path this CPU has and with forced
/// key splits, so the vector bodies, the scalar tails (D not a multiple of 8 or 16), the chunk edges
/// (64 keys), the causal mask and the split-K merge are all exercised.
@Suite("BLASBackend decode attention kernel vs ReferenceBackend")
struct BLASDecodeAttentionTests {
    let blas = BLASBackend()
    let reference = ReferenceBackend()
    /// The issue's bound: relative to the output's scale (see BLASTestMetrics.relativeError).
    static let tolerance = 1e-4

    /// Paths this CPU can run (the others are clamped to the best supported, so they would repeat it).
    static var paths: [DecodeKernelPath] { DecodeKernelPath.allCases.filter { $0.rawValue <= DecodeKernelPath.detected.rawValue } }

    struct Case: CustomTestStringConvertible, Sendable {
        let headDim: Int, keyLength: Int, index: Int
        var group: Int { [1, 4, 8][index % 3] }
        /// Long caches use one KV head and batch 1 so the Float64 reference stays fast in a debug build.
        var kvHeads: Int { keyLength > 1000 ? 1 : 2 }
        var batch: Int { keyLength > 1000 ? 1 : 2 }
        var causal: Bool { index % 2 == 0 }
        /// 1…8 query positions, never more than the keys (causal attention is end-aligned).
        var queryLength: Int { 1 + (index / 2) % min(8, keyLength) }
        var testDescription: String {
            "D=\(headDim) Tk=\(keyLength) G=\(group) Tq=\(queryLength) \(causal ? "causal" : "full")"
        }
    }

    static let cases: [Case] = {
        var out: [Case] = []
        for d in [1, 3, 17, 64, 127, 128, 129] {
            for tk in [1, 5, 1000, 4097] { out.append(Case(headDim: d, keyLength: tk, index: out.count)) }
        }
        return out
    }()

    func inputs(_ c: Case, seed: UInt64) -> (Tensor, Tensor, Tensor) {
        let q = Tensor.random(shape: [c.batch, c.kvHeads * c.group, c.queryLength, c.headDim], seed: seed)
        let k = Tensor.random(shape: [c.batch, c.kvHeads, c.keyLength, c.headDim], seed: seed &+ 1)
        let v = Tensor.random(shape: [c.batch, c.kvHeads, c.keyLength, c.headDim], seed: seed &+ 2)
        return (q, k, v)
    }

    @Test("every path and key split vs reference", arguments: cases)
    func kernelVsReference(_ c: Case) throws {
        let seed = BLASTestMetrics.freshSeed()
        let (q, k, v) = inputs(c, seed: seed)
        let want = try reference.attention(query: q, key: k, value: v, causal: c.causal)
        // nil: the automatic plan; 2 and 3: uneven ranges; 64: ranges that straddle and match chunk edges.
        for path in Self.paths {
            for splits in [nil, 1, 2, 3, 64] as [Int?] {
                let got = try blas.decodeAttention(query: q, key: k, value: v, causal: c.causal,
                                                   scale: 1 / Float(c.headDim).squareRoot(), splits: splits, path: path)
                let err = BLASTestMetrics.relativeError(got, want)
                #expect(err < Self.tolerance, "path \(path), splits \(splits.map(String.init) ?? "auto"): relative error \(err), seed \(seed)")
            }
        }
    }

    @Test("split-K boundaries: one key per range, masked ranges, chunk edges", arguments: [
        (keys: 9, queries: 8, splits: 9),     // the last range holds one key only the last query row sees
        (keys: 64, queries: 8, splits: 64),   // every range one key
        (keys: 128, queries: 3, splits: 2),   // ranges end exactly on 64-key chunk edges
        (keys: 129, queries: 8, splits: 2),   // one range a key past the chunk edge
        (keys: 200, queries: 5, splits: 1000) // more ranges requested than keys: clamped to one key each
    ])
    func splitBoundaries(_ shape: (keys: Int, queries: Int, splits: Int)) throws {
        let seed = BLASTestMetrics.freshSeed()
        let q = Tensor.random(shape: [1, 8, shape.queries, 19], seed: seed)
        let k = Tensor.random(shape: [1, 2, shape.keys, 19], seed: seed &+ 1)
        let v = Tensor.random(shape: [1, 2, shape.keys, 19], seed: seed &+ 2)
        for causal in [true, false] {
            let want = try reference.attention(query: q, key: k, value: v, causal: causal, scale: 0.3)
            for path in Self.paths {
                let got = try blas.decodeAttention(query: q, key: k, value: v, causal: causal, scale: 0.3, splits: shape.splits, path: path)
                let err = BLASTestMetrics.relativeError(got, want)
                #expect(err < Self.tolerance, "path \(path), causal \(causal): relative error \(err), seed \(seed)")
            }
        }
    }

    @Test("large scores: the online softmax rescales instead of overflowing")
    func largeScores() throws {
        let seed = BLASTestMetrics.freshSeed()
        // Entries up to 30: scores up to ~30²·D·scale, far past exp's Float range without the running max.
        let dist = Tensor.Distribution.uniform(low: -30, high: 30)
        let q = Tensor.random(shape: [1, 4, 2, 33], seed: seed, distribution: dist)
        let k = Tensor.random(shape: [1, 1, 700, 33], seed: seed &+ 1, distribution: dist)
        let v = Tensor.random(shape: [1, 1, 700, 33], seed: seed &+ 2)
        let want = try reference.attention(query: q, key: k, value: v, causal: true, scale: 1)
        for path in Self.paths {
            for splits in [1, 5] {
                let got = try blas.decodeAttention(query: q, key: k, value: v, causal: true, scale: 1, splits: splits, path: path)
                #expect(got.scalars.allSatisfy { $0.isFinite }, "path \(path): non-finite output, seed \(seed)")
                let err = BLASTestMetrics.relativeError(got, want)
                #expect(err < Self.tolerance, "path \(path), splits \(splits): relative error \(err), seed \(seed)")
            }
        }
    }

    @Test("attention() routes decode shapes to the kernel and prefill to the GEMMs")
    func routing() throws {
        func geometry(_ hq: Int, _ hkv: Int, _ tq: Int, _ tk: Int) throws -> AttentionGeometry {
            try AttentionGeometry(query: [1, hq, tq, 8], key: [1, hkv, tk, 8], value: [1, hkv, tk, 8], causal: true, scale: 1)
        }
        #expect(BLASBackend.usesDecodeKernel(try geometry(32, 8, 1, 4096)))   // the issue's decode: 4 rows per KV head
        #expect(BLASBackend.usesDecodeKernel(try geometry(8, 8, 8, 100)))     // short speculative block, no GQA
        #expect(!BLASBackend.usesDecodeKernel(try geometry(32, 8, 512, 512))) // prefill
        #expect(!BLASBackend.usesDecodeKernel(try geometry(32, 1, 1, 100)))   // 32 rows per KV head: GEMM territory

        // Through the public entry point, with fresh inputs, on several worker counts (split plans differ).
        let seed = BLASTestMetrics.freshSeed()
        let q = Tensor.random(shape: [1, 12, 1, 40], seed: seed)
        let k = Tensor.random(shape: [1, 3, 1500, 40], seed: seed &+ 1)
        let v = Tensor.random(shape: [1, 3, 1500, 40], seed: seed &+ 2)
        let want = try reference.attention(query: q, key: k, value: v, causal: true)
        for threads in [1, 2, 5] {
            let backend = try BLASBackend(configuration: .init(threads: threads))
            let got = try backend.attention(query: q, key: k, value: v, causal: true)
            let err = BLASTestMetrics.relativeError(got, want)
            #expect(err < Self.tolerance, "threads \(threads): relative error \(err), seed \(seed)")
        }
    }

    @Test("the automatic split plan: one range per head when heads share out evenly, more otherwise")
    func splitPlan() throws {
        let decode = try AttentionGeometry(query: [1, 32, 1, 128], key: [1, 8, 4096, 128], value: [1, 8, 4096, 128], causal: true, scale: 1)
        #expect(DecodePlan(decode, workers: 2).splits == 1)
        #expect(DecodePlan(decode, workers: 1).splits == 1)
        let oneHead = try AttentionGeometry(query: [1, 4, 1, 64], key: [1, 1, 4096, 64], value: [1, 1, 4096, 64], causal: true, scale: 1)
        let p = DecodePlan(oneHead, workers: 2)
        #expect(p.splits == 8)
        // The ranges tile the keys exactly.
        var next = 0
        for s in 0..<p.splits {
            let r = p.keyRange(s)
            #expect(r.begin == next && r.end > r.begin)
            next = r.end
        }
        #expect(next == 4096)
        // Short caches stay whole rather than splitting into ranges below the minimum.
        let short = try AttentionGeometry(query: [1, 4, 1, 64], key: [1, 1, 300, 64], value: [1, 1, 300, 64], causal: true, scale: 1)
        #expect(DecodePlan(short, workers: 2).splits == 1)
    }

    @Test("bad split count is a typed error")
    func badSplits() throws {
        let q = Tensor.random(shape: [1, 2, 1, 4], seed: 1)
        let k = Tensor.random(shape: [1, 1, 5, 4], seed: 2)
        #expect(throws: TensorError.self) {
            _ = try blas.decodeAttention(query: q, key: k, value: k, causal: false, scale: 1, splits: 0)
        }
    }
}
