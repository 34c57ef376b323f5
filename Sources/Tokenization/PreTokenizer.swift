/// Splits text into the words BPE merges within, as llama.cpp's `unicode_regex_split` does for each
/// `tokenizer.ggml.pre`.
///
/// llama.cpp gives each pre-tokenizer a list of regexes applied in turn: every regex splits each
/// piece the previous one produced into its matches *and* the text between them. This type runs the
/// same lists with one hand-written scanner per regex instead of a regex engine:
///
/// | Stage | llama.cpp regex |
/// |---|---|
/// | ``Stage/gpt2`` | `'s\|'t\|'re\|'ve\|'m\|'ll\|'d\| ?\p{L}+\| ?\p{N}+\| ?[^\s\p{L}\p{N}]+\|\s+(?!\S)` (then `\s+`) |
/// | ``Stage/llama3(maximumDigits:)`` | `(?:'[sS]\|'[tT]\|'[rR][eE]\|'[vV][eE]\|'[mM]\|'[lL][lL]\|'[dD])\|[^\r\n\p{L}\p{N}]?\p{L}+\|\p{N}{1,3}\| ?[^\s\p{L}\p{N}]+[\r\n]*\|\s*[\r\n]+\|\s+(?!\S)\|\s+` (`\p{N}` alone for qwen2) |
/// | ``Stage/eachNumber`` | `\p{N}` |
/// | ``Stage/numberRuns`` | `\p{N}+` |
/// | ``Stage/punctuationRuns`` | `[\p{P}\$\+<=>\^~\|]+` |
/// | ``Stage/asciiDigitTriples`` | `[0-9][0-9][0-9]` |
struct PreTokenizer: Sendable {
    enum Stage: Sendable, Hashable {
        case gpt2
        case llama3(maximumDigits: Int)
        case eachNumber
        case numberRuns
        case punctuationRuns
        case asciiDigitTriples
    }

    struct Family: Sendable {
        let names: [String]
        let stages: [Stage]
        /// llama.cpp's `ignore_merges`: a word that is itself a token is emitted whole.
        let ignoresMerges: Bool
    }

    /// The pre-tokenizer names this module implements, by regex family, as llama.cpp groups them.
    static let families: [Family] = [
        Family(names: ["default"], stages: [.punctuationRuns, .gpt2, .numberRuns, .asciiDigitTriples], ignoresMerges: false),
        Family(
            names: ["gpt2", "gpt-2", "phi-2", "mpt", "olmo", "jais", "exaone4", "trillion", "granite-docling", "jina-es", "jina-de",
                    "jina-v2-es", "jina-v2-de", "gigachat", "a.x-4.0", "mellum", "modern-bert", "roberta-bpe", "jina-v1-en", "jina-v2-code"],
            stages: [.gpt2], ignoresMerges: false),
        Family(
            names: ["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b", "mellum2"],
            stages: [.eachNumber, .gpt2], ignoresMerges: false),
        Family(
            names: ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"],
            stages: [.llama3(maximumDigits: 3)], ignoresMerges: true),
        Family(names: ["dbrx", "smaug-bpe", "glm4", "chatglm-bpe"], stages: [.llama3(maximumDigits: 3)], ignoresMerges: false),
        Family(
            names: ["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan", "solar-open", "grok-2"],
            stages: [.llama3(maximumDigits: 1)], ignoresMerges: false),
    ]

    static var supportedNames: [String] { families.flatMap(\.names) }

    let name: String
    let stages: [Stage]
    let ignoresMerges: Bool

    init(named name: String) throws(TokenizationError) {
        let lookup = name.isEmpty ? "default" : name
        guard let family = Self.families.first(where: { $0.names.contains(lookup) }) else {
            throw TokenizationError(
                .unsupportedTokenizer,
                "pre-tokenizer '\(name)' (tokenizer.ggml.pre) is not implemented; supported: \(Self.supportedNames.joined(separator: ", "))",
                underlying: "tokenizer.ggml.pre = \(name)")
        }
        self.name = lookup
        self.stages = family.stages
        self.ignoresMerges = family.ignoresMerges
    }

    /// Splits `scalars` into word ranges (indices into `scalars`), covering all of it in order.
    func split(_ scalars: UnsafeBufferPointer<UInt32>) -> [Range<Int>] {
        var pieces: [Range<Int>] = scalars.isEmpty ? [] : [0..<scalars.count]
        var next: [Range<Int>] = []
        for stage in stages {
            next.removeAll(keepingCapacity: true)
            next.reserveCapacity(pieces.count * 2)
            for piece in pieces {
                Self.apply(stage, scalars, piece, into: &next)
            }
            swap(&pieces, &next)
        }
        return pieces
    }

    @inline(__always)
    private static func cls(_ s: UnsafeBufferPointer<UInt32>, _ i: Int) -> UnicodeClass { UnicodeClass.of(s[i]) }

    private static func apply(_ stage: Stage, _ s: UnsafeBufferPointer<UInt32>, _ range: Range<Int>, into out: inout [Range<Int>]) {
        switch stage {
        case .gpt2: gpt2(s, range, &out)
        case let .llama3(maximumDigits): llama3(s, range, maximumDigits, &out)
        case .eachNumber: isolate(s, range, &out) { s, i, _ in cls(s, i).contains(.number) ? i + 1 : nil }
        case .numberRuns:
            isolate(s, range, &out) { s, i, hi in
                guard cls(s, i).contains(.number) else { return nil }
                var j = i + 1
                while j < hi, cls(s, j).contains(.number) { j += 1 }
                return j
            }
        case .punctuationRuns:
            isolate(s, range, &out) { s, i, hi in
                func isMember(_ j: Int) -> Bool {
                    let v = s[j]
                    if v == 0x24 || v == 0x2B || v == 0x3C || v == 0x3D || v == 0x3E || v == 0x5E || v == 0x7E || v == 0x7C { return true }
                    let c = cls(s, j)
                    return c.contains(.punctuation) && !c.contains(.whitespace)
                }
                guard isMember(i) else { return nil }
                var j = i + 1
                while j < hi, isMember(j) { j += 1 }
                return j
            }
        case .asciiDigitTriples:
            isolate(s, range, &out) { s, i, hi in
                func digit(_ j: Int) -> Bool { s[j] >= 0x30 && s[j] <= 0x39 }
                return i + 3 <= hi && digit(i) && digit(i + 1) && digit(i + 2) ? i + 3 : nil
            }
        }
    }

    /// A regex-iterator split: `matchEnd(s, i, hi)` says whether a match starts at `i` (its end) or not;
    /// the matches and the text between them become pieces.
    private static func isolate(
        _ s: UnsafeBufferPointer<UInt32>, _ range: Range<Int>, _ out: inout [Range<Int>],
        _ matchEnd: (UnsafeBufferPointer<UInt32>, Int, Int) -> Int?
    ) {
        var gapStart = range.lowerBound
        var i = range.lowerBound
        while i < range.upperBound {
            if let end = matchEnd(s, i, range.upperBound) {
                if gapStart < i { out.append(gapStart..<i) }
                out.append(i..<end)
                i = end
                gapStart = end
            } else {
                i += 1
            }
        }
        if gapStart < range.upperBound { out.append(gapStart..<range.upperBound) }
    }

    @inline(__always)
    private static func isContractionTail(_ s: UnsafeBufferPointer<UInt32>, _ pos: Int, _ hi: Int, caseInsensitive: Bool) -> Int {
        // returns the contraction length starting at `pos` (an apostrophe), or 0
        guard pos + 1 < hi else { return 0 }
        func lower(_ v: UInt32) -> UInt32 { caseInsensitive && v >= 0x41 && v <= 0x5A ? v + 0x20 : v }
        let a = lower(s[pos + 1])
        if a == 0x73 || a == 0x74 || a == 0x6D || a == 0x64 { return 2 }  // s t m d
        guard pos + 2 < hi else { return 0 }
        let b = lower(s[pos + 2])
        if (a == 0x72 && b == 0x65) || (a == 0x76 && b == 0x65) || (a == 0x6C && b == 0x6C) { return 3 }  // re ve ll
        return 0
    }

    private static func gpt2(_ s: UnsafeBufferPointer<UInt32>, _ range: Range<Int>, _ out: inout [Range<Int>]) {
        let hi = range.upperBound
        var pos = range.lowerBound
        let other: UnicodeClass = [.whitespace, .letter, .number]
        while pos < hi {
            let c = s[pos]
            if c == 0x27 {
                let n = isContractionTail(s, pos, hi, caseInsensitive: false)
                if n > 0 {
                    out.append(pos..<pos + n)
                    pos += n
                    continue
                }
            }
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
            let p = (c == 0x20 && pos + 1 < hi) ? pos + 1 : pos
            let k = cls(s, p)
            if k.contains(.letter) || k.contains(.number) || k.isDisjoint(with: other) {
                var q = p + 1
                if k.contains(.letter) {
                    while q < hi, cls(s, q).contains(.letter) { q += 1 }
                } else if k.contains(.number) {
                    while q < hi, cls(s, q).contains(.number) { q += 1 }
                } else {
                    while q < hi, cls(s, q).isDisjoint(with: other) { q += 1 }
                }
                out.append(pos..<q)
                pos = q
                continue
            }
            // `\s+(?!\S)`, then `\s+`
            var n = 0
            while pos + n < hi, cls(s, pos + n).contains(.whitespace) { n += 1 }
            if n > 1 && pos + n < hi {
                out.append(pos..<pos + n - 1)
                pos += n - 1
            } else if n > 0 {
                out.append(pos..<pos + n)
                pos += n
            } else {
                out.append(pos..<pos + 1)
                pos += 1
            }
        }
    }

    private static func llama3(_ s: UnsafeBufferPointer<UInt32>, _ range: Range<Int>, _ maximumDigits: Int, _ out: inout [Range<Int>]) {
        let hi = range.upperBound
        var pos = range.lowerBound
        let other: UnicodeClass = [.whitespace, .letter, .number]
        while pos < hi {
            let c = s[pos]
            if c == 0x27 {
                let n = isContractionTail(s, pos, hi, caseInsensitive: true)
                if n > 0 {
                    out.append(pos..<pos + n)
                    pos += n
                    continue
                }
            }
            let k = cls(s, pos)
            // `[^\r\n\p{L}\p{N}]?\p{L}+`
            if !k.contains(.newline) && !k.contains(.number) {
                if k.contains(.letter) || (pos + 1 < hi && cls(s, pos + 1).contains(.letter)) {
                    var q = pos + 1
                    while q < hi, cls(s, q).contains(.letter) { q += 1 }
                    out.append(pos..<q)
                    pos = q
                    continue
                }
            }
            // `\p{N}{1,n}`
            if k.contains(.number) {
                var q = pos + 1
                while q < hi, q - pos < maximumDigits, cls(s, q).contains(.number) { q += 1 }
                out.append(pos..<q)
                pos = q
                continue
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            let p = (c == 0x20 && pos + 1 < hi) ? pos + 1 : pos
            if cls(s, p).isDisjoint(with: other) {
                var q = p + 1
                while q < hi, cls(s, q).isDisjoint(with: other) { q += 1 }
                while q < hi, s[q] == 0x0A || s[q] == 0x0D { q += 1 }
                out.append(pos..<q)
                pos = q
                continue
            }
            // `\s*[\r\n]+`, `\s+(?!\S)`, `\s+`
            var n = 0
            var afterLastNewline = 0
            while pos + n < hi, cls(s, pos + n).contains(.whitespace) {
                if s[pos + n] == 0x0A || s[pos + n] == 0x0D { afterLastNewline = pos + n + 1 }
                n += 1
            }
            if afterLastNewline > 0 {
                out.append(pos..<afterLastNewline)
                pos = afterLastNewline
            } else if n > 1 && pos + n < hi {
                out.append(pos..<pos + n - 1)
                pos += n - 1
            } else if n > 0 {
                out.append(pos..<pos + n)
                pos += n
            } else {
                out.append(pos..<pos + 1)
                pos += 1
            }
        }
    }
}

extension Tokenizer {
    /// The words the pre-tokenizer `name` splits `text` into, before byte-level encoding and BPE
    /// (no special-token splitting). For tests and diagnostics.
    package static func preTokenize(_ text: String, preTokenizer name: String) throws(TokenizationError) -> [String] {
        let pre = try PreTokenizer(named: name)
        let scalars = text.unicodeScalars.map(\.value)
        let ranges = scalars.withUnsafeBufferPointer { pre.split($0) }
        return ranges.map { range in
            var s = String.UnicodeScalarView()
            for v in scalars[range] { s.append(Unicode.Scalar(v)!) }
            return String(s)
        }
    }
}
