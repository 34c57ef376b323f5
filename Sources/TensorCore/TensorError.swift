/// The one error type of TensorCore and its backends.
///
/// Each error has a stable ``Code`` a program can switch on, a human
/// ``message`` that says what was wrong and what to do, and optionally the
/// underlying cause (for example an OpenCL status).
public struct TensorError: Error, Sendable, CustomStringConvertible, Equatable {
    /// Stable, machine-readable error codes.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// Operand shapes do not agree (e.g. inner dimensions of a matmul).
        case shapeMismatch
        /// A tensor has the wrong number of dimensions for the operation.
        case invalidRank
        /// A scalar argument is out of range (zero size, odd head dim, ...).
        case invalidArgument
        /// A value that must be finite is NaN or infinite.
        case nonFinite
        /// The requested backend or device does not exist on this machine.
        case backendUnavailable
        /// A device call failed (OpenCL status, allocation, build error).
        case deviceFailure
        /// A device or host allocation could not be satisfied.
        case outOfMemory
    }

    public let code: Code
    public let message: String
    /// The failing call or underlying cause, when there is one (e.g. `clEnqueueNDRangeKernel: CL_OUT_OF_RESOURCES`).
    public let underlying: String?

    public init(_ code: Code, _ message: String, underlying: String? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        if let underlying { return "\(code.rawValue): \(message) (\(underlying))" }
        return "\(code.rawValue): \(message)"
    }

    // MARK: Convenience constructors used by every backend

    package static func shapeMismatch(_ op: String, _ detail: String) -> TensorError {
        TensorError(.shapeMismatch, "\(op): \(detail)")
    }

    package static func rank(_ op: String, _ name: String, _ shape: Shape, expected: String) -> TensorError {
        TensorError(.invalidRank, "\(op): \(name) has shape \(shape) (rank \(shape.rank)); expected \(expected)")
    }
}
