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

@Suite("OpenCL quantized kernels vs dequantize + ReferenceBackend", .enabled(if: hasOpenCLDevice, "no OpenCL device"), .serialized)
struct OpenCLQuantizedTests {
    /// The kernel dequantizes each weight exactly (Float16 scale × code) and sums Float32 products, so it
    /// matches the Float64 reference on dequantized weights to Float32 summation error: ≤ K·2⁻²³·Σ|w·x|
    /// (a loose worst case; the bound below uses 1e-5·Σ|w·x| for K ≤ 448, which exceeds K·2⁻²⁴ with margin).
    @Test(arguments: QuantizationFormat.allCases)
    func matchesReference(format: QuantizationFormat) throws {
        let rt = try #require(sharedRuntime)
        let k2 = format.blockSize == 128 ? 384 : format.blockSize == 64 ? 448 : 416
        for (n, k, t) in [(13, format.blockSize == 128 ? 128 : 96 / 32 * 32 * (format.blockSize == 64 ? 2 : 1), 1), (37, k2, 5), (70, format.blockSize, 3)] {
            let w = Tensor.random(shape: [n, k], seed: UInt64(n * k), distribution: .normal(mean: 0, standardDeviation: 0.05))
            let x = Tensor.random(shape: [t, k], seed: UInt64(n + k), distribution: .normal(mean: 0, standardDeviation: 1))
            let q = try QuantizedMatrix.quantize(w, as: format)
            let wd = q.dequantize()
            let ref = try ReferenceBackend().matmul(x, wd, transposeA: false, transposeB: true)
            let y = try rt.makeLinear(q).apply(x)
            #expect(y.shape == Shape([t, n]))
            let xs = x.scalars, ws = wd.scalars
            for ti in 0..<t {
                for o in 0..<n {
                    var mag: Float = 0
                    for j in 0..<k { mag += abs(xs[ti * k + j] * ws[o * k + j]) }
                    #expect(abs(y.scalars[ti * n + o] - ref.scalars[ti * n + o]) <= 1e-5 * mag + 1e-30, "\(format) [\(n), \(k)] t=\(ti) row \(o)")
                }
            }
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
