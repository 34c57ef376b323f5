import AsyncHTTPClient
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Routing
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One scripted behaviour of the mock upstream for one request.
public enum MockFault: String, Sendable, Codable, CaseIterable {
    /// Answer normally.
    case none = "ok"
    /// `429 Too Many Requests` with `Retry-After` and `retry-after-ms`.
    case rateLimited = "429"
    /// `500 Internal Server Error`.
    case serverError = "500"
    /// `503 Service Unavailable`.
    case unavailable = "503"
    /// Accept the request and answer nothing for ``MockFaultProfile/hangDuration`` (a timeout for the caller).
    case timeout = "timeout"
    /// Close the connection without answering.
    case drop = "drop"
    /// Streaming requests: send half of the chunks, then close the connection.
    /// Non-streaming requests: close the connection without answering.
    case midStreamDrop = "cut"
}

/// How often the mock upstream misbehaves, and how.
///
/// Either probabilities (each request draws one fault with a seeded generator,
/// so a run is reproducible) or a deterministic ``script`` cycled request by request.
public struct MockFaultProfile: Sendable, Codable, Equatable {
    /// Probability of a 429.
    public var rateLimited: Double
    /// Probability of a 500.
    public var serverError: Double
    /// Probability of a 503.
    public var unavailable: Double
    /// Probability of hanging for ``hangDuration``.
    public var timeout: Double
    /// Probability of closing the connection without a response.
    public var drop: Double
    /// Probability of cutting a stream half way.
    public var midStreamDrop: Double
    /// The wait a 429 asks for (`Retry-After`, rounded up to whole seconds, and `retry-after-ms`).
    public var retryAfter: Duration
    /// How long a `timeout` fault holds the request before answering normally.
    public var hangDuration: Duration
    /// When set, faults are taken from this list in order (cycling) instead of drawn at random.
    public var script: [MockFault]?

    public init(
        rateLimited: Double = 0, serverError: Double = 0, unavailable: Double = 0, timeout: Double = 0,
        drop: Double = 0, midStreamDrop: Double = 0, retryAfter: Duration = .seconds(1),
        hangDuration: Duration = .seconds(30), script: [MockFault]? = nil
    ) {
        self.rateLimited = rateLimited
        self.serverError = serverError
        self.unavailable = unavailable
        self.timeout = timeout
        self.drop = drop
        self.midStreamDrop = midStreamDrop
        self.retryAfter = retryAfter
        self.hangDuration = hangDuration
        self.script = script
    }

    /// No faults.
    public static let none = MockFaultProfile()

    /// Every request fails with `fault`.
    public static func always(_ fault: MockFault) -> MockFaultProfile { MockFaultProfile(script: [fault]) }

    /// The total fault probability.
    public var totalProbability: Double { rateLimited + serverError + unavailable + timeout + drop + midStreamDrop }

    /// Checks the probabilities (each in 0…1, summing to at most 1) and durations.
    public func validate() throws {
        let probabilities = [rateLimited, serverError, unavailable, timeout, drop, midStreamDrop]
        guard probabilities.allSatisfy({ $0.isFinite && $0 >= 0 && $0 <= 1 }), totalProbability <= 1 + 1e-9 else {
            throw GatewayError(
                .invalidArgument,
                "fault probabilities must each be in 0…1 and sum to at most 1 (they sum to \(totalProbability))"
            )
        }
        guard retryAfter >= .zero, hangDuration >= .zero else {
            throw GatewayError(.invalidArgument, "retry-after and hang durations must not be negative")
        }
        if let script, script.isEmpty {
            throw GatewayError(.invalidArgument, "a fault script needs at least one entry (use \"ok\" for a normal answer)")
        }
    }

    /// Picks the fault for the `index`-th request (0-based) using `generator` for random draws.
    func pick(index: Int, generator: inout SeededGenerator) -> MockFault {
        if let script, !script.isEmpty { return script[index % script.count] }
        let draw = generator.unit()
        var edge = 0.0
        for (p, fault) in [
            (rateLimited, MockFault.rateLimited), (serverError, .serverError), (unavailable, .unavailable),
            (timeout, .timeout), (drop, .drop), (midStreamDrop, .midStreamDrop),
        ] {
            edge += p
            if draw < edge { return fault }
        }
        return .none
    }
}

/// Settings of a ``MockUpstream``.
public struct MockUpstreamConfiguration: Sendable {
    /// Address to bind (loopback by default).
    public var host: String
    /// Port to bind; 0 picks a free one.
    public var port: Int
    /// A name reported in the `x-upstream` response header and `system_fingerprint`, so tests see who answered.
    public var name: String
    /// Models accepted; empty accepts any model name.
    public var models: [String]
    /// Delay before the first byte (streaming) or before the whole answer (non-streaming, plus the token time).
    public var firstTokenLatency: Duration
    /// Delay between streamed chunks; for non-streaming answers it is added once per token after the first.
    public var interTokenLatency: Duration
    /// Completion tokens per answer (capped by the request's `max_tokens` / `max_completion_tokens`).
    public var completionTokens: Int
    /// Reported prompt tokens; `nil` estimates ⌈UTF-8 bytes of all message text / 4⌉.
    public var promptTokens: Int?
    /// Fault injection.
    public var faults: MockFaultProfile
    /// Seed of the fault generator.
    public var seed: UInt64
    /// When set, requests must carry this key (`Authorization: Bearer …` or `api-key`), else 401.
    public var apiKey: String?
    /// Largest request body accepted.
    public var maximumBodyBytes: Int

    public init(
        host: String = "127.0.0.1", port: Int = 0, name: String = "mock", models: [String] = [],
        firstTokenLatency: Duration = .zero, interTokenLatency: Duration = .zero, completionTokens: Int = 16,
        promptTokens: Int? = nil, faults: MockFaultProfile = .none, seed: UInt64 = 0x5EED,
        apiKey: String? = nil, maximumBodyBytes: Int = 16 << 20
    ) {
        self.host = host
        self.port = port
        self.name = name
        self.models = models
        self.firstTokenLatency = firstTokenLatency
        self.interTokenLatency = interTokenLatency
        self.completionTokens = completionTokens
        self.promptTokens = promptTokens
        self.faults = faults
        self.seed = seed
        self.apiKey = apiKey
        self.maximumBodyBytes = maximumBodyBytes
    }

    /// Checks ranges; throws ``GatewayError`` with code `.invalidArgument`.
    public func validate() throws {
        guard (0...65535).contains(port) else {
            throw GatewayError(.invalidArgument, "port \(port) is outside 0…65535")
        }
        guard completionTokens >= 1, completionTokens <= 1_000_000 else {
            throw GatewayError(.invalidArgument, "completion tokens must be in 1…1,000,000 (got \(completionTokens))")
        }
        if let promptTokens, promptTokens < 0 || promptTokens > 100_000_000 {
            throw GatewayError(.invalidArgument, "prompt tokens must be in 0…100,000,000 (got \(promptTokens))")
        }
        guard firstTokenLatency >= .zero, interTokenLatency >= .zero else {
            throw GatewayError(.invalidArgument, "latencies must not be negative")
        }
        guard maximumBodyBytes > 0 else {
            throw GatewayError(.invalidArgument, "the body size limit must be positive")
        }
        try faults.validate()
    }
}

/// What a ``MockUpstream`` has seen so far.
public struct MockUpstreamStatistics: Sendable, Equatable {
    /// Chat-completion requests received (including rejected ones).
    public var requests: Int = 0
    /// Requests answered normally (streams counted when started).
    public var answered: Int = 0
    /// Faults injected, by kind.
    public var faults: [MockFault: Int] = [:]
    /// Requests rejected for a bad body, unknown model or key.
    public var rejected: Int = 0
    /// Prompt and completion tokens reported in `usage`.
    public var promptTokens: Int = 0
    public var completionTokens: Int = 0
}

/// An OpenAI-compatible fake upstream with scripted latency, token counts,
/// streaming and fault injection, for tests, demos and benchmarks.
///
/// Serves `POST /v1/chat/completions` (JSON or SSE), `GET /v1/models` and `GET /health`
/// on a real socket, so everything a gateway does over HTTP is exercised.
/// Faults can be changed while it runs (``setFaults(_:)``), and it can be
/// stopped mid-run (``stop()``) to simulate an upstream that dies.
public final class MockUpstream: Sendable {
    public let configuration: MockUpstreamConfiguration
    private let state: Mutex<State>
    private let server: Mutex<RunningServer?>
    private let logger: Logger

    private struct State {
        var generator: SeededGenerator
        var faults: MockFaultProfile
        var latency: (first: Duration, inter: Duration)
        var statistics = MockUpstreamStatistics()
        var nextID = 0
    }

    /// - Throws: ``GatewayError`` when the configuration is invalid.
    public init(configuration: MockUpstreamConfiguration, logger: Logger = Logger(label: "inferkit.mock-upstream")) throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        state = Mutex(State(
            generator: SeededGenerator(seed: configuration.seed),
            faults: configuration.faults,
            latency: (configuration.firstTokenLatency, configuration.interTokenLatency)
        ))
        server = Mutex(nil)
    }

    /// Starts listening and returns the bound port.
    /// - Parameter handleSignals: stop gracefully on SIGTERM/SIGINT (for the command-line tool).
    @discardableResult
    public func start(handleSignals: Bool = false) async throws -> Int {
        if let running = server.withLock({ $0 }) { return running.port }
        let router = Router(context: MockRequestContext.self)
        router.post("/v1/chat/completions") { [self] request, context in
            try await self.chatCompletions(request: request, context: context)
        }
        // Azure OpenAI's deployment path, so Azure-flavoured upstreams can be tested against the mock.
        router.post("/openai/deployments/:deployment/chat/completions") { [self] request, context in
            try await self.chatCompletions(request: request, context: context)
        }
        router.get("/v1/models") { [self] _, _ in
            let names = self.configuration.models.isEmpty ? ["mock-model"] : self.configuration.models
            return ErrorResponses.json(ModelList(data: names.map { ModelListEntry(id: $0, ownedBy: self.configuration.name) }))
        }
        router.get("/mock/stats") { [self] _, _ in
            ErrorResponses.json(StatisticsBody(self.statistics))
        }
        router.get("/health") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        let configuration = self.configuration
        let logger = self.logger
        let running = try await RunningServer.start(
            host: configuration.host, logger: logger, gracefulShutdownTimeout: .seconds(1), handleSignals: handleSignals
        ) { onRunning in
            Application(
                router: router,
                configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
                onServerRunning: onRunning,
                logger: logger
            )
        }
        server.withLock { $0 = running }
        return running.port
    }

    /// The bound port, once started.
    public var port: Int? { server.withLock { $0?.port } }

    /// `http://host:port`, once started.
    public var baseURL: String? { server.withLock { $0?.baseURL } }

    /// Stops the server (in-flight requests get up to one second to finish). Connections are refused afterwards.
    public func stop() async {
        let running = server.withLock { current -> RunningServer? in
            defer { current = nil }
            return current
        }
        await running?.stop()
    }

    /// Waits until the server stops (after ``stop()`` or a signal).
    public func waitUntilStopped() async throws {
        try await server.withLock { $0 }?.waitUntilStopped()
    }

    /// Replaces the fault profile while running.
    public func setFaults(_ faults: MockFaultProfile) throws {
        try faults.validate()
        state.withLock { $0.faults = faults }
    }

    /// Replaces the latencies while running.
    public func setLatency(firstToken: Duration, interToken: Duration) {
        state.withLock { $0.latency = (firstToken, interToken) }
    }

    /// Counters of a mock running in another process, from its `GET /mock/stats`.
    public struct RemoteStatistics: Sendable, Decodable {
        public var requests: Int
        public var answered: Int
        public var faults: [String: Int]
    }

    /// Reads `GET {baseURL}/mock/stats`.
    public static func remoteStatistics(baseURL: String) async throws -> RemoteStatistics {
        var request = HTTPClientRequest(url: baseURL + "/mock/stats")
        request.method = .GET
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        return try WireJSON.decode(RemoteStatistics.self, from: body)
    }

    /// A snapshot of the counters.
    public var statistics: MockUpstreamStatistics { state.withLock { $0.statistics } }

    // MARK: Handling

    private func reject(_ error: RoutingError) -> Response {
        state.withLock { $0.statistics.rejected += 1 }
        return ErrorResponses.response(for: error, requestID: nil)
    }

    private func chatCompletions(request: Request, context: MockRequestContext) async throws -> Response {
        // Each request takes its fault (and script position) on arrival, so concurrent requests
        // see the script in arrival order.
        let (fault, latency, faults, id) = state.withLock { state in
            state.statistics.requests += 1
            state.nextID += 1
            let fault = state.faults.pick(index: state.nextID - 1, generator: &state.generator)
            return (fault, state.latency, state.faults, state.nextID)
        }
        if let key = configuration.apiKey {
            let bearer = request.headers[.authorization]
            let given = request.headers[.apiKey] ?? (bearer.flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil })
            guard given == key else {
                return reject(RoutingError(.invalidAPIKey, "the mock upstream expects its configured API key"))
            }
        }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: configuration.maximumBodyBytes)
        } catch {
            return reject(RoutingError(.requestTooLarge, "the request body exceeds \(configuration.maximumBodyBytes) bytes"))
        }
        let chat: ChatCompletionRequest
        do {
            chat = try WireJSON.decode(ChatCompletionRequest.self, from: body)
        } catch {
            return reject(RoutingError(.invalidRequest, "the body is not a valid chat completion request"))
        }
        if !configuration.models.isEmpty, !configuration.models.contains(chat.model) {
            return reject(RoutingError(.modelNotFound, "the mock upstream does not serve model '\(chat.model)'", param: "model"))
        }

        if fault != .none { state.withLock { $0.statistics.faults[fault, default: 0] += 1 } }

        switch fault {
        case .rateLimited:
            return ErrorResponses.response(
                for: RoutingError(.rateLimited, "mock upstream: rate limit injected", retryAfter: faults.retryAfter),
                requestID: nil
            )
        case .serverError:
            return ErrorResponses.response(for: RoutingError(.internalError, "mock upstream: 500 injected"), requestID: nil)
        case .unavailable:
            return ErrorResponses.response(for: RoutingError(.noHealthyBackend, "mock upstream: 503 injected"), requestID: nil)
        case .drop:
            context.channel.close(promise: nil)
            throw MockConnectionDropped()
        case .midStreamDrop where !chat.isStreaming:
            context.channel.close(promise: nil)
            throw MockConnectionDropped()
        case .timeout:
            try await Task.sleep(for: faults.hangDuration)
        case .none, .midStreamDrop:
            break
        }

        let completion = min(configuration.completionTokens, max(1, chat.requestedCompletionTokens ?? Int.max))
        let prompt = configuration.promptTokens ?? Self.estimatePromptTokens(chat)
        let finishReason = completion < configuration.completionTokens ? "length" : "stop"
        state.withLock {
            $0.statistics.answered += 1
            $0.statistics.promptTokens += prompt
            $0.statistics.completionTokens += completion
        }
        let created = Int64(Date().timeIntervalSince1970)
        let responseID = "chatcmpl-\(configuration.name)-\(id)"
        let headers: HTTPFields = [.upstreamName: configuration.name]

        if !chat.isStreaming {
            let total = latency.first + latency.inter * (completion - 1)
            if total > .zero { try await Task.sleep(for: total) }
            let response = ChatCompletionResponse(
                id: responseID, created: created, model: chat.model,
                choices: [.init(index: 0, message: .assistant(Self.text(tokens: completion)), finishReason: finishReason)],
                usage: Usage(promptTokens: prompt, completionTokens: completion),
                systemFingerprint: configuration.name
            )
            return ErrorResponses.json(response, headers: headers)
        }

        let includeUsage = chat.streamOptions?.includeUsage ?? false
        let cutAfter = fault == .midStreamDrop ? max(1, completion / 2) : Int.max
        let channel = context.channel
        let name = configuration.name
        var streamHeaders = headers
        streamHeaders[.contentType] = "text/event-stream"
        streamHeaders[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: streamHeaders, body: ResponseBody { writer in
            if latency.first > .zero { try await Task.sleep(for: latency.first) }
            let encoder = JSONEncoder()
            for index in 0..<completion {
                if index >= cutAfter {
                    // Give the chunks already handed to the writer time to reach the socket, so the
                    // cut lands after them as in a real mid-stream drop (closing at once can discard
                    // writes still queued in the response writer when the machine is busy).
                    try? await Task.sleep(for: .milliseconds(50))
                    channel.close(promise: nil)
                    throw MockConnectionDropped()
                }
                if index > 0, latency.inter > .zero { try await Task.sleep(for: latency.inter) }
                let chunk = ChatCompletionChunk(
                    id: responseID, created: created, model: chat.model,
                    choices: [.init(
                        index: 0,
                        delta: ChatDelta(role: index == 0 ? .assistant : nil, content: Self.word(index)),
                        finishReason: index == completion - 1 ? finishReason : nil
                    )],
                    systemFingerprint: name
                )
                var buffer = ByteBuffer()
                ServerSentEvent.encodeData(json: try encoder.encode(chunk), into: &buffer)
                try await writer.write(buffer)
            }
            if includeUsage {
                let usageChunk = ChatCompletionChunk(
                    id: responseID, created: created, model: chat.model, choices: [],
                    usage: Usage(promptTokens: prompt, completionTokens: completion), systemFingerprint: name
                )
                var buffer = ByteBuffer()
                ServerSentEvent.encodeData(json: try encoder.encode(usageChunk), into: &buffer)
                try await writer.write(buffer)
            }
            try await writer.write(ServerSentEvent.done.encoded)
            try await writer.finish(nil)
        })
    }

    static let words = [" the", " quick", " brown", " fox", " jumps", " over", " a", " lazy", " dog", "."]

    /// The text of the `index`-th generated token.
    static func word(_ index: Int) -> String { words[index % words.count] }

    /// The text of an answer of `tokens` tokens.
    static func text(tokens: Int) -> String { (0..<tokens).map(word).joined() }

    /// ⌈UTF-8 bytes of all message text / 4⌉, at least 1.
    static func estimatePromptTokens(_ request: ChatCompletionRequest) -> Int {
        let bytes = request.messages.reduce(0) { $0 + $1.text.utf8.count }
        return max(1, (bytes + 3) / 4)
    }
}

/// The JSON of `GET /mock/stats`.
struct StatisticsBody: Encodable {
    var requests: Int
    var answered: Int
    var rejected: Int
    var faults: [String: Int]
    var promptTokens: Int
    var completionTokens: Int
    init(_ s: MockUpstreamStatistics) {
        requests = s.requests
        answered = s.answered
        rejected = s.rejected
        faults = Dictionary(uniqueKeysWithValues: s.faults.map { ($0.key.rawValue, $0.value) })
        promptTokens = s.promptTokens
        completionTokens = s.completionTokens
    }
}

/// Thrown after the mock closes a connection on purpose.
struct MockConnectionDropped: Error {}

/// The mock's request context: Hummingbird's basic context plus the channel, so a fault can close it.
struct MockRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
