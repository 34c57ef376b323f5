/// What the router tells an upstream about one attempt.
public struct UpstreamCallContext: Sendable, Hashable {
    /// The gateway's request id (send it upstream as `x-request-id` where supported).
    public var requestID: String
    /// The time this attempt may take, first byte to last. The upstream must give up after it and
    /// throw ``UpstreamError`` with kind ``UpstreamError/Kind/timeout``. `nil` means no limit.
    public var timeout: Duration?
    /// 1 for the first attempt of a request, 2 for the first retry, …
    public var attempt: Int

    public init(requestID: String, timeout: Duration? = nil, attempt: Int = 1) {
        self.requestID = requestID
        self.timeout = timeout
        self.attempt = attempt
    }
}

/// An endpoint that answers chat completions: an HTTP server (OpenAI, Azure OpenAI, vLLM,
/// llama.cpp, Ollama), an in-process engine, or a test fake.
///
/// Implementations report failures as ``UpstreamError`` so the router can classify them
/// (retry, trip a breaker, overflow to the next priority group). Any other error thrown is
/// treated as ``UpstreamError/Kind/connectionFailed``.
public protocol Upstream: Sendable {
    /// Sends a non-streaming request. `request.model` is already the upstream's own model
    /// (deployment) name.
    func send(_ request: ChatCompletionRequest, context: UpstreamCallContext) async throws -> ChatCompletionResponse

    /// Sends a streaming request; the stream yields chunks in order and finishes after the last one
    /// (the SSE `[DONE]` marker is not a chunk). Errors before the first chunk may be retried by the
    /// router; errors after it end the client's stream.
    func stream(_ request: ChatCompletionRequest, context: UpstreamCallContext)
        -> AsyncThrowingStream<ChatCompletionChunk, any Error>
}

extension Upstream {
    /// Sends with a fresh context (no timeout, attempt 1).
    public func send(_ request: ChatCompletionRequest) async throws -> ChatCompletionResponse {
        try await send(request, context: UpstreamCallContext(requestID: "local"))
    }

    /// Streams with a fresh context (no timeout, attempt 1).
    public func stream(_ request: ChatCompletionRequest) -> AsyncThrowingStream<ChatCompletionChunk, any Error> {
        stream(request, context: UpstreamCallContext(requestID: "local"))
    }
}

/// A failure reported by an upstream.
public struct UpstreamError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable, CustomStringConvertible {
        /// The upstream answered with this HTTP status (≥ 400).
        case status(Int)
        /// No complete answer within the attempt's timeout.
        case timeout
        /// Could not connect, or the connection was refused/reset before any response.
        case connectionFailed
        /// The connection closed in the middle of a response (e.g. mid-stream).
        case connectionDropped
        /// The upstream answered 2xx with a body that is not a valid chat completion.
        case invalidResponse
        /// The caller cancelled the attempt.
        case cancelled

        public var description: String {
            switch self {
            case .status(let code): return "HTTP \(code)"
            case .timeout: return "timeout"
            case .connectionFailed: return "connection failed"
            case .connectionDropped: return "connection dropped"
            case .invalidResponse: return "invalid response"
            case .cancelled: return "cancelled"
            }
        }
    }

    public var kind: Kind
    /// How long the upstream asked us to wait (`retry-after-ms`, else `Retry-After`).
    public var retryAfter: Duration?
    /// The upstream's OpenAI-style error body, when it sent one.
    public var body: OpenAIErrorBody?
    /// What happened, without prompt text or key material.
    public var message: String

    public init(kind: Kind, retryAfter: Duration? = nil, body: OpenAIErrorBody? = nil, message: String = "") {
        self.kind = kind
        self.retryAfter = retryAfter
        self.body = body
        self.message = message.isEmpty ? (body?.error.message ?? kind.description) : message
    }

    public static func status(_ code: Int, retryAfter: Duration? = nil, message: String = "") -> UpstreamError {
        UpstreamError(kind: .status(code), retryAfter: retryAfter, message: message)
    }

    /// The HTTP status, when the upstream answered with one.
    public var httpStatus: Int? {
        if case .status(let code) = kind { return code }
        return nil
    }

    public var description: String { "upstream \(kind): \(message)" }

    /// Reads the wait an upstream asks for from its response headers.
    ///
    /// `retry-after-ms` (Azure OpenAI, milliseconds, may be fractional) wins over `Retry-After`
    /// (delta-seconds or an HTTP-date, RFC 9110 §10.2.3). Negative, non-numeric or absurd values
    /// (more than a day) are ignored; a date in the past means zero.
    /// - Parameters:
    ///   - retryAfterMs: the `retry-after-ms` header value, if any.
    ///   - retryAfter: the `Retry-After` header value, if any.
    ///   - nowUnixSeconds: the current wall-clock time, used for the HTTP-date form.
    public static func parseRetryAfter(retryAfterMs: String?, retryAfter: String?, nowUnixSeconds: Double)
        -> Duration?
    {
        let day = 86_400.0
        if let raw = retryAfterMs?.trimmingSpaces, let ms = Double(raw), ms.isFinite, ms >= 0, ms <= day * 1000 {
            return .milliseconds(Int64(ms.rounded(.up)))
        }
        guard let raw = retryAfter?.trimmingSpaces, !raw.isEmpty else { return nil }
        if let seconds = Double(raw) {
            guard seconds.isFinite, seconds >= 0, seconds <= day else { return nil }
            return .milliseconds(Int64((seconds * 1000).rounded(.up)))
        }
        guard let date = HTTPDate.parse(raw) else { return nil }
        let delta = date - nowUnixSeconds
        guard delta <= day else { return nil }
        return delta <= 0 ? .zero : .milliseconds(Int64((delta * 1000).rounded(.up)))
    }
}

extension String {
    var trimmingSpaces: String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" { scalars.removeLast() }
        return String(scalars)
    }
}

/// IMF-fixdate parsing (`Sun, 06 Nov 1994 08:49:37 GMT`), the only HTTP-date form senders may produce.
enum HTTPDate {
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Seconds since 1970-01-01T00:00:00Z, or `nil` when `text` is not an IMF-fixdate.
    static func parse(_ text: String) -> Double? {
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[5] == "GMT", parts[0].hasSuffix(","),
              let day = Int(parts[1]), (1...31).contains(day),
              let monthIndex = months.firstIndex(of: String(parts[2])),
              let year = Int(parts[3]), (1970...9999).contains(year)
        else { return nil }
        let clock = parts[4].split(separator: ":")
        guard clock.count == 3, let h = Int(clock[0]), let m = Int(clock[1]), let s = Int(clock[2]),
              (0...23).contains(h), (0...59).contains(m), (0...60).contains(s)
        else { return nil }
        let days = daysFromCivil(year: year, month: monthIndex + 1, day: day)
        return Double(days * 86_400 + h * 3600 + m * 60 + s)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
