import Testing
import Tokenization

/// The hand-written regex scanners against Python's `regex` module running llama.cpp's patterns
/// (Vectors/generate_pretokenizer_vectors.py).
@Suite("Pre-tokenizer regexes")
struct PreTokenizerTests {
    struct Vectors: Decodable {
        struct PreTokenizer: Decodable {
            let patterns: [String]
            let pieceLengths: [[Int]]
        }
        let versions: [String: String]
        let texts: [String]
        let preTokenizers: [String: PreTokenizer]
    }

    static let names = ["gpt2", "smollm", "llama3", "qwen2", "default"]

    @Test("splits match Python regex", arguments: names)
    func splitsMatchOracle(name: String) throws {
        let vectors = try loadFixture("pretokenizer-vectors", as: Vectors.self)
        let family = try #require(vectors.preTokenizers[name])
        #expect(family.pieceLengths.count == vectors.texts.count && vectors.texts.count > 1000)
        var mismatches = 0
        for (text, lengths) in zip(vectors.texts, family.pieceLengths) {
            var expected: [String] = []
            var scalars = text.unicodeScalars[...]
            for n in lengths {
                expected.append(String(String.UnicodeScalarView(scalars.prefix(n))))
                scalars = scalars.dropFirst(n)
            }
            let pieces = try Tokenizer.preTokenize(text, preTokenizer: name)
            if pieces != expected {
                mismatches += 1
                if mismatches <= 15 { Issue.record("\(name) \(show(text)): got \(pieces.map(show)), regex \(expected.map(show))") }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(vectors.texts.count) strings split differently from regex \(vectors.versions["regex"] ?? "?")")
    }

    @Test("aliases share their family's splitting")
    func aliases() throws {
        let text = "I'm 12345 years\n\n old!!  ok"
        #expect(try Tokenizer.preTokenize(text, preTokenizer: "llama-bpe") == Tokenizer.preTokenize(text, preTokenizer: "llama3"))
        #expect(try Tokenizer.preTokenize(text, preTokenizer: "gpt-2") == Tokenizer.preTokenize(text, preTokenizer: "gpt2"))
        #expect(try Tokenizer.preTokenize(text, preTokenizer: "") == Tokenizer.preTokenize(text, preTokenizer: "default"))
        #expect(try Tokenizer.preTokenize(text, preTokenizer: "starcoder") == Tokenizer.preTokenize(text, preTokenizer: "smollm"))
    }
}
