/// The one error type of the Quantization module.
///
/// Every error carries a stable ``Code`` a program can switch on and a human
/// ``message`` that says what was wrong and what to do about it.
public struct QuantizationError: Error, Sendable, CustomStringConvertible, Equatable {
    /// Stable, machine-readable error codes.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// A weight is NaN or infinite (the message names the tensor and the index).
        case nonFinite
        /// The tensor shape does not suit the format (rank, empty, columns not a multiple of the block size).
        case invalidShape
        /// A format name or parameter is not supported (unknown name, group size not 32/64/128).
        case unsupportedFormat
        /// A per-block scale does not fit the format's Float16 scale (weights too large).
        case scaleOverflow
        /// A byte buffer has the wrong size or contents for its declared format.
        case invalidData
        /// A GGUF file does not start with the `GGUF` magic.
        case badMagic
        /// A GGUF file has a version other than 3 (or 2, which shares the layout).
        case unsupportedVersion
        /// A GGUF file ends before a structure it declares.
        case truncated
        /// An offset, size or dimension in a GGUF file points outside the file or overflows.
        case outOfBounds
        /// A count in a GGUF file is larger than the file could possibly hold.
        case absurdCount
        /// A GGUF string is not valid UTF-8 or is too long.
        case badString
        /// A GGUF metadata value type or tensor type is unknown or not supported here.
        case unsupportedType
        /// Two tensors or keys share a name, or a required key is missing or mistyped.
        case invalidMetadata
        /// Reading or writing a file failed.
        case io
        /// No suitable compute device (e.g. no OpenCL platform) exists on this machine.
        case deviceUnavailable
        /// A device call failed (an OpenCL status, a kernel build error).
        case deviceFailure
    }

    public let code: Code
    public let message: String
    /// The underlying cause, when there is one (an `errno` description, a byte offset).
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
}
