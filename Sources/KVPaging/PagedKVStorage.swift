import TensorCore

/// One layer's paged K and V storage, each `[numBlocks, blockSize, Hkv, D]` Float32 on the host.
///
/// Token `position` of a sequence lives at the ``KVSlot`` its block table
/// gives: `key[slot.block, slot.offset, h, :]`. The storage knows nothing
/// about sequences; a ``KVBlockManager`` (or ``ContiguousKVAllocator``) says
/// where to write and which blocks to copy.
public struct PagedKVStorage: Sendable {
    public let numBlocks: Int
    public let blockSize: Int
    public let kvHeads: Int
    public let headDim: Int
    /// Keys, row-major `[numBlocks, blockSize, Hkv, D]`.
    public internal(set) var keys: [Float]
    /// Values, row-major `[numBlocks, blockSize, Hkv, D]`.
    public internal(set) var values: [Float]

    /// Zero-filled storage.
    public init(numBlocks: Int, blockSize: Int, kvHeads: Int, headDim: Int) throws(KVPagingError) {
        guard numBlocks >= 1, blockSize >= 1, kvHeads >= 1, headDim >= 1 else {
            throw KVPagingError(.invalidArgument, "PagedKVStorage: numBlocks \(numBlocks), blockSize \(blockSize), kvHeads \(kvHeads), headDim \(headDim) must all be ≥ 1")
        }
        let (a, o1) = numBlocks.multipliedReportingOverflow(by: blockSize)
        let (b, o2) = a.multipliedReportingOverflow(by: kvHeads)
        let (n, o3) = b.multipliedReportingOverflow(by: headDim)
        guard !(o1 || o2 || o3), n <= 1 << 34 else {
            throw KVPagingError(.invalidArgument, "PagedKVStorage: \(numBlocks)×\(blockSize)×\(kvHeads)×\(headDim) elements is too large for host storage")
        }
        self.numBlocks = numBlocks
        self.blockSize = blockSize
        self.kvHeads = kvHeads
        self.headDim = headDim
        keys = [Float](repeating: 0, count: n)
        values = [Float](repeating: 0, count: n)
    }

    /// Storage sized for an allocator's configuration.
    public init(_ configuration: KVCacheConfiguration, kvHeads: Int, headDim: Int) throws(KVPagingError) {
        try self.init(numBlocks: configuration.blockCount, blockSize: configuration.blockSize, kvHeads: kvHeads, headDim: headDim)
    }

    /// The key and value buffers (`[numBlocks, blockSize, Hkv, D]` each) for kernels that write and read them in place.
    package mutating func withUnsafeMutableBuffers<R>(_ body: (UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try keys.withUnsafeMutableBufferPointer { k in
            try values.withUnsafeMutableBufferPointer { v in try body(k, v) }
        }
    }

    /// The key and value buffers, read-only.
    package func withUnsafeBuffers<R>(_ body: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try keys.withUnsafeBufferPointer { k in
            try values.withUnsafeBufferPointer { v in try body(k, v) }
        }
    }

    /// Elements of one token row (`Hkv · D`).
    public var rowElements: Int { kvHeads * headDim }
    /// Elements of one block (`blockSize · Hkv · D`).
    public var blockElements: Int { blockSize * kvHeads * headDim }
    public var shape: Shape { [numBlocks, blockSize, kvHeads, headDim] }

    /// The keys as a tensor `[numBlocks, blockSize, Hkv, D]` (a copy-on-write view).
    public var keyTensor: Tensor { (try? Tensor(shape: shape, scalars: keys)) ?? Tensor(zeros: shape) }
    /// The values as a tensor `[numBlocks, blockSize, Hkv, D]`.
    public var valueTensor: Tensor { (try? Tensor(shape: shape, scalars: values)) ?? Tensor(zeros: shape) }

    /// Writes `key`/`value` rows `[T, Hkv, D]` at `slots` (a slot mapping of `T` entries).
    public mutating func write(key: Tensor, value: Tensor, at slots: [KVSlot]) throws(KVPagingError) {
        let expected: Shape = [slots.count, kvHeads, headDim]
        guard key.shape == expected, value.shape == expected else {
            throw KVPagingError(.shapeMismatch, "write: key \(key.shape) and value \(value.shape) must both be \(expected) ([T, Hkv, D] for \(slots.count) slots)")
        }
        guard key.isFinite, value.isFinite else {
            throw KVPagingError(.nonFinite, "write: key or value holds NaN/Inf; check the projection outputs")
        }
        for s in slots where s.block < 0 || s.block >= numBlocks || s.offset < 0 || s.offset >= blockSize {
            throw KVPagingError(.shapeMismatch, "write: slot \(s) is outside storage of \(numBlocks) blocks × \(blockSize) slots")
        }
        let row = rowElements
        key.withUnsafeBufferPointer { k in
            keys.withUnsafeMutableBufferPointer { dst in
                for (t, s) in slots.enumerated() {
                    let base = s.flatIndex(blockSize: blockSize) * row
                    for i in 0..<row { dst[base + i] = k[t * row + i] }
                }
            }
        }
        value.withUnsafeBufferPointer { v in
            values.withUnsafeMutableBufferPointer { dst in
                for (t, s) in slots.enumerated() {
                    let base = s.flatIndex(blockSize: blockSize) * row
                    for i in 0..<row { dst[base + i] = v[t * row + i] }
                }
            }
        }
    }

    /// Performs copy-on-write copies within this storage (``AppendResult/copy``).
    public mutating func copyBlocks(_ copies: [BlockCopy]) throws(KVPagingError) {
        try copyBlocks(copies, from: self)
    }

    /// Copies whole blocks from `source` (e.g. the host swap storage) into this storage.
    public mutating func copyBlocks(_ copies: [BlockCopy], from source: PagedKVStorage) throws(KVPagingError) {
        guard source.blockSize == blockSize, source.kvHeads == kvHeads, source.headDim == headDim else {
            throw KVPagingError(.shapeMismatch, "copyBlocks: source blocks [\(source.blockSize), \(source.kvHeads), \(source.headDim)] differ from [\(blockSize), \(kvHeads), \(headDim)]")
        }
        for c in copies where c.source < 0 || c.source >= source.numBlocks || c.destination < 0 || c.destination >= numBlocks {
            throw KVPagingError(.shapeMismatch, "copyBlocks: copy \(c) is outside source (\(source.numBlocks) blocks) or destination (\(numBlocks) blocks)")
        }
        let n = blockElements
        let srcK = source.keys, srcV = source.values   // copies only when source is self and we mutate (COW keeps this cheap otherwise)
        for c in copies {
            keys.replaceSubrange((c.destination * n)..<((c.destination + 1) * n), with: srcK[(c.source * n)..<((c.source + 1) * n)])
            values.replaceSubrange((c.destination * n)..<((c.destination + 1) * n), with: srcV[(c.source * n)..<((c.source + 1) * n)])
        }
    }

    /// Gathers the first `length` tokens of a block table into contiguous `[1, Hkv, length, D]` key and value tensors
    /// (the layout `ComputeBackend.attention(query:key:value:causal:scale:)` takes).
    public func gather(blockTable: [Int], length: Int) throws(KVPagingError) -> (key: Tensor, value: Tensor) {
        try PagedAttentionBatch.checkTable(blockTable, length: length, blockSize: blockSize, numBlocks: numBlocks, sequence: 0)
        let d = headDim, hk = kvHeads
        func gatherOne(_ src: [Float]) -> Tensor {
            Tensor(shape: [1, hk, length, d]) { out in
                for h in 0..<hk {
                    for p in 0..<length {
                        let base = ((blockTable[p / blockSize] * blockSize + p % blockSize) * hk + h) * d
                        for x in 0..<d { out[(h * length + p) * d + x] = src[base + x] }
                    }
                }
            }
        }
        return (gatherOne(keys), gatherOne(values))
    }
}
