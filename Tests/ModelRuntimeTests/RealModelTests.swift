import Foundation
import KVPaging
import Quantization
import TensorCore
import TensorCoreBLAS
import Testing
import Tokenization
@testable import ModelRuntime

/// The oracle computed outside Swift (Oracle/llama_oracle.py: numpy float64 over gguf-py's
/// dequantized tensors), committed as top-64 logits per prompt position.
struct OracleFixture: Decodable {
    struct Position: Decodable {
        let position: Int
        let logsumexp: Double
        let top_ids: [Int]
        let top_logits: [Double]
    }
    struct Prompt: Decodable {
        let text: String
        let token_ids: [Int]
        let positions: [Position]
        let greedy_continuation: [Int]
    }
    let model_sha256: String
    let prompts: [Prompt]

    static func load() throws -> OracleFixture {
        let url = Bundle.module.resourceURL!.appendingPathComponent("Fixtures/smollm2-oracle.json")
        return try JSONDecoder().decode(OracleFixture.self, from: Data(contentsOf: url))
    }
}

@Suite("SmolLM2-135M-Instruct Q4_1 (the real model)", .enabled(if: TestModels.shouldRun, "\(TestModels.smolLM2) is absent; \(TestModels.fetchHint)"), .serialized)
struct RealModelTests {
    @Test("configuration and tensors as the file describes them")
    func configuration() async throws {
        let model = try await TestModels.smol()
        let c = model.configuration
        #expect(c.layerCount == 30 && c.hiddenSize == 576 && c.intermediateSize == 1536)
        #expect(c.headCount == 9 && c.kvHeadCount == 3 && c.headDimension == 64)
        #expect(c.vocabularySize == 49_152 && c.contextLength == 8192 && c.tiedEmbeddings)
        #expect(c.ropeTheta == 100_000 && abs(c.rmsNormEpsilon - 1e-5) < 1e-9)
        #expect(model.tokenizer.configuration.bosTokenID == 1 && model.tokenizer.configuration.eosTokenID == 2)
    }

    /// Logits of every prompt position against the numpy oracle: top-1 agreement, mean KL over the
    /// oracle's top 64 (renormalised with the tail as one bucket), and the greedy continuation.
    @Test("logits agree with the independent numpy oracle")
    func oracle() async throws {
        let model = try await TestModels.smol()
        let fixture = try OracleFixture.load()
        let (positions, top1, meanKL, klMax, greedyAgree, greedyTotal) = try await offCooperativePool { try Self.oracleRun(model, fixture) }
        let agreement = Double(top1) / Double(positions)
        // The fast path quantizes activations to 8 bits (as llama.cpp's Q4_1 × Q8_1 dot products do);
        // the oracle multiplies exact float64 activations. Bounds: mean KL ≤ 0.01 nats, top-1 ≥ 90 %.
        #expect(meanKL <= 0.01, "mean KL \(meanKL) (max \(klMax)) over \(positions) positions")
        #expect(agreement >= 0.9, "top-1 agreement \(top1)/\(positions)")
        #expect(Double(greedyAgree) >= 0.85 * Double(greedyTotal), "greedy agreement \(greedyAgree)/\(greedyTotal)")
        print("oracle: \(positions) positions, top-1 \(top1)/\(positions), mean KL \(meanKL), max KL \(klMax), greedy \(greedyAgree)/\(greedyTotal)")
    }

    static func oracleRun(_ model: LlamaModel, _ fixture: OracleFixture) throws -> (Int, Int, Double, Double, Int, Int) {
        let forward = CPUForwardPass(model: model, threads: 2)
        var top1 = 0, positions = 0
        var klSum = 0.0, klMax = 0.0
        var greedyAgree = 0, greedyTotal = 0
        for prompt in fixture.prompts {
            var cache = try KVCache(configuration: model.configuration, blockCount: 8, blockSize: 16)
            var batch = ForwardBatch()
            batch.append(tokens: prompt.token_ids, startPosition: 0, blockTable: [6, 1, 4, 0, 7, 2, 5, 3], logits: .all)
            var logits = Logits()
            try forward.run(batch, cache: &cache, logits: &logits)
            for p in prompt.positions {
                let row = logits.row(p.position)
                positions += 1
                if LogitCheck.argmax(row) == p.top_ids[0] { top1 += 1 }
                // KL(oracle ‖ ours) over the oracle's top ids plus the rest as one bucket.
                let ourLSE = Self.logSumExp(row)
                var kl = 0.0, restP = 1.0, restQ = 1.0
                for (id, l) in zip(p.top_ids, p.top_logits) {
                    let lp = l - p.logsumexp, lq = Double(row[id]) - ourLSE
                    kl += exp(lp) * (lp - lq)
                    restP -= exp(lp)
                    restQ -= exp(lq)
                }
                if restP > 1e-12, restQ > 1e-12 { kl += restP * log(restP / restQ) }
                klSum += kl
                klMax = max(klMax, kl)
            }
            // Greedy continuation, teacher-forced on the oracle's tokens.
            var position = prompt.token_ids.count
            var next = LogitCheck.argmax(logits.row(prompt.positions.count - 1))
            for want in prompt.greedy_continuation {
                greedyTotal += 1
                if next == want { greedyAgree += 1 }
                batch.removeAll()
                batch.append(tokens: [want], startPosition: position, blockTable: [6, 1, 4, 0, 7, 2, 5, 3].prefix(position / 16 + 1))
                try forward.run(batch, cache: &cache, logits: &logits)
                next = LogitCheck.argmax(logits.row(0))
                position += 1
            }
        }
        return (positions, top1, klSum / Double(positions), klMax, greedyAgree, greedyTotal)
    }

    static func logSumExp(_ x: [Float]) -> Double {
        let m = Double(x.max()!)
        return m + log(x.reduce(0.0) { $0 + exp(Double($1) - m) })
    }

    @Test("fast path vs the backend path (BLAS, dequantized weights) on the real model")
    func fastVersusBackend() async throws {
        let model = try await TestModels.smol()
        let (kl, agree, count) = try await offCooperativePool { try Self.fastVersusBackendRun(model) }
        // Activation quantization moves near-ties (a real model's top two are often within 0.1 logit).
        #expect(kl / Double(count) <= 0.01, "mean KL \(kl / Double(count))")
        #expect(Double(agree) >= 0.75 * Double(count), "top-1 \(agree)/\(count)")
        print("fast vs BLAS backend: mean KL \(kl / Double(count)), top-1 \(agree)/\(count)")
    }

    static func fastVersusBackendRun(_ model: LlamaModel) throws -> (Double, Int, Int) {
        let fast = CPUForwardPass(model: model, threads: 2)
        let ref = try BackendForwardPass(model: model, backend: BLASBackend())
        var cacheA = try KVCache(configuration: model.configuration, blockCount: 4, blockSize: 16)
        var cacheB = cacheA
        let ids = model.tokenizer.encode("The quick brown fox jumps over the lazy dog, and then it", addSpecialTokens: true)
        var batch = ForwardBatch()
        batch.append(tokens: ids, startPosition: 0, blockTable: [3, 1, 2], logits: .all)
        var logits = Logits()
        try fast.run(batch, cache: &cacheA, logits: &logits)
        let expected = try ref.run(batch, cache: &cacheB)
        var agree = 0
        var kl = 0.0
        for r in 0..<ids.count {
            if LogitCheck.argmax(logits.row(r)) == LogitCheck.argmax(expected[r]) { agree += 1 }
            kl += LogitCheck.kl(expected[r], logits.row(r))
        }
        return (kl, agree, ids.count)
    }

    @Test("a chat prompt gets a coherent answer (greedy)")
    func chat() async throws {
        let model = try await TestModels.smol()
        let result = try await offCooperativePool {
            let generator = try TextGenerator(model: model, threads: 2, contextLimit: 256)
            let prompt = try generator.chatPrompt([ChatMessage(role: "user", content: "What is the capital of France? Answer in one sentence.")])
            return try generator.generate(promptTokens: prompt, parameters: GenerationParameters(sampling: .greedy, maxTokens: 24))
        }
        #expect(result.text.contains("Paris"), "answer: \(result.text)")
        #expect(result.finishReason == .stop, "the answer should end with <|im_end|>: \(result.text)")
    }

    @Test("same seed, same text; another seed, other text")
    func seeds() async throws {
        let model = try await TestModels.smol()
        let (a, b, c) = try await offCooperativePool {
            let generator = try TextGenerator(model: model, threads: 2, contextLimit: 128)
            func run(_ seed: UInt64) throws -> [Int] {
                try generator.generate(prompt: "Once upon a time", parameters: GenerationParameters(
                    sampling: SamplingParameters(temperature: 1.0, topP: 0.95, seed: seed), maxTokens: 20, ignoreEOS: true)).tokens
            }
            return (try run(7), try run(7), try run(8))
        }
        #expect(a == b)
        #expect(a != c)
    }

    @Test("bad prompts are typed errors")
    func badPrompts() async throws {
        let model = try await TestModels.smol()
        let generator = try TextGenerator(model: model, threads: 1, contextLimit: 32)
        let p = GenerationParameters(sampling: .greedy, maxTokens: 4)
        #expect(throws: ModelRuntimeError.self) { try generator.generate(promptTokens: [], parameters: p) }
        #expect(throws: ModelRuntimeError.self) { try generator.generate(promptTokens: Array(repeating: 5, count: 40), parameters: p) }
        #expect(throws: ModelRuntimeError.self) { try generator.generate(promptTokens: [5, 49_152], parameters: p) }
        do { _ = try generator.generate(promptTokens: Array(repeating: 5, count: 40), parameters: p) } catch { #expect(error.code == .contextOverflow) }
        do { _ = try generator.generate(promptTokens: [1], parameters: GenerationParameters(sampling: SamplingParameters(topP: 0))) } catch {
            #expect(error.code == .invalidSampling && error.message.contains("top_p"))
        }
    }

    @Test("a truncated copy of the real file is a typed error at every cut")
    func truncatedFile() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: TestModels.smolLM2Path))
        let cuts = [0, 3, 8, 24, 1000, 200_000, 1_500_000, bytes.count / 2, bytes.count - 1]
        for cut in cuts {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("truncated-\(cut).gguf").path
            try bytes.prefix(cut).write(to: URL(fileURLWithPath: path))
            defer { try? FileManager.default.removeItem(atPath: path) }
            do {
                _ = try LlamaModel(contentsOf: path)
                Issue.record("a file cut at \(cut) bytes loaded")
            } catch {
                #expect(error.code == .invalidFile, "cut \(cut): \(error)")
            }
        }
    }
}
