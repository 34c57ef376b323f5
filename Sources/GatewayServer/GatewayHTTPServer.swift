import AsyncHTTPClient
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOPosix
import Prometheus
import Routing
import ServiceLifecycle
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Settings of the HTTP layer in front of a Routing `Gateway`.
public struct GatewayHTTPOptions: Sendable {
    /// Address to bind.
    public var host: String
    /// Port; 0 picks a free one.
    public var port: Int
    /// Largest request body; larger bodies are refused with 413 before they are read in full.
    public var maximumBodyBytes: Int
    /// How long in-flight requests may run after a shutdown signal before they are cancelled.
    public var shutdownGracePeriod: Duration
    /// Idle client connections are closed after this long (`nil`: never).
    public var clientIdleTimeout: Duration?
    /// Send the answering backend's id in an `x-upstream` response header (useful for
    /// debugging and tests; turn off to hide the topology from clients).
    public var exposeBackendHeader: Bool
    /// Serve HTTPS with this configuration (nil: plain HTTP).
    public var tls: TLSConfiguration?

    public init(
        host: String = "127.0.0.1", port: Int = 8080, maximumBodyBytes: Int = 4 << 20,
        shutdownGracePeriod: Duration = .seconds(30), clientIdleTimeout: Duration? = .seconds(75),
        exposeBackendHeader: Bool = true, tls: TLSConfiguration? = nil
    ) {
        self.host = host
        self.port = port
        self.maximumBodyBytes = maximumBodyBytes
        self.shutdownGracePeriod = shutdownGracePeriod
        self.clientIdleTimeout = clientIdleTimeout
        self.exposeBackendHeader = exposeBackendHeader
        self.tls = tls
    }
}

/// The OpenAI-compatible HTTP server of the gateway (Hummingbird).
///
/// Routes:
/// - `POST /v1/chat/completions` — JSON, or SSE when `"stream": true` (chunks are relayed as they
///   arrive; a failure after the first chunk ends the stream with an `{"error": …}` event).
/// - `GET /v1/models` — the models the caller's key may use.
/// - `GET /health` — 200 `ok`/`degraded` with breaker states; 503 when no backend can take traffic.
/// - `GET /metrics` — Prometheus text: usage per key/model/backend, backend health, HTTP counters,
///   and everything recorded through swift-metrics when a Prometheus registry is attached.
///
/// Every error is an OpenAI-style body `{"error": {"message", "type", "param", "code"}}` with the
/// right status; 429/503 carry `Retry-After`. Keys and prompts never reach the logs.
public final class GatewayHTTPServer: Sendable {
    public let gateway: Gateway
    public let options: GatewayHTTPOptions
    let registry: PrometheusCollectorRegistry?
    let logger: Logger
    let stats = HTTPStatistics()
    /// Services that must stop after the HTTP server (e.g. the upstream HTTP client).
    let dependentServices: [any Service]

    /// - Parameters:
    ///   - gateway: the Routing gateway that decides and performs every request.
    ///   - options: listener, limits and shutdown settings.
    ///   - registry: when given, `/metrics` also emits everything registered there (the executable
    ///     bootstraps swift-metrics with a Prometheus factory over it; a library never does).
    ///   - logger: request failures at warning, refusals at debug; never keys or prompts.
    ///   - dependentServices: run beside the server and shut down after it, in order.
    public init(
        gateway: Gateway, options: GatewayHTTPOptions = .init(), registry: PrometheusCollectorRegistry? = nil,
        logger: Logger = Logger(label: "inferencekit.gateway.http"), dependentServices: [any Service] = []
    ) {
        self.gateway = gateway
        self.options = options
        self.registry = registry
        self.logger = logger
        self.dependentServices = dependentServices
    }

    /// Makes the event loops of `MultiThreadedEventLoopGroup.singleton` — the ones the server and
    /// the upstream HTTP client use — Swift concurrency's global executor, for the whole process.
    ///
    /// A request then stays on the event loop that read it: the handler, the routing decision, the
    /// upstream call (AsyncHTTPClient prefers a connection on the current loop) and the response
    /// run on one thread, with no hand-offs to the default thread pool and back. On this project's
    /// 2-core machine that cut the gateway's context switches from 14 to 2 per request and about
    /// 0.1 ms of latency at one connection (`Documentation/benchmarks/gateway.md`).
    ///
    /// Call it once, first thing in an executable, before other tasks start; `inferkit gateway`
    /// does so unless given `--no-event-loop-executor`. Every task of the process then runs on
    /// those event loops, so nothing may block them (no blocking I/O or long computations in
    /// tasks). A library embedding the server should leave this decision to its executable.
    /// - Returns: whether the executor was installed (false when already installed or unsupported).
    @discardableResult
    public static func runConcurrencyOnEventLoops() -> Bool {
        guard concurrencyOnEventLoops.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else {
            return false
        }
        return NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }

    private static let concurrencyOnEventLoops = Atomic(false)

    /// Builds the router (exposed for embedding the routes in a larger Hummingbird application).
    public func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: OpenAIErrorMiddleware(stats: stats))
        router.post("/v1/chat/completions") { [self] request, _ in
            await self.chatCompletions(request)
        }
        router.get("/v1/models") { [self] request, _ in
            self.models(request)
        }
        router.get("/health") { [self] _, _ in
            self.health()
        }
        router.get("/metrics") { [self] _, _ in
            self.metrics()
        }
        return router
    }

    /// Starts listening; returns once the socket is bound.
    /// - Parameter handleSignals: install SIGTERM/SIGINT handlers that trigger a graceful shutdown.
    public func start(handleSignals: Bool = false) async throws -> RunningServer {
        let router = makeRouter()
        let options = self.options
        let logger = self.logger
        let http1 = HTTPServerBuilder.http1(configuration: .init(idleTimeout: options.clientIdleTimeout.map { TimeAmount($0) }))
        let builder = try options.tls.map { try HTTPServerBuilder.tls(http1, tlsConfiguration: $0) } ?? http1
        return try await RunningServer.start(
            host: options.host, scheme: options.tls == nil ? "http" : "https", logger: logger,
            gracefulShutdownTimeout: options.shutdownGracePeriod, services: dependentServices, handleSignals: handleSignals
        ) { onRunning in
            Application(
                router: router,
                server: builder,
                configuration: .init(address: .hostname(options.host, port: options.port), serverName: nil),
                onServerRunning: onRunning,
                logger: logger
            )
        }
    }

    /// Releases what ``make(configuration:environment:overrideHost:overridePort:registry:logger:)``
    /// created (the upstream HTTP client) when the server is never started, e.g. after a configuration check.
    public func shutdownUnstarted() async throws {
        for case let service as HTTPClientService in dependentServices {
            try await service.clients.shutdown()
        }
    }

    // MARK: Handlers

    static let jsonHeaders: HTTPFields = [.contentType: "application/json"]

    private func fail(_ error: RoutingError, requestID: String?, route: String) -> Response {
        stats.record(route: route, status: error.httpStatus)
        if error.httpStatus >= 500 {
            logger.warning("request failed", metadata: [
                "request_id": "\(error.requestID ?? requestID ?? "-")", "code": "\(error.code.rawValue)", "status": "\(error.httpStatus)",
            ])
        } else {
            logger.debug("request refused", metadata: [
                "request_id": "\(error.requestID ?? requestID ?? "-")", "code": "\(error.code.rawValue)", "status": "\(error.httpStatus)",
            ])
        }
        return ErrorResponses.response(for: error, requestID: error.requestID ?? requestID)
    }

    /// A client-supplied `x-request-id`, kept only when short and made of safe characters.
    static func clientRequestID(_ request: Request) -> String? {
        guard let value = request.headers[.requestID], !value.isEmpty, value.utf8.count <= 128,
              value.utf8.allSatisfy({ byte in
                  (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                      || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
              })
        else { return nil }
        return value
    }

    func chatCompletions(_ request: Request) async -> Response {
        let route = "chat_completions"
        stats.inFlight.add(1, ordering: .relaxed)
        defer { stats.inFlight.subtract(1, ordering: .relaxed) }
        let requestID = Self.clientRequestID(request)
        let key: APIKey?
        do {
            key = try gateway.authenticate(authorization: request.headers[.authorization], apiKeyHeader: request.headers[.apiKey])
        } catch {
            return fail(error, requestID: requestID, route: route)
        }
        let limit = options.maximumBodyBytes
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            return fail(RoutingError(.requestTooLarge, "the request body is \(length) bytes; the limit is \(limit) bytes"), requestID: requestID, route: route)
        }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: limit)
        } catch is NIOTooManyBytesError {
            return fail(RoutingError(.requestTooLarge, "the request body exceeds the limit of \(limit) bytes"), requestID: requestID, route: route)
        } catch {
            return fail(RoutingError(.invalidRequest, "the request body could not be read"), requestID: requestID, route: route)
        }
        let chat: ChatCompletionRequest
        do {
            chat = try WireJSON.decode(ChatCompletionRequest.self, from: body)
        } catch let error as DecodingError {
            return fail(Self.invalidBody(error), requestID: requestID, route: route)
        } catch {
            return fail(RoutingError(.invalidRequest, "the body is not valid JSON"), requestID: requestID, route: route)
        }

        if chat.isStreaming {
            let stream: GatewayStream
            do {
                stream = try await gateway.stream(chat, key: key, requestID: requestID)
            } catch {
                return fail(error, requestID: requestID, route: route)
            }
            stats.record(route: route, status: 200)
            var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache", .requestID: stream.requestID]
            if options.exposeBackendHeader, let backend = stream.backendID { headers[.upstreamName] = backend }
            let logger = self.logger
            let stats = self.stats
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.withoutEscapingSlashes]
                var buffer = ByteBuffer()
                do {
                    for try await chunk in stream.chunks {
                        buffer.clear()
                        ServerSentEvent.encodeData(json: try encoder.encode(chunk), into: &buffer)
                        try await writer.write(buffer)
                    }
                    try await writer.write(ServerSentEvent.done.encoded)
                } catch let error as RoutingError {
                    // Failure after the first chunk: tell the client in-band, then end the stream.
                    stats.streamErrors.add(1, ordering: .relaxed)
                    logger.warning("stream ended with an error", metadata: ["request_id": "\(stream.requestID)", "code": "\(error.code.rawValue)"])
                    buffer.clear()
                    ServerSentEvent.encodeData(json: (try? encoder.encode(error.body)) ?? Data(), into: &buffer)
                    try await writer.write(buffer)
                }
                try await writer.finish(nil)
            })
        }

        do {
            let result = try await gateway.complete(chat, key: key, requestID: requestID)
            stats.record(route: route, status: 200)
            var headers = Self.jsonHeaders
            headers[.requestID] = result.requestID
            if options.exposeBackendHeader, let backend = result.backendID { headers[.upstreamName] = backend }
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: try WireJSON.encode(result.response)))
        } catch let error as RoutingError {
            return fail(error, requestID: requestID, route: route)
        } catch {
            return fail(RoutingError(.internalError, "the response could not be encoded"), requestID: requestID, route: route)
        }
    }

    /// A 400 naming the member at fault, without echoing any value from the body.
    static func invalidBody(_ error: DecodingError) -> RoutingError {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().drop(while: { $0 == "." }).description
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context.codingPath)
            let name = parent.isEmpty ? key.stringValue : parent + "." + key.stringValue
            return RoutingError(.invalidRequest, "the request is missing the required member '\(name)'", param: name)
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            let name = path(context.codingPath)
            return RoutingError(.invalidRequest, "the member '\(name)' must be of type \(type)", param: name.isEmpty ? nil : name)
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                return RoutingError(.invalidRequest, "the body is not valid JSON: send a JSON object with 'model' and 'messages'")
            }
            let name = path(context.codingPath)
            return RoutingError(.invalidRequest, "the member '\(name)' has an invalid value", param: name)
        @unknown default:
            return RoutingError(.invalidRequest, "the body is not a valid chat completion request")
        }
    }

    func models(_ request: Request) -> Response {
        do {
            let key = try gateway.authenticate(authorization: request.headers[.authorization], apiKeyHeader: request.headers[.apiKey])
            stats.record(route: "models", status: 200)
            return ErrorResponses.json(gateway.modelList(for: key))
        } catch {
            return fail(error, requestID: nil, route: "models")
        }
    }

    struct HealthBody: Encodable {
        struct Backend: Encodable {
            var model: String
            var backend: String
            var breaker: String
            var outstanding: Int
        }
        var status: String
        var backends: [Backend]
    }

    func health() -> Response {
        let backends = gateway.health()
        let models = Set(backends.map(\.model))
        // A model can take traffic when one of its backends is not open.
        let servable = models.filter { model in backends.contains { $0.model == model && $0.breaker != "open" } }
        let status: String
        let code: HTTPResponse.Status
        if servable.isEmpty && !models.isEmpty {
            (status, code) = ("unavailable", .serviceUnavailable)
        } else if backends.contains(where: { $0.breaker != "closed" }) {
            (status, code) = ("degraded", .ok)
        } else {
            (status, code) = ("ok", .ok)
        }
        stats.record(route: "health", status: Int(code.code))
        return ErrorResponses.json(
            HealthBody(status: status, backends: backends.map { .init(model: $0.model, backend: $0.backendID, breaker: $0.breaker, outstanding: $0.outstanding) }),
            status: code
        )
    }

    func metrics() -> Response {
        stats.record(route: "metrics", status: 200)
        var text = PrometheusText()
        let usage = gateway.usage().totals.sorted { $0.key.description < $1.key.description }
        let families: [(String, String, (UsageTotals) -> Double)] = [
            ("inferencekit_usage_requests_total", "Requests answered, by API key id, model and backend.", { Double($0.requests) }),
            ("inferencekit_usage_failures_total", "Requests that failed, by API key id, model and backend.", { Double($0.failures) }),
            ("inferencekit_usage_prompt_tokens_total", "Prompt tokens, by API key id, model and backend.", { Double($0.promptTokens) }),
            ("inferencekit_usage_completion_tokens_total", "Completion tokens, by API key id, model and backend.", { Double($0.completionTokens) }),
            ("inferencekit_usage_cost_total", "Cost in the configured price unit, by API key id, model and backend.", { $0.cost }),
        ]
        for (name, help, value) in families {
            text.family(name, type: "counter", help: help)
            for (key, totals) in usage {
                text.sample(name, [("api_key", key.apiKeyID), ("model", key.model), ("backend", key.backend)], value(totals))
            }
        }
        let health = gateway.health()
        text.family("inferencekit_backend_breaker_state", type: "gauge", help: "1 for the current circuit-breaker state of each backend.")
        for h in health {
            for state in ["closed", "open", "half-open"] {
                text.sample("inferencekit_backend_breaker_state", [("model", h.model), ("backend", h.backendID), ("state", state)], h.breaker == state ? 1 : 0)
            }
        }
        text.family("inferencekit_backend_outstanding_requests", type: "gauge", help: "Requests in flight per backend.")
        for h in health {
            text.sample("inferencekit_backend_outstanding_requests", [("model", h.model), ("backend", h.backendID)], Double(h.outstanding))
        }
        text.family("inferencekit_http_requests_total", type: "counter", help: "HTTP requests answered by the gateway, by route and status.")
        for entry in stats.snapshot() {
            text.sample("inferencekit_http_requests_total", [("route", entry.route), ("status", String(entry.status))], Double(entry.count))
        }
        text.family("inferencekit_http_in_flight_requests", type: "gauge", help: "Chat-completion requests being served.")
        text.sample("inferencekit_http_in_flight_requests", [], Double(stats.inFlight.load(ordering: .relaxed)))
        text.family("inferencekit_http_stream_errors_total", type: "counter", help: "Streams ended by an upstream failure after the first chunk.")
        text.sample("inferencekit_http_stream_errors_total", [], Double(stats.streamErrors.load(ordering: .relaxed)))
        var bytes = Array(text.output.utf8)
        registry?.emit(into: &bytes)
        var buffer = ByteBuffer()
        buffer.writeBytes(bytes)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: buffer))
    }
}

/// Counters of the HTTP layer.
final class HTTPStatistics: Sendable {
    let inFlight = Atomic<Int>(0)
    let streamErrors = Atomic<Int>(0)
    private let counts = Mutex<[String: [Int: Int]]>([:])

    func record(route: String, status: Int) {
        counts.withLock { $0[route, default: [:]][status, default: 0] += 1 }
    }

    /// (route, status, count), sorted by route then status.
    func snapshot() -> [(route: String, status: Int, count: Int)] {
        var out: [(route: String, status: Int, count: Int)] = []
        for (route, statuses) in counts.withLock({ $0 }) {
            for (status, count) in statuses { out.append((route, status, count)) }
        }
        return out.sorted { ($0.route, $0.status) < ($1.route, $1.status) }
    }
}

/// Turns Hummingbird's own errors (unknown route, wrong method, unparsable request) into
/// OpenAI-style error bodies.
struct OpenAIErrorMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let stats: HTTPStatistics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            let code = Int(error.status.code)
            let routing: RoutingError
            switch code {
            case 404:
                routing = RoutingError(.invalidRequest, "unknown path \(request.method) \(request.uri.path): the gateway serves /v1/chat/completions, /v1/models, /health and /metrics", httpStatus: 404)
            case 405:
                routing = RoutingError(.invalidRequest, "method \(request.method) is not allowed on \(request.uri.path)", httpStatus: 405)
            case 413:
                routing = RoutingError(.requestTooLarge, "the request body is too large")
            default:
                routing = RoutingError(.invalidRequest, "the request could not be processed (\(code))", httpStatus: code)
            }
            stats.record(route: "other", status: code)
            return ErrorResponses.response(for: routing, requestID: nil)
        }
    }
}

/// A minimal Prometheus text-format (0.0.4) writer.
struct PrometheusText {
    var output = ""

    mutating func family(_ name: String, type: String, help: String) {
        output += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
        output += name
        if !labels.isEmpty {
            output += "{" + labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        output += " " + Self.number(value) + "\n"
    }

    static func escape(_ value: String) -> String {
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}

extension GatewayHTTPServer {
    /// Builds a complete gateway from a configuration file's contents: one shared HTTP client
    /// (shut down after the server stops), an ``HTTPUpstream`` per upstream, the Routing
    /// `Gateway` (with the built-in hashed n-gram embedder when the semantic cache is on),
    /// and the HTTP server.
    /// - Parameters:
    ///   - file: the parsed configuration file.
    ///   - environment: where `*_env` secrets are read (normally the process environment).
    ///   - overrideHost: takes precedence over `server.host` (e.g. a command-line flag).
    ///   - overridePort: takes precedence over `server.port`.
    ///   - registry: a Prometheus registry whose contents `/metrics` also emits.
    ///   - logger: used by the server and the Routing gateway.
    /// - Throws: ``GatewayError`` for configuration errors, `RoutingError` for invalid policy values.
    public static func make(
        configuration file: GatewayServerConfiguration, environment: [String: String],
        overrideHost: String? = nil, overridePort: Int? = nil,
        registry: PrometheusCollectorRegistry? = nil, logger: Logger = Logger(label: "inferencekit.gateway")
    ) throws -> GatewayHTTPServer {
        let resolved = try file.resolve(environment: environment)
        let s = resolved.server
        // Before the clients exist, so a bad file needs no client shutdown.
        let tls = try file.tlsConfiguration()
        let clients = UpstreamHTTPClients(
            connectTimeout: .seconds(double: s.connectTimeoutSeconds),
            maximumConnectionsPerHost: s.maxConnectionsPerUpstream,
            readIdleTimeout: .seconds(double: s.readIdleTimeoutSeconds)
        )
        var endpoints: [String: any Upstream] = [:]
        var byUpstream: [String: HTTPUpstream] = [:]
        for (id, u) in resolved.upstreams {
            byUpstream[id] = HTTPUpstream(clients: clients, endpoint: u.endpoint, apiKey: u.apiKey, extraHeaders: u.headers, defaultTimeout: u.timeout)
        }
        for (backend, upstream) in resolved.backendUpstreams {
            endpoints[backend] = byUpstream[upstream]
        }
        let gateway: Gateway
        do {
            gateway = try Gateway(
                configuration: resolved.routing, upstreams: endpoints,
                embedder: resolved.routing.semanticCache == nil ? nil : HashedNGramEmbedder(),
                classifier: resolved.classifier, logger: logger
            )
        } catch {
            // Not syncShutdown: `make` may run on an event loop (runConcurrencyOnEventLoops), where it traps.
            clients.shutdownWithoutWaiting()
            throw GatewayError(.invalidConfiguration, error.message, underlying: error)
        }
        let options = GatewayHTTPOptions(
            host: overrideHost ?? s.host, port: overridePort ?? s.port, maximumBodyBytes: s.maxBodyBytes,
            shutdownGracePeriod: .seconds(double: s.shutdownGraceSeconds),
            clientIdleTimeout: s.clientIdleTimeoutSeconds > 0 ? .seconds(double: s.clientIdleTimeoutSeconds) : nil,
            tls: tls
        )
        return GatewayHTTPServer(
            gateway: gateway, options: options, registry: registry, logger: logger,
            dependentServices: [HTTPClientService(clients: clients)]
        )
    }
}
