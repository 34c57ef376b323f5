/// The one error type of KVPaging.
///
/// Programming errors and bad input (unknown or duplicate sequence ids,
/// double frees, lengths past the configured maximum, malformed block tables,
/// wrong tensor shapes) throw a `KVPagingError`. Running out of KV memory is
/// *not* an error: operations that may need blocks return an outcome enum
/// (``AdmissionOutcome``, ``AppendOutcome``, ``SwapOutcome``) whose capacity
/// case a scheduler acts on (wait, preempt, swap).
public struct KVPagingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Stable, machine-readable error codes.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// A configuration value is out of range (zero blocks, block size 0, …).
        case invalidConfiguration
        /// An argument is out of range (empty prompt, negative count, …).
        case invalidArgument
        /// The sequence id is not held by this allocator.
        case unknownSequence
        /// The sequence id is already held by this allocator.
        case duplicateSequence
        /// The sequence (or block) was already freed.
        case doubleFree
        /// The sequence would grow past the configured maximum length.
        case exceedsMaxLength
        /// The operation needs the sequence on the device, but it is swapped out to host memory.
        case sequenceSwappedOut
        /// The operation needs a swapped-out sequence, but the sequence is on the device.
        case sequenceNotSwappedOut
        /// A tensor or block table has the wrong shape or refers to blocks outside the storage.
        case shapeMismatch
        /// A value that must be finite is NaN or infinite.
        case nonFinite
        /// The operation is not supported by this allocator (e.g. swapping with the contiguous baseline).
        case unsupported
        /// No usable compute device (e.g. no OpenCL platform) for a device kernel.
        case deviceUnavailable
        /// A device call failed (OpenCL status, program build, allocation).
        case deviceFailure
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
