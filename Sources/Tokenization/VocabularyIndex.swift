/// Token text → id lookup keyed by raw UTF-8 bytes, so the encoders look up any byte range of their
/// working buffer without building a `String`. Open addressing over a power-of-two table.
struct VocabularyIndex: Sendable {
    /// All token texts, back to back.
    private let storage: [UInt8]
    /// `starts[id] ..< starts[id + 1]` is token `id`'s text in ``storage``.
    private let starts: [Int32]
    /// Slot → token id, or -1 when empty.
    private let slots: [Int32]
    private let mask: Int

    /// Builds the index; `duplicate` receives the first repeated text and both ids.
    init(tokens: [[UInt8]]) throws(TokenizationError) {
        var storage: [UInt8] = []
        storage.reserveCapacity(tokens.reduce(0) { $0 + $1.count })
        var starts: [Int32] = [0]
        starts.reserveCapacity(tokens.count + 1)
        for token in tokens {
            storage.append(contentsOf: token)
            starts.append(Int32(storage.count))
        }
        var capacity = 16
        while capacity < tokens.count * 2 { capacity <<= 1 }
        var slots = [Int32](repeating: -1, count: capacity)
        let mask = capacity - 1
        for (id, token) in tokens.enumerated() {
            var slot = Int(truncatingIfNeeded: token.withUnsafeBufferPointer { Self.hash($0) }) & mask
            while slots[slot] >= 0 {
                let other = Int(slots[slot])
                if storage[Int(starts[other])..<Int(starts[other + 1])].elementsEqual(token) {
                    throw TokenizationError(
                        .invalidVocabulary,
                        "token text \(String(decoding: token, as: UTF8.self).debugDescription) appears twice, as ids \(other) and \(id); every token text must be unique (re-export the vocabulary)")
                }
                slot = (slot + 1) & mask
            }
            slots[slot] = Int32(id)
        }
        self.storage = storage
        self.starts = starts
        self.slots = slots
        self.mask = mask
    }

    @inline(__always)
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h ^ (h >> 29)
    }

    /// The id of the token whose text is exactly `bytes`.
    func id(of bytes: UnsafeBufferPointer<UInt8>) -> Int32? {
        var slot = Int(truncatingIfNeeded: Self.hash(bytes)) & mask
        return storage.withUnsafeBufferPointer { store -> Int32? in
            while true {
                let id = slots[slot]
                if id < 0 { return nil }
                let start = Int(starts[Int(id)])
                let end = Int(starts[Int(id) + 1])
                if end - start == bytes.count, memoryEqual(store, start, bytes) { return id }
                slot = (slot + 1) & mask
            }
        }
    }

    func id(of bytes: [UInt8]) -> Int32? {
        bytes.withUnsafeBufferPointer { id(of: $0) }
    }

    /// Token `id`'s text as bytes.
    func bytes(of id: Int) -> ArraySlice<UInt8> {
        storage[Int(starts[id])..<Int(starts[id + 1])]
    }

    @inline(__always)
    private func memoryEqual(_ store: UnsafeBufferPointer<UInt8>, _ start: Int, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        while i < bytes.count {
            if store[start + i] != bytes[i] { return false }
            i += 1
        }
        return true
    }
}

/// `(left id, right id) → (rank, merged id)` for BPE, open addressing over 64-bit keys.
struct MergeTable: Sendable {
    private let keys: [UInt64]
    /// `rank << 32 | merged id`.
    private let values: [UInt64]
    private let shift: UInt64
    private static let empty = UInt64.max

    init(pairs: [(left: Int32, right: Int32, merged: Int32)]) {
        var bits: UInt64 = 4
        while (1 << bits) < pairs.count * 2 { bits += 1 }
        let capacity = 1 << Int(bits)
        var keys = [UInt64](repeating: Self.empty, count: capacity)
        var values = [UInt64](repeating: 0, count: capacity)
        let shift = 64 - bits
        for (rank, pair) in pairs.enumerated() {
            let key = UInt64(UInt32(bitPattern: pair.left)) << 32 | UInt64(UInt32(bitPattern: pair.right))
            var slot = Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
            while keys[slot] != Self.empty {
                if keys[slot] == key { break }  // a repeated merge keeps its first (lowest) rank
                slot = (slot + 1) & (capacity - 1)
            }
            if keys[slot] == Self.empty {
                keys[slot] = key
                values[slot] = UInt64(rank) << 32 | UInt64(UInt32(bitPattern: pair.merged))
            }
        }
        self.keys = keys
        self.values = values
        self.shift = shift
    }

    /// The rank and merged id of `left right`, or `nil` when no merge joins them.
    @inline(__always)
    func lookup(_ left: Int32, _ right: Int32) -> (rank: Int32, merged: Int32)? {
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        let mask = keys.count - 1
        var slot = Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
        while true {
            let k = keys[slot]
            if k == key {
                let v = values[slot]
                return (Int32(truncatingIfNeeded: v >> 32), Int32(bitPattern: UInt32(truncatingIfNeeded: v)))
            }
            if k == Self.empty { return nil }
            slot = (slot + 1) & mask
        }
    }
}
