import Foundation
import TensorCore

/// The sequences of one paged-attention call, with their block tables.
///
/// Queries are packed token-major: sequence `i` contributes `queryLengths[i]`
/// consecutive rows of the query tensor `[N, Hq, D]` (`N = Σ queryLengths`).
/// Its queries are the *last* `queryLengths[i]` positions of its
/// `contextLengths[i]` tokens, whose K/V must already be written:
///
/// - decode: `queryLengths[i] == 1` (one new token per sequence);
/// - prefill continuing after a cached prefix of `c` tokens: `queryLengths[i] = contextLengths[i] − c`.
///
/// Attention is causal: the query at position `p` sees keys `0 … p`.
public struct PagedAttentionBatch: Sendable, Hashable {
    public var blockTables: [[Int]]
    public var contextLengths: [Int]
    public var queryLengths: [Int]

    public init(blockTables: [[Int]], contextLengths: [Int], queryLengths: [Int]) {
        self.blockTables = blockTables
        self.contextLengths = contextLengths
        self.queryLengths = queryLengths
    }

    /// A decode batch: one query per sequence.
    public static func decode(blockTables: [[Int]], contextLengths: [Int]) -> PagedAttentionBatch {
        PagedAttentionBatch(blockTables: blockTables, contextLengths: contextLengths, queryLengths: contextLengths.map { _ in 1 })
    }

    public var sequenceCount: Int { blockTables.count }
    /// `N`, the number of query rows.
    public var totalQueries: Int { queryLengths.reduce(0, +) }

    /// First query row of each sequence (exclusive prefix sum of `queryLengths`).
    public var queryStarts: [Int] {
        var out: [Int] = []
        out.reserveCapacity(queryLengths.count)
        var acc = 0
        for q in queryLengths {
            out.append(acc)
            acc += q
        }
        return out
    }

    static func checkTable(_ table: [Int], length: Int, blockSize: Int, numBlocks: Int, sequence: Int) throws(KVPagingError) {
        guard length >= 1 else {
            throw KVPagingError(.invalidArgument, "sequence \(sequence): context length \(length); each sequence needs ≥ 1 token")
        }
        let need = length / blockSize + (length % blockSize == 0 ? 0 : 1)   // ⌈length / blockSize⌉ without overflow
        guard table.count >= need else {
            throw KVPagingError(.shapeMismatch, "sequence \(sequence): \(length) tokens need \(need) blocks of \(blockSize), its block table has \(table.count)")
        }
        for b in table.prefix(need) where b < 0 || b >= numBlocks {
            throw KVPagingError(.shapeMismatch, "sequence \(sequence): block table entry \(b) is outside the storage's \(numBlocks) blocks")
        }
    }

    /// Validates the batch against storage and a query `[N, Hq, D]`; returns `Hq`.
    package func validate(query: Shape, storage: PagedKVStorage, scale: Float) throws(KVPagingError) -> Int {
        guard blockTables.count == contextLengths.count, blockTables.count == queryLengths.count, !blockTables.isEmpty else {
            throw KVPagingError(.shapeMismatch, "paged attention: \(blockTables.count) block tables, \(contextLengths.count) context lengths and \(queryLengths.count) query lengths must be equal and ≥ 1")
        }
        for i in 0..<blockTables.count {
            try Self.checkTable(blockTables[i], length: contextLengths[i], blockSize: storage.blockSize, numBlocks: storage.numBlocks, sequence: i)
            guard queryLengths[i] >= 1, queryLengths[i] <= contextLengths[i] else {
                throw KVPagingError(.invalidArgument, "sequence \(i): query length \(queryLengths[i]) must be 1…context length \(contextLengths[i]) (queries are the last positions of the context)")
            }
        }
        guard query.rank == 3, query[0] == totalQueries, query[2] == storage.headDim, query[1] >= 1 else {
            throw KVPagingError(.shapeMismatch, "paged attention: query \(query) must be [N=\(totalQueries), Hq, D=\(storage.headDim)]")
        }
        guard query[1] % storage.kvHeads == 0 else {
            throw KVPagingError(.shapeMismatch, "paged attention: query heads Hq=\(query[1]) must be a multiple of the storage's Hkv=\(storage.kvHeads)")
        }
        guard scale.isFinite else {
            throw KVPagingError(.nonFinite, "paged attention: scale is \(scale); pass a finite scale such as 1/√D")
        }
        return query[1]
    }
}

/// Attention over paged K/V storage.
///
/// Two implementations: ``ReferencePagedAttention`` (plain loops, Float64 —
/// the oracle) and ``CPUPagedAttention`` (SIMD, multi-threaded, online softmax).
public protocol PagedAttentionKernel: Sendable {
    var name: String { get }

    /// Causal grouped-query attention of packed queries over paged K/V.
    ///
    /// - Parameters:
    ///   - query: `[N, Hq, D]`, rows packed per sequence (see ``PagedAttentionBatch``); query head `h`
    ///     reads KV head `h / (Hq / Hkv)`.
    ///   - storage: `[numBlocks, blockSize, Hkv, D]` keys and values, already holding every context token.
    ///   - batch: block tables, context and query lengths.
    ///   - scale: multiplier of `q·k` (usually `1/√D`).
    /// - Returns: `[N, Hq, D]`.
    func attention(query: Tensor, storage: PagedKVStorage, batch: PagedAttentionBatch, scale: Float) throws(KVPagingError) -> Tensor
}

extension PagedAttentionKernel {
    /// Attention with the conventional scale `1/√D`.
    public func attention(query: Tensor, storage: PagedKVStorage, batch: PagedAttentionBatch) throws(KVPagingError) -> Tensor {
        try attention(query: query, storage: storage, batch: batch, scale: 1 / Float(storage.headDim).squareRoot())
    }
}

/// The oracle: straightforward loops with Float64 accumulation and a two-pass softmax.
public struct ReferencePagedAttention: PagedAttentionKernel {
    public init() {}
    public var name: String { "reference" }

    public func attention(query: Tensor, storage: PagedKVStorage, batch: PagedAttentionBatch, scale: Float) throws(KVPagingError) -> Tensor {
        let hq = try batch.validate(query: query.shape, storage: storage, scale: scale)
        guard query.isFinite else { throw KVPagingError(.nonFinite, "paged attention: query holds NaN/Inf; check the query projection") }
        let d = storage.headDim, hk = storage.kvHeads, bs = storage.blockSize
        let group = hq / hk
        let q = query.scalars, k = storage.keys, v = storage.values
        let starts = batch.queryStarts
        return Tensor(shape: query.shape) { out in
            var scores = [Double](repeating: 0, count: batch.contextLengths.max() ?? 0)
            for s in 0..<batch.sequenceCount {
                let ctx = batch.contextLengths[s], tq = batch.queryLengths[s]
                let table = batch.blockTables[s]
                for t in 0..<tq {
                    let visible = ctx - tq + t + 1
                    let row = starts[s] + t
                    for h in 0..<hq {
                        let kvh = h / group
                        let qBase = (row * hq + h) * d
                        var m = -Double.infinity
                        for p in 0..<visible {
                            let kBase = ((table[p / bs] * bs + p % bs) * hk + kvh) * d
                            var dot = 0.0
                            for x in 0..<d { dot += Double(q[qBase + x]) * Double(k[kBase + x]) }
                            scores[p] = dot * Double(scale)
                            m = max(m, scores[p])
                        }
                        var sum = 0.0
                        for p in 0..<visible {
                            scores[p] = Foundation.exp(scores[p] - m)
                            sum += scores[p]
                        }
                        for x in 0..<d {
                            var acc = 0.0
                            for p in 0..<visible {
                                acc += scores[p] * Double(v[((table[p / bs] * bs + p % bs) * hk + kvh) * d + x])
                            }
                            out[qBase + x] = Float(acc / sum)
                        }
                    }
                }
            }
        }
    }
}
