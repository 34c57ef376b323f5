import KVPaging
import TensorCore
import TensorCoreOpenCL

/// Paged attention on an OpenCL device (any ICD: PoCL on CPUs, NVIDIA/AMD/Intel GPUs), over K/V that
/// stay on the device in an ``OpenCLPagedKVStorage``.
///
/// Built on TensorCoreOpenCL's shared runtime: the same context, queue and per-device program cache as
/// `OpenCLBackend`, so a decoder's projections, K/V writes and attention all run on one queue without
/// host round trips. Per call only the block tables and per-sequence lengths (and the query, for the
/// host-tensor overloads) are uploaded.
///
/// The kernel gives one work-item a block of 8 virtual query rows of one (sequence, KV head) — the query
/// heads sharing that KV head at each query position — and walks the sequence's block table 16 keys at a
/// time with an online softmax (see <doc:OpenCLPagedAttentionKernel>). Any head dimension `D` works; the
/// per-row accumulators live in a device scratch buffer, not in registers.
///
/// Results match `ReferencePagedAttention` (KVPaging) within Float32 tolerance.
public final class OpenCLPagedAttention: PagedAttentionKernel {
    public var name: String { "opencl" }
    /// The backend whose device runs the kernel.
    public let backend: OpenCLBackend
    /// The device, e.g. `pthread-AMD EPYC … [cpu, …]`.
    public var deviceDescription: String { backend.device.description }

    /// Paged attention on `backend`'s device (building the kernels there on first use in the process).
    public init(backend: OpenCLBackend) throws(KVPagingError) {
        self.backend = backend
        _ = try device("building the paged-attention kernels on \(backend.device.name)") { try Self.program(backend) }
    }

    /// Paged attention on the device chosen by `selector` (default: the first GPU, else any device).
    ///
    /// - Throws: `deviceUnavailable` when no OpenCL driver or matching device exists (the message says
    ///   what to install); `deviceFailure` with the build log when the kernels do not compile.
    public convenience init(device selector: OpenCLDeviceSelector = .automatic) throws(KVPagingError) {
        let backend = try device("opening an OpenCL device") { try OpenCLBackend(device: selector) }
        try self.init(backend: backend)
    }

    static func program(_ backend: OpenCLBackend, queryRows: Int = 8) throws -> OpenCLProgram {
        try backend.program(source: PagedKernelSource.source, options: PagedKernelSource.options(queryRows: queryRows),
                            kernels: PagedKernelSource.kernels, label: PagedKernelSource.label)
    }

    // MARK: Device-resident

    /// Causal grouped-query attention of packed device queries over device-resident paged K/V.
    ///
    /// - Parameters:
    ///   - query: `[N, Hq, D]` on the storage's device, rows packed per sequence (see `PagedAttentionBatch`);
    ///     query head `h` reads KV head `h / (Hq / Hkv)`.
    ///   - storage: `[numBlocks, blockSize, Hkv, D]` keys and values already holding every context token.
    ///   - batch: block tables, context and query lengths (uploaded; a few bytes per sequence).
    ///   - scale: multiplier of `q·k` (usually `1/√D`).
    /// - Returns: `[N, Hq, D]` on the device, once the kernel is queued.
    public func attention(query: OpenCLTensor, storage: OpenCLPagedKVStorage, batch: PagedAttentionBatch, scale: Float) throws(KVPagingError) -> OpenCLTensor {
        let plan = try Plan(query: query.shape, storage: storage, batch: batch, scale: scale)
        guard storage.backend.owns(query), backend.owns(storage.keys) else {
            throw KVPagingError(.invalidArgument, "paged attention: query and storage must live on this kernel's device \(backend.device.name)")
        }
        return try run(plan, query: query, storage: storage, scale: scale)
    }

    /// Attention with a host query `[N, Hq, D]` over device-resident paged K/V; returns `[N, Hq, D]` on the host.
    public func attention(query: Tensor, storage: OpenCLPagedKVStorage, batch: PagedAttentionBatch, scale: Float) throws(KVPagingError) -> Tensor {
        let plan = try Plan(query: query.shape, storage: storage, batch: batch, scale: scale)
        guard query.isFinite else { throw KVPagingError(.nonFinite, "paged attention: query holds NaN/Inf; check the query projection") }
        guard backend.owns(storage.keys) else {
            throw KVPagingError(.invalidArgument, "paged attention: the storage lives on \(storage.backend.device.name), not on this kernel's device \(backend.device.name)")
        }
        let q = try device("uploading the query \(query.shape)") { try backend.upload(query) }
        let out = try run(plan, query: q, storage: storage, scale: scale)
        return try device("downloading the attention output") { try backend.download(out) }
    }

    /// Attention with the conventional scale `1/√D`.
    public func attention(query: Tensor, storage: OpenCLPagedKVStorage, batch: PagedAttentionBatch) throws(KVPagingError) -> Tensor {
        try attention(query: query, storage: storage, batch: batch, scale: 1 / Float(storage.headDim).squareRoot())
    }

    // MARK: PagedAttentionKernel (host storage)

    /// `PagedAttentionKernel` conformance for host storage: uploads the whole `storage` into a temporary
    /// ``OpenCLPagedKVStorage`` and runs on it — a one-off convenience (and what generic code over
    /// `PagedAttentionKernel` gets). Serving code keeps an ``OpenCLPagedKVStorage`` instead.
    public func attention(query: Tensor, storage: PagedKVStorage, batch: PagedAttentionBatch, scale: Float) throws(KVPagingError) -> Tensor {
        _ = try batch.validate(query: query.shape, storage: storage, scale: scale)
        guard query.isFinite else { throw KVPagingError(.nonFinite, "paged attention: query holds NaN/Inf; check the query projection") }
        let resident = try OpenCLPagedKVStorage(backend: backend, uploading: storage)
        return try attention(query: query, storage: resident, batch: batch, scale: scale)
    }

    // MARK: Launch

    /// A validated call: the uploaded per-sequence tables and the launch geometry.
    struct Plan {
        let hq: Int
        let tables: [Int32]        // [S, tableStride], padded with 0
        let tableStride: Int
        let seqInfo: [Int32]       // per sequence: context length, query length, first query row
        let queryRows: Int         // virtual rows per work-item (4 or 8)
        let rowsPad: Int           // virtual rows per (sequence, KV head), a multiple of queryRows
        let sequences: Int

        init(query: Shape, storage: OpenCLPagedKVStorage, batch: PagedAttentionBatch, scale: Float) throws(KVPagingError) {
            let s = batch.sequenceCount
            guard s >= 1, batch.contextLengths.count == s, batch.queryLengths.count == s else {
                throw KVPagingError(.shapeMismatch, "paged attention: \(batch.blockTables.count) block tables, \(batch.contextLengths.count) context lengths and \(batch.queryLengths.count) query lengths must be equal and ≥ 1")
            }
            let bs = storage.blockSize
            var need: [Int] = []
            for i in 0..<s {
                let len = batch.contextLengths[i], tq = batch.queryLengths[i]
                guard len >= 1, len <= Int(Int32.max) - bs else {
                    throw KVPagingError(.invalidArgument, "sequence \(i): context length \(len); each sequence needs 1…\(Int(Int32.max) - bs) tokens")
                }
                let n = (len + bs - 1) / bs
                guard batch.blockTables[i].count >= n else {
                    throw KVPagingError(.shapeMismatch, "sequence \(i): \(len) tokens need \(n) blocks of \(bs), its block table has \(batch.blockTables[i].count)")
                }
                for b in batch.blockTables[i].prefix(n) where b < 0 || b >= storage.numBlocks {
                    throw KVPagingError(.shapeMismatch, "sequence \(i): block table entry \(b) is outside the storage's \(storage.numBlocks) blocks")
                }
                guard tq >= 1, tq <= len else {
                    throw KVPagingError(.invalidArgument, "sequence \(i): query length \(tq) must be 1…context length \(len) (queries are the last positions of the context)")
                }
                need.append(n)
            }
            let total = batch.totalQueries
            guard query.rank == 3, query[0] == total, query[2] == storage.headDim, query[1] >= 1 else {
                throw KVPagingError(.shapeMismatch, "paged attention: query \(query) must be [N=\(total), Hq, D=\(storage.headDim)]")
            }
            guard query[1] % storage.kvHeads == 0 else {
                throw KVPagingError(.shapeMismatch, "paged attention: query heads Hq=\(query[1]) must be a multiple of the storage's Hkv=\(storage.kvHeads)")
            }
            guard scale.isFinite else {
                throw KVPagingError(.nonFinite, "paged attention: scale is \(scale); pass a finite scale such as 1/√D")
            }
            hq = query[1]
            let group = hq / storage.kvHeads
            let maxQ = batch.queryLengths.max() ?? 1
            let rq = PagedKernelSource.queryRows(group: group, maxQueries: maxQ)
            queryRows = rq
            rowsPad = (group * maxQ + rq - 1) / rq * rq
            let (scratch, overflow) = (s * storage.kvHeads).multipliedReportingOverflow(by: rowsPad * storage.headDim)
            guard !overflow, scratch <= Int(Int32.max), query.elementCount <= Int(Int32.max) else {
                throw KVPagingError(.invalidArgument, "paged attention: \(s) sequences × \(maxQ) queries × Hq=\(hq) × D=\(storage.headDim) is past the 2³¹ − 1 elements one OpenCL buffer is indexed with; split the batch")
            }
            tableStride = max(1, need.max() ?? 1)
            var tables = [Int32](repeating: 0, count: s * tableStride)
            var info: [Int32] = []
            info.reserveCapacity(3 * s)
            var start = 0
            for i in 0..<s {
                for (j, b) in batch.blockTables[i].prefix(need[i]).enumerated() { tables[i * tableStride + j] = Int32(b) }
                info += [Int32(batch.contextLengths[i]), Int32(batch.queryLengths[i]), Int32(start)]
                start += batch.queryLengths[i]
            }
            self.tables = tables
            self.seqInfo = info
            self.sequences = s
        }
    }

    private func run(_ plan: Plan, query: OpenCLTensor, storage: OpenCLPagedKVStorage, scale: Float) throws(KVPagingError) -> OpenCLTensor {
        let hk = storage.kvHeads, d = storage.headDim
        // CPU devices: one work-item covers up to 8 KV heads, so it reads whole slot rows [Hkv, D]
        // (contiguous) and the prefetchers keep up; other devices want one head per work-item for parallelism.
        let headsPerItem = backend.device.kind == .cpu ? min(hk, PagedKernelSource.maxHeadsPerItem) : 1
        return try device("running paged attention on \(backend.device.name)") {
            let program = try Self.program(backend, queryRows: plan.queryRows)
            let tables = try backend.makeBuffer(plan.tables)
            let info = try backend.makeBuffer(plan.seqInfo)
            // Per-row accumulators [S, Hkv, rowsPad, D]; released once the queued kernel has finished.
            let scratch = try backend.makeTensor(shape: [plan.sequences * hk * plan.rowsPad * d])
            let out = try backend.makeTensor(shape: query.shape)
            try backend.enqueue(program, kernel: "paged_attention", arguments: [
                .tensor(query), .tensor(storage.keys), .tensor(storage.values), .buffer(tables), .buffer(info),
                .tensor(scratch), .tensor(out),
                .int32(Int32(plan.hq)), .int32(Int32(hk)), .int32(Int32(d)), .int32(Int32(storage.blockSize)),
                .int32(Int32(plan.tableStride)), .int32(Int32(plan.rowsPad)), .float(scale), .int32(Int32(headsPerItem)),
            ], global: [plan.rowsPad / plan.queryRows, (hk + headsPerItem - 1) / headsPerItem, plan.sequences], local: [1, 1, 1])
            return out
        }
    }
}
