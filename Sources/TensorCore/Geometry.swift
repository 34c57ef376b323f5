import Foundation

/// Validated geometry of a (batched) matrix product; all backends share it.
public struct MatmulGeometry: Sendable, Hashable {
    /// Number of independent products.
    public let batch: Int
    public let m: Int
    public let n: Int
    public let k: Int
    /// Whether `b` is one matrix shared by every batch element.
    public let sharedB: Bool
    public let transposeA: Bool
    public let transposeB: Bool

    /// Result shape: `[M, N]` or `[B, M, N]`.
    public let outputShape: Shape

    public init(_ a: Shape, _ b: Shape, transposeA: Bool, transposeB: Bool) throws {
        let op = "matmul"
        guard a.rank == 2 || a.rank == 3 else { throw TensorError.rank(op, "a", a, expected: "2 ([M, K]) or 3 ([B, M, K])") }
        guard b.rank == 2 || b.rank == 3 else { throw TensorError.rank(op, "b", b, expected: "2 ([K, N]) or 3 ([B, K, N])") }
        if a.rank == 2 && b.rank == 3 {
            throw TensorError.rank(op, "b", b, expected: "rank 2 when a is rank 2 (a is \(a)); batch a as [B, M, K] to use a batched b")
        }
        let batch = a.rank == 3 ? a[0] : 1
        if a.rank == 3 && b.rank == 3 && a[0] != b[0] {
            throw TensorError.shapeMismatch(op, "batch sizes differ: a \(a) vs b \(b)")
        }
        let ar = a.rank - 2, br = b.rank - 2
        let m = transposeA ? a[ar + 1] : a[ar]
        let ka = transposeA ? a[ar] : a[ar + 1]
        let kb = transposeB ? b[br + 1] : b[br]
        let n = transposeB ? b[br] : b[br + 1]
        guard ka == kb else {
            throw TensorError.shapeMismatch(op, "inner dimensions differ: a \(a)\(transposeA ? "ᵀ" : "") has K=\(ka), b \(b)\(transposeB ? "ᵀ" : "") has K=\(kb)")
        }
        guard m > 0, n > 0, ka > 0, batch > 0 else {
            throw TensorError(.invalidArgument, "matmul: empty operand (a \(a), b \(b)); every dimension must be ≥ 1")
        }
        self.batch = batch
        self.m = m
        self.n = n
        self.k = ka
        self.sharedB = b.rank == 2
        self.transposeA = transposeA
        self.transposeB = transposeB
        self.outputShape = a.rank == 3 ? Shape([batch, m, n]) : Shape([m, n])
    }

    /// Floating-point operations (2·B·M·N·K).
    public var flops: Double { 2 * Double(batch) * Double(m) * Double(n) * Double(k) }
}

/// Validated geometry of grouped-query attention; all backends share it.
public struct AttentionGeometry: Sendable, Hashable {
    public let batch: Int
    public let queryHeads: Int
    public let kvHeads: Int
    public let queryLength: Int
    public let keyLength: Int
    public let headDim: Int
    public let causal: Bool
    public let scale: Float

    /// Query heads per KV head.
    public var groupSize: Int { queryHeads / kvHeads }
    /// Offset added to a query index to get the last key it may see under the causal mask.
    public var causalOffset: Int { keyLength - queryLength }
    public var outputShape: Shape { [batch, queryHeads, queryLength, headDim] }

    /// Number of keys query `i` attends to.
    @inlinable
    public func visibleKeys(forQuery i: Int) -> Int {
        causal ? min(keyLength, i + causalOffset + 1) : keyLength
    }

    public init(query: Shape, key: Shape, value: Shape, causal: Bool, scale: Float) throws {
        let op = "attention"
        guard query.rank == 4 else { throw TensorError.rank(op, "query", query, expected: "4 ([B, Hq, Tq, D])") }
        guard key.rank == 4 else { throw TensorError.rank(op, "key", key, expected: "4 ([B, Hkv, Tk, D])") }
        guard value.rank == 4 else { throw TensorError.rank(op, "value", value, expected: "4 ([B, Hkv, Tk, D])") }
        guard key == value else {
            throw TensorError.shapeMismatch(op, "key \(key) and value \(value) must have the same shape")
        }
        guard query[0] == key[0] else {
            throw TensorError.shapeMismatch(op, "batch differs: query \(query) vs key \(key)")
        }
        guard query[3] == key[3] else {
            throw TensorError.shapeMismatch(op, "head dimension differs: query \(query) has D=\(query[3]), key \(key) has D=\(key[3])")
        }
        guard query.allSatisfy({ $0 > 0 }), key.allSatisfy({ $0 > 0 }) else {
            throw TensorError(.invalidArgument, "attention: empty operand (query \(query), key \(key)); every dimension must be ≥ 1")
        }
        guard query[1] % key[1] == 0 else {
            throw TensorError.shapeMismatch(op, "query heads Hq=\(query[1]) (query \(query)) must be a multiple of key/value heads Hkv=\(key[1]) (key \(key))")
        }
        guard scale.isFinite else {
            throw TensorError(.nonFinite, "attention: scale is \(scale); pass a finite scale such as 1/√D")
        }
        if causal && query[2] > key[2] {
            throw TensorError.shapeMismatch(op, "causal attention with more queries (Tq=\(query[2])) than keys (Tk=\(key[2])) leaves the first queries with no visible key; pass Tk ≥ Tq")
        }
        batch = query[0]
        queryHeads = query[1]
        kvHeads = key[1]
        queryLength = query[2]
        keyLength = key[2]
        headDim = query[3]
        self.causal = causal
        self.scale = scale
    }

    /// Floating-point operations of the two products (QKᵀ and PV), counting only unmasked pairs.
    public var flops: Double {
        var pairs = 0.0
        if causal {
            for i in 0..<queryLength { pairs += Double(visibleKeys(forQuery: i)) }
        } else {
            pairs = Double(queryLength) * Double(keyLength)
        }
        return 4 * Double(batch) * Double(queryHeads) * pairs * Double(headDim)
    }
}

/// Validated broadcast of `b` over `a` for elementwise ops: `b`'s shape is a suffix of `a`'s.
public struct BroadcastGeometry: Sendable, Hashable {
    /// Elements of `a`.
    public let count: Int
    /// Elements of `b` (divides `count`).
    public let period: Int

    public init(_ op: String, _ a: Shape, _ b: Shape) throws {
        guard b.rank <= a.rank, Array(a.dimensions.suffix(b.rank)) == b.dimensions else {
            throw TensorError.shapeMismatch(op, "b \(b) must equal a \(a) or a suffix of it to broadcast")
        }
        count = a.elementCount
        period = b.elementCount
        guard period > 0 || count == 0 else {
            throw TensorError(.invalidArgument, "\(op): b \(b) is empty")
        }
    }
}

/// Validation of the normalisation / position ops shared by every backend.
public enum OpValidation {
    /// Returns `(rows, D)` for an RMS norm of `x` with `weight` `[D]`.
    public static func rmsNorm(_ x: Shape, weight: Shape, epsilon: Float) throws -> (rows: Int, dim: Int) {
        guard x.rank >= 1 else { throw TensorError.rank("rmsNorm", "x", x, expected: "≥ 1") }
        let d = x[x.rank - 1]
        guard weight.rank == 1, weight[0] == d else {
            throw TensorError.shapeMismatch("rmsNorm", "weight \(weight) must be [\(d)] to match the last axis of x \(x)")
        }
        guard epsilon.isFinite, epsilon >= 0 else {
            throw TensorError(.invalidArgument, "rmsNorm: epsilon is \(epsilon); pass a small finite value ≥ 0 such as 1e-5")
        }
        guard d > 0 else { throw TensorError(.invalidArgument, "rmsNorm: x \(x) has an empty last axis") }
        return (x.elementCount / d, d)
    }

    /// Returns `(B, H, T, D)` for a rotary embedding; `positions` must have `T` or `B·T` entries, all ≥ 0.
    public static func rope(_ x: Shape, positions: [Int], theta: Float) throws -> (b: Int, h: Int, t: Int, d: Int) {
        guard x.rank == 4 else { throw TensorError.rank("rope", "x", x, expected: "4 ([B, H, T, D])") }
        let (b, h, t, d) = (x[0], x[1], x[2], x[3])
        guard d % 2 == 0, d > 0 else {
            throw TensorError(.invalidArgument, "rope: head dimension D=\(d) of x \(x) must be even and > 0")
        }
        guard positions.count == t || positions.count == b * t else {
            throw TensorError.shapeMismatch("rope", "\(positions.count) positions given for x \(x); pass T=\(t) or B·T=\(b * t)")
        }
        guard positions.allSatisfy({ $0 >= 0 }) else {
            throw TensorError(.invalidArgument, "rope: positions must be ≥ 0")
        }
        guard theta.isFinite, theta > 1 else {
            throw TensorError(.invalidArgument, "rope: theta is \(theta); pass a finite base > 1 such as 10000 or 500000")
        }
        return (b, h, t, d)
    }

    /// Returns `(rows, lastAxis)` for softmax.
    public static func softmax(_ x: Shape) throws -> (rows: Int, dim: Int) {
        guard x.rank >= 1 else { throw TensorError.rank("softmax", "x", x, expected: "≥ 1") }
        let d = x[x.rank - 1]
        guard d > 0 else { throw TensorError(.invalidArgument, "softmax: x \(x) has an empty last axis") }
        return (x.elementCount / d, d)
    }

    /// Inverse frequencies `theta^(-2i/D)` for `i < D/2`, in Float64 for accuracy.
    public static func ropeInverseFrequencies(dim: Int, theta: Float) -> [Double] {
        (0..<(dim / 2)).map { i in 1 / pow(Double(theta), Double(2 * i) / Double(dim)) }
    }
}
