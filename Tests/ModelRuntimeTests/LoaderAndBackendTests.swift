import Foundation
import Quantization
import TensorCore
import TensorCoreOpenCL
import Testing
@testable import ModelRuntime

private let openCLPresent: Bool = { (try? OpenCLBackend.devices())?.isEmpty == false }()

@Suite("Loader: hostile files, unknown architectures; the model on other backends")
struct LoaderAndBackendTests {
    static let spec = TinyModelSpec(hidden: 64, heads: 4, kvHeads: 2, ffn: 96, layers: 2, vocab: 40, projectionType: .q4_1, embeddingType: .q8_0, seed: 21)

    @Test("an architecture other than llama is refused, naming it and what is supported")
    func unknownArchitecture() throws {
        let bytes = try Self.spec.serialized()
        var w = GGUFWriter()
        let file = try GGUFFile(bytes: bytes)
        for (k, v) in file.metadataEntries { w.setMetadata(k, k == "general.architecture" ? .string("mamba") : v) }
        let rewritten = try GGUFFile(bytes: try w.serialize())
        do {
            _ = try LlamaModel(file: rewritten)
            Issue.record("a mamba file loaded")
        } catch {
            #expect(error.code == .unsupportedArchitecture && error.message.contains("mamba") && error.message.contains("llama"), "\(error)")
        }
    }

    @Test("a missing tensor is named")
    func missingTensor() throws {
        let file = try GGUFFile(bytes: try Self.spec.serialized())
        var w = GGUFWriter()
        for (k, v) in file.metadataEntries { w.setMetadata(k, v) }
        for t in file.tensors where t.name != "blk.1.ffn_down.weight" {
            try w.addTensor(name: t.name, type: t.type!, dimensions: t.dimensions, bytes: try file.tensorBytes(t))
        }
        let pruned = try GGUFFile(bytes: try w.serialize())
        do {
            _ = try LlamaModel(file: pruned)
            Issue.record("a file without blk.1.ffn_down.weight loaded")
        } catch {
            #expect(error.code == .missingTensor && error.message.contains("blk.1.ffn_down.weight"), "\(error)")
        }
    }

    /// Random byte flips and truncations of a small model file: every outcome is a loaded model that
    /// runs (or refuses a step with a typed error) or a typed error — a crash fails the run.
    @Test("fuzzed model files never crash the loader or the forward pass")
    func fuzz() throws {
        let original = try Self.spec.serialized()
        var rng = SplitMix64(seed: 2026)
        var loaded = 0, refused = 0
        let headerEnd = try GGUFFile(bytes: original).dataOffset
        for i in 0..<400 {
            var bytes = original
            if i % 4 == 0 {
                bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count))))
            } else {
                // Mostly in the header and metadata, where the structure is.
                for _ in 0..<(1 + Int(rng.next() % 4)) {
                    let at = i % 3 == 0 ? Int(rng.next() % UInt64(bytes.count)) : Int(rng.next() % UInt64(headerEnd))
                    bytes[at] ^= UInt8(truncatingIfNeeded: 1 << (rng.next() % 8))
                }
            }
            do {
                let model = try LlamaModel(file: try GGUFFile(bytes: bytes))
                let fast = CPUForwardPass(model: model, threads: 1)
                var cache = try KVCache(configuration: model.configuration, blockCount: 2, blockSize: 8)
                var batch = ForwardBatch()
                batch.append(tokens: [3, 4, 5], startPosition: 0, blockTable: [0])
                var logits = Logits()
                do { try fast.run(batch, cache: &cache, logits: &logits) } catch { _ = error.code }
                loaded += 1
            } catch is QuantizationError {
                refused += 1
            } catch is ModelRuntimeError {
                refused += 1
            }
        }
        #expect(loaded + refused == 400)
        #expect(refused > 100, "only \(refused) of 400 mutations were refused; the fuzzer is not reaching the structure")
    }

    @Test("the same model on OpenCL (PoCL on a CPU) agrees with the reference backend",
          .enabled(if: openCLPresent, "no OpenCL device on this machine"))
    func openCL() throws {
        let model = try TinyModelSpec(hidden: 64, heads: 4, kvHeads: 2, ffn: 96, layers: 2, vocab: 40, projectionType: .f32, embeddingType: .f32, seed: 5).build()
        let cl = try BackendForwardPass(model: model, backend: try OpenCLBackend(configuration: .init()))
        let ref = try BackendForwardPass(model: model, backend: ReferenceBackend())
        let fast = CPUForwardPass(model: model, threads: 2)
        var c1 = try KVCache(configuration: model.configuration, blockCount: 4, blockSize: 4)
        var c2 = c1, c3 = c1
        var batch = ForwardBatch()
        batch.append(tokens: [3, 9, 4, 30, 7, 12, 5], startPosition: 0, blockTable: [3, 0], logits: .all)
        let a = try cl.run(batch, cache: &c1)
        let b = try ref.run(batch, cache: &c2)
        var logits = Logits()
        try fast.run(batch, cache: &c3, logits: &logits)
        for r in b.indices {
            #expect(LogitCheck.relativeError(a[r], b[r]) <= 1e-4, "OpenCL row \(r)")
            #expect(LogitCheck.relativeError(logits.row(r), b[r]) <= 1e-4, "fast row \(r)")
        }
    }
}
