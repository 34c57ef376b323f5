/// A fixed pool of KV blocks with reference counts, a free list and a prefix cache.
///
/// This is the bookkeeping under ``KVBlockManager``; it holds no tensors.
/// Every block is in exactly one state (``BlockState``):
///
/// - **free** — on the free stack, holding nothing;
/// - **cached-free** — no sequence holds it, but it keeps a full block of a
///   prompt prefix registered under its hash; it sits in an LRU list and is
///   evicted (its hash dropped) when the free stack is empty;
/// - **active** — held by `refCount ≥ 1` sequence block tables.
///
/// ``allocate()`` and ``release(_:)`` are O(1): a free stack kept as an array,
/// and an intrusive doubly linked LRU list over block indices.
public struct KVBlockPool: Sendable {
    /// The state of one device block.
    public enum BlockState: Sendable, Hashable {
        case free
        case cachedFree
        case active(refCount: Int)
    }

    public let blockCount: Int
    public let blockSize: Int
    /// Whether full blocks can be registered for prefix reuse.
    public let cachingEnabled: Bool

    var refCounts: [Int32]
    var freeStack: [Int32]
    // Intrusive LRU list of cached-free blocks: head is evicted first.
    var lruPrev: [Int32]
    var lruNext: [Int32]
    var lruHead: Int32 = -1
    var lruTail: Int32 = -1
    /// Blocks in the cached-free LRU list.
    public private(set) var cachedFreeCount = 0
    /// Blocks held by at least one sequence.
    public private(set) var activeCount = 0

    /// Prefix-cache metadata of one block, kept together so a lookup or a registration touches one cache line.
    struct Meta: Sendable {
        var hash: UInt64 = 0
        var parent: UInt64 = 0
        var salt: UInt64 = 0
        var registered = false
    }

    // Prefix-cache metadata, per block.
    var meta: [Meta]
    var tokenStore: [Int]
    var index: BlockHashIndex

    /// Token slots written in each block (`0…blockSize`).
    var fill: [Int32]
    /// Sum of `fill` over active blocks.
    public private(set) var filledActiveSlots = 0
    /// Cached blocks dropped to make room.
    public private(set) var evictions = 0

    /// Creates a pool of `blockCount` free blocks.
    public init(blockCount: Int, blockSize: Int, cachingEnabled: Bool = true) throws(KVPagingError) {
        try KVCacheConfiguration(blockCount: blockCount, blockSize: blockSize).validate()
        self.blockCount = blockCount
        self.blockSize = blockSize
        self.cachingEnabled = cachingEnabled
        refCounts = [Int32](repeating: 0, count: blockCount)
        // Pop order 0, 1, 2, … (the stack's top is at the end).
        freeStack = (0..<Int32(blockCount)).reversed()
        lruPrev = [Int32](repeating: -1, count: blockCount)
        lruNext = [Int32](repeating: -1, count: blockCount)
        meta = [Meta](repeating: Meta(), count: blockCount)
        fill = [Int32](repeating: 0, count: blockCount)
        if cachingEnabled {
            tokenStore = [Int](repeating: 0, count: blockCount * blockSize)
            index = BlockHashIndex(maxEntries: blockCount)
        } else {
            tokenStore = []
            index = BlockHashIndex(maxEntries: 0)
        }
    }

    /// Blocks on the free stack (holding nothing).
    public var freeCount: Int { freeStack.count }
    /// Blocks an allocation can obtain: free plus evictable cached-free.
    public var availableCount: Int { freeStack.count + cachedFreeCount }
    /// Blocks registered in the prefix cache (active or cached-free).
    public var registeredCount: Int { index.count }

    /// The state of `block`.
    ///
    /// The read-only inspection accessors (`state(of:)`, `refCount(of:)`, `filledSlots(of:)`,
    /// `isRegistered(_:)`) take a block index from a block table, like an array subscript:
    /// `block` must be in `0..<blockCount`. Mutating calls (`retain`, `release`) check and throw.
    public func state(of block: Int) -> BlockState {
        let rc = refCounts[block]
        if rc > 0 { return .active(refCount: Int(rc)) }
        return meta[block].registered ? .cachedFree : .free
    }

    /// Reference count of `block` (0 when free or cached-free).
    public func refCount(of block: Int) -> Int { Int(refCounts[block]) }

    /// Token slots written in `block`.
    public func filledSlots(of block: Int) -> Int { Int(fill[block]) }

    /// Takes a block (reference count 1, nothing written): from the free stack, else by evicting
    /// the least recently freed cached block. Returns nil when every block is active.
    public mutating func allocate() -> Int? {
        if let b = freeStack.popLast() {
            refCounts[Int(b)] = 1
            activeCount += 1
            return Int(b)
        }
        return allocateByEviction()
    }

    /// Takes `count` blocks as ``allocate()`` would and appends them to `table`, recording `tokens` written
    /// slots over them in order (each block filled before the next). False, changing nothing, when fewer
    /// than `count` blocks are available.
    mutating func allocate(_ count: Int, filling tokens: Int, into table: inout [Int]) -> Bool {
        guard count >= 0, count <= availableCount else { return false }
        var remaining = tokens
        let bs = blockSize
        let fromFree = min(count, freeStack.count)
        if fromFree > 0 {
            let top = freeStack.count - 1
            freeStack.withUnsafeBufferPointer { stack in
                refCounts.withUnsafeMutableBufferPointer { rc in
                    fill.withUnsafeMutableBufferPointer { fl in
                        for k in 0..<fromFree {
                            let b = Int(stack[top - k])
                            let n = min(remaining, bs)
                            rc[b] = 1
                            fl[b] = Int32(truncatingIfNeeded: n)   // free blocks hold fill 0
                            remaining -= n
                            table.append(b)
                        }
                    }
                }
            }
            freeStack.removeLast(fromFree)
            activeCount += fromFree
            filledActiveSlots += tokens - remaining
        }
        for _ in fromFree..<count {
            guard let b = allocateByEviction() else { return false }   // unreachable: capacity was checked
            let n = min(remaining, bs)
            addFill(b, n)
            remaining -= n
            table.append(b)
        }
        return true
    }

    mutating func allocateByEviction() -> Int? {
        guard lruHead >= 0 else { return nil }
        let b = Int(lruHead)
        unlinkLRU(b)
        unregister(b)
        evictions += 1
        fill[b] = 0
        refCounts[b] = 1
        activeCount += 1
        return b
    }

    /// Adds a reference to an active block, or revives a cached-free block (taking it out of the LRU list).
    public mutating func retain(_ block: Int) throws(KVPagingError) {
        try checkIndex(block)
        if refCounts[block] == 0 {
            guard meta[block].registered else {
                throw KVPagingError(.invalidArgument, "block \(block) is free; allocate it instead of retaining it")
            }
            unlinkLRU(block)
            activeCount += 1
            filledActiveSlots += Int(fill[block])
        }
        refCounts[block] += 1
    }

    /// Drops one reference; at zero the block becomes cached-free (when registered) or free.
    public mutating func release(_ block: Int) throws(KVPagingError) {
        guard block >= 0, block < blockCount, refCounts[block] > 0 else {
            throw KVPagingError(.doubleFree, "block \(block) is not held (free, cached-free or out of range); release each allocation exactly once")
        }
        refCounts[block] -= 1
        if refCounts[block] == 0 { becameUnreferenced(block) }
    }

    mutating func becameUnreferenced(_ block: Int) {
        activeCount -= 1
        filledActiveSlots -= Int(fill[block])
        if meta[block].registered {
            appendLRU(block)
        } else {
            fill[block] = 0
            freeStack.append(Int32(truncatingIfNeeded: block))
        }
    }

    /// Records `count` more written slots in an active block.
    mutating func addFill(_ block: Int, _ count: Int) {
        fill[block] += Int32(truncatingIfNeeded: count)
        filledActiveSlots += count
    }

    // MARK: Prefix cache

    /// The block registered under `hash` whose stored parent hash, salt and token ids equal the given ones.
    ///
    /// Token ids are compared exactly, so a 64-bit hash collision between different token blocks
    /// cannot serve wrong K/V; the residual risk is two *different parent chains* with equal
    /// 64-bit hashes and equal next-block tokens (≈ 2⁻⁶⁴ per pair of chains).
    func lookup(hash: UInt64, parent: UInt64, salt: UInt64, tokens: UnsafeBufferPointer<Int>) -> Int? {
        guard cachingEnabled, tokens.count == blockSize, let b = index.find(hash) else { return nil }
        let m = meta[b]
        guard m.registered, m.hash == hash, m.parent == parent, m.salt == salt else { return nil }
        let base = b * blockSize
        return tokenStore.withUnsafeBufferPointer { store in
            for i in 0..<blockSize where store[base + i] != tokens[i] { return nil }
            return b
        }
    }

    /// Registers a full active block under `hash`; false (nothing changes) when the hash is taken.
    @discardableResult
    mutating func register(_ block: Int, hash: UInt64, parent: UInt64, salt: UInt64, tokens: UnsafeBufferPointer<Int>) -> Bool {
        guard cachingEnabled, tokens.count == blockSize, !meta[block].registered, index.insert(hash, block: block) else { return false }
        meta[block] = Meta(hash: hash, parent: parent, salt: salt, registered: true)
        let base = block * blockSize
        tokenStore.withUnsafeMutableBufferPointer { store in
            for i in 0..<blockSize { store[base + i] = tokens[i] }
        }
        return true
    }

    /// Whether `block` holds a registered prefix.
    public func isRegistered(_ block: Int) -> Bool { meta[block].registered }

    private mutating func unregister(_ b: Int) {
        guard meta[b].registered else { return }
        index.remove(meta[b].hash, block: b)
        meta[b].registered = false
    }

    /// Drops every cached-free block's content (they become free); active blocks keep theirs.
    public mutating func evictAllCached() {
        while lruHead >= 0 {
            let b = Int(lruHead)
            unlinkLRU(b)
            unregister(b)
            evictions += 1
            fill[b] = 0
            freeStack.append(Int32(b))
        }
    }

    // MARK: LRU list

    private mutating func appendLRU(_ b: Int) {
        lruPrev[b] = lruTail
        lruNext[b] = -1
        if lruTail >= 0 { lruNext[Int(lruTail)] = Int32(b) } else { lruHead = Int32(b) }
        lruTail = Int32(b)
        cachedFreeCount += 1
    }

    private mutating func unlinkLRU(_ b: Int) {
        let p = lruPrev[b], n = lruNext[b]
        if p >= 0 { lruNext[Int(p)] = n } else { lruHead = n }
        if n >= 0 { lruPrev[Int(n)] = p } else { lruTail = p }
        lruPrev[b] = -1
        lruNext[b] = -1
        cachedFreeCount -= 1
    }

    /// Cached-free blocks in eviction order (first evicted first). O(cached blocks); for tests and tools.
    public var evictionOrder: [Int] {
        var out: [Int] = []
        var b = lruHead
        while b >= 0 {
            out.append(Int(b))
            b = lruNext[Int(b)]
        }
        return out
    }

    private func checkIndex(_ block: Int) throws(KVPagingError) {
        guard block >= 0, block < blockCount else {
            throw KVPagingError(.invalidArgument, "block \(block) is outside the pool of \(blockCount) blocks")
        }
    }
}
