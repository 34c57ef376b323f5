import Dispatch
import Foundation
import TensorCore

/// Fast CPU paged attention: SIMD dot products over the head dimension,
/// online (streaming) softmax one key tile at a time, and
/// `DispatchQueue.concurrentPerform` over (sequence × KV head × query tile)
/// work items, so each item reads its K/V tiles once for all the query heads
/// of its group (GQA).
///
/// A key tile is one block of the block table (`blockSize` positions at a
/// stride of `Hkv·D` floats). ``contiguousAttention(query:key:value:causal:scale:)``
/// runs the *same* kernel over contiguous `[B, Hkv, T, D]` K/V with tiles of
/// ``contiguousTile`` positions at a stride of `D`: it is the baseline for
/// measuring what paging costs.
public struct CPUPagedAttention: PagedAttentionKernel {
    /// Query tokens per work item in prefill (decode has one).
    public var queryTile: Int
    /// Key positions per tile for contiguous K/V (matches the default block size).
    public var contiguousTile: Int

    public init(queryTile: Int = 16, contiguousTile: Int = 16) {
        self.queryTile = max(1, queryTile)
        self.contiguousTile = max(1, contiguousTile)
    }

    public var name: String { "cpu" }

    public func attention(query: Tensor, storage: PagedKVStorage, batch: PagedAttentionBatch, scale: Float) throws(KVPagingError) -> Tensor {
        let hq = try batch.validate(query: query.shape, storage: storage, scale: scale)
        guard query.isFinite else { throw KVPagingError(.nonFinite, "paged attention: query holds NaN/Inf; check the query projection") }
        let layout = PagedLayout(
            tables: batch.blockTables, contexts: batch.contextLengths, queries: batch.queryLengths,
            starts: batch.queryStarts, hq: hq, hk: storage.kvHeads, d: storage.headDim, blockSize: storage.blockSize
        )
        return query.withUnsafeBufferPointer { q in
            storage.keys.withUnsafeBufferPointer { k in
                storage.values.withUnsafeBufferPointer { v in
                    Tensor(shape: query.shape) { out in
                        run(layout, q: q, k: k, v: v, out: out, scale: scale)
                    }
                }
            }
        }
    }

    /// The same kernel on contiguous K/V, with the semantics of `ComputeBackend.attention(query:key:value:causal:scale:)` (TensorCore).
    ///
    /// - Parameters:
    ///   - query: `[B, Hq, Tq, D]`.
    ///   - key: `[B, Hkv, Tk, D]`.
    ///   - value: `[B, Hkv, Tk, D]`.
    ///   - causal: query `i` sees keys `j ≤ i + Tk − Tq`.
    ///   - scale: multiplier of `q·k` (usually `1/√D`); must be finite.
    /// - Returns: `[B, Hq, Tq, D]`.
    public func contiguousAttention(query: Tensor, key: Tensor, value: Tensor, causal: Bool, scale: Float) throws(KVPagingError) -> Tensor {
        let g: AttentionGeometry
        do {
            g = try AttentionGeometry(query: query.shape, key: key.shape, value: value.shape, causal: causal, scale: scale)
        } catch {
            throw KVPagingError(.shapeMismatch, "contiguous attention: \(error)")
        }
        let layout = ContiguousLayout(
            batch: g.batch, hq: g.queryHeads, hk: g.kvHeads, tq: g.queryLength, tk: g.keyLength,
            d: g.headDim, causal: causal, tile: contiguousTile
        )
        return query.withUnsafeBufferPointer { q in
            key.withUnsafeBufferPointer { k in
                value.withUnsafeBufferPointer { v in
                    Tensor(shape: g.outputShape) { out in
                        run(layout, q: q, k: k, v: v, out: out, scale: scale)
                    }
                }
            }
        }
    }

    // MARK: Kernel

    private func run<L: AttentionLayout>(
        _ layout: L, q: UnsafeBufferPointer<Float>, k: UnsafeBufferPointer<Float>, v: UnsafeBufferPointer<Float>,
        out: UnsafeMutableBufferPointer<Float>, scale: Float
    ) {
        // Work items: (sequence, range of KV heads, query tile). An item takes as many KV heads as keeps
        // ≥ 4 items per core: in paged storage `[blocks, blockSize, Hkv, D]` the heads of a token are
        // adjacent, so an item that covers them all streams each block's rows contiguously.
        var tiles: [(seq: Int, t0: Int, t1: Int)] = []
        for s in 0..<layout.sequences {
            let tq = layout.queryLength(s)
            var t0 = 0
            while t0 < tq {
                let t1 = min(tq, t0 + queryTile)
                tiles.append((s, t0, t1))
                t0 = t1
            }
        }
        let hk = layout.kvHeads
        let target = 4 * HostCPU.activeProcessorCount
        var headsPerItem = hk
        while headsPerItem > 1 && tiles.count * ((hk + headsPerItem - 1) / headsPerItem) < target {
            headsPerItem = (headsPerItem + 1) / 2
        }
        var items: [(seq: Int, h0: Int, h1: Int, t0: Int, t1: Int)] = []
        items.reserveCapacity(tiles.count * ((hk + headsPerItem - 1) / headsPerItem))
        for t in tiles {
            var h0 = 0
            while h0 < hk {
                let h1 = min(hk, h0 + headsPerItem)
                items.append((t.seq, h0, h1, t.t0, t.t1))
                h0 = h1
            }
        }
        let ptrs = KernelPointers(q: q.baseAddress!, k: k.baseAddress!, v: v.baseAddress!, out: out.baseAddress!)
        let work = items
        DispatchQueue.concurrentPerform(iterations: work.count) { i in
            let it = work[i]
            Self.attend(layout, ptrs, seq: it.seq, h0: it.h0, h1: it.h1, t0: it.t0, t1: it.t1, scale: scale)
        }
    }

    /// One work item: query tokens `t0..<t1` of sequence `seq`, all query heads of KV heads `h0..<h1`.
    @inline(__always)
    private static func attend<L: AttentionLayout>(_ layout: L, _ p: KernelPointers, seq: Int, h0: Int, h1: Int, t0: Int, t1: Int, scale: Float) {
        let d = layout.headDim
        let group = layout.groupSize
        let perHead = (t1 - t0) * group
        let nq = (h1 - h0) * perHead
        let maxTile = layout.maxTile
        withUnsafeTemporaryAllocation(of: Float.self, capacity: nq * d + 2 * nq + 4 * maxTile) { buf in
            let acc = buf.baseAddress!
            let mArr = acc + nq * d
            let lArr = mArr + nq
            let scores = lArr + nq
            for i in 0..<(nq * d) { acc[i] = 0 }
            for i in 0..<nq {
                mArr[i] = -.infinity
                lArr[i] = 0
            }
            // The last visible position of the tile's last token bounds the keys read.
            let limit = layout.visibleKeys(seq, t1 - 1)
            layout.forEachTile(seq, limit: limit) { first, count, tileBase, stride in
              for kvh in h0..<h1 {
                let base = tileBase + layout.kvHeadOffset(kvh)
                let headAcc = (kvh - h0) * perHead
                for tt in t0..<t1 {
                    let visible = layout.visibleKeys(seq, tt)
                    if visible <= first { continue }
                    let n = min(count, visible - first)
                    var g = 0
                    // Four query heads of the group at a time: each K and V row is read once for all four.
                    while g + 4 <= group {
                        let qi = headAcc + (tt - t0) * group + g
                        let h = kvh * group + g
                        attendFour(
                            q0: p.q + layout.queryOffset(seq, tt, h), q1: p.q + layout.queryOffset(seq, tt, h + 1),
                            q2: p.q + layout.queryOffset(seq, tt, h + 2), q3: p.q + layout.queryOffset(seq, tt, h + 3),
                            keys: p.k + base, values: p.v + base, stride: stride, count: n, d: d, scale: scale,
                            m: mArr + qi, l: lArr + qi, acc: acc + qi * d, scores: scores
                        )
                        g += 4
                    }
                    while g < group {
                        let qi = headAcc + (tt - t0) * group + g
                        let qv = p.q + layout.queryOffset(seq, tt, kvh * group + g)
                        var tileMax = -Float.infinity
                        for j in 0..<n {
                            let s = dot(qv, p.k + base + j * stride, d) * scale
                            scores[j] = s
                            tileMax = max(tileMax, s)
                        }
                        let mOld = mArr[qi]
                        let mNew = max(mOld, tileMax)
                        let correction = mOld == -.infinity ? 0 : expf(mOld - mNew)
                        var sum: Float = 0
                        for j in 0..<n {
                            let e = expf(scores[j] - mNew)
                            scores[j] = e
                            sum += e
                        }
                        lArr[qi] = lArr[qi] * correction + sum
                        mArr[qi] = mNew
                        accumulate(acc + qi * d, correction: correction, weights: scores, values: p.v + base, stride: stride, count: n, d: d)
                        g += 1
                    }
                }
              }
            }
            for kvh in h0..<h1 {
                for tt in t0..<t1 {
                    for g in 0..<group {
                        let qi = (kvh - h0) * perHead + (tt - t0) * group + g
                        let o = p.out + layout.queryOffset(seq, tt, kvh * group + g)
                        let inv = 1 / lArr[qi]
                        for x in 0..<d { o[x] = acc[qi * d + x] * inv }
                    }
                }
            }
        }
    }

    /// One key tile for four query heads sharing a KV head: online-softmax update of their
    /// running max `m[0..<4]`, sum `l[0..<4]` and accumulators `acc[4 × d]`.
    @inline(__always)
    static func attendFour(
        q0: UnsafePointer<Float>, q1: UnsafePointer<Float>, q2: UnsafePointer<Float>, q3: UnsafePointer<Float>,
        keys: UnsafePointer<Float>, values: UnsafePointer<Float>, stride: Int, count n: Int, d: Int, scale: Float,
        m: UnsafeMutablePointer<Float>, l: UnsafeMutablePointer<Float>, acc: UnsafeMutablePointer<Float>,
        scores: UnsafeMutablePointer<Float>
    ) {
        let r0 = UnsafeRawPointer(q0), r1 = UnsafeRawPointer(q1), r2 = UnsafeRawPointer(q2), r3 = UnsafeRawPointer(q3)
        let rs = UnsafeMutableRawPointer(scores)
        var tileMax = SIMD4<Float>(repeating: -.infinity)
        for j in 0..<n {
            let kp = keys + j * stride
            let rk = UnsafeRawPointer(kp)
            var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
            var x = 0
            while x + 8 <= d {
                let k8 = rk.loadUnaligned(fromByteOffset: x * 4, as: SIMD8<Float>.self)
                s0 += r0.loadUnaligned(fromByteOffset: x * 4, as: SIMD8<Float>.self) * k8
                s1 += r1.loadUnaligned(fromByteOffset: x * 4, as: SIMD8<Float>.self) * k8
                s2 += r2.loadUnaligned(fromByteOffset: x * 4, as: SIMD8<Float>.self) * k8
                s3 += r3.loadUnaligned(fromByteOffset: x * 4, as: SIMD8<Float>.self) * k8
                x += 8
            }
            var s = SIMD4<Float>(s0.sum(), s1.sum(), s2.sum(), s3.sum())
            while x < d {
                s += SIMD4<Float>(q0[x], q1[x], q2[x], q3[x]) * kp[x]
                x += 1
            }
            s *= scale
            rs.storeBytes(of: s, toByteOffset: j * 16, as: SIMD4<Float>.self)
            tileMax = pointwiseMax(tileMax, s)
        }
        let mOld = SIMD4<Float>(m[0], m[1], m[2], m[3])
        let mNew = pointwiseMax(mOld, tileMax)
        var correction = SIMD4<Float>()
        for i in 0..<4 { correction[i] = mOld[i] == -.infinity ? 0 : expf(mOld[i] - mNew[i]) }
        var sum = SIMD4<Float>()
        for j in 0..<n {
            var e = rs.loadUnaligned(fromByteOffset: j * 16, as: SIMD4<Float>.self) - mNew
            for i in 0..<4 { e[i] = expf(e[i]) }
            rs.storeBytes(of: e, toByteOffset: j * 16, as: SIMD4<Float>.self)
            sum += e
        }
        for i in 0..<4 {
            l[i] = l[i] * correction[i] + sum[i]
            m[i] = mNew[i]
        }
        let rv = UnsafeRawPointer(values)
        let ra = UnsafeMutableRawPointer(acc)
        var x = 0
        // 16 floats (one 64-byte line) per pass: in paged storage the rows of a tile are Hkv·D floats apart,
        // often a multiple of 4 KiB, so they share L1 sets; reading each line exactly once avoids thrashing.
        while x + 16 <= d {
            var a0 = ra.loadUnaligned(fromByteOffset: x * 4, as: SIMD16<Float>.self) * correction[0]
            var a1 = ra.loadUnaligned(fromByteOffset: (d + x) * 4, as: SIMD16<Float>.self) * correction[1]
            var a2 = ra.loadUnaligned(fromByteOffset: (2 * d + x) * 4, as: SIMD16<Float>.self) * correction[2]
            var a3 = ra.loadUnaligned(fromByteOffset: (3 * d + x) * 4, as: SIMD16<Float>.self) * correction[3]
            for j in 0..<n {
                let v = rv.loadUnaligned(fromByteOffset: (j * stride + x) * 4, as: SIMD16<Float>.self)
                let w = rs.loadUnaligned(fromByteOffset: j * 16, as: SIMD4<Float>.self)
                a0 += w[0] * v
                a1 += w[1] * v
                a2 += w[2] * v
                a3 += w[3] * v
            }
            ra.storeBytes(of: a0, toByteOffset: x * 4, as: SIMD16<Float>.self)
            ra.storeBytes(of: a1, toByteOffset: (d + x) * 4, as: SIMD16<Float>.self)
            ra.storeBytes(of: a2, toByteOffset: (2 * d + x) * 4, as: SIMD16<Float>.self)
            ra.storeBytes(of: a3, toByteOffset: (3 * d + x) * 4, as: SIMD16<Float>.self)
            x += 16
        }
        while x + 8 <= d {
            var a0 = ra.loadUnaligned(fromByteOffset: x * 4, as: SIMD8<Float>.self) * correction[0]
            var a1 = ra.loadUnaligned(fromByteOffset: (d + x) * 4, as: SIMD8<Float>.self) * correction[1]
            var a2 = ra.loadUnaligned(fromByteOffset: (2 * d + x) * 4, as: SIMD8<Float>.self) * correction[2]
            var a3 = ra.loadUnaligned(fromByteOffset: (3 * d + x) * 4, as: SIMD8<Float>.self) * correction[3]
            for j in 0..<n {
                let v8 = rv.loadUnaligned(fromByteOffset: (j * stride + x) * 4, as: SIMD8<Float>.self)
                let w = rs.loadUnaligned(fromByteOffset: j * 16, as: SIMD4<Float>.self)
                a0 += w[0] * v8
                a1 += w[1] * v8
                a2 += w[2] * v8
                a3 += w[3] * v8
            }
            ra.storeBytes(of: a0, toByteOffset: x * 4, as: SIMD8<Float>.self)
            ra.storeBytes(of: a1, toByteOffset: (d + x) * 4, as: SIMD8<Float>.self)
            ra.storeBytes(of: a2, toByteOffset: (2 * d + x) * 4, as: SIMD8<Float>.self)
            ra.storeBytes(of: a3, toByteOffset: (3 * d + x) * 4, as: SIMD8<Float>.self)
            x += 8
        }
        while x < d {
            var a = SIMD4<Float>(acc[x], acc[d + x], acc[2 * d + x], acc[3 * d + x]) * correction
            for j in 0..<n {
                a += rs.loadUnaligned(fromByteOffset: j * 16, as: SIMD4<Float>.self) * values[j * stride + x]
            }
            acc[x] = a[0]
            acc[d + x] = a[1]
            acc[2 * d + x] = a[2]
            acc[3 * d + x] = a[3]
            x += 1
        }
    }

    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ d: Int) -> Float {
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>()
        var x = 0
        while x + 16 <= d {
            s0 += ra.loadUnaligned(fromByteOffset: x * 4, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: x * 4, as: SIMD8<Float>.self)
            s1 += ra.loadUnaligned(fromByteOffset: x * 4 + 32, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: x * 4 + 32, as: SIMD8<Float>.self)
            x += 16
        }
        if x + 8 <= d {
            s0 += ra.loadUnaligned(fromByteOffset: x * 4, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: x * 4, as: SIMD8<Float>.self)
            x += 8
        }
        var s = (s0 + s1).sum()
        while x < d {
            s += a[x] * b[x]
            x += 1
        }
        return s
    }

    /// `acc = acc · correction + Σ_j weights[j] · values[j·stride ..< j·stride + d]`.
    @inline(__always)
    static func accumulate(_ acc: UnsafeMutablePointer<Float>, correction: Float, weights: UnsafeMutablePointer<Float>, values: UnsafePointer<Float>, stride: Int, count: Int, d: Int) {
        let rv = UnsafeRawPointer(values)
        let racc = UnsafeMutableRawPointer(acc)
        var x = 0
        while x + 8 <= d {
            var a = racc.loadUnaligned(fromByteOffset: x * 4, as: SIMD8<Float>.self) * correction
            for j in 0..<count {
                a += weights[j] * rv.loadUnaligned(fromByteOffset: (j * stride + x) * 4, as: SIMD8<Float>.self)
            }
            racc.storeBytes(of: a, toByteOffset: x * 4, as: SIMD8<Float>.self)
            x += 8
        }
        while x < d {
            var a = acc[x] * correction
            for j in 0..<count { a += weights[j] * values[j * stride + x] }
            acc[x] = a
            x += 1
        }
    }
}

/// Raw pointers shared by the work items.
///
/// `@unchecked Sendable`: the buffers outlive `concurrentPerform` (it returns only when every item
/// finished); `q`, `k`, `v` are only read, and each work item writes a disjoint set of output rows
/// (its own sequence, query tokens and query heads).
private struct KernelPointers: @unchecked Sendable {
    let q: UnsafePointer<Float>
    let k: UnsafePointer<Float>
    let v: UnsafePointer<Float>
    let out: UnsafeMutablePointer<Float>
}

/// Where queries and key/value rows live; specialised per layout so the kernel is the same code.
private protocol AttentionLayout: Sendable {
    var sequences: Int { get }
    var kvHeads: Int { get }
    var groupSize: Int { get }
    var headDim: Int { get }
    var maxTile: Int { get }
    func queryLength(_ seq: Int) -> Int
    /// Keys visible to query token `t` of `seq`.
    func visibleKeys(_ seq: Int, _ t: Int) -> Int
    /// Element offset of query token `t`, head `h`.
    func queryOffset(_ seq: Int, _ t: Int, _ h: Int) -> Int
    /// Element offset of KV head `kvh`'s row relative to KV head 0's.
    func kvHeadOffset(_ kvh: Int) -> Int
    /// Calls `body(firstPosition, count, elementOffsetOfFirstRow, rowStride)` over tiles covering positions `0..<limit`
    /// (offsets for KV head 0).
    func forEachTile(_ seq: Int, limit: Int, _ body: (Int, Int, Int, Int) -> Void)
}

private struct PagedLayout: AttentionLayout {
    let tables: [[Int]], contexts: [Int], queries: [Int], starts: [Int]
    let hq: Int, hk: Int, d: Int, blockSize: Int

    var sequences: Int { tables.count }
    var kvHeads: Int { hk }
    var groupSize: Int { hq / hk }
    var headDim: Int { d }
    var maxTile: Int { blockSize }
    func queryLength(_ seq: Int) -> Int { queries[seq] }
    @inline(__always) func visibleKeys(_ seq: Int, _ t: Int) -> Int { contexts[seq] - queries[seq] + t + 1 }
    @inline(__always) func queryOffset(_ seq: Int, _ t: Int, _ h: Int) -> Int { ((starts[seq] + t) * hq + h) * d }
    @inline(__always) func kvHeadOffset(_ kvh: Int) -> Int { kvh * d }
    @inline(__always) func forEachTile(_ seq: Int, limit: Int, _ body: (Int, Int, Int, Int) -> Void) {
        let table = tables[seq]
        let rowStride = hk * d
        var first = 0
        var i = 0
        while first < limit {
            let count = min(blockSize, limit - first)
            body(first, count, table[i] * blockSize * rowStride, rowStride)
            first += blockSize
            i += 1
        }
    }
}

private struct ContiguousLayout: AttentionLayout {
    let batch: Int, hq: Int, hk: Int, tq: Int, tk: Int, d: Int, causal: Bool, tile: Int

    var sequences: Int { batch }
    var kvHeads: Int { hk }
    var groupSize: Int { hq / hk }
    var headDim: Int { d }
    var maxTile: Int { tile }
    func queryLength(_ seq: Int) -> Int { tq }
    @inline(__always) func visibleKeys(_ seq: Int, _ t: Int) -> Int { causal ? min(tk, t + tk - tq + 1) : tk }
    @inline(__always) func queryOffset(_ seq: Int, _ t: Int, _ h: Int) -> Int { ((seq * hq + h) * tq + t) * d }
    @inline(__always) func kvHeadOffset(_ kvh: Int) -> Int { kvh * tk * d }
    @inline(__always) func forEachTile(_ seq: Int, limit: Int, _ body: (Int, Int, Int, Int) -> Void) {
        let base = seq * hk * tk * d
        var first = 0
        while first < limit {
            let count = min(tile, limit - first)
            body(first, count, base + first * d, d)
            first += tile
        }
    }
}
