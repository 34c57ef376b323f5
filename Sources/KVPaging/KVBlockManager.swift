/// The paged KV-cache block manager: block tables, copy-on-write forks,
/// automatic prefix caching, preemption and swapping, as a value-type state machine.
///
/// It allocates K/V memory in fixed-size blocks on demand instead of
/// reserving a sequence's maximum length up front. It holds no tensors:
/// each operation returns what the owner of the storage must do (the slots
/// to write, the blocks to copy).
///
/// ```swift
/// var kv = try KVBlockManager(KVCacheConfiguration(blockCount: 1024, blockSize: 16))
/// guard case .admitted(let a) = try kv.admit(1, prompt: .tokens(promptIDs)) else { /* wait */ }
/// // prefill positions a.cachedTokens..<promptIDs.count, then per generated token:
/// switch try kv.append(1, tokens: [next]) {
/// case .appended(let r): /* r.copy?: copy the block first; write K/V at r.lastSlot */
/// case .needsPreemption: /* preempt or swap a victim, then retry */
/// }
/// try kv.release(1)
/// ```
///
/// Prefix caching: a prompt's full blocks are registered under a hash chained
/// from the previous block's hash, the block's token ids and the prompt's
/// ``CacheSalt``. A later prompt with the same salt and the same leading full
/// blocks reuses them (at most `length − 1` tokens, so the last prompt token
/// is always computed to produce logits). Released cached blocks stay
/// reusable until evicted, least recently released first; a sequence
/// releases its blocks deepest first, so a chain's tail is evicted before its
/// parents. Blocks are registered at admission: a scheduler that admits two
/// sequences sharing a new prefix in the same step must prefill the first
/// before the second reads it.
public struct KVBlockManager: KVCacheAllocator {
    public let configuration: KVCacheConfiguration
    /// The device block pool (read-only view for inspection and invariant checks).
    public private(set) var pool: KVBlockPool
    var host: HostBlockPool
    var sequences: [SequenceID: SequenceState] = [:]
    var recentlyReleased = RecentlyReleased()
    var stats = PrefixCacheStats()

    struct SequenceState: Sendable {
        var blocks: [Int]
        var length: Int
        var onHost = false
        /// Token ids are known for every position, so full blocks can be registered.
        var tracksTokens: Bool
        /// Hash of the last full block (or the root value) — the parent of the next full block.
        var chainHash: UInt64
        var salt: UInt64
        /// Token ids of the partial last block (when tracking tokens).
        var tail: [Int]
        /// Leading full blocks whose hashes are chained into `chainHash` (deferred registration only).
        var registeredBlocks = 0
        /// Blocks are registered by ``KVBlockManager/registerComputed(_:tokens:)``, once their K/V is written.
        var defersRegistration = false
    }

    /// Creates a manager with every block free.
    public init(_ configuration: KVCacheConfiguration) throws(KVPagingError) {
        try configuration.validate()
        self.configuration = configuration
        self.pool = try KVBlockPool(
            blockCount: configuration.blockCount,
            blockSize: configuration.blockSize,
            cachingEnabled: configuration.enablePrefixCaching
        )
        self.host = HostBlockPool(
            blockCount: configuration.hostBlockCount,
            blockSize: configuration.blockSize,
            cachingEnabled: configuration.enablePrefixCaching
        )
    }

    @inline(__always) var blockSize: Int { configuration.blockSize }

    // MARK: Queries

    public var sequenceCount: Int { sequences.count }
    /// Ids of the live sequences (unordered).
    public var sequenceIDs: [SequenceID] { Array(sequences.keys) }
    public func contains(_ id: SequenceID) -> Bool { sequences[id] != nil }
    /// Whether `id` is swapped out to host memory.
    public func isSwappedOut(_ id: SequenceID) throws(KVPagingError) -> Bool { try state(id, "isSwappedOut").onHost }
    /// Prefix-cache counters.
    public var prefixCacheStats: PrefixCacheStats {
        var s = stats
        s.evictions = pool.evictions
        return s
    }
    /// Host pool: blocks and the reference count of one host block.
    public var hostFreeBlocks: Int { host.freeStack.count }
    /// `block` is a host block index from a swapped-out sequence's block table, in `0..<hostBlockCount`.
    public func hostRefCount(of block: Int) -> Int { Int(host.refCounts[block]) }

    public func length(of id: SequenceID) throws(KVPagingError) -> Int { try state(id, "length").length }

    /// The block table; for a swapped-out sequence the entries are host block indices.
    public func blockTable(of id: SequenceID) throws(KVPagingError) -> [Int] { try state(id, "blockTable").blocks }

    public func slot(of id: SequenceID, position: Int) throws(KVPagingError) -> KVSlot {
        let s = try state(id, "slot")
        guard !s.onHost else { throw swappedOut(id, "slot") }
        guard position >= 0, position < s.length else {
            throw KVPagingError(.invalidArgument, "slot: position \(position) is outside \(id)'s \(s.length) tokens")
        }
        return KVSlot(block: s.blocks[position / blockSize], offset: position % blockSize)
    }

    public var usage: KVCacheUsage {
        KVCacheUsage(
            blockSize: blockSize,
            totalBlocks: pool.blockCount,
            activeBlocks: pool.activeCount,
            cachedFreeBlocks: pool.cachedFreeCount,
            freeBlocks: pool.freeCount,
            filledSlots: pool.filledActiveSlots,
            sequences: sequences.count,
            hostTotalBlocks: host.blockCount,
            hostUsedBlocks: host.blockCount - host.freeStack.count
        )
    }

    // MARK: Admission

    public func admissionCheck(_ prompt: KVPrompt) -> AdmissionCheck {
        let available0 = max(0, pool.availableCount - configuration.watermarkBlocks)
        // A prompt admit would reject (empty, too long, inconsistent) never fits.
        guard (try? configuration.validatePrompt(prompt)) != nil else {
            return AdmissionCheck(blocksNeeded: Int.max, blocksAvailable: available0, cachedTokens: 0)
        }
        let total = configuration.blocks(forTokens: prompt.length)
        var hits = 0, revived = 0
        if prompt.length >= 1, prompt.length <= configuration.maxSequenceLength, let tokens = prompt.tokens, tokens.count == prompt.length {
            tokens.withUnsafeBufferPointer { t in
                forEachPrefixHit(t, salt: prompt.salt.rawValue) { block, _ in
                    hits += 1
                    if pool.refCounts[block] == 0 { revived += 1 }
                }
            }
        }
        let available = max(0, pool.availableCount - revived - configuration.watermarkBlocks)
        return AdmissionCheck(blocksNeeded: total - hits, blocksAvailable: available, cachedTokens: hits * blockSize)
    }

    /// Calls `body(block, hash)` for each leading full block of `tokens` found in the cache
    /// (stopping at the first miss, and at `length − 1` tokens).
    private func forEachPrefixHit(_ tokens: UnsafeBufferPointer<Int>, salt: UInt64, _ body: (Int, UInt64) -> Void) {
        guard pool.cachingEnabled else { return }
        let eligible = (tokens.count - 1) / blockSize
        var parent = StableHash.root(salt: salt)
        for i in 0..<eligible {
            let blockTokens = UnsafeBufferPointer(rebasing: tokens[(i * blockSize)..<((i + 1) * blockSize)])
            let h = StableHash.block(parent: parent, salt: salt, tokens: blockTokens)
            guard let b = pool.lookup(hash: h, parent: parent, salt: salt, tokens: blockTokens) else { return }
            body(b, h)
            parent = h
        }
    }

    public mutating func admit(_ id: SequenceID, prompt: KVPrompt) throws(KVPagingError) -> AdmissionOutcome {
        try admit(id, prompt: prompt, registration: .onAdmission)
    }

    /// When a sequence's full blocks enter the prefix cache.
    public enum BlockRegistration: Sendable, Hashable {
        /// At admission (and as appended token ids complete blocks): right for a simulator or a
        /// scheduler that prefills a prompt before any other sequence can read it.
        case onAdmission
        /// Only when the owner reports them computed with ``KVBlockManager/registerComputed(_:tokens:)``:
        /// what an engine needs, because with chunked prefill a block is allocated steps before its
        /// K/V is written, and a sequence admitted in between must not read it as a cache hit.
        case whenComputed
    }

    /// Admits a new sequence holding its prompt, registering its full blocks as `registration` says.
    /// Cache hits are found the same way in both modes.
    public mutating func admit(_ id: SequenceID, prompt: KVPrompt, registration: BlockRegistration) throws(KVPagingError) -> AdmissionOutcome {
        try configuration.validatePrompt(prompt)
        guard sequences[id] == nil else {
            throw KVPagingError(.duplicateSequence, "admit: \(id) is already held; release it or choose a new id")
        }
        let bs = blockSize
        let length = prompt.length
        let total = configuration.blocks(forTokens: length)
        let salt = prompt.salt.rawValue
        var table: [Int] = []
        table.reserveCapacity(total + 1)

        guard let tokens = prompt.tokens, pool.cachingEnabled else {
            // No prefix caching: plain allocation.
            let available = max(0, pool.availableCount - configuration.watermarkBlocks)
            guard total <= available else { return .wouldExceedCapacity(blocksNeeded: total, available: available) }
            allocateFilling(&table, blocks: total, tokens: length)
            let tail = prompt.tokens.map { Array($0[((length / bs) * bs)...]) } ?? []
            sequences[id] = SequenceState(
                blocks: table, length: length, tracksTokens: prompt.tokens != nil,
                chainHash: StableHash.root(salt: salt), salt: salt, tail: tail
            )
            return .admitted(Admission(blockTable: table, cachedTokens: 0, newBlocks: total))
        }

        return tokens.withUnsafeBufferPointer { t -> AdmissionOutcome in
            // 1. Look up the cached prefix.
            var hitHash = StableHash.root(salt: salt)
            var revived = 0
            forEachPrefixHit(t, salt: salt) { block, hash in
                table.append(block)
                hitHash = hash
                if pool.refCounts[block] == 0 { revived += 1 }
            }
            let hits = table.count
            let needed = total - hits
            let available = max(0, pool.availableCount - revived - configuration.watermarkBlocks)
            guard needed <= available else {
                return .wouldExceedCapacity(blocksNeeded: needed, available: available)
            }
            // Counted per successful admission, so retries of a waiting request do not dilute the hit rate.
            stats.queries += 1
            stats.queriedTokens += length
            stats.queriedBlocks += (length - 1) / bs
            stats.hitBlocks += hits
            stats.hitTokens += hits * bs
            // 2. Take the hits (they leave the LRU list, so allocation below cannot evict them).
            for b in table {
                do { try pool.retain(b) } catch { preconditionFailure("a cache hit is always retainable: \(error)") }
            }
            // 3. Allocate the rest and register the new full blocks.
            allocateFilling(&table, blocks: needed, tokens: length - hits * bs)
            var parent = hitHash
            let full = length / bs
            if registration == .whenComputed {
                var state = SequenceState(blocks: table, length: length, tracksTokens: false, chainHash: hitHash, salt: salt, tail: [])
                state.registeredBlocks = hits
                state.defersRegistration = true
                sequences[id] = state
                return .admitted(Admission(blockTable: table, cachedTokens: hits * bs, newBlocks: needed))
            }
            if hits < full {
                for i in hits..<full {
                    let bt = UnsafeBufferPointer(rebasing: t[(i * bs)..<((i + 1) * bs)])
                    let h = StableHash.block(parent: parent, salt: salt, tokens: bt)
                    pool.register(table[i], hash: h, parent: parent, salt: salt, tokens: bt)
                    parent = h
                }
            }
            sequences[id] = SequenceState(
                blocks: table, length: length, tracksTokens: true,
                chainHash: parent, salt: salt, tail: Array(t[(full * bs)...])
            )
            return .admitted(Admission(blockTable: table, cachedTokens: hits * bs, newBlocks: needed))
        }
    }

    /// Allocates `blocks` blocks into `table`, recording `tokens` written slots across them.
    private mutating func allocateFilling(_ table: inout [Int], blocks: Int, tokens: Int) {
        guard pool.allocate(blocks, filling: tokens, into: &table) else {
            preconditionFailure("capacity was checked before allocating")
        }
    }

    // MARK: Growth

    public func blocksNeeded(toAppend count: Int, to id: SequenceID) throws(KVPagingError) -> Int {
        let s = try state(id, "blocksNeeded")
        guard !s.onHost else { throw swappedOut(id, "blocksNeeded") }
        guard count >= 0, count <= KVCacheConfiguration.maxSequenceLengthLimit else {
            throw KVPagingError(.invalidArgument, "blocksNeeded: count is \(count); pass 0…2³²")
        }
        return needed(s, count)
    }

    private func needed(_ s: SequenceState, _ count: Int) -> Int {
        guard count > 0 else { return 0 }
        let cow = (s.length % blockSize != 0 && pool.refCounts[s.blocks[s.blocks.count - 1]] > 1) ? 1 : 0
        return cow + configuration.blocks(forTokens: s.length + count) - s.blocks.count
    }

    public mutating func appendSlots(_ id: SequenceID, count: Int) throws(KVPagingError) -> AppendOutcome {
        try appendCore(id, count: count, tokens: nil, "appendSlots")
    }

    /// Appends generated tokens by id; full blocks they complete are registered for prefix reuse
    /// (while every token of the sequence is known).
    public mutating func append(_ id: SequenceID, tokens: [Int]) throws(KVPagingError) -> AppendOutcome {
        try appendCore(id, count: tokens.count, tokens: tokens, "append")
    }

    private mutating func appendCore(_ id: SequenceID, count: Int, tokens: [Int]?, _ op: String) throws(KVPagingError) -> AppendOutcome {
        guard var s = sequences[id] else { throw recentlyReleased.missingError(id, operation: op) }
        guard !s.onHost else { throw swappedOut(id, op) }
        guard count >= 1 else { throw KVPagingError(.invalidArgument, "\(op): count is \(count); append at least one token") }
        guard count <= configuration.maxSequenceLength - s.length else {
            throw KVPagingError(.exceedsMaxLength, "\(op): \(id) holds \(s.length) tokens; \(count) more would pass maxSequenceLength \(configuration.maxSequenceLength); stop generation at the limit")
        }
        let newLength = s.length + count
        guard newLength <= configuration.maxSequenceLength else {
            throw KVPagingError(.exceedsMaxLength, "\(op): \(id) would reach \(newLength) tokens, past maxSequenceLength \(configuration.maxSequenceLength); stop generation at the limit")
        }
        let need = needed(s, count)
        guard need <= pool.availableCount else {
            return .needsPreemption(blocksNeeded: need, available: pool.availableCount)
        }
        let bs = blockSize
        var copy: BlockCopy?
        if s.length % bs != 0 {
            let last = s.blocks[s.blocks.count - 1]
            if pool.refCounts[last] > 1 {
                // Copy-on-write: this sequence gets a private copy of the shared partial block.
                guard let dst = pool.allocate() else { preconditionFailure("capacity was checked") }
                pool.addFill(dst, pool.filledSlots(of: last))
                do { try pool.release(last) } catch { preconditionFailure("shared block is held: \(error)") }
                s.blocks[s.blocks.count - 1] = dst
                copy = BlockCopy(source: last, destination: dst)
            }
        }
        // Sequences keep tracking token ids only while every appended token is known.
        if tokens == nil { s.tracksTokens = false; s.tail = [] }
        var pos = s.length
        var k = 0
        while pos < newLength {
            let offset = pos % bs
            let block: Int
            if offset == 0 {
                guard let b = pool.allocate() else { preconditionFailure("capacity was checked") }
                s.blocks.append(b)
                block = b
            } else {
                block = s.blocks[s.blocks.count - 1]
            }
            let n = min(bs - offset, newLength - pos)
            pool.addFill(block, n)
            if s.tracksTokens, let tokens {
                s.tail.append(contentsOf: tokens[k..<(k + n)])
                if s.tail.count == bs {
                    let h = s.tail.withUnsafeBufferPointer { bt in
                        let h = StableHash.block(parent: s.chainHash, salt: s.salt, tokens: bt)
                        pool.register(block, hash: h, parent: s.chainHash, salt: s.salt, tokens: bt)
                        return h
                    }
                    s.chainHash = h
                    s.tail.removeAll(keepingCapacity: true)
                }
            }
            pos += n
            k += n
        }
        let oldLength = s.length
        s.length = newLength
        let lastSlot = KVSlot(block: s.blocks[(newLength - 1) / bs], offset: (newLength - 1) % bs)
        sequences[id] = s
        return .appended(AppendResult(positions: oldLength..<newLength, lastSlot: lastSlot, copy: copy, newBlocks: need))
    }

    /// Registers the full blocks of `id` whose K/V is now written (admission with
    /// ``BlockRegistration/whenComputed``): `tokens` are the sequence's first tokens, as many as are
    /// computed; every full block among them not yet registered enters the prefix cache, chained
    /// from the blocks before it. Blocks already registered by another sequence with the same
    /// content stay that sequence's; the chain goes on either way. No-op for a sequence admitted
    /// with ``BlockRegistration/onAdmission``, a swapped-out one, or with caching off.
    public mutating func registerComputed(_ id: SequenceID, tokens: UnsafeBufferPointer<Int>) throws(KVPagingError) {
        guard var s = sequences[id] else { throw recentlyReleased.missingError(id, operation: "registerComputed") }
        guard s.defersRegistration, !s.onHost, pool.cachingEnabled else { return }
        let bs = blockSize
        let full = min(tokens.count, s.length) / bs
        guard full > s.registeredBlocks else { return }
        var parent = s.chainHash
        for i in s.registeredBlocks..<full {
            let bt = UnsafeBufferPointer(rebasing: tokens[(i * bs)..<((i + 1) * bs)])
            let h = StableHash.block(parent: parent, salt: s.salt, tokens: bt)
            _ = pool.register(s.blocks[i], hash: h, parent: parent, salt: s.salt, tokens: bt)
            parent = h
        }
        s.chainHash = parent
        s.registeredBlocks = full
        sequences[id] = s
    }

    // MARK: Fork

    /// Creates `child` sharing every block of `parent` (parallel sampling, beam search).
    ///
    /// No block is copied now: the first append by either sequence into their
    /// shared partial last block allocates a private copy and reports it as
    /// ``AppendResult/copy``. Full blocks stay shared (they are never written again).
    public mutating func fork(_ parent: SequenceID, into child: SequenceID) throws(KVPagingError) {
        let s = try state(parent, "fork")
        guard !s.onHost else { throw swappedOut(parent, "fork") }
        guard sequences[child] == nil else {
            throw KVPagingError(.duplicateSequence, "fork: child \(child) is already held; choose a new id")
        }
        for b in s.blocks {
            do { try pool.retain(b) } catch { preconditionFailure("an active block is retainable: \(error)") }
        }
        sequences[child] = s
    }

    // MARK: Release and preemption

    public mutating func release(_ id: SequenceID) throws(KVPagingError) {
        _ = try releaseCore(id, "release")
        recentlyReleased.add(id)
    }

    /// Preempts `id` by recomputation: releases its blocks (cached prefix blocks stay reusable)
    /// and forgets it. Re-admit it later with its prompt plus the tokens generated so far.
    /// Returns the number of tokens the sequence held (what must be recomputed, less any cache hit).
    @discardableResult
    public mutating func preempt(_ id: SequenceID) throws(KVPagingError) -> Int {
        try releaseCore(id, "preempt")
    }

    private mutating func releaseCore(_ id: SequenceID, _ op: String) throws(KVPagingError) -> Int {
        guard let s = sequences.removeValue(forKey: id) else { throw recentlyReleased.missingError(id, operation: op) }
        // Deepest block first, so chain tails are evicted before their parents.
        for b in s.blocks.reversed() {
            if s.onHost {
                host.release(b)
            } else {
                do { try pool.release(b) } catch { preconditionFailure("a table's block is held: \(error)") }
            }
        }
        return s.length
    }

    /// Drops every cached-but-free block's content (they become free). Active blocks are untouched.
    public mutating func evictCachedBlocks() { pool.evictAllCached() }

    /// Resets the prefix-cache counters (evictions are counted by the pool and are not reset).
    public mutating func resetPrefixCacheStats() { stats = PrefixCacheStats() }

    // MARK: Swapping

    /// Moves the sequences' K/V to the host pool. Blocks shared within the group get one host copy;
    /// blocks also held by sequences outside the group stay on the device for them.
    ///
    /// Returns the device→host copies to perform (before the device blocks are reused).
    public mutating func swapOut(_ ids: [SequenceID]) throws(KVPagingError) -> SwapOutcome {
        try checkGroup(ids, onHost: false, "swapOut")
        var mapping: [Int: Int] = [:]
        var refs: [Int: Int] = [:]
        var order: [Int] = []
        for id in ids {
            for b in sequences[id]!.blocks {
                if refs[b] == nil { order.append(b) }
                refs[b, default: 0] += 1
            }
        }
        guard order.count <= host.freeStack.count else {
            return .wouldExceedCapacity(blocksNeeded: order.count, available: host.freeStack.count)
        }
        var copies: [BlockCopy] = []
        copies.reserveCapacity(order.count)
        for b in order {
            let h = host.allocate(refCount: refs[b]!, fill: pool.filledSlots(of: b))
            // Remember a registered block's prefix-cache identity so swap-in can re-register it.
            if pool.isRegistered(b) { host.remember(h, pool.meta[b], tokens: pool.tokenStore, at: b * blockSize) }
            mapping[b] = h
            copies.append(BlockCopy(source: b, destination: h))
        }
        for id in ids {
            var s = sequences[id]!
            for b in s.blocks.reversed() {
                do { try pool.release(b) } catch { preconditionFailure("a table's block is held: \(error)") }
            }
            s.blocks = s.blocks.map { mapping[$0]! }
            s.onHost = true
            sequences[id] = s
        }
        return .swapped(copies)
    }

    /// Brings swapped-out sequences back to the device. The admission watermark does not apply:
    /// swapped sequences were already running.
    ///
    /// Full blocks that were registered in the prefix cache when they were swapped out keep that
    /// identity: when the device still holds a block with the same prefix (cached-free, or held by
    /// another sequence) it is reused without a copy; otherwise the new block is registered again,
    /// so later prompts sharing the prefix hit it. Returns the host→device copies to perform.
    public mutating func swapIn(_ ids: [SequenceID]) throws(KVPagingError) -> SwapOutcome {
        try checkGroup(ids, onHost: true, "swapIn")
        var refs: [Int: Int] = [:]
        var order: [Int] = []
        for id in ids {
            for b in sequences[id]!.blocks {
                if refs[b] == nil { order.append(b) }
                refs[b, default: 0] += 1
            }
        }
        // 1. Which host blocks are still on the device? Reviving a cached-free one costs an available
        //    block; reusing an active one costs nothing; every other host block needs a new block.
        var reuse: [Int: Int] = [:]
        var cost = 0
        for h in order {
            if let d = deviceCopy(ofHost: h) {
                reuse[h] = d
                if pool.refCounts[d] == 0 { cost += 1 }
            } else {
                cost += 1
            }
        }
        guard cost <= pool.availableCount else {
            return .wouldExceedCapacity(blocksNeeded: cost, available: pool.availableCount)
        }
        var mapping: [Int: Int] = [:]
        // 2. Take the reused blocks first (out of the LRU list, so allocation below cannot evict them).
        for h in order {
            guard let d = reuse[h] else { continue }
            for _ in 0..<refs[h]! {
                do { try pool.retain(d) } catch { preconditionFailure("a cached block is retainable: \(error)") }
            }
            mapping[h] = d
        }
        // 3. Copy the rest into new blocks, registering those that were registered before.
        var copies: [BlockCopy] = []
        copies.reserveCapacity(order.count - reuse.count)
        for h in order where reuse[h] == nil {
            // A host block swapped out by another group may carry a prefix registered earlier in this loop.
            if let d = deviceCopy(ofHost: h) {
                for _ in 0..<refs[h]! {
                    do { try pool.retain(d) } catch { preconditionFailure("an active block is retainable: \(error)") }
                }
                mapping[h] = d
                continue
            }
            guard let d = pool.allocate() else { preconditionFailure("capacity was checked") }
            pool.addFill(d, Int(host.fill[h]))
            for _ in 1..<refs[h]! {
                do { try pool.retain(d) } catch { preconditionFailure("fresh block is retainable: \(error)") }
            }
            if h < host.meta.count, host.meta[h].registered {
                let m = host.meta[h]
                _ = host.tokens.withUnsafeBufferPointer { t in
                    pool.register(d, hash: m.hash, parent: m.parent, salt: m.salt,
                                  tokens: UnsafeBufferPointer(rebasing: t[(h * blockSize)..<((h + 1) * blockSize)]))
                }
            }
            mapping[h] = d
            copies.append(BlockCopy(source: h, destination: d))
        }
        for id in ids {
            var s = sequences[id]!
            for h in s.blocks { host.release(h) }
            s.blocks = s.blocks.map { mapping[$0]! }
            s.onHost = false
            sequences[id] = s
        }
        return .swapped(copies)
    }

    /// The device block holding the same registered prefix block as host block `h`, if any.
    private func deviceCopy(ofHost h: Int) -> Int? {
        guard h < host.meta.count, host.meta[h].registered else { return nil }
        let m = host.meta[h]
        return host.tokens.withUnsafeBufferPointer { t in
            pool.lookup(hash: m.hash, parent: m.parent, salt: m.salt,
                        tokens: UnsafeBufferPointer(rebasing: t[(h * blockSize)..<((h + 1) * blockSize)]))
        }
    }

    private func checkGroup(_ ids: [SequenceID], onHost: Bool, _ op: String) throws(KVPagingError) {
        guard !ids.isEmpty else { throw KVPagingError(.invalidArgument, "\(op): pass at least one sequence") }
        guard Set(ids).count == ids.count else { throw KVPagingError(.invalidArgument, "\(op): \(ids) names a sequence twice") }
        if !onHost && host.blockCount == 0 {
            throw KVPagingError(.unsupported, "\(op): no host swap pool; set KVCacheConfiguration.hostBlockCount > 0")
        }
        for id in ids {
            let s = try state(id, op)
            if s.onHost != onHost {
                throw onHost
                    ? KVPagingError(.sequenceNotSwappedOut, "\(op): \(id) is on the device; swap it out first")
                    : swappedOut(id, op)
            }
        }
    }

    // MARK: Helpers

    private func state(_ id: SequenceID, _ op: String) throws(KVPagingError) -> SequenceState {
        guard let s = sequences[id] else { throw recentlyReleased.missingError(id, operation: op) }
        return s
    }

    private func swappedOut(_ id: SequenceID, _ op: String) -> KVPagingError {
        KVPagingError(.sequenceSwappedOut, "\(op): \(id) is swapped out to host memory; swap it in first")
    }
}

/// Host-memory swap space: a free stack and reference counts. A host block is never looked up by
/// prefix; it only remembers the prefix-cache identity of the device block it was copied from
/// (hash, parent, salt and token ids) so that swap-in can register the block again.
struct HostBlockPool: Sendable {
    let blockCount: Int
    let blockSize: Int
    var refCounts: [Int32]
    var fill: [Int32]
    var freeStack: [Int32]
    var meta: [KVBlockPool.Meta]
    var tokens: [Int]

    init(blockCount: Int, blockSize: Int, cachingEnabled: Bool) {
        self.blockCount = blockCount
        self.blockSize = blockSize
        refCounts = [Int32](repeating: 0, count: blockCount)
        fill = [Int32](repeating: 0, count: blockCount)
        freeStack = (0..<Int32(truncatingIfNeeded: blockCount)).reversed()
        meta = [KVBlockPool.Meta](repeating: .init(), count: cachingEnabled ? blockCount : 0)
        tokens = [Int](repeating: 0, count: cachingEnabled ? blockCount * blockSize : 0)
    }

    /// Records that host block `h` holds the registered device block described by `m`, whose token ids
    /// start at `offset` in `source`.
    mutating func remember(_ h: Int, _ m: KVBlockPool.Meta, tokens source: [Int], at offset: Int) {
        guard !meta.isEmpty else { return }
        meta[h] = m
        let bs = blockSize
        tokens.withUnsafeMutableBufferPointer { dst in
            source.withUnsafeBufferPointer { src in
                for i in 0..<bs { dst[h * bs + i] = src[offset + i] }
            }
        }
    }

    mutating func allocate(refCount: Int, fill f: Int) -> Int {
        guard let b = freeStack.popLast() else { preconditionFailure("host capacity was checked") }
        refCounts[Int(b)] = Int32(refCount)
        fill[Int(b)] = Int32(f)
        return Int(b)
    }

    mutating func release(_ b: Int) {
        refCounts[b] -= 1
        if refCounts[b] == 0 {
            fill[b] = 0
            if !meta.isEmpty { meta[b].registered = false }
            freeStack.append(Int32(b))
        }
    }
}
