/// The one error type of the Tokenization module.
///
/// Every error carries a stable ``Code`` a program can switch on and a human
/// ``message`` that says what was wrong and what to do about it.
public struct TokenizationError: Error, Sendable, CustomStringConvertible, Equatable {
    /// Stable, machine-readable error codes.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The tokenizer description is inconsistent or incomplete (missing vocabulary, a merge naming an unknown token, counts that disagree).
        case invalidVocabulary
        /// The tokenizer model or pre-tokenizer named by the file is not one this module implements.
        case unsupportedTokenizer
        /// A token id is outside the vocabulary.
        case unknownToken
        /// A chat template uses syntax or a feature this module's interpreter does not implement.
        case unsupportedTemplate
        /// A chat template is not well formed (unbalanced tags, an unexpected token).
        case templateSyntax
        /// Rendering a chat template failed (an undefined variable used strictly, `raise_exception`, a type error).
        case templateRender
        /// The messages given to a chat template are invalid (an empty list, a missing role).
        case invalidMessages
    }

    public let code: Code
    public let message: String
    /// The underlying cause, when there is one (a position in a template, the offending value).
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
