import TensorCore

/// One kernel problem the benchmark times on every backend.
public struct KernelWorkload: Sendable, Hashable, Codable {
    /// What is computed.
    public enum Kind: String, Sendable, Hashable, Codable {
        /// `op(a) · op(b)`.
        case matmul
        /// Attention with `Tq = Tk = T` (a prompt).
        case prefillAttention
        /// Attention with `Tq = 1` against `Tk` cached keys (one generated token).
        case decodeAttention
    }

    public let kind: Kind
    /// Short unique label, used in tables and charts (`matmul 1024³`, `decode Tk=4096`).
    public let label: String
    // Matmul: a `[M, K]`, b `[K, N]` (or `[N, K]` with `transposeB`).
    public let m: Int
    public let n: Int
    public let k: Int
    public let transposeB: Bool
    // Attention: query `[B, Hq, Tq, D]`, key/value `[B, Hkv, Tk, D]`.
    public let batch: Int
    public let queryHeads: Int
    public let kvHeads: Int
    public let queryLength: Int
    public let keyLength: Int
    public let headDim: Int
    public let causal: Bool

    /// `M×K·K×N`; decoder shapes multiply activations by a weight stored `[N, K]` (`x · Wᵀ`, as a linear layer).
    public static func matmul(m: Int, n: Int, k: Int, transposeB: Bool = false, label: String? = nil) -> KernelWorkload {
        let name = label ?? (m == n && n == k && !transposeB ? "matmul \(m)³" : "matmul \(m)×\(k)×\(n)\(transposeB ? " (x·Wᵀ)" : "")")
        return KernelWorkload(kind: .matmul, label: name, m: m, n: n, k: k, transposeB: transposeB,
                              batch: 0, queryHeads: 0, kvHeads: 0, queryLength: 0, keyLength: 0, headDim: 0, causal: false)
    }

    /// Causal prefill: `Tq = Tk = length`.
    public static func prefill(batch: Int = 1, queryHeads: Int = 32, kvHeads: Int = 8, length: Int, headDim: Int = 128) -> KernelWorkload {
        KernelWorkload(kind: .prefillAttention, label: "prefill T=\(length)", m: 0, n: 0, k: 0, transposeB: false,
                       batch: batch, queryHeads: queryHeads, kvHeads: kvHeads, queryLength: length, keyLength: length,
                       headDim: headDim, causal: true)
    }

    /// Decode: one query per head against `keys` cached keys (causal, which Tq = 1 makes a no-op).
    public static func decode(batch: Int = 1, queryHeads: Int = 32, kvHeads: Int = 8, keys: Int, headDim: Int = 128) -> KernelWorkload {
        KernelWorkload(kind: .decodeAttention, label: "decode Tk=\(keys)", m: 0, n: 0, k: 0, transposeB: false,
                       batch: batch, queryHeads: queryHeads, kvHeads: kvHeads, queryLength: 1, keyLength: keys,
                       headDim: headDim, causal: true)
    }

    public var isAttention: Bool { kind != .matmul }

    var aShape: Shape { [m, k] }
    var bShape: Shape { transposeB ? [n, k] : [k, n] }
    var queryShape: Shape { [batch, queryHeads, queryLength, headDim] }
    var kvShape: Shape { [batch, kvHeads, keyLength, headDim] }

    /// Floating-point operations per call (attention counts only unmasked query–key pairs).
    public var flops: Double {
        switch kind {
        case .matmul:
            return 2 * Double(m) * Double(n) * Double(k)
        case .prefillAttention, .decodeAttention:
            let g = try? AttentionGeometry(query: queryShape, key: kvShape, value: kvShape, causal: causal, scale: 1)
            return g?.flops ?? 0
        }
    }

    /// Bytes a call must move at least once: operands in, result out (Float32).
    public var bytes: Double {
        switch kind {
        case .matmul:
            return 4 * (Double(m) * Double(k) + Double(k) * Double(n) + Double(m) * Double(n))
        case .prefillAttention, .decodeAttention:
            return 4 * (2 * Double(queryShape.elementCount) + 2 * Double(kvShape.elementCount))
        }
    }

    /// Bytes of the key/value cache (what decode must stream from memory).
    public var kvBytes: Double { isAttention ? 8 * Double(kvShape.elementCount) : 0 }

    /// The smallest matrix dimension (the issue's bar on matmul applies from 512 up).
    public var smallestDimension: Int { min(m, n, k) }
}

extension KernelWorkload {
    /// Square sizes and decoder shapes of the full run.
    public static let fullSuite: [KernelWorkload] = [
        .matmul(m: 256, n: 256, k: 256), .matmul(m: 512, n: 512, k: 512), .matmul(m: 1024, n: 1024, k: 1024),
        .matmul(m: 2048, n: 2048, k: 2048), .matmul(m: 4096, n: 4096, k: 4096),
        .matmul(m: 1, n: 4096, k: 4096, transposeB: true), .matmul(m: 512, n: 4096, k: 4096, transposeB: true),
        .matmul(m: 1, n: 14336, k: 4096, transposeB: true),
        .prefill(length: 512), .prefill(length: 2048),
        .decode(keys: 4096),
    ]

    /// The `--quick` subset (well under a minute on two cores).
    public static let quickSuite: [KernelWorkload] = [
        .matmul(m: 256, n: 256, k: 256), .matmul(m: 512, n: 512, k: 512), .matmul(m: 1024, n: 1024, k: 1024),
        .matmul(m: 1, n: 4096, k: 4096, transposeB: true),
        .prefill(length: 512),
        .decode(keys: 4096),
    ]
}
