import Foundation
import TensorCore

extension BLASBackend {
    public func softmax(_ x: Tensor) throws -> Tensor {
        let (rows, d) = try OpValidation.softmax(x.shape)
        return x.withUnsafeBufferPointer { xp in
            Tensor(shape: x.shape) { out in
                guard let src = xp.baseAddress, let dst = out.baseAddress else { return }
                for r in 0..<rows {
                    let row = dst + r * d
                    row.update(from: src + r * d, count: d)
                    let m = rowMax(row, d)
                    guard m.isFinite else {
                        // All −inf (fully masked) → zeros; +inf or NaN → no meaningful softmax (as the reference).
                        row.update(repeating: m == -.infinity ? 0 : .nan, count: d)
                        continue
                    }
                    // e^(x − m) = 2^((x − m)·log2e): scale once, then exponentiate in base 2.
                    scaleRow(row, d, by: log2e)
                    let sum = exp2ShiftedSum(row, d, shift: m * log2e)
                    scaleRow(row, d, by: 1 / sum)
                }
            }
        }
    }

    public func rmsNorm(_ x: Tensor, weight: Tensor, epsilon: Float) throws -> Tensor {
        let (rows, d) = try OpValidation.rmsNorm(x.shape, weight: weight.shape, epsilon: epsilon)
        return x.withUnsafeBufferPointer { xp in
            weight.withUnsafeBufferPointer { wp in
                Tensor(shape: x.shape) { out in
                    guard let src = xp.baseAddress, let w = wp.baseAddress, let dst = out.baseAddress else { return }
                    for r in 0..<rows {
                        let xr = src + r * d, yr = dst + r * d
                        var acc0 = Vec(), acc1 = Vec()
                        var i = 0
                        while i + 32 <= d {
                            let a = loadVec(xr + i), b = loadVec(xr + i + 16)
                            acc0 += a * a
                            acc1 += b * b
                            i += 32
                        }
                        if i + 16 <= d {
                            let a = loadVec(xr + i)
                            acc0 += a * a
                            i += 16
                        }
                        // Sum of squares in Float64 across lanes and tail (the per-lane sums are short).
                        var ss = Double((acc0 + acc1).sum())
                        while i < d {
                            ss += Double(xr[i]) * Double(xr[i])
                            i += 1
                        }
                        let inv = Float(1 / (ss / Double(d) + Double(epsilon)).squareRoot())
                        let f = Vec(repeating: inv)
                        i = 0
                        while i + 16 <= d {
                            storeVec(loadVec(xr + i) * f * loadVec(w + i), yr + i)
                            i += 16
                        }
                        while i < d {
                            yr[i] = xr[i] * inv * w[i]
                            i += 1
                        }
                    }
                }
            }
        }
    }

    public func rope(_ x: Tensor, positions: [Int], theta: Float, style: RotaryStyle) throws -> Tensor {
        let (b, h, t, d) = try OpValidation.rope(x.shape, positions: positions, theta: theta)
        let half = d / 2
        let inv = OpValidation.ropeInverseFrequencies(dim: d, theta: theta)
        // cos/sin tables per distinct position row ([P, D/2]), computed in Float64 as the reference does.
        let perSequence = positions.count != t
        var cosTable = [Float](repeating: 0, count: positions.count * half)
        var sinTable = [Float](repeating: 0, count: positions.count * half)
        for (pi, pos) in positions.enumerated() {
            for i in 0..<half {
                let angle = Double(pos) * inv[i]
                cosTable[pi * half + i] = Float(cos(angle))
                sinTable[pi * half + i] = Float(sin(angle))
            }
        }
        return x.withUnsafeBufferPointer { xp in
            cosTable.withUnsafeBufferPointer { cp in
                sinTable.withUnsafeBufferPointer { sp in
                    Tensor(shape: x.shape) { out in
                        guard let src = xp.baseAddress, let dst = out.baseAddress,
                              let cosBase = cp.baseAddress, let sinBase = sp.baseAddress else { return }
                        for bi in 0..<b {
                            for hi in 0..<h {
                                for ti in 0..<t {
                                    let row = ((bi * h + hi) * t + ti) * d
                                    let pi = perSequence ? bi * t + ti : ti
                                    let c = cosBase + pi * half, s = sinBase + pi * half
                                    switch style {
                                    case .halfSplit:
                                        ropeHalfSplit(src + row, dst + row, c, s, half)
                                    case .interleaved:
                                        ropeInterleaved(src + row, dst + row, c, s, half)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    public func silu(_ x: Tensor) throws -> Tensor {
        x.withUnsafeBufferPointer { xp in
            Tensor(shape: x.shape) { out in
                guard let src = xp.baseAddress, let dst = out.baseAddress else { return }
                let n = xp.count
                var i = 0
                while i + 16 <= n {
                    storeVec(siluVec(loadVec(src + i)), dst + i)
                    i += 16
                }
                if i < n {
                    // Tail through a padded vector so every element uses the same formula.
                    var v = Vec()
                    for j in i..<n { v[j - i] = src[j] }
                    let y = siluVec(v)
                    for j in i..<n { dst[j] = y[j - i] }
                }
            }
        }
    }

    public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try elementwise("add", a, b, { $0 + $1 }, { $0 + $1 })
    }

    public func mul(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try elementwise("mul", a, b, { $0 * $1 }, { $0 * $1 })
    }

    /// `a ⊙ b` with `b` broadcast over `a`'s leading dimensions (`b`'s shape is a suffix of `a`'s).
    @inline(__always)
    private func elementwise(_ op: String, _ a: Tensor, _ b: Tensor,
                             _ vf: (Vec, Vec) -> Vec, _ sf: (Float, Float) -> Float) throws -> Tensor {
        let g = try BroadcastGeometry(op, a.shape, b.shape)
        return a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                Tensor(shape: a.shape) { out in
                    guard let x = ap.baseAddress, let y = bp.baseAddress, let z = out.baseAddress else { return }
                    let period = g.period
                    if period == 1 {
                        let s = y[0], sv = Vec(repeating: y[0])
                        var i = 0
                        while i + 16 <= g.count {
                            storeVec(vf(loadVec(x + i), sv), z + i)
                            i += 16
                        }
                        while i < g.count {
                            z[i] = sf(x[i], s)
                            i += 1
                        }
                    } else if period < 16 {
                        for i in 0..<g.count { z[i] = sf(x[i], y[i % period]) }
                    } else {
                        // One pass per repetition of b: contiguous vectors over both operands.
                        var base = 0
                        while base < g.count {
                            let xr = x + base, zr = z + base
                            var i = 0
                            while i + 16 <= period {
                                storeVec(vf(loadVec(xr + i), loadVec(y + i)), zr + i)
                                i += 16
                            }
                            while i < period {
                                zr[i] = sf(xr[i], y[i])
                                i += 1
                            }
                            base += period
                        }
                    }
                }
            }
        }
    }
}

/// `x · sigmoid(x)` lane-wise, with `e = e^(−|x|) ≤ 1` so nothing overflows:
/// sigmoid is `1/(1+e)` for `x ≥ 0` and `e/(1+e)` for `x < 0`.
@inline(__always)
func siluVec(_ x: Vec) -> Vec {
    let negAbs = x.replacing(with: -x, where: x .> 0)
    let e = expVec(negAbs)
    let denom = Vec(repeating: 1) + e
    let numer = Vec(repeating: 1).replacing(with: e, where: x .< 0)
    return x * numer / denom
}

/// Half-split rotation: pairs `(i, i + D/2)`.
@inline(__always)
private func ropeHalfSplit(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                           _ c: UnsafePointer<Float>, _ s: UnsafePointer<Float>, _ half: Int) {
    var i = 0
    while i + 16 <= half {
        let x0 = loadVec(x + i), x1 = loadVec(x + half + i)
        let cv = loadVec(c + i), sv = loadVec(s + i)
        storeVec(x0 * cv - x1 * sv, y + i)
        storeVec(x0 * sv + x1 * cv, y + half + i)
        i += 16
    }
    while i < half {
        let x0 = x[i], x1 = x[half + i]
        y[i] = x0 * c[i] - x1 * s[i]
        y[half + i] = x0 * s[i] + x1 * c[i]
        i += 1
    }
}

/// Interleaved rotation: pairs `(2i, 2i + 1)`. Sixteen lanes hold eight pairs; the
/// even/odd lanes are split with `evenHalf`/`oddHalf` and merged back after rotating.
@inline(__always)
private func ropeInterleaved(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                             _ c: UnsafePointer<Float>, _ s: UnsafePointer<Float>, _ half: Int) {
    var i = 0
    while i + 8 <= half {
        let v = loadVec(x + 2 * i)
        let even = v.evenHalf, odd = v.oddHalf
        let cv = UnsafeRawPointer(c + i).loadUnaligned(as: SIMD8<Float>.self)
        let sv = UnsafeRawPointer(s + i).loadUnaligned(as: SIMD8<Float>.self)
        let re = even * cv - odd * sv
        let ro = even * sv + odd * cv
        var merged = Vec()
        merged.evenHalf = re
        merged.oddHalf = ro
        storeVec(merged, y + 2 * i)
        i += 8
    }
    while i < half {
        let x0 = x[2 * i], x1 = x[2 * i + 1]
        y[2 * i] = x0 * c[i] - x1 * s[i]
        y[2 * i + 1] = x0 * s[i] + x1 * c[i]
        i += 1
    }
}
