import HTTPTypes
import AsyncHTTPClient
import Hummingbird
import Logging
import NIOCore
import Routing
import ServiceLifecycle
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// JSON helpers shared by the gateway, the mock upstream and the load generator.
enum WireJSON {
    static func encode(_ value: some Encodable) throws -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return ByteBuffer(data: try encoder.encode(value))
    }

    static func decode<T: Decodable>(_ type: T.Type, from buffer: ByteBuffer) throws -> T {
        try buffer.withUnsafeReadableBytes { raw in
            try JSONDecoder().decode(T.self, from: Data(raw))
        }
    }
}

extension ByteBuffer {
    init(data: Data) {
        var buffer = ByteBufferAllocator().buffer(capacity: data.count)
        buffer.writeBytes(data)
        self = buffer
    }
}

extension HTTPField.Name {
    static let retryAfter = HTTPField.Name("Retry-After")!
    static let retryAfterMs = HTTPField.Name("retry-after-ms")!
    static let requestID = HTTPField.Name("x-request-id")!
    static let apiKey = HTTPField.Name("api-key")!
    static let upstreamName = HTTPField.Name("x-upstream")!
    static let cacheControl = HTTPField.Name("Cache-Control")!
}

/// OpenAI-style error responses (`{"error": {"message", "type", "param", "code"}}`).
enum ErrorResponses {
    /// The response for a routing error: its status, body and, for 429/503, `Retry-After`
    /// (whole seconds, rounded up) and `retry-after-ms`.
    static func response(for error: RoutingError, requestID: String?) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let seconds = error.retryAfterHeaderSeconds {
            headers[.retryAfter] = String(seconds)
        }
        if let ms = error.retryAfterHeaderMilliseconds {
            headers[.retryAfterMs] = String(ms)
        }
        if let requestID { headers[.requestID] = requestID }
        if error.httpStatus == 401 { headers[.wwwAuthenticate] = "Bearer" }
        let body = (try? WireJSON.encode(error.body)) ?? ByteBuffer(string: #"{"error":{"message":"internal error","type":"api_error","param":null,"code":"internal_error"}}"#)
        return Response(status: .init(code: error.httpStatus), headers: headers, body: .init(byteBuffer: body))
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) -> Response {
        var headers = extra
        headers[.contentType] = "application/json"
        do {
            return Response(status: status, headers: headers, body: .init(byteBuffer: try WireJSON.encode(value)))
        } catch {
            return response(for: RoutingError(.internalError, "could not encode the response: \(error)"), requestID: nil)
        }
    }
}

/// A Hummingbird application running in-process under its own `ServiceGroup`,
/// bound to a (possibly ephemeral) port. Used for the gateway, the mock
/// upstream and tests.
public final class RunningServer: Sendable {
    /// The port the server listens on.
    public let port: Int
    /// The host it is bound to.
    public let host: String
    /// `http` or `https`.
    public let scheme: String
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    private init(port: Int, host: String, scheme: String, group: ServiceGroup, task: Task<Void, any Error>) {
        self.port = port
        self.host = host
        self.scheme = scheme
        self.group = group
        self.task = task
    }

    /// `http://host:port` (`https://` when serving TLS).
    public var baseURL: String { "\(scheme)://\(host):\(port)" }

    /// Starts `makeApplication` (given the callback to pass as `onServerRunning`) and returns once it listens.
    /// - Parameters:
    ///   - services: services that run beside the server and stop after it (e.g. an HTTP client owner).
    ///   - handleSignals: SIGTERM/SIGINT trigger a graceful shutdown.
    static func start(
        host: String,
        scheme: String = "http",
        logger: Logger,
        gracefulShutdownTimeout: Duration?,
        services: [any Service] = [],
        handleSignals: Bool = false,
        makeApplication: (@escaping @Sendable (any Channel) async -> Void) -> any Service
    ) async throws -> RunningServer {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = makeApplication { channel in
            continuation.yield(channel.localAddress?.port ?? 0)
        }
        // A service group shuts its services down in reverse order: the server first (finishing
        // in-flight requests), then the services it depends on.
        var configuration = ServiceGroupConfiguration(
            services: services + [app],
            gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [],
            logger: logger
        )
        configuration.maximumGracefulShutdownDuration = gracefulShutdownTimeout
        let group = ServiceGroup(configuration: configuration)
        let failure = Mutex<(any Error)?>(nil)
        let task = Task {
            do {
                try await group.run()
            } catch {
                failure.withLock { $0 = error }
                continuation.finish()
                throw error
            }
            continuation.finish()
        }
        for await port in ports {
            return RunningServer(port: port, host: host, scheme: scheme, group: group, task: task)
        }
        let error = failure.withLock { $0 }
        throw GatewayError(
            .serverStartFailed,
            "the server on \(host) did not start: \(error.map { "\($0)" } ?? "it stopped before listening"); check that the address is valid and the port is free",
            underlying: error.map { SendableErrorBox(description: "\($0)") }
        )
    }

    /// Graceful shutdown: stop accepting connections, let in-flight requests finish
    /// (up to the configured timeout), then return.
    public func stop() async {
        await group.triggerGracefulShutdown()
        _ = await task.result
    }

    /// Waits until the server stops (e.g. on SIGTERM when signals are installed).
    public func waitUntilStopped() async throws {
        try await task.value
    }
}

/// An error's description, for wrapping errors that are not `Sendable`.
struct SendableErrorBox: Error, Sendable, CustomStringConvertible {
    var description: String
}

/// SplitMix64: a tiny seeded generator for fault injection and jitter (not cryptographic).
struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }
}

/// Shuts HTTP clients down when the service group shuts down (after the server has stopped).
public struct HTTPClientService: Service {
    public let clients: UpstreamHTTPClients
    public init(client: HTTPClient) { clients = UpstreamHTTPClients(client) }
    public init(clients: UpstreamHTTPClients) { self.clients = clients }
    public func run() async throws {
        try? await gracefulShutdown()
        try await clients.shutdown()
    }
}
