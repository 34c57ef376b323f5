/// ggml's reference quantizers for Q8_0, Q4_0 and Q4_1, reproduced operation for operation
/// (Float32 arithmetic, the same rounding and truncation) so the bytes match llama.cpp's
/// `quantize_row_*_ref` exactly. Tested against vectors produced by the `gguf` Python package.
enum GGMLBlocks {
    static let qk = 32

    static func checkScale(_ d: Float, _ what: String, _ name: String, block: Int) throws -> Float16 {
        let h = Float16(d)
        guard h.isFinite else {
            throw QuantizationError(.scaleOverflow,
                "\(name): block \(block) needs \(what) \(d), beyond Float16's ±65504; the weights are too large for this format (use F32/F16 or rescale)")
        }
        return h
    }

    /// Q8_0: `d = amax / 127`, `q = roundf(x · (1/d))` (half away from zero).
    static func quantizeQ8_0(_ x: UnsafeBufferPointer<Float>, into y: UnsafeMutableBufferPointer<UInt8>, name: String) throws {
        let nb = x.count / qk
        for i in 0..<nb {
            var amax: Float = 0
            for j in 0..<qk { amax = max(amax, abs(x[i * qk + j])) }
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            let o = i * 34
            writeF16(try checkScale(d, "scale", name, block: i), y, o)
            for j in 0..<qk {
                let v = (x[i * qk + j] * id).rounded(.toNearestOrAwayFromZero)
                y[o + 2 + j] = UInt8(bitPattern: Int8(clampedTruncate(v, -128, 127)))
            }
        }
    }

    /// Q4_0: `d = max / -8` where `max` is the first element of largest magnitude (sign kept),
    /// `q = min(15, trunc(x · (1/d) + 8.5))`; low nibbles hold weights 0–15, high nibbles 16–31.
    static func quantizeQ4_0(_ x: UnsafeBufferPointer<Float>, into y: UnsafeMutableBufferPointer<UInt8>, name: String) throws {
        let nb = x.count / qk
        for i in 0..<nb {
            var amax: Float = 0, maxv: Float = 0
            for j in 0..<qk {
                let v = x[i * qk + j]
                if amax < abs(v) { amax = abs(v); maxv = v }
            }
            let d = maxv / -8
            let id: Float = d != 0 ? 1 / d : 0
            let o = i * 18
            writeF16(try checkScale(d, "scale", name, block: i), y, o)
            for j in 0..<qk / 2 {
                let x0 = x[i * qk + j] * id
                let x1 = x[i * qk + qk / 2 + j] * id
                let q0 = min(15, clampedTruncate(x0 + 8.5, -128, 127))
                let q1 = min(15, clampedTruncate(x1 + 8.5, -128, 127))
                y[o + 2 + j] = UInt8(truncatingIfNeeded: q0) & 0x0F | UInt8(truncatingIfNeeded: q1) << 4
            }
        }
    }

    /// Q4_1: `d = (max − min) / 15`, `m = min`, `q = min(15, trunc((x − min) · (1/d) + 0.5))`.
    static func quantizeQ4_1(_ x: UnsafeBufferPointer<Float>, into y: UnsafeMutableBufferPointer<UInt8>, name: String) throws {
        let nb = x.count / qk
        for i in 0..<nb {
            var mn = Float.greatestFiniteMagnitude, mx = -Float.greatestFiniteMagnitude
            for j in 0..<qk {
                let v = x[i * qk + j]
                if v < mn { mn = v }
                if v > mx { mx = v }
            }
            let d = (mx - mn) / 15
            let id: Float = d != 0 ? 1 / d : 0
            let o = i * 20
            writeF16(try checkScale(d, "scale", name, block: i), y, o)
            writeF16(try checkScale(mn, "minimum", name, block: i), y, o + 2)
            for j in 0..<qk / 2 {
                let x0 = (x[i * qk + j] - mn) * id
                let x1 = (x[i * qk + qk / 2 + j] - mn) * id
                let q0 = min(15, clampedTruncate(x0 + 0.5, -128, 127))
                let q1 = min(15, clampedTruncate(x1 + 0.5, -128, 127))
                y[o + 4 + j] = UInt8(truncatingIfNeeded: q0) & 0x0F | UInt8(truncatingIfNeeded: q1) << 4
            }
        }
    }

    static func dequantize(_ f: QuantizationFormat, _ b: UnsafeBufferPointer<UInt8>, columns: Int, rows: Range<Int>, into out: UnsafeMutableBufferPointer<Float>) {
        let nb = columns / qk
        let blockBytes = f == .q8_0 ? 34 : f == .q4_0 ? 18 : 20
        var w = 0
        for r in rows {
            for i in 0..<nb {
                let o = (r * nb + i) * blockBytes
                let d = readF16(b, o)
                switch f {
                case .q8_0:
                    for j in 0..<qk { out[w + j] = Float(Int8(bitPattern: b[o + 2 + j])) * d }
                case .q4_0:
                    for j in 0..<qk / 2 {
                        let v = b[o + 2 + j]
                        out[w + j] = Float(Int(v & 0x0F) - 8) * d
                        out[w + j + 16] = Float(Int(v >> 4) - 8) * d
                    }
                default:
                    let m = readF16(b, o + 2)
                    for j in 0..<qk / 2 {
                        let v = b[o + 4 + j]
                        out[w + j] = Float(v & 0x0F) * d + m
                        out[w + j + 16] = Float(v >> 4) * d + m
                    }
                }
                w += qk
            }
        }
    }
}
