/// What the router tells an upstream about one attempt.
public struct UpstreamCallContext: Sendable, Hashable {
    /// The gateway's request id (send it upstream as `x-request-id` where supported).
    public var requestID: String
    /// The time this attempt may take (for a stream: until its first chunk). The upstream should
    /// give up after it and throw ``UpstreamError`` with kind ``UpstreamError/Kind/timeout``; the
    /// ``Gateway`` also runs its own timer and cancels an attempt that outlives it, so an upstream
    /// must stop promptly on task cancellation. `nil` means no limit.
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
    /// (delta-seconds or an HTTP-date, RFC 9110 §10.2.3, in any of the three date forms a recipient
    /// must accept). Only plain decimals are numbers (`12`, `1.5`; not `-1`, `+3`, `1e3`, `0x10`,
    /// `inf`); other, negative or absurd values (more than a day) are ignored, so a garbage
    /// `retry-after-ms` falls back to `Retry-After`. A date in the past means zero.
    /// - Parameters:
    ///   - retryAfterMs: the `retry-after-ms` header value, if any.
    ///   - retryAfter: the `Retry-After` header value, if any.
    ///   - nowUnixSeconds: the current wall-clock time, used for the HTTP-date form.
    public static func parseRetryAfter(retryAfterMs: String?, retryAfter: String?, nowUnixSeconds: Double)
        -> Duration?
    {
        let day = 86_400.0
        if let raw = retryAfterMs?.trimmingSpaces, let ms = plainDecimal(raw), ms <= day * 1000 {
            return .milliseconds(Int64(ms.rounded(.up)))
        }
        guard let raw = retryAfter?.trimmingSpaces, !raw.isEmpty else { return nil }
        if raw.utf8.allSatisfy({ (0x30...0x39).contains($0) || $0 == 0x2E }) {
            guard let seconds = plainDecimal(raw), seconds <= day else { return nil }
            return .milliseconds(Int64((seconds * 1000).rounded(.up)))
        }
        guard nowUnixSeconds.isFinite, let date = HTTPDate.parse(raw) else { return nil }
        let delta = date - nowUnixSeconds
        guard delta <= day else { return nil }
        return delta <= 0 ? .zero : .milliseconds(Int64((delta * 1000).rounded(.up)))
    }

    /// `digits` or `digits.digits` (at most 30 characters), as a finite non-negative number.
    static func plainDecimal(_ text: String) -> Double? {
        let bytes = Array(text.utf8)
        guard (1...30).contains(bytes.count), bytes.first != 0x2E, bytes.last != 0x2E,
              bytes.filter({ $0 == 0x2E }).count <= 1,
              bytes.allSatisfy({ (0x30...0x39).contains($0) || $0 == 0x2E })
        else { return nil }
        guard let value = Double(text), value.isFinite else { return nil }
        return value
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

/// HTTP-date parsing (RFC 9110 §5.6.7): the preferred IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`)
/// and the two obsolete forms recipients must still accept, RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`)
/// and asctime (`Sun Nov  6 08:49:37 1994`).
enum HTTPDate {
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Seconds since 1970-01-01T00:00:00Z, or `nil` when `text` is not an HTTP-date.
    static func parse(_ text: String) -> Double? {
        let parts = text.split(separator: " ")
        let day: Int?, monthName: Substring, year: Int?, time: Substring
        if parts.count == 6, parts[0].hasSuffix(","), parts[5] == "GMT" {
            // IMF-fixdate.
            (day, monthName, year, time) = (Int(parts[1]), parts[2], Int(parts[3]), parts[4])
        } else if parts.count == 4, parts[0].hasSuffix(","), parts[3] == "GMT" {
            // RFC 850: two-digit year; 70–99 → 19yy, 00–69 → 20yy (dates before 1970 are not waits anyway).
            let dmy = parts[1].split(separator: "-")
            guard dmy.count == 3, dmy[2].count == 2, let yy = Int(dmy[2]) else { return nil }
            (day, monthName, year, time) = (Int(dmy[0]), dmy[1], yy < 70 ? 2000 + yy : 1900 + yy, parts[2])
        } else if parts.count == 5, !parts[0].hasSuffix(",") {
            // asctime.
            (day, monthName, year, time) = (Int(parts[2]), parts[1], Int(parts[4]), parts[3])
        } else {
            return nil
        }
        guard let day, let year, (1970...9999).contains(year),
              let monthIndex = months.firstIndex(of: String(monthName)),
              (1...daysIn(month: monthIndex + 1, year: year)).contains(day)
        else { return nil }
        let clock = time.split(separator: ":")
        guard clock.count == 3, clock.allSatisfy({ $0.count == 2 }),
              let h = Int(clock[0]), let m = Int(clock[1]), let s = Int(clock[2]),
              (0...23).contains(h), (0...59).contains(m), (0...60).contains(s)
        else { return nil }
        let days = daysFromCivil(year: year, month: monthIndex + 1, day: day)
        return Double(days * 86_400 + h * 3600 + m * 60 + s)
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
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
