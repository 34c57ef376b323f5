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

    public init(dimensions: Int = 2048, charGrams: ClosedRange<Int> = 3...4, wordWeight: Float = 1,
                bigramWeight: Float = 0.7, charGramWeight: Float = 0.35) {
        self.dimensions = max(16, dimensions)
        self.charGrams = max(1, charGrams.lowerBound)...max(1, charGrams.upperBound)
        self.wordWeight = wordWeight
        self.bigramWeight = bigramWeight
        self.charGramWeight = charGramWeight
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
        let words = Self.words(text)
        var out: [(Int, Float)] = []
        out.reserveCapacity(words.count * 8)
        func add(_ feature: String, _ weight: Float) {
            let hash = StableHash.of(feature)
            let bucket = Int(hash % UInt64(dimensions))
            let sign: Float = (hash >> 63) == 0 ? 1 : -1
            out.append((bucket, sign * weight))
        }
        for (i, word) in words.enumerated() {
            add("w:" + word, wordWeight)
            if i > 0 { add("b:" + words[i - 1] + " " + word, bigramWeight) }
            let chars = Array(("^" + word + "$").unicodeScalars)
            for n in charGrams where chars.count >= n && chars.count > 2 {
                for start in 0...(chars.count - n) {
                    var gram = "c:"
                    gram.unicodeScalars.append(contentsOf: chars[start..<(start + n)])
                    add(gram, charGramWeight)
                }
            }
        }
        return out
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
    public init(features: HashedFeatures = .init()) { self.features = features }
    public var dimensions: Int { features.dimensions }
    public func embed(_ texts: [String]) async throws -> [[Float]] { texts.map(features.vector) }
    /// Synchronous form.
    public func vector(_ text: String) -> [Float] { features.vector(text) }
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
