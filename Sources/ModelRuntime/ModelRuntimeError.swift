/// The one error type of the ModelRuntime module.
///
/// Every error carries a stable ``Code`` a program can switch on and a human
/// ``message`` that says what was wrong and what to do about it.
public struct ModelRuntimeError: Error, Sendable, CustomStringConvertible, Equatable {
    /// Stable, machine-readable error codes.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The file names an architecture this runtime does not implement.
        case unsupportedArchitecture
        /// A required configuration value is missing, mistyped or out of range.
        case invalidConfiguration
        /// A tensor the architecture needs is absent from the file.
        case missingTensor
        /// A tensor has a shape other than the configuration implies.
        case tensorShape
        /// A tensor is stored in a type this runtime cannot use for its role.
        case unsupportedTensorType
        /// A weight file (GGUF, safetensors, config.json) is truncated, corrupt or hostile.
        case invalidFile
        /// Reading a file failed.
        case io
        /// A batch is malformed: empty prompt, a token id outside the vocabulary, positions or block tables that disagree.
        case invalidBatch
        /// A sequence is longer than the model's context or the KV cache's capacity.
        case contextOverflow
        /// The KV cache has no free block for a sequence.
        case outOfMemory
        /// The forward pass produced NaN or Inf (usually a corrupted weight).
        case nonFinite
        /// A sampling parameter is out of range.
        case invalidSampling
        /// A backend or kernel call failed.
        case backend
    }

    public let code: Code
    public let message: String
    /// The underlying cause, when there is one (another module's error, an `errno` description).
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
