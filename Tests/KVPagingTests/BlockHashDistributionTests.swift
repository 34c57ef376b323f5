import Testing
import TensorCore
@testable import KVPaging

/// The block hash spreads structured inputs evenly: the cache index uses its low bits directly.
@Suite struct BlockHashDistribution {
    /// Pearson χ² of the low 12 bits over 4,096 buckets. With n ≫ buckets the statistic is about
    /// normal with mean 4,095 and standard deviation √(2 · 4,095) ≈ 90.5; 6 σ above is a clear failure.
    private func chiSquareLow12(_ hashes: [UInt64]) -> Double {
        var counts = [Int](repeating: 0, count: 4096)
        for h in hashes { counts[Int(h & 4095)] += 1 }
        let expected = Double(hashes.count) / 4096
        return counts.reduce(0) { $0 + (Double($1) - expected) * (Double($1) - expected) / expected }
    }

    @Test func structuredBlocksHashUniformlyWithoutCollisions() {
        var rng = SplitMix64(seed: 77)
        // Three structured families of 16-token blocks: consecutive runs, a tiny vocabulary, and one-token edits.
        let runs = (0..<20_000).map { i in (0..<16).map { i + $0 } }
        let tiny = (0..<20_000).map { _ in (0..<16).map { _ in Int(rng.next() % 4) } }
        let edits = (0..<20_000).map { i in (0..<16).map { $0 == i % 16 ? i : 7 } }
        for (name, blocks) in [("runs", runs), ("tiny vocabulary", tiny), ("one-token edits", edits)] {
            let distinct = Set(blocks)
            let hashes = distinct.map { StableHash.block(parent: StableHash.root(salt: 0), salt: 0, tokens: $0) }
            #expect(Set(hashes).count == distinct.count, "\(name): 64-bit collisions")
            let chi = chiSquareLow12(hashes)
            #expect(chi < 4095 + 6 * 90.5, "\(name): χ² \(chi)")
        }
        // Chained: the same block under 20,000 different parents.
        let block = Array(0..<16)
        let chained = (0..<20_000).map { StableHash.block(parent: UInt64($0), salt: 0, tokens: block) }
        #expect(Set(chained).count == 20_000)
        #expect(chiSquareLow12(chained) < 4095 + 6 * 90.5)
    }
}
