import CInferenceKitBLAS
import Dispatch
import Synchronization
import TensorCore

/// How one attention call is cut into independent blocks.
///
/// A block is one (batch, KV head, query range) triple. The `G = Hq / Hkv`
/// query heads that read the same KV head are packed into one `[G·Tb, D]`
/// matrix, so each key block costs two GEMMs for the whole group:
/// `S = Q·Kᵀ` (`[G·Tb, Tkb]`) and `O += P·V` (`[G·Tb, D]`), with the online
/// softmax (running max and sum per row) in between. Memory per block is
/// `O(G·Tb·(D + Tkb))`, independent of the sequence length.
struct AttentionPlan: Sendable {
    let geometry: AttentionGeometry
    /// Query positions per block.
    let queryBlock: Int
    /// Keys per block.
    let keyBlock: Int
    let queryBlocks: Int

    var rowsPerBlock: Int { geometry.groupSize * queryBlock }
    var blockCount: Int { geometry.batch * geometry.kvHeads * queryBlocks }

    init(_ g: AttentionGeometry, configuration: BLASBackend.Configuration, workers: Int) {
        geometry = g
        let targetRows = configuration.attentionRowsPerBlock > 0 ? configuration.attentionRowsPerBlock : 256
        var qb = max(1, min(g.queryLength, targetRows / g.groupSize))
        // Enough blocks to keep every worker busy (and to even out causal imbalance),
        // without making GEMMs so thin that they stop being efficient.
        let heads = g.batch * g.kvHeads
        while qb > 16 && heads * ((g.queryLength + qb - 1) / qb) < 4 * workers {
            qb = (qb + 1) / 2
        }
        queryBlock = qb
        queryBlocks = (g.queryLength + qb - 1) / qb
        let scores = configuration.attentionScoresPerBlock > 0 ? configuration.attentionScoresPerBlock : 65_536
        let rows = g.groupSize * qb
        // Round to 16 keys so the softmax loops run on whole vectors; at least 16, at most 4096.
        let kb = max(16, min(4096, (scores / rows) / 16 * 16))
        keyBlock = min(kb, g.keyLength)
    }

    /// Block `index` → (batch, kv head, first query, query count); the heaviest causal blocks come first.
    func block(_ index: Int) -> (b: Int, kvHead: Int, q0: Int, count: Int) {
        let heads = geometry.batch * geometry.kvHeads
        let qbReversed = index / heads
        let bh = index % heads
        let qb = queryBlocks - 1 - qbReversed
        let q0 = qb * queryBlock
        return (bh / geometry.kvHeads, bh % geometry.kvHeads, q0, min(queryBlock, geometry.queryLength - q0))
    }
}

/// Scratch memory one worker reuses for every block it runs.
struct AttentionScratch: ~Copyable {
    /// Packed queries `[R, D]`.
    let q: UnsafeMutablePointer<Float>
    /// Output accumulators `[R, D]`.
    let o: UnsafeMutablePointer<Float>
    /// Scores / probabilities `[R, Tkb]`.
    let s: UnsafeMutablePointer<Float>
    /// Running max (in log2 units) per row.
    let m: UnsafeMutablePointer<Float>
    /// Running sum per row.
    let l: UnsafeMutablePointer<Float>

    init(_ plan: AttentionPlan) {
        let r = plan.rowsPerBlock, d = plan.geometry.headDim
        q = .allocate(capacity: r * d)
        o = .allocate(capacity: r * d)
        s = .allocate(capacity: r * plan.keyBlock)
        m = .allocate(capacity: r)
        l = .allocate(capacity: r)
    }

    deinit {
        q.deallocate()
        o.deallocate()
        s.deallocate()
        m.deallocate()
        l.deallocate()
    }
}

extension BLASBackend {
    public func attention(query: Tensor, key: Tensor, value: Tensor, causal: Bool, scale: Float) throws -> Tensor {
        let g = try AttentionGeometry(query: query.shape, key: key.shape, value: value.shape, causal: causal, scale: scale)
        try Self.checkBLASRange("attention", [g.queryLength * g.groupSize, g.keyLength, g.headDim],
                                shapes: "query \(query.shape), key \(key.shape)")
        if Self.usesDecodeKernel(g) {
            // Few query rows per KV head: GEMMs that thin run far from peak, so stream K and V once instead.
            return runDecodeAttention(g, query, key, value)
        }
        let workers = workerCount
        let plan = AttentionPlan(g, configuration: configuration, workers: workers)
        let parallel = configuration.attentionThreading == .blocks && workers > 1 && plan.blockCount > 1
        return query.withUnsafeBufferPointer { qp in
            key.withUnsafeBufferPointer { kp in
                value.withUnsafeBufferPointer { vp in
                    Tensor(shape: g.outputShape) { out in
                        guard let Q = qp.baseAddress, let K = kp.baseAddress, let V = vp.baseAddress,
                              let O = out.baseAddress else { return }
                        let inputs = AttentionPointers(q: SendablePointer(Q), k: SendablePointer(K), v: SendablePointer(V), out: SendableMutablePointer(O))
                        if parallel {
                            let next = Atomic<Int>(0)
                            OpenBLASThreads.withSingleThread {
                                DispatchQueue.concurrentPerform(iterations: min(workers, plan.blockCount)) { _ in
                                    let scratch = AttentionScratch(plan)
                                    while true {
                                        let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                                        if i >= plan.blockCount { break }
                                        attendBlock(plan, i, inputs, scratch)
                                    }
                                }
                            }
                        } else if configuration.attentionThreading == .blocks {
                            // One block (or one worker): its GEMMs are a few hundred rows at most, which run
                            // faster on one OpenBLAS thread than split across threads that must synchronise.
                            OpenBLASThreads.withSingleThread {
                                let scratch = AttentionScratch(plan)
                                for i in 0..<plan.blockCount { attendBlock(plan, i, inputs, scratch) }
                            }
                        } else {
                            let scratch = AttentionScratch(plan)
                            for i in 0..<plan.blockCount { attendBlock(plan, i, inputs, scratch) }
                        }
                    }
                }
            }
        }
    }
}

/// The operands of one attention call, shared read-only by the workers (the output is written in disjoint blocks).
struct AttentionPointers: Sendable {
    let q: SendablePointer
    let k: SendablePointer
    let v: SendablePointer
    let out: SendableMutablePointer
}

/// Runs one block: packs the group's queries, streams key blocks through two GEMMs and
/// the online softmax, normalises and writes the rows back.
private func attendBlock(_ plan: AttentionPlan, _ index: Int, _ p: AttentionPointers, _ scratch: borrowing AttentionScratch) {
    let g = plan.geometry
    let (b, kvHead, q0, tb) = plan.block(index)
    let d = g.headDim, group = g.groupSize
    let rows = group * tb
    let d32 = Int32(d), rows32 = Int32(rows)
    let qs = scratch.q, os = scratch.o, ss = scratch.s, ms = scratch.m, ls = scratch.l

    // Pack the group's queries: row r = gi·tb + ii is head kvHead·G + gi at position q0 + ii.
    for gi in 0..<group {
        let h = kvHead * group + gi
        let src = p.q.pointer + ((b * g.queryHeads + h) * g.queryLength + q0) * d
        (qs + gi * tb * d).update(from: src, count: tb * d)
    }
    for r in 0..<rows {
        ms[r] = -.infinity
        ls[r] = 0
    }
    let kvBase = (b * g.kvHeads + kvHead) * g.keyLength * d
    let kBase = p.k.pointer + kvBase, vBase = p.v.pointer + kvBase
    // Scores in log2 units: exp2(s·log2e) = exp(s), so the softmax uses exp2 directly.
    let alpha = g.scale * log2e
    // Causal: the last key any row of this block sees.
    let keyLimit = g.causal ? min(g.keyLength, q0 + tb + g.causalOffset) : g.keyLength

    var k0 = 0
    while k0 < keyLimit {
        let kc = min(plan.keyBlock, keyLimit - k0)
        let kc32 = Int32(kc)
        // S = α · Q · K[k0..<k0+kc]ᵀ   ([rows, kc])
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows32, kc32, d32,
                    alpha, qs, d32, kBase + k0 * d, d32, 0, ss, kc32)
        // Keys this block sees fully for every row need no mask.
        let fullyVisible = !g.causal || k0 + kc <= q0 + g.causalOffset + 1
        for r in 0..<rows {
            let srow = ss + r * kc
            var visible = kc
            if !fullyVisible {
                let position = q0 + r % tb
                visible = min(kc, position + g.causalOffset + 1 - k0)
            }
            if visible <= 0 {
                // Masked for this row: contributes nothing (k0 = 0 is visible to every row, so O is initialised).
                srow.update(repeating: 0, count: kc)
                continue
            }
            let blockMax = rowMax(srow, visible)
            let mOld = ms[r]
            let mNew = max(mOld, blockMax)
            let sum = exp2ShiftedSum(srow, visible, shift: mNew)
            if visible < kc { (srow + visible).update(repeating: 0, count: kc - visible) }
            if k0 == 0 {
                ls[r] = sum
            } else {
                let correction = exp2Scalar(mOld - mNew)
                ls[r] = ls[r] * correction + sum
                if correction != 1 { scaleRow(os + r * d, d, by: correction) }
            }
            ms[r] = mNew
        }
        // O = P · V[k0..<k0+kc] (+ O)   ([rows, D])
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows32, d32, kc32,
                    1, ss, kc32, vBase + k0 * d, d32, k0 == 0 ? 0 : 1, os, d32)
        k0 += kc
    }

    // Normalise and scatter back to [B, Hq, Tq, D].
    for gi in 0..<group {
        let h = kvHead * group + gi
        let dst = p.out.pointer + ((b * g.queryHeads + h) * g.queryLength + q0) * d
        for ii in 0..<tb {
            let r = gi * tb + ii
            scaleRow(os + r * d, into: dst + ii * d, d, by: 1 / ls[r])
        }
    }
}
