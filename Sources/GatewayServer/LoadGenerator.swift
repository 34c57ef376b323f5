import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import Routing
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What ``LoadGenerator`` sends, how fast, and for how long.
public struct LoadTestConfiguration: Sendable {
    /// How requests are paced.
    public enum Pacing: Sendable, Equatable {
        /// Closed loop: this many requests in flight at all times.
        case concurrency(Int)
        /// Open loop: requests start at this rate (per second) whatever the latency, with at most
        /// `maximumInFlight` outstanding; when that cap is reached the generator waits (the report's
        /// achieved rate then shows the shortfall).
        case rate(perSecond: Double, maximumInFlight: Int)

        var description: String {
            switch self {
            case .concurrency(let n): return "concurrency \(n)"
            case .rate(let r, let cap): return "rate \(format(r, 1))/s (max \(cap) in flight)"
            }
        }
    }

    /// The endpoint: a base URL (`http://127.0.0.1:8080`, `…/v1`) or the full chat-completions URL.
    public var url: String
    /// Sent as `Authorization: Bearer`.
    public var apiKey: String?
    public var model: String
    /// The user message of every request.
    public var prompt: String
    /// `max_tokens` of every request.
    public var maxTokens: Int?
    /// Stream (SSE) and measure TTFT/ITL/TPOT.
    public var stream: Bool
    public var pacing: Pacing
    /// Stop after this many requests (at most 10,000,000).
    public var requestCount: Int?
    /// Stop starting requests after this long (at most 24 h).
    public var duration: Duration?
    /// Per-request timeout (connect to last byte of the head; streams also stop after it).
    public var requestTimeout: Duration
    /// Requests sent and discarded before measuring (warms connection pools and caches).
    public var warmupRequests: Int

    public init(
        url: String, apiKey: String? = nil, model: String = "mock-model", prompt: String = "Say hello in five words.",
        maxTokens: Int? = 16, stream: Bool = false, pacing: Pacing = .concurrency(1), requestCount: Int? = nil,
        duration: Duration? = nil, requestTimeout: Duration = .seconds(60), warmupRequests: Int = 0
    ) {
        self.url = url
        self.apiKey = apiKey
        self.model = model
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.stream = stream
        self.pacing = pacing
        self.requestCount = requestCount
        self.duration = duration
        self.requestTimeout = requestTimeout
        self.warmupRequests = warmupRequests
    }

    /// The chat-completions URL derived from ``url``.
    public var chatCompletionsURL: String {
        let base = HTTPUpstreamEndpoint.trimmingSlashes(url)
        if base.hasSuffix("/chat/completions") { return base }
        if base.hasSuffix("/v1") { return base + "/chat/completions" }
        return base + "/v1/chat/completions"
    }

    /// Checks that the run is bounded and the numbers are sane.
    public func validate() throws {
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw GatewayError(.invalidArgument, "the URL must start with http:// or https:// (got '\(url)')")
        }
        guard requestCount != nil || duration != nil else {
            throw GatewayError(.invalidArgument, "give a request count or a duration so the run is bounded")
        }
        if let requestCount, !(1...10_000_000).contains(requestCount) {
            throw GatewayError(.invalidArgument, "the request count must be in 1…10,000,000 (got \(requestCount))")
        }
        if let duration, duration <= .zero || duration > .seconds(86_400) {
            throw GatewayError(.invalidArgument, "the duration must be in (0, 24 h] (got \(duration))")
        }
        guard requestTimeout > .zero, requestTimeout <= .seconds(3600) else {
            throw GatewayError(.invalidArgument, "the request timeout must be in (0, 1 h]")
        }
        guard (0...1_000_000).contains(warmupRequests) else {
            throw GatewayError(.invalidArgument, "warm-up requests must be in 0…1,000,000")
        }
        if let maxTokens, maxTokens < 1 {
            throw GatewayError(.invalidArgument, "max tokens must be at least 1 (got \(maxTokens))")
        }
        switch pacing {
        case .concurrency(let n):
            guard (1...10_000).contains(n) else {
                throw GatewayError(.invalidArgument, "concurrency must be in 1…10,000 (got \(n))")
            }
        case .rate(let r, let cap):
            guard r.isFinite, r > 0, r <= 1_000_000 else {
                throw GatewayError(.invalidArgument, "the rate must be in (0, 1,000,000] requests/s (got \(r))")
            }
            guard (1...10_000).contains(cap) else {
                throw GatewayError(.invalidArgument, "the in-flight cap must be in 1…10,000 (got \(cap))")
            }
        }
    }
}

/// A load generator for any OpenAI-compatible chat-completions endpoint.
///
/// Measures each request client-side (E2E; for streams also TTFT, every inter-token gap and
/// TPOT) and aggregates them into a ``LoadTestReport`` with the definitions of vLLM's serving
/// benchmark. Errors are counted by category (`http_429`, `timeout`, `connection`, …), never
/// retried, so the report shows what a client would see.
public struct LoadGenerator: Sendable {
    public let configuration: LoadTestConfiguration

    /// - Throws: ``GatewayError`` when the configuration is invalid.
    public init(configuration: LoadTestConfiguration) throws {
        try configuration.validate()
        self.configuration = configuration
    }

    /// Runs the load test. `progress` is called with the number of finished measured requests,
    /// about ten times per run.
    public func run(progress: (@Sendable (Int) -> Void)? = nil) async throws -> LoadTestReport {
        let configuration = self.configuration
        let inFlight: Int
        switch configuration.pacing {
        case .concurrency(let n): inFlight = n
        case .rate(_, let cap): inFlight = cap
        }
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.timeout = .init(connect: .seconds(5), read: TimeAmount(configuration.requestTimeout))
        var pool = HTTPClient.Configuration.ConnectionPool(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: inFlight)
        pool.retryConnectionEstablishment = false
        clientConfiguration.connectionPool = pool
        clientConfiguration.httpVersion = .http1Only
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
        do {
            let report = try await run(client: client, progress: progress)
            try await client.shutdown()
            return report
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func makeRequest() throws -> HTTPClientRequest {
        var chat = ChatCompletionRequest(model: configuration.model, messages: [.user(configuration.prompt)])
        chat.maxTokens = configuration.maxTokens
        if configuration.stream {
            chat.stream = true
            chat.streamOptions = StreamOptions(includeUsage: true)
        }
        var request = HTTPClientRequest(url: configuration.chatCompletionsURL)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let key = configuration.apiKey { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
        request.body = .bytes(try WireJSON.encode(chat))
        return request
    }

    private func run(client: HTTPClient, progress: (@Sendable (Int) -> Void)?) async throws -> LoadTestReport {
        let request = try makeRequest()
        let configuration = self.configuration
        let measure = { @Sendable () async -> RequestMeasurement in
            await Self.perform(request, client: client, stream: configuration.stream, timeout: configuration.requestTimeout)
        }
        // Warm-up, at the configured in-flight level, not measured.
        if configuration.warmupRequests > 0 {
            let workers: Int
            switch configuration.pacing {
            case .concurrency(let n): workers = n
            case .rate(_, let cap): workers = min(cap, 8)
            }
            let tickets = Tickets(limit: configuration.warmupRequests)
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<workers {
                    group.addTask {
                        while tickets.take() { _ = await measure() }
                    }
                }
            }
        }

        let limit = configuration.requestCount ?? Int.max
        let start = ContinuousClock.now
        let stopAt = configuration.duration.map { start + $0 }
        let progressStep = max(1, min(limit == Int.max ? 1000 : limit / 10, 100_000))
        let finished = Atomic<Int>(0)
        let report = { @Sendable () in
            let done = finished.add(1, ordering: .relaxed).newValue
            if done % progressStep == 0 { progress?(done) }
        }
        var measurements: [RequestMeasurement] = []

        switch configuration.pacing {
        case .concurrency(let workers):
            let tickets = Tickets(limit: limit)
            measurements = await withTaskGroup(of: [RequestMeasurement].self) { group in
                for _ in 0..<workers {
                    group.addTask {
                        var local: [RequestMeasurement] = []
                        while true {
                            guard tickets.take() else { break }
                            if let stopAt, ContinuousClock.now >= stopAt { break }
                            local.append(await measure())
                            report()
                        }
                        return local
                    }
                }
                var all: [RequestMeasurement] = []
                for await part in group { all += part }
                return all
            }
        case .rate(let perSecond, let cap):
            measurements = await withTaskGroup(of: RequestMeasurement.self) { group in
                var all: [RequestMeasurement] = []
                var outstanding = 0
                var index = 0
                let interval = Duration.seconds(double: 1 / perSecond)
                while index < limit {
                    let due = start + interval * index
                    if let stopAt, due >= stopAt { break }
                    while outstanding >= cap, let m = await group.next() {
                        all.append(m)
                        outstanding -= 1
                    }
                    let now = ContinuousClock.now
                    if due > now { try? await Task.sleep(until: due, clock: .continuous) }
                    group.addTask {
                        let m = await measure()
                        report()
                        return m
                    }
                    outstanding += 1
                    index += 1
                }
                for await m in group { all.append(m) }
                return all
            }
        }
        let wall = (ContinuousClock.now - start).secondsDouble
        return LoadTestReport(
            target: configuration.chatCompletionsURL,
            streaming: configuration.stream,
            mode: configuration.pacing.description,
            wallSeconds: wall,
            measurements: measurements
        )
    }

    /// Paired measurement at one connection per target: sends one request to each target in
    /// turn (A, B, A, B, …) for `rounds` rounds, so bursts of noise from other processes hit
    /// every target alike — the fair way to compare tail latencies of two paths on a shared
    /// machine. Each configuration's URL, body and timeout are used; pacing and counts are ignored.
    /// - Returns: one report per configuration, in order.
    public static func interleaved(_ configurations: [LoadGenerator], rounds: Int, warmupRounds: Int = 100) async throws -> [LoadTestReport] {
        guard !configurations.isEmpty, (1...10_000_000).contains(rounds), warmupRounds >= 0 else {
            throw GatewayError(.invalidArgument, "interleaved runs need at least one target and 1…10,000,000 rounds")
        }
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.timeout = .init(connect: .seconds(5))
        var pool = HTTPClient.Configuration.ConnectionPool(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 1)
        pool.retryConnectionEstablishment = false
        clientConfiguration.connectionPool = pool
        clientConfiguration.httpVersion = .http1Only
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
        do {
            let requests = try configurations.map { try $0.makeRequest() }
            var measurements = Array(repeating: [RequestMeasurement](), count: configurations.count)
            let start = ContinuousClock.now
            for round in 0..<(warmupRounds + rounds) {
                for (index, generator) in configurations.enumerated() {
                    let m = await perform(requests[index], client: client, stream: generator.configuration.stream, timeout: generator.configuration.requestTimeout)
                    if round >= warmupRounds { measurements[index].append(m) }
                }
            }
            let wall = (ContinuousClock.now - start).secondsDouble
            try await client.shutdown()
            return configurations.enumerated().map { index, generator in
                LoadTestReport(
                    target: generator.configuration.chatCompletionsURL, streaming: generator.configuration.stream,
                    mode: "interleaved, 1 connection per target", wallSeconds: wall, measurements: measurements[index]
                )
            }
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// Sends one request and measures it. Never throws: failures become error categories.
    static func perform(_ request: HTTPClientRequest, client: HTTPClient, stream: Bool, timeout: Duration) async -> RequestMeasurement {
        let start = ContinuousClock.now
        func elapsed(_ instant: ContinuousClock.Instant = .now) -> Double { (instant - start).secondsDouble }
        do {
            let response = try await client.execute(request, timeout: TimeAmount(timeout))
            let code = Int(response.status.code)
            guard (200..<300).contains(code) else {
                _ = try? await response.body.collect(upTo: 1 << 20)
                return RequestMeasurement(error: "http_\(code)", endToEnd: elapsed())
            }
            if !stream {
                let body = try await response.body.collect(upTo: 64 << 20)
                let end = elapsed()
                guard let decoded = try? WireJSON.decode(ResponseProjection.self, from: body), decoded.choices != nil else {
                    return RequestMeasurement(error: "invalid_response", endToEnd: end)
                }
                return RequestMeasurement(endToEnd: end, outputTokens: decoded.usage?.completionTokens ?? 0)
            }
            var parser = ServerSentEventParser()
            let decoder = JSONDecoder()
            var firstToken: Double?
            var last: Double = 0
            var gaps: [Double] = []
            var contentChunks = 0
            var usageTokens: Int?
            var sawDone = false
            var errorEvent = false
            reading: for try await buffer in response.body {
                let now = elapsed()
                for event in try parser.feed(buffer) {
                    if event.isDone {
                        sawDone = true
                        break reading
                    }
                    guard let chunk = try? decoder.decode(ChunkProjection.self, from: Data(event.data.utf8)), let choices = chunk.choices else {
                        // An `{"error": …}` event (the gateway's mid-stream failure) or garbage.
                        errorEvent = true
                        continue
                    }
                    if let usage = chunk.usage { usageTokens = usage.completionTokens }
                    if choices.contains(where: { !($0.delta?.content ?? "").isEmpty }) {
                        contentChunks += 1
                        if let _ = firstToken { gaps.append(now - last) } else { firstToken = now }
                        last = now
                    }
                }
            }
            let end = elapsed()
            if errorEvent { return RequestMeasurement(error: "stream_error", endToEnd: end) }
            if !sawDone { return RequestMeasurement(error: "stream_truncated", endToEnd: end) }
            return RequestMeasurement(
                endToEnd: end, timeToFirstToken: firstToken, interTokenLatencies: gaps,
                outputTokens: usageTokens ?? contentChunks
            )
        } catch {
            return RequestMeasurement(error: category(of: error), endToEnd: elapsed())
        }
    }

    static func category(of error: any Error) -> String {
        if let http = error as? HTTPClientError {
            switch http {
            case .deadlineExceeded, .readTimeout, .writeTimeout, .connectTimeout: return "timeout"
            case .remoteConnectionClosed: return "connection_closed"
            default: return "client_error"
            }
        }
        if error is GatewayError { return "stream_error" }
        if error is NIOTooManyBytesError { return "response_too_large" }
        return "connection"
    }
}

/// The members of a chat completion the load generator reads. Decoding only these keeps the
/// measuring client cheap (it shares the CPU with what it measures); the wire types themselves
/// are Routing's.
struct ResponseProjection: Decodable {
    struct Choice: Decodable {}
    var choices: [Choice]?
    var usage: UsageProjection?
}

/// The members of a `chat.completion.chunk` the load generator reads.
struct ChunkProjection: Decodable {
    struct Choice: Decodable {
        struct Delta: Decodable { var content: String? }
        var delta: Delta?
    }
    var choices: [Choice]?
    var usage: UsageProjection?
}

struct UsageProjection: Decodable {
    var completionTokens: Int
    enum CodingKeys: String, CodingKey { case completionTokens = "completion_tokens" }
}

/// Hands out at most `limit` tickets across tasks.
final class Tickets: Sendable {
    private let taken = Atomic<Int>(0)
    let limit: Int
    init(limit: Int) { self.limit = limit }
    /// True while tickets remain.
    func take() -> Bool { taken.add(1, ordering: .relaxed).oldValue < limit }
}
