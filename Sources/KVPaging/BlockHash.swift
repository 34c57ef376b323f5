/// Stable 64-bit hashing for prefix-cache keys (identical on every run and platform).
///
/// Swift's `Hasher` is randomly seeded per process, so it cannot name a block
/// across runs or machines; these functions can. The token hash is a
/// four-lane multiply–rotate design (in the style of xxHash64, written here)
/// that processes one token id per 64-bit word, so a 2,000-token prompt
/// hashes in well under a microsecond.
public enum StableHash {
    @usableFromInline static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    @usableFromInline static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    @usableFromInline static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    @usableFromInline static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    @usableFromInline static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    @inlinable @inline(__always)
    static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    @inlinable @inline(__always)
    static func lane(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }

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

    /// The hash of one full block: chains `parent` (the previous block's hash, or a root value),
    /// the `salt` and the block's token ids.
    @inlinable
    public static func block(parent: UInt64, salt: UInt64, tokens: UnsafeBufferPointer<Int>) -> UInt64 {
        var v1 = parent &+ p1 &+ p2
        var v2 = salt &+ p2
        var v3 = parent ^ p3
        var v4 = salt &- p1
        let n = tokens.count
        var i = 0
        while i + 4 <= n {
            v1 = lane(v1, UInt64(bitPattern: Int64(tokens[i])))
            v2 = lane(v2, UInt64(bitPattern: Int64(tokens[i + 1])))
            v3 = lane(v3, UInt64(bitPattern: Int64(tokens[i + 2])))
            v4 = lane(v4, UInt64(bitPattern: Int64(tokens[i + 3])))
            i += 4
        }
        var h = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
        h = (h ^ lane(0, v1)) &* p1 &+ p4
        h = (h ^ lane(0, v2)) &* p1 &+ p4
        h = (h ^ lane(0, v3)) &* p1 &+ p4
        h = (h ^ lane(0, v4)) &* p1 &+ p4
        h &+= UInt64(n)
        while i < n {
            h ^= lane(0, UInt64(bitPattern: Int64(tokens[i])))
            h = rotl(h, 27) &* p1 &+ p4
            i += 1
        }
        return avalanche(h)
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
    private var keys: [UInt64]
    private var values: [Int32]
    private let mask: Int
    private(set) var count = 0

    /// `0` marks an empty slot; a real hash of 0 is stored as 1.
    @inline(__always) private static func key(_ hash: UInt64) -> UInt64 { hash == 0 ? 1 : hash }

    init(maxEntries: Int) {
        var cap = 16
        while cap < 2 * maxEntries { cap <<= 1 }
        keys = [UInt64](repeating: 0, count: cap)
        values = [Int32](repeating: -1, count: cap)
        mask = cap - 1
    }

    func find(_ hash: UInt64) -> Int? {
        let k = Self.key(hash)
        var i = Int(truncatingIfNeeded: k) & mask
        while true {
            let stored = keys[i]
            if stored == k { return Int(values[i]) }
            if stored == 0 { return nil }
            i = (i + 1) & mask
        }
    }

    /// Inserts when absent; returns false (and changes nothing) when the hash is present.
    mutating func insert(_ hash: UInt64, block: Int) -> Bool {
        let k = Self.key(hash)
        var i = Int(truncatingIfNeeded: k) & mask
        while true {
            let stored = keys[i]
            if stored == k { return false }
            if stored == 0 {
                keys[i] = k
                values[i] = Int32(truncatingIfNeeded: block)
                count += 1
                return true
            }
            i = (i + 1) & mask
        }
    }

    /// Removes the entry for `hash` if it maps to `block`.
    mutating func remove(_ hash: UInt64, block: Int) {
        let k = Self.key(hash)
        var i = Int(truncatingIfNeeded: k) & mask
        while true {
            let stored = keys[i]
            if stored == 0 { return }
            if stored == k {
                guard Int(values[i]) == block else { return }
                break
            }
            i = (i + 1) & mask
        }
        // Backward-shift deletion: move later entries of the probe run into the hole.
        var hole = i
        var j = (i + 1) & mask
        while keys[j] != 0 {
            let home = Int(truncatingIfNeeded: keys[j]) & mask
            // Entry j may move to `hole` if its home is not in (hole, j] cyclically.
            let distHome = (j - home) & mask
            let distHole = (j - hole) & mask
            if distHome >= distHole {
                keys[hole] = keys[j]
                values[hole] = values[j]
                hole = j
            }
            j = (j + 1) & mask
        }
        keys[hole] = 0
        values[hole] = -1
        count -= 1
    }
}
