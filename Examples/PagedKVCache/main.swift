// PagedKVCache — one idea: K/V memory in blocks, shared between requests.
//
// Two chat requests share a system prompt; the second reuses its cached blocks.
// The second request is forked for parallel sampling; the branches share every
// block until one writes into the shared partial block (copy-on-write). Each
// step writes K/V through the slot mapping and runs paged decode attention,
// which is checked against ordinary contiguous attention on gathered K/V.
//
//   swift run PagedKVCache
import KVPaging
import TensorCore

func demo() throws {
    let (kvHeads, queryHeads, headDim) = (2, 8, 16)
    let config = KVCacheConfiguration(blockCount: 64, blockSize: 16, maxSequenceLength: 512)
    var manager = try KVBlockManager(config)
    var storage = try PagedKVStorage(config, kvHeads: kvHeads, headDim: headDim)
    var seed: UInt64 = 1

    /// Fake projections: K and V rows `[T, Hkv, D]` for `count` new tokens.
    func newRows(_ count: Int) -> (Tensor, Tensor) {
        seed += 2
        return (Tensor.random(shape: [count, kvHeads, headDim], seed: seed),
                Tensor.random(shape: [count, kvHeads, headDim], seed: seed + 1))
    }

    let system = Array(1...40)                 // a 40-token system prompt: 2 full blocks + 8 tokens
    let promptA = system + [900, 901, 902]
    let promptB = system + [700, 701, 702, 703, 704]

    for (id, prompt) in [(SequenceID(1), promptA), (SequenceID(2), promptB)] {
        guard case .admitted(let a) = try manager.admit(id, prompt: .tokens(prompt)) else {
            print("\(id): no room, would wait"); continue
        }
        // Prefill only what the cache does not already hold.
        let fresh = a.cachedTokens..<prompt.count
        let (k, v) = newRows(fresh.count)
        try storage.write(key: k, value: v, at: manager.slotMapping(of: id, positions: fresh))
        print("\(id): \(prompt.count) prompt tokens, \(a.cachedTokens) from cache, block table \(a.blockTable)")
    }

    // Parallel sampling: fork request 2 into 3. Nothing is copied yet.
    try manager.fork(2, into: 3)
    print("forked seq#2 → seq#3, shared table \(try manager.blockTable(of: 3))")

    let ids: [SequenceID] = [1, 2, 3]
    for step in 0..<4 {
        for id in ids {
            guard case .appended(let r) = try manager.appendSlot(id) else {
                print("out of blocks: preempt someone"); return
            }
            if let copy = r.copy {
                try storage.copyBlocks([copy])
                print("step \(step): \(id) wrote into a shared block → copy-on-write \(copy)")
            }
            let (k, v) = newRows(1)
            try storage.write(key: k, value: v, at: [r.lastSlot])
        }
        // Decode attention for the three sequences at once, each through its own block table.
        let batch = PagedAttentionBatch.decode(
            blockTables: try ids.map { try manager.blockTable(of: $0) },
            contextLengths: try ids.map { try manager.length(of: $0) }
        )
        let query = Tensor.random(shape: [ids.count, queryHeads, headDim], seed: 100 + UInt64(step))
        let out = try CPUPagedAttention().attention(query: query, storage: storage, batch: batch)

        // The same thing the slow way: gather each sequence's K/V and use contiguous attention.
        var worst: Float = 0
        for (i, id) in ids.enumerated() {
            let (k, v) = try storage.gather(blockTable: manager.blockTable(of: id), length: manager.length(of: id))
            let q = try Tensor(shape: [1, queryHeads, 1, headDim], scalars: Array(query.scalars[(i * queryHeads * headDim)..<((i + 1) * queryHeads * headDim)]))
            let ref = try ReferenceBackend().attention(query: q, key: k, value: v, causal: true)
            for (j, x) in ref.scalars.enumerated() { worst = max(worst, abs(x - out.scalars[i * queryHeads * headDim + j])) }
        }
        print("step \(step): paged decode attention vs contiguous, max |difference| = \(worst)")
    }

    print(manager.usage)
    for id in ids { try manager.release(id) }
    let stats = manager.prefixCacheStats
    print("after release: \(manager.usage)")
    print("prefix cache: \(stats.hitTokens) of \(stats.queriedTokens) prompt tokens hit (\(Int(stats.hitRate * 100))%)")
}

do {
    try demo()
} catch {
    print("error: \(error)")
}
