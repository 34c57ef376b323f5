import Foundation
import Testing
import TensorCore
import Quantization
@testable import QuantizationOpenCL

/// The runtime, or the error creating it. Only a missing device skips the tests; any other failure
/// (a kernel that does not compile, a context error) fails them.
let runtimeResult: Result<OpenCLQuantizedRuntime, any Error> = Result { try OpenCLQuantizedRuntime() }
let hasOpenCLDevice: Bool = {
    if case let .failure(e as QuantizationError) = runtimeResult, e.code == .deviceUnavailable { return false }
    return true
}()
var sharedRuntime: OpenCLQuantizedRuntime? { get throws { try runtimeResult.get() } }

/// A runtime with the kernels of `layout` on the shared device (the GPU layout runs on PoCL too, so both
/// are checked on any machine).
func runtime(_ layout: QuantKernelSource.Layout) throws -> OpenCLQuantizedRuntime {
    let shared = try #require(try sharedRuntime)
    return try OpenCLQuantizedRuntime(backend: shared.backend, layout: layout)
}

/// Magnitude of the additive term `o` of the block holding column `k` of row `n` (the weight is `d·code + o`),
/// read from the format's byte layout: Q4_1 stores `m`; INT4 `−s·z` (z = 8 when symmetric). Q8_0 and
/// INT8 have none; Q4_0's −8 is applied to the integer codes, so its products `d·(u − 8)·x` are exact terms.
func offsetMagnitude(_ q: QuantizedMatrix, row n: Int, column k: Int) -> Float {
    func half(_ i: Int) -> Float { Float(Float16(bitPattern: UInt16(q.bytes[i]) | UInt16(q.bytes[i + 1]) << 8)) }
    switch q.format {
    case .q4_1: return abs(half((n * q.columns / 32 + k / 32) * 20 + 2))
    case let .int4Grouped(g, symmetric):
        let groups = q.columns / g, gi = n * groups + k / g
        let z: Float = symmetric ? 8 : Float(q.bytes[q.rows * groups * 2 + gi])
        return abs(half(gi * 2)) * z
    case .q8_0, .q4_0, .int8PerChannel: return 0
    }
}

@Suite("OpenCL quantized kernels vs dequantize + ReferenceBackend", .enabled(if: hasOpenCLDevice, "no OpenCL device"), .serialized)
struct OpenCLQuantizedTests {
    /// Every format × both kernel layouts × tile tails: odd N (row tiles of 2, and the CPU decode kernel's
    /// 16 rows per work-item, leave a tail), K not a multiple of 128 where the format allows, an odd and an
    /// even number of 32-weight blocks for decode (its loop takes two blocks at a time), K over two CPU panels
    /// for decode and batches (weights reordered on upload), T = 1 (decode kernel, N = 13, 53 and 21), T = 3 (fewer tokens than a batch tile) and T = 19 (two CPU tiles of 8 or four GPU
    /// tiles of 4, plus a tail of 3) and T = 11. Rows 0, 5, 10, … are scaled by 10⁻⁴ so their Float16 block scales
    /// are subnormal.
    ///
    /// Bound: the kernels dequantize exactly (`d·c` of a Float16 and an 8-bit code, and `d·(u − 8)`, fit
    /// Float32) and sum in Float32 in some order. Each of the K products and every partial sum, the
    /// per-block scale product and offset term pass through at most K + 4 roundings of relative size 2⁻²⁴
    /// applied to partial sums bounded by Σ(|d·c| + |o|)·|x| ≤ Σ(|w| + 2|o|)·|x| (|d·c| ≤ |w| + |o|), so
    /// |y − ref| ≤ (K + 4)·2⁻²⁴·Σ(|w| + 2|o|)·|x| to first order, plus 2⁻²⁴·|ref| for rounding the reference.
    @Test(arguments: QuantizationFormat.allCases, [QuantKernelSource.Layout.cpu, .gpu])
    func matchesReference(format: QuantizationFormat, layout: QuantKernelSource.Layout) throws {
        let rt = try runtime(layout)
        let bs = format.blockSize
        // The last K spans two CPU panels (`QuantKernelSource.panelBlocks` = 128 blocks) with a short second one.
        let ks = bs == 128 ? [128, 384, 640, 896, 4224] : bs == 64 ? [192, 448, 320, 576, 4160] : [96, 416, 224, 192, 4192]
        for (n, k, t) in [(13, ks[0], 1), (37, ks[1], 3), (91, ks[2], 19), (53, ks[3], 1), (21, ks[4], 1), (19, ks[4], 11)] {
            var w = Tensor.random(shape: [n, k], seed: UInt64(n * k), distribution: .normal(mean: 0, standardDeviation: 0.05))
            for o in stride(from: 0, to: n, by: 5) { for j in 0..<k { w[o, j] *= 1e-4 } }
            let x = Tensor.random(shape: [t, k], seed: UInt64(n + k), distribution: .normal(mean: 0, standardDeviation: 1))
            let q = try QuantizedMatrix.quantize(w, as: format)
            let wd = q.dequantize()
            let ref = try ReferenceBackend().matmul(x, wd, transposeA: false, transposeB: true)
            let y = try rt.makeLinear(q).apply(x)
            #expect(y.shape == Shape([t, n]))
            let xs = x.scalars, ws = wd.scalars
            let gamma = Double(k + 4) * 0x1p-24
            var worst = 0.0
            for o in 0..<n {
                let offsets = (0..<k).map { Double(offsetMagnitude(q, row: o, column: $0)) }
                for ti in 0..<t {
                    var mag = 0.0
                    for j in 0..<k { mag += (abs(Double(ws[o * k + j])) + 2 * offsets[j]) * abs(Double(xs[ti * k + j])) }
                    let r = Double(ref.scalars[ti * n + o])
                    let bound = gamma * mag + 0x1p-24 * abs(r) + 1e-30
                    worst = max(worst, abs(Double(y.scalars[ti * n + o]) - r) / bound)
                }
            }
            #expect(worst <= 1, "\(format) \(layout) layout [\(n), \(k)] T=\(t): error reached \(worst)× the bound")
        }
    }

    @Test func rejectsBadInput() throws {
        let rt = try #require(sharedRuntime)
        let w = Tensor.random(shape: [8, 64], seed: 1)
        let lin = try rt.makeLinear(QuantizedMatrix.quantize(w, as: .q4_0))
        #expect(throws: QuantizationError.self) { try lin.apply(Tensor.random(shape: [2, 63], seed: 1)) }
        var x = Tensor.random(shape: [1, 64], seed: 2)
        x[0, 3] = .infinity
        #expect(throws: QuantizationError.self) { try lin.apply(x) }
    }
}

/// The quantized layer on the shared TensorCoreOpenCL runtime: device-resident activations in and out,
/// chained with an `OpenCLBackend` op on the same queue.
@Suite("OpenCL quantized kernels on the shared runtime", .enabled(if: hasOpenCLDevice, "no OpenCL device"), .serialized)
struct OpenCLQuantizedSharedRuntimeTests {
    @Test func deviceResidentApplyChainsWithBackendOps() throws {
        let rt = try #require(sharedRuntime)
        let cl = rt.backend
        let seed = UInt64.random(in: 1...UInt64.max)
        let (n, k, t) = (29, 96, 3)
        let w = Tensor.random(shape: [n, k], seed: seed, distribution: .normal(mean: 0, standardDeviation: 0.05))
        let x = Tensor.random(shape: [t, k], seed: seed &+ 1, distribution: .normal(mean: 0, standardDeviation: 1))
        let q = try QuantizedMatrix.quantize(w, as: .q8_0)
        let layer = try rt.makeLinear(q)
        // y = silu(x · Wᵀ) entirely on the device; the oracle is the reference backend on dequantized weights.
        let y = try cl.download(cl.silu(layer.apply(cl.upload(x))))
        let ref = try ReferenceBackend().silu(ReferenceBackend().matmul(x, q.dequantize(), transposeA: false, transposeB: true))
        #expect(y.shape == Shape([t, n]))
        // Same bound as the matmul test (1e-5·Σ|w·x| on the product; silu is 1-Lipschitz-ish, |silu'| ≤ 1.1).
        let xs = x.scalars, ws = q.dequantize().scalars
        for ti in 0..<t {
            for o in 0..<n {
                var mag: Float = 0
                for j in 0..<k { mag += abs(xs[ti * k + j] * ws[o * k + j]) }
                #expect(abs(y.scalars[ti * n + o] - ref.scalars[ti * n + o]) <= 1.1e-5 * mag + 1e-6, "row \(o) t=\(ti), seed \(seed)")
            }
        }
        // A device tensor with the wrong K is a typed error.
        #expect(throws: QuantizationError.self) { _ = try layer.apply(cl.upload(Tensor(zeros: [2, k + 1]))) }
    }
}
