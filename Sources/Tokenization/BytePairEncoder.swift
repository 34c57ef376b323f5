/// Byte-level BPE over token ids: each byte of a word starts as the token for its byte-level
/// character; the adjacent pair with the lowest merge rank (leftmost on ties) merges until none can.
/// That is llama.cpp's `llm_tokenizer_bpe_session` order (a priority queue of `(rank, left index)`)
/// and Hugging Face's `BPE::merge_word`.
struct BytePairEncoder: Sendable {
    /// The token id of each byte's byte-level character (`Ġ` for a space), or -1 when the vocabulary lacks it.
    let byteTokens: [Int32]
    let merges: MergeTable
    /// Words at most this long use the quadratic scan; longer ones a heap.
    static let linearScanLimit = 48

    init(vocabulary: VocabularyIndex, merges mergeStrings: [String]) throws(TokenizationError) {
        var byteTokens = [Int32](repeating: -1, count: 256)
        for byte in 0..<256 {
            byteTokens[byte] = vocabulary.id(of: ByteLevel.utf8ForByte[byte]) ?? -1
        }
        var pairs: [(left: Int32, right: Int32, merged: Int32)] = []
        pairs.reserveCapacity(mergeStrings.count)
        for (index, merge) in mergeStrings.enumerated() {
            let bytes = Array(merge.utf8)
            // llama.cpp splits at the first space after the first byte
            guard bytes.count >= 3, let space = bytes[1...].firstIndex(of: 0x20), space + 1 < bytes.count else {
                throw TokenizationError(
                    .invalidVocabulary,
                    "merge \(index) \(merge.debugDescription) is not two tokens separated by a space; tokenizer.ggml.merges must hold \"left right\" strings",
                    underlying: "merge \(index)")
            }
            let left = Array(bytes[..<space])
            let right = Array(bytes[(space + 1)...])
            guard let l = vocabulary.id(of: left), let r = vocabulary.id(of: right) else {
                let missing = vocabulary.id(of: left) == nil ? left : right
                throw TokenizationError(
                    .invalidVocabulary,
                    "merge \(index) \(merge.debugDescription) names \(String(decoding: missing, as: UTF8.self).debugDescription), which is not a token; the merges do not belong to this vocabulary",
                    underlying: "merge \(index)")
            }
            guard let m = vocabulary.id(of: left + right) else {
                throw TokenizationError(
                    .invalidVocabulary,
                    "merge \(index) \(merge.debugDescription) produces \(String(decoding: left + right, as: UTF8.self).debugDescription), which is not a token; the merges do not belong to this vocabulary",
                    underlying: "merge \(index)")
            }
            pairs.append((l, r, m))
        }
        self.byteTokens = byteTokens
        self.merges = MergeTable(pairs: pairs)
    }

    /// Appends the tokens of one pre-tokenized word.
    func encode(word: UnsafeBufferPointer<UInt8>, into output: inout [Int], scratch: inout [Int32]) {
        scratch.removeAll(keepingCapacity: true)
        for byte in word {
            let id = byteTokens[Int(byte)]
            if id >= 0 { scratch.append(id) }  // a byte the vocabulary cannot spell is dropped, as llama.cpp does
        }
        if scratch.count > Self.linearScanLimit {
            mergeWithHeap(&scratch)
        } else {
            mergeLinearly(&scratch)
        }
        for id in scratch { output.append(Int(id)) }
    }

    private func mergeLinearly(_ ids: inout [Int32]) {
        let n = ids.count
        guard n > 1 else { return }
        // pair i is (ids[i], ids[i + 1]): its rank and merged id; stack buffers, no allocation per word
        let live = withUnsafeTemporaryAllocation(of: (rank: Int32, merged: Int32).self, capacity: n - 1) { pairs -> Int in
            ids.withUnsafeMutableBufferPointer { ids -> Int in
                var count = n
                for i in 0..<(n - 1) {
                    pairs[i] = merges.lookup(ids[i], ids[i + 1]) ?? (.max, -1)
                }
                while true {
                    var best = -1
                    var bestRank = Int32.max
                    for i in 0..<(count - 1) where pairs[i].rank < bestRank {
                        bestRank = pairs[i].rank
                        best = i
                    }
                    if best < 0 { return count }
                    ids[best] = pairs[best].merged
                    // remove symbol best + 1 and pair best
                    var j = best + 1
                    while j < count - 1 {
                        ids[j] = ids[j + 1]
                        j += 1
                    }
                    j = best
                    while j < count - 2 {
                        pairs[j] = pairs[j + 1]
                        j += 1
                    }
                    count -= 1
                    if best > 0 { pairs[best - 1] = merges.lookup(ids[best - 1], ids[best]) ?? (.max, -1) }
                    if best < count - 1 { pairs[best] = merges.lookup(ids[best], ids[best + 1]) ?? (.max, -1) }
                    if count == 1 { return 1 }
                }
            }
        }
        ids.removeLast(n - live)
    }

    private struct Candidate {
        var rank: Int32
        var left: Int32
        var right: Int32
        var leftID: Int32
        var rightID: Int32
        var merged: Int32

        @inline(__always)
        static func precedes(_ a: Candidate, _ b: Candidate) -> Bool {
            a.rank < b.rank || (a.rank == b.rank && a.left < b.left)
        }
    }

    /// The same merge order with a doubly linked symbol list and a binary heap, for long words.
    private func mergeWithHeap(_ ids: inout [Int32]) {
        let n = ids.count
        var next = [Int32](unsafeUninitializedCapacity: n) { buffer, count in
            for i in 0..<n { buffer[i] = i + 1 < n ? Int32(i + 1) : -1 }
            count = n
        }
        var prev = [Int32](unsafeUninitializedCapacity: n) { buffer, count in
            for i in 0..<n { buffer[i] = Int32(i - 1) }
            count = n
        }
        var alive = [Bool](repeating: true, count: n)
        var heap = BinaryHeap<Candidate>(precedes: Candidate.precedes)
        func consider(_ l: Int32, _ r: Int32) {
            guard l >= 0, r >= 0, let m = merges.lookup(ids[Int(l)], ids[Int(r)]) else { return }
            heap.push(Candidate(rank: m.rank, left: l, right: r, leftID: ids[Int(l)], rightID: ids[Int(r)], merged: m.merged))
        }
        for i in 0..<(n - 1) { consider(Int32(i), Int32(i + 1)) }
        while let top = heap.pop() {
            let l = Int(top.left), r = Int(top.right)
            guard alive[l], alive[r], next[l] == top.right, ids[l] == top.leftID, ids[r] == top.rightID else { continue }
            ids[l] = top.merged
            alive[r] = false
            next[l] = next[r]
            if next[r] >= 0 { prev[Int(next[r])] = Int32(l) }
            consider(prev[l], Int32(l))
            consider(Int32(l), next[l])
        }
        var result: [Int32] = []
        result.reserveCapacity(n)
        var i: Int32 = 0
        while i >= 0 {
            result.append(ids[Int(i)])
            i = next[Int(i)]
        }
        ids = result
    }
}

/// A minimal binary heap; `precedes(a, b)` puts `a` nearer the top.
struct BinaryHeap<Element> {
    private var items: [Element] = []
    private let precedes: (Element, Element) -> Bool

    init(precedes: @escaping (Element, Element) -> Bool) {
        self.precedes = precedes
    }

    var isEmpty: Bool { items.isEmpty }

    mutating func push(_ element: Element) {
        items.append(element)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard precedes(items[child], items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Element? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var best = parent
            if left < items.count, precedes(items[left], items[best]) { best = left }
            if right < items.count, precedes(items[right], items[best]) { best = right }
            if best == parent { break }
            items.swapAt(parent, best)
            parent = best
        }
        return top
    }
}
