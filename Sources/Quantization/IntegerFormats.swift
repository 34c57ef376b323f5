/// The INT8 per-channel and INT4 grouped formats (planar layouts, see <doc:FormatLayouts>).
enum IntegerFormats {
    // MARK: INT8 per output channel

    /// Layout: `rows` Float32 scales (little-endian), then `rows × columns` int8 codes.
    /// `s = amax(row) / 127`, `q = round(x / s)` (half away from zero) in `[-127, 127]`.
    static func quantizeInt8(_ x: UnsafeBufferPointer<Float>, rows: Int, columns: Int, into y: UnsafeMutableBufferPointer<UInt8>) {
        let codes = rows * 4
        for r in 0..<rows {
            var amax: Float = 0
            for j in 0..<columns { amax = max(amax, abs(x[r * columns + j])) }
            let s = amax / 127
            let inv: Float = s != 0 ? 1 / s : 0
            let bits = s.bitPattern
            for k in 0..<4 { y[r * 4 + k] = UInt8(truncatingIfNeeded: bits >> (8 * k)) }
            for j in 0..<columns {
                let q = clampedTruncate((x[r * columns + j] * inv).rounded(.toNearestOrAwayFromZero), -127, 127)
                y[codes + r * columns + j] = UInt8(bitPattern: Int8(q))
            }
        }
    }

    static func readF32(_ b: UnsafeBufferPointer<UInt8>, _ at: Int) -> Float {
        var bits: UInt32 = 0
        for k in 0..<4 { bits |= UInt32(b[at + k]) << (8 * k) }
        return Float(bitPattern: bits)
    }

    static func dequantizeInt8(_ b: UnsafeBufferPointer<UInt8>, rows: Int, columns: Int, rowRange: Range<Int>, into out: UnsafeMutableBufferPointer<Float>) {
        var w = 0
        for r in rowRange {
            let s = readF32(b, r * 4)
            let base = rows * 4 + r * columns
            for j in 0..<columns { out[w + j] = Float(Int8(bitPattern: b[base + j])) * s }
            w += columns
        }
    }

    // MARK: INT4 grouped

    /// Section offsets of the INT4 layout: scales, zero points (asymmetric only), packed codes.
    struct Int4Layout {
        let groupsPerRow: Int
        let zerosOffset: Int
        let codesOffset: Int
        init(rows: Int, columns: Int, group: Int, symmetric: Bool) {
            groupsPerRow = columns / group
            zerosOffset = rows * groupsPerRow * 2
            codesOffset = zerosOffset + (symmetric ? 0 : rows * groupsPerRow)
        }
    }

    /// Symmetric: `s = fp16(amax / 7)`, `q = clamp(round(x / s), −7, 7)`, code `q + 8`; `x̂ = s·(code − 8)`.
    /// Asymmetric: the range `[min(min, 0), max(max, 0)]` (so 0 is exact), `s = fp16((hi − lo) / 15)`,
    /// `z = clamp(round(−lo / s), 0, 15)`, code `clamp(round(x / s) + z, 0, 15)`; `x̂ = s·(code − z)`.
    /// The codes are computed with the Float16-rounded scale, the one dequantization uses.
    /// Codes are packed per 32-weight sub-block like Q4_0: byte `j` holds weight `j` (low nibble) and `j + 16` (high).
    static func quantizeInt4(_ x: UnsafeBufferPointer<Float>, rows: Int, columns: Int, group: Int, symmetric: Bool,
                             into y: UnsafeMutableBufferPointer<UInt8>, name: String) throws {
        let L = Int4Layout(rows: rows, columns: columns, group: group, symmetric: symmetric)
        var codes = [UInt8](repeating: 0, count: group)
        for r in 0..<rows {
            for g in 0..<L.groupsPerRow {
                let base = r * columns + g * group
                var lo: Float = 0, hi: Float = 0
                for j in 0..<group { lo = min(lo, x[base + j]); hi = max(hi, x[base + j]) }
                let raw = symmetric ? max(-lo, hi) / 7 : (hi - lo) / 15
                let s16 = Float16(raw)
                guard s16.isFinite else {
                    throw QuantizationError(.scaleOverflow,
                        "\(name): row \(r) group \(g) needs scale \(raw), beyond Float16's ±65504; rescale the weights or use INT8/F16")
                }
                let s = Float(s16)
                let inv: Float = s != 0 ? 1 / s : 0
                let gi = r * L.groupsPerRow + g
                writeF16(s16, y, gi * 2)
                if symmetric {
                    for j in 0..<group {
                        let q = clampedTruncate((x[base + j] * inv).rounded(.toNearestOrAwayFromZero), -7, 7)
                        codes[j] = UInt8(q + 8)
                    }
                } else {
                    let z = s != 0 ? clampedTruncate((-lo * inv).rounded(.toNearestOrAwayFromZero), 0, 15) : 0
                    y[L.zerosOffset + gi] = UInt8(z)
                    for j in 0..<group {
                        let q = clampedTruncate((x[base + j] * inv).rounded(.toNearestOrAwayFromZero), -64, 64) + z
                        codes[j] = UInt8(min(15, max(0, q)))
                    }
                }
                let cbase = L.codesOffset + (r * columns + g * group) / 2
                for sb in 0..<(group / 32) {
                    for j in 0..<16 {
                        y[cbase + sb * 16 + j] = codes[sb * 32 + j] | codes[sb * 32 + j + 16] << 4
                    }
                }
            }
        }
    }

    static func dequantizeInt4(_ b: UnsafeBufferPointer<UInt8>, rows: Int, columns: Int, group: Int, symmetric: Bool,
                               rowRange: Range<Int>, into out: UnsafeMutableBufferPointer<Float>) {
        let L = Int4Layout(rows: rows, columns: columns, group: group, symmetric: symmetric)
        var w = 0
        for r in rowRange {
            for g in 0..<L.groupsPerRow {
                let gi = r * L.groupsPerRow + g
                let s = readF16(b, gi * 2)
                let z = symmetric ? 8 : Int(b[L.zerosOffset + gi])
                let cbase = L.codesOffset + (r * columns + g * group) / 2
                for sb in 0..<(group / 32) {
                    for j in 0..<16 {
                        let v = b[cbase + sb * 16 + j]
                        out[w + sb * 32 + j] = Float(Int(v & 0x0F) - z) * s
                        out[w + sb * 32 + j + 16] = Float(Int(v >> 4) - z) * s
                    }
                }
                w += group
            }
        }
    }
}
