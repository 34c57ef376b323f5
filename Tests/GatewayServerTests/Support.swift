import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import Routing
import Synchronization
import Testing

@testable import GatewayServer

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Collects every log record (message and metadata, rendered as text) so tests can check
/// that no key material is logged.
final class LogCapture: Sendable {
    let lines = Mutex<[String]>([])

    var logger: Logger {
        var logger = Logger(label: "test.gateway") { _ in CapturingHandler(capture: self) }
        logger.logLevel = .trace
        return logger
    }

    var all: [String] { lines.withLock { $0 } }

    struct CapturingHandler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            let line = "\(event.level) \(event.message) \(merged) \(event.source)"
            capture.lines.withLock { $0.append(line) }
        }
    }
}

let quietLogger: Logger = {
    var logger = Logger(label: "test.quiet")
    logger.logLevel = .error
    return logger
}()

/// A plain HTTP response as tests see it.
struct TestResponse {
    var status: Int
    var headers: HTTPHeaders
    var body: ByteBuffer
    var text: String { String(buffer: body) }
    func json<T: Decodable>(_ type: T.Type) throws -> T { try WireJSON.decode(T.self, from: body) }
    var error: OpenAIErrorBody.Detail? { (try? json(OpenAIErrorBody.self))?.error }
}

/// Mocks + a gateway on loopback, torn down in order.
final class Harness: Sendable {
    let mocks: [String: MockUpstream]
    let server: GatewayHTTPServer
    let running: RunningServer
    let client: HTTPClient
    let logs: LogCapture

    var baseURL: String { running.baseURL }

    private init(mocks: [String: MockUpstream], server: GatewayHTTPServer, running: RunningServer, client: HTTPClient, logs: LogCapture) {
        self.mocks = mocks
        self.server = server
        self.running = running
        self.client = client
        self.logs = logs
    }

    /// Starts one mock per entry, substitutes `{port:NAME}` in `yaml` with its port, and starts the gateway.
    static func start(
        mocks configurations: [String: MockUpstreamConfiguration], yaml: String, environment: [String: String] = [:]
    ) async throws -> Harness {
        var mocks: [String: MockUpstream] = [:]
        var text = yaml
        for (name, var configuration) in configurations {
            configuration.name = name
            let mock = try MockUpstream(configuration: configuration, logger: quietLogger)
            let port = try await mock.start()
            mocks[name] = mock
            text = text.replacingOccurrences(of: "{port:\(name)}", with: String(port))
        }
        let logs = LogCapture()
        let file = try GatewayServerConfiguration.parse(text)
        let server = try GatewayHTTPServer.make(configuration: file, environment: environment, overridePort: 0, logger: logs.logger)
        let running = try await server.start()
        // No connection retries: a refused connection must fail at once in tests.
        let client = HTTPUpstream.makeClient()
        return Harness(mocks: mocks, server: server, running: running, client: client, logs: logs)
    }

    /// Starts a harness, runs `body`, and always tears everything down (also when `body` throws).
    static func with<T>(
        mocks: [String: MockUpstreamConfiguration], yaml: String, environment: [String: String] = [:],
        _ body: (Harness) async throws -> T
    ) async throws -> T {
        let h = try await start(mocks: mocks, yaml: yaml, environment: environment)
        do {
            let result = try await body(h)
            await h.stop()
            return result
        } catch {
            await h.stop()
            throw error
        }
    }

    func stop() async {
        await running.stop()
        for mock in mocks.values { await mock.stop() }
        try? await client.shutdown()
    }

    func post(_ path: String = "/v1/chat/completions", body: String, headers: [(String, String)] = [], timeout: Duration = .seconds(10)) async throws -> TestResponse {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await client.execute(request, timeout: TimeAmount(timeout))
        return TestResponse(status: Int(response.status.code), headers: response.headers, body: try await response.body.collect(upTo: 16 << 20))
    }

    func get(_ path: String, headers: [(String, String)] = []) async throws -> TestResponse {
        var request = HTTPClientRequest(url: baseURL + path)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await client.execute(request, timeout: .seconds(10))
        return TestResponse(status: Int(response.status.code), headers: response.headers, body: try await response.body.collect(upTo: 16 << 20))
    }

    /// A chat request body.
    static func chat(model: String = "m", text: String = "Hello, gateway!", stream: Bool = false, includeUsage: Bool = false, maxTokens: Int? = nil) -> String {
        var request = ChatCompletionRequest(model: model, messages: [.user(text)])
        if stream { request.stream = true }
        if includeUsage { request.streamOptions = StreamOptions(includeUsage: true) }
        request.maxTokens = maxTokens
        return String(buffer: try! WireJSON.encode(request))
    }
}

/// Parses an SSE body into chunks; returns the chunks, any error events, and whether `[DONE]` came.
func parseStream(_ body: ByteBuffer) throws -> (chunks: [ChatCompletionChunk], errors: [OpenAIErrorBody], done: Bool) {
    var parser = ServerSentEventParser()
    var chunks: [ChatCompletionChunk] = []
    var errors: [OpenAIErrorBody] = []
    var done = false
    for event in try parser.feed(body) {
        if event.isDone { done = true; continue }
        let data = Data(event.data.utf8)
        if let error = try? JSONDecoder().decode(OpenAIErrorBody.self, from: data), !error.error.message.isEmpty {
            errors.append(error)
        } else {
            chunks.append(try JSONDecoder().decode(ChatCompletionChunk.self, from: data))
        }
    }
    return (chunks, errors, done)
}
