import Foundation
import KVPaging

/// One step's input to the forward pass: the new tokens of many sequences, concatenated (the vLLM
/// "flat batch" shape), each with its position, and each sequence's block table.
///
/// A sequence's new tokens may be a whole prompt, a chunk of one after a cached prefix, or one
/// decode token; each token attends to every position `0…position` of its sequence, so the K/V of
/// earlier positions must already be in the cache blocks the table names. The batch keeps its
/// buffers between steps (``removeAll()`` keeps capacity), so a decode loop that reuses one batch
/// allocates nothing.
///
/// ```swift
/// var batch = ForwardBatch()
/// batch.append(tokens: prompt, startPosition: 0, blockTable: [0, 1, 2])   // logits of the last token
/// ```
public struct ForwardBatch: Sendable {
    /// Which rows of a sequence produce logits.
    public enum LogitRows: Sendable, Hashable {
        /// The sequence's last token (generation).
        case last
        /// Every token (perplexity, prompt logprobs, speculative verification).
        case all
        /// None (a prefill chunk that is not the prompt's end).
        case none
    }

    /// One sequence's slice of the batch.
    public struct Sequence: Sendable, Hashable {
        /// Index of its first token in ``ForwardBatch/tokens``.
        public var tokenStart: Int
        /// Its new tokens this step.
        public var tokenCount: Int
        /// Index of its first block in ``ForwardBatch/blockTables``.
        public var blockTableStart: Int
        /// Number of blocks in its table.
        public var blockCount: Int
        public var logits: LogitRows
    }

    /// Token ids, all sequences concatenated.
    public private(set) var tokens: [Int32] = []
    /// Each token's position in its sequence.
    public private(set) var positions: [Int32] = []
    /// The sequences, in order.
    public private(set) var sequences: [Sequence] = []
    /// Every sequence's block table, concatenated (physical block ids).
    public private(set) var blockTables: [Int32] = []

    public init() {}

    /// Number of tokens in the batch.
    public var tokenCount: Int { tokens.count }
    /// Number of logit rows the forward pass returns.
    public var logitRowCount: Int {
        sequences.reduce(0) { n, s in
            switch s.logits {
            case .last: n + 1
            case .all: n + s.tokenCount
            case .none: n
            }
        }
    }

    /// Empties the batch, keeping its buffers.
    public mutating func removeAll() {
        tokens.removeAll(keepingCapacity: true)
        positions.removeAll(keepingCapacity: true)
        sequences.removeAll(keepingCapacity: true)
        blockTables.removeAll(keepingCapacity: true)
    }

    /// Adds a sequence's new tokens at positions `startPosition…`, with the block table covering
    /// positions `0 ..< startPosition + tokens.count`.
    public mutating func append(tokens new: some Collection<Int>, startPosition: Int, blockTable: some Collection<Int>, logits: LogitRows = .last) {
        let s = Sequence(tokenStart: tokens.count, tokenCount: new.count, blockTableStart: blockTables.count, blockCount: blockTable.count, logits: logits)
        var p = startPosition
        // Clamped, not wrapped: an id, position or block past Int32 stays out of range, so validation
        // refuses it instead of running a different, in-range value.
        for t in new {
            tokens.append(Int32(clamping: t))
            positions.append(Int32(clamping: p))
            p += 1
        }
        for b in blockTable { blockTables.append(Int32(clamping: b)) }
        sequences.append(s)
    }

    /// Checks the batch against a model and cache before any kernel runs.
    func validate(vocabularySize: Int, contextLength: Int, cache: KVCache) throws(ModelRuntimeError) {
        guard !sequences.isEmpty, !tokens.isEmpty else {
            throw ModelRuntimeError(.invalidBatch, "the batch is empty; add at least one sequence with one token (an empty prompt cannot be run)")
        }
        for (i, s) in sequences.enumerated() {
            guard s.tokenCount > 0 else {
                throw ModelRuntimeError(.invalidBatch, "sequence \(i) has no tokens this step; an empty prompt cannot be run")
            }
            guard s.blockCount > 0 else { throw ModelRuntimeError(.invalidBatch, "sequence \(i) has an empty block table") }
            let first = Int(positions[s.tokenStart])
            guard first >= 0 else { throw ModelRuntimeError(.invalidBatch, "sequence \(i) starts at negative position \(first)") }
            let end = first + s.tokenCount
            guard end <= contextLength else {
                throw ModelRuntimeError(.contextOverflow,
                    "sequence \(i) reaches \(end) tokens, longer than the model's context of \(contextLength); shorten the prompt or lower max_tokens")
            }
            guard end <= s.blockCount * cache.blockSize else {
                throw ModelRuntimeError(.invalidBatch,
                    "sequence \(i) reaches position \(end - 1) but its \(s.blockCount) blocks of \(cache.blockSize) hold \(s.blockCount * cache.blockSize) positions; allocate blocks first")
            }
            for b in blockTables[s.blockTableStart..<(s.blockTableStart + s.blockCount)] where b < 0 || Int(b) >= cache.blockCount {
                throw ModelRuntimeError(.invalidBatch, "sequence \(i)'s block table names block \(b); the cache has blocks 0..<\(cache.blockCount)")
            }
        }
        for (i, t) in tokens.enumerated() where t < 0 || Int(t) >= vocabularySize {
            throw ModelRuntimeError(.invalidBatch, "token \(i) of the batch is id \(t), outside the vocabulary 0..<\(vocabularySize)")
        }
    }
}

/// How the K/V cache stores its values.
public enum KVPrecision: String, Sendable, Hashable, Codable, CaseIterable {
    /// IEEE binary32: exact, twice the bytes (what the reference path needs).
    case float32
    /// IEEE binary16 (llama.cpp's and vLLM's default): half the bytes a decode step streams through
    /// attention; values round to 11 significant bits.
    case float16

    var bytes: Int { self == .float32 ? 4 : 2 }
}

/// The paged K/V of every layer, `[blocks, blockSize, Hkv, D]` K and V per layer.
///
/// The cache only stores; which blocks belong to which sequence is the caller's (a
/// `KVBlockManager`'s) business, passed to the forward pass as block tables.
public struct KVCache: Sendable {
    public let blockSize: Int
    public let blockCount: Int
    public let precision: KVPrecision
    /// Float32 storage, one per layer (empty for `.float16`).
    var layers: [PagedKVStorage] = []
    /// Float16 storage, one per layer (empty for `.float32`).
    var halfLayers: [HalfKVStorage] = []

    /// Storage of `blockCount` blocks of `blockSize` positions for `configuration`'s layers.
    public init(configuration: ModelConfiguration, blockCount: Int, blockSize: Int = 16, precision: KVPrecision = .float32) throws(ModelRuntimeError) {
        guard blockCount > 0, blockSize > 0, blockSize <= 1024 else {
            throw ModelRuntimeError(.invalidConfiguration, "KV cache: \(blockCount) blocks of \(blockSize) positions; both must be positive (block size ≤ 1024)")
        }
        let bytes = Double(blockCount) * Double(blockSize) * Double(configuration.kvBytesPerToken / 4 * precision.bytes)
        guard bytes <= Double(KVCache.maximumBytes) else {
            throw ModelRuntimeError(.outOfMemory,
                "KV cache of \(blockCount) × \(blockSize) positions needs \(Int(bytes / 1_048_576)) MiB, over the \(KVCache.maximumBytes >> 30) GiB limit; use fewer blocks")
        }
        if precision == .float16 && configuration.headDimension > 256 {
            throw ModelRuntimeError(.invalidConfiguration, "a float16 KV cache handles head dimensions up to 256, and this model's is \(configuration.headDimension); use precision float32")
        }
        self.blockSize = blockSize
        self.blockCount = blockCount
        self.precision = precision
        let elements = blockCount * blockSize * configuration.kvHeadCount * configuration.headDimension
        switch precision {
        case .float32:
            do {
                layers = try (0..<configuration.layerCount).map { _ in
                    try PagedKVStorage(numBlocks: blockCount, blockSize: blockSize, kvHeads: configuration.kvHeadCount, headDim: configuration.headDimension)
                }
            } catch {
                throw ModelRuntimeError(.outOfMemory, "cannot allocate the KV cache", underlying: "\(error)")
            }
        case .float16:
            for _ in 0..<configuration.layerCount {
                guard let layer = HalfKVStorage(elements: elements, blockElements: blockSize * configuration.kvHeadCount * configuration.headDimension) else {
                    throw ModelRuntimeError(.outOfMemory, "cannot allocate the float16 KV cache (\(2 * elements * 2 * configuration.layerCount >> 20) MiB); use fewer blocks")
                }
                halfLayers.append(layer)
            }
        }
    }

    /// Largest cache this initializer allocates.
    public static let maximumBytes = 64 << 30

    /// Positions the cache holds.
    public var capacity: Int { blockSize * blockCount }

    /// Bytes of K and V held.
    public var bytes: Int {
        layers.reduce(0) { $0 + 2 * $1.numBlocks * $1.blockElements * 4 } + halfLayers.reduce(0) { $0 + 2 * $1.count * 2 }
    }

    /// Layer `layer`'s float32 storage (K and V `[blocks, blockSize, Hkv, D]`); `nil` for a float16 cache.
    public func storage(layer: Int) -> PagedKVStorage? { precision == .float32 ? layers[layer] : nil }

    /// Copies whole blocks in every layer (copy-on-write of a forked sequence).
    public mutating func copyBlocks(_ copies: [BlockCopy]) throws(ModelRuntimeError) {
        for c in copies where c.source < 0 || c.source >= blockCount || c.destination < 0 || c.destination >= blockCount {
            throw ModelRuntimeError(.invalidBatch, "cannot copy KV block \(c.source) → \(c.destination): the cache has blocks 0..<\(blockCount)")
        }
        do {
            for l in layers.indices { try layers[l].copyBlocks(copies) }
        } catch {
            throw ModelRuntimeError(.invalidBatch, "cannot copy KV blocks \(copies)", underlying: "\(error)")
        }
        for l in halfLayers.indices { halfLayers[l].copyBlocks(copies) }
    }
}

/// One layer's float16 K and V (`[blocks, Hkv, blockSize, D]` IEEE binary16 bit patterns: head-major
/// within a block, so attention reads each head's rows of a block as one contiguous run), in memory
/// aligned to 2 MiB and advised as huge pages: a decode step touches every sequence's blocks, and with
/// 4 KiB pages most of those touches were TLB misses.
struct HalfKVStorage: @unchecked Sendable {
    /// `@unchecked Sendable`: the buffer is written only through `mutating` methods, which copy it
    /// first when it is shared (value semantics, as an array's).
    final class Buffer {
        let keys: UnsafeMutablePointer<UInt16>
        let values: UnsafeMutablePointer<UInt16>
        let count: Int

        init?(count: Int) {
            guard let k = Buffer.allocate(count) else { return nil }
            guard let v = Buffer.allocate(count) else { free(k); return nil }
            self.count = count
            keys = k
            values = v
        }

        static func allocate(_ count: Int) -> UnsafeMutablePointer<UInt16>? {
            let huge = 2 << 20
            let bytes = max(64, count * 2)
            let big = bytes >= huge
            let size = big ? (bytes + huge - 1) / huge * huge : bytes
            var raw: UnsafeMutableRawPointer?
            guard posix_memalign(&raw, big ? huge : 64, size) == 0, let r = raw else { return nil }
            #if os(Linux)
            if big { _ = madvise(r, size, 14) }  // MADV_HUGEPAGE
            #endif
            memset(r, 0, size)
            return r.bindMemory(to: UInt16.self, capacity: count)
        }

        func copy() -> Buffer {
            // A copy of a cache value that is then written: the rare path; allocation failure here has no error channel.
            guard let b = Buffer(count: count) else { fatalError("out of memory copying a \(count * 4)-byte float16 KV layer") }
            b.keys.update(from: keys, count: count)
            b.values.update(from: values, count: count)
            return b
        }

        deinit {
            free(keys)
            free(values)
        }
    }

    private var buffer: Buffer
    let blockElements: Int
    var count: Int { buffer.count }

    init?(elements: Int, blockElements: Int) {
        guard let b = Buffer(count: elements) else { return nil }
        buffer = b
        self.blockElements = blockElements
    }

    private mutating func unique() {
        if !isKnownUniquelyReferenced(&buffer) { buffer = buffer.copy() }
    }

    mutating func withUnsafeMutableBuffers<R>(_ body: (UnsafeMutableBufferPointer<UInt16>, UnsafeMutableBufferPointer<UInt16>) -> R) -> R {
        unique()
        return withExtendedLifetime(buffer) {
            body(UnsafeMutableBufferPointer(start: buffer.keys, count: buffer.count), UnsafeMutableBufferPointer(start: buffer.values, count: buffer.count))
        }
    }

    func withUnsafeBuffers<R>(_ body: (UnsafeBufferPointer<UInt16>, UnsafeBufferPointer<UInt16>) -> R) -> R {
        withExtendedLifetime(buffer) {
            body(UnsafeBufferPointer(start: buffer.keys, count: buffer.count), UnsafeBufferPointer(start: buffer.values, count: buffer.count))
        }
    }

    mutating func copyBlocks(_ copies: [BlockCopy]) {
        let n = blockElements
        withUnsafeMutableBuffers { k, v in
            for c in copies where c.source != c.destination {
                (k.baseAddress! + c.destination * n).update(from: k.baseAddress! + c.source * n, count: n)
                (v.baseAddress! + c.destination * n).update(from: v.baseAddress! + c.source * n, count: n)
            }
        }
    }
}
