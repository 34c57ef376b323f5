import Testing
import Tokenization

/// llama.cpp's SentencePiece algorithm against the `sentencepiece` library on a BPE model trained by
/// Vectors/generate_spm_vectors.py.
@Suite("SentencePiece")
struct SentencePieceTests {
    struct Vectors: Decodable {
        struct Vocabulary: Decodable {
            let tokens: [String]
            let scores: [Float]
            let tokenTypes: [Int32]
            let unknownTokenID: Int
            let bosTokenID: Int
            let eosTokenID: Int
        }
        struct Case: Decodable {
            let text: String
            let ids: [Int]
            let decoded: String
        }
        let versions: [String: String]
        let vocabulary: Vocabulary
        let cases: [Case]
    }

    static func load() throws -> (Tokenizer, Vectors) {
        let vectors = try loadFixture("spm-bpe-vectors", as: Vectors.self)
        let v = vectors.vocabulary
        let configuration = TokenizerConfiguration(
            model: .sentencePiece, tokens: v.tokens, tokenTypes: v.tokenTypes, scores: v.scores,
            bosTokenID: v.bosTokenID, eosTokenID: v.eosTokenID, unknownTokenID: v.unknownTokenID)
        return (try Tokenizer(configuration), vectors)
    }

    @Test("llama.cpp defaults for SentencePiece: BOS and a space prefix")
    func defaults() throws {
        let (tokenizer, _) = try Self.load()
        #expect(tokenizer.configuration.addBOS && tokenizer.configuration.addSpacePrefix && !tokenizer.configuration.addEOS)
    }

    @Test("every string encodes to sentencepiece's ids and decodes to its text")
    func matchesOracle() throws {
        let (tokenizer, vectors) = try Self.load()
        #expect(vectors.cases.count > 1000)
        var mismatches = 0
        for c in vectors.cases {
            let ids = tokenizer.encode(c.text, addSpecialTokens: false, parseSpecialTokens: false)
            if ids != c.ids {
                mismatches += 1
                if mismatches <= 20 { Issue.record("\(show(c.text)): got \(ids), sentencepiece \(c.ids)") }
            }
            let decoded = try tokenizer.decode(c.ids)
            if decoded != c.decoded { Issue.record("decode \(c.ids): got \(show(decoded)), sentencepiece \(show(c.decoded))") }
        }
        #expect(mismatches == 0, "\(mismatches) of \(vectors.cases.count) differ (sentencepiece \(vectors.versions["sentencepiece"] ?? "?"))")
    }

    @Test("BOS is added, and a special token starts a new space-prefixed fragment as in llama.cpp")
    func specialTokens() throws {
        let (tokenizer, vectors) = try Self.load()
        func oracle(_ text: String) throws -> [Int] { try #require(vectors.cases.first { $0.text == text }).ids }
        #expect(try tokenizer.encode("Hello") == [1] + oracle("Hello"))
        // "Hello<s> world" is the fragments "Hello", <s>, " world"; each text fragment gets the ▁ prefix
        let ids = tokenizer.encode("Hello<s> world", addSpecialTokens: false)
        #expect(try ids == oracle("Hello") + [1] + oracle(" world"))
        #expect(try tokenizer.decode(ids) == "Hello<s> world")
        #expect(try tokenizer.decode([1] + oracle("Hello"), skipSpecialTokens: true) == "Hello")
        // with parsing off, "<s>" is plain text
        #expect(try tokenizer.encode("a<s>b", addSpecialTokens: false, parseSpecialTokens: false) == oracle("a<s>b"))
        #expect(try tokenizer.bytes(of: tokenizer.id(of: "<0x41>")!) == [0x41])
        #expect(try tokenizer.bytes(of: tokenizer.id(of: "▁the")!) == Array(" the".utf8))
    }

    @Test("equal scores merge the leftmost pair first; a missing character falls back to bytes, else <unk>")
    func tiesAndFallback() throws {
        let tokens = ["<unk>", "<s>", "</s>", "a", "aa", "b", "<0x62>", "<0x63>"]
        let types: [Int32] = [2, 3, 3, 1, 1, 1, 6, 6]
        let configuration = TokenizerConfiguration(
            model: .sentencePiece, tokens: tokens, tokenTypes: types, scores: [0, 0, 0, -1, -2, -1, 0, 0],
            bosTokenID: 1, eosTokenID: 2, unknownTokenID: 0, addBOS: false, addSpacePrefix: false)
        let tokenizer = try Tokenizer(configuration)
        // pairs (0,1) and (1,2) both form "aa" with the same score: llama.cpp takes the lower left index
        #expect(tokenizer.encode("aaa") == [4, 3])
        // "c" is no piece: its byte token; "d" has neither piece nor byte token: <unk>
        #expect(tokenizer.encode("cd") == [7, 0])
        #expect(try tokenizer.decode([4, 3, 7]) == "aaac")
    }
}
