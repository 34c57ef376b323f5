/// Turns texts into vectors whose cosine similarity tracks similarity of meaning.
///
/// ``HashedNGramEmbedder`` works offline and in microseconds; an HTTP client for an embeddings
/// endpoint (`/v1/embeddings`) is the other natural implementation.
public protocol Embedder: Sendable {
    /// Vector length.
    var dimensions: Int { get }
    /// One L2-normalised vector per text, in order.
    func embed(_ texts: [String]) async throws -> [[Float]]
}

/// Sparse hashed features of a text: words, word bigrams and character n-grams of words,
/// hashed into a fixed number of buckets with a sign bit (the "hashing trick").
public struct HashedFeatures: Sendable, Hashable, Codable {
    public var dimensions: Int
    /// Character n-gram lengths taken inside each word (with `^`/`$` boundary marks).
    public var charGrams: ClosedRange<Int>
    public var wordWeight: Float
    public var bigramWeight: Float
    public var charGramWeight: Float
    /// Scale of every feature of a function word ("the", "how", "do", …): rewordings differ mostly in these.
    public var functionWordScale: Float
    /// Scale of every feature of a word that flips or pins the meaning: negations and numbers.
    public var signalWordScale: Float

    public init(dimensions: Int = 2048, charGrams: ClosedRange<Int> = 3...4, wordWeight: Float = 1,
                bigramWeight: Float = 0.7, charGramWeight: Float = 0.35, functionWordScale: Float = 1,
                signalWordScale: Float = 1) {
        self.dimensions = max(16, dimensions)
        self.charGrams = max(1, charGrams.lowerBound)...max(1, charGrams.upperBound)
        self.wordWeight = wordWeight
        self.bigramWeight = bigramWeight
        self.charGramWeight = charGramWeight
        self.functionWordScale = functionWordScale
        self.signalWordScale = signalWordScale
    }

    /// English function words (articles, pronouns, auxiliaries, prepositions, question words).
    static let functionWords: Set<[UInt8]> = Set([
        "a", "an", "the", "i", "me", "my", "you", "your", "we", "our", "it", "its", "is", "are", "was", "be",
        "do", "does", "did", "can", "could", "would", "should", "will", "how", "what", "whats", "which", "when",
        "where", "who", "why", "to", "of", "in", "on", "for", "at", "by", "with", "from", "as", "and", "or",
        "this", "that", "there", "s", "please", "get",
    ].map { Array($0.utf8) })
    static let negations: Set<[UInt8]> = Set(["not", "no", "never", "without", "cannot", "cant", "dont", "isnt", "nor"]
        .map { Array($0.utf8) })

    func scale(_ word: [UInt8]) -> Float {
        if Self.negations.contains(word) || word.contains(where: { (0x30...0x39).contains($0) }) { return signalWordScale }
        return Self.functionWords.contains(word) ? functionWordScale : 1
    }

    enum CodingKeys: String, CodingKey {
        case dimensions, charGrams, wordWeight, bigramWeight, charGramWeight, functionWordScale, signalWordScale
    }

    /// Decodes through the validating initialiser (a corrupt file cannot produce zero buckets).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let dimensions = try c.decode(Int.self, forKey: .dimensions)
        guard (16...(1 << 24)).contains(dimensions) else {
            throw DecodingError.dataCorruptedError(forKey: .dimensions, in: c, debugDescription: "dimensions must be 16…16777216")
        }
        let weights = try [CodingKeys.wordWeight, .bigramWeight, .charGramWeight].map { try c.decode(Float.self, forKey: $0) }
        guard weights.allSatisfy(\.isFinite) else {
            throw DecodingError.dataCorruptedError(forKey: .wordWeight, in: c, debugDescription: "feature weights must be finite")
        }
        let functionScale = try c.decodeIfPresent(Float.self, forKey: .functionWordScale) ?? 1
        let signalScale = try c.decodeIfPresent(Float.self, forKey: .signalWordScale) ?? 1
        guard functionScale.isFinite, signalScale.isFinite else {
            throw DecodingError.dataCorruptedError(forKey: .functionWordScale, in: c, debugDescription: "scales must be finite")
        }
        self.init(dimensions: dimensions, charGrams: try c.decode(ClosedRange<Int>.self, forKey: .charGrams),
                  wordWeight: weights[0], bigramWeight: weights[1], charGramWeight: weights[2],
                  functionWordScale: functionScale, signalWordScale: signalScale)
    }

    /// Lower-cased alphanumeric words (other characters separate words; `+-*/=<>` are kept as words
    /// of their own so that "2+2" and "2*2" differ).
    public static func words(_ text: String) -> [String] {
        var words: [String] = []
        var current = ""
        for scalar in text.lowercased().unicodeScalars {
            if scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) {
                current.unicodeScalars.append(scalar)
            } else {
                if !current.isEmpty { words.append(current); current = "" }
                if "+-*/=<>%^".unicodeScalars.contains(scalar) { words.append(String(scalar)) }
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    /// Feature (bucket, value) pairs; buckets may repeat.
    public func features(_ text: String) -> [(Int, Float)] {
        let words = Self.words(text).map { Array($0.utf8) }
        var out: [(Int, Float)] = []
        out.reserveCapacity(words.count * 12)
        let dimensions = UInt64(self.dimensions)
        func add(_ hash: UInt64, _ weight: Float) {
            let mixed = Self.finalize(hash)
            out.append((Int(mixed % dimensions), (mixed >> 63) == 0 ? weight : -weight))
        }
        // Each kind of feature hashes from its own prefix, so a word never collides with a gram by design.
        let wordSeed = StableHash.fnv1a("w:".utf8)
        let bigramSeed = StableHash.fnv1a("b:".utf8)
        let gramSeed = StableHash.fnv1a("c:".utf8)
        var scalars: [UInt32] = []
        let scales = words.map(scale)
        for (i, word) in words.enumerated() {
            let wordScale = scales[i]
            add(StableHash.fnv1a(word, seed: wordSeed), wordWeight * wordScale)
            if i > 0 {
                let left = StableHash.fnv1a(words[i - 1], seed: bigramSeed)
                add(StableHash.fnv1a(word, seed: StableHash.fnv1a(CollectionOfOne(UInt8(32)), seed: left)),
                    bigramWeight * max(wordScale, scales[i - 1]))
            }
            scalars.removeAll(keepingCapacity: true)
            scalars.append(0x5E)  // "^"
            for scalar in String(decoding: word, as: UTF8.self).unicodeScalars { scalars.append(scalar.value) }
            scalars.append(0x24)  // "$"
            guard scalars.count > 2 else { continue }
            for n in charGrams where scalars.count >= n {
                for start in 0...(scalars.count - n) {
                    var hash = gramSeed
                    for k in start..<(start + n) {
                        var value = scalars[k]
                        for _ in 0..<4 {
                            hash ^= UInt64(value & 0xFF)
                            hash &*= 0x0000_0100_0000_01B3
                            value >>= 8
                        }
                    }
                    add(hash, charGramWeight * wordScale)
                }
            }
        }
        return out
    }

    /// A final avalanche (SplitMix64's) so the low bits used for the bucket depend on every input byte.
    @inline(__always) static func finalize(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A dense, L2-normalised vector (all zeros for a text without words).
    public func vector(_ text: String) -> [Float] {
        var vector = [Float](repeating: 0, count: dimensions)
        for (bucket, value) in features(text) { vector[bucket] += value }
        var norm: Float = 0
        for value in vector { norm += value * value }
        guard norm > 0 else { return vector }
        let scale = 1 / norm.squareRoot()
        for i in vector.indices { vector[i] *= scale }
        return vector
    }
}

/// The built-in offline embedder: hashed words, word bigrams and character n-grams, L2-normalised.
/// It captures lexical overlap (rewordings that share words and stems), not deep meaning; see the
/// "Semantic cache thresholds" article for its measured false-hit trade-off.
public struct HashedNGramEmbedder: Embedder {
    public let features: HashedFeatures
    /// The embedder's defaults: function words scaled to 0.3 and negations/numbers to 1.5, so that
    /// rewordings (which differ mostly in function words) score higher and near-misses (which differ
    /// in a content word, a number or a "not") lower. See "Semantic cache thresholds".
    public static let defaultFeatures = HashedFeatures(functionWordScale: 0.3, signalWordScale: 1.5)
    public init(features: HashedFeatures = HashedNGramEmbedder.defaultFeatures) { self.features = features }
    public var dimensions: Int { features.dimensions }
    public func embed(_ texts: [String]) async throws -> [[Float]] { texts.map(features.vector) }
    /// Synchronous form.
    public func vector(_ text: String) -> [Float] { features.vector(text) }
}

/// Dot product in Float with four accumulators (the cache's inner loop; vectors are unit length there).
@inlinable func unitDot(_ a: [Float], _ b: [Float]) -> Double {
    guard a.count == b.count else { return 0 }
    return a.withUnsafeBufferPointer { x in
        b.withUnsafeBufferPointer { y in
            var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
            var i = 0
            let n = x.count
            while i + 4 <= n {
                s0 += x[i] * y[i]
                s1 += x[i + 1] * y[i + 1]
                s2 += x[i + 2] * y[i + 2]
                s3 += x[i + 3] * y[i + 3]
                i += 4
            }
            while i < n {
                s0 += x[i] * y[i]
                i += 1
            }
            return Double((s0 + s1) + (s2 + s3))
        }
    }
}

/// The vector scaled to unit length (unchanged when it is all zeros or not finite).
func normalized(_ v: [Float]) -> [Float] {
    var norm: Float = 0
    for x in v { norm += x * x }
    guard norm > 0, norm.isFinite else { return v }
    let scale = 1 / norm.squareRoot()
    return v.map { $0 * scale }
}

/// Cosine similarity of two vectors (0 when either is zero or the lengths differ).
public func cosineSimilarity(_ a: [Float], _ b: [Float]) -> Double {
    guard a.count == b.count, !a.isEmpty else { return 0 }
    var dot: Double = 0, na: Double = 0, nb: Double = 0
    for i in a.indices {
        let x = Double(a[i]), y = Double(b[i])
        dot += x * y
        na += x * x
        nb += y * y
    }
    guard na > 0, nb > 0 else { return 0 }
    return dot / (na.squareRoot() * nb.squareRoot())
}
