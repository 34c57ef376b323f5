import Foundation

/// A small, fast, seedable pseudo-random generator (xoshiro256**) with the
/// continuous distributions a serving simulator needs.
///
/// Sequences are identical on every platform for a given seed, which makes
/// every simulation reproducible.
public struct SimulationRandom: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// Seeds the four state words from `seed` through SplitMix64, as the xoshiro authors recommend.
    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(); s1 = splitmix(); s2 = splitmix(); s3 = splitmix()
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// A uniform double in [0, 1) with 53 random bits.
    @inline(__always)
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A uniform double in (0, 1], safe for `log`.
    @inline(__always)
    public mutating func openUnit() -> Double { Double((next() >> 11) + 1) * 0x1.0p-53 }

    /// An exponential variate with the given rate (mean `1 / rate`).
    public mutating func exponential(rate: Double) -> Double { -log(openUnit()) / rate }

    /// A standard normal variate (Box–Muller; one of the pair is discarded for simplicity).
    public mutating func standardNormal() -> Double {
        let u1 = openUnit(), u2 = unit()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// A gamma variate with the given shape `k` and scale `theta` (Marsaglia–Tsang, 2000).
    public mutating func gamma(shape k: Double, scale theta: Double) -> Double {
        if k < 1 {
            // Boost: Gamma(k) = Gamma(k + 1) · U^(1/k).
            let g = gamma(shape: k + 1, scale: 1)
            return theta * g * pow(openUnit(), 1 / k)
        }
        let d = k - 1.0 / 3.0
        let c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double, v: Double
            repeat {
                x = standardNormal()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = openUnit()
            if u < 1 - 0.0331 * x * x * x * x { return theta * d * v }
            if log(u) < 0.5 * x * x + d * (1 - v + log(v)) { return theta * d * v }
        }
    }

    /// A uniformly chosen index in `0 ..< n` (n > 0), without modulo bias (Lemire).
    public mutating func index(below n: Int) -> Int {
        Int(truncatingIfNeeded: next().multipliedFullWidth(by: UInt64(n)).high)
    }
}
