import Testing
import Tokenization

@Suite("Configuration errors and small hand-checked vocabularies")
struct TokenizerErrorTests {
    /// The `TokenizationError` that `body` throws (nil when it throws nothing or another error).
    func error(_ body: () throws -> Void) -> TokenizationError? {
        do {
            try body()
            return nil
        } catch {
            return error as? TokenizationError
        }
    }

    static func bpe(tokens: [String], merges: [String], pre: String = "gpt2", types: [Int32] = []) -> TokenizerConfiguration {
        TokenizerConfiguration(model: .bytePairEncoding, preTokenizer: pre, tokens: tokens, tokenTypes: types, merges: merges)
    }

    @Test("merges apply lowest rank first")
    func mergeRanks() throws {
        let tokens = ["a", "b", "c", "ab", "bc", "abc"]
        let bcFirst = try Tokenizer(Self.bpe(tokens: tokens, merges: ["b c", "a b"]))
        #expect(bcFirst.encode("abc") == [0, 4])  // "bc" (rank 0) wins; "a"+"bc" has no merge
        let abFirst = try Tokenizer(Self.bpe(tokens: tokens, merges: ["a b", "b c", "ab c"]))
        #expect(abFirst.encode("abc") == [5])  // ab, then ab+c
        #expect(abFirst.encode("cab") == [2, 3])
        #expect(try abFirst.decode([5, 0]) == "abca")
    }

    @Test("a merge naming a token that does not exist is rejected with its index")
    func unknownMergePart() {
        let e = error { _ = try Tokenizer(Self.bpe(tokens: ["a", "b", "ab"], merges: ["a b", "a z"])) }
        #expect(e?.code == .invalidVocabulary)
        #expect(e?.message.contains("merge 1") == true && e?.message.contains("\"z\"") == true)
        let produced = error { _ = try Tokenizer(Self.bpe(tokens: ["a", "b"], merges: ["a b"])) }
        #expect(produced?.code == .invalidVocabulary && produced?.message.contains("merge 0") == true)
        let malformed = error { _ = try Tokenizer(Self.bpe(tokens: ["a", "b", "ab"], merges: ["ab"])) }
        #expect(malformed?.code == .invalidVocabulary)
    }

    @Test("token types must match the tokens one to one")
    func typeCountMismatch() {
        let e = error { _ = try Tokenizer(Self.bpe(tokens: ["a", "b"], merges: [], types: [1])) }
        #expect(e?.code == .invalidVocabulary)
        #expect(e?.message.contains("1 token types for 2 tokens") == true)
        let scores = error { _ = try Tokenizer(TokenizerConfiguration(model: .sentencePiece, tokens: ["<unk>", "<s>", "a"], scores: [0], bosTokenID: 1)) }
        #expect(scores?.code == .invalidVocabulary)
    }

    @Test("unknown model and pre-tokenizer names are typed errors that list what is supported")
    func unsupported() throws {
        let pre = error { _ = try Tokenizer(Self.bpe(tokens: ["a"], merges: [], pre: "no-such-pre")) }
        #expect(pre?.code == .unsupportedTokenizer)
        #expect(pre?.message.contains("no-such-pre") == true && pre?.message.contains("smollm") == true && pre?.message.contains("qwen2") == true)
        let model = error { _ = try TokenizerConfiguration.Model.named("bert") }
        #expect(model?.code == .unsupportedTokenizer)
        #expect(model?.message.contains("bert") == true && model?.message.contains("gpt2") == true)
        #expect(try TokenizerConfiguration.Model.named("llama") == .sentencePiece)
        #expect(Tokenizer.supportedPreTokenizers.contains("llama-bpe"))
    }

    @Test("ids outside the vocabulary are unknownToken errors")
    func outOfRange() throws {
        let tokenizer = try Tokenizer(Self.bpe(tokens: ["a", "b"], merges: []))
        for id in [-1, 2, Int.max] {
            let e = error { _ = try tokenizer.decode([0, id]) }
            #expect(e?.code == .unknownToken && e?.message.contains("\(id)") == true)
            #expect(error { _ = try tokenizer.bytes(of: id) }?.code == .unknownToken)
        }
        #expect(!tokenizer.isSpecial(-1) && !tokenizer.isEndOfGeneration(5))
    }

    @Test("inconsistent special ids, flags and duplicates are rejected")
    func badSpecialConfiguration() {
        let badBOS = error { _ = try Tokenizer(TokenizerConfiguration(model: .bytePairEncoding, preTokenizer: "gpt2", tokens: ["a"], bosTokenID: 3)) }
        #expect(badBOS?.code == .invalidVocabulary && badBOS?.message.contains("bos") == true)
        let noBOS = error { _ = try Tokenizer(TokenizerConfiguration(model: .sentencePiece, tokens: ["<unk>", "a"])) }
        #expect(noBOS?.code == .invalidVocabulary && noBOS?.message.contains("addBOS") == true)
        let duplicate = error { _ = try Tokenizer(Self.bpe(tokens: ["a", "b", "a"], merges: [])) }
        #expect(duplicate?.code == .invalidVocabulary && duplicate?.message.contains("ids 0 and 2") == true)
        let empty = error { _ = try Tokenizer(Self.bpe(tokens: [], merges: [])) }
        #expect(empty?.code == .invalidVocabulary)
    }

    @Test("longest special token wins; user-defined tokens split even without parsing")
    func specialPartition() throws {
        // types: a b c normal; <x> control; <x>y control (longer); [u] user-defined
        let tokens = ["a", "b", "c", "<x>", "<x>y", "[u]", "<", ">", "x", "y", "[", "]", "u"]
        let types: [Int32] = [1, 1, 1, 3, 3, 4, 1, 1, 1, 1, 1, 1, 1]
        let tokenizer = try Tokenizer(Self.bpe(tokens: tokens, merges: [], types: types))
        #expect(tokenizer.encode("a<x>yb<x>c") == [0, 4, 1, 3, 2])
        #expect(tokenizer.encode("a<x>b", parseSpecialTokens: false) == [0, 6, 8, 7, 1])
        #expect(tokenizer.encode("a[u]b", parseSpecialTokens: false) == [0, 5, 1])
        #expect(try tokenizer.decode([0, 3, 5, 1], skipSpecialTokens: true) == "a[u]b")
        #expect(tokenizer.isSpecial(3) && tokenizer.isSpecial(5) && !tokenizer.isSpecial(0))
    }
}
