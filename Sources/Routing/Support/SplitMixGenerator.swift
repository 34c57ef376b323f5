/// A small, fast, seedable random number generator (SplitMix64) for backoff jitter, weighted
/// choices and tests. Not cryptographic.
public struct SplitMixGenerator: RandomNumberGenerator, Sendable, Hashable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A uniform double in [0, 1).
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}

/// FNV-1a 64-bit hash, stable across processes (Swift's `Hasher` is randomly seeded per process,
/// which would make hashed features and cache partitions change between runs).
enum StableHash {
    static func fnv1a<S: Sequence>(_ bytes: S, seed: UInt64 = 0xCBF2_9CE4_8422_2325) -> UInt64 where S.Element == UInt8 {
        var hash = seed
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        return hash
    }
    static func of(_ text: String) -> UInt64 { fnv1a(text.utf8) }
}
