import CInferenceKitOpenCL
import Foundation
import TensorCore

// MARK: - Device-resident ops

extension OpenCLBackend {
    /// Matrix product on device-resident tensors; shapes as in ``ComputeBackend/matmul(_:_:transposeA:transposeB:)``:
    /// `a` `[M, K]` or `[B, M, K]` (`[K, M]` / `[B, K, M]` when `transposeA`), `b` `[K, N]` or `[B, K, N]`
    /// (`[N, K]` / `[B, N, K]` when `transposeB`; a 2-D `b` is shared by every batch) → `[M, N]` or `[B, M, N]`.
    ///
    /// Returns once the kernels are queued.
    public func matmul(_ a: OpenCLTensor, _ b: OpenCLTensor, transposeA: Bool, transposeB: Bool) throws -> OpenCLTensor {
        let g = try MatmulGeometry(a.shape, b.shape, transposeA: transposeA, transposeB: transposeB)
        try checkOwned(a, "matmul", "a")
        try checkOwned(b, "matmul", "b")
        try checkIndexable(g.outputShape.elementCount, "matmul result \(g.outputShape)")
        let variant = matmulVariant(for: g)
        return try runtime.session.withLock { s in
            let c = try newTensor(g.outputShape, s)
            switch variant {
            case .tiledLocalMemory: try launchTiled(g, a.buffer, b.buffer, c.buffer, s)
            case .registerBlockedVector: try launchVector(g, a.buffer, b.buffer, c.buffer, s)
            }
            return c
        }
    }

    private func launchTiled(_ g: MatmulGeometry, _ a: cl_mem, _ b: cl_mem, _ c: cl_mem, _ s: borrowing DeviceSession) throws {
        let edge = runtime.tileEdge, tile = edge * 4
        let global = [(g.n + tile - 1) / tile * edge, (g.m + tile - 1) / tile * edge, g.batch]
        try s.launch("matmul_tiled", [
            .buffer(a), .buffer(b), .buffer(c),
            .int(Int32(g.m)), .int(Int32(g.n)), .int(Int32(g.k)),
            .int(g.transposeA ? 1 : 0), .int(g.transposeB ? 1 : 0),
            .int(Int32(g.m * g.k)), .int(g.sharedB ? 0 : Int32(g.k * g.n)),
        ], global: global, local: [edge, edge, 1])
    }

    private func launchVector(_ g: MatmulGeometry, _ a: cl_mem, _ b: cl_mem, _ c: cl_mem, _ s: borrowing DeviceSession) throws {
        let plan = VectorMatmulPlan(g)
        if let few = plan.fewRows {
            try launchFewRows(g, plan, few, a, b, c, s)
            return
        }
        let mr = KernelSource.vectorRows, nr = KernelSource.vectorColumns
        let nPanels = plan.nPanels
        // Scratch panels live until the queued kernels that use them finish (OpenCL defers the release).
        var scratch: [OpenCLTensor] = []
        defer { _ = scratch }

        let aOperand: cl_mem, aPanelStride: Int, aKStride: Int, aBatchStride: Int
        if plan.packA {
            let count = g.batch * plan.mPanels * g.k * mr
            try checkIndexable(count, "matmul packed a")
            let packed = try newTensor([count], s)
            scratch.append(packed)
            try s.launch("pack_a", [
                .buffer(a), .buffer(packed.buffer), .int(Int32(g.m)), .int(Int32(g.k)),
                .int(g.transposeA ? 1 : 0), .int(Int32(g.m * g.k)), .int(Int32(plan.mPanels)),
            ], global: [roundUp(g.k, 64), plan.mPanels, g.batch], local: [64, 1, 1])
            (aOperand, aPanelStride, aKStride, aBatchStride) = (packed.buffer, g.k * mr, mr, plan.mPanels * g.k * mr)
        } else {
            (aOperand, aPanelStride, aKStride, aBatchStride) = (a, mr, g.m, g.m * g.k)
        }

        // b is always packed: reading a [K, N] b in place jumps a whole row per step of k (a new page at
        // N ≥ 1024) and measured 1.2–1.9× slower; products with few rows use the few-row kernels instead.
        let bBatches = g.sharedB ? 1 : g.batch
        let bCount = bBatches * nPanels * g.k * nr
        try checkIndexable(bCount, "matmul packed b")
        let packedB = try newTensor([bCount], s)
        scratch.append(packedB)
        try s.launch("pack_b", [
            .buffer(b), .buffer(packedB.buffer), .int(Int32(g.n)), .int(Int32(g.k)),
            .int(g.transposeB ? 1 : 0), .int(Int32(g.k * g.n)), .int(Int32(nPanels)), .int(Int32(nr)),
        ], global: [roundUp(g.k, 64), nPanels, bBatches], local: [64, 1, 1])
        let (bPanelStride, bKStride, bBatchStride) = (g.k * nr, nr, g.sharedB ? 0 : nPanels * g.k * nr)

        // Work-groups of `rows` panels along M share one panel of b (kept in cache while they run; 16 measured
        // 10–17% faster than 4). Fixed so PoCL specialises the kernel once; work-items past mPanels return at once.
        let rows = KernelSource.vectorGroupRows
        let mGlobal = roundUp(plan.mPanels, rows)
        try s.launch("matmul_vector", [
            .buffer(aOperand), .buffer(packedB.buffer), .buffer(c),
            .int(Int32(g.m)), .int(Int32(g.n)), .int(Int32(g.k)),
            .int(Int32(aPanelStride)), .int(Int32(aKStride)), .int(Int32(aBatchStride)),
            .int(Int32(bPanelStride)), .int(Int32(bKStride)), .int(Int32(bBatchStride)),
            .int(Int32(plan.mPanels)),
        ], global: [nPanels, mGlobal, g.batch], local: [1, rows, 1])
    }

    private func launchFewRows(_ g: MatmulGeometry, _ plan: VectorMatmulPlan, _ few: VectorMatmulPlan.FewRows,
                               _ a: cl_mem, _ b: cl_mem, _ c: cl_mem, _ s: borrowing DeviceSession) throws {
        let (rows, products) = (plan.rows, plan.products)
        let aStride = Int32(rows * g.k), bStride = Int32(g.sharedB ? 0 : g.n * g.k)
        switch few {
        case .transposedB:
            let items = (g.n + KernelSource.rowsBT - 1) / KernelSource.rowsBT
            try s.launch("matmul_rows_bt", [
                .buffer(a), .buffer(b), .buffer(c), .int(Int32(rows)), .int(Int32(g.n)), .int(Int32(g.k)), .int(aStride), .int(bStride),
            ], global: [roundUp(items, 16), products], local: [16, 1])
        case .plainB:
            let chunks = (g.k + KernelSource.rowsChunk - 1) / KernelSource.rowsChunk
            let count = products * chunks * rows * g.n
            try checkIndexable(count, "matmul partial sums")
            // Partial sums per chunk of k; released after the queued kernels finish.
            let part = try newTensor([count], s)
            try s.launch("matmul_rows_bn", [
                .buffer(a), .buffer(b), .buffer(part.buffer), .int(Int32(rows)), .int(Int32(g.n)), .int(Int32(g.k)),
                .int(aStride), .int(bStride), .int(Int32(chunks)),
            ], global: [(g.n + KernelSource.rowsColumns - 1) / KernelSource.rowsColumns, chunks, products], local: [1, 1, 1])
            try s.launch("matmul_rows_reduce", [
                .buffer(part.buffer), .buffer(c), .int(Int32(rows * g.n)), .int(Int32(chunks)),
            ], global: [roundUp(rows * g.n, 64), products], local: [64, 1])
        }
    }

    /// Fused grouped-query attention on device-resident tensors: query `[B, Hq, Tq, D]`, key/value
    /// `[B, Hkv, Tk, D]` → `[B, Hq, Tq, D]`; semantics as in ``ComputeBackend/attention(query:key:value:causal:scale:)``.
    ///
    /// One pass over K and V per query row with an online softmax (running max and normaliser, rescaled per
    /// block of 32 keys), so memory stays O(T·D). Returns once the kernel is queued.
    public func attention(query: OpenCLTensor, key: OpenCLTensor, value: OpenCLTensor, causal: Bool, scale: Float) throws -> OpenCLTensor {
        let g = try AttentionGeometry(query: query.shape, key: key.shape, value: value.shape, causal: causal, scale: scale)
        try checkOwned(query, "attention", "query")
        try checkOwned(key, "attention", "key")
        try checkOwned(value, "attention", "value")
        let variant = attentionVariant
        return try runtime.session.withLock { s in
            let out = try newTensor(g.outputShape, s)
            switch variant {
            case .rowwise: try launchRowwiseAttention(g, query.buffer, key.buffer, value.buffer, out.buffer, s)
            case .registerBlockedVector: try launchBlockedAttention(g, query.buffer, key.buffer, value.buffer, out.buffer, s)
            }
            return out
        }
    }

    /// Key ranges per row for the row-wise kernel: with few rows (decode), split the keys so that about
    /// 2048 work-items run, each over at least 256 keys; 1 means no split.
    static func attentionSplits(_ g: AttentionGeometry) -> Int {
        let rows = g.batch * g.queryHeads * g.queryLength
        let wanted = (2048 + rows - 1) / rows
        return max(1, min(wanted, g.keyLength / 256, KernelSource.attentionMaxSplits))
    }

    private func launchRowwiseAttention(_ g: AttentionGeometry, _ q: cl_mem, _ k: cl_mem, _ v: cl_mem, _ out: cl_mem, _ s: borrowing DeviceSession) throws {
        // One work-item per query row; CPU devices run rows one per work-group, GPUs group 32 rows.
        let local = device.kind == .cpu ? 1 : 32
        let splits = Self.attentionSplits(g)
        if splits > 1 {
            let per = (g.keyLength + splits - 1) / splits
            let rows = g.batch * g.queryHeads * splits * g.queryLength
            try checkIndexable(rows * g.headDim, "attention partial rows")
            // Partial rows and (m, l) per key range; released after the queued kernels finish.
            let partO = try newTensor([rows * g.headDim], s)
            let partML = try newTensor([rows * 2], s)
            try s.launch("attention_split", [
                .buffer(q), .buffer(k), .buffer(v), .buffer(partO.buffer), .buffer(partML.buffer),
                .int(Int32(g.queryHeads)), .int(Int32(g.kvHeads)), .int(Int32(g.queryLength)), .int(Int32(g.keyLength)),
                .int(Int32(g.headDim)), .int(g.causal ? 1 : 0), .float(g.scale), .int(Int32(splits)), .int(Int32(per)),
                .int(Int32(rows)),
            ], global: [roundUp(g.queryLength, local), g.queryHeads * splits, g.batch], local: [local, 1, 1])
            try s.launch("attention_combine", [
                .buffer(partO.buffer), .buffer(partML.buffer), .buffer(out),
                .int(Int32(g.queryHeads)), .int(Int32(g.queryLength)), .int(Int32(g.headDim)), .int(Int32(splits)),
                .int(Int32(rows)),
            ], global: [roundUp(g.queryLength, local), g.queryHeads, g.batch], local: [local, 1, 1])
            return
        }
        // Accumulators laid out [D][rows] so neighbouring work-items touch neighbouring addresses.
        let rows = g.batch * g.queryHeads * g.queryLength
        try checkIndexable(rows * g.headDim, "attention accumulators")
        let acc = try newTensor([rows * g.headDim], s)
        try s.launch("attention", [
            .buffer(q), .buffer(k), .buffer(v), .buffer(acc.buffer), .buffer(out),
            .int(Int32(g.queryHeads)), .int(Int32(g.kvHeads)), .int(Int32(g.queryLength)), .int(Int32(g.keyLength)),
            .int(Int32(g.headDim)), .int(g.causal ? 1 : 0), .float(g.scale), .int(Int32(rows)),
        ], global: [roundUp(g.queryLength, local), g.queryHeads, g.batch], local: [local, 1, 1])
    }

    private func launchBlockedAttention(_ g: AttentionGeometry, _ q: cl_mem, _ k: cl_mem, _ v: cl_mem, _ out: cl_mem, _ s: borrowing DeviceSession) throws {
        let rowsPad = roundUp(g.groupSize * g.queryLength, KernelSource.attentionQueryRows)
        let accCount = g.batch * g.kvHeads * rowsPad * g.headDim
        try checkIndexable(accCount, "attention accumulators")
        // Scratch accumulators, one D-row per (kv head, virtual row); released after the queued kernel finishes.
        let acc = try newTensor([accCount], s)
        try s.launch("attention_blocked", [
            .buffer(q), .buffer(k), .buffer(v), .buffer(acc.buffer), .buffer(out),
            .int(Int32(g.queryHeads)), .int(Int32(g.kvHeads)), .int(Int32(g.queryLength)), .int(Int32(g.keyLength)),
            .int(Int32(rowsPad)), .int(Int32(g.headDim)), .int(g.causal ? 1 : 0), .float(g.scale),
        ], global: [rowsPad / KernelSource.attentionQueryRows, g.kvHeads, g.batch], local: [1, 1, 1])
    }

    /// Softmax over the last axis of a device-resident tensor (same shape out).
    public func softmax(_ x: OpenCLTensor) throws -> OpenCLTensor {
        let (rows, d) = try OpValidation.softmax(x.shape)
        try checkOwned(x, "softmax", "x")
        return try runtime.session.withLock { s in
            let y = try newTensor(x.shape, s)
            try s.launch1D("softmax_rows", [.buffer(x.buffer), .buffer(y.buffer), .int(Int32(d)), .int(Int32(rows))], count: rows, local: 8)
            return y
        }
    }

    /// RMS normalisation over the last axis, `weight` `[D]`.
    public func rmsNorm(_ x: OpenCLTensor, weight: OpenCLTensor, epsilon: Float) throws -> OpenCLTensor {
        let (rows, d) = try OpValidation.rmsNorm(x.shape, weight: weight.shape, epsilon: epsilon)
        try checkOwned(x, "rmsNorm", "x")
        try checkOwned(weight, "rmsNorm", "weight")
        return try runtime.session.withLock { s in
            let y = try newTensor(x.shape, s)
            try s.launch1D("rms_norm_rows", [.buffer(x.buffer), .buffer(weight.buffer), .buffer(y.buffer), .int(Int32(d)), .float(epsilon), .int(Int32(rows))], count: rows, local: 8)
            return y
        }
    }

    /// Rotary embedding of `x` `[B, H, T, D]` at `positions` (count `T`, or `B·T` per sequence).
    ///
    /// The cos/sin table is computed on the host in Float64 (angles reach thousands of radians, where
    /// Float32 angle arithmetic would lose ~1e-4), then used on the device.
    public func rope(_ x: OpenCLTensor, positions: [Int], theta: Float, style: RotaryStyle) throws -> OpenCLTensor {
        let (b, h, t, d) = try OpValidation.rope(x.shape, positions: positions, theta: theta)
        try checkOwned(x, "rope", "x")
        let inv = OpValidation.ropeInverseFrequencies(dim: d, theta: theta)
        let half = d / 2
        var table = [Float](repeating: 0, count: positions.count * half * 2)
        for (p, pos) in positions.enumerated() {
            for i in 0..<half {
                let angle = Double(pos) * inv[i]
                table[(p * half + i) * 2] = Float(cos(angle))
                table[(p * half + i) * 2 + 1] = Float(sin(angle))
            }
        }
        let cs = try upload(Tensor(shape: [table.count], scalars: table))
        return try runtime.session.withLock { s in
            let y = try newTensor(x.shape, s)
            let total = b * h * t * half
            try s.launch1D("rope", [
                .buffer(x.buffer), .buffer(cs.buffer), .buffer(y.buffer),
                .int(Int32(h)), .int(Int32(t)), .int(Int32(d)),
                .int(positions.count == t ? 0 : 1), .int(style == .interleaved ? 1 : 0), .long(Int64(total)),
            ], count: total)
            return y
        }
    }

    /// `x · sigmoid(x)` elementwise.
    public func silu(_ x: OpenCLTensor) throws -> OpenCLTensor {
        try checkOwned(x, "silu", "x")
        return try runtime.session.withLock { s in
            let y = try newTensor(x.shape, s)
            try s.launch1D("silu", [.buffer(x.buffer), .buffer(y.buffer), .long(Int64(x.elementCount))], count: x.elementCount)
            return y
        }
    }

    /// Elementwise `a + b`, `b` equal to `a`'s shape or a suffix of it.
    public func add(_ a: OpenCLTensor, _ b: OpenCLTensor) throws -> OpenCLTensor {
        try broadcast("add", "add_broadcast", a, b)
    }

    /// Elementwise `a · b`, `b` equal to `a`'s shape or a suffix of it.
    public func mul(_ a: OpenCLTensor, _ b: OpenCLTensor) throws -> OpenCLTensor {
        try broadcast("mul", "mul_broadcast", a, b)
    }

    private func broadcast(_ op: String, _ kernel: String, _ a: OpenCLTensor, _ b: OpenCLTensor) throws -> OpenCLTensor {
        let g = try BroadcastGeometry(op, a.shape, b.shape)
        try checkOwned(a, op, "a")
        try checkOwned(b, op, "b")
        return try runtime.session.withLock { s in
            let y = try newTensor(a.shape, s)
            try s.launch1D(kernel, [.buffer(a.buffer), .buffer(b.buffer), .buffer(y.buffer), .int(Int32(max(g.period, 1))), .long(Int64(g.count))], count: g.count)
            return y
        }
    }
}

// MARK: - ComputeBackend on host tensors (upload, run, download)

extension OpenCLBackend {
    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) throws -> Tensor {
        _ = try MatmulGeometry(a.shape, b.shape, transposeA: transposeA, transposeB: transposeB)
        return try download(matmul(upload(a), upload(b), transposeA: transposeA, transposeB: transposeB))
    }

    public func attention(query: Tensor, key: Tensor, value: Tensor, causal: Bool, scale: Float) throws -> Tensor {
        _ = try AttentionGeometry(query: query.shape, key: key.shape, value: value.shape, causal: causal, scale: scale)
        return try download(attention(query: upload(query), key: upload(key), value: upload(value), causal: causal, scale: scale))
    }

    public func softmax(_ x: Tensor) throws -> Tensor {
        _ = try OpValidation.softmax(x.shape)
        return try download(softmax(upload(x)))
    }

    public func rmsNorm(_ x: Tensor, weight: Tensor, epsilon: Float) throws -> Tensor {
        _ = try OpValidation.rmsNorm(x.shape, weight: weight.shape, epsilon: epsilon)
        return try download(rmsNorm(upload(x), weight: upload(weight), epsilon: epsilon))
    }

    public func rope(_ x: Tensor, positions: [Int], theta: Float, style: RotaryStyle) throws -> Tensor {
        _ = try OpValidation.rope(x.shape, positions: positions, theta: theta)
        return try download(rope(upload(x), positions: positions, theta: theta, style: style))
    }

    public func silu(_ x: Tensor) throws -> Tensor {
        try download(silu(upload(x)))
    }

    public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        _ = try BroadcastGeometry("add", a.shape, b.shape)
        return try download(add(upload(a), upload(b)))
    }

    public func mul(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        _ = try BroadcastGeometry("mul", a.shape, b.shape)
        return try download(mul(upload(a), upload(b)))
    }
}

/// `value` rounded up to a multiple of `step`.
func roundUp(_ value: Int, _ step: Int) -> Int { (value + step - 1) / step * step }
