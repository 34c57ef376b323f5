// PagedAttentionOpenCL — a paged KV cache that lives on the OpenCL device.
//
// Two requests share a system prompt (the block manager reuses its cached blocks). New K/V rows go to the
// device through the slot mapping; each decode step uploads only block tables and lengths, and the paged
// attention output is checked against the CPU paged kernel on a host copy written the same way.
//
//   swift run PagedAttentionOpenCL          (needs an OpenCL device: PoCL on any CPU)
import KVPaging
import KVPagingOpenCL
import TensorCore
import TensorCoreOpenCL

func demo() throws {
    let (kvHeads, queryHeads, headDim) = (2, 8, 64)
    let config = KVCacheConfiguration(blockCount: 64, blockSize: 16, maxSequenceLength: 512)
    var manager = try KVBlockManager(config)
    let cl = try OpenCLBackend(device: .automatic)
    let attention = try OpenCLPagedAttention(backend: cl)
    let device = try OpenCLPagedKVStorage(backend: cl, config, kvHeads: kvHeads, headDim: headDim)
    var host = try PagedKVStorage(config, kvHeads: kvHeads, headDim: headDim)   // only to check the result
    print("device: \(cl.device)")
    var seed: UInt64 = 1

    /// Fake projections: K and V rows `[T, Hkv, D]` for `count` new tokens, written to both storages.
    func write(_ count: Int, at slots: [KVSlot]) throws {
        seed += 2
        let k = Tensor.random(shape: [count, kvHeads, headDim], seed: seed)
        let v = Tensor.random(shape: [count, kvHeads, headDim], seed: seed + 1)
        try device.write(key: k, value: v, at: slots)
        try host.write(key: k, value: v, at: slots)
    }

    let system = Array(1...40)
    let ids: [SequenceID] = [1, 2]
    for (id, tail) in zip(ids, [[900, 901, 902], [700, 701, 702, 703, 704]]) {
        let prompt = system + tail
        guard case .admitted(let a) = try manager.admit(id, prompt: .tokens(prompt)) else { print("\(id): no room"); return }
        let fresh = a.cachedTokens..<prompt.count
        try write(fresh.count, at: manager.slotMapping(of: id, positions: fresh))
        print("\(id): \(prompt.count) prompt tokens, \(a.cachedTokens) from cache, block table \(a.blockTable)")
    }

    for step in 0..<4 {
        var slots: [KVSlot] = []
        for id in ids {
            guard case .appended(let r) = try manager.appendSlot(id) else { print("out of blocks"); return }
            if let copy = r.copy {
                try device.copyBlocks([copy])
                try host.copyBlocks([copy])
            }
            slots.append(r.lastSlot)
        }
        try write(ids.count, at: slots)
        let batch = PagedAttentionBatch.decode(
            blockTables: try ids.map { try manager.blockTable(of: $0) },
            contextLengths: try ids.map { try manager.length(of: $0) })
        let query = Tensor.random(shape: [ids.count, queryHeads, headDim], seed: 100 + UInt64(step))
        let out = try attention.attention(query: query, storage: device, batch: batch)
        let cpu = try CPUPagedAttention().attention(query: query, storage: host, batch: batch)
        let worst = zip(out.scalars, cpu.scalars).map { abs($0 - $1) }.max() ?? 0
        print("step \(step): OpenCL paged decode vs CPU paged kernel, max |difference| = \(worst)")
    }
}

do {
    try demo()
} catch {
    print("PagedAttentionOpenCL: \(error)")
}
