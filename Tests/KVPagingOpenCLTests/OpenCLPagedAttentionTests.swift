import Testing
import KVPaging
import KVPagingOpenCL
import TensorCore

private let kernel: OpenCLPagedAttention? = try? OpenCLPagedAttention()

/// The OpenCL device is shared: run these one at a time. Skipped when no OpenCL device exists.
@Suite(.serialized, .enabled(if: kernel != nil, "no OpenCL device on this machine"))
struct OpenCLPagedAttentionTests {
    /// Float32 device kernel vs the Float64 reference: rtol 1e-4, atol 1e-5.
    private func close(_ a: Tensor, _ b: Tensor) -> Bool {
        a.shape == b.shape && zip(a.scalars, b.scalars).allSatisfy { abs($0 - $1) <= 1e-5 + 1e-4 * abs($1) }
    }

    @Test(arguments: [
        (bs: 5, hq: 6, hk: 2, d: 13, lengths: [1, 7, 23, 40], queries: [1, 1, 1, 1]),
        (bs: 4, hq: 12, hk: 3, d: 11, lengths: [23, 6, 31], queries: [9, 6, 1]),
        (bs: 16, hq: 8, hk: 2, d: 128, lengths: [97, 33], queries: [1, 5]),
    ])
    func matchesTheReference(bs: Int, hq: Int, hk: Int, d: Int, lengths: [Int], queries: [Int]) throws {
        let kernel = try #require(kernel)
        let blocks = 64
        var storage = try PagedKVStorage(numBlocks: blocks, blockSize: bs, kvHeads: hk, headDim: d)
        var rng = SplitMix64(seed: UInt64(bs * 7 + d))
        var free = Array(0..<blocks)
        free.shuffle(using: &rng)
        var tables: [[Int]] = []
        for len in lengths {
            let need = (len + bs - 1) / bs
            tables.append(Array(free.prefix(need)))
            free.removeFirst(need)
        }
        // Fill every slot of every used block through the public write API.
        for table in tables {
            let slots = table.flatMap { b in (0..<bs).map { KVSlot(block: b, offset: $0) } }
            try storage.write(
                key: Tensor.random(shape: [slots.count, hk, d], seed: rng.next()),
                value: Tensor.random(shape: [slots.count, hk, d], seed: rng.next()), at: slots)
        }
        let batch = PagedAttentionBatch(blockTables: tables, contextLengths: lengths, queryLengths: queries)
        let q = Tensor.random(shape: [batch.totalQueries, hq, d], seed: 3)
        let expected = try ReferencePagedAttention().attention(query: q, storage: storage, batch: batch)
        let got = try kernel.attention(query: q, storage: storage, batch: batch)
        #expect(close(got, expected), "OpenCL (\(kernel.deviceDescription)) differs from the reference")
    }

    @Test func badInputIsATypedError() throws {
        let kernel = try #require(kernel)
        let storage = try PagedKVStorage(numBlocks: 4, blockSize: 4, kvHeads: 1, headDim: 300)
        let batch = PagedAttentionBatch.decode(blockTables: [[0]], contextLengths: [3])
        #expect(throws: KVPagingError.self) { _ = try kernel.attention(query: Tensor(zeros: [1, 1, 300]), storage: storage, batch: batch) }
        #expect(throws: KVPagingError.self) { _ = try kernel.attention(query: Tensor(zeros: [2, 1, 300]), storage: storage, batch: batch) }
    }
}
