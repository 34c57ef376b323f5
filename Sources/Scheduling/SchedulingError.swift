/// The one error type of the Scheduling module.
///
/// Each error carries a stable ``Code`` a program can switch on and a human
/// ``message`` that says what was wrong and what to do about it. Parse errors
/// from trace and timing files name the file line (1-based) in ``line``.
public struct SchedulingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Stable, machine-readable error codes.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// A numeric argument is out of range (zero or negative rate, NaN, absurd size).
        case invalidArgument
        /// A configuration is inconsistent (e.g. a token budget smaller than the block size).
        case invalidConfiguration
        /// A trace or timing file line could not be parsed.
        case malformedInput
        /// A file could not be read.
        case fileUnreadable
        /// A fit had too few or degenerate samples.
        case fitFailed
        /// A catalog name (model, GPU) is unknown to the execution model.
        case unknownName
        /// The simulated system could not make progress (should never happen; reported instead of hanging).
        case noProgress
    }

    public let code: Code
    public let message: String
    /// The 1-based line of the input file, for ``Code/malformedInput``.
    public let line: Int?

    public init(_ code: Code, _ message: String, line: Int? = nil) {
        self.code = code
        self.message = message
        self.line = line
    }

    public var description: String {
        if let line { return "\(code.rawValue): line \(line): \(message)" }
        return "\(code.rawValue): \(message)"
    }

    static func invalid(_ what: String, _ value: Double, expected: String) -> SchedulingError {
        SchedulingError(.invalidArgument, "\(what) is \(value); expected \(expected)")
    }
}

@inline(__always)
func requireFinite(_ value: Double, _ what: String, positive: Bool = false, nonNegative: Bool = false) throws {
    guard value.isFinite else { throw SchedulingError.invalid(what, value, expected: "a finite number") }
    if positive && !(value > 0) { throw SchedulingError.invalid(what, value, expected: "a number > 0") }
    if nonNegative && value < 0 { throw SchedulingError.invalid(what, value, expected: "a number >= 0") }
}
