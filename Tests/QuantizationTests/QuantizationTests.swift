import Foundation
import Testing
import TensorCore
@testable import Quantization

/// Loads a committed fixture file.
func fixtureURL(_ name: String) throws -> URL {
    try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"))
}

func bytes(hex: String) -> [UInt8] {
    var out = [UInt8]()
    out.reserveCapacity(hex.utf8.count / 2)
    var it = hex.utf8.makeIterator()
    func nib(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : (c | 0x20) - 87 }
    while let a = it.next(), let b = it.next() { out.append(nib(a) << 4 | nib(b)) }
    return out
}

func floats(hex: String) -> [Float] {
    let b = bytes(hex: hex)
    return stride(from: 0, to: b.count, by: 4).map { i in
        Float(bitPattern: UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24)
    }
}

struct BlockVectors: Decodable {
    struct Case: Decodable {
        let name: String
        let rows: Int
        let columns: Int
        let input: String
        let q8_0: String
        let q4_0: String
        let q4_1: String
        let q8_0_dequantized: String
        let q4_0_dequantized: String
        let q4_1_dequantized: String
    }
    let cases: [Case]
}

@Suite("GGML block formats are byte-identical to the reference quantizer")
struct GGMLBitExactTests {
    static func load() throws -> BlockVectors {
        try JSONDecoder().decode(BlockVectors.self, from: Data(contentsOf: fixtureURL("ggml_blocks.json")))
    }

    @Test func quantizedBytesMatch() throws {
        let v = try Self.load()
        #expect(v.cases.count >= 10)
        for c in v.cases {
            let x = try Tensor(shape: [c.rows, c.columns], scalars: floats(hex: c.input))
            for (format, expected) in [(QuantizationFormat.q8_0, c.q8_0), (.q4_0, c.q4_0), (.q4_1, c.q4_1)] {
                let q = try QuantizedMatrix.quantize(x, as: format, name: c.name)
                let want = bytes(hex: expected)
                let firstDiff = zip(q.bytes, want).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                #expect(q.bytes == want, "\(c.name) \(format): first differing byte \(String(describing: firstDiff))")
            }
        }
    }

    @Test func dequantizedValuesMatch() throws {
        let v = try Self.load()
        for c in v.cases {
            for (format, hex, deq) in [(QuantizationFormat.q8_0, c.q8_0, c.q8_0_dequantized), (.q4_0, c.q4_0, c.q4_0_dequantized), (.q4_1, c.q4_1, c.q4_1_dequantized)] {
                let q = try QuantizedMatrix(format: format, rows: c.rows, columns: c.columns, bytes: bytes(hex: hex))
                #expect(q.dequantize().scalars == floats(hex: deq), "\(c.name) \(format)")
            }
        }
    }

    /// Hand-derived: amax 127 → d = 1, so 2.5 → 3 and −2.5 → −3 (roundf rounds half away from zero).
    @Test func q8TiesRoundAwayFromZero() throws {
        var x = [Float](repeating: 0, count: 32)
        x[0] = 127; x[1] = 2.5; x[2] = -2.5; x[3] = 0.5; x[4] = -0.5
        let q = try QuantizedMatrix.quantize(Tensor(shape: [1, 32], scalars: x), as: .q8_0)
        #expect(q.bytes[0] == 0x00 && q.bytes[1] == 0x3C)  // Float16(1.0) = 0x3C00, little-endian
        #expect(Array(q.bytes[2...6].map { Int8(bitPattern: $0) }) == [127, 3, -3, 1, -1])
    }

    /// Hand-derived: max −8 → d = 1; weight w gets code trunc(w + 8.5): 0.5 → 9, −0.5 → 8, −8 → 0;
    /// weight 16 (w = 7.5) → 16 → clamped to 15. Low nibble = weight j, high nibble = weight j + 16.
    @Test func q4NibbleOrderAndClamp() throws {
        var x = [Float](repeating: 0, count: 32)
        x[0] = -8; x[1] = 0.5; x[2] = -0.5; x[16] = 7.5; x[17] = 1
        let q = try QuantizedMatrix.quantize(Tensor(shape: [1, 32], scalars: x), as: .q4_0)
        #expect(q.bytes[2] == 0x00 | 15 << 4)   // w0 = 0, w16 = 15 (clamped)
        #expect(q.bytes[3] == 9 | 9 << 4)       // w1 = 9, w17 = trunc(9.5) = 9
        #expect(q.bytes[4] == 8 | 8 << 4)       // w2 = 8, w18 = trunc(8.5) = 8
    }
}

@Suite("Quantize / dequantize round trips")
struct RoundTripTests {
    /// Per-weight error bound, derived per format (see the doc comments of each quantizer):
    /// rounding to the grid costs at most half a step; clamping at the edge of a 4-bit range at most one
    /// step; storing a scale `d` as Float16 moves it by at most `h(d) = max(d·2⁻¹¹, 2⁻²⁵)` (relative
    /// half-ulp for normal halves, half the subnormal spacing 2⁻²⁴ below 2⁻¹⁴), so a code `q` moves by `|q|·h(d)`.
    func bound(_ f: QuantizationFormat, block x: ArraySlice<Float>) -> Float {
        let amax = x.map(abs).max() ?? 0
        let lo = min(x.min() ?? 0, 0), hi = max(x.max() ?? 0, 0)
        func h(_ d: Float) -> Float { max(d / 2048, 1.0 / 33_554_432) }
        switch f {
        case .int8PerChannel: return amax / 127 * 0.5 * 1.0001 + 1e-30
        case .q8_0: return amax / 127 * 0.5 + 127 * h(amax / 127) + 1e-30
        case .q4_0: return amax / 8 + 8 * h(amax / 8) + 1e-30
        case .q4_1:
            let d = ((x.max() ?? 0) - (x.min() ?? 0)) / 15
            return d * 0.5 + 15 * h(d) + h(abs(x.min() ?? 0)) + 1e-30
        case .int4Grouped(_, true): return amax / 7 * 0.5 + 8 * h(amax / 7) + 1e-30
        case .int4Grouped(_, false): return (hi - lo) / 15 + 16 * h((hi - lo) / 15) + 1e-30
        }
    }

    static let inputs: [(String, Tensor)] = {
        var heavy = Tensor.random(shape: [7, 128], seed: 11, distribution: .normal(mean: 0, standardDeviation: 1))
        heavy.withUnsafeMutableBufferPointer { p in
            for i in p.indices { p[i] = p[i] * p[i] * p[i] }  // cubed normal: heavy tails
        }
        var zeroRow = Tensor.random(shape: [5, 256], seed: 12)
        zeroRow.withUnsafeMutableBufferPointer { p in for i in 256..<512 { p[i] = 0 } }
        var tiny = Tensor.random(shape: [3, 128], seed: 13)
        tiny.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] *= 1e-3 } }
        // Exact ties: with max |x| = 127 the INT8 / Q8_0 step is 1, so k + 0.5 sits exactly between two codes.
        var ties = Tensor(zeros: [2, 128])
        ties.withUnsafeMutableBufferPointer { p in
            for i in p.indices { p[i] = i % 128 == 0 ? 127 : Float((i % 61) - 30) + 0.5 }
        }
        return [
            ("ties", ties),
            ("normal", Tensor.random(shape: [9, 384], seed: 10, distribution: .normal(mean: 0, standardDeviation: 0.02))),
            ("heavy", heavy),
            ("zeroRow", zeroRow),
            ("tiny", tiny),
            ("offset", Tensor.random(shape: [3, 128], seed: 14, distribution: .uniform(low: 0.5, high: 2))),
        ]
    }()

    @Test(arguments: QuantizationFormat.allCases)
    func errorWithinDerivedBound(format: QuantizationFormat) throws {
        for (name, x) in Self.inputs {
            let q = try QuantizedMatrix.quantize(x, as: format, name: name)
            #expect(q.bytes.count == format.byteCount(rows: q.rows, columns: q.columns))
            let y = q.dequantize()
            #expect(y.shape == Shape([q.rows, q.columns]))
            let cols = q.columns
            let block = format == .int8PerChannel ? cols : format.blockSize
            var worst: Float = 0
            for r in 0..<q.rows {
                for b in stride(from: 0, to: cols, by: block) {
                    let xs = x.scalars[(r * cols + b)..<(r * cols + b + block)]
                    let limit = bound(format, block: xs)
                    for j in 0..<block {
                        let e = abs(xs[xs.startIndex + j] - y.scalars[r * cols + b + j])
                        worst = max(worst, e / limit)
                    }
                }
            }
            #expect(worst <= 1, "\(name) \(format): error reached \(worst)× the derived bound")
        }
    }

    @Test func bitsPerWeightIncludeScales() throws {
        let x = Tensor.random(shape: [4, 256], seed: 3)
        #expect(try QuantizedMatrix.quantize(x, as: .q4_0).bitsPerWeight == 4.5)
        #expect(try QuantizedMatrix.quantize(x, as: .q8_0).bitsPerWeight == 8.5)
        #expect(try QuantizedMatrix.quantize(x, as: .q4_1).bitsPerWeight == 5.0)
        #expect(try QuantizedMatrix.quantize(x, as: .int4Grouped(groupSize: 32, symmetric: true)).bitsPerWeight == 4.5)
        #expect(try QuantizedMatrix.quantize(x, as: .int4Grouped(groupSize: 128, symmetric: false)).bitsPerWeight == 4 + 24.0 / 128)
        #expect(try QuantizedMatrix.quantize(x, as: .int8PerChannel).bitsPerWeight == 8 + 32.0 / 256)
        for f in QuantizationFormat.allCases {
            #expect(abs(f.bitsPerWeight(columns: 256) - (try QuantizedMatrix.quantize(x, as: f).bitsPerWeight)) < 1e-12)
        }
    }

    /// Uniform quantization noise of step Δ has variance Δ²/12; for N(0,1) weights in blocks of 32 the
    /// block max is ≈ 2σ, so Q8_0 (Δ ≈ 2/127) gives ≈ 10·log10(12·63.5²) ≈ 46 dB and 4-bit formats ≈ 22 dB.
    /// The thresholds leave several dB of margin.
    @Test func errorReportIsPlausible() throws {
        let x = Tensor.random(shape: [16, 512], seed: 99, distribution: .normal(mean: 0, standardDeviation: 1))
        let r8 = try QuantizedMatrix.quantize(x, as: .q8_0).errorReport(against: x, name: "w")
        let r4 = try QuantizedMatrix.quantize(x, as: .q4_0).errorReport(against: x, name: "w")
        #expect(r8.sqnrDB > 40 && r8.sqnrDB < 52)
        #expect(r4.sqnrDB > 16 && r4.sqnrDB < 26)
        #expect(r8.cosineSimilarity > 0.9999 && r4.cosineSimilarity > 0.99)
        #expect(r8.rmse < r4.rmse && r8.maxAbsError < r4.maxAbsError)
        // SQNR and RMSE agree: SQNR = 10·log10(mean(x²) / rmse²).
        let meanSquare = x.scalars.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(x.elementCount)
        #expect(abs(r4.sqnrDB - 10 * log10(meanSquare / (r4.rmse * r4.rmse))) < 1e-9)
        let zeros = Tensor(zeros: [2, 64])
        let rz = try QuantizedMatrix.quantize(zeros, as: .q4_1).errorReport(against: zeros)
        #expect(rz.rmse == 0 && rz.sqnrDB == .infinity && rz.cosineSimilarity == 1)
    }
}

@Suite("Bad input gives typed errors")
struct QuantizationInputErrorTests {
    @Test(arguments: QuantizationFormat.allCases)
    func nonFiniteNamesTensorAndIndex(format: QuantizationFormat) throws {
        var x = Tensor.random(shape: [3, 128], seed: 5)
        x[2, 77] = .nan
        do {
            _ = try QuantizedMatrix.quantize(x, as: format, name: "blk.3.ffn_up.weight")
            Issue.record("expected an error")
        } catch let e as QuantizationError {
            #expect(e.code == .nonFinite)
            #expect(e.message.contains("blk.3.ffn_up.weight") && e.message.contains("[2, 77]"))
        }
        x[2, 77] = -.infinity
        #expect(throws: QuantizationError.self) { try QuantizedMatrix.quantize(x, as: format) }
    }

    @Test func misalignedColumnsAndBadShapes() throws {
        for f in QuantizationFormat.allCases {
            let e = #expect(throws: QuantizationError.self) { try QuantizedMatrix.quantize(Tensor.random(shape: [2, 48], seed: 1), as: f) }
            #expect(e?.code == .invalidShape)
        }
        let e64 = #expect(throws: QuantizationError.self) {
            try QuantizedMatrix.quantize(Tensor.random(shape: [2, 96], seed: 1), as: .int4Grouped(groupSize: 64, symmetric: true))
        }
        #expect(e64?.code == .invalidShape)
        #expect(throws: QuantizationError.self) { try QuantizedMatrix.quantize(Tensor(zeros: [0, 32]), as: .q8_0) }
        #expect(throws: QuantizationError.self) { try QuantizedMatrix.quantize(Tensor.random(shape: [1, 64], seed: 1), as: .int4Grouped(groupSize: 48, symmetric: true)) }
        #expect(throws: QuantizationError.self) { try QuantizedMatrix(format: .q4_0, rows: 2, columns: 64, bytes: [UInt8](repeating: 0, count: 71)) }
    }

    @Test func hugeWeightsOverflowFloat16Scale() throws {
        var x = Tensor(zeros: [1, 32])
        x[0, 0] = 1e9
        for f in [QuantizationFormat.q8_0, .q4_0, .q4_1, .int4Grouped(groupSize: 32, symmetric: true)] {
            let e = #expect(throws: QuantizationError.self) { try QuantizedMatrix.quantize(x, as: f) }
            #expect(e?.code == .scaleOverflow)
        }
        // INT8 keeps a Float32 scale, so it handles the same row.
        #expect(try QuantizedMatrix.quantize(x, as: .int8PerChannel).dequantize()[0, 0] == 1e9)
    }

    @Test func formatNamesParse() throws {
        for f in QuantizationFormat.allCases { #expect(try QuantizationFormat(parsing: f.name) == f) }
        #expect(throws: QuantizationError.self) { try QuantizationFormat(parsing: "q5_k") }
        #expect(throws: QuantizationError.self) { try QuantizationFormat(parsing: "int4-g48") }
    }
}
