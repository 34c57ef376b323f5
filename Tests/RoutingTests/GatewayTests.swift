import Testing
@testable import Routing

/// Builds a gateway over in-memory upstreams on a manual clock.
struct Harness {
    let clock = ManualClock()
    var upstreams: [String: InMemoryUpstream] = [:]

    mutating func add(_ id: String, _ script: @escaping @Sendable (Int, ChatCompletionRequest) -> InMemoryUpstream.Action) {
        upstreams[id] = InMemoryUpstream(id: id, clock: clock, script: script)
    }

    func gateway(_ configuration: GatewayConfiguration, embedder: (any Embedder)? = nil,
                 classifier: (any QueryClassifier)? = nil,
                 observer: (@Sendable (GatewayEvent) -> Void)? = nil) throws -> Gateway {
        try Gateway(configuration: configuration, upstreams: upstreams.mapValues { $0 as any Upstream }, clock: clock,
                    embedder: embedder, classifier: classifier, observer: observer)
    }
}

func ask(_ text: String, model: String = "gpt", temperature: Double? = 0, maxTokens: Int? = nil) -> ChatCompletionRequest {
    ChatCompletionRequest(model: model, messages: [.user(text)], temperature: temperature, maxTokens: maxTokens)
}

/// Runs `body` and returns the RoutingError it throws (records an issue if it does not throw).
func routingError(_ body: () async throws -> Void) async -> RoutingError? {
    do {
        try await body()
        Issue.record("expected a RoutingError")
        return nil
    } catch let error as RoutingError {
        return error
    } catch {
        Issue.record("expected a RoutingError, got \(error)")
        return nil
    }
}

@Suite struct GatewayTests {
    static let noJitter = RetryPolicy(maxAttempts: 4, timeBudget: .seconds(30), attemptTimeout: .seconds(10),
                                      initialBackoff: .milliseconds(100), jitter: 0)

    @Test func failsOverToAHealthyBackendAtOnce() async throws {
        var h = Harness()
        h.add("a") { _, _ in .fail(.status(503)) }
        h.add("b") { _, _ in .reply(text: "from b") }
        let gateway = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "gpt", backends: [Backend(id: "a"), Backend(id: "b")])], retry: Self.noJitter))
        let result = try await gateway.complete(ask("hello"))
        #expect(result.response.text == "from b")
        #expect(result.backendID == "b")
        #expect(result.attempts == 2)
        #expect(h.clock.totalSlept == .zero)  // switched without waiting
    }

    @Test func priorityOverflowOn429AndBreakerHonoursRetryAfter() async throws {
        var h = Harness()
        h.add("ptu") { _, _ in .fail(.status(429, retryAfter: .seconds(20))) }
        h.add("payg") { _, _ in .reply(text: "payg") }
        let gateway = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "gpt", backends: [Backend(id: "ptu", priority: 0), Backend(id: "payg", priority: 1)])],
            retry: Self.noJitter))
        let first = try await gateway.complete(ask("one"))
        #expect(first.backendID == "payg")
        #expect(first.attempts == 2)
        // The PTU's breaker is open for its Retry-After: traffic goes straight to PAYG.
        h.clock.advance(by: .seconds(19))
        let second = try await gateway.complete(ask("two"))
        #expect(second.attempts == 1 && second.backendID == "payg")
        #expect(h.upstreams["ptu"]!.callCount == 1)
        h.clock.advance(by: .seconds(1))
        _ = try await gateway.complete(ask("three"))
        #expect(h.upstreams["ptu"]!.callCount == 2)  // half-open probe after 20 s
    }

    @Test func waitsForRetryAfterWhenNoOtherBackendExists() async throws {
        var h = Harness()
        h.add("only") { call, _ in call == 0 ? .fail(.status(429, retryAfter: .seconds(2))) : .reply(text: "ok") }
        let gateway = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "gpt", backends: [Backend(id: "only")])], retry: Self.noJitter))
        let result = try await gateway.complete(ask("x"))
        #expect(result.attempts == 2)
        #expect(h.clock.totalSlept == .seconds(2))  // max(backoff 100 ms, Retry-After 2 s)
        #expect(h.upstreams["only"]!.calls[1].at == RoutingInstant(.seconds(2)))
    }

    @Test func fallbackChainSkipsModelsWhoseWindowIsTooSmall() async throws {
        var h = Harness()
        h.add("large-east") { _, _ in .fail(.status(500)) }
        h.add("large-west") { _, _ in .reply(text: "west") }
        h.add("small") { _, _ in .reply(text: "small") }
        h.add("local") { _, _ in .reply(text: "local") }
        let gateway = try h.gateway(GatewayConfiguration(models: [
            ModelRoute(name: "large", backends: [Backend(id: "large-east")], contextWindow: 8000, fallbacks: ["large-west"]),
            ModelRoute(name: "large-west", backends: [Backend(id: "large-west")], contextWindow: 8000, fallbacks: ["small"]),
            ModelRoute(name: "small", backends: [Backend(id: "small")], contextWindow: 4000, fallbacks: ["local"]),
            ModelRoute(name: "local", backends: [Backend(id: "local")], contextWindow: 32000),
        ], retry: Self.noJitter))
        let normal = try await gateway.complete(ask("hi", model: "large"))
        #expect(normal.model == "large-west" && normal.response.text == "west")

        // ~9,000 prompt tokens fit neither 8k model nor the 4k one: straight to the 32k self-hosted model.
        let long = String(repeating: "abcd ", count: 7200)  // 36,000 bytes ≈ 9,000 tokens
        let big = try await gateway.complete(ask(long, model: "large"))
        #expect(big.model == "local")
        #expect(big.attempts == 1)

        let error = await routingError { _ = try await gateway.complete(ask(long + long + long + long, model: "large")) }
        #expect(error?.code == .contextLengthExceeded)
        #expect(error?.httpStatus == 400)
        #expect(error?.requestID != nil)
    }

    @Test func nonRetryableUpstreamErrorPassesThrough() async throws {
        var h = Harness()
        h.add("a") { _, _ in
            .fail(UpstreamError(kind: .status(400), body: OpenAIErrorBody(error: .init(message: "bad tool schema", type: "invalid_request_error"))))
        }
        h.add("b") { _, _ in .reply(text: "never") }
        let gateway = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "gpt", backends: [Backend(id: "a"), Backend(id: "b")])], retry: Self.noJitter))
        let error = await routingError { _ = try await gateway.complete(ask("x")) }
        #expect(error?.code == .upstreamRejected)
        #expect(error?.httpStatus == 400)
        #expect(error?.message.contains("bad tool schema") == true)
        #expect(h.upstreams["b"]!.callCount == 0)
    }

    @Test func timeBudgetBoundsHangingUpstreams() async throws {
        var h = Harness()
        h.add("a") { _, _ in .hang }
        h.add("b") { _, _ in .hang }
        let policy = RetryPolicy(maxAttempts: 10, timeBudget: .seconds(5), attemptTimeout: .seconds(2), jitter: 0)
        let gateway = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "gpt", backends: [Backend(id: "a"), Backend(id: "b")])], retry: policy))
        let error = await routingError { _ = try await gateway.complete(ask("x")) }
        #expect(error?.code == .upstreamTimeout)
        #expect(error?.httpStatus == 504)
        #expect(h.clock.now <= RoutingInstant(.seconds(5)))
        // Attempts: 2 s (a), 2 s (b), then a 100 ms backoff and a last attempt cut to the 0.9 s left.
        let calls = h.upstreams["a"]!.callCount + h.upstreams["b"]!.callCount
        #expect(calls == 3)
    }

    @Test func authenticationAndPermissions() async throws {
        var h = Harness()
        h.add("a") { _, _ in .reply(text: "ok") }
        let gateway = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "gpt", backends: [Backend(id: "a")]), ModelRoute(name: "other", backends: [])].filter { !$0.backends.isEmpty },
            apiKeys: [APIKey(id: "team-a", secret: "sk-aaa", allowedModels: ["gpt"]), APIKey(id: "team-b", secret: "sk-bbb")]))
        #expect(try gateway.authenticate(authorization: "Bearer sk-aaa")?.id == "team-a")
        #expect(try gateway.authenticate(authorization: nil, apiKeyHeader: "sk-bbb")?.id == "team-b")
        #expect(throws: RoutingError.self) { try gateway.authenticate(authorization: nil) }
        do {
            _ = try gateway.authenticate(authorization: "Bearer sk-wrong")
        } catch {
            #expect(error.code == .invalidAPIKey && error.httpStatus == 401)
            #expect(!error.message.contains("sk-wrong"))  // never echo key material
        }
        let missing = await routingError { _ = try await gateway.complete(ask("x")) }
        #expect(missing?.code == .missingAPIKey && missing?.httpStatus == 401)
        let key = try gateway.authenticate(authorization: "Bearer sk-aaa")
        let unknown = await routingError { _ = try await gateway.complete(ask("x", model: "nope"), key: key) }
        #expect(unknown?.httpStatus == 403)  // not in the key's allowed list
        let keyB = try gateway.authenticate(authorization: "Bearer sk-bbb")
        let notFound = await routingError { _ = try await gateway.complete(ask("x", model: "nope"), key: keyB) }
        #expect(notFound?.code == .modelNotFound && notFound?.httpStatus == 404)
        #expect(gateway.modelList(for: key).data.map(\.id) == ["gpt"])
    }

    @Test func invalidRequestsAreTypedErrors() async throws {
        var h = Harness()
        h.add("a") { _, _ in .reply(text: "ok") }
        let gateway = try h.gateway(GatewayConfiguration(models: [ModelRoute(name: "gpt", backends: [Backend(id: "a")])]))
        for bad in [
            ChatCompletionRequest(model: "gpt", messages: []),
            ChatCompletionRequest(model: "gpt", messages: [.user("x")], temperature: 3),
            ChatCompletionRequest(model: "gpt", messages: [.user("x")], temperature: .nan),
            ChatCompletionRequest(model: "gpt", messages: [.user("x")], n: 0),
            ChatCompletionRequest(model: "gpt", messages: [.user("x")], maxTokens: -1),
            ChatCompletionRequest(model: "", messages: [.user("x")]),
        ] {
            let error = await routingError { _ = try await gateway.complete(bad) }
            #expect(error?.code == .invalidRequest && error?.httpStatus == 400)
        }
        #expect(h.upstreams["a"]!.callCount == 0)
    }

    @Test func rateLimitReconcilesWithReportedUsage() async throws {
        var h = Harness()
        // Reports 400 tokens per answer, whatever the estimate.
        h.add("a") { _, _ in .reply(text: "ok", usage: Usage(promptTokens: 300, completionTokens: 100)) }
        let gateway = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "gpt", backends: [Backend(id: "a")])],
            apiKeys: [APIKey(id: "k", secret: "s", limit: RateLimit(tokensPerMinute: 1000))]))
        let key = try gateway.authenticate(authorization: "Bearer s")
        for _ in 0..<3 { _ = try await gateway.complete(ask("short"), key: key) }  // used 1,200 ≥ 1,000
        let limited = await routingError { _ = try await gateway.complete(ask("short"), key: key) }
        #expect(limited?.code == .rateLimited && limited?.httpStatus == 429)
        // 200 tokens over, + 1 µ-token, at 1000/60 s per token: 12 s + 1 µs, so the header says 13 s.
        #expect(limited?.retryAfter == .seconds(12) + .microseconds(1))
        #expect(limited?.retryAfterHeaderSeconds == 13)
        let usage = gateway.usage().sum(apiKeyID: "k")
        #expect(usage.promptTokens == 900 && usage.completionTokens == 300)
        #expect(usage.requests == 3 && usage.failures == 0)  // the refusal never reached a backend
    }

    @Test func exactAndSemanticCacheHits() async throws {
        var h = Harness()
        h.add("a") { call, _ in .reply(text: "answer \(call)") }
        let gateway = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "gpt", backends: [Backend(id: "a")])],
            responseCache: .init(), semanticCache: .init(threshold: 0.8)), embedder: HashedNGramEmbedder())
        let first = try await gateway.complete(ask("How do I reset my password?"))
        #expect(first.cache == .miss)
        let exact = try await gateway.complete(ask("How do I reset my password?"))
        #expect(exact.cache == .exact && exact.response.text == "answer 0")
        let semantic = try await gateway.complete(ask("How can I reset my password?"))
        guard case .semantic(let similarity) = semantic.cache else { Issue.record("no semantic hit"); return }
        #expect(similarity >= 0.8)
        let sampled = try await gateway.complete(ask("How do I reset my password?", temperature: 1.2))
        #expect(sampled.response.text == "answer 1")  // exact cache has no temperature limit by default…
        _ = sampled
        #expect(h.upstreams["a"]!.callCount == 2)
        // The two cache answers are accounted under the "cache" backend with no tokens.
        let cached = gateway.usage().sum(backend: "cache")
        #expect(cached.requests == 2 && cached.promptTokens == 0 && cached.completionTokens == 0 && cached.failures == 0)
    }

    @Test func usageAndCostPerBackend() async throws {
        var h = Harness()
        h.add("a") { _, _ in .reply(text: "ok", usage: Usage(promptTokens: 1000, completionTokens: 500)) }
        let gateway = try h.gateway(GatewayConfiguration(models: [ModelRoute(
            name: "gpt", backends: [Backend(id: "a", pricing: TokenPricing(inputPerMillion: 2, outputPerMillion: 8))])]))
        _ = try await gateway.complete(ask("x"))
        _ = try await gateway.complete(ask("y"))
        let totals = gateway.usage().sum(model: "gpt", backend: "a")
        #expect(totals.requests == 2)
        // 2 × (1000 × 2 + 500 × 8) / 1e6 = 2 × 0.006 = 0.012
        #expect(abs(totals.cost - 0.012) < 1e-12)
    }

    @Test func modelRoutingSendsSimpleQueriesToTheCheapModel() async throws {
        var h = Harness()
        h.add("big") { _, _ in .reply(text: "big") }
        h.add("tiny") { _, _ in .reply(text: "tiny") }
        let router = try ModelTierRouter(models: [
            ModelTier(model: "big", tier: 2, pricing: TokenPricing(inputPerMillion: 5, outputPerMillion: 15)),
            ModelTier(model: "tiny", tier: 1, pricing: TokenPricing(inputPerMillion: 0.1, outputPerMillion: 0.4)),
        ], requiredTier: [.simple: 1], defaultTier: 2)
        let gateway = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "big", backends: [Backend(id: "big")]), ModelRoute(name: "tiny", backends: [Backend(id: "tiny")])],
            modelRouting: ModelRoutingConfiguration(modelName: "auto", router: router)), classifier: RuleBasedClassifier())
        let simple = try await gateway.complete(ask("hi", model: "auto"))
        #expect(simple.model == "tiny" && simple.classification?.label == .simple)
        let hard = try await gateway.complete(ask("Analyze the trade-offs of PTU and PAYG", model: "auto"))
        #expect(hard.model == "big")
        #expect(gateway.modelList(for: nil).data.map(\.id).contains("auto"))
    }

    @Test func configurationErrors() {
        let clock = ManualClock()
        let up: [String: any Upstream] = ["a": InMemoryUpstream(id: "a", clock: clock, replying: "x")]
        #expect(throws: RoutingError.self) { try Gateway(configuration: GatewayConfiguration(models: []), upstreams: up, clock: clock) }
        #expect(throws: RoutingError.self) {
            try Gateway(configuration: GatewayConfiguration(models: [ModelRoute(name: "m", backends: [Backend(id: "missing")])]),
                        upstreams: up, clock: clock)
        }
        #expect(throws: RoutingError.self) {
            try Gateway(configuration: GatewayConfiguration(models: [ModelRoute(name: "m", backends: [Backend(id: "a")], fallbacks: ["x"])]),
                        upstreams: up, clock: clock)
        }
        #expect(throws: RoutingError.self) {
            try Gateway(configuration: GatewayConfiguration(models: [ModelRoute(name: "m", backends: [Backend(id: "a")])],
                                                            semanticCache: .init()), upstreams: up, clock: clock)
        }
    }
}

@Suite struct GatewayStreamingTests {
    @Test func streamsChunksAndStripsUnrequestedUsage() async throws {
        var h = Harness()
        h.add("a") { _, _ in .reply(text: "one two three") }
        let gateway = try h.gateway(GatewayConfiguration(models: [ModelRoute(name: "gpt", backends: [Backend(id: "a")])]))
        var request = ask("x")
        request.stream = true
        let stream = try await gateway.stream(request)
        var text = ""
        var sawUsage = false
        for try await chunk in stream.chunks {
            text += chunk.choices.compactMap(\.delta.content).joined()
            if chunk.usage != nil { sawUsage = true }
        }
        #expect(text == "one two three")
        #expect(!sawUsage)
        // The gateway asked upstream for usage anyway (for accounting).
        #expect(gateway.usage().sum().completionTokens > 0)

        request.streamOptions = StreamOptions(includeUsage: true)
        var usage: Usage?
        for try await chunk in try await gateway.stream(request).chunks where chunk.usage != nil { usage = chunk.usage }
        #expect(usage != nil)
    }

    @Test func failsOverBeforeTheFirstChunkAndReportsMidStreamDrops() async throws {
        var h = Harness()
        h.add("dead") { _, _ in .fail(UpstreamError(kind: .connectionFailed)) }
        h.add("flaky") { _, _ in .dropAfter(chunks: 2, text: "a b c d") }
        let gateway = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "gpt", backends: [Backend(id: "dead"), Backend(id: "flaky")])]))
        let stream = try await gateway.stream(ask("x"))
        #expect(stream.backendID == "flaky" && stream.attempts == 2)
        var received = ""
        do {
            for try await chunk in stream.chunks { received += chunk.choices.compactMap(\.delta.content).joined() }
            Issue.record("the drop was not reported")
        } catch let error as RoutingError {
            #expect(error.code == .upstreamFailed)
            #expect(error.requestID == stream.requestID)
        }
        #expect(received == "a b ")
        #expect(gateway.health().allSatisfy { $0.outstanding == 0 })  // the lease was released
    }
}

@Suite struct GatewayLimitTests {
    @Test func quotaExhaustedIs403AndOversizedRequestIs429WithoutRetryAfter() async throws {
        var h = Harness()
        h.add("a") { _, _ in .reply(text: "ok") }
        let gateway = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "gpt", backends: [Backend(id: "a")])],
            apiKeys: [APIKey(id: "k", secret: "s", limit: RateLimit(
                tokensPerMinute: 50, quota: Quota(period: .seconds(3600), maxRequests: 2)))]))
        let key = try gateway.authenticate(authorization: "Bearer s")
        let huge = await routingError { _ = try await gateway.complete(ask(String(repeating: "x", count: 400)), key: key) }
        #expect(huge?.code == .rateLimited && huge?.httpStatus == 429 && huge?.retryAfter == nil)
        _ = try await gateway.complete(ask("a"), key: key)
        _ = try await gateway.complete(ask("b"), key: key)
        let quota = await routingError { _ = try await gateway.complete(ask("c"), key: key) }
        #expect(quota?.code == .quotaExhausted && quota?.httpStatus == 403)
        #expect(quota?.body.error.type == "insufficient_quota")
    }

    @Test func modelLimitAppliesAcrossKeysWithoutAuthentication() async throws {
        var h = Harness()
        h.add("a") { _, _ in .reply(text: "ok") }
        let gateway = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "gpt", backends: [Backend(id: "a")])],
            modelLimits: ["gpt": RateLimit(requestsPerMinute: 2)]))
        _ = try await gateway.complete(ask("a"))
        _ = try await gateway.complete(ask("b"))
        let limited = await routingError { _ = try await gateway.complete(ask("c")) }
        #expect(limited?.code == .rateLimited && limited?.retryAfter == .seconds(30))  // 2/min → one per 30 s
        h.clock.advance(by: .seconds(30))
        _ = try await gateway.complete(ask("d"))
    }

    @Test func nonStreamingCallsNeverAskUpstreamToStream() async throws {
        var h = Harness()
        h.add("a") { _, request in
            request.stream == nil && request.streamOptions == nil ? .reply(text: "plain") : .fail(.status(400))
        }
        let gateway = try h.gateway(GatewayConfiguration(models: [ModelRoute(name: "gpt", backends: [Backend(id: "a", upstreamModel: "deploy-1")])]))
        var request = ask("x")
        request.stream = true
        request.streamOptions = StreamOptions(includeUsage: true)
        let result = try await gateway.complete(request)
        #expect(result.response.text == "plain")
        #expect(h.upstreams["a"]!.calls.first?.model == "deploy-1")  // the deployment name goes upstream
    }

    @Test func cachedAnswersReplayToStreamingClients() async throws {
        var h = Harness()
        h.add("a") { _, _ in .reply(text: "cached words") }
        let gateway = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "gpt", backends: [Backend(id: "a")])], responseCache: .init()))
        _ = try await gateway.complete(ask("q"))
        var request = ask("q")
        request.stream = true
        let stream = try await gateway.stream(request)
        #expect(stream.cache == .exact && stream.backendID == nil)
        var text = ""
        for try await chunk in stream.chunks { text += chunk.choices.compactMap(\.delta.content).joined() }
        #expect(text == "cached words")
        #expect(h.upstreams["a"]!.callCount == 1)
        // The streamed replay is accounted like a JSON cache hit: one request on the "cache" backend.
        let cached = gateway.usage().sum(backend: "cache")
        #expect(cached.requests == 1 && cached.completionTokens == 0)
        #expect(gateway.usage().sum().requests == 2)
    }
}

/// Streamed answers go into the caches once they end normally, and only then.
@Suite struct StreamedAnswerCacheTests {
    static func streamText(_ gateway: Gateway, _ text: String) async throws -> (String, GatewayStream) {
        var request = ask(text)
        request.stream = true
        let stream = try await gateway.stream(request)
        var out = ""
        for try await chunk in stream.chunks { out += chunk.choices.compactMap(\.delta.content).joined() }
        return (out, stream)
    }

    @Test func aCompletedStreamAnswersLaterJSONAndStreamedRequests() async throws {
        var h = Harness()
        h.add("a") { call, _ in .reply(text: "streamed answer \(call)") }
        let gateway = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "gpt", backends: [Backend(id: "a")])], responseCache: .init()))
        let (first, opened) = try await Self.streamText(gateway, "q")
        #expect(first == "streamed answer 0" && opened.cache == .miss)
        let json = try await gateway.complete(ask("q"))
        #expect(json.cache == .exact && json.response.text == "streamed answer 0")
        let (again, replay) = try await Self.streamText(gateway, "q")
        #expect(replay.cache == .exact && again == "streamed answer 0")
        #expect(h.upstreams["a"]!.callCount == 1)
    }

    @Test func aBrokenStreamIsNotCached() async throws {
        var h = Harness()
        h.add("a") { call, _ in call == 0 ? .dropAfter(chunks: 2, text: "half of an answer") : .reply(text: "whole answer") }
        let gateway = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "gpt", backends: [Backend(id: "a")])], responseCache: .init()))
        await #expect(throws: RoutingError.self) { _ = try await Self.streamText(gateway, "q") }
        let json = try await gateway.complete(ask("q"))
        #expect(json.cache == .miss && json.response.text == "whole answer")
        #expect(h.upstreams["a"]!.callCount == 2)
    }

    /// Assembly rules, chunk by chunk: choices in index order, tool calls and unfinished or
    /// length-cut choices make the stream uncacheable.
    @Test func assemblyRules() {
        func chunk(_ choices: [(Int, String?, String?)], toolCall: Bool = false) -> ChatCompletionChunk {
            ChatCompletionChunk(id: "c", created: 7, model: "m", choices: choices.map { index, text, finish in
                .init(index: index, delta: ChatDelta(content: text, toolCalls: toolCall ? [.string("call")] : nil), finishReason: finish)
            })
        }
        let usage = Usage(promptTokens: 3, completionTokens: 4)
        var two = StreamAssembly(first: chunk([(1, "b", nil)]), cacheable: true)
        for c in [chunk([(1, "b", nil)]), chunk([(0, "a", nil)]), chunk([(0, "a", "stop"), (1, "b", "stop")])] { two.add(c) }
        let response = two.response(id: "x", usage: usage)
        #expect(response?.choices.map(\.index) == [0, 1])
        #expect(response?.choices.map(\.message.text) == ["aa", "bb"])
        #expect(response?.created == 7 && response?.usage == usage)

        var tools = StreamAssembly(first: chunk([(0, "a", nil)]), cacheable: true)
        tools.add(chunk([(0, nil, nil)], toolCall: true))
        tools.add(chunk([(0, nil, "stop")]))
        #expect(tools.response(id: "x", usage: usage) == nil)

        var cut = StreamAssembly(first: chunk([(0, "a", nil)]), cacheable: true)
        cut.add(chunk([(0, "a", "length")]))
        #expect(cut.response(id: "x", usage: usage) == nil)

        var unfinished = StreamAssembly(first: chunk([(0, "a", nil)]), cacheable: true)
        unfinished.add(chunk([(0, "a", nil)]))
        #expect(unfinished.response(id: "x", usage: usage) == nil)

        var off = StreamAssembly(first: chunk([(0, "a", nil)]), cacheable: false)
        off.add(chunk([(0, "a", "stop")]))
        #expect(off.response(id: "x", usage: usage) == nil)
    }
}

@Suite struct ContextLengthFallbackTests {
    @Test func upstreamContextErrorMovesToALargerWindow() async throws {
        var h = Harness()
        h.add("short") { _, _ in
            .fail(UpstreamError(kind: .status(400), body: OpenAIErrorBody(error: .init(
                message: "This model's maximum context length is 4096 tokens", type: "invalid_request_error",
                code: "context_length_exceeded"))))
        }
        h.add("short-2") { _, _ in .reply(text: "never: same model as the one that said it is too small") }
        h.add("long") { _, _ in .reply(text: "long window") }
        let gateway = try h.gateway(GatewayConfiguration(models: [
            ModelRoute(name: "small", backends: [Backend(id: "short"), Backend(id: "short-2")], fallbacks: ["big"]),
            ModelRoute(name: "big", backends: [Backend(id: "long")]),
        ]))
        let result = try await gateway.complete(ask("x", model: "small"))
        #expect(result.model == "big" && result.response.text == "long window")
        #expect(h.upstreams["short-2"]!.callCount == 0)

        // Without a fallback the upstream's 400 reaches the client.
        var h2 = Harness()
        h2.add("short") { _, _ in .fail(UpstreamError(kind: .status(400), message: "maximum context length is 4096 tokens")) }
        let alone = try h2.gateway(GatewayConfiguration(models: [ModelRoute(name: "small", backends: [Backend(id: "short")])]))
        let error = await routingError { _ = try await alone.complete(ask("x", model: "small")) }
        #expect(error?.code == .upstreamRejected && error?.httpStatus == 400)
    }

    @Test func unusableClientRequestIDsAreReplaced() async throws {
        var h = Harness()
        h.add("a") { _, _ in .reply(text: "ok") }
        let gateway = try h.gateway(GatewayConfiguration(models: [ModelRoute(name: "gpt", backends: [Backend(id: "a")])]))
        #expect(try await gateway.complete(ask("x"), requestID: "abc-123").requestID == "abc-123")
        let replaced = try await gateway.complete(ask("x"), requestID: "bad id\nwith newline")
        #expect(replaced.requestID.hasPrefix("req_"))
        let long = try await gateway.complete(ask("x"), requestID: String(repeating: "a", count: 500))
        #expect(long.requestID.hasPrefix("req_"))
    }
}

@Suite struct BackendTimeoutTests {
    @Test func perBackendAttemptTimeoutOverridesThePolicy() async throws {
        var h = Harness()
        h.add("slow-local") { _, _ in .reply(text: "slow but fine", latency: .seconds(20)) }
        let policy = RetryPolicy(maxAttempts: 1, timeBudget: .seconds(60), attemptTimeout: .seconds(10))
        let strict = try h.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "m", backends: [Backend(id: "slow-local")])], retry: policy))
        let error = await routingError { _ = try await strict.complete(ask("x", model: "m")) }
        #expect(error?.code == .upstreamTimeout)

        var h2 = Harness()
        h2.add("slow-local") { _, _ in .reply(text: "slow but fine", latency: .seconds(20)) }
        let patient = try h2.gateway(GatewayConfiguration(
            models: [ModelRoute(name: "m", backends: [Backend(id: "slow-local", attemptTimeout: .seconds(30))])], retry: policy))
        #expect(try await patient.complete(ask("x", model: "m")).response.text == "slow but fine")
    }
}
