import AsyncHTTPClient
import Routing
import Testing

@testable import GatewayServer

/// The mock upstream and the HTTP upstream client, against each other on loopback.
@Suite struct MockUpstreamTests {
    static func request(_ text: String = "Hello there, mock!", maxTokens: Int? = nil, stream: Bool = false) -> ChatCompletionRequest {
        var request = ChatCompletionRequest(model: "mock-model", messages: [.user(text)])
        request.maxTokens = maxTokens
        request.stream = stream
        return request
    }

    func withMock(
        _ configuration: MockUpstreamConfiguration = .init(),
        endpoint: ((Int) -> HTTPUpstreamEndpoint)? = nil,
        apiKey: String? = nil,
        _ body: (MockUpstream, HTTPUpstream) async throws -> Void
    ) async throws {
        let mock = try MockUpstream(configuration: configuration, logger: quietLogger)
        let port = try await mock.start()
        let client = HTTPUpstream.makeClient()
        let upstream = HTTPUpstream(
            client: client,
            endpoint: endpoint?(port) ?? .openAICompatible(baseURL: "http://127.0.0.1:\(port)/v1/"),
            apiKey: apiKey
        )
        do {
            try await body(mock, upstream)
        } catch {
            await mock.stop()
            try await client.shutdown()
            throw error
        }
        await mock.stop()
        try await client.shutdown()
    }

    @Test func nonStreamingAnswerCarriesUsage() async throws {
        try await withMock(.init(completionTokens: 7)) { mock, upstream in
            let text = "abcdefghij"  // 10 UTF-8 bytes → ⌈10/4⌉ = 3 prompt tokens
            let response = try await upstream.send(Self.request(text))
            #expect(response.usage?.promptTokens == 3)
            #expect(response.usage?.completionTokens == 7)
            #expect(response.choices.first?.finishReason == "stop")
            #expect(response.choices.first?.message.role == .assistant)
            #expect(!response.text.isEmpty)
            let capped = try await upstream.send(Self.request(text, maxTokens: 2))
            #expect(capped.usage?.completionTokens == 2)
            #expect(capped.choices.first?.finishReason == "length")
            #expect(mock.statistics.answered == 2)
            #expect(mock.statistics.completionTokens == 9)
        }
    }

    @Test func streamingYieldsOneChunkPerTokenThenUsage() async throws {
        try await withMock(.init(completionTokens: 5, promptTokens: 11)) { _, upstream in
            var contentChunks = 0
            var text = ""
            var usage: Usage?
            var finish: String?
            for try await chunk in upstream.stream(Self.request(stream: true)) {
                if let content = chunk.choices.first?.delta.content {
                    contentChunks += 1
                    text += content
                }
                if let reason = chunk.choices.first?.finishReason { finish = reason }
                if let u = chunk.usage { usage = u }
            }
            #expect(contentChunks == 5)
            #expect(finish == "stop")
            // The HTTP upstream always asks for the usage chunk.
            #expect(usage == Usage(promptTokens: 11, completionTokens: 5))
            #expect(text.split(separator: " ").count >= 4)
        }
    }

    @Test func scriptedFaultsAreClassified() async throws {
        let faults = MockFaultProfile(retryAfter: .milliseconds(1500), script: [.rateLimited, .serverError, .unavailable, .drop, .none])
        try await withMock(.init(faults: faults)) { mock, upstream in
            var kinds: [UpstreamError.Kind] = []
            var retryAfter: Duration?
            for _ in 0..<4 {
                do {
                    _ = try await upstream.send(Self.request())
                    Issue.record("expected a fault")
                } catch let error as UpstreamError {
                    kinds.append(error.kind)
                    if error.kind == .status(429) { retryAfter = error.retryAfter }
                }
            }
            #expect(kinds == [.status(429), .status(500), .status(503), .connectionFailed])
            // retry-after-ms (1500) wins over the rounded-up Retry-After (2 s).
            #expect(retryAfter == .milliseconds(1500))
            _ = try await upstream.send(Self.request())  // the script's "ok"
            #expect(mock.statistics.faults == [.rateLimited: 1, .serverError: 1, .unavailable: 1, .drop: 1])
        }
    }

    @Test func midStreamDropEndsTheStreamWithConnectionDropped() async throws {
        try await withMock(.init(completionTokens: 8, faults: .always(.midStreamDrop))) { _, upstream in
            var received = 0
            do {
                for try await chunk in upstream.stream(Self.request(stream: true)) where chunk.choices.first?.delta.content != nil {
                    received += 1
                }
                Issue.record("the stream should fail")
            } catch let error as UpstreamError {
                #expect(error.kind == .connectionDropped)
            }
            #expect(received == 4)  // half of 8, then the connection closes
        }
    }

    @Test func hangingUpstreamTimesOut() async throws {
        let faults = MockFaultProfile(hangDuration: .seconds(2), script: [.timeout])
        try await withMock(.init(faults: faults)) { _, upstream in
            let start = ContinuousClock.now
            do {
                _ = try await upstream.send(Self.request(), context: UpstreamCallContext(requestID: "r1", timeout: .milliseconds(150)))
                Issue.record("expected a timeout")
            } catch let error as UpstreamError {
                #expect(error.kind == .timeout)
            }
            #expect(ContinuousClock.now - start < .seconds(1.5))
        }
    }

    @Test func stoppedUpstreamRefusesConnections() async throws {
        try await withMock { mock, upstream in
            _ = try await upstream.send(Self.request())
            await mock.stop()
            do {
                _ = try await upstream.send(Self.request())
                Issue.record("expected a connection failure")
            } catch let error as UpstreamError {
                #expect(error.kind == .connectionFailed)
            }
        }
    }

    @Test func azureFlavourUsesDeploymentPathAndApiKeyHeader() async throws {
        try await withMock(
            .init(apiKey: "azure-secret"),
            endpoint: { .azureOpenAI(endpoint: "http://127.0.0.1:\($0)", deployment: "gpt-4o-eastus", apiVersion: "2024-10-21") },
            apiKey: "azure-secret"
        ) { _, upstream in
            #expect(upstream.endpoint.chatCompletionsURL.hasSuffix("/openai/deployments/gpt-4o-eastus/chat/completions?api-version=2024-10-21"))
            let response = try await upstream.send(Self.request())
            #expect(response.usage != nil)
        }
        // A wrong key is a 401 with an OpenAI error body.
        try await withMock(.init(apiKey: "right"), apiKey: "wrong") { _, upstream in
            do {
                _ = try await upstream.send(Self.request())
                Issue.record("expected 401")
            } catch let error as UpstreamError {
                #expect(error.kind == .status(401))
                #expect(error.body?.error.code == "invalid_api_key")
            }
        }
    }

    @Test func invalidConfigurationsAreRejected() {
        #expect(throws: GatewayError.self) { try MockUpstream(configuration: .init(completionTokens: 0)) }
        #expect(throws: GatewayError.self) { try MockUpstream(configuration: .init(faults: .init(rateLimited: 0.7, serverError: 0.6))) }
        #expect(throws: GatewayError.self) { try MockUpstream(configuration: .init(faults: .init(script: []))) }
        #expect(throws: GatewayError.self) { try MockUpstream(configuration: .init(port: 70000)) }
    }

    @Test func randomFaultRatesMatchTheProfile() {
        // 30% faults split 10/10/10: over 20,000 draws each rate is within 5 standard errors.
        let profile = MockFaultProfile(rateLimited: 0.1, serverError: 0.1, drop: 0.1)
        var generator = SeededGenerator(seed: 99)
        var counts: [MockFault: Int] = [:]
        let n = 20_000
        for i in 0..<n { counts[profile.pick(index: i, generator: &generator), default: 0] += 1 }
        let sigma = (0.1 * 0.9 / Double(n)).squareRoot()
        for fault in [MockFault.rateLimited, .serverError, .drop] {
            #expect(abs(Double(counts[fault, default: 0]) / Double(n) - 0.1) < 5 * sigma)
        }
        #expect(counts[.unavailable] == nil && counts[.timeout] == nil)
    }
}
