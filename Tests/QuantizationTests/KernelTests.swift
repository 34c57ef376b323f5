import Foundation
import Testing
import TensorCore
@testable import Quantization

@Suite("Quantized CPU kernels vs dequantize + ReferenceBackend")
struct KernelTests {
    static let paths = ISA.allCases.filter { $0.rawValue <= ISA.detected.rawValue }

    /// The kernels compute Σ ŵ·x̂ exactly in integers (up to Float32 rounding of the per-block sums),
    /// where x̂ is the activation rounded to the 8-bit grid of its block: |x̂ − x| ≤ d/2, d = max|x_block|/127.
    /// So per output |y − ŷ_ref| ≤ Σ_blocks (d/2)·Σ_block|ŵ| + 1e-5·Σ|ŵ||x| (Float32 accumulation), derived
    /// independently here in Float64 from the dequantized weights.
    func check(_ format: QuantizationFormat, n: Int, k: Int, tokens: Int, seed: UInt64, isa: ISA, threads: Int) throws {
        let w = Tensor.random(shape: [n, k], seed: seed, distribution: .normal(mean: 0, standardDeviation: 0.05))
        let x = Tensor.random(shape: [tokens, k], seed: seed &+ 1, distribution: .normal(mean: 0, standardDeviation: 1))
        let qm = try QuantizedMatrix.quantize(w, as: format)
        let wd = qm.dequantize()
        let ref = try ReferenceBackend().matmul(x, wd, transposeA: false, transposeB: true)
        let y = try QuantizedLinear(qm).apply(x, threads: threads, isa: isa)
        #expect(y.shape == Shape([tokens, n]))
        var worst = 0.0
        let xs = x.scalars, ws = wd.scalars, ys = y.scalars, rs = ref.scalars
        for t in 0..<tokens {
            for o in 0..<n {
                var bound = 0.0, mag = 0.0
                for b in 0..<(k / 32) {
                    var amax = 0.0, wsum = 0.0
                    for j in 0..<32 {
                        let xv = Double(abs(xs[t * k + b * 32 + j])), wv = Double(abs(ws[o * k + b * 32 + j]))
                        amax = max(amax, xv)
                        wsum += wv
                        mag += wv * xv
                    }
                    bound += amax / 127 / 2 * wsum
                }
                bound += 1e-5 * mag + 1e-30
                worst = max(worst, Double(abs(ys[t * n + o] - rs[t * n + o])) / bound)
            }
        }
        #expect(worst <= 1, "\(format) \(isa.name) N=\(n) K=\(k) T=\(tokens): error reached \(worst)× the bound")
    }

    @Test(arguments: QuantizationFormat.allCases)
    func matchesReferenceOnOddShapes(format: QuantizationFormat) throws {
        let k = format.blockSize == 128 ? 384 : format.blockSize == 64 ? 192 : 160
        for isa in Self.paths {
            try check(format, n: 13, k: k, tokens: 1, seed: 1, isa: isa, threads: 1)    // GEMV, rows not a multiple of 8
            try check(format, n: 37, k: k, tokens: 7, seed: 2, isa: isa, threads: 3)    // GEMM: a token tile plus a tail
            try check(format, n: 8, k: k, tokens: 13, seed: 3, isa: isa, threads: 2)
            try check(format, n: 29, k: k, tokens: 11, seed: 4, isa: isa, threads: 1)   // group pairs: an 8-token tile plus a tail
            try check(format, n: 53, k: k, tokens: 1, seed: 5, isa: isa, threads: 2)    // decode: 3 group pairs + an unpaired group over 2 threads
            try check(format, n: 91, k: k, tokens: 1, seed: 6, isa: isa, threads: 3)    // decode: 12 groups split 3 ways, partial last group
        }
    }

    /// Every path computes the same integer dot products, so the paths agree to Float32 rounding.
    @Test func pathsAgree() throws {
        let w = try QuantizedMatrix.quantize(Tensor.random(shape: [29, 256], seed: 9), as: .q4_1)
        let x = Tensor.random(shape: [5, 256], seed: 10)
        let lin = QuantizedLinear(w)
        let base = try lin.apply(x, threads: 1, isa: .scalar)
        for isa in Self.paths {
            let y = try lin.apply(x, threads: 2, isa: isa)
            for i in 0..<y.elementCount { #expect(abs(y.scalars[i] - base.scalars[i]) <= 1e-4 * max(1, abs(base.scalars[i]))) }
        }
    }

    @Test func zeroInputAndZeroWeights() throws {
        let lin = QuantizedLinear(try QuantizedMatrix.quantize(Tensor(zeros: [9, 64]), as: .q4_0))
        #expect(try lin.apply(Tensor.random(shape: [2, 64], seed: 1)).scalars.allSatisfy { $0 == 0 })
        let lin2 = QuantizedLinear(try QuantizedMatrix.quantize(Tensor.random(shape: [9, 64], seed: 2), as: .q8_0))
        #expect(try lin2.apply(Tensor(zeros: [3, 64])).scalars.allSatisfy { $0 == 0 })
    }

    @Test func mixedDenseAndQuantizedLayers() throws {
        let backend = ReferenceBackend()
        let w1 = Tensor.random(shape: [40, 64], seed: 4, distribution: .normal(mean: 0, standardDeviation: 0.1))
        let w2 = Tensor.random(shape: [24, 40], seed: 5, distribution: .normal(mean: 0, standardDeviation: 0.1))
        // 40 columns is not a multiple of 32, so the second layer stays dense; the first runs Q8_0.
        let layers: [any LinearWeights] = [QuantizedLinear(try QuantizedMatrix.quantize(w1, as: .q8_0)), try DenseLinear(weight: w2)]
        let x = Tensor.random(shape: [2, 3, 64], seed: 6)
        var h = x
        for l in layers { h = try l.apply(h, backend: backend) }
        #expect(h.shape == Shape([2, 3, 24]))
        let exact = try backend.matmul(backend.matmul(x.reshaped([6, 64]), w1, transposeA: false, transposeB: true), w2, transposeA: false, transposeB: true)
        let rel = zip(h.scalars, exact.scalars).map { abs($0 - $1) }.max()! / exact.scalars.map(abs).max()!
        #expect(rel < 0.02)  // Q8_0 weights + 8-bit activations: ~0.5% relative error per layer
    }

    @Test func badInputs() throws {
        let lin = QuantizedLinear(try QuantizedMatrix.quantize(Tensor.random(shape: [8, 64], seed: 1), as: .q4_0))
        let e = #expect(throws: QuantizationError.self) { try lin.apply(Tensor.random(shape: [2, 63], seed: 1)) }
        #expect(e?.code == .invalidShape)
        var x = Tensor.random(shape: [2, 64], seed: 1)
        x[1, 5] = .nan
        let e2 = #expect(throws: QuantizationError.self) { try lin.apply(x) }
        #expect(e2?.code == .nonFinite)
    }
}
