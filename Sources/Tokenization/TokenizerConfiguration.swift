/// Everything a ``Tokenizer`` needs, as plain values: the vocabulary, its token types, the BPE merges
/// or SentencePiece scores, the special token ids and the flags that say when to add them.
///
/// The fields mirror the `tokenizer.ggml.*` keys of a GGUF file, so an adapter that reads a model file
/// fills one of these and this module never touches the file itself:
///
/// | Field | GGUF key |
/// |---|---|
/// | ``model`` | `tokenizer.ggml.model` (`gpt2` or `llama`) |
/// | ``preTokenizer`` | `tokenizer.ggml.pre` |
/// | ``tokens`` | `tokenizer.ggml.tokens` |
/// | ``tokenTypes`` | `tokenizer.ggml.token_type` |
/// | ``merges`` | `tokenizer.ggml.merges` |
/// | ``scores`` | `tokenizer.ggml.scores` |
/// | ``bosTokenID`` … ``paddingTokenID`` | `tokenizer.ggml.bos_token_id` … `padding_token_id` |
/// | ``endOfTurnTokenIDs`` | `tokenizer.ggml.eot_token_id`, `eom_token_id` |
/// | ``addBOS``, ``addEOS``, ``addSpacePrefix`` | `tokenizer.ggml.add_bos_token`, `add_eos_token`, `add_space_prefix` |
///
/// Defaults follow llama.cpp where the file says nothing: a BPE vocabulary adds no BOS and no space
/// prefix; a SentencePiece one adds BOS and a space prefix (use ``defaults(for:)``
/// to get the flags llama.cpp assumes for a model kind).
public struct TokenizerConfiguration: Sendable, Hashable {
    /// The tokenizer algorithm, named as `tokenizer.ggml.model` names it.
    public enum Model: String, Sendable, Hashable, CaseIterable {
        /// GPT-2 style byte-level BPE: a pre-tokenizer regex splits the text into words, each word's
        /// bytes are mapped to printable characters and merged by rank.
        case bytePairEncoding = "gpt2"
        /// SentencePiece (LLaMA 1/2, Mistral v0.1, …): spaces become `▁`, adjacent pieces merge by score,
        /// characters missing from the vocabulary fall back to `<0xNN>` byte tokens.
        case sentencePiece = "llama"
    }

    /// The values of llama.cpp's `tokenizer.ggml.token_type` (its `LLAMA_TOKEN_TYPE_*`).
    public enum TokenType: Int32, Sendable, Hashable, CaseIterable {
        case undefined = 0
        case normal = 1
        case unknown = 2
        /// Control tokens (`<|im_start|>`, `<s>`): not text; hidden when decoding with `skipSpecialTokens`.
        case control = 3
        /// User-defined tokens: always split out of the input before BPE and always decoded as their text.
        case userDefined = 4
        case unused = 5
        /// `<0xNN>` byte tokens.
        case byte = 6
    }

    public var model: Model
    /// The pre-tokenizer name (`tokenizer.ggml.pre`), which picks the word-splitting regexes of a BPE
    /// vocabulary. ``Tokenizer/supportedPreTokenizers`` lists the names this module knows; an empty
    /// string means `default`, as in llama.cpp. Ignored for SentencePiece.
    public var preTokenizer: String
    /// Token texts, indexed by id. BPE vocabularies hold byte-level text (`Ġthe`), SentencePiece ones `▁the`.
    public var tokens: [String]
    /// One ``TokenType`` raw value per token; empty means every token is normal.
    public var tokenTypes: [Int32]
    /// BPE merges as `"left right"` strings; a merge's rank is its index. Unused for SentencePiece.
    public var merges: [String]
    /// SentencePiece piece scores, one per token (higher merges first). May be empty for BPE.
    public var scores: [Float]
    public var bosTokenID: Int?
    public var eosTokenID: Int?
    public var unknownTokenID: Int?
    public var paddingTokenID: Int?
    /// Ids besides ``eosTokenID`` that end generation (end of turn, end of message).
    public var endOfTurnTokenIDs: [Int]
    /// Prepend ``bosTokenID`` when encoding with `addSpecialTokens`.
    public var addBOS: Bool
    /// Append ``eosTokenID`` when encoding with `addSpecialTokens`.
    public var addEOS: Bool
    /// SentencePiece only: prepend a space to each text fragment that starts the input or follows a
    /// special token (llama.cpp's `add_space_prefix`); decoding drops that one space again.
    public var addSpacePrefix: Bool

    public init(
        model: Model,
        preTokenizer: String = "default",
        tokens: [String],
        tokenTypes: [Int32] = [],
        merges: [String] = [],
        scores: [Float] = [],
        bosTokenID: Int? = nil,
        eosTokenID: Int? = nil,
        unknownTokenID: Int? = nil,
        paddingTokenID: Int? = nil,
        endOfTurnTokenIDs: [Int] = [],
        addBOS: Bool? = nil,
        addEOS: Bool = false,
        addSpacePrefix: Bool? = nil
    ) {
        self.model = model
        self.preTokenizer = preTokenizer
        self.tokens = tokens
        self.tokenTypes = tokenTypes
        self.merges = merges
        self.scores = scores
        self.bosTokenID = bosTokenID
        self.eosTokenID = eosTokenID
        self.unknownTokenID = unknownTokenID
        self.paddingTokenID = paddingTokenID
        self.endOfTurnTokenIDs = endOfTurnTokenIDs
        let defaults = Self.defaults(for: model)
        self.addBOS = addBOS ?? defaults.addBOS
        self.addEOS = addEOS
        self.addSpacePrefix = addSpacePrefix ?? defaults.addSpacePrefix
    }

    /// The flags llama.cpp assumes for a model kind when the file does not set them:
    /// SentencePiece adds BOS and a space prefix, BPE adds neither.
    public static func defaults(for model: Model) -> (addBOS: Bool, addSpacePrefix: Bool) {
        switch model {
        case .bytePairEncoding: (false, false)
        case .sentencePiece: (true, true)
        }
    }
}
