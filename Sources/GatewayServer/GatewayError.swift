/// The one error type of `GatewayServer` for what is not a per-request routing
/// failure: configuration problems, malformed upstream streams, misuse of the
/// mock upstream or the load generator, and failures to start or stop a server.
///
/// Errors a client causes on a request (bad JSON, missing key, unknown model,
/// rate limits) are `RoutingError`s from the Routing module, so the library and
/// the server report them with one set of codes and OpenAI-style bodies.
public struct GatewayError: Error, Sendable, CustomStringConvertible {
    /// Stable, machine-readable error codes.
    public enum Code: String, Sendable, CaseIterable {
        /// The configuration file could not be read or parsed, or a value in it is invalid.
        case invalidConfiguration = "invalid_configuration"
        /// A server-sent-event stream was malformed or exceeded its size limit.
        case malformedStream = "malformed_stream"
        /// Invalid arguments to the load generator or mock upstream.
        case invalidArgument = "invalid_argument"
        /// A server could not bind or start (port in use, bad address).
        case serverStartFailed = "server_start_failed"
        /// An internal invariant failed; please report it.
        case internalError = "internal_error"
    }

    public var code: Code
    public var message: String
    /// The underlying error, when this one wraps another.
    public var underlying: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        var text = "GatewayError.\(code.rawValue): \(message)"
        if let underlying { text += " (underlying: \(underlying))" }
        return text
    }
}
