import Testing
import KVPaging
import KVPagingOpenCL
import TensorCore
import TensorCoreOpenCL

private let kernel: OpenCLPagedAttention? = try? OpenCLPagedAttention()

/// Float32 device kernel vs the Float64 reference: |x − ref| ≤ 1e-5 + 1e-4·|ref| per element
/// (Float32 dot products over D ≤ 300 terms and an online softmax over ≤ a few hundred keys).
private func close(_ a: Tensor, _ b: Tensor) -> Bool {
    a.shape == b.shape && zip(a.scalars, b.scalars).allSatisfy { abs($0 - $1) <= 1e-5 + 1e-4 * abs($1) }
}

/// A fresh seed per run; failures print it.
private func freshSeed() -> UInt64 { UInt64.random(in: 1...UInt64.max) }

/// Host and device storage holding the same random K/V for sequences of `lengths` tokens in shuffled,
/// non-contiguous blocks; every slot of every used block is written through the slot-mapping APIs.
private func makeStorages(_ kernel: OpenCLPagedAttention, blocks: Int, bs: Int, hk: Int, d: Int, lengths: [Int], seed: UInt64)
    throws -> (host: PagedKVStorage, device: OpenCLPagedKVStorage, tables: [[Int]]) {
    var host = try PagedKVStorage(numBlocks: blocks, blockSize: bs, kvHeads: hk, headDim: d)
    let dev = try OpenCLPagedKVStorage(backend: kernel.backend, numBlocks: blocks, blockSize: bs, kvHeads: hk, headDim: d)
    var rng = SplitMix64(seed: seed)
    var free = Array(0..<blocks)
    free.shuffle(using: &rng)
    var tables: [[Int]] = []
    for len in lengths {
        let need = (len + bs - 1) / bs
        tables.append(Array(free.prefix(need)))
        free.removeFirst(need)
    }
    for table in tables {
        let slots = table.flatMap { b in (0..<bs).map { KVSlot(block: b, offset: $0) } }
        let k = Tensor.random(shape: [slots.count, hk, d], seed: rng.next())
        let v = Tensor.random(shape: [slots.count, hk, d], seed: rng.next())
        try host.write(key: k, value: v, at: slots)
        try dev.write(key: k, value: v, at: slots)
    }
    return (host, dev, tables)
}

/// The OpenCL device is shared: run these one at a time. Skipped when no OpenCL device exists.
@Suite(.serialized, .enabled(if: kernel != nil, "no OpenCL device on this machine"))
struct OpenCLPagedAttentionTests {
    @Test(arguments: [
        (bs: 5, hq: 6, hk: 2, d: 13, lengths: [1, 7, 23, 40], queries: [1, 1, 1, 1]),       // decode, odd sizes, GQA 3
        (bs: 4, hq: 12, hk: 3, d: 11, lengths: [23, 6, 31], queries: [9, 6, 1]),            // prefill after a prefix + decode
        (bs: 16, hq: 8, hk: 2, d: 128, lengths: [97, 33], queries: [1, 5]),                 // decoder-sized heads
        (bs: 3, hq: 4, hk: 1, d: 300, lengths: [17, 2], queries: [3, 2]),                   // D past the old 256 limit, GQA 4
        (bs: 7, hq: 3, hk: 3, d: 129, lengths: [50], queries: [50]),                        // whole-prompt prefill, no GQA
        (bs: 2, hq: 20, hk: 10, d: 7, lengths: [9, 4, 13], queries: [1, 2, 1]),             // > 8 KV heads: two head groups per sequence
    ])
    func deviceStorageMatchesTheReference(bs: Int, hq: Int, hk: Int, d: Int, lengths: [Int], queries: [Int]) throws {
        let kernel = try #require(kernel)
        let seed = freshSeed()
        let (host, dev, tables) = try makeStorages(kernel, blocks: 64, bs: bs, hk: hk, d: d, lengths: lengths, seed: seed)
        let batch = PagedAttentionBatch(blockTables: tables, contextLengths: lengths, queryLengths: queries)
        let q = Tensor.random(shape: [batch.totalQueries, hq, d], seed: seed &+ 1)
        let expected = try ReferencePagedAttention().attention(query: q, storage: host, batch: batch)
        #expect(close(try kernel.attention(query: q, storage: dev, batch: batch), expected), "device storage, seed \(seed)")
        // The PagedAttentionKernel conformance (host storage uploaded once) agrees too.
        #expect(close(try kernel.attention(query: q, storage: host, batch: batch), expected), "host storage, seed \(seed)")
        // Device-resident query and output.
        let qd = try kernel.backend.upload(q)
        let out = try kernel.attention(query: qd, storage: dev, batch: batch, scale: 1 / Float(d).squareRoot())
        #expect(close(try kernel.backend.download(out), expected), "device query, seed \(seed)")
    }

    /// Decode steps append one token per sequence through the device slot mapping; the storage is never
    /// re-uploaded, and its download equals the host storage written the same way.
    @Test func incrementalDecodeWritesStayResident() throws {
        let kernel = try #require(kernel)
        let seed = freshSeed()
        let (bs, hq, hk, d) = (4, 8, 2, 24)
        var (host, dev, tables) = try makeStorages(kernel, blocks: 32, bs: bs, hk: hk, d: d, lengths: [5, 9], seed: seed)
        var lengths = [5, 9]
        var rng = SplitMix64(seed: seed &+ 7)
        for step in 0..<6 {
            // One new token per sequence; a new block when the table is full (take any unused block).
            var slots: [KVSlot] = []
            for s in 0..<2 {
                let p = lengths[s]
                if p / bs >= tables[s].count {
                    let used = Set(tables.flatMap { $0 })
                    tables[s].append(try #require((0..<32).first { !used.contains($0) }))
                }
                slots.append(KVSlot(block: tables[s][p / bs], offset: p % bs))
                lengths[s] += 1
            }
            let k = Tensor.random(shape: [2, hk, d], seed: rng.next())
            let v = Tensor.random(shape: [2, hk, d], seed: rng.next())
            try host.write(key: k, value: v, at: slots)
            // Alternate host rows and device rows (projections already on the device).
            if step % 2 == 0 {
                try dev.write(key: k, value: v, at: slots)
            } else {
                try dev.write(key: kernel.backend.upload(k), value: kernel.backend.upload(v), at: slots)
            }
            let batch = PagedAttentionBatch.decode(blockTables: tables, contextLengths: lengths)
            let q = Tensor.random(shape: [2, hq, d], seed: rng.next())
            let expected = try ReferencePagedAttention().attention(query: q, storage: host, batch: batch)
            #expect(close(try kernel.attention(query: q, storage: dev, batch: batch), expected), "step \(step), seed \(seed)")
        }
        let back = try dev.download()
        #expect(back.keys == host.keys && back.values == host.values)
    }

    /// Copy-on-write copies on the device and swap-in from host blocks give exactly the host results.
    @Test func blockCopiesMatchTheHostStorage() throws {
        let kernel = try #require(kernel)
        let seed = freshSeed()
        var (host, dev, tables) = try makeStorages(kernel, blocks: 12, bs: 3, hk: 2, d: 5, lengths: [9, 6], seed: seed)
        // Copy-on-write as the block manager issues it (a used block into a fresh one), then a chain whose
        // second copy reads a block the first one writes (each copy reads the state before the call).
        let used = tables.flatMap { $0 }, unused = (0..<12).filter { !used.contains($0) }
        try host.copyBlocks([BlockCopy(source: used[0], destination: unused[0])])
        try dev.copyBlocks([BlockCopy(source: used[0], destination: unused[0])])
        let copies = [BlockCopy(source: used[1], destination: used[2]), BlockCopy(source: used[2], destination: unused[1]), BlockCopy(source: 4, destination: 4)]
        try host.copyBlocks(copies)
        try dev.copyBlocks(copies)
        var swap = try PagedKVStorage(numBlocks: 3, blockSize: 3, kvHeads: 2, headDim: 5)
        try swap.write(key: Tensor.random(shape: [9, 2, 5], seed: seed &+ 3), value: Tensor.random(shape: [9, 2, 5], seed: seed &+ 4),
                       at: (0..<9).map { KVSlot(block: $0 / 3, offset: $0 % 3) })
        let swapIn = [BlockCopy(source: 2, destination: 7), BlockCopy(source: 0, destination: 9)]
        try host.copyBlocks(swapIn, from: swap)
        try dev.copyBlocks(swapIn, from: swap)
        let back = try dev.download()
        #expect(back.keys == host.keys && back.values == host.values, "seed \(seed)")
    }

    /// The same K/V through paged attention and through `OpenCLBackend.attention` on contiguous
    /// `[B, Hkv, T, D]` tensors agree (decode, no mask needed: the query is the last position).
    @Test func pagedEqualsContiguousOnTheSameDevice() throws {
        let kernel = try #require(kernel)
        let seed = freshSeed()
        let (b, ctx, hq, hk, d, bs) = (3, 45, 8, 2, 32, 8)
        let (host, dev, tables) = try makeStorages(kernel, blocks: 24, bs: bs, hk: hk, d: d, lengths: Array(repeating: ctx, count: b), seed: seed)
        // gather gives [1, Hkv, T, D] per sequence; their scalars one after another are [B, Hkv, T, D].
        let gathered = try tables.map { try host.gather(blockTable: $0, length: ctx) }
        let key = try Tensor(shape: [b, hk, ctx, d], scalars: gathered.flatMap { $0.key.scalars })
        let value = try Tensor(shape: [b, hk, ctx, d], scalars: gathered.flatMap { $0.value.scalars })
        let q = Tensor.random(shape: [b, hq, d], seed: seed &+ 1)
        let scale = 1 / Float(d).squareRoot()
        let paged = try kernel.attention(query: q, storage: dev, batch: .decode(blockTables: tables, contextLengths: Array(repeating: ctx, count: b)), scale: scale)
        let contiguous = try kernel.backend.attention(query: q.reshaped([b, hq, 1, d]), key: key, value: value, causal: true, scale: scale)
        #expect(close(paged, try contiguous.reshaped([b, hq, d])), "seed \(seed)")
    }

    @Test func badInputIsATypedError() throws {
        let kernel = try #require(kernel)
        let dev = try OpenCLPagedKVStorage(backend: kernel.backend, numBlocks: 4, blockSize: 4, kvHeads: 1, headDim: 300)
        let batch = PagedAttentionBatch.decode(blockTables: [[0]], contextLengths: [3])
        // D = 300 is fine now; a wrong query row count or head dimension is a shape error.
        _ = try kernel.attention(query: Tensor(zeros: [1, 1, 300]), storage: dev, batch: batch)
        #expect(throws: KVPagingError(.shapeMismatch, "paged attention: query [2, 1, 300] must be [N=1, Hq, D=300]")) {
            _ = try kernel.attention(query: Tensor(zeros: [2, 1, 300]), storage: dev, batch: batch)
        }
        let outside = #expect(throws: KVPagingError.self) {
            _ = try kernel.attention(query: Tensor(zeros: [1, 1, 300]), storage: dev, batch: .decode(blockTables: [[4]], contextLengths: [3]))
        }
        #expect(outside?.code == .shapeMismatch)
        let nan = #expect(throws: KVPagingError.self) {
            _ = try kernel.attention(query: Tensor(shape: [1, 1, 300], scalars: [Float](repeating: .nan, count: 300)), storage: dev, batch: batch)
        }
        #expect(nan?.code == .nonFinite)
        let row = Tensor(zeros: [2, 1, 300])
        let twice = #expect(throws: KVPagingError.self) { try dev.write(key: row, value: row, at: [KVSlot(block: 1, offset: 2), KVSlot(block: 1, offset: 2)]) }
        #expect(twice?.code == .invalidArgument)
        let past = #expect(throws: KVPagingError.self) { try dev.write(key: row, value: row, at: [KVSlot(block: 1, offset: 2), KVSlot(block: 1, offset: 4)]) }
        #expect(past?.code == .shapeMismatch)
        #expect(throws: KVPagingError.self) { try dev.copyBlocks([BlockCopy(source: 0, destination: 4)]) }
        #expect(throws: KVPagingError.self) { _ = try OpenCLPagedKVStorage(backend: kernel.backend, numBlocks: 0, blockSize: 4, kvHeads: 1, headDim: 8) }
        let huge = #expect(throws: KVPagingError.self) { _ = try OpenCLPagedKVStorage(backend: kernel.backend, numBlocks: 1 << 20, blockSize: 16, kvHeads: 8, headDim: 128) }
        #expect(huge?.code == .invalidArgument)
    }
}
