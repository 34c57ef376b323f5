import Foundation
import Testing
@testable import Routing

private let t0 = RoutingInstant.origin

private func response(_ text: String, finish: String = "stop") -> ChatCompletionResponse {
    ChatCompletionResponse(id: "x", created: 0, model: "m", choices: [.init(index: 0, message: .assistant(text), finishReason: finish)],
                           usage: Usage(promptTokens: 1, completionTokens: 1))
}

@Suite struct ResponseCacheTests {
    @Test func keyIgnoresMemberOrderStreamAndUserButNotSampling() throws {
        let cache = try ResponseCache()
        let a = try JSONDecoder().decode(ChatCompletionRequest.self, from: Data(
            #"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0,"stream":true,"user":"u1","top_k":3}"#.utf8))
        let b = try JSONDecoder().decode(ChatCompletionRequest.self, from: Data(
            #"{"top_k":3,"user":"u2","temperature":0,"messages":[{"content":[{"type":"text","text":"hi"}],"role":"user"}],"model":"m"}"#.utf8))
        #expect(cache.key(for: a, apiKeyID: "k") == cache.key(for: b, apiKeyID: "k"))
        var c = a
        c.temperature = 0.5
        #expect(cache.key(for: a, apiKeyID: "k") != cache.key(for: c, apiKeyID: "k"))
        var d = a
        d.extra["top_k"] = .integer(4)
        #expect(cache.key(for: a, apiKeyID: "k") != cache.key(for: d, apiKeyID: "k"))
        #expect(cache.key(for: a, apiKeyID: "k") != cache.key(for: a, apiKeyID: "other"))  // partitioned by key
        // Quotes inside content cannot forge another message list.
        let e = ChatCompletionRequest(model: "m", messages: [.user(#"a"},{"role":"user","content":"b"#)])
        let f = ChatCompletionRequest(model: "m", messages: [.user("a"), .user("b")])
        #expect(cache.key(for: e, apiKeyID: nil) != cache.key(for: f, apiKeyID: nil))
    }

    @Test func lruAndTTL() throws {
        var cache = try ResponseCache(configuration: .init(capacity: 2, ttl: .seconds(10)))
        cache.store(response("1"), for: "k1", now: t0)
        cache.store(response("2"), for: "k2", now: t0)
        #expect(cache.lookup("k1", now: t0)?.text == "1")  // k1 is now most recent
        cache.store(response("3"), for: "k3", now: t0)  // evicts k2
        #expect(cache.lookup("k2", now: t0) == nil)
        #expect(cache.lookup("k1", now: t0)?.text == "1")
        #expect(cache.lookup("k3", now: RoutingInstant(.seconds(10))) == nil)  // expired at exactly ttl
        cache.store(response("cut", finish: "length"), for: "k4", now: t0)
        #expect(cache.lookup("k4", now: t0) == nil)  // truncated answers are not cached
    }

    @Test func temperatureLimit() throws {
        let cache = try ResponseCache(configuration: .init(maxTemperature: 0.2))
        #expect(cache.key(for: ChatCompletionRequest(model: "m", messages: [.user("x")], temperature: 0.7), apiKeyID: nil) == nil)
        #expect(cache.key(for: ChatCompletionRequest(model: "m", messages: [.user("x")], temperature: 0), apiKeyID: nil) != nil)
    }
}

@Suite struct SemanticCacheTests {
    let embedder = HashedNGramEmbedder()

    @Test func embeddingsAreUnitLengthAndDeterministic() {
        let v = embedder.vector("How do I reset my password?")
        let norm = v.reduce(0) { $0 + Double($1) * Double($1) }
        #expect(abs(norm - 1) < 1e-5)
        #expect(v == embedder.vector("How do I reset my password?"))
        #expect(abs(cosineSimilarity(v, v) - 1) < 1e-6)
        #expect(embedder.vector("").allSatisfy { $0 == 0 })
        #expect(embedder.vector("!!!").allSatisfy { $0 == 0 })
    }

    @Test func hitsAboveThresholdWithinPartitionOnly() throws {
        var cache = try SemanticCache(configuration: .init(threshold: 0.8))
        let request = ChatCompletionRequest(model: "m", messages: [.system("s"), .user("How do I reset my password?")], temperature: 0)
        let (partition, text) = try #require(cache.plan(for: request, apiKeyID: "k"))
        cache.store(response("Use the reset link."), partition: partition, vector: embedder.vector(text), now: t0)

        let similar = ChatCompletionRequest(model: "m", messages: [.system("s"), .user("How can I reset my password?")], temperature: 0)
        let (p2, t2) = try #require(cache.plan(for: similar, apiKeyID: "k"))
        #expect(p2 == partition)
        let hit = cache.lookup(p2, vector: embedder.vector(t2), now: t0)
        #expect(hit?.response.text == "Use the reset link.")
        #expect((hit?.similarity ?? 0) >= 0.8)

        let unrelated = ChatCompletionRequest(model: "m", messages: [.system("s"), .user("What is the capital of France?")], temperature: 0)
        let (p3, t3) = try #require(cache.plan(for: unrelated, apiKeyID: "k"))
        #expect(cache.lookup(p3, vector: embedder.vector(t3), now: t0) == nil)

        // Another system prompt, model or key: another partition, no hit.
        for other in [
            cache.plan(for: ChatCompletionRequest(model: "m", messages: [.system("t"), .user("How can I reset my password?")], temperature: 0), apiKeyID: "k"),
            cache.plan(for: ChatCompletionRequest(model: "m2", messages: [.system("s"), .user("How can I reset my password?")], temperature: 0), apiKeyID: "k"),
            cache.plan(for: similar, apiKeyID: "k2"),
        ] {
            let (p, t) = try #require(other)
            #expect(cache.lookup(p, vector: embedder.vector(t), now: t0) == nil)
        }
        #expect(cache.lookup(p2, vector: embedder.vector(t2), now: RoutingInstant(.seconds(601))) == nil)  // ttl 600 s
    }

    @Test func skippedForHighTemperatureAndTools() throws {
        let cache = try SemanticCache(configuration: .init(maxTemperature: 0.5))
        #expect(cache.plan(for: ChatCompletionRequest(model: "m", messages: [.user("x")], temperature: 0.9), apiKeyID: nil) == nil)
        #expect(cache.plan(for: ChatCompletionRequest(model: "m", messages: [.user("x")]), apiKeyID: nil) == nil)  // default temperature 1
        #expect(cache.plan(for: ChatCompletionRequest(model: "m", messages: [.user("x")], temperature: 0,
                                                      tools: [.object([:])]), apiKeyID: nil) == nil)
        #expect(throws: RoutingError.self) { try SemanticCache(configuration: .init(threshold: 1.5)) }
    }

    /// The committed paraphrase set: verbatim rewordings must score above unrelated pairs on average,
    /// and the separation the "Semantic cache thresholds" article reports must hold.
    @Test func paraphraseSetSeparation() throws {
        let pairs = try Fixtures.paraphrasePairs()
        #expect(pairs.count >= 40)
        func mean(_ kind: String) -> Double {
            let selected = pairs.filter { $0.kind == kind }
            return selected.map { cosineSimilarity(embedder.vector($0.a), embedder.vector($0.b)) }.reduce(0, +) / Double(selected.count)
        }
        #expect(mean("reword") > mean("synonym"))
        #expect(mean("synonym") > mean("unrelated"))
        #expect(mean("near") > mean("unrelated"))
        // At the default threshold no unrelated pair is a hit, and no different-meaning pair at all.
        let threshold = SemanticCacheConfiguration().threshold
        for pair in pairs where !pair.same {
            #expect(cosineSimilarity(embedder.vector(pair.a), embedder.vector(pair.b)) < threshold, "\(pair.a) / \(pair.b)")
        }
        // Down-weighting function words must pay off against weighting every word alike: more
        // same-meaning pairs at or above 0.85 and no more different-meaning ones.
        let flat = HashedNGramEmbedder(features: HashedFeatures())
        func counts(_ e: HashedNGramEmbedder) -> (hits: Int, falseHits: Int) {
            let scored = pairs.map { ($0.same, cosineSimilarity(e.vector($0.a), e.vector($0.b)) >= 0.85) }
            return (scored.filter { $0.0 && $0.1 }.count, scored.filter { !$0.0 && $0.1 }.count)
        }
        #expect(counts(embedder).hits > counts(flat).hits)
        #expect(counts(embedder).falseHits <= counts(flat).falseHits)
    }
}

struct ParaphrasePair: Decodable {
    var a: String
    var b: String
    var same: Bool
    var kind: String
}

enum Fixtures {
    static func text(_ name: String) throws -> String {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"))
        return try String(contentsOf: url, encoding: .utf8)
    }

    static func paraphrasePairs() throws -> [ParaphrasePair] {
        try text("paraphrases.jsonl").split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }
            .map { try JSONDecoder().decode(ParaphrasePair.self, from: Data($0.utf8)) }
    }

    static func queries() throws -> [LabelledQuery] {
        try LabelledQuery.parseJSONL(text("queries.jsonl"))
    }
}

@Suite struct SemanticCacheBoundsTests {
    @Test func partitionsAreBounded() throws {
        var cache = try SemanticCache(configuration: .init(threshold: 0.9, capacityPerPartition: 2, maxPartitions: 3))
        let embedder = HashedNGramEmbedder()
        let answer = ChatCompletionResponse(id: "x", created: 0, model: "m",
                                            choices: [.init(index: 0, message: .assistant("a"), finishReason: "stop")], usage: nil)
        for i in 0..<10 {
            let request = ChatCompletionRequest(model: "m", messages: [.system("prompt \(i)"), .user("q")], temperature: 0)
            let (partition, text) = try #require(cache.plan(for: request, apiKeyID: nil))
            for j in 0..<5 {
                cache.store(answer, partition: partition, vector: embedder.vector(text + " \(j)"), now: RoutingInstant(.seconds(i)))
            }
        }
        #expect(cache.partitionCount == 3)
        #expect(cache.count == 6)  // 3 partitions × 2 entries
        // The three most recent system prompts survived.
        let latest = ChatCompletionRequest(model: "m", messages: [.system("prompt 9"), .user("q")], temperature: 0)
        let (p, t) = try #require(cache.plan(for: latest, apiKeyID: nil))
        #expect(cache.lookup(p, vector: embedder.vector(t + " 4"), now: RoutingInstant(.seconds(10))) != nil)
    }
}
