/// Turns text into token ids and back, exactly as llama.cpp does for a GGUF model's vocabulary:
/// byte-level BPE (`tokenizer.ggml.model = gpt2`) or SentencePiece (`llama`).
///
/// ```swift
/// let tokenizer = try Tokenizer(configuration)
/// let ids = tokenizer.encode("<|im_start|>user\nHi<|im_end|>")   // [1, 4093, 198, 15283, 2]
/// let text = try tokenizer.decode(ids)                              // the input again
/// ```
///
/// Encoding follows `llama_tokenize`: special tokens are split out of the text first (longest text
/// first, llama.cpp's `tokenizer_st_partition`), the remaining fragments are pre-tokenized into words
/// by the regexes of ``TokenizerConfiguration/preTokenizer`` and each word is merged by BPE rank; or,
/// for SentencePiece, spaces become `▁` and pieces merge by score.
///
/// `Tokenizer` is `Sendable` because every stored property is an immutable `let` of `Sendable` value
/// types, fixed in `init`; encoding and decoding only read them and keep their working buffers on
/// the stack of the call, so any number of tasks may share one tokenizer.
public final class Tokenizer: Sendable {
    public let configuration: TokenizerConfiguration

    private enum Engine: Sendable {
        case bytePair(BytePairEncoder, PreTokenizer)
        case sentencePiece(SentencePieceEncoder)
    }

    private let engine: Engine
    private let vocabulary: VocabularyIndex
    /// ``TokenizerConfiguration/TokenType`` raw value per token (unknown values as `undefined`).
    private let types: [UInt8]
    /// What each token decodes to, special tokens as their text (llama.cpp's `cache_token_to_piece`).
    private let pieces: [[UInt8]]
    /// Special tokens to split out of the input, longest text first: (id, text, needs `parseSpecialTokens`).
    private let specialTokens: [(id: Int, text: [UInt8], parsedOnRequest: Bool)]
    private let endOfGeneration: Set<Int>
    /// SentencePiece with a space prefix: decoding drops the one space encoding added per fragment.
    private let stripsSpacePrefix: Bool

    /// The pre-tokenizer names ``TokenizerConfiguration/preTokenizer`` may hold.
    public static var supportedPreTokenizers: [String] { PreTokenizer.supportedNames }

    public init(_ configuration: TokenizerConfiguration) throws(TokenizationError) {
        let count = configuration.tokens.count
        guard count > 0 else {
            throw TokenizationError(.invalidVocabulary, "the vocabulary is empty; tokenizer.ggml.tokens must list at least one token")
        }
        guard configuration.tokenTypes.isEmpty || configuration.tokenTypes.count == count else {
            throw TokenizationError(
                .invalidVocabulary,
                "there are \(configuration.tokenTypes.count) token types for \(count) tokens; tokenizer.ggml.token_type must have one entry per token (or be absent)")
        }
        if configuration.model == .sentencePiece, !configuration.scores.isEmpty, configuration.scores.count != count {
            throw TokenizationError(
                .invalidVocabulary,
                "there are \(configuration.scores.count) scores for \(count) tokens; tokenizer.ggml.scores must have one entry per token (or be absent)")
        }
        for (name, id) in [("bos", configuration.bosTokenID), ("eos", configuration.eosTokenID), ("unknown", configuration.unknownTokenID), ("padding", configuration.paddingTokenID)] {
            if let id, !(0..<count).contains(id) {
                throw TokenizationError(
                    .invalidVocabulary,
                    "the \(name) token id \(id) is outside the vocabulary of \(count) tokens; fix or drop tokenizer.ggml.\(name)_token_id",
                    underlying: "\(name)_token_id = \(id)")
            }
        }
        for id in configuration.endOfTurnTokenIDs where !(0..<count).contains(id) {
            throw TokenizationError(
                .invalidVocabulary, "end-of-turn token id \(id) is outside the vocabulary of \(count) tokens; drop it from endOfTurnTokenIDs",
                underlying: "end-of-turn id = \(id)")
        }
        if configuration.addBOS, configuration.bosTokenID == nil {
            throw TokenizationError(.invalidVocabulary, "addBOS is true but there is no BOS token id; set tokenizer.ggml.bos_token_id or add_bos_token = false")
        }
        if configuration.addEOS, configuration.eosTokenID == nil {
            throw TokenizationError(.invalidVocabulary, "addEOS is true but there is no EOS token id; set tokenizer.ggml.eos_token_id or add_eos_token = false")
        }

        // llama.cpp renames empty tokens so that every text stays unique and non-empty
        let texts: [[UInt8]] = configuration.tokens.enumerated().map { id, text in
            text.isEmpty ? Array("[EMPTY_\(id)]".utf8) : Array(text.utf8)
        }
        let vocabulary = try VocabularyIndex(tokens: texts)
        let types: [UInt8] = configuration.tokenTypes.isEmpty
            ? [UInt8](repeating: UInt8(TokenizerConfiguration.TokenType.normal.rawValue), count: count)
            : configuration.tokenTypes.map { (0...6).contains($0) ? UInt8($0) : 0 }

        switch configuration.model {
        case .bytePairEncoding:
            let pre = try PreTokenizer(named: configuration.preTokenizer)
            let encoder = try BytePairEncoder(vocabulary: vocabulary, merges: configuration.merges)
            engine = .bytePair(encoder, pre)
        case .sentencePiece:
            let scores = configuration.scores.isEmpty ? [Float](repeating: 0, count: count) : configuration.scores
            engine = .sentencePiece(SentencePieceEncoder(vocabulary: vocabulary, scores: scores, unknownTokenID: configuration.unknownTokenID))
        }

        self.configuration = configuration
        self.vocabulary = vocabulary
        self.types = types
        self.pieces = texts.enumerated().map { id, text in
            Self.piece(text: text, type: types[id], model: configuration.model)
        }
        let control = UInt8(TokenizerConfiguration.TokenType.control.rawValue)
        let user = UInt8(TokenizerConfiguration.TokenType.userDefined.rawValue)
        let unknown = UInt8(TokenizerConfiguration.TokenType.unknown.rawValue)
        self.specialTokens = texts.enumerated()
            .filter { types[$0.offset] == control || types[$0.offset] == user || types[$0.offset] == unknown }
            .map { (id: $0.offset, text: $0.element, parsedOnRequest: types[$0.offset] != user) }
            .sorted { $0.text.count != $1.text.count ? $0.text.count > $1.text.count : $0.id < $1.id }
        var endOfGeneration = Set(configuration.endOfTurnTokenIDs)
        if let eos = configuration.eosTokenID { endOfGeneration.insert(eos) }
        self.endOfGeneration = endOfGeneration
        self.stripsSpacePrefix = configuration.model == .sentencePiece && configuration.addSpacePrefix
    }

    /// The bytes a token stands for (llama.cpp's `token_to_piece` with `special = true`).
    private static func piece(text: [UInt8], type: UInt8, model: TokenizerConfiguration.Model) -> [UInt8] {
        switch TokenizerConfiguration.TokenType(rawValue: Int32(type)) ?? .undefined {
        case .control, .userDefined, .unknown:
            return text
        case .byte:
            // `<0xNN>`
            if text.count == 6, let value = UInt8(String(decoding: text[3..<5], as: UTF8.self), radix: 16) { return [value] }
            return text
        case .normal:
            switch model {
            case .sentencePiece:
                var result: [UInt8] = []
                result.reserveCapacity(text.count)
                var i = 0
                while i < text.count {
                    if i + 2 < text.count, text[i] == 0xE2, text[i + 1] == 0x96, text[i + 2] == 0x81 {  // ▁
                        result.append(0x20)
                        i += 3
                    } else {
                        result.append(text[i])
                        i += 1
                    }
                }
                return result
            case .bytePairEncoding:
                var result: [UInt8] = []
                result.reserveCapacity(text.count)
                for scalar in String(decoding: text, as: UTF8.self).unicodeScalars {
                    let v = Int(scalar.value)
                    if v < ByteLevel.byteForScalar.count, ByteLevel.byteForScalar[v] >= 0 {
                        result.append(UInt8(ByteLevel.byteForScalar[v]))
                    } else {
                        result.append(contentsOf: String(scalar).utf8)  // not a byte-level character: kept as text
                    }
                }
                return result
            }
        case .unused, .undefined:
            return []  // llama.cpp renders these as nothing
        }
    }

    // MARK: - Vocabulary

    public var vocabularySize: Int { types.count }

    /// Control, user-defined and unknown tokens.
    public func isSpecial(_ id: Int) -> Bool {
        guard types.indices.contains(id) else { return false }
        let t = types[id]
        return t == 3 || t == 4 || t == 2
    }

    /// Whether `id` is the EOS token or one of ``TokenizerConfiguration/endOfTurnTokenIDs``.
    public func isEndOfGeneration(_ id: Int) -> Bool { endOfGeneration.contains(id) }

    /// The id of the token whose vocabulary text is exactly `tokenText` (`"Ġthe"`, `"<|im_end|>"`).
    public func id(of tokenText: String) -> Int? {
        vocabulary.id(of: Array(tokenText.utf8)).map(Int.init)
    }

    /// The raw bytes token `id` stands for: the byte-level map undone for BPE, `▁` as a space and
    /// `<0xNN>` as its byte for SentencePiece, special tokens as their text.
    public func bytes(of id: Int) throws(TokenizationError) -> [UInt8] {
        try checked(id)
        return pieces[id]
    }

    @inline(__always)
    private func checked(_ id: Int) throws(TokenizationError) {
        guard pieces.indices.contains(id) else {
            throw TokenizationError(
                .unknownToken, "token id \(id) is outside the vocabulary of \(pieces.count) tokens; was it produced by another model?",
                underlying: "id \(id)")
        }
    }

    // MARK: - Encoding

    /// Encodes `text`.
    ///
    /// - Parameters:
    ///   - addSpecialTokens: add BOS and EOS as ``TokenizerConfiguration/addBOS`` and
    ///     ``TokenizerConfiguration/addEOS`` say.
    ///   - parseSpecialTokens: turn the texts of control tokens (and the unknown token) found in
    ///     `text` into their ids. User-defined tokens are split out either way, as in llama.cpp.
    public func encode(_ text: String, addSpecialTokens: Bool = true, parseSpecialTokens: Bool = true) -> [Int] {
        var output: [Int] = []
        output.reserveCapacity(text.utf8.count / 3 + 2)
        if addSpecialTokens, configuration.addBOS, let bos = configuration.bosTokenID { output.append(bos) }
        let bytes = Array(text.utf8)
        let fragments = partition(bytes, parseSpecialTokens: parseSpecialTokens)
        bytes.withUnsafeBufferPointer { buffer in
            switch engine {
            case let .bytePair(encoder, pre):
                var scratch = EncodingScratch()
                for fragment in fragments {
                    switch fragment {
                    case let .token(id): output.append(id)
                    case let .text(range): encodeBytePair(buffer, range, encoder, pre, &scratch, &output)
                    }
                }
            case let .sentencePiece(encoder):
                var previousWasSpecial = true
                for fragment in fragments {
                    switch fragment {
                    case let .token(id):
                        output.append(id)
                        previousWasSpecial = true
                    case let .text(range):
                        var escaped: [UInt8] = []
                        escaped.reserveCapacity(range.count + 8)
                        if configuration.addSpacePrefix && previousWasSpecial { escaped.append(contentsOf: [0xE2, 0x96, 0x81]) }
                        for byte in buffer[range] {
                            if byte == 0x20 { escaped.append(contentsOf: [0xE2, 0x96, 0x81]) } else { escaped.append(byte) }
                        }
                        encoder.encode(escaped, vocabulary: vocabulary, into: &output)
                        previousWasSpecial = false
                    }
                }
            }
        }
        if addSpecialTokens, configuration.addEOS, let eos = configuration.eosTokenID { output.append(eos) }
        return output
    }

    private enum Fragment {
        case token(Int)
        case text(Range<Int>)
    }

    /// llama.cpp's `tokenizer_st_partition`: for each special token, longest first, every text fragment
    /// is split at each occurrence of it, left to right.
    private func partition(_ bytes: [UInt8], parseSpecialTokens: Bool) -> [Fragment] {
        guard !bytes.isEmpty else { return [] }
        var fragments: [Fragment] = [.text(0..<bytes.count)]
        bytes.withUnsafeBufferPointer { text in
            for special in specialTokens where parseSpecialTokens || !special.parsedOnRequest {
                let needle = special.text
                guard !needle.isEmpty, needle.count <= text.count else { continue }
                var split: [Fragment]? = nil
                for (index, fragment) in fragments.enumerated() {
                    guard case let .text(range) = fragment else {
                        split?.append(fragment)
                        continue
                    }
                    var start = range.lowerBound
                    var searchFrom = range.lowerBound
                    var pieces: [Fragment] = []
                    while let match = find(needle, in: text, from: searchFrom, before: range.upperBound) {
                        if match > start { pieces.append(.text(start..<match)) }
                        pieces.append(.token(special.id))
                        start = match + needle.count
                        searchFrom = start
                    }
                    if pieces.isEmpty {
                        split?.append(fragment)
                        continue
                    }
                    if start < range.upperBound { pieces.append(.text(start..<range.upperBound)) }
                    if split == nil { split = Array(fragments[..<index]) }
                    split!.append(contentsOf: pieces)
                }
                if let split { fragments = split }
            }
        }
        return fragments
    }

    private func find(_ needle: [UInt8], in text: UnsafeBufferPointer<UInt8>, from: Int, before end: Int) -> Int? {
        let first = needle[0]
        let last = end - needle.count
        guard from <= last else { return nil }
        var i = from
        while i <= last {
            if text[i] == first {
                var k = 1
                while k < needle.count, text[i + k] == needle[k] { k += 1 }
                if k == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    private struct EncodingScratch {
        var scalars: [UInt32] = []
        var offsets: [Int] = []
        var word: [Int32] = []
        var spelled: [UInt8] = []
    }

    private func encodeBytePair(
        _ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ encoder: BytePairEncoder, _ pre: PreTokenizer,
        _ scratch: inout EncodingScratch, _ output: inout [Int]
    ) {
        // decode the (valid) UTF-8 into scalars, remembering where each starts
        scratch.scalars.removeAll(keepingCapacity: true)
        scratch.offsets.removeAll(keepingCapacity: true)
        var i = range.lowerBound
        while i < range.upperBound {
            let b0 = bytes[i]
            let length = min(utf8Length(b0), range.upperBound - i)
            var value: UInt32
            switch length {
            case 2: value = UInt32(b0 & 0x1F) << 6 | UInt32(bytes[i + 1] & 0x3F)
            case 3: value = UInt32(b0 & 0x0F) << 12 | UInt32(bytes[i + 1] & 0x3F) << 6 | UInt32(bytes[i + 2] & 0x3F)
            case 4: value = UInt32(b0 & 0x07) << 18 | UInt32(bytes[i + 1] & 0x3F) << 12 | UInt32(bytes[i + 2] & 0x3F) << 6 | UInt32(bytes[i + 3] & 0x3F)
            default: value = UInt32(b0)
            }
            scratch.scalars.append(value)
            scratch.offsets.append(i)
            i += length
        }
        scratch.offsets.append(range.upperBound)
        let words = scratch.scalars.withUnsafeBufferPointer { pre.split($0) }
        for word in words {
            let wordBytes = UnsafeBufferPointer(rebasing: bytes[scratch.offsets[word.lowerBound]..<scratch.offsets[word.upperBound]])
            if pre.ignoresMerges {
                scratch.spelled.removeAll(keepingCapacity: true)
                for byte in wordBytes { scratch.spelled.append(contentsOf: ByteLevel.utf8ForByte[Int(byte)]) }
                if let id = vocabulary.id(of: scratch.spelled) {
                    output.append(Int(id))
                    continue
                }
            }
            encoder.encode(word: wordBytes, into: &output, scratch: &scratch.word)
        }
    }

    // MARK: - Decoding

    /// Decodes `ids` to text. Bytes that do not form valid UTF-8 become U+FFFD, one per maximal
    /// invalid subsequence (as Hugging Face's `from_utf8_lossy` and llama.cpp's callers do).
    ///
    /// - Parameter skipSpecialTokens: leave out control and unknown tokens (llama.cpp's
    ///   `special = false`); user-defined tokens are text and stay.
    /// - Throws: ``TokenizationError/Code/unknownToken`` for an id outside the vocabulary.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) throws(TokenizationError) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        var atFragmentStart = true
        for id in ids {
            try appendPiece(of: id, skipSpecialTokens: skipSpecialTokens, atFragmentStart: &atFragmentStart, to: &bytes)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends what `id` decodes to. For SentencePiece with ``TokenizerConfiguration/addSpacePrefix``
    /// the space that encoding put before each text fragment (at the start and after every special
    /// token) is dropped, so `decode(encode(s)) == s`.
    func appendPiece(of id: Int, skipSpecialTokens: Bool, atFragmentStart: inout Bool, to bytes: inout [UInt8]) throws(TokenizationError) {
        try checked(id)
        let type = types[id]
        if type == 3 || type == 4 || type == 2 {
            atFragmentStart = true
            if skipSpecialTokens && type != 4 { return }
            bytes.append(contentsOf: pieces[id])
            return
        }
        let piece = pieces[id]
        if stripsSpacePrefix, atFragmentStart, piece.first == 0x20 {
            bytes.append(contentsOf: piece.dropFirst())
        } else {
            bytes.append(contentsOf: piece)
        }
        if !piece.isEmpty { atFragmentStart = false }
    }

    /// A decoder for ids that arrive one at a time, which returns text only once it is complete UTF-8.
    public func makeStreamingDecoder(skipSpecialTokens: Bool = false) -> StreamingDecoder {
        StreamingDecoder(tokenizer: self, skipSpecialTokens: skipSpecialTokens)
    }
}

extension TokenizerConfiguration.Model {
    /// The model kind for a `tokenizer.ggml.model` value.
    /// - Throws: ``TokenizationError/Code/unsupportedTokenizer`` naming the value and the supported ones.
    public static func named(_ name: String) throws(TokenizationError) -> Self {
        guard let model = Self(rawValue: name) else {
            throw TokenizationError(
                .unsupportedTokenizer,
                "tokenizer model '\(name)' (tokenizer.ggml.model) is not implemented; supported: \(allCases.map(\.rawValue).joined(separator: ", ")) (byte-level BPE and SentencePiece)",
                underlying: "tokenizer.ggml.model = \(name)")
        }
        return model
    }
}
