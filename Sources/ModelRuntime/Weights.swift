import CInferenceKitBLAS
import Foundation
import Quantization
import TensorCore

/// Float32 weights `[rows, columns]` owned by the model, multiplied with OpenBLAS.
///
/// `@unchecked Sendable`: written only while loading, read-only afterwards, freed in `deinit`.
final class DenseMatrix: @unchecked Sendable {
    let rows: Int
    let columns: Int
    let values: UnsafeMutableBufferPointer<Float>

    init(rows: Int, columns: Int, fill: (UnsafeMutableBufferPointer<Float>) -> Void) {
        self.rows = rows
        self.columns = columns
        values = .allocate(capacity: max(rows * columns, 1))
        fill(values)
    }

    deinit { values.deallocate() }
}

/// One projection as the fast path runs it: quantized (the packed C kernels) or dense (OpenBLAS).
enum Projection: Sendable {
    case quantized(QuantizedLinear)
    case dense(DenseMatrix)

    /// Bytes of weights one product streams.
    var weightBytes: Int {
        switch self {
        case let .quantized(q): q.weightBytes
        case let .dense(d): d.rows * d.columns * 4
        }
    }

    var isQuantized: Bool { if case .quantized = self { true } else { false } }
}

/// Several projections of the same input written side by side into one output row
/// (`[Q | K | V]`, `[gate | up]`): fused into one matrix when their storage types agree.
struct ProjectionGroup: Sendable {
    /// The parts and the column where each one's output starts.
    let parts: [(projection: Projection, offset: Int)]
    /// Total output width.
    let width: Int
    let inputs: Int

    var weightBytes: Int { parts.reduce(0) { $0 + $1.projection.weightBytes } }
    var needsQuantizedInput: Bool { parts.contains { $0.projection.isQuantized } }
}

/// The weights of one decoder layer.
struct LayerWeights: Sendable {
    let attentionNorm: [Float]
    let qkv: ProjectionGroup
    let attentionOutput: ProjectionGroup
    let ffnNorm: [Float]
    let gateUp: ProjectionGroup
    let down: ProjectionGroup
}

/// The token embedding table read in place from the file (only the rows a batch uses are touched).
struct EmbeddingTable: Sendable {
    let type: GGMLType
    let rows: Int
    let columns: Int
    /// Offset of the table in the file's storage.
    let offset: Int
    let storage: GGUFStorage

    /// Writes row `token` as Float32 into `out` (`columns` floats).
    func row(_ token: Int, into out: UnsafeMutablePointer<Float>) {
        let base = storage.bytes.baseAddress! + offset
        switch type {
        case .f32:
            let p = (base + token * columns * 4)
            for i in 0..<columns { out[i] = Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
        case .f16:
            let p = (base + token * columns * 2)
            for i in 0..<columns { out[i] = Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))) }
        case .q8_0, .q4_0, .q4_1:
            let f = type.quantizationFormat!
            let rowBytes = f.byteCount(rows: 1, columns: columns)
            let bytes = UnsafeBufferPointer(start: (base + token * rowBytes).assumingMemoryBound(to: UInt8.self), count: rowBytes)
            f.dequantizeBlockRows(bytes, columns: columns, rows: 0..<1, into: UnsafeMutableBufferPointer(start: out, count: columns))
        }
    }
}

/// Every weight of a Llama-layout model, in the forms the fast path runs.
struct LlamaWeights: Sendable {
    let embedding: EmbeddingTable
    let layers: [LayerWeights]
    let outputNorm: [Float]
    let output: ProjectionGroup

    var projectionBytes: Int {
        layers.reduce(output.weightBytes) { $0 + $1.qkv.weightBytes + $1.attentionOutput.weightBytes + $1.gateUp.weightBytes + $1.down.weightBytes }
    }
}

/// Reads a GGUF file's tensors into ``LlamaWeights``, checking each name, shape and type, and
/// repacking quantized matrices straight from the mapping (pages released once packed).
struct GGUFWeightLoader {
    let file: GGUFFile
    let config: ModelConfiguration
    let progress: (@Sendable (Int, Int) -> Void)?

    func info(_ name: String) throws(ModelRuntimeError) -> GGUFTensorInfo {
        guard let t = file.tensors.first(where: { $0.name == name }) else {
            throw ModelRuntimeError(.missingTensor, "tensor '\(name)' is missing from the file; a \(config.architecture) model with \(config.layerCount) layers needs it")
        }
        guard t.type != nil else {
            throw ModelRuntimeError(.unsupportedTensorType,
                "tensor '\(name)' is stored as \(t.typeName), which this runtime cannot read (supported: F32, F16, Q8_0, Q4_0, Q4_1); re-quantize the model to one of those")
        }
        return t
    }

    func checkShape(_ t: GGUFTensorInfo, _ expected: [Int]) throws(ModelRuntimeError) {
        guard t.dimensions == expected else {
            throw ModelRuntimeError(.tensorShape, "tensor '\(t.name)' has GGUF dimensions \(t.dimensions); the configuration (\(config)) implies \(expected)")
        }
    }

    func vector(_ name: String, _ count: Int) throws(ModelRuntimeError) -> [Float] {
        let t = try info(name)
        try checkShape(t, [count])
        do {
            let v = try file.tensor(named: name).scalars
            if let bad = v.firstIndex(where: { !$0.isFinite }) {
                throw ModelRuntimeError(.nonFinite, "tensor '\(name)' holds \(v[bad]) at index \(bad); the file is corrupt")
            }
            return v
        } catch let e as ModelRuntimeError {
            throw e
        } catch {
            throw ModelRuntimeError(.invalidFile, "cannot read tensor '\(name)'", underlying: "\(error)")
        }
    }

    /// The bytes of a tensor inside the mapping.
    func bytes(_ t: GGUFTensorInfo) -> (UnsafeRawBufferPointer, Range<Int>) {
        let start = file.dataOffset + t.offset
        let range = start..<(start + t.byteCount!)
        return (UnsafeRawBufferPointer(rebasing: file.storage.bytes[range]), range)
    }

    /// Projections `names` (each `[rows_i, columns]`) stacked into one group.
    func group(_ names: [String], rows: [Int], columns: Int) throws(ModelRuntimeError) -> ProjectionGroup {
        var infos: [GGUFTensorInfo] = []
        for (n, r) in zip(names, rows) {
            let t = try info(n)
            try checkShape(t, [columns, r])
            infos.append(t)
        }
        var parts: [(Projection, Int)] = []
        var offset = 0
        var i = 0
        while i < infos.count {
            // Fuse a run of tensors that share a block format into one packed matrix.
            var j = i + 1
            if let f = infos[i].type?.quantizationFormat {
                while j < infos.count, infos[j].type?.quantizationFormat == f { j += 1 }
                let run = Array(infos[i..<j])
                let p: QuantizedLinear
                // Release the source pages of rows already packed as packing goes, so a large tensor's
                // file pages and its packed copy are not both resident at the peak.
                let ranges = run.map { bytes($0).1 }
                let rowBytes = f.byteCount(rows: 1, columns: columns)
                let rowCounts = run.map { $0.dimensions[1] }
                let storage = file.storage
                var releasedRows = 0
                let release: (Int) -> Void = { done in
                    // Rows releasedRows..<done, part by part.
                    var first = 0
                    for (range, n) in zip(ranges, rowCounts) {
                        let a = min(max(releasedRows - first, 0), n), b = min(max(done - first, 0), n)
                        if b > a { storage.releasePages((range.lowerBound + a * rowBytes)..<(range.lowerBound + b * rowBytes)) }
                        first += n
                    }
                    releasedRows = done
                }
                do {
                    p = try QuantizedLinear(format: f, columns: columns, parts: run.map { (rows: $0.dimensions[1], bytes: bytes($0).0) }, rowsPacked: release)
                } catch {
                    throw ModelRuntimeError(.invalidFile, "cannot pack tensor '\(run[0].name)'", underlying: "\(error)")
                }
                for t in run { file.storage.releasePages(bytes(t).1) }
                parts.append((.quantized(p), offset))
                offset += p.outputFeatures
            } else {
                let t = infos[i]
                let m = try dense(t)
                parts.append((.dense(m), offset))
                offset += m.rows
            }
            i = j
        }
        return ProjectionGroup(parts: parts, width: offset, inputs: columns)
    }

    func dense(_ t: GGUFTensorInfo) throws(ModelRuntimeError) -> DenseMatrix {
        let values: Tensor
        do { values = try file.tensor(named: t.name) } catch {
            throw ModelRuntimeError(.invalidFile, "cannot read tensor '\(t.name)'", underlying: "\(error)")
        }
        if let bad = values.scalars.firstIndex(where: { !$0.isFinite }) {
            throw ModelRuntimeError(.nonFinite, "tensor '\(t.name)' holds \(values.scalars[bad]) at flat index \(bad); the file is corrupt")
        }
        let m = DenseMatrix(rows: t.dimensions[1], columns: t.dimensions[0]) { out in
            values.withUnsafeBufferPointer { src in _ = out.initialize(fromContentsOf: src) }
        }
        return m
    }

    func load() throws(ModelRuntimeError) -> LlamaWeights {
        let c = config
        let h = c.hiddenSize
        let embd = try info("token_embd.weight")
        try checkShape(embd, [h, c.vocabularySize])
        let embedding = EmbeddingTable(type: embd.type!, rows: c.vocabularySize, columns: h, offset: file.dataOffset + embd.offset, storage: file.storage)
        var layers: [LayerWeights] = []
        layers.reserveCapacity(c.layerCount)
        let total = c.layerCount + 1
        for l in 0..<c.layerCount {
            let p = "blk.\(l)."
            let layer = LayerWeights(
                attentionNorm: try vector(p + "attn_norm.weight", h),
                qkv: try group([p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight"], rows: [c.queryWidth, c.kvWidth, c.kvWidth], columns: h),
                attentionOutput: try group([p + "attn_output.weight"], rows: [h], columns: c.queryWidth),
                ffnNorm: try vector(p + "ffn_norm.weight", h),
                gateUp: try group([p + "ffn_gate.weight", p + "ffn_up.weight"], rows: [c.intermediateSize, c.intermediateSize], columns: h),
                down: try group([p + "ffn_down.weight"], rows: [h], columns: c.intermediateSize))
            layers.append(layer)
            progress?(l + 1, total)
        }
        let outputNorm = try vector("output_norm.weight", h)
        let output = try group([c.tiedEmbeddings ? "token_embd.weight" : "output.weight"], rows: [c.vocabularySize], columns: h)
        progress?(total, total)
        return LlamaWeights(embedding: embedding, layers: layers, outputNorm: outputNorm, output: output)
    }
}
