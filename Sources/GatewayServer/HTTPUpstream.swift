import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Routing

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Where an ``HTTPUpstream`` sends requests and how it authenticates.
public enum HTTPUpstreamEndpoint: Sendable, Equatable {
    /// An OpenAI-compatible server (OpenAI, vLLM, llama.cpp server, Ollama, this package's gateway):
    /// `POST {baseURL}/chat/completions` with `Authorization: Bearer {key}`.
    /// `baseURL` normally ends in `/v1`, as in the OpenAI SDKs (`http://10.0.0.5:8000/v1`).
    case openAICompatible(baseURL: String)
    /// An Azure OpenAI deployment:
    /// `POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version={apiVersion}`
    /// with an `api-key` header.
    case azureOpenAI(endpoint: String, deployment: String, apiVersion: String)

    /// The full URL of the chat-completions call.
    public var chatCompletionsURL: String {
        switch self {
        case .openAICompatible(let baseURL):
            return Self.trimmingSlashes(baseURL) + "/chat/completions"
        case .azureOpenAI(let endpoint, let deployment, let apiVersion):
            return Self.trimmingSlashes(endpoint) + "/openai/deployments/" + Self.percentEncodePathSegment(deployment)
                + "/chat/completions?api-version=" + Self.percentEncodePathSegment(apiVersion)
        }
    }

    static func trimmingSlashes(_ text: String) -> String {
        var text = Substring(text)
        while text.hasSuffix("/") { text = text.dropLast() }
        return String(text)
    }

    static func percentEncodePathSegment(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]], as: UTF8.self)
            }
        }
        return out
    }
}

/// A Routing `Upstream` over HTTP/1.1 with AsyncHTTPClient: OpenAI-compatible servers and
/// Azure OpenAI deployments, non-streaming and SSE streaming.
///
/// Failures become `UpstreamError`s the router can classify: HTTP statuses (with
/// `Retry-After` / `retry-after-ms` and the upstream's OpenAI error body), timeouts,
/// connection failures before a response, connections dropped mid-response, and bodies that
/// are not chat completions. The API key is sent only in its header and never logged.
public struct HTTPUpstream: Upstream {
    /// The HTTP clients (shared by all upstreams of a gateway; their pools keep connections alive).
    public let clients: UpstreamHTTPClients
    /// The client used off the event loops (the first of ``clients``).
    public var client: HTTPClient { clients.fallback }
    public let endpoint: HTTPUpstreamEndpoint
    /// The time budget of an attempt when the router gives none.
    public let defaultTimeout: Duration
    /// Largest response body (non-streaming) or single SSE event accepted.
    public let maximumResponseBytes: Int
    private let url: String
    private let headers: HTTPHeaders

    /// - Parameters:
    ///   - client: the shared HTTP client (see ``makeClient(connectTimeout:maximumConnectionsPerHost:readIdleTimeout:)``).
    ///     ``init(clients:endpoint:apiKey:extraHeaders:defaultTimeout:maximumResponseBytes:)`` takes
    ///     one client per event loop instead, so a request never leaves its loop.
    ///   - endpoint: where to send requests.
    ///   - apiKey: sent as `Authorization: Bearer` (OpenAI-compatible) or `api-key` (Azure); `nil` sends none.
    ///   - extraHeaders: added to every request (e.g. `OpenAI-Organization`).
    ///   - defaultTimeout: the attempt time budget when the router gives none.
    ///   - maximumResponseBytes: the largest response body or single SSE event accepted.
    public init(
        client: HTTPClient, endpoint: HTTPUpstreamEndpoint, apiKey: String?, extraHeaders: [(String, String)] = [],
        defaultTimeout: Duration = .seconds(600), maximumResponseBytes: Int = 32 << 20
    ) {
        self.init(clients: UpstreamHTTPClients(client), endpoint: endpoint, apiKey: apiKey, extraHeaders: extraHeaders,
                  defaultTimeout: defaultTimeout, maximumResponseBytes: maximumResponseBytes)
    }

    /// An upstream over one HTTP client per event loop (see ``UpstreamHTTPClients``); other
    /// parameters as in ``init(client:endpoint:apiKey:extraHeaders:defaultTimeout:maximumResponseBytes:)``.
    public init(
        clients: UpstreamHTTPClients, endpoint: HTTPUpstreamEndpoint, apiKey: String?, extraHeaders: [(String, String)] = [],
        defaultTimeout: Duration = .seconds(600), maximumResponseBytes: Int = 32 << 20
    ) {
        self.clients = clients
        self.endpoint = endpoint
        self.defaultTimeout = defaultTimeout
        self.maximumResponseBytes = maximumResponseBytes
        url = endpoint.chatCompletionsURL
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Accept", value: "application/json, text/event-stream")
        if let apiKey, !apiKey.isEmpty {
            switch endpoint {
            case .openAICompatible: headers.add(name: "Authorization", value: "Bearer \(apiKey)")
            case .azureOpenAI: headers.add(name: "api-key", value: apiKey)
            }
        }
        for (name, value) in extraHeaders { headers.add(name: name, value: value) }
        self.headers = headers
    }

    private func makeRequest(_ request: ChatCompletionRequest, streaming: Bool, context: UpstreamCallContext) throws -> HTTPClientRequest {
        var body = request
        body.stream = streaming ? true : nil
        if streaming {
            // Ask for the usage chunk so the gateway can reconcile token limits and account cost.
            var options = body.streamOptions ?? StreamOptions()
            options.includeUsage = true
            body.streamOptions = options
        } else {
            body.streamOptions = nil
        }
        var http = HTTPClientRequest(url: url)
        http.method = .POST
        http.headers = headers
        http.headers.add(name: "x-request-id", value: context.requestID)
        do {
            http.body = .bytes(try WireJSON.encode(body))
        } catch {
            throw UpstreamError(kind: .invalidResponse, message: "could not encode the request for the upstream: \(error)")
        }
        return http
    }

    public func send(_ request: ChatCompletionRequest, context: UpstreamCallContext) async throws -> ChatCompletionResponse {
        let http = try makeRequest(request, streaming: false, context: context)
        let deadline = NIODeadline.now() + TimeAmount(context.timeout ?? defaultTimeout)
        do {
            let response = try await clients.current.execute(http, deadline: deadline)
            try await Self.checkStatus(response, maximumBytes: 1 << 20)
            let body = try await response.body.collect(upTo: maximumResponseBytes)
            do {
                return try WireJSON.decode(ChatCompletionResponse.self, from: body)
            } catch {
                throw UpstreamError(kind: .invalidResponse, message: "the upstream answered 2xx with a body that is not a chat completion")
            }
        } catch {
            throw Self.classify(error, afterHead: false)
        }
    }

    public func stream(_ request: ChatCompletionRequest, context: UpstreamCallContext)
        -> AsyncThrowingStream<ChatCompletionChunk, any Error>
    {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: ChatCompletionChunk.self, throwing: (any Error).self)
        let http: HTTPClientRequest
        do {
            http = try makeRequest(request, streaming: true, context: context)
        } catch {
            continuation.finish(throwing: error)
            return stream
        }
        let client = clients.current
        let budget = context.timeout ?? defaultTimeout
        let maximumEventBytes = maximumResponseBytes
        let task = Task {
            let start = ContinuousClock.now
            var afterHead = false
            do {
                let response = try await client.execute(http, deadline: .now() + TimeAmount(budget))
                try await Self.checkStatus(response, maximumBytes: 1 << 20)
                afterHead = true
                var parser = ServerSentEventParser(maximumEventBytes: maximumEventBytes)
                var sawDone = false
                var sawFinish = false
                let decoder = JSONDecoder()
                reading: for try await buffer in response.body {
                    for event in try parser.feed(buffer) {
                        if event.isDone {
                            sawDone = true
                            break reading
                        }
                        let chunk: ChatCompletionChunk
                        do {
                            chunk = try decoder.decode(ChatCompletionChunk.self, from: Data(event.data.utf8))
                        } catch {
                            throw UpstreamError(kind: .invalidResponse, message: "a streamed event is not a chat.completion.chunk")
                        }
                        if chunk.choices.contains(where: { $0.finishReason != nil }) { sawFinish = true }
                        continuation.yield(chunk)
                    }
                    if ContinuousClock.now - start > budget {
                        throw UpstreamError(kind: .timeout, message: "the stream did not finish within \(budget)")
                    }
                }
                if !sawDone && !sawFinish {
                    throw UpstreamError(kind: .connectionDropped, message: "the upstream closed the stream before it finished")
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: Self.classify(error, afterHead: afterHead))
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// Throws an ``UpstreamError`` for a non-2xx response, with Retry-After and the error body.
    static func checkStatus(_ response: HTTPClientResponse, maximumBytes: Int) async throws {
        let code = Int(response.status.code)
        guard !(200..<300).contains(code) else { return }
        let retryAfter = UpstreamError.parseRetryAfter(
            retryAfterMs: response.headers.first(name: "retry-after-ms"),
            retryAfter: response.headers.first(name: "retry-after"),
            nowUnixSeconds: Date().timeIntervalSince1970
        )
        let bytes = try? await response.body.collect(upTo: maximumBytes)
        let errorBody = bytes.flatMap { try? WireJSON.decode(OpenAIErrorBody.self, from: $0) }
        throw UpstreamError(kind: .status(code), retryAfter: retryAfter, body: errorBody)
    }

    /// Maps transport errors to ``UpstreamError`` kinds.
    static func classify(_ error: any Error, afterHead: Bool) -> UpstreamError {
        if let upstream = error as? UpstreamError { return upstream }
        if error is CancellationError { return UpstreamError(kind: .cancelled, message: "the attempt was cancelled") }
        if let gateway = error as? GatewayError { return UpstreamError(kind: .invalidResponse, message: gateway.message) }
        if let http = error as? HTTPClientError {
            switch http {
            case .deadlineExceeded, .readTimeout, .writeTimeout:
                return UpstreamError(kind: .timeout, message: "the upstream did not answer in time")
            case .connectTimeout:
                return UpstreamError(kind: .connectionFailed, message: "connecting to the upstream timed out")
            case .cancelled:
                return UpstreamError(kind: .cancelled, message: "the attempt was cancelled")
            case .remoteConnectionClosed:
                return UpstreamError(
                    kind: afterHead ? .connectionDropped : .connectionFailed,
                    message: afterHead ? "the upstream closed the connection mid-response" : "the upstream closed the connection before answering"
                )
            default:
                return UpstreamError(kind: afterHead ? .connectionDropped : .connectionFailed, message: "HTTP client error: \(http)")
            }
        }
        if error is NIOTooManyBytesError {
            return UpstreamError(kind: .invalidResponse, message: "the upstream's response exceeds the size limit")
        }
        return UpstreamError(
            kind: afterHead ? .connectionDropped : .connectionFailed,
            message: "transport error: \(String(describing: error).prefix(200))"
        )
    }
}


extension HTTPUpstream {
    /// An HTTP client tuned for a gateway: connection failures surface at once (no silent
    /// reconnect loop, so the router can fail over), a short connect timeout, many keep-alive
    /// connections per upstream, and a read-idle timeout that bounds a stalled stream.
    ///
    /// - Parameters:
    ///   - connectTimeout: time to establish a TCP connection (default 2 s).
    ///   - maximumConnectionsPerHost: keep-alive connections per upstream host (default 512).
    ///   - readIdleTimeout: longest silence while reading a response (default 120 s); `nil` for none.
    public static func makeClient(
        connectTimeout: Duration = .seconds(2), maximumConnectionsPerHost: Int = 512, readIdleTimeout: Duration? = .seconds(120)
    ) -> HTTPClient {
        HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration(
            connectTimeout: connectTimeout, maximumConnectionsPerHost: maximumConnectionsPerHost, readIdleTimeout: readIdleTimeout))
    }

    static func clientConfiguration(connectTimeout: Duration, maximumConnectionsPerHost: Int, readIdleTimeout: Duration?) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: TimeAmount(connectTimeout), read: readIdleTimeout.map { TimeAmount($0) })
        var pool = HTTPClient.Configuration.ConnectionPool(
            idleTimeout: .seconds(60),
            concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, maximumConnectionsPerHost)
        )
        pool.retryConnectionEstablishment = false
        configuration.connectionPool = pool
        configuration.httpVersion = .http1Only
        configuration.decompression = .disabled
        return configuration
    }
}

/// One AsyncHTTPClient per event loop of `MultiThreadedEventLoopGroup.singleton`, each with its
/// own connection pool on its loop, as Envoy keeps a pool per worker thread.
///
/// AsyncHTTPClient's async API prefers a connection on the calling event loop but takes an idle
/// one on another loop when it has one; a request read on loop A would then be written and
/// answered on loop B and resumed back on A, two thread switches per upstream call. With a client
/// per loop, ``current`` is the client of the loop the caller runs on (with
/// ``GatewayHTTPServer/runConcurrencyOnEventLoops()`` that is the loop that read the request), so
/// the upstream call stays on that thread. Off the loops, calls use ``fallback``.
public final class UpstreamHTTPClients: Sendable {
    /// Every client, one per loop (or the single client given).
    public let all: [HTTPClient]
    /// The client used when the caller is not on one of the loops.
    public var fallback: HTTPClient { all[0] }
    private let byLoop: [ObjectIdentifier: HTTPClient]

    /// Wraps one client (every call uses it).
    public init(_ client: HTTPClient) {
        all = [client]
        byLoop = [:]
    }

    /// A client per loop of `MultiThreadedEventLoopGroup.singleton`, tuned as
    /// ``HTTPUpstream/makeClient(connectTimeout:maximumConnectionsPerHost:readIdleTimeout:)``;
    /// `maximumConnectionsPerHost` is the total, shared out between the loops.
    public init(connectTimeout: Duration = .seconds(2), maximumConnectionsPerHost: Int = 512, readIdleTimeout: Duration? = .seconds(120)) {
        let loops = Array(MultiThreadedEventLoopGroup.singleton.makeIterator())
        // Rounded up, so the loops together allow at least the total (AsyncHTTPClient's limit is soft).
        let perLoop = max(1, (maximumConnectionsPerHost + max(1, loops.count) - 1) / max(1, loops.count))
        let configuration = HTTPUpstream.clientConfiguration(
            connectTimeout: connectTimeout, maximumConnectionsPerHost: perLoop, readIdleTimeout: readIdleTimeout)
        var byLoop: [ObjectIdentifier: HTTPClient] = [:]
        var all: [HTTPClient] = []
        for loop in loops {
            let client = HTTPClient(eventLoopGroupProvider: .shared(loop), configuration: configuration)
            byLoop[ObjectIdentifier(loop)] = client
            all.append(client)
        }
        if all.isEmpty { all = [HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)] }
        self.all = all
        self.byLoop = byLoop
    }

    /// The client of the event loop the caller runs on, else ``fallback``.
    public var current: HTTPClient {
        guard !byLoop.isEmpty, let loop = MultiThreadedEventLoopGroup.currentEventLoop else { return fallback }
        return byLoop[ObjectIdentifier(loop)] ?? fallback
    }

    /// Shuts every client down (all of them, also when one fails); rethrows the first failure.
    public func shutdown() async throws {
        var failure: (any Error)?
        for client in all {
            do { try await client.shutdown() } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }

    /// Starts shutting every client down and returns at once (safe on an event loop; the clients
    /// keep themselves alive until done).
    func shutdownWithoutWaiting() {
        for client in all { client.shutdown { _ in } }
    }

    /// Shuts every client down, blocking (not from an event loop); all of them, also when one
    /// fails; rethrows the first failure.
    public func syncShutdown() throws {
        var failure: (any Error)?
        for client in all {
            do { try client.syncShutdown() } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }
}
