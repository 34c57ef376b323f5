import Testing
import TensorCore
@testable import KVPaging

/// Random operation sequences against a shadow model of block *contents*.
///
/// The test owns a shadow K/V storage (one token id per device/host slot) and
/// performs exactly what the manager reports: it writes appended tokens at the
/// reported slots, performs copy-on-write and swap copies, and writes only the
/// prompt positions after `cachedTokens`. After every step it reads each
/// sequence back through its block table and compares with what the sequence
/// wrote. So a missing copy-on-write (a fork seeing a sibling's write), a wrong
/// prefix hit, a reused block that still belonged to someone, or a lost swap
/// copy all show up as wrong tokens. It also checks the bookkeeping invariants.
struct ShadowFuzz {
    var kv: KVBlockManager
    var rng: SplitMix64
    let bs: Int
    var device: [Int]
    var host: [Int]
    var expected: [SequenceID: [Int]] = [:]
    var nextID = 0
    var counts: [String: Int] = [:]
    /// Shared prompt templates (so prefix hits happen), per salt.
    let templates: [[Int]]
    let salts = [CacheSalt.none, CacheSalt("tenant-a"), CacheSalt("tenant-b")]

    init(seed: UInt64, blocks: Int, blockSize: Int, hostBlocks: Int, caching: Bool) throws {
        kv = try KVBlockManager(KVCacheConfiguration(
            blockCount: blocks, blockSize: blockSize, maxSequenceLength: 20 * blockSize,
            enablePrefixCaching: caching, watermark: 0.05, hostBlockCount: hostBlocks
        ))
        rng = SplitMix64(seed: seed)
        bs = blockSize
        device = [Int](repeating: -1, count: blocks * blockSize)
        host = [Int](repeating: -1, count: max(hostBlocks, 1) * blockSize)
        var r = SplitMix64(seed: seed ^ 0xABCD)
        templates = (0..<3).map { _ in (0..<(6 * blockSize)).map { _ in Int(r.next() % 50) } }
    }

    mutating func random(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }

    mutating func pick(onHost: Bool) throws -> SequenceID? {
        let ids = try kv.sequenceIDs.filter { try kv.isSwappedOut($0) == onHost }.sorted()
        return ids.isEmpty ? nil : ids[random(ids.count)]
    }

    mutating func write(_ id: SequenceID, positions: Range<Int>, tokens: [Int]) throws {
        for (k, p) in positions.enumerated() {
            device[try kv.slot(of: id, position: p).flatIndex(blockSize: bs)] = tokens[k]
        }
    }

    static func copyBlock(_ c: BlockCopy, _ bs: Int, from src: [Int], to dst: inout [Int]) {
        for o in 0..<bs { dst[c.destination * bs + o] = src[c.source * bs + o] }
    }

    mutating func step() throws {
        let op = random(100)
        switch op {
        case 0..<30:    // admit
            let id = SequenceID(nextID)
            nextID += 1
            let withTokens = random(4) != 0
            var prompt = Array(templates[random(3)].prefix(random(6 * bs) + 1))
            prompt += (0..<random(3 * bs)).map { _ in 100 + random(1000) }
            let salt = salts[random(3)]
            let o = try kv.admit(id, prompt: withTokens ? .tokens(prompt, salt: salt) : .length(prompt.count))
            switch o {
            case .admitted(let a):
                counts["admit", default: 0] += 1
                #expect(a.cachedTokens % bs == 0 && a.cachedTokens < prompt.count)
                if !withTokens { #expect(a.cachedTokens == 0) }
                if a.cachedTokens > 0 { counts["prefixHit", default: 0] += 1 }
                // Cached positions must already hold exactly this prompt's tokens.
                for p in 0..<a.cachedTokens {
                    #expect(device[try kv.slot(of: id, position: p).flatIndex(blockSize: bs)] == prompt[p])
                }
                try write(id, positions: a.cachedTokens..<prompt.count, tokens: Array(prompt[a.cachedTokens...]))
                expected[id] = prompt
            case .wouldExceedCapacity(let need, let avail):
                counts["admitFull", default: 0] += 1
                #expect(need > avail)
                #expect(!kv.contains(id))
            }
        case 30..<60:   // append
            guard let id = try pick(onHost: false) else { return }
            let n = random(2) == 0 ? 1 : random(2 * bs) + 1
            let len = try kv.length(of: id)
            guard len + n <= kv.configuration.maxSequenceLength else {
                #expect(throws: KVPagingError.self) { _ = try kv.appendSlots(id, count: n) }
                return
            }
            let tokens = (0..<n).map { _ in 2000 + random(1000) }
            let o = random(3) == 0 ? try kv.appendSlots(id, count: n) : try kv.append(id, tokens: tokens)
            switch o {
            case .appended(let r):
                counts["append", default: 0] += 1
                if let c = r.copy {
                    counts["cow", default: 0] += 1
                    Self.copyBlock(c, bs, from: device, to: &device)
                }
                #expect(r.positions == len..<(len + n))
                try write(id, positions: r.positions, tokens: tokens)
                expected[id]! += tokens
            case .needsPreemption:
                counts["appendFull", default: 0] += 1
                #expect(try kv.length(of: id) == len)
            }
        case 60..<70:   // fork
            guard let id = try pick(onHost: false) else { return }
            let child = SequenceID(nextID)
            nextID += 1
            try kv.fork(id, into: child)
            expected[child] = expected[id]
            counts["fork", default: 0] += 1
        case 70..<80:   // release
            guard let id = try pick(onHost: random(4) == 0) ?? pick(onHost: false) else { return }
            try kv.release(id)
            expected[id] = nil
            counts["release", default: 0] += 1
        case 80..<85:   // preempt (recompute)
            guard let id = try pick(onHost: false) else { return }
            #expect(try kv.preempt(id) == expected[id]!.count)
            expected[id] = nil
            counts["preempt", default: 0] += 1
        case 85..<92:   // swap out a group (often a fork family: consecutive ids)
            guard kv.configuration.hostBlockCount > 0, let id = try pick(onHost: false) else { return }
            var group = [id]
            for other in kv.sequenceIDs.sorted() where other != id {
                let out = try kv.isSwappedOut(other)
                if !out && random(3) == 0 { group.append(other) }
            }
            switch try kv.swapOut(group) {
            case .swapped(let copies):
                for c in copies { Self.copyBlock(c, bs, from: device, to: &host) }
                counts["swapOut", default: 0] += 1
            case .wouldExceedCapacity:
                counts["swapOutFull", default: 0] += 1
            }
        case 92..<98:   // swap in
            guard let id = try pick(onHost: true) else { return }
            let hostBlocks = Set(try kv.blockTable(of: id)).count
            switch try kv.swapIn([id]) {
            case .swapped(let copies):
                for c in copies { Self.copyBlock(c, bs, from: host, to: &device) }
                counts["swapIn", default: 0] += 1
                // Fewer copies than blocks: a prefix block still on the device was reused (its content is
                // checked with every other block's by checkInvariants).
                if copies.count < hostBlocks { counts["swapInReuse", default: 0] += 1 }
            case .wouldExceedCapacity:
                counts["swapInFull", default: 0] += 1
            }
        default:        // evict cached blocks
            kv.evictCachedBlocks()
            #expect(kv.usage.cachedFreeBlocks == 0)
            counts["evict", default: 0] += 1
        }
    }

    func checkInvariants() throws {
        let pool = kv.pool
        var deviceRefs = [Int](repeating: 0, count: pool.blockCount)
        var hostRefs = [Int](repeating: 0, count: kv.configuration.hostBlockCount)
        var expectedFill: [Int: Int] = [:]
        #expect(kv.sequenceCount == expected.count)
        for (id, tokens) in expected {
            let table = try kv.blockTable(of: id)
            let onHost = try kv.isSwappedOut(id)
            #expect(try kv.length(of: id) == tokens.count)
            #expect(table.count == (tokens.count + bs - 1) / bs)
            for (i, b) in table.enumerated() {
                if onHost { hostRefs[b] += 1 } else {
                    deviceRefs[b] += 1
                    let f = min(bs, tokens.count - i * bs)
                    if let old = expectedFill[b] { #expect(old == f, "shared block \(b) holds different fills") }
                    expectedFill[b] = f
                }
            }
            // Visible tokens are exactly what the sequence wrote.
            let storage = onHost ? host : device
            let visible = (0..<tokens.count).map { storage[table[$0 / bs] * bs + $0 % bs] }
            #expect(visible == tokens, "\(id) reads back other tokens than it wrote")
        }
        var active = 0, cached = 0, free = 0
        for b in 0..<pool.blockCount {
            switch pool.state(of: b) {
            case .active(let rc):
                active += 1
                #expect(rc == deviceRefs[b], "block \(b): refCount \(rc), held by \(deviceRefs[b]) tables")
                #expect(pool.filledSlots(of: b) == expectedFill[b])
            case .cachedFree:
                cached += 1
                #expect(deviceRefs[b] == 0)
                #expect(pool.isRegistered(b))
            case .free:
                free += 1
                #expect(deviceRefs[b] == 0)
            }
        }
        // Each block in exactly one state; the counters agree; nothing leaks.
        let u = kv.usage
        #expect(active + cached + free == pool.blockCount)
        #expect(u.activeBlocks == active && u.cachedFreeBlocks == cached && u.freeBlocks == free)
        #expect(Set(pool.evictionOrder).count == cached && pool.evictionOrder.count == cached)
        #expect(u.filledSlots == expectedFill.values.reduce(0, +))
        #expect(pool.registeredCount == (0..<pool.blockCount).filter { pool.isRegistered($0) }.count)
        // Host pool.
        var hostUsed = 0
        for h in 0..<hostRefs.count {
            #expect(kv.hostRefCount(of: h) == hostRefs[h])
            if hostRefs[h] > 0 { hostUsed += 1 }
        }
        #expect(u.hostUsedBlocks == hostUsed)
    }
}

@Suite struct BlockManagerFuzz {
    @Test(arguments: [
        (seed: UInt64(1), blocks: 48, blockSize: 4, host: 24, caching: true),
        (seed: UInt64(2), blocks: 31, blockSize: 3, host: 16, caching: true),
        (seed: UInt64(3), blocks: 64, blockSize: 5, host: 0, caching: true),
        (seed: UInt64(4), blocks: 40, blockSize: 4, host: 20, caching: false),
        (seed: UInt64(5), blocks: 20, blockSize: 1, host: 10, caching: true),
    ])
    func randomOperationsKeepEveryInvariant(seed: UInt64, blocks: Int, blockSize: Int, host: Int, caching: Bool) throws {
        var f = try ShadowFuzz(seed: seed, blocks: blocks, blockSize: blockSize, hostBlocks: host, caching: caching)
        for _ in 0..<2500 {
            try f.step()
            try f.checkInvariants()
        }
        // Release everything: the pool must be whole again.
        for id in f.kv.sequenceIDs { try f.kv.release(id) }
        let u = f.kv.usage
        #expect(u.activeBlocks == 0 && u.freeBlocks + u.cachedFreeBlocks == blocks && u.hostUsedBlocks == 0)
        // The run exercised the interesting paths.
        for key in ["admit", "append", "fork", "release", "preempt", "admitFull"] + (blockSize > 1 ? ["cow"] : []) {
            #expect(f.counts[key, default: 0] > 0, "operation \(key) never happened: \(f.counts)")
        }
        if caching { #expect(f.counts["prefixHit", default: 0] > 0, "\(f.counts)") }
        if host > 0 { #expect(f.counts["swapOut", default: 0] > 0 && f.counts["swapIn", default: 0] > 0, "\(f.counts)") }
        if host > 0 && caching { #expect(f.counts["swapInReuse", default: 0] > 0, "\(f.counts)") }
    }
}
