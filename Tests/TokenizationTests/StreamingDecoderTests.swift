import Testing
import Tokenization

@Suite("Streaming decoder")
struct StreamingDecoderTests {
    /// A deterministic generator (SplitMix64), so failures reproduce.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func checkStreaming(_ tokenizer: Tokenizer, seed: UInt64, sequences: Int) throws {
        var rng = SplitMix(state: seed)
        // bias towards the byte-like ids at the low end and the specials, where UTF-8 gets cut
        for _ in 0..<sequences {
            let count = Int.random(in: 1...24, using: &rng)
            let ids = (0..<count).map { _ in
                Bool.random(using: &rng) ? Int.random(in: 0..<min(400, tokenizer.vocabularySize), using: &rng) : Int.random(in: 0..<tokenizer.vocabularySize, using: &rng)
            }
            for skip in [false, true] {
                var decoder = tokenizer.makeStreamingDecoder(skipSpecialTokens: skip)
                var streamed = ""
                for id in ids { streamed += try decoder.append(id) }
                streamed += decoder.finish()
                let whole = try tokenizer.decode(ids, skipSpecialTokens: skip)
                #expect(streamed == whole, "ids \(ids) skip \(skip)")
            }
        }
    }

    static func checkValidText(_ tokenizer: Tokenizer, _ texts: [String]) throws {
        for text in texts {
            let ids = tokenizer.encode(text, addSpecialTokens: false)
            var decoder = tokenizer.makeStreamingDecoder()
            var streamed = ""
            for id in ids {
                let piece = try decoder.append(id)
                #expect(!piece.unicodeScalars.contains("\u{FFFD}"), "a partial character was emitted for \(show(text))")
                streamed += piece
            }
            #expect(decoder.finish().isEmpty)
            #expect(streamed == text)
        }
    }

    static let texts = ["😀 emoji 👨‍👩‍👧‍👦 and 中文字符 and naïve café", "𠜎𠜱 🇺🇸🇯🇵 ١٢٣ Ελληνικά", "plain ascii"]

    @Test("SentencePiece: streamed pieces concatenate to decode(all), never split a character")
    func sentencePiece() throws {
        let (tokenizer, _) = try SentencePieceTests.load()
        try Self.checkStreaming(tokenizer, seed: 1, sequences: 400)
        try Self.checkValidText(tokenizer, Self.texts)
    }

    @Test("SmolLM2 BPE: streamed pieces concatenate to decode(all), never split a character", .enabled(if: TestModels.shouldRun, TestModels.missingMessage))
    func bytePair() throws {
        guard TestModels.requireSmolLM2() != nil, let result = SmolLM2.tokenizer else { return }
        let tokenizer = try result.get()
        try Self.checkStreaming(tokenizer, seed: 2, sequences: 400)
        try Self.checkValidText(tokenizer, Self.texts)
    }

    @Test("a character cut across tokens is held until complete; finish() flushes a stump as U+FFFD")
    func holdsIncompleteCharacters() throws {
        // a byte-level vocabulary holding "a" and the bytes of 😀 (F0 9F 98 80), spelled as GPT-2 spells
        // bytes: ≥ 0xA1 as the Latin-1 character, 0x00…0x20 as U+0100…U+0120, 0x7F…0xA0 as the next 34
        func spelled(_ byte: UInt32) -> String {
            let scalar: UInt32 = byte >= 0xA1 ? byte : 0x100 + 33 + (byte - 0x7F)
            return String(Unicode.Scalar(scalar)!)
        }
        let byteChars: [String] = [0xF0, 0x9F, 0x98, 0x80].map(spelled)
        let tokens = ["a"] + byteChars
        let tokenizer = try Tokenizer(TokenizerConfiguration(model: .bytePairEncoding, preTokenizer: "gpt2", tokens: tokens))
        #expect(try tokenizer.bytes(of: 1) == [0xF0] && tokenizer.bytes(of: 4) == [0x80])
        var decoder = tokenizer.makeStreamingDecoder()
        #expect(try decoder.append(0) == "a")
        #expect(try decoder.append(1) == "")
        #expect(try decoder.append(2) == "")
        #expect(try decoder.append(3) == "")
        #expect(try decoder.append(4) == "😀")
        #expect(try decoder.append(1) == "")
        #expect(try decoder.append(2) == "")
        #expect(decoder.finish() == "\u{FFFD}")
        // a byte that can never continue the held prefix releases it as U+FFFD at once
        #expect(try decoder.append(1) == "")
        #expect(try decoder.append(0) == "\u{FFFD}a")
        #expect(throws: TokenizationError.self) { try decoder.append(99) }
        #expect(try decoder.append(0) == "a")
    }
}
