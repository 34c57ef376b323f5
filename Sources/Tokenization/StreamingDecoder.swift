/// Decodes token ids one at a time, as a model generates them, without ever returning half a character.
///
/// A byte-level token can end inside a multi-byte UTF-8 character (an emoji is often two or three
/// tokens). ``append(_:)`` returns the text that is complete so far and holds back a trailing
/// sequence that is still a valid *prefix* of a character; ``finish()`` flushes what is held.
/// Concatenating every ``append(_:)`` result and ``finish()`` gives exactly
/// ``Tokenizer/decode(_:skipSpecialTokens:)`` of all the ids, and every returned piece is valid UTF-8
/// on its own (bytes that can never become valid are replaced by U+FFFD at once).
///
/// ```swift
/// var decoder = tokenizer.makeStreamingDecoder(skipSpecialTokens: true)
/// for id in generated { print(try decoder.append(id), terminator: "") }
/// print(decoder.finish())
/// ```
public struct StreamingDecoder: Sendable {
    private let tokenizer: Tokenizer
    private let skipSpecialTokens: Bool
    private var pending: [UInt8] = []
    private var atFragmentStart = true

    init(tokenizer: Tokenizer, skipSpecialTokens: Bool) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one token and returns the text it completes (possibly empty).
    /// - Throws: ``TokenizationError/Code/unknownToken`` for an id outside the vocabulary; the
    ///   decoder's state is unchanged then.
    public mutating func append(_ id: Int) throws(TokenizationError) -> String {
        try tokenizer.appendPiece(of: id, skipSpecialTokens: skipSpecialTokens, atFragmentStart: &atFragmentStart, to: &pending)
        let cut = Self.completePrefixLength(pending)
        guard cut > 0 else { return "" }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Returns what is held (an incomplete character becomes U+FFFD) and resets the decoder.
    public mutating func finish() -> String {
        defer {
            pending.removeAll()
            atFragmentStart = true
        }
        return String(decoding: pending, as: UTF8.self)
    }

    /// The length of the longest prefix after which a UTF-8 decoder starts a new sequence, leaving
    /// out a trailing sequence that is valid so far but cut short by the end of `bytes`.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            if b < 0x80 {
                i += 1
                continue
            }
            let length: Int
            var secondLow: UInt8 = 0x80
            var secondHigh: UInt8 = 0xBF
            switch b {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; secondLow = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; secondHigh = 0x9F
            case 0xF0: length = 4; secondLow = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; secondHigh = 0x8F
            default:
                i += 1  // never valid as a lead byte: replaced on its own
                continue
            }
            var j = i + 1
            var k = 1
            while k < length {
                if j >= n { return i }  // valid so far, cut by the end: hold it
                let c = bytes[j]
                let low: UInt8 = k == 1 ? secondLow : 0x80
                let high: UInt8 = k == 1 ? secondHigh : 0xBF
                if c < low || c > high { break }
                j += 1
                k += 1
            }
            i = j
        }
        return n
    }
}
