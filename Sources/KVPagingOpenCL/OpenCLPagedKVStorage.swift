import KVPaging
import TensorCore
import TensorCoreOpenCL

/// One layer's paged K and V storage resident on an OpenCL device, each `[numBlocks, blockSize, Hkv, D]`
/// Float32 in an ``OpenCLTensor``.
///
/// The device counterpart of `PagedKVStorage` (KVPaging): new tokens are written through a slot mapping
/// by a scatter kernel on the device — only the new rows and their slots cross the bus (or nothing, when
/// the rows are already device tensors from the K/V projections) — and copy-on-write block copies run as
/// device-side copies. ``OpenCLPagedAttention`` reads it in place; nothing but block tables and lengths
/// is uploaded per attention call.
///
/// A reference type: the K/V live in device buffers shared by every reference. Writes are queued on the
/// device's in-order queue, so a later attention call sees them.
///
/// `Sendable`: its stored properties are immutable `Sendable` values (the backend and two device tensors).
public final class OpenCLPagedKVStorage: Sendable {
    public let numBlocks: Int
    public let blockSize: Int
    public let kvHeads: Int
    public let headDim: Int
    /// Keys `[numBlocks, blockSize, Hkv, D]` on the device.
    public let keys: OpenCLTensor
    /// Values `[numBlocks, blockSize, Hkv, D]` on the device.
    public let values: OpenCLTensor
    /// The backend (device) the storage lives on.
    public let backend: OpenCLBackend

    /// Zero-filled storage of `numBlocks` blocks of `blockSize` token slots on `backend`'s device.
    ///
    /// - Throws: `invalidArgument` for sizes below 1 or slot counts past 32-bit indexing; `deviceFailure`
    ///   (or `deviceUnavailable`) when the device cannot allocate it — the message says how much was asked.
    public init(backend: OpenCLBackend, numBlocks: Int, blockSize: Int, kvHeads: Int, headDim: Int) throws(KVPagingError) {
        guard numBlocks >= 1, blockSize >= 1, kvHeads >= 1, headDim >= 1 else {
            throw KVPagingError(.invalidArgument, "OpenCLPagedKVStorage: numBlocks \(numBlocks), blockSize \(blockSize), kvHeads \(kvHeads), headDim \(headDim) must all be ≥ 1")
        }
        let (slots, o1) = numBlocks.multipliedReportingOverflow(by: blockSize)
        let (elements, o2) = slots.multipliedReportingOverflow(by: kvHeads * headDim)
        guard !o1, !o2, slots <= Int(Int32.max), elements <= Int(Int32.max) else {
            throw KVPagingError(.invalidArgument, "OpenCLPagedKVStorage: \(numBlocks)×\(blockSize)×\(kvHeads)×\(headDim) elements exceed the 2³¹ − 1 elements one OpenCL buffer is indexed with; use fewer blocks per layer")
        }
        self.numBlocks = numBlocks
        self.blockSize = blockSize
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.backend = backend
        let shape: Shape = [numBlocks, blockSize, kvHeads, headDim]
        (keys, values) = try device("allocating paged K/V storage \(shape)") {
            (try backend.makeTensor(shape: shape), try backend.makeTensor(shape: shape))
        }
    }

    /// Storage sized for an allocator's configuration.
    public convenience init(backend: OpenCLBackend, _ configuration: KVCacheConfiguration, kvHeads: Int, headDim: Int) throws(KVPagingError) {
        try self.init(backend: backend, numBlocks: configuration.blockCount, blockSize: configuration.blockSize, kvHeads: kvHeads, headDim: headDim)
    }

    /// A device copy of host storage (one upload of every block, e.g. after loading a cache snapshot).
    public convenience init(backend: OpenCLBackend, uploading host: PagedKVStorage) throws(KVPagingError) {
        try self.init(backend: backend, numBlocks: host.numBlocks, blockSize: host.blockSize, kvHeads: host.kvHeads, headDim: host.headDim)
        try device("uploading paged K/V storage \(host.shape)") {
            try host.keys.withUnsafeBufferPointer { try backend.write($0, to: keys) }
            try host.values.withUnsafeBufferPointer { try backend.write($0, to: values) }
        }
    }

    /// Elements of one token slot (`Hkv · D`).
    public var rowElements: Int { kvHeads * headDim }
    /// Elements of one block (`blockSize · Hkv · D`).
    public var blockElements: Int { blockSize * kvHeads * headDim }
    public var shape: Shape { [numBlocks, blockSize, kvHeads, headDim] }

    // MARK: Writes

    /// Writes host rows `key`/`value` `[T, Hkv, D]` at `slots` (a slot mapping of `T` distinct entries):
    /// uploads those rows and the slot indices, then scatters them on the device.
    public func write(key: Tensor, value: Tensor, at slots: [KVSlot]) throws(KVPagingError) {
        let flat = try checkWrite(key: key.shape, value: value.shape, slots: slots)
        guard key.isFinite, value.isFinite else {
            throw KVPagingError(.nonFinite, "write: key or value holds NaN/Inf; check the projection outputs")
        }
        if slots.isEmpty { return }
        let (k, v) = try device("uploading \(slots.count) K/V rows") { (try backend.upload(key), try backend.upload(value)) }
        try scatter(k, v, flat)
    }

    /// Writes device rows `key`/`value` `[T, Hkv, D]` (e.g. the K/V projections, still on the device) at
    /// `slots`; only the slot indices are uploaded. The rows are not checked for NaN/Inf (that would need
    /// a download).
    public func write(key: OpenCLTensor, value: OpenCLTensor, at slots: [KVSlot]) throws(KVPagingError) {
        let flat = try checkWrite(key: key.shape, value: value.shape, slots: slots)
        guard backend.owns(key), backend.owns(value) else {
            throw KVPagingError(.invalidArgument, "write: key and value must live on the storage's device \(backend.device.name)")
        }
        if slots.isEmpty { return }
        try scatter(key, value, flat)
    }

    private func checkWrite(key: Shape, value: Shape, slots: [KVSlot]) throws(KVPagingError) -> [Int32] {
        let expected: Shape = [slots.count, kvHeads, headDim]
        guard key == expected, value == expected else {
            throw KVPagingError(.shapeMismatch, "write: key \(key) and value \(value) must both be \(expected) ([T, Hkv, D] for \(slots.count) slots)")
        }
        var flat: [Int32] = []
        flat.reserveCapacity(slots.count)
        var seen = Set<Int>()
        for s in slots {
            guard s.block >= 0, s.block < numBlocks, s.offset >= 0, s.offset < blockSize else {
                throw KVPagingError(.shapeMismatch, "write: slot \(s) is outside storage of \(numBlocks) blocks × \(blockSize) slots")
            }
            let index = s.flatIndex(blockSize: blockSize)
            // Device work-items write in no defined order, so a slot written twice in one call has no
            // defined winner; the host storage's "last write wins" cannot be kept without serialising.
            guard seen.insert(index).inserted else {
                throw KVPagingError(.invalidArgument, "write: slot \(s) appears twice in one slot mapping; write each slot once per call")
            }
            flat.append(Int32(index))
        }
        return flat
    }

    private func scatter(_ key: OpenCLTensor, _ value: OpenCLTensor, _ slots: [Int32]) throws(KVPagingError) {
        let row = rowElements
        try device("writing \(slots.count) K/V rows through the slot mapping") {
            let program = try OpenCLPagedAttention.program(backend)
            let slotBuffer = try backend.makeBuffer(slots)
            try backend.enqueue(program, kernel: "kv_scatter", arguments: [
                .tensor(key), .tensor(value), .buffer(slotBuffer), .tensor(keys), .tensor(values),
                .int32(Int32(row)), .int32(Int32(slots.count)),
            ], global: [(row + 63) / 64 * 64, slots.count], local: [64, 1])
        }
    }

    // MARK: Block copies

    /// Performs copy-on-write copies within this storage (`AppendResult.copy`) on the device.
    ///
    /// Every copy reads its source as it was before the call, like `PagedKVStorage.copyBlocks(_:)`: when a
    /// source is also a destination in the same call, the sources are first staged in a scratch buffer;
    /// when two copies share a destination, the later one wins.
    public func copyBlocks(_ copies: [BlockCopy]) throws(KVPagingError) {
        for c in copies where c.source < 0 || c.source >= numBlocks || c.destination < 0 || c.destination >= numBlocks {
            throw KVPagingError(.shapeMismatch, "copyBlocks: copy \(c) is outside the storage's \(numBlocks) blocks")
        }
        let n = blockElements
        let destinations = Set(copies.map(\.destination))
        let chained = copies.contains { destinations.contains($0.source) && $0.source != $0.destination }
        try device("copying \(copies.count) blocks") {
            if chained {
                for tensor in [keys, values] {
                    let staged = try backend.makeTensor(shape: [copies.count * n])
                    for (i, c) in copies.enumerated() {
                        try backend.copyElements(from: tensor, at: c.source * n, to: staged, at: i * n, count: n)
                    }
                    for (i, c) in copies.enumerated() {
                        try backend.copyElements(from: staged, at: i * n, to: tensor, at: c.destination * n, count: n)
                    }
                }
            } else {
                for c in copies where c.source != c.destination {
                    try backend.copyElements(from: keys, at: c.source * n, to: keys, at: c.destination * n, count: n)
                    try backend.copyElements(from: values, at: c.source * n, to: values, at: c.destination * n, count: n)
                }
            }
        }
    }

    /// Copies whole blocks from host storage (e.g. the swap pool on swap-in), uploading only those blocks.
    public func copyBlocks(_ copies: [BlockCopy], from source: PagedKVStorage) throws(KVPagingError) {
        guard source.blockSize == blockSize, source.kvHeads == kvHeads, source.headDim == headDim else {
            throw KVPagingError(.shapeMismatch, "copyBlocks: source blocks [\(source.blockSize), \(source.kvHeads), \(source.headDim)] differ from [\(blockSize), \(kvHeads), \(headDim)]")
        }
        for c in copies where c.source < 0 || c.source >= source.numBlocks || c.destination < 0 || c.destination >= numBlocks {
            throw KVPagingError(.shapeMismatch, "copyBlocks: copy \(c) is outside source (\(source.numBlocks) blocks) or destination (\(numBlocks) blocks)")
        }
        let n = blockElements
        try device("uploading \(copies.count) blocks") {
            try source.keys.withUnsafeBufferPointer { k in
                for c in copies { try backend.write(UnsafeBufferPointer(rebasing: k[(c.source * n)..<((c.source + 1) * n)]), to: keys, elementOffset: c.destination * n) }
            }
            try source.values.withUnsafeBufferPointer { v in
                for c in copies { try backend.write(UnsafeBufferPointer(rebasing: v[(c.source * n)..<((c.source + 1) * n)]), to: values, elementOffset: c.destination * n) }
            }
        }
    }

    /// Waits for queued writes and copies everything back into host storage (inspection, tests, snapshots).
    public func download() throws(KVPagingError) -> PagedKVStorage {
        var host = try PagedKVStorage(numBlocks: numBlocks, blockSize: blockSize, kvHeads: kvHeads, headDim: headDim)
        let rows: Shape = [numBlocks * blockSize, kvHeads, headDim]
        let (k, v) = try device("downloading paged K/V storage") {
            (try backend.download(keys).reshaped(rows), try backend.download(values).reshaped(rows))
        }
        let all = (0..<(numBlocks * blockSize)).map { KVSlot(block: $0 / blockSize, offset: $0 % blockSize) }
        try host.write(key: k, value: v, at: all)
        return host
    }
}

/// Runs OpenCL work, turning TensorCore's errors into ``KVPagingError`` with `what` and the cause.
func device<R>(_ what: String, _ body: () throws -> R) throws(KVPagingError) -> R {
    do {
        return try body()
    } catch let error as KVPagingError {
        throw error
    } catch let error as TensorError {
        let code: KVPagingError.Code
        switch error.code {
        case .backendUnavailable: code = .deviceUnavailable
        case .deviceFailure, .outOfMemory: code = .deviceFailure
        case .nonFinite: code = .nonFinite
        case .shapeMismatch, .invalidRank: code = .shapeMismatch
        case .invalidArgument: code = .invalidArgument
        }
        throw KVPagingError(code, "\(what): \(error.description)")
    } catch {
        throw KVPagingError(.deviceFailure, "\(what): \(error)")
    }
}
