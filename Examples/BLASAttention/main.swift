// Grouped-query attention on the BLAS backend, checked against the reference backend.
//
//   swift run -c release BLASAttention
import Foundation
import TensorCore
import TensorCoreBLAS

let blas = BLASBackend()
let reference = ReferenceBackend()
print("backend: \(blas.deviceDescription)")

// A prompt of 257 tokens with 8 query heads sharing 2 KV heads (GQA ratio 4), head dimension 64.
let query = Tensor.random(shape: [1, 8, 257, 64], seed: 1)   // [B, Hq, T, D]
let key = Tensor.random(shape: [1, 2, 257, 64], seed: 2)     // [B, Hkv, T, D]
let value = Tensor.random(shape: [1, 2, 257, 64], seed: 3)   // [B, Hkv, T, D]

let start = Date()
let fast = try blas.attention(query: query, key: key, value: value, causal: true)
let fastSeconds = Date().timeIntervalSince(start)
let oracle = try reference.attention(query: query, key: key, value: value, causal: true)

var worst: Float = 0, scale: Float = 0
for (a, b) in zip(fast.scalars, oracle.scalars) {
    worst = max(worst, abs(a - b))
    scale = max(scale, abs(b))
}
print("output \(fast.shape), \(String(format: "%.2f", fastSeconds * 1000)) ms, max error relative to output scale \(worst / scale)")

// Decode: one new token attends to the whole cache (the causal mask is aligned to the end).
let q1 = Tensor.random(shape: [1, 8, 1, 64], seed: 4)
let next = try blas.attention(query: q1, key: key, value: value, causal: true)
print("decode step output \(next.shape)")

// Bad input is a typed error, never a crash.
do {
    _ = try blas.attention(query: Tensor(zeros: [1, 3, 4, 64]), key: key, value: value, causal: false)
} catch let error as TensorError {
    print("rejected: \(error)")
}
