/// The operations a decoder needs, implemented once per device.
///
/// Every backend validates shapes the same way (see ``MatmulGeometry`` and
/// ``AttentionGeometry``) and throws ``TensorError`` for bad input; results
/// are compared against ``ReferenceBackend`` in tests.
///
/// Shapes in these docs are written outermost first: `[B, H, T, D]` is batch,
/// heads, tokens, head dimension.
public protocol ComputeBackend: Sendable {
    /// Short, stable name used for selection (`reference`, `blas`, `opencl`).
    var name: String { get }
    /// Human description of the device this backend runs on.
    var deviceDescription: String { get }

    /// Matrix product `op(a) · op(b)` where `op` optionally transposes the last two dimensions.
    ///
    /// - 2-D: `a` `[M, K]` (or `[K, M]` when `transposeA`), `b` `[K, N]` (or `[N, K]`) → `[M, N]`.
    /// - Batched: `a` `[B, M, K]`, `b` `[B, K, N]` → `[B, M, N]`; a 2-D `b` is shared by every batch (weights).
    func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) throws -> Tensor

    /// Scaled dot-product attention with grouped-query heads.
    ///
    /// - Parameters:
    ///   - query: `[B, Hq, Tq, D]`.
    ///   - key: `[B, Hkv, Tk, D]`, `Hq` a multiple of `Hkv` (query head `h` reads kv head `h / (Hq / Hkv)`).
    ///   - value: `[B, Hkv, Tk, D]`.
    ///   - causal: mask aligned to the end: query `i` sees keys `j ≤ i + Tk − Tq` (decode with `Tq = 1` sees all keys).
    ///   - scale: multiplier of `q·k` (usually `1/√D`); must be finite.
    /// - Returns: `[B, Hq, Tq, D]`.
    func attention(query: Tensor, key: Tensor, value: Tensor, causal: Bool, scale: Float) throws -> Tensor

    /// Numerically stable softmax over the last axis.
    func softmax(_ x: Tensor) throws -> Tensor

    /// RMS normalisation over the last axis: `x / sqrt(mean(x²) + ε) * weight`, `weight` of shape `[D]`.
    func rmsNorm(_ x: Tensor, weight: Tensor, epsilon: Float) throws -> Tensor

    /// Rotary position embedding of `x` `[B, H, T, D]` (D even) at `positions` (count `T`, or `B·T` for per-sequence positions).
    func rope(_ x: Tensor, positions: [Int], theta: Float, style: RotaryStyle) throws -> Tensor

    /// `x · sigmoid(x)` elementwise.
    func silu(_ x: Tensor) throws -> Tensor

    /// Elementwise sum; `b` may have the shape of a suffix of `a`'s shape (broadcast over leading dims).
    func add(_ a: Tensor, _ b: Tensor) throws -> Tensor

    /// Elementwise product; `b` may have the shape of a suffix of `a`'s shape (broadcast over leading dims).
    func mul(_ a: Tensor, _ b: Tensor) throws -> Tensor
}

extension ComputeBackend {
    /// `a · b` without transposes.
    public func matmul(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try matmul(a, b, transposeA: false, transposeB: false)
    }

    /// Attention with the conventional scale `1/√D`.
    public func attention(query: Tensor, key: Tensor, value: Tensor, causal: Bool) throws -> Tensor {
        let d = query.rank == 4 ? query.shape[3] : 1
        return try attention(query: query, key: key, value: value, causal: causal, scale: 1 / Float(max(d, 1)).squareRoot())
    }

    /// RoPE with the half-split (Llama / NeoX) pairing.
    public func rope(_ x: Tensor, positions: [Int], theta: Float = 10_000) throws -> Tensor {
        try rope(x, positions: positions, theta: theta, style: .halfSplit)
    }
}

/// How rotary embeddings pair the dimensions of a head.
public enum RotaryStyle: String, Sendable, Hashable, CaseIterable {
    /// Pairs `(i, i + D/2)` — Hugging Face Llama, GPT-NeoX.
    case halfSplit
    /// Pairs `(2i, 2i + 1)` — GPT-J, the original RoFormer.
    case interleaved
}
