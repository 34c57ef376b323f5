/// Stable 64-bit hashing for prefix-cache keys (identical on every run and platform).
///
/// Swift's `Hasher` is randomly seeded per process, so it cannot name a block
/// across runs or machines; these functions can. The block hash folds 128-bit
/// products of position-keyed token pairs (a multiply-and-fold design in the
/// style of wyhash, written here), so a 2,000-token prompt hashes in well under
/// a microsecond. It is not a cryptographic hash: a lookup always compares the
/// stored token ids, parent hash and salt, so a collision costs a cache miss,
/// never wrong K/V.
public enum StableHash {
    @usableFromInline static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    @usableFromInline static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    @usableFromInline static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    @usableFromInline static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    @usableFromInline static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    @inlinable @inline(__always)
    static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    /// Final mixing so every input bit affects every output bit.
    @inlinable @inline(__always)
    public static func avalanche(_ x: UInt64) -> UInt64 {
        var h = x
        h ^= h >> 33
        h &*= p2
        h ^= h >> 29
        h &*= p3
        h ^= h >> 32
        return h
    }

    /// The high and low halves of the 128-bit product, folded (one `mul` instruction).
    @inlinable @inline(__always)
    static func mum(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let r = a.multipliedFullWidth(by: b)
        return r.high ^ r.low
    }

    /// The hash of one full block: chains `parent` (the previous block's hash, or a root value),
    /// the `salt` and the block's token ids.
    ///
    /// Each pair of tokens, keyed by its position, goes through one 64 × 64 → 128-bit multiply whose
    /// halves are folded; the pair products are summed in two independent accumulators, so the work
    /// for a block has no long dependency chain. Only the last step — one more folded multiply of the
    /// block's content value with the parent hash and salt, then ``avalanche(_:)`` (a folded multiply
    /// alone leaves structure when parents differ in a few low bits) — depends on the previous block,
    /// which keeps a 125-block prompt's chain short.
    @inlinable
    public static func block(parent: UInt64, salt: UInt64, tokens: UnsafeBufferPointer<Int>) -> UInt64 {
        var acc1: UInt64 = 0, acc2: UInt64 = 0
        var k1 = p1, k2 = p3   // per-position keys: the same tokens in another order hash differently
        let n = tokens.count
        var i = 0
        while i + 4 <= n {
            acc1 &+= mum(UInt64(bitPattern: Int64(tokens[i])) ^ k1, UInt64(bitPattern: Int64(tokens[i + 1])) ^ k2)
            acc2 &+= mum(UInt64(bitPattern: Int64(tokens[i + 2])) ^ (k1 &+ p2), UInt64(bitPattern: Int64(tokens[i + 3])) ^ (k2 &+ p4))
            k1 &+= p2 &+ p2
            k2 &+= p4 &+ p4
            i += 4
        }
        while i < n {
            acc1 &+= mum(UInt64(bitPattern: Int64(tokens[i])) ^ k1, k2 ^ p5)
            k1 &+= p2
            k2 &+= p4
            i += 1
        }
        let content = acc1 ^ rotl(acc2, 32) ^ UInt64(truncatingIfNeeded: n)
        return avalanche(mum(content ^ p1, parent ^ rotl(salt, 17) ^ p2))
    }

    /// Convenience over an array.
    public static func block(parent: UInt64, salt: UInt64, tokens: [Int]) -> UInt64 {
        tokens.withUnsafeBufferPointer { block(parent: parent, salt: salt, tokens: $0) }
    }

    /// The chain's starting value for a salt (the "parent" of a prompt's first block).
    @inlinable
    public static func root(salt: UInt64) -> UInt64 { avalanche(salt ^ p5) }

    /// FNV-1a over the UTF-8 bytes, then ``avalanche(_:)``.
    public static func string(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in s.utf8 {
            h ^= UInt64(byte)
            h &*= 0x0000_0100_0000_01B3
        }
        return avalanche(h)
    }
}

/// Open-addressing map from a block hash to the block that holds it.
///
/// Keys are already well mixed, so the table uses the low bits directly,
/// linear probing and backward-shift deletion (no tombstones). Its capacity
/// is fixed at creation (≥ 2 × the number of blocks, a power of two): each
/// block is registered under at most one hash, so it never fills.
struct BlockHashIndex: Sendable {
    /// One slot: the (mapped) hash and its block side by side, so a probe reads one cache line.
    struct Slot: Sendable {
        var key: UInt64
        var value: Int32
    }

    private var slots: [Slot]
    private let mask: Int
    private(set) var count = 0

    /// `0` marks an empty slot; a real hash of 0 is stored as 1.
    @inline(__always) private static func key(_ hash: UInt64) -> UInt64 { hash == 0 ? 1 : hash }

    init(maxEntries: Int) {
        var cap = 16
        while cap < 2 * maxEntries { cap <<= 1 }
        slots = [Slot](repeating: Slot(key: 0, value: -1), count: cap)
        mask = cap - 1
    }

    func find(_ hash: UInt64) -> Int? {
        let k = Self.key(hash)
        var i = Int(truncatingIfNeeded: k) & mask
        return slots.withUnsafeBufferPointer { t -> Int? in
            while true {
                let stored = t[i].key
                if stored == k { return Int(t[i].value) }
                if stored == 0 { return nil }
                i = (i + 1) & mask
            }
        }
    }

    /// Inserts when absent; returns false (and changes nothing) when the hash is present.
    mutating func insert(_ hash: UInt64, block: Int) -> Bool {
        let k = Self.key(hash)
        var i = Int(truncatingIfNeeded: k) & mask
        let m = mask
        let inserted = slots.withUnsafeMutableBufferPointer { t -> Bool in
            while true {
                let stored = t[i].key
                if stored == k { return false }
                if stored == 0 {
                    t[i] = Slot(key: k, value: Int32(truncatingIfNeeded: block))
                    return true
                }
                i = (i + 1) & m
            }
        }
        if inserted { count += 1 }
        return inserted
    }

    /// Removes the entry for `hash` if it maps to `block`.
    mutating func remove(_ hash: UInt64, block: Int) {
        let k = Self.key(hash)
        var i = Int(truncatingIfNeeded: k) & mask
        while true {
            let stored = slots[i].key
            if stored == 0 { return }
            if stored == k {
                guard Int(slots[i].value) == block else { return }
                break
            }
            i = (i + 1) & mask
        }
        // Backward-shift deletion: move later entries of the probe run into the hole.
        var hole = i
        var j = (i + 1) & mask
        while slots[j].key != 0 {
            let home = Int(truncatingIfNeeded: slots[j].key) & mask
            // Entry j may move to `hole` if its home is not in (hole, j] cyclically.
            let distHome = (j - home) & mask
            let distHole = (j - hole) & mask
            if distHome >= distHole {
                slots[hole] = slots[j]
                hole = j
            }
            j = (j + 1) & mask
        }
        slots[hole] = Slot(key: 0, value: -1)
        count -= 1
    }
}
