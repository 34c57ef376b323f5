// QuantizeMatrix — quantize one weight matrix to every format, report the error and size,
// and run a quantized layer next to a Float32 one.
//
//     swift run QuantizeMatrix
import Foundation
import Quantization
import TensorCore

let rows = 256, columns = 512
// Weights like a trained projection: Gaussian with a few large outliers.
var weights = Tensor.random(shape: [rows, columns], seed: 1, distribution: .normal(mean: 0, standardDeviation: 0.02))
weights[3, 17] = 0.4
weights[200, 300] = -0.35

print("Quantizing a [\(rows), \(columns)] matrix (Float32: \(rows * columns * 4) bytes)")
print("format            bytes  bits/w      RMSE   SQNR dB    cosine")
for format in QuantizationFormat.allCases {
    let q = try QuantizedMatrix.quantize(weights, as: format, name: "example.weight")
    let r = try q.errorReport(against: weights, name: "example.weight")
    let name = format.name.padding(toLength: 15, withPad: " ", startingAt: 0)
    print(name + String(format: " %7d  %6.2f  %.2e  %8.2f  %.6f", q.bytes.count, q.bitsPerWeight, r.rmse, r.sqnrDB, r.cosineSimilarity))
}

// A decoder can hold some layers quantized and others in Float32 behind one protocol.
let backend = ReferenceBackend()
let x = Tensor.random(shape: [4, columns], seed: 2)
let dense: any LinearWeights = try DenseLinear(weight: weights)
let quantized: any LinearWeights = QuantizedLinear(try QuantizedMatrix.quantize(weights, as: .q4_0))
let yDense = try dense.apply(x, backend: backend)
let yQuant = try quantized.apply(x, backend: backend)
// The same product with the dequantized weights separates weight error from the kernel's activation rounding.
let yDequant = try DenseLinear(weight: try QuantizedMatrix.quantize(weights, as: .q4_0).dequantize()).apply(x, backend: backend)
func maxDiff(_ a: Tensor, _ b: Tensor) -> Float { zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? 0 }
let scale = yDense.scalars.map(abs).max() ?? 1
print("\nx [4, \(columns)] · Wᵀ with Q4_0 weights, kernel path \(QuantizedLinear.activeISA), relative to max |y| = \(scale):")
print(String(format: "  vs Float32 weights (weight quantization error): max |Δ| %.2f%%", 100 * maxDiff(yQuant, yDense) / scale))
print(String(format: "  vs dequantized weights (8-bit activation rounding only): max |Δ| %.2f%%", 100 * maxDiff(yQuant, yDequant) / scale))

// Bad input is a typed error, not a crash.
var broken = weights
broken[10, 20] = .nan
do {
    _ = try QuantizedMatrix.quantize(broken, as: .q8_0, name: "example.weight")
} catch {
    print("\nNaN weight: \(error)")
}
