import Foundation

/// Small vector loops of the forward pass, over raw pointers (8-lane SIMD where it pays).
enum VectorOps {
    /// `out = x / sqrt(mean(x²) + ε) · weight` over `count` elements.
    @inline(__always)
    static func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, count n: Int, epsilon: Float, into out: UnsafeMutablePointer<Float>) {
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        let raw = UnsafeRawPointer(x)
        while i + 8 <= n {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            acc += v * v
            i += 8
        }
        var sum = Double(acc.sum())
        while i < n {
            sum += Double(x[i]) * Double(x[i])
            i += 1
        }
        let scale = Float(1 / (sum / Double(n) + Double(epsilon)).squareRoot())
        let wr = UnsafeRawPointer(weight)
        let orw = UnsafeMutableRawPointer(out)
        i = 0
        while i + 8 <= n {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            let g = wr.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            orw.storeBytes(of: v * scale * g, toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n {
            out[i] = x[i] * scale * weight[i]
            i += 1
        }
    }

    /// Rotates pairs `(x[2j], x[2j + 1])` by the angle whose (cos, sin) is `table[2j], table[2j + 1]`.
    @inline(__always)
    static func ropeAdjacentPairs(_ x: UnsafeMutablePointer<Float>, table: UnsafePointer<Float>, pairs: Int) {
        for j in 0..<pairs {
            let c = table[2 * j], s = table[2 * j + 1]
            let a = x[2 * j], b = x[2 * j + 1]
            x[2 * j] = a * c - b * s
            x[2 * j + 1] = a * s + b * c
        }
    }

    /// `y += x` over `count` elements.
    @inline(__always)
    static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count n: Int) {
        let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y)
        var i = 0
        while i + 8 <= n {
            let v = xr.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) + yr.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            yr.storeBytes(of: v, toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n {
            y[i] += x[i]
            i += 1
        }
    }
}
