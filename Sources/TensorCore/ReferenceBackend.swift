import Foundation

/// Plain-Swift backend: straightforward loops accumulating in Float64.
///
/// It is the oracle every other backend is tested against, so it favours
/// obvious correctness over speed. Use it for tests and tiny problems.
public struct ReferenceBackend: ComputeBackend {
    public init() {}

    public var name: String { "reference" }
    public var deviceDescription: String { "plain Swift on the host CPU (Float64 accumulation)" }

    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) throws -> Tensor {
        let g = try MatmulGeometry(a.shape, b.shape, transposeA: transposeA, transposeB: transposeB)
        let (m, n, k) = (g.m, g.n, g.k)
        let av = a.scalars, bv = b.scalars
        return Tensor(shape: g.outputShape) { out in
            for batch in 0..<g.batch {
                let aBase = batch * m * k
                let bBase = g.sharedB ? 0 : batch * k * n
                for i in 0..<m {
                    for j in 0..<n {
                        var acc = 0.0
                        for p in 0..<k {
                            let x = transposeA ? av[aBase + p * m + i] : av[aBase + i * k + p]
                            let y = transposeB ? bv[bBase + j * k + p] : bv[bBase + p * n + j]
                            acc += Double(x) * Double(y)
                        }
                        out[batch * m * n + i * n + j] = Float(acc)
                    }
                }
            }
        }
    }

    public func attention(query: Tensor, key: Tensor, value: Tensor, causal: Bool, scale: Float) throws -> Tensor {
        let g = try AttentionGeometry(query: query.shape, key: key.shape, value: value.shape, causal: causal, scale: scale)
        let (tq, tk, d) = (g.queryLength, g.keyLength, g.headDim)
        let q = query.scalars, k = key.scalars, v = value.scalars
        return Tensor(shape: g.outputShape) { out in
            var scores = [Double](repeating: 0, count: tk)
            for b in 0..<g.batch {
                for h in 0..<g.queryHeads {
                    let kvh = h / g.groupSize
                    let qBase = ((b * g.queryHeads + h) * tq) * d
                    let kvBase = ((b * g.kvHeads + kvh) * tk) * d
                    for i in 0..<tq {
                        let visible = g.visibleKeys(forQuery: i)
                        var maxScore = -Double.infinity
                        for j in 0..<visible {
                            var dot = 0.0
                            for x in 0..<d { dot += Double(q[qBase + i * d + x]) * Double(k[kvBase + j * d + x]) }
                            scores[j] = dot * Double(scale)
                            maxScore = max(maxScore, scores[j])
                        }
                        var sum = 0.0
                        for j in 0..<visible {
                            scores[j] = exp(scores[j] - maxScore)
                            sum += scores[j]
                        }
                        for x in 0..<d {
                            var acc = 0.0
                            for j in 0..<visible { acc += scores[j] * Double(v[kvBase + j * d + x]) }
                            out[qBase + i * d + x] = Float(acc / sum)
                        }
                    }
                }
            }
        }
    }

    public func softmax(_ x: Tensor) throws -> Tensor {
        let (rows, d) = try OpValidation.softmax(x.shape)
        let xs = x.scalars
        return Tensor(shape: x.shape) { out in
            for r in 0..<rows {
                let row = xs[(r * d)..<(r * d + d)]
                let m = Double(row.max()!)
                if !m.isFinite {
                    // An all -inf row (fully masked) or a +inf/NaN row has no meaningful softmax.
                    for j in 0..<d { out[r * d + j] = m == -.infinity ? 0 : .nan }
                    continue
                }
                var sum = 0.0
                for v in row { sum += exp(Double(v) - m) }
                for (j, v) in row.enumerated() { out[r * d + j] = Float(exp(Double(v) - m) / sum) }
            }
        }
    }

    public func rmsNorm(_ x: Tensor, weight: Tensor, epsilon: Float) throws -> Tensor {
        let (rows, d) = try OpValidation.rmsNorm(x.shape, weight: weight.shape, epsilon: epsilon)
        let xs = x.scalars, w = weight.scalars
        return Tensor(shape: x.shape) { out in
            for r in 0..<rows {
                var ss = 0.0
                for j in 0..<d { ss += Double(xs[r * d + j]) * Double(xs[r * d + j]) }
                let inv = 1 / (ss / Double(d) + Double(epsilon)).squareRoot()
                for j in 0..<d { out[r * d + j] = Float(Double(xs[r * d + j]) * inv * Double(w[j])) }
            }
        }
    }

    public func rope(_ x: Tensor, positions: [Int], theta: Float, style: RotaryStyle) throws -> Tensor {
        let (b, h, t, d) = try OpValidation.rope(x.shape, positions: positions, theta: theta)
        let inv = OpValidation.ropeInverseFrequencies(dim: d, theta: theta)
        let xs = x.scalars
        let half = d / 2
        return Tensor(shape: x.shape) { out in
            for bi in 0..<b {
                for hi in 0..<h {
                    for ti in 0..<t {
                        let pos = Double(positions.count == t ? positions[ti] : positions[bi * t + ti])
                        let base = ((bi * h + hi) * t + ti) * d
                        for i in 0..<half {
                            let angle = pos * inv[i]
                            let (c, s) = (cos(angle), sin(angle))
                            let (i0, i1) = style == .halfSplit ? (i, i + half) : (2 * i, 2 * i + 1)
                            let x0 = Double(xs[base + i0]), x1 = Double(xs[base + i1])
                            out[base + i0] = Float(x0 * c - x1 * s)
                            out[base + i1] = Float(x0 * s + x1 * c)
                        }
                    }
                }
            }
        }
    }

    public func silu(_ x: Tensor) throws -> Tensor {
        let xs = x.scalars
        return Tensor(shape: x.shape) { out in
            for i in xs.indices {
                let v = Double(xs[i])
                out[i] = Float(v / (1 + exp(-v)))
            }
        }
    }

    public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try elementwise("add", a, b, +)
    }

    public func mul(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try elementwise("mul", a, b, *)
    }

    private func elementwise(_ op: String, _ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) throws -> Tensor {
        let g = try BroadcastGeometry(op, a.shape, b.shape)
        let av = a.scalars, bv = b.scalars
        return Tensor(shape: a.shape) { out in
            for i in 0..<g.count { out[i] = f(av[i], bv[i % g.period]) }
        }
    }
}
