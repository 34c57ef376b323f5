import Foundation
import KVPaging
import Quantization
import TensorCore

/// The forward pass of a ``LlamaModel`` written with ``ComputeBackend`` operations over the
/// model's weights *dequantized* to Float32 — the oracle the fast path is checked against when run
/// on `ReferenceBackend` (Float64 accumulation), and the same model on any other backend (BLAS,
/// OpenCL).
///
/// It takes the same ``ForwardBatch`` and ``KVCache`` as ``CPUForwardPass``: K/V are written through
/// `PagedKVStorage.write(key:value:at:)`, gathered back per sequence with `gather(blockTable:length:)`
/// and attended with `backend.attention(…, causal: true)`. Sequences run one after another. Slow by
/// design (it dequantizes every weight once, ~4 bytes per parameter, and moves tensors between
/// layouts on the host); use it for checks, not serving.
public final class BackendForwardPass<Backend: ComputeBackend> {
    public let model: LlamaModel
    public let backend: Backend
    private var dequantized: [String: Tensor] = [:]

    public init(model: LlamaModel, backend: Backend) throws(ModelRuntimeError) {
        let c = model.configuration
        guard c.ropeDimensionCount == c.headDimension else {
            throw ModelRuntimeError(.backend, "the backend path rotates whole heads; this model's RoPE covers \(c.ropeDimensionCount) of \(c.headDimension) dimensions")
        }
        self.model = model
        self.backend = backend
    }

    /// A weight as `[rows, columns]` Float32 (dequantized once, then cached).
    func weight(_ name: String) throws(ModelRuntimeError) -> Tensor {
        if let t = dequantized[name] { return t }
        do {
            let t = try model.file.tensor(named: name)
            dequantized[name] = t
            return t
        } catch {
            throw ModelRuntimeError(.missingTensor, "cannot read tensor '\(name)'", underlying: "\(error)")
        }
    }

    /// Runs one step; `logits` rows follow the same order as ``CPUForwardPass/run(_:cache:logits:)``.
    public func run(_ batch: ForwardBatch, cache: inout KVCache) throws(ModelRuntimeError) -> [[Float]] {
        let c = model.configuration
        try batch.validate(vocabularySize: c.vocabularySize, contextLength: c.contextLength, cache: cache)
        var rows: [[Float]] = []
        for s in batch.sequences {
            rows += try sequence(s, batch: batch, cache: &cache)
        }
        return rows
    }

    private func wrap<T>(_ body: () throws -> T) throws(ModelRuntimeError) -> T {
        do { return try body() } catch let e as ModelRuntimeError { throw e } catch {
            throw ModelRuntimeError(.backend, "\(backend.name) backend failed", underlying: "\(error)")
        }
    }

    private func sequence(_ s: ForwardBatch.Sequence, batch: ForwardBatch, cache: inout KVCache) throws(ModelRuntimeError) -> [[Float]] {
        guard cache.precision == .float32 else {
            throw ModelRuntimeError(.invalidConfiguration, "the reference path keeps float32 K/V; create its KVCache with precision .float32")
        }
        let c = model.configuration
        let t = s.tokenCount, h = c.hiddenSize, d = c.headDimension
        let ids = batch.tokens[s.tokenStart..<(s.tokenStart + t)].map { Int($0) }
        let positions = batch.positions[s.tokenStart..<(s.tokenStart + t)].map { Int($0) }
        let table = batch.blockTables[s.blockTableStart..<(s.blockTableStart + s.blockCount)].map { Int($0) }
        let length = positions.last! + 1
        let embedding = try weight("token_embd.weight")
        let slots = positions.map { KVSlot(block: table[$0 / cache.blockSize], offset: $0 % cache.blockSize) }
        let b = backend
        return try wrap {
            var x = Tensor(shape: [t, h]) { out in
                for (i, id) in ids.enumerated() { for j in 0..<h { out[i * h + j] = embedding.scalars[id * h + j] } }
            }
            for l in 0..<c.layerCount {
                let p = "blk.\(l)."
                let hn = try b.rmsNorm(x, weight: try weight(p + "attn_norm.weight"), epsilon: c.rmsNormEpsilon)
                var q = try b.matmul(hn, try weight(p + "attn_q.weight"), transposeA: false, transposeB: true)
                var k = try b.matmul(hn, try weight(p + "attn_k.weight"), transposeA: false, transposeB: true)
                let v = try b.matmul(hn, try weight(p + "attn_v.weight"), transposeA: false, transposeB: true)
                // [T, H·D] → [1, H, T, D] for RoPE and attention.
                q = try b.rope(Self.headsFirst(q, heads: c.headCount, d: d), positions: positions, theta: c.ropeTheta, style: .interleaved)
                k = try b.rope(Self.headsFirst(k, heads: c.kvHeadCount, d: d), positions: positions, theta: c.ropeTheta, style: .interleaved)
                try cache.layers[l].write(key: Self.tokensFirst(k).reshaped([t, c.kvHeadCount, d]),
                                          value: try v.reshaped([t, c.kvHeadCount, d]), at: slots)
                let (kc, vc) = try cache.layers[l].gather(blockTable: table, length: length)
                let a = try b.attention(query: q, key: kc, value: vc, causal: true, scale: 1 / Float(d).squareRoot())
                let o = try b.matmul(Self.tokensFirst(a), try weight(p + "attn_output.weight"), transposeA: false, transposeB: true)
                x = try b.add(x, o)
                let fn = try b.rmsNorm(x, weight: try weight(p + "ffn_norm.weight"), epsilon: c.rmsNormEpsilon)
                let g = try b.matmul(fn, try weight(p + "ffn_gate.weight"), transposeA: false, transposeB: true)
                let u = try b.matmul(fn, try weight(p + "ffn_up.weight"), transposeA: false, transposeB: true)
                let down = try b.matmul(try b.mul(try b.silu(g), u), try weight(p + "ffn_down.weight"), transposeA: false, transposeB: true)
                x = try b.add(x, down)
            }
            let picked: [Int]
            switch s.logits {
            case .last: picked = [t - 1]
            case .all: picked = Array(0..<t)
            case .none: picked = []
            }
            guard !picked.isEmpty else { return [] }
            let rowsX = Tensor(shape: [picked.count, h]) { out in
                for (r, i) in picked.enumerated() { for j in 0..<h { out[r * h + j] = x.scalars[i * h + j] } }
            }
            let normed = try b.rmsNorm(rowsX, weight: try weight("output_norm.weight"), epsilon: c.rmsNormEpsilon)
            let out = try weight(c.tiedEmbeddings ? "token_embd.weight" : "output.weight")
            let logits = try b.matmul(normed, out, transposeA: false, transposeB: true)
            let v = c.vocabularySize
            return (0..<picked.count).map { Array(logits.scalars[($0 * v)..<(($0 + 1) * v)]) }
        }
    }

    /// `[T, H·D]` → `[1, H, T, D]`.
    static func headsFirst(_ x: Tensor, heads: Int, d: Int) -> Tensor {
        let t = x.shape[0]
        return Tensor(shape: [1, heads, t, d]) { out in
            for i in 0..<t { for hh in 0..<heads { for j in 0..<d { out[(hh * t + i) * d + j] = x.scalars[i * heads * d + hh * d + j] } } }
        }
    }

    /// `[1, H, T, D]` → `[T, H·D]`.
    static func tokensFirst(_ x: Tensor) -> Tensor {
        let heads = x.shape[1], t = x.shape[2], d = x.shape[3]
        return Tensor(shape: [t, heads * d]) { out in
            for i in 0..<t { for hh in 0..<heads { for j in 0..<d { out[i * heads * d + hh * d + j] = x.scalars[(hh * t + i) * d + j] } } }
        }
    }
}
