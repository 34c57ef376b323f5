import Foundation
import Testing
import Tokenization
@testable import ModelRuntime

/// The safetensors path end to end: config.json + safetensors → LlamaModel → fast path, against the
/// logits numpy computes the way transformers does (half-split RoPE on the stored q/k rows;
/// Oracle/hf_tiny_logits.py). Agreement checks the q/k permutation as well as the loading.
@Suite("Hugging Face checkpoints")
struct HuggingFaceLoadingTests {
    struct Expected: Decodable {
        let token_ids: [Int]
        let logits: [[Double]]
    }

    static func tokenizer(vocab: Int) -> TokenizerConfiguration {
        var tokens = ["<unk>", "<s>", "</s>"]
        var code = 0x41
        while tokens.count < vocab {
            tokens.append(String(UnicodeScalar(UInt8(code))))
            code += 1
        }
        return TokenizerConfiguration(model: .bytePairEncoding, preTokenizer: "default", tokens: tokens,
                                      tokenTypes: [2, 3, 3] + Array(repeating: 1, count: vocab - 3),
                                      bosTokenID: 1, eosTokenID: 2, unknownTokenID: 0)
    }

    static var root: String { Bundle.module.resourceURL!.appendingPathComponent("Fixtures/safetensors").path }

    @Test("tiny Llama (single file and sharded): logits match transformers' arithmetic", arguments: ["tiny-llama", "tiny-llama-sharded"])
    func tinyLlama(directory: String) throws {
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: Self.root + "/tiny-llama.logits.json")))
        let model = try LlamaModel(huggingFaceDirectory: Self.root + "/" + directory, tokenizer: Self.tokenizer(vocab: 32))
        #expect(model.configuration.layerCount == 2 && model.configuration.kvHeadCount == 2)
        let forward = CPUForwardPass(model: model, threads: 2)
        var cache = try KVCache(configuration: model.configuration, blockCount: 4, blockSize: 4)
        var batch = ForwardBatch()
        batch.append(tokens: expected.token_ids, startPosition: 0, blockTable: [2, 0, 3], logits: .all)
        var logits = Logits()
        try forward.run(batch, cache: &cache, logits: &logits)
        for r in expected.token_ids.indices {
            let err = LogitCheck.relativeError(logits.row(r), expected.logits[r].map { Float($0) })
            #expect(err <= 1e-4, "\(directory) row \(r): relative error \(err)")
        }
    }

    @Test("a tokenizer of the wrong size and a missing directory are typed errors")
    func errors() throws {
        do {
            _ = try LlamaModel(huggingFaceDirectory: Self.root + "/tiny-llama", tokenizer: Self.tokenizer(vocab: 20))
            Issue.record("a 20-token tokenizer was accepted for a 32-token model")
        } catch {
            #expect(error.code == .invalidConfiguration && error.message.contains("vocab_size"), "\(error)")
        }
        #expect(throws: ModelRuntimeError.self) {
            _ = try LlamaModel(huggingFaceDirectory: Self.root + "/no-such-model", tokenizer: Self.tokenizer(vocab: 32))
        }
    }
}
