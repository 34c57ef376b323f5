/// The one error type of the Routing module: what the gateway answers when it cannot serve a request.
///
/// Each error has a stable ``code-swift.property`` (its raw value is the OpenAI-style `code`
/// string), an HTTP status, the OpenAI error `type`, and a message that says what to do.
public struct RoutingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Stable error codes. The raw value is sent as `error.code`.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// Malformed JSON, missing or invalid fields (400).
        case invalidRequest = "invalid_request"
        /// The request does not fit the context window of any model it may be routed to (400).
        case contextLengthExceeded = "context_length_exceeded"
        /// No API key was given (401).
        case missingAPIKey = "missing_api_key"
        /// The API key is not known (401).
        case invalidAPIKey = "invalid_api_key"
        /// The key may not use this model (403).
        case permissionDenied = "permission_denied"
        /// The key's quota for the current period is used up (403).
        case quotaExhausted = "insufficient_quota"
        /// No such model is configured (404).
        case modelNotFound = "model_not_found"
        /// The request body is larger than allowed (413).
        case requestTooLarge = "request_too_large"
        /// A requests/min or tokens/min limit of the gateway is exceeded (429, with Retry-After).
        case rateLimited = "rate_limit_exceeded"
        /// Every backend that could serve the request is throttling (429, with Retry-After).
        case upstreamRateLimited = "upstream_rate_limited"
        /// An upstream rejected the request with a non-retryable 4xx; status passed through.
        case upstreamRejected = "upstream_rejected"
        /// Upstreams failed and retries or the time budget ran out (502).
        case upstreamFailed = "upstream_error"
        /// The last attempt timed out (504).
        case upstreamTimeout = "upstream_timeout"
        /// Every backend is unhealthy (breakers open) or none is configured (503).
        case noHealthyBackend = "no_healthy_backend"
        /// The client went away (499).
        case cancelled = "cancelled"
        /// The gateway's configuration is invalid (500 at run time; thrown at construction).
        case invalidConfiguration = "invalid_configuration"
        /// A bug or an unexpected state (500).
        case internalError = "internal_error"

        /// The default HTTP status of the code.
        public var defaultHTTPStatus: Int {
            switch self {
            case .invalidRequest, .contextLengthExceeded: return 400
            case .missingAPIKey, .invalidAPIKey: return 401
            case .permissionDenied, .quotaExhausted: return 403
            case .modelNotFound: return 404
            case .requestTooLarge: return 413
            case .rateLimited, .upstreamRateLimited: return 429
            case .upstreamRejected: return 400
            case .upstreamFailed: return 502
            case .upstreamTimeout: return 504
            case .noHealthyBackend: return 503
            case .cancelled: return 499
            case .invalidConfiguration, .internalError: return 500
            }
        }

        /// The OpenAI error `type` string.
        public var openAIType: String {
            switch self {
            case .invalidRequest, .contextLengthExceeded, .modelNotFound, .requestTooLarge, .upstreamRejected:
                return "invalid_request_error"
            case .missingAPIKey, .invalidAPIKey: return "authentication_error"
            case .permissionDenied: return "permission_error"
            case .quotaExhausted: return "insufficient_quota"
            case .rateLimited, .upstreamRateLimited: return "rate_limit_error"
            case .upstreamFailed, .upstreamTimeout, .noHealthyBackend, .cancelled, .invalidConfiguration,
                .internalError:
                return "api_error"
            }
        }
    }

    public var code: Code
    /// The HTTP status to answer with (``Code/defaultHTTPStatus`` unless an upstream's status is passed through).
    public var httpStatus: Int
    /// A sentence that says what was wrong and what to do. Never contains prompt text or key material.
    public var message: String
    /// The request member at fault (`messages`, `model`, …), when there is one.
    public var param: String?
    /// How long the client should wait before retrying (429 and some 503).
    public var retryAfter: Duration?
    /// The gateway's request id.
    public var requestID: String?
    /// The last upstream failure behind this error, when there was one.
    public var upstream: UpstreamError?

    public init(
        _ code: Code, _ message: String, httpStatus: Int? = nil, param: String? = nil,
        retryAfter: Duration? = nil, requestID: String? = nil, upstream: UpstreamError? = nil
    ) {
        self.code = code
        self.message = message
        self.httpStatus = httpStatus ?? code.defaultHTTPStatus
        self.param = param
        self.retryAfter = retryAfter
        self.requestID = requestID
        self.upstream = upstream
    }

    /// The OpenAI `type` string.
    public var type: String { code.openAIType }

    /// The OpenAI-style error body to send.
    public var body: OpenAIErrorBody {
        OpenAIErrorBody(error: .init(message: message, type: type, param: param, code: code.rawValue))
    }

    /// The `Retry-After` header value (whole seconds, rounded up so a client never retries early).
    public var retryAfterHeaderSeconds: Int? {
        guard let retryAfter else { return nil }
        return Int(retryAfter.secondsDouble.rounded(.up))
    }

    /// The `retry-after-ms` header value (milliseconds, rounded up).
    public var retryAfterHeaderMilliseconds: Int? {
        guard let retryAfter else { return nil }
        return Int((retryAfter.secondsDouble * 1000).rounded(.up))
    }

    public var description: String {
        "\(code.rawValue) (\(httpStatus)): \(message)" + (requestID.map { " [request \($0)]" } ?? "")
    }

    func with(requestID: String) -> RoutingError {
        var copy = self
        copy.requestID = requestID
        return copy
    }
}

extension Duration {
    /// The duration in seconds as a `Double`.
    public var secondsDouble: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }

    /// A duration from fractional seconds (clamped at zero; non-finite values give zero).
    public static func seconds(double value: Double) -> Duration {
        guard value.isFinite, value > 0 else { return .zero }
        return .nanoseconds(Int64((value * 1e9).rounded(.up)))
    }
}
