import CInferenceKitBLAS
import Dispatch
import Foundation
import TensorCore

/// CPU backend: OpenBLAS `sgemm` for matrix products, blocked attention on
/// BLAS GEMMs with a fused online softmax, and vectorised loops for the
/// elementwise ops.
///
/// Shapes and errors match ``ReferenceBackend`` exactly (both use the shared
/// validation in `TensorCore`); results agree with it to the relative error
/// bounds stated in the tests (matmul and attention well under 1e-4).
///
/// ```swift
/// let blas = BLASBackend()
/// let y = try blas.matmul(x, w, transposeA: false, transposeB: true)   // [M, K] · [N, K]ᵀ
/// ```
public struct BLASBackend: ComputeBackend {
    /// Tuning knobs; the defaults are what the kernel benchmark measured best on a 2-core Zen 4.
    public struct Configuration: Sendable, Hashable {
        /// How attention uses the cores.
        public enum Threading: String, Sendable, Hashable, CaseIterable {
            /// Independent blocks run in parallel on `DispatchQueue.concurrentPerform`, each GEMM
            /// on one OpenBLAS thread (a single block, or a single worker, runs on the calling thread).
            case blocks
            /// Blocks run one after another and OpenBLAS threads each GEMM.
            case blasThreads
        }

        /// Worker threads for parallel blocks (`0`: one per active core).
        public var threads: Int
        /// How attention is parallelised.
        public var attentionThreading: Threading
        /// Query rows per attention GEMM, summed over the query heads that share a KV head (`0`: automatic, 256).
        public var attentionRowsPerBlock: Int
        /// Score-matrix elements per block (rows × keys) that bound the key block (`0`: automatic, 65 536 —
        /// 256 KiB of scores, which keeps a block's working set inside a 2 MiB L2).
        public var attentionScoresPerBlock: Int

        public init(threads: Int = 0, attentionThreading: Threading = .blocks, attentionRowsPerBlock: Int = 0, attentionScoresPerBlock: Int = 0) {
            self.threads = threads
            self.attentionThreading = attentionThreading
            self.attentionRowsPerBlock = attentionRowsPerBlock
            self.attentionScoresPerBlock = attentionScoresPerBlock
        }

        public static let `default` = Configuration()
    }

    public let configuration: Configuration

    /// A backend with the default configuration.
    public init() {
        configuration = .default
    }

    /// A backend with explicit tuning; throws ``TensorError/Code/invalidArgument`` for negative or absurd values.
    public init(configuration: Configuration) throws {
        let c = configuration
        guard (0...1024).contains(c.threads) else {
            throw TensorError(.invalidArgument, "BLASBackend: threads is \(c.threads); pass 0 (one per core) or 1…1024")
        }
        guard (0...65_536).contains(c.attentionRowsPerBlock) else {
            throw TensorError(.invalidArgument, "BLASBackend: attentionRowsPerBlock is \(c.attentionRowsPerBlock); pass 0 (automatic) or 1…65536")
        }
        guard (0...(1 << 26)).contains(c.attentionScoresPerBlock) else {
            throw TensorError(.invalidArgument, "BLASBackend: attentionScoresPerBlock is \(c.attentionScoresPerBlock); pass 0 (automatic) or 1…67108864")
        }
        self.configuration = configuration
    }

    /// The provider for ``BackendRegistry`` (name `blas`).
    public static let provider = BackendProvider(name: "blas", summary: "OpenBLAS sgemm, blocked attention with online softmax, vectorised loops") {
        BLASBackend()
    }

    public var name: String { "blas" }

    public var deviceDescription: String {
        let core = openblas_get_corename().map { String(cString: $0) } ?? "unknown core"
        let config = openblas_get_config().map { String(cString: $0) } ?? "OpenBLAS"
        return "\(config.trimmingCharacters(in: .whitespaces)) (core \(core)), \(OpenBLASThreads.current) BLAS threads, \(workerCount) workers on the host CPU"
    }

    /// Threads used for parallel blocks.
    var workerCount: Int {
        configuration.threads > 0 ? configuration.threads : HostCPU.activeProcessorCount
    }

    // MARK: - Matmul

    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) throws -> Tensor {
        let g = try MatmulGeometry(a.shape, b.shape, transposeA: transposeA, transposeB: transposeB)
        try Self.checkBLASRange("matmul", [g.batch * g.m, g.n, g.k], shapes: "a \(a.shape), b \(b.shape)")
        let (m, n, k) = (g.m, g.n, g.k)
        let ta = transposeA ? CblasTrans : CblasNoTrans
        let tb = transposeB ? CblasTrans : CblasNoTrans
        let lda = Int32(transposeA ? m : k)
        let ldb = Int32(transposeB ? k : n)
        return a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                Tensor(shape: g.outputShape) { out in
                    guard let A = ap.baseAddress, let B = bp.baseAddress, let C = out.baseAddress else { return }
                    if g.batch == 1 || (g.sharedB && !transposeA) {
                        // One GEMM: a shared b lets the batch fold into M ([B·M, K] · [K, N]).
                        cblas_sgemm(CblasRowMajor, ta, tb, Int32(g.batch * m), Int32(n), Int32(k),
                                    1, A, lda, B, ldb, 0, C, Int32(n))
                        return
                    }
                    let product: @Sendable (Int) -> Void = { [ap = SendablePointer(A), bp = SendablePointer(B), cp = SendableMutablePointer(C)] i in
                        cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(n), Int32(k),
                                    1, ap.pointer + i * m * k, lda,
                                    bp.pointer + (g.sharedB ? 0 : i * k * n), ldb,
                                    0, cp.pointer + i * m * n, Int32(n))
                    }
                    // Small products gain more from running side by side than from OpenBLAS's threads
                    // (OpenBLAS does not thread GEMMs under about 2^18 multiply-adds anyway).
                    let workers = workerCount
                    if workers > 1 && Double(m) * Double(n) * Double(k) < 4_194_304 {
                        OpenBLASThreads.withSingleThread {
                            DispatchQueue.concurrentPerform(iterations: g.batch, execute: product)
                        }
                    } else {
                        for i in 0..<g.batch { product(i) }
                    }
                }
            }
        }
    }

    static func checkBLASRange(_ op: String, _ dims: [Int], shapes: String) throws {
        guard dims.allSatisfy({ $0 <= Int(Int32.max) }) else {
            throw TensorError(.invalidArgument, "\(op): a dimension of \(shapes) exceeds \(Int32.max), the largest size OpenBLAS's 32-bit interface accepts; split the operation")
        }
    }
}

/// A pointer handed to parallel workers that write disjoint regions.
///
/// `@unchecked Sendable`: every use partitions the buffer so that no two
/// workers touch the same element, and the buffer outlives the parallel loop
/// (`concurrentPerform` returns only when all iterations are done).
struct SendablePointer: @unchecked Sendable {
    let pointer: UnsafePointer<Float>
    init(_ p: UnsafePointer<Float>) { pointer = p }
}

/// Mutable counterpart of ``SendablePointer`` (same invariant: disjoint writes, buffer outlives the loop).
struct SendableMutablePointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    init(_ p: UnsafeMutablePointer<Float>) { pointer = p }
}
