import Foundation
import Testing
import TensorCore
@testable import ModelRuntime

@Suite("Safetensors files")
struct SafetensorsFileTests {
    typealias F = SafetensorsFixtures

    @Test("every tensor of the dtypes fixture matches what the reference library and numpy read")
    func dtypesFixtureMatchesReference() throws {
        let expected = try F.decode(F.ExpectedFile.self, "dtypes.expected.json")
        for file in [try SafetensorsFile(contentsOf: F.path("dtypes.safetensors")),
                     try SafetensorsFile(bytes: F.bytes("dtypes.safetensors"), name: "dtypes (in memory)")] {
            #expect(file.headerByteCount == expected.header_length)
            #expect(file.fileByteCount == expected.file_length)
            #expect(file.metadata == expected.metadata)
            #expect(Set(file.tensorNames) == Set(expected.tensors.keys))
            for (name, want) in expected.tensors {
                let info = try #require(file.info(named: name))
                #expect(info.dtype.rawValue == want.dtype, "\(name)")
                #expect(info.shape == want.shape, "\(name)")
                #expect(want.data_offsets == [info.byteRange.lowerBound, info.byteRange.upperBound], "\(name)")
                guard let values = want.values else { continue }
                let tensor = try file.tensor(named: name)
                #expect(tensor.shape == Shape(want.shape), "\(name)")
                #expect(tensor.scalars.count == values.count, "\(name)")
                for (i, (got, ref)) in zip(tensor.scalars, values).enumerated() where !F.sameFloat(got, ref.value) {
                    Issue.record("\(name)[\(i)]: got \(got) (0x\(String(got.bitPattern, radix: 16))), reference \(ref.value)")
                    break
                }
            }
        }
    }

    @Test("tensors are listed in data order and tile the data section")
    func tensorsTileTheDataSection() throws {
        let file = try SafetensorsFile(contentsOf: F.path("dtypes.safetensors"))
        var cursor = 0
        for info in file.tensors {
            #expect(info.byteRange.lowerBound == cursor)
            cursor = info.byteRange.upperBound
        }
        #expect(file.dataSectionOffset + cursor == file.fileByteCount)
    }

    @Test("withTensorBytes is a view of exactly the tensor's bytes in the file")
    func rawBytesView() throws {
        let raw = try F.bytes("dtypes.safetensors")
        let file = try SafetensorsFile(contentsOf: F.path("dtypes.safetensors"))
        for info in file.tensors {
            let start = file.dataSectionOffset + info.byteRange.lowerBound
            let view = try file.withTensorBytes(info.name) { [UInt8]($0) }
            #expect(view == Array(raw[start..<(start + info.byteCount)]), "\(info.name)")
        }
        let ids = try file.withTensorBytes("i32.ids") { bytes in
            (0..<4).map { Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
        }
        #expect(ids == [1, -2, 3, Int32.max])
    }

    @Test("a dtype that does not convert to Float32 throws unsupportedTensorType naming the tensor and the supported types")
    func unsupportedDType() throws {
        let file = try SafetensorsFile(contentsOf: F.path("dtypes.safetensors"))
        for name in ["i32.ids", "u8.bytes"] {
            let error = #expect(throws: ModelRuntimeError.self) { try file.tensor(named: name) }
            #expect(error?.code == .unsupportedTensorType)
            #expect(error?.message.contains(name) == true)
            #expect(error?.message.contains("F32, F16, BF16") == true)
        }
    }

    @Test("a missing tensor throws missingTensor naming it and the file")
    func missingTensor() throws {
        let file = try SafetensorsFile(contentsOf: F.path("dtypes.safetensors"))
        #expect(file.info(named: "nope") == nil)
        let error = #expect(throws: ModelRuntimeError.self) { try file.tensor(named: "nope") }
        #expect(error?.code == .missingTensor)
        #expect(error?.message.contains("'nope'") == true)
        #expect(error?.message.contains("dtypes.safetensors") == true)
        let viewError = #expect(throws: ModelRuntimeError.self) { try file.withTensorBytes("nope") { $0.count } }
        #expect(viewError?.code == .missingTensor)
    }

    @Test("a path that is absent or a directory throws io")
    func unreadablePaths() throws {
        for path in [F.path("no-such-file.safetensors"), F.root] {
            let error = #expect(throws: ModelRuntimeError.self) { try SafetensorsFile(contentsOf: path) }
            #expect(error?.code == .io)
            #expect(error?.message.contains(path) == true)
        }
    }

    static let verdicts: [(String, F.Verdict)] = {
        guard let all = try? F.decode(F.Verdicts.self, "reference-verdicts.json") else { return [] }
        return all.verdicts.sorted { $0.key < $1.key }
    }()

    @Test("hostile and edge files get the verdict the format (and the reference reader) gives")
    func referenceVerdicts() throws {
        #expect(Self.verdicts.count >= 30)
        for (relative, verdict) in Self.verdicts {
            let path = F.path(relative)
            let mapped = Result { () throws(ModelRuntimeError) in try SafetensorsFile(contentsOf: path) }
            let raw = try F.bytes(relative)
            let copied = Result { () throws(ModelRuntimeError) in try SafetensorsFile(bytes: raw, name: path) }
            for outcome in [mapped, copied] {
                switch (verdict.expected, outcome) {
                case ("accept", .success):
                    break
                case ("reject", .failure(let error)):
                    #expect(error.code == .invalidFile, "\(relative): \(error)")
                    #expect(error.message.contains(path), "\(relative): \(error)")
                case (_, .success):
                    Issue.record("\(relative) was accepted; expected \(verdict.expected) (reference: \(verdict.reference))")
                case (_, .failure(let error)):
                    Issue.record("\(relative) was rejected (\(error)); expected \(verdict.expected)")
                }
            }
        }
    }

    @Test("the duplicate-name file is rejected although the reference reader keeps the last entry")
    func duplicateNamesFollowTheFormatText() throws {
        let error = #expect(throws: ModelRuntimeError.self) {
            try SafetensorsFile(contentsOf: F.path("hostile/duplicate-name.safetensors"))
        }
        #expect(error?.message.contains("duplicate key \"a\"") == true)
    }

    @Test("error messages name the offending tensor and the problem")
    func hostileMessages() throws {
        let cases: [(String, [String])] = [
            ("hole", ["'b'", "hole"]),
            ("overlap", ["'b'", "overlap", "'a'"]),
            ("trailing-bytes", ["'a'", "trailing"]),
            ("past-end", ["'a'", "run past"]),
            ("size-mismatch", ["'a'", "needs 12"]),
            ("huge-shape", ["'a'", "64 bits"]),
            ("negative-dim", ["'a'", "shape[0]"]),
            ("unknown-dtype", ["'a'", "Q4_0"]),
            ("header-length-huge", ["header length"]),
            ("deep-nesting", ["nested deeper"]),
            ("metadata-number", ["__metadata__", "'n'"]),
        ]
        for (name, fragments) in cases {
            let path = F.path("hostile/\(name).safetensors")
            let error = #expect(throws: ModelRuntimeError.self) { try SafetensorsFile(contentsOf: path) }
            for fragment in fragments {
                #expect(error?.message.contains(fragment) == true, "\(name): \(error?.message ?? "-") lacks \(fragment)")
            }
        }
    }

    @Test("edge files decode to the values written")
    func edgeValues() throws {
        let scalar = try SafetensorsFile(contentsOf: F.path("edge/scalar.safetensors")).tensor(named: "s")
        #expect(scalar.shape == Shape([]) && scalar.scalars == [-7.5])
        let unaligned = try SafetensorsFile(contentsOf: F.path("edge/unaligned-data.safetensors"))
        #expect(unaligned.dataSectionOffset % 4 != 0)
        #expect(try unaligned.tensor(named: "a").scalars == [1.5, -3.0])
        let zero = try SafetensorsFile(contentsOf: F.path("edge/zero-size-tensors.safetensors"))
        #expect(try zero.tensor(named: "b").shape == Shape([2, 0]))
        #expect(try zero.tensor(named: "a").scalars.isEmpty)
        let unsorted = try SafetensorsFile(contentsOf: F.path("edge/unsorted-header.safetensors"))
        #expect(unsorted.tensorNames == ["a", "b"])
        #expect(try unsorted.tensor(named: "b").scalars == [2.0])
        let none = try SafetensorsFile(contentsOf: F.path("edge/no-tensors.safetensors"))
        #expect(none.tensors.isEmpty && none.metadata.isEmpty)
    }

    @Test("F16 conversion is exact for all 65536 bit patterns (independent bit-level reference)")
    func exhaustiveF16() throws {
        var data: [UInt8] = []
        for bits in 0...UInt16.max { data += [UInt8(bits & 0xFF), UInt8(bits >> 8)] }
        let file = try SafetensorsFile(bytes: F.file(header: #"{"h":{"dtype":"F16","shape":[65536],"data_offsets":[0,131072]}}"#, data: data), name: "f16-all")
        let tensor = try file.tensor(named: "h")
        for bits in 0...UInt16.max {
            let want = Self.referenceHalfToFloat(bits)
            let got = tensor.scalars[Int(bits)]
            if !(got.isNaN ? want.isNaN : got.bitPattern == want.bitPattern) {
                Issue.record("F16 0x\(String(bits, radix: 16)): got \(got), want \(want)")
                return
            }
        }
    }

    @Test("BF16 conversion is the high half of a Float32 for all 65536 bit patterns")
    func exhaustiveBF16() throws {
        var data: [UInt8] = [0]  // one leading byte so the data is unaligned
        for bits in 0...UInt16.max { data += [UInt8(bits & 0xFF), UInt8(bits >> 8)] }
        let file = try SafetensorsFile(bytes: F.file(header: #"{"p":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"BF16","shape":[256,256],"data_offsets":[1,131073]}}"#, data: data), name: "bf16-all")
        let tensor = try file.tensor(named: "b")
        #expect(tensor.shape == Shape([256, 256]))
        for bits in 0...UInt16.max where tensor.scalars[Int(bits)].bitPattern != UInt32(bits) << 16 {
            Issue.record("BF16 0x\(String(bits, radix: 16)) -> \(tensor.scalars[Int(bits)])")
            return
        }
    }

    /// IEEE 754 binary16 → binary32 by field arithmetic, independent of the table the reader uses.
    static func referenceHalfToFloat(_ h: UInt16) -> Float {
        let sign: Float = h & 0x8000 != 0 ? -1 : 1
        let exponent = Int((h >> 10) & 0x1F)
        let mantissa = Float(h & 0x3FF)
        switch exponent {
        case 0: return sign * mantissa * 0x1p-24
        case 31: return mantissa == 0 ? sign * .infinity : .nan
        default: return sign * (1 + mantissa / 1024) * Float(sign: .plus, exponent: exponent - 15, significand: 1)
        }
    }
}

@Suite("Safetensors checkpoints")
struct SafetensorsCheckpointTests {
    typealias F = SafetensorsFixtures

    @Test("single-file and sharded checkpoints hold the reference tensors", arguments: ["tiny-llama", "tiny-llama-sharded"])
    func checkpointMatchesReference(directory: String) throws {
        let expected = try F.decode(F.ExpectedFile.self, "tiny-llama.expected.json")
        let checkpoint = try SafetensorsCheckpoint(directory: F.path(directory))
        #expect(checkpoint.files.count == (directory == "tiny-llama" ? 1 : 2))
        #expect(Set(checkpoint.tensorNames) == Set(expected.tensors.keys))
        for (name, want) in expected.tensors {
            let tensor = try checkpoint.tensor(named: name)
            #expect(tensor.shape == Shape(want.shape), "\(name)")
            #expect(checkpoint.info(named: name)?.dtype.rawValue == want.dtype)
            let values = try #require(want.values)
            #expect(zip(tensor.scalars, values).allSatisfy { F.sameFloat($0, $1.value) }, "\(name)")
        }
        let config = try HuggingFaceLlamaConfig(contentsOf: F.path("\(directory)/config.json"))
        try config.checkTensors(in: checkpoint)
        let bytes = try checkpoint.withTensorBytes(HuggingFaceLlamaConfig.outputNormName) { $0.count }
        #expect(bytes == 16 * 4)
    }

    @Test("a tensor no shard holds throws missingTensor naming it")
    func missingTensorInCheckpoint() throws {
        let checkpoint = try SafetensorsCheckpoint(directory: F.path("tiny-llama-sharded"))
        let error = #expect(throws: ModelRuntimeError.self) { try checkpoint.tensor(named: "model.layers.9.mlp.up_proj.weight") }
        #expect(error?.code == .missingTensor)
        #expect(error?.message.contains("model.layers.9.mlp.up_proj.weight") == true)
    }

    /// Copies the sharded fixture to a scratch directory, applies `edit`, and opens it.
    func openEdited(_ edit: (String) throws -> Void) throws -> Result<SafetensorsCheckpoint, ModelRuntimeError> {
        let directory = try F.temporaryDirectory("shards")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for name in try FileManager.default.contentsOfDirectory(atPath: F.path("tiny-llama-sharded")) {
            try FileManager.default.copyItem(atPath: F.path("tiny-llama-sharded/\(name)"), toPath: directory + "/" + name)
        }
        try edit(directory)
        return Result { () throws(ModelRuntimeError) in try SafetensorsCheckpoint(directory: directory) }
    }

    func rewriteIndex(_ directory: String, _ transform: (inout [String: Any]) -> Void) throws {
        let path = directory + "/model.safetensors.index.json"
        var index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        transform(&index)
        try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: path))
    }

    @Test("a shard the index names but the directory lacks throws invalidFile naming the shard")
    func missingShard() throws {
        let result = try openEdited { try FileManager.default.removeItem(atPath: $0 + "/model-00002-of-00002.safetensors") }
        guard case let .failure(error) = result else { Issue.record("opened a checkpoint with a missing shard"); return }
        #expect(error.code == .invalidFile)
        #expect(error.message.contains("model-00002-of-00002.safetensors"))
    }

    @Test("an index entry whose shard lacks the tensor throws missingTensor naming both")
    func indexPointsAtWrongShard() throws {
        let result = try openEdited { directory in
            try rewriteIndex(directory) { index in
                var map = index["weight_map"] as! [String: String]
                map["model.norm.weight"] = "model-00001-of-00002.safetensors"
                index["weight_map"] = map
            }
        }
        guard case let .failure(error) = result else { Issue.record("opened an inconsistent checkpoint"); return }
        #expect(error.code == .missingTensor)
        #expect(error.message.contains("model.norm.weight") && error.message.contains("model-00001-of-00002.safetensors"))
    }

    @Test("an index whose shard names leave the directory, or whose weight_map is malformed, throws invalidFile",
          arguments: ["../model-00001-of-00002.safetensors", "/etc/passwd", "", "..", "NOT-A-STRING", "NO-MAP"])
    func hostileIndex(shard: String) throws {
        let result = try openEdited { directory in
            try rewriteIndex(directory) { index in
                switch shard {
                case "NO-MAP": index["weight_map"] = [1, 2]
                case "NOT-A-STRING": index["weight_map"] = ["model.norm.weight": 3]
                default: index["weight_map"] = ["model.norm.weight": shard]
                }
            }
        }
        guard case let .failure(error) = result else { Issue.record("accepted shard name \(shard)"); return }
        #expect(error.code == .invalidFile, "\(error)")
        #expect(error.message.contains("index.json"))
    }

    @Test("a directory without model.safetensors or an index throws io naming both")
    func emptyDirectory() throws {
        let directory = try F.temporaryDirectory("empty")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let error = #expect(throws: ModelRuntimeError.self) { try SafetensorsCheckpoint(directory: directory) }
        #expect(error?.code == .io)
        #expect(error?.message.contains("model.safetensors.index.json") == true)
    }

    @Test("checkTensors reports the first tensor whose shape disagrees with the config, or that is absent")
    func checkTensorsFailures() throws {
        let checkpoint = try SafetensorsCheckpoint(directory: F.path("tiny-llama"))
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: F.path("tiny-llama/config.json")))) as! [String: Any]
        json["intermediate_size"] = 32
        let wrongShape = try HuggingFaceLlamaConfig(jsonBytes: [UInt8](JSONSerialization.data(withJSONObject: json)), source: "wide.json")
        let shapeError = #expect(throws: ModelRuntimeError.self) { try wrongShape.checkTensors(in: checkpoint) }
        #expect(shapeError?.code == .tensorShape)
        #expect(shapeError?.message.contains("model.layers.0.mlp.gate_proj.weight") == true)
        #expect(shapeError?.message.contains("[32, 16]") == true)

        json["intermediate_size"] = 24
        json["num_hidden_layers"] = 3
        let deeper = try HuggingFaceLlamaConfig(jsonBytes: [UInt8](JSONSerialization.data(withJSONObject: json)), source: "deep.json")
        let missing = #expect(throws: ModelRuntimeError.self) { try deeper.checkTensors(in: checkpoint) }
        #expect(missing?.code == .missingTensor)
        #expect(missing?.message.contains("model.layers.2.") == true)
    }
}

@Suite("RoPE row permutation")
struct SafetensorsPermutationTests {
    typealias F = SafetensorsFixtures

    @Test("permuteForAdjacentPairRoPE matches numpy's reshape/swapaxes from convert_hf_to_gguf.py")
    func matchesConverter() throws {
        let cases = try F.decode(F.PermuteCases.self, "permute.expected.json").cases
        #expect(cases.count == 3)
        for c in cases {
            let input = try Tensor(shape: Shape(c.shape), scalars: c.input.map(\.value))
            let output = HuggingFaceLlamaConfig.permuteForAdjacentPairRoPE(input, heads: c.heads)
            #expect(output.shape == input.shape, "\(c.name)")
            #expect(output.scalars == c.output.map(\.value), "\(c.name)")
            #expect(output.scalars != input.scalars, "\(c.name): the permutation must move rows")
        }
    }

    @Test("GGUF row 2j is HF row j and row 2j+1 is HF row j + D/2, per head")
    func rowMapping() {
        // Rows labelled by index: 2 heads of dimension 4, one column.
        let w = try! Tensor(shape: [8, 1], scalars: (0..<8).map(Float.init))
        let p = HuggingFaceLlamaConfig.permuteForAdjacentPairRoPE(w, heads: 2)
        #expect(p.scalars == [0, 2, 1, 3, 4, 6, 5, 7])
    }
}
