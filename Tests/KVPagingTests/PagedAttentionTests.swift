import Testing
import TensorCore
@testable import KVPaging

/// Max |a − b| / (atol + rtol·|b|) ≤ 1 elementwise. Float32 kernels vs a Float64 oracle:
/// rtol 1e-4, atol 1e-5 (outputs are convex combinations of values in [−1, 1]).
private func close(_ a: Tensor, _ b: Tensor, rtol: Float = 1e-4, atol: Float = 1e-5) -> Bool {
    guard a.shape == b.shape else { return false }
    for (x, y) in zip(a.scalars, b.scalars) where !(abs(x - y) <= atol + rtol * abs(y)) { return false }
    return true
}

/// Random storage and random (shuffled, non-contiguous) block tables.
private struct Fixture {
    var storage: PagedKVStorage
    var tables: [[Int]]

    init(blocks: Int, blockSize: Int, hk: Int, d: Int, lengths: [Int], seed: UInt64) throws {
        storage = try PagedKVStorage(numBlocks: blocks, blockSize: blockSize, kvHeads: hk, headDim: d)
        let n = blocks * blockSize * hk * d
        storage.keys = Tensor.random(shape: [n], seed: seed).scalars
        storage.values = Tensor.random(shape: [n], seed: seed &+ 1).scalars
        var rng = SplitMix64(seed: seed &+ 2)
        var free = Array(0..<blocks)
        free.shuffle(using: &rng)
        tables = []
        for len in lengths {
            let need = (len + blockSize - 1) / blockSize
            tables.append(Array(free.prefix(need)))
            free.removeFirst(need)
        }
    }
}

@Suite struct PagedAttentionCorrectness {
    let kernels: [any PagedAttentionKernel] = [ReferencePagedAttention(), CPUPagedAttention(), CPUPagedAttention(queryTile: 3)]

    /// Oracle: gather each sequence's K/V into contiguous tensors and run ReferenceBackend.attention (causal,
    /// aligned to the end) on that sequence's queries.
    private func oracle(_ f: Fixture, query: Tensor, batch: PagedAttentionBatch, hq: Int, d: Int) throws -> Tensor {
        var out = [Float]()
        let starts = batch.queryStarts
        for s in 0..<batch.sequenceCount {
            let (k, v) = try f.storage.gather(blockTable: batch.blockTables[s], length: batch.contextLengths[s])
            let tq = batch.queryLengths[s]
            // Packed rows [tq, Hq, D] → [1, Hq, tq, D].
            let q = Tensor(shape: [1, hq, tq, d]) { p in
                for t in 0..<tq { for h in 0..<hq { for x in 0..<d { p[(h * tq + t) * d + x] = query.scalars[((starts[s] + t) * hq + h) * d + x] } } }
            }
            let o = try ReferenceBackend().attention(query: q, key: k, value: v, causal: true, scale: 1 / Float(d).squareRoot())
            for t in 0..<tq { for h in 0..<hq { for x in 0..<d { out.append(o.scalars[(h * tq + t) * d + x]) } } }
        }
        return try Tensor(shape: query.shape, scalars: out)
    }

    @Test(arguments: [
        (bs: 5, hq: 6, hk: 2, d: 13, lengths: [1, 7, 23, 40]),
        (bs: 16, hq: 8, hk: 8, d: 32, lengths: [17, 3, 64]),
        (bs: 3, hq: 9, hk: 3, d: 19, lengths: [11, 2]),
        (bs: 1, hq: 4, hk: 1, d: 8, lengths: [5, 9]),
        (bs: 7, hq: 10, hk: 2, d: 21, lengths: [50, 13, 1]),   // group of 5: one 4-wide pass + one single
        (bs: 16, hq: 8, hk: 2, d: 128, lengths: [97, 33]),
    ])
    func decodeMatchesContiguousAttention(bs: Int, hq: Int, hk: Int, d: Int, lengths: [Int]) throws {
        let f = try Fixture(blocks: 64, blockSize: bs, hk: hk, d: d, lengths: lengths, seed: UInt64(bs * 31 + d))
        let batch = PagedAttentionBatch.decode(blockTables: f.tables, contextLengths: lengths)
        let q = Tensor.random(shape: [lengths.count, hq, d], seed: 77)
        let expected = try oracle(f, query: q, batch: batch, hq: hq, d: d)
        for kernel in kernels {
            let got = try kernel.attention(query: q, storage: f.storage, batch: batch)
            #expect(close(got, expected), "\(kernel.name) decode differs from contiguous attention")
        }
    }

    @Test(arguments: [(hq: 6, hk: 3, d: 11), (hq: 12, hk: 3, d: 11), (hq: 9, hk: 1, d: 17)])
    func prefillContinuingAfterACachedPrefixIsCausal(hq: Int, hk: Int, d: Int) throws {
        // Sequence 0: 9 new tokens after a 14-token cached prefix; sequence 1: a fresh 6-token prompt;
        // sequence 2: decode. Odd sizes throughout.
        let lengths = [23, 6, 31], queries = [9, 6, 1]
        let f = try Fixture(blocks: 40, blockSize: 4, hk: hk, d: d, lengths: lengths, seed: 5)
        let batch = PagedAttentionBatch(blockTables: f.tables, contextLengths: lengths, queryLengths: queries)
        let q = Tensor.random(shape: [16, hq, d], seed: 6)
        let expected = try oracle(f, query: q, batch: batch, hq: hq, d: d)
        for kernel in kernels {
            let got = try kernel.attention(query: q, storage: f.storage, batch: batch)
            #expect(close(got, expected), "\(kernel.name) prefill differs from contiguous causal attention")
        }
    }

    @Test func contiguousCPUKernelMatchesReferenceBackend() throws {
        for (causal, tq, tk) in [(false, 1, 37), (true, 1, 37), (true, 7, 19), (false, 5, 5)] {
            let q = Tensor.random(shape: [3, 6, tq, 13], seed: 1)
            let k = Tensor.random(shape: [3, 2, tk, 13], seed: 2)
            let v = Tensor.random(shape: [3, 2, tk, 13], seed: 3)
            let expected = try ReferenceBackend().attention(query: q, key: k, value: v, causal: causal, scale: 0.3)
            let got = try CPUPagedAttention(contiguousTile: 7).contiguousAttention(query: q, key: k, value: v, causal: causal, scale: 0.3)
            #expect(close(got, expected))
        }
    }

    @Test func largeScoresStayFinite() throws {
        // Scale 40 makes scores ~±100s: a naive exp would overflow; online softmax must not.
        let f = try Fixture(blocks: 8, blockSize: 4, hk: 1, d: 8, lengths: [29], seed: 9)
        let batch = PagedAttentionBatch.decode(blockTables: f.tables, contextLengths: [29])
        let q = Tensor.random(shape: [1, 2, 8], seed: 10)
        let ref = try ReferencePagedAttention().attention(query: q, storage: f.storage, batch: batch, scale: 40)
        let cpu = try CPUPagedAttention().attention(query: q, storage: f.storage, batch: batch, scale: 40)
        #expect(cpu.isFinite && close(cpu, ref))
    }

    @Test func blockManagerDrivesStorageEndToEnd() throws {
        // Admit, prefill through the slot mapping, fork, decode both branches with copy-on-write,
        // then paged attention over each branch equals contiguous attention over what that branch wrote.
        let (hk, d, hq, bs) = (2, 9, 4, 4)
        var kv = try KVBlockManager(KVCacheConfiguration(blockCount: 32, blockSize: bs))
        var storage = try PagedKVStorage(kv.configuration, kvHeads: hk, headDim: d)
        var contiguousK: [SequenceID: [Tensor]] = [:], contiguousV: [SequenceID: [Tensor]] = [:]
        var seed: UInt64 = 100
        func rows(_ n: Int) -> (Tensor, Tensor) {
            seed += 2
            return (Tensor.random(shape: [n, hk, d], seed: seed), Tensor.random(shape: [n, hk, d], seed: seed + 1))
        }
        let a = try #require(try kv.admit(1, prompt: .length(10)).admission)
        let (pk, pv) = rows(10)
        try storage.write(key: pk, value: pv, at: kv.slotMapping(of: 1, positions: 0..<10))
        contiguousK[1] = [pk]; contiguousV[1] = [pv]
        #expect(a.blockTable.count == 3)
        try kv.fork(1, into: 2)
        contiguousK[2] = [pk]; contiguousV[2] = [pv]
        for step in 0..<6 {
            for id in [SequenceID(1), 2] {
                let r = try #require(try kv.appendSlot(id).result)
                if let c = r.copy { try storage.copyBlocks([c]) }
                let (k1, v1) = rows(1)
                try storage.write(key: k1, value: v1, at: [r.lastSlot])
                contiguousK[id]!.append(k1); contiguousV[id]!.append(v1)
                _ = step
            }
        }
        let ids: [SequenceID] = [1, 2]
        let tables = try ids.map { try kv.blockTable(of: $0) }
        let lens = try ids.map { try kv.length(of: $0) }
        let batch = PagedAttentionBatch.decode(blockTables: tables, contextLengths: lens)
        let q = Tensor.random(shape: [2, hq, d], seed: 3)
        let got = try CPUPagedAttention().attention(query: q, storage: storage, batch: batch)
        for (i, id) in ids.enumerated() {
            // [T, Hkv, D] rows → [1, Hkv, T, D].
            let kRows = contiguousK[id]!.flatMap(\.scalars), vRows = contiguousV[id]!.flatMap(\.scalars)
            let t = lens[i]
            func toBHTD(_ r: [Float]) -> Tensor {
                Tensor(shape: [1, hk, t, d]) { p in
                    for pos in 0..<t { for h in 0..<hk { for x in 0..<d { p[(h * t + pos) * d + x] = r[(pos * hk + h) * d + x] } } }
                }
            }
            let qi = try Tensor(shape: [1, hq, 1, d], scalars: Array(q.scalars[(i * hq * d)..<((i + 1) * hq * d)]))
            let expected = try ReferenceBackend().attention(query: qi, key: toBHTD(kRows), value: toBHTD(vRows), causal: true)
            let gotI = try Tensor(shape: [1, hq, 1, d], scalars: Array(got.scalars[(i * hq * d)..<((i + 1) * hq * d)]))
            #expect(close(gotI, expected), "branch \(id) sees other K/V than it wrote")
        }
    }

    @Test func badInputIsATypedError() throws {
        let f = try Fixture(blocks: 8, blockSize: 4, hk: 2, d: 8, lengths: [9], seed: 1)
        let q = Tensor.random(shape: [1, 4, 8], seed: 2)
        let cases: [(PagedAttentionBatch, Tensor, Float)] = [
            (.decode(blockTables: [[0, 1]], contextLengths: [9]), q, 1),            // table too short
            (.decode(blockTables: [[0, 1, 99]], contextLengths: [9]), q, 1),        // block out of range
            (.decode(blockTables: [[0, 1, 2]], contextLengths: [0]), q, 1),         // empty context
            (PagedAttentionBatch(blockTables: [[0, 1, 2]], contextLengths: [9], queryLengths: [10]), q, 1),
            (.decode(blockTables: [[0, 1, 2]], contextLengths: [9]), Tensor.random(shape: [1, 3, 8], seed: 1), 1),  // Hq % Hkv
            (.decode(blockTables: [[0, 1, 2]], contextLengths: [9]), Tensor.random(shape: [2, 4, 8], seed: 1), 1),  // N
            (.decode(blockTables: [[0, 1, 2]], contextLengths: [9]), q, .nan),
            (.decode(blockTables: [[0, 1, 2]], contextLengths: [9]), Tensor(repeating: .infinity, shape: [1, 4, 8]), 1),
            (PagedAttentionBatch(blockTables: [], contextLengths: [], queryLengths: []), q, 1),
        ]
        for kernel in kernels {
            for (batch, query, scale) in cases {
                #expect(throws: KVPagingError.self) { _ = try kernel.attention(query: query, storage: f.storage, batch: batch, scale: scale) }
            }
        }
        var s = f.storage
        #expect(throws: KVPagingError.self) { try s.write(key: Tensor(zeros: [1, 2, 8]), value: Tensor(zeros: [1, 2, 8]), at: [KVSlot(block: 8, offset: 0)]) }
        #expect(throws: KVPagingError.self) { try s.write(key: Tensor(zeros: [2, 2, 8]), value: Tensor(zeros: [2, 2, 8]), at: [KVSlot(block: 0, offset: 0)]) }
        #expect(throws: KVPagingError.self) { try s.write(key: Tensor(repeating: .nan, shape: [1, 2, 8]), value: Tensor(zeros: [1, 2, 8]), at: [KVSlot(block: 0, offset: 0)]) }
        #expect(throws: KVPagingError.self) { try s.copyBlocks([BlockCopy(source: 0, destination: 8)]) }
        #expect(throws: KVPagingError.self) { _ = try PagedKVStorage(numBlocks: 0, blockSize: 4, kvHeads: 1, headDim: 1) }
        #expect(throws: KVPagingError.self) {
            _ = try CPUPagedAttention().contiguousAttention(query: Tensor(zeros: [1, 2, 1, 4]), key: Tensor(zeros: [1, 2, 3, 5]), value: Tensor(zeros: [1, 2, 3, 5]), causal: false, scale: 1)
        }
    }

    @Test func swapRoundTripThroughHostStorageKeepsKV() throws {
        var kv = try KVBlockManager(KVCacheConfiguration(blockCount: 8, blockSize: 4, hostBlockCount: 8))
        var device = try PagedKVStorage(numBlocks: 8, blockSize: 4, kvHeads: 1, headDim: 3)
        var host = try PagedKVStorage(numBlocks: 8, blockSize: 4, kvHeads: 1, headDim: 3)
        _ = try kv.admit(1, prompt: .length(7))
        let k = Tensor.random(shape: [7, 1, 3], seed: 1), v = Tensor.random(shape: [7, 1, 3], seed: 2)
        try device.write(key: k, value: v, at: kv.slotMapping(of: 1, positions: 0..<7))
        let before = try device.gather(blockTable: kv.blockTable(of: 1), length: 7)
        let outcome = try kv.swapOut([1])
        try host.copyBlocks(#require(outcome.copies), from: device)
        // Someone else overwrites the freed device blocks.
        _ = try kv.admit(2, prompt: .length(32))
        try device.write(key: Tensor(zeros: [32, 1, 3]), value: Tensor(zeros: [32, 1, 3]), at: kv.slotMapping(of: 2, positions: 0..<32))
        try kv.release(2)
        let back = try kv.swapIn([1])
        try device.copyBlocks(#require(back.copies), from: host)
        let after = try device.gather(blockTable: kv.blockTable(of: 1), length: 7)
        #expect(after.key == before.key && after.value == before.value)
    }
}
