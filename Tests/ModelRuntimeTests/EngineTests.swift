import CInferenceKitCPUKernels
import Foundation
import KVPaging
import Scheduling
import TensorCore
import Testing
@testable import Engine
@testable import ModelRuntime

/// What one request's stream delivered.
struct Collected: Sendable {
    var tokens: [[Int]]
    var text: [String]
    var completions: [GenerationCompletion]
}

func collect(_ stream: GenerationStream, samples: Int = 1) async throws -> Collected {
    var c = Collected(tokens: Array(repeating: [], count: samples), text: Array(repeating: "", count: samples), completions: [])
    for try await event in stream {
        switch event {
        case let .token(t, sample):
            c.tokens[sample].append(t.token)
            c.text[sample] += t.text
        case let .finished(done):
            c.text[done.sample] += done.trailingText
            c.completions.append(done)
        }
    }
    return c
}

/// The oracle for "batched = alone": the single-sequence generator (contiguous blocks, no scheduler),
/// with the engine's default float16 K/V.
func alone(_ model: LlamaModel, _ prompt: [Int], _ parameters: GenerationParameters, precision: KVPrecision = .float16) async throws -> [Int] {
    try await offCooperativePool {
        let g = try TextGenerator(model: model, threads: 2, contextLimit: min(model.configuration.contextLength, 1024), kvPrecision: precision)
        return try g.generate(promptTokens: prompt, parameters: parameters).tokens
    }
}

/// Polls until `condition` holds for the engine's statistics (the engine publishes after each step).
func eventually(_ engine: InferenceEngine, seconds: Double = 20, _ condition: (EngineStatistics) -> Bool) async throws -> EngineStatistics {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        let s = engine.statistics()
        if condition(s) { return s }
        try await Task.sleep(for: .milliseconds(10))
    }
    return engine.statistics()
}

enum TinyEngineModel {
    static let model: LlamaModel = {
        // Q8_0 projections like the real files; a vocabulary of 96 keeps the sampling rows short.
        try! TinyModelSpec(hidden: 64, heads: 4, kvHeads: 2, ffn: 160, layers: 2, vocab: 96, projectionType: .q8_0, embeddingType: .q8_0, seed: 7).build()
    }()
}

func randomPrompt(_ rng: inout SplitMix64, length: Int, vocab: Int) -> [Int] {
    (0..<length).map { _ in 3 + Int(rng.next() % UInt64(vocab - 3)) }
}

@Suite("Engine on a tiny random model", .serialized)
struct TinyEngineTests {
    let model = TinyEngineModel.model

    func greedy(_ n: Int) -> GenerationParameters { GenerationParameters(sampling: .greedy, maxTokens: n, ignoreEOS: true) }

    @Test("every policy runs the model, and each request equals its run alone",
          arguments: ["none", "static", "dynamic", "continuous", "priority"])
    func everyPolicy(_ name: String) async throws {
        let policy: any BatchingPolicy = switch name {
        case "none": NoBatchingPolicy()
        case "static": try StaticBatchingPolicy(batchSize: 3, launchAfter: 0.01)
        case "dynamic": try DynamicBatchingPolicy(maxBatchSize: 3, maxWait: 0.01)
        case "priority": PriorityBatchingPolicy()
        default: ContinuousBatchingPolicy()
        }
        let engine = try InferenceEngine(model: model, configuration: EngineConfiguration(kvCacheTokens: 2048, blockSize: 8, policy: policy))
        var rng = SplitMix64(seed: 11)
        var jobs: [(prompt: [Int], parameters: GenerationParameters, priority: Int)] = []
        for i in 0..<7 { jobs.append((randomPrompt(&rng, length: 3 + i * 5, vocab: 96), greedy(4 + i * 3), i % 3)) }
        let results = try await withThrowingTaskGroup(of: (Int, [Int]).self) { group in
            for (i, j) in jobs.enumerated() {
                let stream = try engine.generate(EngineRequest(promptTokens: j.prompt, parameters: j.parameters, priority: j.priority))
                group.addTask { (i, try await collect(stream).tokens[0]) }
            }
            var out = [[Int]](repeating: [], count: jobs.count)
            for try await (i, t) in group { out[i] = t }
            return out
        }
        for (i, j) in jobs.enumerated() {
            let expected = try await alone(model, j.prompt, j.parameters)
            #expect(results[i] == expected, "policy \(name), request \(i)")
        }
        await engine.shutdown()
        let s = engine.statistics()
        #expect(s.activeBlocks == 0 && s.liveSequences == 0 && s.liveRequests == 0)
    }

    @Test("preempted then resumed = never preempted, token for token")
    func preemption() async throws {
        // 10 requests of up to 20 + 40 tokens in a pool of 24 blocks of 4: they cannot all grow at once.
        let engine = try InferenceEngine(model: model, configuration: EngineConfiguration(
            kvCacheTokens: 96, blockSize: 4, limits: SchedulerLimits(maxNumSeqs: 10, maxBatchedTokens: 64), watermark: 0))
        var rng = SplitMix64(seed: 5)
        let jobs = (0..<10).map { i in (randomPrompt(&rng, length: 8 + i, vocab: 96), greedy(30 + i)) }
        let results = try await withThrowingTaskGroup(of: (Int, [Int]).self) { group in
            for (i, j) in jobs.enumerated() {
                let stream = try engine.generate(EngineRequest(promptTokens: j.0, parameters: j.1))
                group.addTask { (i, try await collect(stream).tokens[0]) }
            }
            var out = [[Int]](repeating: [], count: jobs.count)
            for try await (i, t) in group { out[i] = t }
            return out
        }
        let stats = engine.statistics()
        #expect(stats.preemptions > 0, "the pool was meant to force preemptions")
        for (i, j) in jobs.enumerated() {
            #expect(results[i] == (try await alone(model, j.0, j.1)), "request \(i)")
        }
        await engine.shutdown()
        #expect(engine.statistics().activeBlocks == 0)
    }

    @Test("a prefix-cache hit = a miss, token for token; tenants with other salts do not hit")
    func prefixCache() async throws {
        let engine = try InferenceEngine(model: model, configuration: EngineConfiguration(kvCacheTokens: 1024, blockSize: 4))
        var rng = SplitMix64(seed: 9)
        let system = randomPrompt(&rng, length: 37, vocab: 96)
        let first = system + randomPrompt(&rng, length: 5, vocab: 96)
        let second = system + randomPrompt(&rng, length: 9, vocab: 96)
        let a = try await collect(try engine.generate(EngineRequest(promptTokens: first, parameters: greedy(12))))
        let hitsBefore = engine.statistics().prefixCacheHitTokens
        let b = try await collect(try engine.generate(EngineRequest(promptTokens: second, parameters: greedy(12))))
        let hits = engine.statistics().prefixCacheHitTokens - hitsBefore
        #expect(hits == 36, "the 37-token system prompt spans 9 full blocks of 4")
        #expect(b.completions.first?.cachedPromptTokens == 36)
        #expect(a.tokens[0] == (try await alone(model, first, greedy(12))))
        #expect(b.tokens[0] == (try await alone(model, second, greedy(12))))
        let before = engine.statistics().prefixCacheHitTokens
        _ = try await collect(try engine.generate(EngineRequest(promptTokens: second, parameters: greedy(4), cacheSalt: "tenant-b")))
        #expect(engine.statistics().prefixCacheHitTokens == before, "another tenant's salt must not hit")
        await engine.shutdown()
    }

    @Test("n = 4 samples share the prompt (copy-on-write) and equal four requests seeded seed … seed + 3")
    func parallelSamples() async throws {
        let engine = try InferenceEngine(model: model, configuration: EngineConfiguration(kvCacheTokens: 1024, blockSize: 8))
        var rng = SplitMix64(seed: 21)
        let prompt = randomPrompt(&rng, length: 13, vocab: 96)  // a partial last block: the first decode copies it
        var p = GenerationParameters(sampling: SamplingParameters(temperature: 0.9, topK: 20, seed: 1234), maxTokens: 10, ignoreEOS: true)
        let together = try await collect(try engine.generate(EngineRequest(promptTokens: prompt, parameters: p, samples: 4)), samples: 4)
        #expect(together.completions.count == 4)
        #expect(engine.statistics().blockCopies >= 3, "each sample but one copies the shared partial block")
        var separate: [[Int]] = []
        for k in 0..<4 {
            p.sampling.seed = 1234 + UInt64(k)
            separate.append(try await collect(try engine.generate(EngineRequest(promptTokens: prompt, parameters: p))).tokens[0])
        }
        #expect(together.tokens == separate)
        #expect(Set(separate).count > 1, "different seeds should give different samples")
        await engine.shutdown()
        #expect(engine.statistics().activeBlocks == 0)
    }

    @Test("1,000 requests with random cancellations leave no blocks, sequences or requests behind")
    func randomCancellations() async throws {
        let engine = try InferenceEngine(model: model, configuration: EngineConfiguration(kvCacheTokens: 512, blockSize: 4, streamBufferLimit: 8))
        let total = 1000
        try await withThrowingTaskGroup(of: Void.self) { group in
            var rng = SplitMix64(seed: 77)
            for i in 0..<total {
                let prompt = randomPrompt(&rng, length: 1 + Int(rng.next() % 20), vocab: 96)
                let stopAfter = Int(rng.next() % 12)  // consume this many events, then give up (≥ 10: read to the end)
                let stream = try engine.generate(EngineRequest(promptTokens: prompt, parameters: greedy(1 + Int(rng.next() % 10))))
                let how = rng.next() % 3
                group.addTask {
                    var seen = 0
                    if how == 0 && stopAfter < 10 {
                        // Cancel the consuming task.
                        let t = Task { for try await _ in stream { } }
                        try? await Task.sleep(for: .microseconds(Int(stopAfter) * 50))
                        t.cancel()
                        _ = await t.result
                        return
                    }
                    for try await _ in stream {
                        seen += 1
                        if stopAfter < 10 && seen >= stopAfter { break }  // dropping the iterator cancels
                    }
                }
                if i % 50 == 0 { try await Task.sleep(for: .milliseconds(1)) }
            }
            try await group.waitForAll()
        }
        let s = try await eventually(engine) { $0.liveRequests == 0 && $0.liveSequences == 0 }
        #expect(s.liveRequests == 0)
        #expect(s.liveSequences == 0)
        #expect(s.activeBlocks == 0)
        #expect(s.finishedRequests + s.abortedRequests == total, "\(s.finishedRequests) finished + \(s.abortedRequests) aborted")
        await engine.shutdown()
    }

    @Test("a request that can never fit is refused before any work, with the reason")
    func neverFits() async throws {
        let engine = try InferenceEngine(model: model, configuration: EngineConfiguration(kvCacheTokens: 64, blockSize: 8, watermark: 0))
        #expect {
            _ = try engine.generate(EngineRequest(promptTokens: Array(repeating: 5, count: 40), parameters: greedy(40)))
        } throws: { ($0 as? EngineError)?.code == .requestTooLarge && "\($0)".contains("KV blocks") }
        #expect {
            _ = try engine.generate(EngineRequest(promptTokens: Array(repeating: 5, count: 200), parameters: greedy(100)))
        } throws: { ($0 as? EngineError)?.code == .requestTooLarge && "\($0)".contains("context") }
        #expect(throws: EngineError.self) { _ = try engine.generate(EngineRequest(promptTokens: [])) }
        #expect(throws: EngineError.self) { _ = try engine.generate(EngineRequest(promptTokens: [1000])) }
        #expect(throws: EngineError.self) { _ = try engine.generate(EngineRequest(promptTokens: [5], samples: 0)) }
        #expect(engine.statistics().steps == 0)
        await engine.shutdown()
    }

    @Test("shutdown mid-request ends the stream with a typed error and frees everything")
    func shutdownMidRequest() async throws {
        let engine = try InferenceEngine(model: model, configuration: EngineConfiguration(kvCacheTokens: 512, blockSize: 8))
        let stream = try engine.generate(EngineRequest(promptTokens: [5, 6, 7], parameters: greedy(200)))
        var iterator = stream.makeAsyncIterator()
        _ = try await iterator.next()
        await engine.shutdown(.cancel)
        await #expect { while try await iterator.next() != nil {} } throws: { ($0 as? EngineError)?.code == .shutDown }
        #expect(throws: EngineError.self) { _ = try engine.generate(EngineRequest(promptTokens: [5])) }
        let s = engine.statistics()
        #expect(s.activeBlocks == 0 && s.liveSequences == 0)
    }

    @Test("a consumer that does not read holds its request back; reading resumes it")
    func slowConsumer() async throws {
        let engine = try InferenceEngine(model: model, configuration: EngineConfiguration(kvCacheTokens: 512, blockSize: 8, streamBufferLimit: 4))
        let prompt = [5, 9, 12, 40]
        let stream = try engine.generate(EngineRequest(promptTokens: prompt, parameters: greedy(60)))
        try await Task.sleep(for: .milliseconds(300))
        let produced = engine.statistics().generationTokens
        #expect(produced <= 6, "with a buffer of 4 events the engine should pause, not run ahead (\(produced) tokens)")
        let got = try await collect(stream)
        #expect(got.tokens[0] == (try await alone(model, prompt, greedy(60))))
        await engine.shutdown()
    }
}

@Suite("Engine on SmolLM2-135M-Instruct Q4_1", .enabled(if: TestModels.shouldRun, "\(TestModels.smolLM2) is absent; \(TestModels.fetchHint)"), .serialized)
struct RealEngineTests {
    @Test("the forward pass is batch-invariant: a prompt's logits are bit-identical whole, cut anywhere, or beside another sequence",
          arguments: KVPrecision.allCases)
    func batchInvariance(precision: KVPrecision) async throws {
        let model = try await TestModels.smol()
        let prompt = try model.chatPrompt([.init(role: "user", content: "Write 3 sentences about quantum computers, please, please.")])
        let other = try model.chatPrompt([.init(role: "user", content: "Name a colour.")])
        let n = prompt.count
        let diffs: [String] = try await offCooperativePool {
            let fp = CPUForwardPass(model: model, threads: 2)
            // cuts: where the prompt is split into chunks; beside: run each chunk in a batch after another sequence's chunk.
            func run(_ cuts: [Int], beside: Bool) throws -> [Float] {
                var cache = try KVCache(configuration: model.configuration, blockCount: 32, blockSize: 16, precision: precision)
                var logits = Logits()
                var b = ForwardBatch()
                var start = 0
                for end in cuts + [n] {
                    b.removeAll()
                    if beside { b.append(tokens: other, startPosition: 0, blockTable: Array(16..<32).prefix((other.count + 15) / 16), logits: .last) }
                    b.append(tokens: prompt[start..<end], startPosition: start, blockTable: Array(0..<16).prefix((end + 15) / 16), logits: end == n ? .last : .none)
                    try fp.run(b, cache: &cache, logits: &logits)
                    start = end
                }
                return logits.row(logits.rowCount - 1)
            }
            let whole = try run([], beside: false)
            var bad: [String] = []
            for (cuts, beside) in [([1], false), ([7], false), ([16], false), ([21], true), ([13, 29], false), (Array(5..<n), false), ([], true), ([16], true)] {
                let r = try run(cuts, beside: beside)
                if r != whole { bad.append("cuts \(cuts.prefix(3)) beside \(beside): max |Δ| \(zip(whole, r).map { abs($0 - $1) }.max()!)") }
            }
            return bad
        }
        #expect(diffs.isEmpty, "\(diffs)")
    }

    @Test("32 greedy requests submitted at random times each equal their run alone")
    func batchedEqualsAlone() async throws {
        let model = try await TestModels.smol()
        let engine = try InferenceEngine(model: model, configuration: EngineConfiguration(kvCacheTokens: 4096, limits: SchedulerLimits(maxNumSeqs: 32, maxBatchedTokens: 256)))
        let topics = ["the ocean", "a red bicycle", "Swift concurrency", "the history of Rome", "bread baking", "quantum computers",
                      "a quiet village", "jazz music", "the moon landing", "volcanoes", "chess openings", "tea ceremonies"]
        var rng = SplitMix64(seed: 2026)
        var jobs: [([Int], GenerationParameters)] = []
        for i in 0..<32 {
            let text = "Write \(i % 3 + 1) sentences about \(topics[i % topics.count])" + String(repeating: ", please", count: Int(rng.next() % 12)) + "."
            let prompt = try model.chatPrompt([.init(role: "user", content: text)])
            jobs.append((prompt, GenerationParameters(sampling: .greedy, maxTokens: 4 + Int(rng.next() % 20))))
        }
        let delays = (0..<32).map { _ in Int(rng.next() % 40) }
        let results = try await withThrowingTaskGroup(of: (Int, [Int]).self) { group in
            for (i, j) in jobs.enumerated() {
                try await Task.sleep(for: .milliseconds(delays[i]))
                let stream = try engine.generate(EngineRequest(promptTokens: j.0, parameters: j.1))
                group.addTask { (i, try await collect(stream).tokens[0]) }
            }
            var out = [[Int]](repeating: [], count: jobs.count)
            for try await (i, t) in group { out[i] = t }
            return out
        }
        for (i, j) in jobs.enumerated() {
            #expect(results[i] == (try await alone(model, j.0, j.1)), "request \(i)")
        }
        await engine.shutdown()
        #expect(engine.statistics().activeBlocks == 0)
    }

    @Test("text held back for a stop string that never completes is emitted when EOS ends the answer (engine and generator)")
    func heldTextAtEOS() async throws {
        let model = try await TestModels.smol()
        let engine = try InferenceEngine(model: model, configuration: EngineConfiguration(kvCacheTokens: 2048))
        let prompt = try model.chatPrompt([.init(role: "user", content: "What is the capital of France? Answer in one short sentence.")])
        let plain = GenerationParameters(sampling: .greedy, maxTokens: 120)
        let free = try await collect(try engine.generate(EngineRequest(promptTokens: prompt, parameters: plain)))
        let done = try #require(free.completions.first)
        try #require(done.finishReason == .stop, "the answer should end with EOS within 120 tokens")
        let text = free.text[0]
        let last = try #require(text.last)
        // A stop string that starts with the answer's last character and can never complete.
        var stopping = plain
        stopping.stop = [String(last) + "\u{1}\u{2}"]
        let held = stopping
        let withStop = try await collect(try engine.generate(EngineRequest(promptTokens: prompt, parameters: held)))
        #expect(withStop.text[0] == text, "the held-back last character was lost at EOS")
        let generated = try await offCooperativePool {
            let g = try TextGenerator(model: model, threads: 2, contextLimit: 1024, kvPrecision: .float16)
            var streamed = ""
            let r = try g.generate(promptTokens: prompt, parameters: held) { streamed += $0.text; return true }
            return (r.text, streamed)
        }
        #expect(generated.0 == text)
        #expect(generated.1 == text, "the streamed pieces add up to the text")
        await engine.shutdown()
    }

    @Test("speculative decoding (prompt lookup) gives the greedy output token for token, and accepts drafts on repetitive text")
    func speculativeEqualsPlain() async throws {
        let model = try await TestModels.smol()
        let engine = try InferenceEngine(model: model, configuration: EngineConfiguration(kvCacheTokens: 4096, speculative: SpeculativeConfiguration(lookahead: 4)))
        let passage = "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog."
        let prompt = try model.chatPrompt([.init(role: "user", content: "Repeat exactly: \(passage)")])
        let p = GenerationParameters(sampling: .greedy, maxTokens: 40)
        let got = try await collect(try engine.generate(EngineRequest(promptTokens: prompt, parameters: p)))
        #expect(got.tokens[0] == (try await alone(model, prompt, p)))
        let s = engine.statistics()
        #expect(s.draftTokens > 0 && s.acceptedDraftTokens > 0, "\(s.acceptedDraftTokens) of \(s.draftTokens) drafts accepted")
        await engine.shutdown()
    }
}

@Suite("Speculative verification and the prompt-lookup proposer")
struct SpeculationUnitTests {
    /// Empirical distribution of the token emitted first by `verify` against a fixed draft, vs the
    /// sampler's own distribution: the speculative rule must not change what is sampled.
    @Test("verify(draft:) emits tokens with exactly the sampler's distribution", arguments: [0, 3, 7])
    func verifyPreservesDistribution(draft: Int) {
        let logits: [Float] = [2.0, 1.5, 0.2, -1.0, 1.9, 0.0, -0.5, 1.0, 0.7, -2.0]
        let p = SamplingParameters(temperature: 0.8, topK: 6, topP: 0.95, seed: 5)
        var probe = Sampler(parameters: p)
        let exact = logits.withUnsafeBufferPointer { l in (0..<logits.count).map { probe.probability(of: $0, l) } }
        #expect(abs(exact.reduce(0, +) - 1) < 1e-9)
        var sampler = Sampler(parameters: SamplingParameters(temperature: 0.8, topK: 6, topP: 0.95, seed: 11))
        var counts = [Int](repeating: 0, count: logits.count)
        let trials = 40_000
        var accepted = 0
        logits.withUnsafeBufferPointer { l in
            for _ in 0..<trials {
                // No penalties: the sampler's only state is its random stream, so trials are independent draws.
                let r = sampler.verify(l, draft: draft)
                counts[r.token] += 1
                if r.accepted { accepted += 1; #expect(r.token == draft) }
            }
        }
        for t in 0..<logits.count {
            let observed = Double(counts[t]) / Double(trials)
            let sd = (exact[t] * (1 - exact[t]) / Double(trials)).squareRoot()
            #expect(abs(observed - exact[t]) <= 5 * sd + 1e-4, "token \(t): observed \(observed), exact \(exact[t])")
        }
        #expect(abs(Double(accepted) / Double(trials) - exact[draft]) <= 5 * (exact[draft] * (1 - exact[draft]) / Double(trials)).squareRoot() + 1e-4,
                "a draft is accepted with its probability")
    }

    @Test("greedy verification accepts exactly the argmax")
    func greedyVerify() {
        let logits: [Float] = [0.1, 3.0, 2.9, -1]
        var s = Sampler(parameters: .greedy)
        logits.withUnsafeBufferPointer { l in
            #expect(s.verify(l, draft: 1).accepted)
            let r = s.verify(l, draft: 2)
            #expect(!r.accepted && r.token == 1)
        }
    }

    @Test("the proposer copies what followed the latest earlier occurrence of the longest suffix")
    func ngram() {
        let p = NGramProposer(maximumMatch: 3, minimumMatch: 2)
        var d: [Int] = []
        #expect(p.propose([1, 2, 3, 9, 9, 1, 2, 3], limit: 4, into: &d) == 4)
        #expect(d == [9, 9, 1, 2])
        d = []
        #expect(p.propose([5, 6, 7, 5, 6, 8, 5, 6], limit: 2, into: &d) == 2)
        #expect(d == [8, 5], "the latest occurrence wins")
        d = []
        #expect(p.propose([1, 2, 3, 4], limit: 3, into: &d) == 0, "no repeat, no draft")
        #expect(p.propose([1, 1], limit: 3, into: &d) == 0, "shorter than the minimum match plus one")
        d = []
        #expect(p.propose([4, 4, 4], limit: 3, into: &d) == 1 && d == [4], "a draft never runs past the context")
    }
}

@Suite("Float16 K/V")
struct HalfKVTests {
    @Test("binary16 conversions agree with Swift's Float16 on every half and on random floats, each ISA")
    func conversions() {
        var halves = [UInt16](0...UInt16.max)
        var floats = [Float](repeating: 0, count: halves.count)
        ikc_half_to_float_array(&halves, &floats, Int64(halves.count))
        var mismatches = 0
        for (h, f) in zip(halves, floats) {
            let expected = Float(Float16(bitPattern: h))
            if !(expected == f || (expected.isNaN && f.isNaN)) { mismatches += 1 }
        }
        #expect(mismatches == 0)
        var rng = SplitMix64(seed: 3)
        var src: [Float] = (0..<20_011).map { i in
            switch i % 5 {
            case 0: return Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))  // any bit pattern, NaN/Inf included
            case 1: return (rng.nextUnitFloat() - 0.5) * 1e-5  // subnormal halves
            case 2: return (rng.nextUnitFloat() - 0.5) * 140_000  // around the overflow
            default: return (rng.nextUnitFloat() - 0.5) * 8
            }
        }
        src += [65504, 65519.99, 65520, -65520, 5.9604645e-8, 2.9802322e-8, 2.9802326e-8, 0, -0.0]
        for isa in [IKC_ISA_SCALAR, IKC_ISA_AVX2, IKC_ISA_AVX512] where isa <= ikc_detected_isa() {
            var out = [UInt16](repeating: 0, count: src.count)
            ikc_float_to_half_isa(Int32(isa), &src, &out, Int64(src.count))
            var bad = 0
            for (x, h) in zip(src, out) {
                let e = Float16(x)
                if !(e.bitPattern == h || (e.isNaN && Float16(bitPattern: h).isNaN)) { bad += 1 }
            }
            #expect(bad == 0, "ISA \(isa): \(bad) conversions differ from Float16(x)")
        }
    }

    @Test("paged attention over float16 K/V equals the float32 kernel on the same values, each ISA, odd sizes", arguments: [16, 32])
    func attention(blockSize: Int) {
        var rng = SplitMix64(seed: UInt64(blockSize))
        for (rows, d, kvHeads, length) in [(3, 64, 3, 77), (5, 40, 2, 33), (1, 128, 1, 200), (7, 24, 4, 16)] {
            let blocks = (length + blockSize - 1) / blockSize + 2
            let stride = kvHeads * d
            let count = blocks * blockSize * stride
            let k = (0..<count).map { _ in Float(Float16((rng.nextUnitFloat() - 0.5) * 4)) }
            let v = (0..<count).map { _ in Float(Float16((rng.nextUnitFloat() - 0.5) * 4)) }
            var kh = [UInt16](repeating: 0, count: count), vh = kh
            var kk = k, vv = v
            ikc_float_to_half(&kk, &kh, Int64(count))
            ikc_float_to_half(&vv, &vh, Int64(count))
            // The same halves head-major: element (block, head, pos, c) at ((block·Hkv + head)·blockSize + pos)·d + c.
            var khm = [UInt16](repeating: 0, count: count), vhm = khm
            for blk in 0..<blocks { for pos in 0..<blockSize { for h in 0..<kvHeads { for c in 0..<d {
                let from = (blk * blockSize + pos) * stride + h * d + c, to = ((blk * kvHeads + h) * blockSize + pos) * d + c
                khm[to] = kh[from]
                vhm[to] = vh[from]
            } } } }
            let q = (0..<(rows * d)).map { _ in rng.nextUnitFloat() - 0.5 }
            let table: [Int32] = Array((0..<Int32(blocks)).reversed())
            let visible: [Int64] = (0..<rows).map { Int64(length - rows + 1 + $0) }
            for isa in [IKC_ISA_SCALAR, IKC_ISA_AVX2, IKC_ISA_AVX512] where isa <= ikc_detected_isa() {
                for head in 0..<kvHeads {
                    var a = [Float](repeating: 0, count: rows * d), b = a
                    _ = ikc_paged_attention_isa(Int32(isa), q, Int64(rows), Int64(d), k, v, Int64(blockSize), Int64(stride), Int64(head * d), table, visible, 0.125, &a)
                    _ = ikc_paged_attention_half_isa(Int32(isa), q, Int64(rows), Int64(d), kh, vh, Int64(blockSize), Int64(blockSize * stride), Int64(stride),
                                                     Int64(head * d), table, visible, 0.125, &b)
                    // The same values head-major ([blocks, Hkv, blockSize, D]) give the same bits.
                    var c = [Float](repeating: 0, count: rows * d)
                    _ = ikc_paged_attention_half_isa(Int32(isa), q, Int64(rows), Int64(d), khm, vhm, Int64(blockSize), Int64(blockSize * stride), Int64(d),
                                                     Int64(head * blockSize * d), table, visible, 0.125, &c)
                    #expect(b == c, "isa \(isa): head-major and token-major layouts disagree")
                    let err = zip(a, b).map { abs($0 - $1) }.max()!
                    if blockSize <= 16 {
                        #expect(a == b, "isa \(isa) rows \(rows) d \(d): the same 16-key chunks must give the same bits (max |Δ| \(err))")
                    } else {
                        #expect(err < 1e-5, "isa \(isa) rows \(rows) d \(d): max |Δ| \(err)")
                    }
                }
            }
        }
    }

    @Test("float16 K/V keeps the fast path near float32 (F32 weights) and within the quantized path's stated tolerance of the reference")
    func forwardClose() throws {
        let prompt = [5, 17, 33, 2, 60, 61, 62, 9, 10, 11, 44]
        var b = ForwardBatch()
        b.append(tokens: prompt, startPosition: 0, blockTable: [2, 0], logits: .all)
        for (spec, bound) in [
            (TinyModelSpec(hidden: 64, heads: 4, kvHeads: 2, ffn: 160, layers: 2, vocab: 96, projectionType: .f32, embeddingType: .f32, seed: 7), Float(5e-3)),
            (TinyModelSpec(hidden: 64, heads: 4, kvHeads: 2, ffn: 160, layers: 2, vocab: 96, projectionType: .q8_0, embeddingType: .q8_0, seed: 7), Float(0.06)),
        ] {
            let model = try spec.build()
            var logits32 = Logits(), logits16 = Logits()
            let fp = CPUForwardPass(model: model, threads: 2)
            var c32 = try KVCache(configuration: model.configuration, blockCount: 4, blockSize: 8)
            var c16 = try KVCache(configuration: model.configuration, blockCount: 4, blockSize: 8, precision: .float16)
            try fp.run(b, cache: &c32, logits: &logits32)
            try fp.run(b, cache: &c16, logits: &logits16)
            // F32 weights: against the float32-K/V fast path (only K/V rounding differs). Quantized: against the reference path.
            var cr = try KVCache(configuration: model.configuration, blockCount: 4, blockSize: 8)
            let reference = try BackendForwardPass(model: model, backend: ReferenceBackend()).run(b, cache: &cr)
            for r in 0..<prompt.count {
                let e = spec.projectionType == .f32 ? LogitCheck.relativeError(logits16.row(r), logits32.row(r))
                                                    : LogitCheck.relativeError(logits16.row(r), reference[r])
                #expect(e <= bound, "\(spec) row \(r): relative error \(e)")
            }
            #expect(c16.bytes * 2 == c32.bytes)
            #expect(throws: ModelRuntimeError.self) { _ = try BackendForwardPass(model: model, backend: ReferenceBackend()).run(b, cache: &c16) }
        }
    }
}
