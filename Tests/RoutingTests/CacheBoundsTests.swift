import Testing
@testable import Routing

@Suite struct CacheBoundsTests {
    func response(_ text: String) -> ChatCompletionResponse {
        ChatCompletionResponse(id: "c", created: 0, model: "m",
                               choices: [.init(index: 0, message: .assistant(text), finishReason: "stop")], usage: nil)
    }

    /// LRUStore against a naive oracle (an array ordered most-recent first) over random operations.
    @Test(arguments: [1, 2, 3] as [UInt64])
    func lruMatchesANaiveModel(seed: UInt64) {
        var random = SplitMixGenerator(seed: seed)
        let capacity = Int(random.next() % 6) + 1
        var store = LRUStore<Int, Int>(capacity: capacity)
        var model: [(Int, Int)] = []
        for step in 0..<3000 {
            let key = Int(random.next() % 10)
            switch random.next() % 3 {
            case 0:
                let got = store.get(key)
                let index = model.firstIndex { $0.0 == key }
                #expect(got == index.map { model[$0].1 }, "get \(key) at step \(step)")
                if let index { model.insert(model.remove(at: index), at: 0) }
            case 1:
                let evicted = store.set(key, step)
                var expected: Int?
                if let index = model.firstIndex(where: { $0.0 == key }) {
                    model.remove(at: index)
                } else if model.count >= capacity {
                    expected = model.removeLast().0
                }
                model.insert((key, step), at: 0)
                #expect(evicted == expected, "set \(key) at step \(step)")
            default:
                store.remove(key)
                model.removeAll { $0.0 == key }
            }
            #expect(store.count == model.count && store.count <= capacity)
        }
    }

    @Test func responseCacheSkipsEntriesOverTheByteLimit() throws {
        var cache = try ResponseCache(configuration: .init(capacity: 10, maxEntryBytes: 2000))
        let small = ChatCompletionRequest(model: "m", messages: [.user("hi")], temperature: 0)
        let key = try #require(cache.key(for: small, apiKeyID: "k"))
        cache.store(response(String(repeating: "x", count: 3000)), for: key, now: .origin)
        #expect(cache.count == 0)  // the response alone is over the limit
        cache.store(response("short"), for: key, now: .origin)
        #expect(cache.count == 1)
        // A prompt over the limit has no key at all (no lookup, no store).
        let huge = ChatCompletionRequest(model: "m", messages: [.user(String(repeating: "y", count: 5000))], temperature: 0)
        #expect(cache.key(for: huge, apiKeyID: "k") == nil)
        #expect(throws: RoutingError.self) { try ResponseCache(configuration: .init(maxEntryBytes: 0)) }
    }

    @Test func semanticCacheBoundsEntriesAndRejectsDegenerateVectors() throws {
        var cache = try SemanticCache(configuration: .init(threshold: 0.9, maxEntryBytes: 2000))
        let partition = SemanticPartition(model: "m", apiKeyID: "", systemPrompt: "")
        let v: [Float] = [1, 2, 3]
        cache.store(response(String(repeating: "x", count: 3000)), partition: partition, vector: v, now: .origin)
        #expect(cache.count == 0)
        // Zero, NaN and overflowing vectors can neither be stored nor match.
        for bad: [Float] in [[0, 0, 0], [.nan, 1, 1], [1e30, 1e30, 1e30], [.infinity, 0, 0]] {
            cache.store(response("ok"), partition: partition, vector: bad, now: .origin)
        }
        #expect(cache.count == 0)
        cache.store(response("ok"), partition: partition, vector: v, now: .origin)
        #expect(cache.count == 1)
        let overflowing = cache.lookup(partition, vector: [1e30, 2e30, 3e30], now: .origin)
        #expect(overflowing == nil)
        let sameDirection = cache.lookup(partition, vector: [2, 4, 6], now: .origin)
        #expect(sameDirection?.response.text == "ok")
        // A system prompt over the limit makes no partition.
        let long = ChatCompletionRequest(model: "m", messages: [.system(String(repeating: "s", count: 3000)), .user("q")], temperature: 0)
        #expect(cache.plan(for: long, apiKeyID: nil) == nil)
    }
}
