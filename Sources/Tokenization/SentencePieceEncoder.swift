/// llama.cpp's SentencePiece tokenizer (`llm_tokenizer_spm_session`): the text, spaces already
/// replaced by `▁`, starts as one symbol per UTF-8 character; the adjacent pair whose concatenation is
/// the vocabulary token with the highest score (leftmost on ties) merges until no pair forms a token.
/// A final symbol that is not a token becomes its bytes' `<0xNN>` tokens.
///
/// This is the algorithm of SentencePiece's BPE models. Unigram models are encoded by SentencePiece
/// with Viterbi search instead, which can choose differently; llama.cpp (and so this type) uses the
/// score-ordered merge for every `llama` vocabulary.
struct SentencePieceEncoder: Sendable {
    let scores: [Float]
    /// The token of each byte: `<0xNN>`, else the one-byte text, else -1.
    let byteTokens: [Int32]
    let unknownTokenID: Int32

    init(vocabulary: VocabularyIndex, scores: [Float], unknownTokenID: Int?) {
        self.scores = scores
        var byteTokens = [Int32](repeating: -1, count: 256)
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in 0..<256 {
            let name: [UInt8] = [0x3C, 0x30, 0x78, hex[byte >> 4], hex[byte & 15], 0x3E]  // <0xNN>
            byteTokens[byte] = vocabulary.id(of: name) ?? vocabulary.id(of: [UInt8(byte)]) ?? -1
        }
        self.byteTokens = byteTokens
        self.unknownTokenID = unknownTokenID.map(Int32.init) ?? -1
    }

    private struct Symbol {
        var start: Int32
        var length: Int32
        var prev: Int32
        var next: Int32
    }

    private struct Bigram {
        var score: Float
        var left: Int32
        var right: Int32
        var size: Int32

        static func precedes(_ a: Bigram, _ b: Bigram) -> Bool {
            a.score > b.score || (a.score == b.score && a.left < b.left)
        }
    }

    /// Appends the tokens of `text` (already escaped: `▁` for spaces).
    func encode(_ text: [UInt8], vocabulary: VocabularyIndex, into output: inout [Int]) {
        guard !text.isEmpty else { return }
        text.withUnsafeBufferPointer { bytes in
            var symbols: [Symbol] = []
            symbols.reserveCapacity(bytes.count)
            var offset = 0
            while offset < bytes.count {
                let length = min(utf8Length(bytes[offset]), bytes.count - offset)
                let index = Int32(symbols.count)
                symbols.append(Symbol(start: Int32(offset), length: Int32(length), prev: index - 1, next: offset + length == bytes.count ? -1 : index + 1))
                offset += length
            }
            var queue = BinaryHeap<Bigram>(precedes: Bigram.precedes)
            func consider(_ left: Int32, _ right: Int32) {
                guard left >= 0, right >= 0 else { return }
                let l = symbols[Int(left)], r = symbols[Int(right)]
                let span = UnsafeBufferPointer(rebasing: bytes[Int(l.start)..<Int(r.start + r.length)])
                guard let id = vocabulary.id(of: span) else { return }
                let score = Int(id) < scores.count ? scores[Int(id)] : 0
                queue.push(Bigram(score: score, left: left, right: right, size: l.length + r.length))
            }
            for i in 1..<symbols.count { consider(Int32(i - 1), Int32(i)) }
            while let bigram = queue.pop() {
                let l = Int(bigram.left), r = Int(bigram.right)
                guard symbols[l].length > 0, symbols[r].length > 0, symbols[l].length + symbols[r].length == bigram.size else { continue }
                symbols[l].length += symbols[r].length
                symbols[r].length = 0
                symbols[l].next = symbols[r].next
                if symbols[r].next >= 0 { symbols[Int(symbols[r].next)].prev = bigram.left }
                consider(symbols[l].prev, bigram.left)
                consider(bigram.left, symbols[l].next)
            }
            var i: Int32 = 0
            while i >= 0 {
                let symbol = symbols[Int(i)]
                let span = UnsafeBufferPointer(rebasing: bytes[Int(symbol.start)..<Int(symbol.start + symbol.length)])
                if let id = vocabulary.id(of: span) {
                    output.append(Int(id))
                } else {
                    for byte in span {
                        let id = byteTokens[Int(byte)]
                        if id >= 0 {
                            output.append(Int(id))
                        } else if unknownTokenID >= 0 {
                            output.append(Int(unknownTokenID))
                        }
                    }
                }
                i = symbol.next
            }
        }
    }
}

/// The length of the UTF-8 sequence a lead byte starts (llama.cpp's `unicode_len_utf8`).
@inline(__always)
func utf8Length(_ lead: UInt8) -> Int {
    switch lead >> 4 {
    case 0xC, 0xD: 2
    case 0xE: 3
    case 0xF: 4
    default: 1
    }
}
