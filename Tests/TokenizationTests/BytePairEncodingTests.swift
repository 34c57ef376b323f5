import Foundation
import Testing
import Tokenization

/// SmolLM2's byte-level BPE against Hugging Face `tokenizers` (Vectors/generate_bpe_vectors.py).
@Suite("Byte-level BPE (SmolLM2)", .enabled(if: TestModels.shouldRun, TestModels.missingMessage))
struct BytePairEncodingTests {
    struct Vectors: Decodable {
        struct Encode: Decodable {
            let text: String
            let ids: [Int]
            let roundTrips: Bool
        }
        struct Decode: Decodable {
            let ids: [Int]
            let text: String
            let textSkippingSpecial: String
        }
        let versions: [String: String]
        let vocabularySize: Int
        let encode: [Encode]
        let decode: [Decode]
    }

    func tokenizer() throws -> Tokenizer? {
        guard TestModels.requireSmolLM2() != nil, let result = SmolLM2.tokenizer else { return nil }
        return try result.get()
    }

    @Test("every oracle string encodes to Hugging Face's ids")
    func encodeMatchesOracle() throws {
        guard let tokenizer = try tokenizer() else { return }
        let vectors = try loadFixture("smollm2-bpe-vectors", as: Vectors.self)
        #expect(tokenizer.vocabularySize == vectors.vocabularySize)
        #expect(vectors.encode.count > 2000)
        var mismatches = 0
        for vector in vectors.encode {
            let ids = tokenizer.encode(vector.text, addSpecialTokens: false, parseSpecialTokens: true)
            if ids != vector.ids {
                mismatches += 1
                if mismatches <= 20 {
                    Issue.record("\(show(vector.text)): got \(ids), Hugging Face \(vector.ids)")
                }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(vectors.encode.count) strings differ (tokenizers \(vectors.versions["tokenizers"] ?? "?"))")
    }

    @Test("decode(encode(s)) == s wherever Hugging Face round-trips")
    func roundTrip() throws {
        guard let tokenizer = try tokenizer() else { return }
        let vectors = try loadFixture("smollm2-bpe-vectors", as: Vectors.self)
        var failures = 0
        for vector in vectors.encode where vector.roundTrips {
            let decoded = try tokenizer.decode(tokenizer.encode(vector.text))
            if decoded != vector.text {
                failures += 1
                if failures <= 10 { Issue.record("\(show(vector.text)) decoded as \(show(decoded))") }
            }
        }
        #expect(failures == 0)
    }

    @Test("decoding random ids (lone bytes, control tokens) matches Hugging Face, U+FFFD included")
    func decodeMatchesOracle() throws {
        guard let tokenizer = try tokenizer() else { return }
        let vectors = try loadFixture("smollm2-bpe-vectors", as: Vectors.self)
        for vector in vectors.decode {
            #expect(try tokenizer.decode(vector.ids) == vector.text, "ids \(vector.ids)")
            #expect(try tokenizer.decode(vector.ids, skipSpecialTokens: true) == vector.textSkippingSpecial, "ids \(vector.ids)")
        }
    }

    @Test("special tokens, BOS/EOS flags and vocabulary queries")
    func specialTokens() throws {
        guard let tokenizer = try tokenizer() else { return }
        // the chat markers become their ids only when special tokens are parsed
        #expect(tokenizer.encode("<|im_start|>user") == [1, tokenizer.id(of: "user")!])
        let literal = tokenizer.encode("<|im_start|>", parseSpecialTokens: false)
        #expect(!literal.contains(1) && literal.count > 1)
        #expect(try tokenizer.decode(literal) == "<|im_start|>")
        // add_bos_token is false for SmolLM2: nothing is added
        #expect(tokenizer.encode("Hi", addSpecialTokens: true) == tokenizer.encode("Hi", addSpecialTokens: false))
        #expect(tokenizer.isSpecial(0) && tokenizer.isSpecial(2) && !tokenizer.isSpecial(tokenizer.id(of: "Ġthe")!))
        #expect(tokenizer.isEndOfGeneration(2) && !tokenizer.isEndOfGeneration(1))
        #expect(try tokenizer.bytes(of: tokenizer.id(of: "Ġthe")!) == Array(" the".utf8))
        #expect(try tokenizer.bytes(of: tokenizer.id(of: "Ċ")!) == [0x0A])
        #expect(try tokenizer.decode([1, tokenizer.id(of: "Hi")!, 2], skipSpecialTokens: true) == "Hi")
        #expect(tokenizer.id(of: "no such token text") == nil)
    }

    @Test("encoding 10 kB of English is fast (release builds)")
    func encodeSpeed() throws {
        guard let tokenizer = try tokenizer() else { return }
        let paragraph = "The quick brown fox jumps over the lazy dog. In 2024, researchers published 37 papers; they're \"state-of-the-art\" (or so they claim).\n\n"
        let text = String(String(repeating: paragraph, count: 80).prefix(10_000))
        _ = tokenizer.encode(text)
        let clock = ContinuousClock()
        let elapsed = clock.measure { for _ in 0..<5 { _ = tokenizer.encode(text) } } / 5
        // a debug build is many times slower than release; this bound only catches pathologies there
        #expect(elapsed < .milliseconds(200), "encoding 10 kB took \(elapsed)")
    }
}
