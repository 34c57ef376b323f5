import Foundation
import Testing
import TensorCore
@testable import Quantization

struct ReferenceManifest: Decodable {
    struct TensorEntry: Decodable {
        let type: UInt32
        let dims: [Int]
        let values: String?
        let input: String?
        let bytes: String?
    }
    let alignment: Int
    let tensors: [String: TensorEntry]
    let tensor_order: [String]
}

func referenceGGUF() throws -> [UInt8] { try Array(Data(contentsOf: fixtureURL("reference.gguf"))) }

@Suite("GGUF reader and writer")
struct GGUFTests {
    /// The expected values are the literals tools/generate_quant_vectors.py passed to gguf-py's GGUFWriter.
    @Test func readsEveryMetadataType() throws {
        let f = try GGUFFile(bytes: referenceGGUF())
        #expect(f.version == 3)
        #expect(f.alignment == 64)
        let m = f.metadata
        #expect(m["general.architecture"] == .string("llama"))
        #expect(m["test.u8"] == .uint8(200))
        #expect(m["test.i8"] == .int8(-100))
        #expect(m["test.u16"] == .uint16(60000))
        #expect(m["test.i16"] == .int16(-30000))
        #expect(m["test.u32"] == .uint32(4_000_000_000))
        #expect(m["test.i32"] == .int32(-2_000_000_000))
        #expect(m["test.f32"] == .float32(1.5))
        #expect(m["test.bool"] == .bool(true))
        #expect(m["test.string"] == .string("héllo, GGUF ✓"))
        #expect(m["test.u64"] == .uint64(18_000_000_000_000_000_000))
        #expect(m["test.i64"] == .int64(-9_000_000_000_000_000_000))
        #expect(m["test.f64"] == .float64(2.718281828459045))
        #expect(m["test.array_i32"] == .array(elementType: .int32, [.int32(1), .int32(-2), .int32(3)]))
        #expect(m["test.array_str"] == .array(elementType: .string, [.string("a"), .string("bc"), .string("")]))
        #expect(m["test.array_nested"] == .array(elementType: .array, [
            .array(elementType: .int32, [.int32(1), .int32(2)]), .array(elementType: .int32, [.int32(3)]),
        ]))
        #expect(f.metadataEntries.first?.key == "general.architecture")
    }

    @Test func readsTensorsOfEveryType() throws {
        let manifest = try JSONDecoder().decode(ReferenceManifest.self, from: Data(contentsOf: fixtureURL("reference.json")))
        let f = try GGUFFile(bytes: referenceGGUF())
        #expect(f.tensors.map(\.name) == manifest.tensor_order)
        for info in f.tensors {
            let e = try #require(manifest.tensors[info.name])
            #expect(info.typeID == e.type && info.dimensions == e.dims, "\(info.name)")
            #expect(info.offset % 64 == 0)
            if let values = e.values {
                #expect(try f.tensor(named: info.name).scalars == floats(hex: values), "\(info.name)")
                #expect(try f.tensor(named: info.name).shape.dimensions == e.dims.reversed())
            }
            if let b = e.bytes, let input = e.input {
                #expect(try f.tensorBytes(info) == bytes(hex: b))
                // Our quantizer reproduces the bytes gguf-py stored, from the same input.
                let q = try f.quantizedMatrix(named: info.name)
                let x = try Tensor(shape: [q.rows, q.columns], scalars: floats(hex: input))
                #expect(try QuantizedMatrix.quantize(x, as: q.format).bytes == q.bytes)
            }
        }
    }

    /// Writing back what was read reproduces gguf-py's file byte for byte (header, alignment padding, data).
    @Test func rewriteIsByteIdentical() throws {
        let original = try referenceGGUF()
        let f = try GGUFFile(bytes: original)
        var w = GGUFWriter()
        for (k, v) in f.metadataEntries { w.setMetadata(k, v) }
        for t in f.tensors {
            try w.addTensor(name: t.name, typeID: t.typeID, dimensions: t.dimensions, byteCount: t.byteCount ?? 0) { try f.tensorBytes(t) }
        }
        #expect(try w.serialize() == original)
    }

    @Test func writeReadRoundTripThroughMemoryMappedFile() throws {
        var w = GGUFWriter()
        w.setMetadata("general.architecture", .string("test"))
        w.setMetadata("general.alignment", .uint32(128))
        w.setMetadata("empty", .array(elementType: .float32, []))
        let a = Tensor.random(shape: [5, 64], seed: 2)
        try w.addTensor(name: "a", float32: a)
        let q = try QuantizedMatrix.quantize(Tensor.random(shape: [3, 96], seed: 3), as: .q4_1)
        try w.addTensor(name: "q", matrix: q)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ik-gguf-\(UUID().uuidString).gguf").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try w.write(to: path)
        let f = try GGUFFile(contentsOf: path)
        #expect(f.alignment == 128 && f.dataOffset % 128 == 0)
        #expect(try f.tensor(named: "a") == a)
        #expect(try f.quantizedMatrix(named: "q") == q)
        #expect(f.metadata["empty"] == .array(elementType: .float32, []))
        #expect(try Array(Data(contentsOf: URL(fileURLWithPath: path))) == w.serialize())
        #expect(throws: QuantizationError.self) { try f.tensor(named: "missing") }
        #expect(throws: QuantizationError.self) { try GGUFFile(contentsOf: path + ".nope") }
    }

    @Test func writerRejectsBadInput() throws {
        var w = GGUFWriter()
        w.setMetadata("general.alignment", .uint32(48))
        #expect(throws: QuantizationError.self) { try w.serialize() }
        w.setMetadata("general.alignment", .string("32"))
        #expect(throws: QuantizationError.self) { try w.serialize() }
        var v = GGUFWriter()
        v.setMetadata("mixed", .array(elementType: .int32, [.int32(1), .string("x")]))
        #expect(throws: QuantizationError.self) { try v.serialize() }
        try v.addTensor(name: "t", type: .q8_0, dimensions: [32, 1], bytes: [UInt8](repeating: 0, count: 34))
        #expect(throws: QuantizationError.self) { try v.addTensor(name: "t", type: .f32, dimensions: [1], bytes: [0, 0, 0, 0]) }
        #expect(throws: QuantizationError.self) { try v.addTensor(name: "u", type: .q4_0, dimensions: [32, 1], bytes: [UInt8](repeating: 0, count: 17)) }
        #expect(throws: QuantizationError.self) { try v.addTensor(name: "r", type: .f32, dimensions: [1, 1, 1, 1, 1], bytes: [0, 0, 0, 0]) }
        #expect(throws: QuantizationError.self) { try v.addTensor(name: "i", matrix: QuantizedMatrix.quantize(Tensor.random(shape: [1, 32], seed: 1), as: .int8PerChannel)) }
        // A failed write leaves neither the target nor the partial file behind.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ik-bad-\(UUID().uuidString).gguf").path
        var bad = GGUFWriter()
        try bad.addTensor(name: "x", typeID: 0, dimensions: [4], byteCount: 16) { throw QuantizationError(.io, "simulated failure") }
        #expect(throws: QuantizationError.self) { try bad.write(to: path) }
        #expect(!FileManager.default.fileExists(atPath: path) && !FileManager.default.fileExists(atPath: path + ".partial"))
    }

    // MARK: Hostile files

    func expectCode(_ code: QuantizationError.Code, _ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try GGUFFile(bytes: bytes)
            Issue.record("expected \(code)", sourceLocation: sourceLocation)
        } catch let e as QuantizationError {
            #expect(e.code == code, "\(e)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    func header(version: UInt32 = 3, tensors: UInt64, kvs: UInt64) -> [UInt8] {
        var b: [UInt8] = []
        b.u32(GGUFFile.magic); b.u32(version); b.u64(tensors); b.u64(kvs)
        return b
    }

    @Test func hostileHeaders() throws {
        var good = try referenceGGUF()
        expectCode(.truncated, [])
        expectCode(.truncated, Array("GGU".utf8))
        expectCode(.badMagic, Array("GGML".utf8) + [UInt8](repeating: 0, count: 40))
        good[4] = 1
        expectCode(.unsupportedVersion, good)
        good[4] = 99
        expectCode(.unsupportedVersion, good)
        expectCode(.absurdCount, header(tensors: 1 << 40, kvs: 0))
        expectCode(.absurdCount, header(tensors: 0, kvs: UInt64.max))
        // A key whose length runs past the end.
        var k = header(tensors: 0, kvs: 1); k.u64(1 << 62); k.append(contentsOf: [UInt8](repeating: 0x61, count: 40))
        expectCode(.truncated, k)
        // Invalid UTF-8 key.
        var u = header(tensors: 0, kvs: 1); u.u64(2); u.append(contentsOf: [0xC3, 0x28]); u.u32(0); u.append(1)
        expectCode(.badString, u)
        // Unknown value type.
        var t = header(tensors: 0, kvs: 1); t.string("k"); t.u32(77); t.append(contentsOf: [UInt8](repeating: 0, count: 8))
        expectCode(.unsupportedType, t)
        // An array claiming 2⁶⁰ u64 elements.
        var a = header(tensors: 0, kvs: 1); a.string("k"); a.u32(9); a.u32(10); a.u64(1 << 60); a.u64(0)
        expectCode(.absurdCount, a)
        // Arrays nested deeper than the limit.
        var n = header(tensors: 0, kvs: 1); n.string("k"); n.u32(9)
        for _ in 0..<20 { n.u32(9); n.u64(1) }
        n.append(contentsOf: [UInt8](repeating: 0, count: 16))
        expectCode(.absurdCount, n)
        // Bad alignment value.
        var al = header(tensors: 0, kvs: 1); al.string("general.alignment"); al.u32(4); al.u32(48)
        expectCode(.invalidMetadata, al)
        // Duplicate key.
        var d = header(tensors: 0, kvs: 2); d.string("x"); d.u32(0); d.append(1); d.string("x"); d.u32(0); d.append(2)
        expectCode(.invalidMetadata, d)
    }

    func oneTensor(dims: [UInt64], type: UInt32, offset: UInt64, data: Int) -> [UInt8] {
        var b = header(tensors: 1, kvs: 0)
        b.string("t"); b.u32(UInt32(dims.count)); for d in dims { b.u64(d) }; b.u32(type); b.u64(offset)
        b.append(contentsOf: [UInt8](repeating: 0, count: (32 - b.count % 32) % 32 + data))
        return b
    }

    @Test func hostileTensorTables() {
        #expect((try? GGUFFile(bytes: oneTensor(dims: [32, 2], type: 8, offset: 0, data: 68))) != nil)  // control: valid
        expectCode(.outOfBounds, oneTensor(dims: [32, 2], type: 8, offset: 0, data: 67))       // data truncated
        expectCode(.outOfBounds, oneTensor(dims: [32, 2], type: 8, offset: 32, data: 68))      // offset pushes past end
        expectCode(.outOfBounds, oneTensor(dims: [32, 2], type: 8, offset: 1 << 62, data: 68)) // offset past end
        expectCode(.outOfBounds, oneTensor(dims: [32, 2], type: 8, offset: 3, data: 68))       // misaligned
        expectCode(.outOfBounds, oneTensor(dims: [UInt64.max, 2], type: 0, offset: 0, data: 8))
        expectCode(.outOfBounds, oneTensor(dims: [1 << 40, 1 << 40, 1 << 40], type: 0, offset: 0, data: 8))  // product overflows
        expectCode(.absurdCount, oneTensor(dims: [1, 1, 1, 1, 1], type: 0, offset: 0, data: 8))
        expectCode(.invalidShape, oneTensor(dims: [31, 2], type: 2, offset: 0, data: 64))      // not a whole Q4_0 block
        // An unknown tensor type parses (for inspection) but cannot be decoded.
        let unknown = oneTensor(dims: [256, 1], type: 12, offset: 0, data: 200)
        let f = try? GGUFFile(bytes: unknown)
        #expect(f?.tensors.first?.byteCount == nil)
        #expect(throws: QuantizationError.self) { try f?.tensor(named: "t") }
    }

    /// Seeded mutation fuzzing: flip, overwrite, insert, delete and truncate bytes of valid files;
    /// every input must parse or throw ``QuantizationError`` (a crash fails the whole run), and a parsed
    /// file's tensors must decode or throw. `INFERENCEKIT_FUZZ_ITERATIONS` (default 4000) and
    /// `INFERENCEKIT_FUZZ_SEED` run longer campaigns by hand.
    @Test func mutationFuzzNeverCrashes() throws {
        let env = ProcessInfo.processInfo.environment
        let iterations = env["INFERENCEKIT_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 4000
        let seed = env["INFERENCEKIT_FUZZ_SEED"].flatMap(UInt64.init) ?? 0x6775_6666
        let seeds = [try referenceGGUF(), oneTensor(dims: [32, 2], type: 8, offset: 0, data: 68)]
        var rng = SplitMix64(seed: seed)
        var parsed = 0, rejected = 0
        let interesting: [UInt64] = [0, 1, 2, 3, 4, 7, 8, 9, 12, 13, 31, 32, 64, 255, 0xFFFF, 0xFFFF_FFFF, 1 << 32, 1 << 62, UInt64.max, UInt64.max - 7]
        for iteration in 0..<iterations {
            var b = seeds[iteration % seeds.count]
            let edits = 1 + Int(rng.next() % 4)
            for _ in 0..<edits {
                guard !b.isEmpty else { break }
                let pos = Int(rng.next() % UInt64(b.count))
                switch rng.next() % 6 {
                case 0: b[pos] ^= UInt8(1 << (rng.next() % 8))
                case 1: b[pos] = UInt8(truncatingIfNeeded: rng.next())
                case 2:
                    let v = interesting[Int(rng.next() % UInt64(interesting.count))]
                    let width = [1, 4, 8][Int(rng.next() % 3)]
                    for k in 0..<width where pos + k < b.count { b[pos + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) }
                case 3: b.removeSubrange(pos..<min(b.count, pos + 1 + Int(rng.next() % 16)))
                case 4: b.insert(contentsOf: (0..<(1 + rng.next() % 8)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: pos)
                default: b.removeSubrange(pos...)
                }
            }
            do {
                let f = try GGUFFile(bytes: b)
                parsed += 1
                for t in f.tensors where t.byteCount != nil && t.elementCount <= 1 << 16 {
                    _ = try? f.tensor(named: t.name)
                }
            } catch is QuantizationError {
                rejected += 1
            }
        }
        #expect(parsed + rejected == iterations)
        #expect(parsed > iterations / 80 && rejected > iterations / 4, "parsed \(parsed), rejected \(rejected)")
    }
}
