import Foundation
import Testing
import TensorCore
@testable import ModelRuntime

/// Mutation tests of the safetensors reader against hostile bytes.
///
/// Every mutation runs in this process, so a trap, an out-of-bounds read that
/// faults, or a stack overflow kills the test run and fails it; every outcome
/// that returns must be either a file whose tensors all lie inside it (each is
/// read back in full) or a ``ModelRuntimeError`` with code `.invalidFile`.
/// Seeds are fixed, so a failure names a reproducible mutation.
@Suite("Safetensors hostile input")
struct SafetensorsFuzzTests {
    typealias F = SafetensorsFixtures

    /// Tallies outcomes and records an issue for every one that breaks the contract.
    final class Tally {
        var accepted = 0
        var rejected = 0
        var total: Int { accepted + rejected }

        func check(_ bytes: [UInt8], _ label: @autoclosure () -> String) {
            switch Result(catching: { () throws(ModelRuntimeError) in try SafetensorsFile(bytes: bytes, name: "fuzz") }) {
            case let .success(file):
                accepted += 1
                Self.verify(file, bytes.count, label)
            case let .failure(error):
                rejected += 1
                if error.code != .invalidFile || !error.message.contains("'fuzz'") {
                    Issue.record("\(label()): unexpected error \(error)")
                }
            }
        }

        static func verify(_ file: SafetensorsFile, _ fileCount: Int, _ label: () -> String) {
            let dataCount = fileCount - file.dataSectionOffset
            var covered = 0
            for info in file.tensors {
                covered += info.byteCount
                guard info.byteRange.lowerBound >= 0, info.byteRange.upperBound <= dataCount else {
                    Issue.record("\(label()): tensor \(info.name) range \(info.byteRange) outside \(dataCount)-byte data")
                    return
                }
                do throws(ModelRuntimeError) {
                    let count = try file.withTensorBytes(info.name) { $0.count }
                    if count != info.byteCount { Issue.record("\(label()): \(info.name) view has \(count) bytes, not \(info.byteCount)") }
                    if SafetensorsDType.convertibleToFloat32.contains(info.dtype) {
                        let tensor = try file.tensor(named: info.name)
                        if tensor.elementCount != info.elementCount || tensor.shape.dimensions != info.shape {
                            Issue.record("\(label()): \(info.name) decoded to \(tensor.shape)")
                        }
                    }
                } catch {
                    Issue.record("\(label()): reading accepted tensor \(info.name) threw \(error)")
                }
            }
            if covered != dataCount { Issue.record("\(label()): tensors cover \(covered) of \(dataCount) data bytes") }
        }
    }

    static let bases = ["dtypes.safetensors", "tiny-llama-sharded/model-00001-of-00002.safetensors",
                        "edge/zero-size-tensors.safetensors", "edge/unsorted-header.safetensors", "edge/unaligned-data.safetensors"]

    static func headerCount(_ bytes: [UInt8]) -> Int {
        bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    }

    @Test("random byte flips, mostly in the header, never crash and never yield out-of-bounds tensors")
    func byteFlips() throws {
        let tally = Tally()
        var rng = SplitMix64(seed: 0x5AFE_7E45)
        let bases = try Self.bases.map(F.bytes)
        for round in 0..<2500 {
            var bytes = bases[Int(rng.next() % UInt64(bases.count))]
            let headerEnd = 8 + Self.headerCount(bytes)
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let inHeader = rng.next() % 100 < 85
                let position = inHeader ? 8 + Int(rng.next() % UInt64(headerEnd - 8)) : Int(rng.next() % UInt64(bytes.count))
                if rng.next() % 2 == 0 {
                    bytes[position] ^= UInt8(1) << (rng.next() % 8)
                } else {
                    // Bytes that matter to JSON, or anything.
                    let interesting = Array("{}[]\",:-0123456789eE.\\ u".utf8) + [0x00, 0x80, 0xFF, 0xC3]
                    bytes[position] = rng.next() % 2 == 0 ? interesting[Int(rng.next() % UInt64(interesting.count))] : UInt8(truncatingIfNeeded: rng.next())
                }
            }
            tally.check(bytes, "byte flip round \(round)")
        }
        #expect(tally.total == 2500)
        #expect(tally.accepted > 0 && tally.rejected > 0)
    }

    @Test("truncations of valid files are rejected, in memory and through mmap")
    func truncations() throws {
        let tally = Tally()
        for base in Self.bases {
            let bytes = try F.bytes(base)
            // Every length through the header and the start of the data; beyond that, a sample.
            let dense = min(bytes.count, 8 + Self.headerCount(bytes) + 64)
            for length in Array(0..<dense) + Array(stride(from: dense, to: bytes.count, by: 37)) {
                tally.check(Array(bytes[0..<length]), "\(base) truncated to \(length)")
            }
            tally.check(bytes, "\(base) whole")
        }
        #expect(tally.accepted == Self.bases.count, "only the whole files are valid")

        // Through the file system for one small file, including the empty file.
        let directory = try F.temporaryDirectory("truncations")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let small = try F.bytes("edge/zero-size-tensors.safetensors")
        for length in 0..<small.count {
            let path = directory + "/cut-\(length).safetensors"
            try Data(small[0..<length]).write(to: URL(fileURLWithPath: path))
            let error = #expect(throws: ModelRuntimeError.self) { try SafetensorsFile(contentsOf: path) }
            #expect(error?.code == .invalidFile && error?.message.contains(path) == true, "length \(length)")
        }
    }

    @Test("header length fields near the Int64 and format limits are rejected without reading past the file")
    func headerLengths() throws {
        let tally = Tally()
        for base in Self.bases {
            let bytes = try F.bytes(base)
            let n = UInt64(Self.headerCount(bytes)), count = UInt64(bytes.count)
            let lengths: [UInt64] = [
                0, 1, 7, 8, n - 1, n + 1, count - 8, count - 7, count, 99_999_999, 100_000_000, 100_000_001,
                UInt64(Int32.max), UInt64(UInt32.max), 1 << 32, UInt64(Int64.max) - 7, UInt64(Int64.max) - 8,
                UInt64(Int64.max), UInt64(Int64.max) + 1, UInt64.max - 7, UInt64.max,
            ]
            for length in lengths {
                var mutated = bytes
                for i in 0..<8 { mutated[i] = UInt8(truncatingIfNeeded: length >> (8 * UInt64(i))) }
                tally.check(mutated, "\(base) with header length \(length)")
            }
        }
        #expect(tally.accepted == 0)
    }

    /// Numbers that stress integer parsing and arithmetic.
    static let numbers = [
        "0", "1", "-1", "2", "3", "4", "8", "12", "-0", "1.5", "1e3", "1E400", "-1e-400", "4294967296", "2147483648",
        "9007199254740993", "4611686018427387904", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "-9223372036854775809", "18446744073709551616", "99999999999999999999999999999", "01", "+1", "0x10", "",
    ]
    static let dtypes = SafetensorsDType.allCases.map(\.rawValue) + ["f32", "Q4_0", "", "F32 ", "\\u0046\\u00332"]

    static func pick<T>(_ values: [T], _ rng: inout SplitMix64) -> T { values[Int(rng.next() % UInt64(values.count))] }

    @Test("generated headers with huge shapes, overlapping or negative offsets and bogus dtypes never crash")
    func structuredHeaders() throws {
        let tally = Tally()
        var rng = SplitMix64(seed: 0xBADC0DE)
        for round in 0..<2000 {
            var entries: [String] = []
            var offset = 0
            for t in 0..<(Int(rng.next() % 4)) {
                let rank = Int(rng.next() % 5)
                let shape = (0..<rank).map { _ in rng.next() % 3 == 0 ? Self.pick(Self.numbers, &rng) : String(rng.next() % 4) }
                let dtype = rng.next() % 4 == 0 ? Self.pick(Self.dtypes, &rng) : Self.pick(["F32", "F16", "BF16", "U8"], &rng)
                let begin: String, end: String
                if rng.next() % 3 == 0 {
                    begin = Self.pick(Self.numbers, &rng); end = Self.pick(Self.numbers, &rng)
                } else {
                    // Plausible: contiguous from the last tensor, with a size that may or may not match.
                    let size = Int(rng.next() % 24)
                    begin = String(offset - (rng.next() % 5 == 0 ? 4 : 0)); end = String(offset + size)
                    offset += size
                }
                entries.append(#""t\#(t)":{"dtype":"\#(dtype)","shape":[\#(shape.joined(separator: ","))],"data_offsets":[\#(begin),\#(end)]}"#)
            }
            if rng.next() % 4 == 0 {
                entries.append(Self.pick([#""__metadata__":{"a":"b"}"#, #""__metadata__":null"#, #""__metadata__":[1]"#, #""__metadata__":{"a":1}"#], &rng))
            }
            let header = "{" + entries.joined(separator: ",") + "}"
            let data = [UInt8](repeating: 0x3F, count: rng.next() % 2 == 0 ? offset : Int(rng.next() % 64))
            tally.check(F.file(header: header, data: data), "structured round \(round): \(header)")
        }
        #expect(tally.total == 2000)
        #expect(tally.accepted > 50, "some generated files must be valid, or the generator tests nothing")
    }

    @Test("every number of a valid header replaced by an extreme value is handled")
    func numberReplacements() throws {
        let tally = Tally()
        let bytes = try F.bytes("dtypes.safetensors")
        let n = Self.headerCount(bytes)
        let header = Array(bytes[8..<(8 + n)]), data = Array(bytes[(8 + n)...])
        // Spans of digits in the header.
        var spans: [Range<Int>] = []
        var i = 0
        while i < header.count {
            if (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(header[i]) {
                let start = i
                while i < header.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(header[i]) { i += 1 }
                spans.append(start..<i)
            } else {
                i += 1
            }
        }
        #expect(spans.count > 40)
        for (s, span) in spans.enumerated() {
            for number in Self.numbers {
                var mutated = header
                mutated.replaceSubrange(span, with: Array(number.utf8))
                var file = F.file(header: "", data: [], declaredLength: UInt64(mutated.count))
                file += mutated + data
                tally.check(file, "number \(s) replaced by \(number)")
            }
        }
        #expect(tally.total == spans.count * Self.numbers.count)
    }

    @Test("deeply nested and junk JSON headers are rejected without exhausting the stack")
    func junkHeaders() throws {
        let tally = Tally()
        let deep = 200_000
        tally.check(F.file(header: String(repeating: "[", count: deep) + String(repeating: "]", count: deep)), "deep arrays")
        tally.check(F.file(header: "{\"a\":" + String(repeating: "[", count: deep)), "unterminated deep arrays")
        tally.check(F.file(header: String(repeating: "{\"a\":", count: deep / 5) + "1" + String(repeating: "}", count: deep / 5)), "deep objects")
        tally.check(F.file(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[" + String(repeating: "[", count: deep) + "]}}"), "deep shape")
        var rng = SplitMix64(seed: 42)
        let alphabet = Array("{}[]\":,0123456789-.eEtrufalsn \\u".utf8)
        for round in 0..<1500 {
            let count = 1 + Int(rng.next() % 120)
            var header = [UInt8(ascii: "{")]
            for _ in 0..<count { header.append(rng.next() % 10 == 0 ? UInt8(truncatingIfNeeded: rng.next()) : Self.pick(alphabet, &rng)) }
            var file = F.file(header: "", declaredLength: UInt64(header.count))
            file += header
            tally.check(file, "junk round \(round)")
        }
        #expect(tally.total == 1504)
        #expect(tally.accepted == 0)
    }

    @Test("the JSON parser rejects what RFC 8259 forbids and accepts what it allows")
    func jsonGrammar() {
        func parses(_ text: String) -> Bool {
            (try? SafetensorsJSONParser.parse(Array(text.utf8))) != nil
        }
        for good in [#"{}"#, #" {"a" : [1, -2, 3.5e-1, true, false, null, "x\u00e9\ud83d\ude00\n"]} "#, "[]", "0", "-0", #""\/""#] {
            #expect(parses(good), "\(good)")
        }
        for bad in ["", "{", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "+1", "1e", "-", "\"\\ud800\"", "\"\\udc00\"", "\"\\x\"",
                    "\"a\nb\"", "{\"a\":1,\"a\":2}", "tru", "nul", "[1] x", "{1:2}", "\u{0}"] {
            #expect(!parses(bad), "\(bad.debugDescription)")
        }
        if case let .integer(v)? = try? SafetensorsJSONParser.parse(Array("-9223372036854775808".utf8)) { #expect(v == Int.min) } else { Issue.record("Int.min") }
        if case .double? = try? SafetensorsJSONParser.parse(Array("9223372036854775808".utf8)) {} else { Issue.record("Int.max + 1 should be a double") }
    }
}
