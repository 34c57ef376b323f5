import Testing
import TensorCore
@testable import KVPaging

private func manager(blocks: Int, blockSize: Int = 4, maxLen: Int = 256, caching: Bool = true, host: Int = 0) throws -> KVBlockManager {
    try KVBlockManager(KVCacheConfiguration(
        blockCount: blocks, blockSize: blockSize, maxSequenceLength: maxLen,
        enablePrefixCaching: caching, watermark: 0, hostBlockCount: host
    ))
}

private func admitted(_ o: AdmissionOutcome, sourceLocation: SourceLocation = #_sourceLocation) throws -> Admission {
    try #require(o.admission, "expected admission, got \(o)", sourceLocation: sourceLocation)
}

private func swapped(_ o: SwapOutcome, sourceLocation: SourceLocation = #_sourceLocation) throws -> [BlockCopy] {
    try #require(o.copies, "expected a swap, got \(o)", sourceLocation: sourceLocation)
}

/// Swapping keeps prefix-cache identity: blocks brought back are registered again (or reused in place).
@Suite struct SwapAndPrefixCache {
    // A 10-token prompt in 4-token blocks: blocks [0,1,2,3] [4,5,6,7] are full and registered,
    // [8,9] is partial. A later identical prompt may reuse ⌊(10 − 1) / 4⌋ = 2 blocks = 8 tokens.
    let prompt = Array(100..<110)

    @Test func swapInAfterEvictionRegistersTheFullBlocksAgain() throws {
        var kv = try manager(blocks: 8, host: 8)
        _ = try admitted(kv.admit(1, prompt: .tokens(prompt)))
        _ = try swapped(kv.swapOut([1]))
        kv.evictCachedBlocks()                      // the device forgets the prefix
        #expect(kv.pool.registeredCount == 0)
        let back = try swapped(kv.swapIn([1]))
        #expect(back.count == 3)                    // nothing left on the device: all 3 blocks copied
        let table = try kv.blockTable(of: 1)
        // The two full blocks are registered again, the partial one is not.
        #expect(kv.pool.isRegistered(table[0]) && kv.pool.isRegistered(table[1]) && !kv.pool.isRegistered(table[2]))
        // A new request with the same prompt hits them: exactly 8 cached tokens, the same physical blocks.
        let b = try admitted(kv.admit(2, prompt: .tokens(prompt)))
        #expect(b.cachedTokens == 8)
        #expect(Array(b.blockTable.prefix(2)) == Array(table.prefix(2)))
        #expect(kv.pool.refCount(of: table[0]) == 2 && kv.pool.refCount(of: table[2]) == 1)
    }

    @Test func swapInReusesBlocksTheDeviceStillHoldsWithoutCopying() throws {
        var kv = try manager(blocks: 8, host: 8)
        let a = try admitted(kv.admit(1, prompt: .tokens(prompt)))
        let out = try swapped(kv.swapOut([1]))
        #expect(out.count == 3)
        // The full blocks stayed cached-free on the device; the partial block was freed.
        #expect(kv.usage.cachedFreeBlocks == 2 && kv.usage.activeBlocks == 0)
        let back = try swapped(kv.swapIn([1]))
        // Only the partial block is copied back; the full blocks are the same device blocks as before.
        #expect(back.count == 1)
        let table = try kv.blockTable(of: 1)
        #expect(Array(table.prefix(2)) == Array(a.blockTable.prefix(2)))
        #expect(back.first?.destination == table[2])
        #expect(kv.usage.cachedFreeBlocks == 0 && kv.usage.activeBlocks == 3 && kv.usage.hostUsedBlocks == 0)
    }

    @Test func blocksStillHeldByAnotherSequenceCostNothingOnSwapIn() throws {
        // Sequences 1 and 2 share the two full prompt blocks (prefix hit); each has its own partial block.
        var kv = try manager(blocks: 5, host: 8)
        let a = try admitted(kv.admit(1, prompt: .tokens(prompt)))
        let b = try admitted(kv.admit(2, prompt: .tokens(prompt)))
        #expect(b.cachedTokens == 8)
        _ = try swapped(kv.swapOut([1]))            // 3 host copies; device: 2 shared (held by 2) + 2's partial
        // Fill the device but one block: 5 − 3 active = 2 free → take 1.
        _ = try admitted(kv.admit(3, prompt: .length(4)))
        #expect(kv.usage.availableBlocks == 1)
        // Swap-in needs only the partial block: the full ones are still active for sequence 2.
        let back = try swapped(kv.swapIn([1]))
        #expect(back.count == 1)
        let table = try kv.blockTable(of: 1)
        #expect(Array(table.prefix(2)) == Array(a.blockTable.prefix(2)))
        #expect(kv.pool.refCount(of: table[0]) == 2 && kv.pool.refCount(of: table[1]) == 2)
        #expect(kv.usage.availableBlocks == 0)
    }

    @Test func swapInCapacityCountsRevivedBlocks() throws {
        // Both full blocks stay cached-free after swap-out; the other 6 blocks are taken by sequence 9.
        var kv = try manager(blocks: 8, host: 8)
        _ = try admitted(kv.admit(1, prompt: .tokens(prompt)))
        _ = try swapped(kv.swapOut([1]))
        _ = try admitted(kv.admit(9, prompt: .length(24)))   // 6 blocks: exactly the 6 free ones
        #expect(kv.usage.cachedFreeBlocks == 2 && kv.usage.freeBlocks == 0)
        // Reviving 2 cached blocks + 1 new block = 3 > 2 available: refused, nothing changes.
        guard case .wouldExceedCapacity(3, 2) = try kv.swapIn([1]) else { Issue.record("expected a capacity outcome"); return }
        #expect(try kv.isSwappedOut(1) && kv.usage.cachedFreeBlocks == 2)
    }

    @Test func cachingOffSwapsWithoutRegistration() throws {
        var kv = try manager(blocks: 8, caching: false, host: 8)
        _ = try admitted(kv.admit(1, prompt: .tokens(prompt)))
        _ = try swapped(kv.swapOut([1]))
        #expect(try swapped(kv.swapIn([1])).count == 3)
        #expect(kv.pool.registeredCount == 0)
    }
}

/// Eviction order: least recently released first; within a chain, the deepest block first.
@Suite struct EvictionOrder {
    @Test func chainsAreEvictedInReleaseOrderDeepestFirst() throws {
        var kv = try manager(blocks: 12)
        let a = try admitted(kv.admit(1, prompt: .tokens(Array(0..<9))))     // 2 full + 1 partial
        let b = try admitted(kv.admit(2, prompt: .tokens(Array(50..<59))))   // 2 full + 1 partial
        try kv.release(2)
        try kv.release(1)
        // Released 2 before 1: 2's chain first, each chain tail before its head; partial blocks are not cached.
        #expect(kv.pool.evictionOrder == [b.blockTable[1], b.blockTable[0], a.blockTable[1], a.blockTable[0]])
        // Reusing chain 2's head moves only it to the back.
        let c = try admitted(kv.admit(3, prompt: .tokens(Array(50..<54) + [7, 7, 7, 7, 7])))
        #expect(c.cachedTokens == 4)
        try kv.release(3)
        // Sequence 3 released its new full block [7, 7, 7, 7] (deeper) before the shared head.
        #expect(kv.pool.evictionOrder == [b.blockTable[1], a.blockTable[1], a.blockTable[0], c.blockTable[1], b.blockTable[0]])
    }

    @Test func forkFamilyReleasesDeepestFirstOnlyWhenTheLastHolderLeaves() throws {
        var kv = try manager(blocks: 12)
        // 12 tokens = 3 full blocks, all registered at admission (only hits are capped at length − 1).
        let a = try admitted(kv.admit(1, prompt: .tokens(Array(0..<12))))
        #expect(kv.pool.registeredCount == 3)
        try kv.fork(1, into: 2)
        try kv.release(1)
        #expect(kv.pool.evictionOrder.isEmpty)          // still held by the child
        try kv.preempt(2)
        #expect(kv.pool.evictionOrder == a.blockTable.reversed())
    }

    @Test func swapOutReleasesDeviceBlocksDeepestFirst() throws {
        var kv = try manager(blocks: 12, host: 8)
        let a = try admitted(kv.admit(1, prompt: .tokens(Array(0..<12))))
        try kv.fork(1, into: 2)
        _ = try swapped(kv.swapOut([1, 2]))
        #expect(kv.pool.evictionOrder == a.blockTable.reversed())
    }
}
