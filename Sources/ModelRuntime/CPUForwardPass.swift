import CInferenceKitBLAS
import CInferenceKitCPUKernels
import CInferenceKitQuantKernels
import Foundation
import KVPaging
import Quantization
import TensorCore

/// Logits of one forward step: `rows × vocabularySize` Float32, row `i` for the `i`-th requested
/// row of the batch (sequence order; within a sequence, token order).
///
/// The buffer is reused from step to step; read the rows before the next step.
public struct Logits: Sendable {
    public private(set) var rowCount = 0
    public private(set) var vocabularySize = 0
    /// Row-major values, `rowCount × vocabularySize` valid.
    public private(set) var values: [Float] = []
    /// For each row, the index of the batch token it belongs to.
    public private(set) var tokenIndices: [Int] = []

    public init() {}

    mutating func reset(rows: Int, vocabularySize v: Int) {
        rowCount = rows
        vocabularySize = v
        if values.count < rows * v { values = [Float](repeating: 0, count: rows * v) }
        tokenIndices.removeAll(keepingCapacity: true)
    }

    mutating func appendTokenIndex(_ t: Int) { tokenIndices.append(t) }

    /// Row `i` (a copy).
    public func row(_ i: Int) -> [Float] { Array(values[(i * vocabularySize)..<((i + 1) * vocabularySize)]) }

    /// Row `i` without copying.
    public func withRow<R>(_ i: Int, _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try values.withUnsafeBufferPointer { p in try body(UnsafeBufferPointer(rebasing: p[(i * vocabularySize)..<((i + 1) * vocabularySize)])) }
    }

    mutating func withMutableValues<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try values.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
    }
}

/// Time spent per operation over the steps a ``CPUForwardPass`` ran with profiling on.
public struct ForwardProfile: Sendable, Hashable {
    public enum Phase: String, Sendable, CaseIterable {
        case embedding, norm, qkvProjection, ropeAndKVWrite, attention, outputProjection, residual, gateUpProjection, swiglu, downProjection, logits
    }
    /// Nanoseconds per phase.
    public var nanoseconds: [Phase: UInt64] = [:]
    public var steps = 0
    public init() {}
}

/// The fast CPU forward pass of a ``LlamaModel`` over a flat ``ForwardBatch``.
///
/// Projections run on the packed quantized kernels (activations quantized once per input and
/// shared by fused Q|K|V and gate|up matrices) or OpenBLAS for Float32 weights; K/V are written into
/// the ``KVCache`` through each token's slot (`blockTable[p / blockSize] · blockSize + p % blockSize`)
/// and attention reads them in place from the paged blocks (`ikc_paged_attention`), so prefill,
/// decode and prefill after a cached prefix are the same call. Scratch buffers grow to the largest
/// batch seen and are reused: a decode loop allocates nothing per step.
///
/// Not thread-safe: one pass per thread (an engine owns one on its step thread).
public final class CPUForwardPass {
    public let model: LlamaModel
    /// Threads for the products and attention (default: every CPU).
    public var threads: Int
    /// Records per-phase time into ``profile`` when true.
    public var profiling = false
    public private(set) var profile = ForwardProfile()

    private var scratch = Scratch()
    private var items: [AttentionItem] = []
    private var slots: [Int] = []
    private var ropeTable: [Float] = []
    private let inverseFrequencies: [Double]

    public init(model: LlamaModel, threads: Int = HostCPU.activeProcessorCount) {
        self.model = model
        self.threads = max(1, threads)
        let c = model.configuration
        inverseFrequencies = (0..<(c.ropeDimensionCount / 2)).map { i in
            1 / pow(Double(c.ropeTheta), Double(2 * i) / Double(c.ropeDimensionCount))
        }
    }

    deinit { scratch.deallocate() }

    public func resetProfile() { profile = ForwardProfile() }

    /// Runs one step: writes the batch's K/V into `cache` and fills `logits` with the requested rows.
    ///
    /// - Throws: ``ModelRuntimeError`` `.invalidBatch` / `.contextOverflow` for a malformed batch
    ///   (nothing is written), `.nonFinite` when the logits hold NaN/Inf (a corrupted weight).
    public func run(_ batch: ForwardBatch, cache: inout KVCache, logits: inout Logits) throws(ModelRuntimeError) {
        let c = model.configuration
        try batch.validate(vocabularySize: c.vocabularySize, contextLength: c.contextLength, cache: cache)
        let t = batch.tokenCount
        let rows = batch.logitRowCount
        scratch.reserve(tokens: t, logitRows: rows, config: c, attentionParts: threads)
        prepare(batch, blockSize: cache.blockSize)
        logits.reset(rows: rows, vocabularySize: c.vocabularySize)
        var clock = PhaseClock(enabled: profiling)

        let h = c.hiddenSize
        let x = scratch.x.baseAddress!
        // Embedding rows.
        batch.tokens.withUnsafeBufferPointer { ids in
            for i in 0..<t { model.weights.embedding.row(Int(ids[i]), into: x + i * h) }
        }
        clock.lap(.embedding, &profile)

        for l in 0..<c.layerCount {
            let w = model.weights.layers[l]
            try layer(w, index: l, batch: batch, cache: &cache, clock: &clock)
        }

        // Final norm of the rows that produce logits, then the output projection.
        let normed = scratch.normed.baseAddress!
        var r = 0
        for s in batch.sequences {
            let range: Range<Int>
            switch s.logits {
            case .last: range = (s.tokenStart + s.tokenCount - 1)..<(s.tokenStart + s.tokenCount)
            case .all: range = s.tokenStart..<(s.tokenStart + s.tokenCount)
            case .none: range = 0..<0
            }
            for i in range {
                model.weights.outputNorm.withUnsafeBufferPointer { g in
                    VectorOps.rmsNorm(x + i * h, weight: g.baseAddress!, count: h, epsilon: c.rmsNormEpsilon, into: normed + r * h)
                }
                logits.appendTokenIndex(i)
                r += 1
            }
        }
        if rows > 0 {
            logits.withMutableValues { out in
                project(model.weights.output, input: normed, tokens: rows, into: out, stride: c.vocabularySize)
            }
            let bad: Int? = logits.values.withUnsafeBufferPointer { p in
                for i in 0..<(rows * c.vocabularySize) where !p[i].isFinite { return i }
                return nil
            }
            if let bad {
                throw ModelRuntimeError(.nonFinite,
                    "the forward pass produced \(logits.values[bad]) in logit row \(bad / c.vocabularySize), token \(bad % c.vocabularySize); a weight of the model is corrupted (NaN/Inf or absurdly large)")
            }
        }
        clock.lap(.logits, &profile)
        if profiling { profile.steps += 1 }
    }

    // MARK: Per-batch preparation

    private func prepare(_ batch: ForwardBatch, blockSize: Int) {
        let c = model.configuration
        let half = c.ropeDimensionCount / 2
        let t = batch.tokenCount
        slots.removeAll(keepingCapacity: true)
        if ropeTable.count < t * half * 2 { ropeTable = [Float](repeating: 0, count: t * half * 2) }
        batch.positions.withUnsafeBufferPointer { pos in
            batch.blockTables.withUnsafeBufferPointer { tables in
                for s in batch.sequences {
                    for i in s.tokenStart..<(s.tokenStart + s.tokenCount) {
                        let p = Int(pos[i])
                        let block = Int(tables[s.blockTableStart + p / blockSize])
                        slots.append(block * blockSize + p % blockSize)
                    }
                }
            }
            ropeTable.withUnsafeMutableBufferPointer { rt in
                for i in 0..<t {
                    let p = Double(pos[i])
                    for j in 0..<half {
                        let a = p * inverseFrequencies[j]
                        rt[(i * half + j) * 2] = Float(cos(a))
                        rt[(i * half + j) * 2 + 1] = Float(sin(a))
                    }
                }
            }
        }
        // Attention work items: (sequence, KV head, tile of query tokens), ≤ 64 query rows each.
        items.removeAll(keepingCapacity: true)
        let tile = max(1, 64 / c.groupSize)
        for s in batch.sequences {
            var t0 = s.tokenStart
            let end = s.tokenStart + s.tokenCount
            while t0 < end {
                let t1 = min(end, t0 + tile)
                for kvh in 0..<c.kvHeadCount {
                    items.append(AttentionItem(tokenBegin: t0, tokenEnd: t1, kvHead: kvh, blockTableStart: s.blockTableStart))
                }
                t0 = t1
            }
        }
    }

    // MARK: One layer

    private func layer(_ w: LayerWeights, index l: Int, batch: ForwardBatch, cache: inout KVCache, clock: inout PhaseClock) throws(ModelRuntimeError) {
        let c = model.configuration
        let t = batch.tokenCount
        let h = c.hiddenSize, qw = c.queryWidth, kw = c.kvWidth, width = qw + 2 * kw
        let x = scratch.x.baseAddress!, normed = scratch.normed.baseAddress!
        let qkv = scratch.qkv.baseAddress!, attn = scratch.attention.baseAddress!, tmp = scratch.tmp.baseAddress!
        let gu = scratch.gateUp.baseAddress!, act = scratch.activation.baseAddress!
        let f = c.intermediateSize

        w.attentionNorm.withUnsafeBufferPointer { g in
            for i in 0..<t { VectorOps.rmsNorm(x + i * h, weight: g.baseAddress!, count: h, epsilon: c.rmsNormEpsilon, into: normed + i * h) }
        }
        clock.lap(.norm, &profile)
        project(w.qkv, input: normed, tokens: t, into: qkv, stride: width)
        clock.lap(.qkvProjection, &profile)

        // RoPE on Q and K (adjacent pairs, as GGUF llama stores Q/K), then K/V into their slots.
        let d = c.headDimension, half = c.ropeDimensionCount / 2
        ropeTable.withUnsafeBufferPointer { rt in
            for i in 0..<t {
                let row = qkv + i * width
                let cs = rt.baseAddress! + i * half * 2
                for head in 0..<(c.headCount + c.kvHeadCount) {
                    VectorOps.ropeAdjacentPairs(row + head * d, table: cs, pairs: half)
                }
            }
        }
        if cache.precision == .float32 {
            cache.layers[l].withUnsafeMutableBuffers { keys, values in
                let kb = keys.baseAddress!, vb = values.baseAddress!
                for i in 0..<t {
                    let row = qkv + i * width
                    let s = slots[i] * kw
                    (kb + s).update(from: row + qw, count: kw)
                    (vb + s).update(from: row + qw + kw, count: kw)
                }
            }
        } else {
            // Head-major blocks ([blocks, Hkv, blockSize, D]): each head's rows of a block are one contiguous run.
            let bs = cache.blockSize, hkv = c.kvHeadCount
            cache.halfLayers[l].withUnsafeMutableBuffers { keys, values in
                for i in 0..<t {
                    let row = qkv + i * width
                    let block = slots[i] / bs, pos = slots[i] % bs
                    for h in 0..<hkv {
                        let dst = ((block * hkv + h) * bs + pos) * d
                        ikc_float_to_half(row + qw + h * d, keys.baseAddress! + dst, Int64(d))
                        ikc_float_to_half(row + qw + kw + h * d, values.baseAddress! + dst, Int64(d))
                    }
                }
            }
        }
        clock.lap(.ropeAndKVWrite, &profile)

        if cache.precision == .float32 {
            cache.layers[l].withUnsafeBuffers { keys, values in
                attention(batch: batch, qkv: qkv, width: width, keys: UnsafeRawPointer(keys.baseAddress!), values: UnsafeRawPointer(values.baseAddress!),
                          half: false, blockSize: cache.blockSize, out: attn)
            }
        } else {
            cache.halfLayers[l].withUnsafeBuffers { keys, values in
                attention(batch: batch, qkv: qkv, width: width, keys: UnsafeRawPointer(keys.baseAddress!), values: UnsafeRawPointer(values.baseAddress!),
                          half: true, blockSize: cache.blockSize, out: attn)
            }
        }
        clock.lap(.attention, &profile)

        project(w.attentionOutput, input: attn, tokens: t, into: tmp, stride: h)
        clock.lap(.outputProjection, &profile)
        VectorOps.add(tmp, into: x, count: t * h)
        w.ffnNorm.withUnsafeBufferPointer { g in
            for i in 0..<t { VectorOps.rmsNorm(x + i * h, weight: g.baseAddress!, count: h, epsilon: c.rmsNormEpsilon, into: normed + i * h) }
        }
        clock.lap(.residual, &profile)
        project(w.gateUp, input: normed, tokens: t, into: gu, stride: 2 * f)
        clock.lap(.gateUpProjection, &profile)
        for i in 0..<t { ikc_silu_mul(gu + i * 2 * f, gu + i * 2 * f + f, act + i * f, Int64(f)) }
        clock.lap(.swiglu, &profile)
        project(w.down, input: act, tokens: t, into: tmp, stride: h)
        clock.lap(.downProjection, &profile)
        VectorOps.add(tmp, into: x, count: t * h)
        clock.lap(.residual, &profile)
    }

    // MARK: Products

    /// `out[i·stride + offset + n] = Σ_k W[n, k] · input[i, k]` for every part of the group.
    private func project(_ g: ProjectionGroup, input: UnsafeMutablePointer<Float>, tokens: Int, into out: UnsafeMutablePointer<Float>, stride: Int) {
        let k = g.inputs
        if g.needsQuantizedInput {
            QuantizedLinear.quantizeActivations(input, tokens: tokens, columns: k, q: scratch.q8.baseAddress!, d: scratch.qd.baseAddress!, s: scratch.qs.baseAddress!)
        }
        for (p, offset) in g.parts {
            switch p {
            case let .quantized(q):
                q.multiply(q: scratch.q8.baseAddress!, d: scratch.qd.baseAddress!, s: scratch.qs.baseAddress!, tokens: tokens,
                           out: out + offset, outStride: stride, threads: threads)
            case let .dense(m):
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(tokens), Int32(m.rows), Int32(k), 1,
                            input, Int32(k), m.values.baseAddress, Int32(k), 0, out + offset, Int32(stride))
            }
        }
    }

    // MARK: Attention

    private func attention(batch: ForwardBatch, qkv: UnsafeMutablePointer<Float>, width: Int, keys: UnsafeRawPointer, values: UnsafeRawPointer,
                           half: Bool, blockSize: Int, out: UnsafeMutablePointer<Float>) {
        let c = model.configuration
        batch.positions.withUnsafeBufferPointer { pos in
            batch.blockTables.withUnsafeBufferPointer { tables in
                items.withUnsafeBufferPointer { it in
                    // Work ≈ Σ rows × visible keys: only tiny steps stay on this thread (the pool's workers are
                    // spinning right after the QKV product, so handing them parts costs about a microsecond).
                    var work = 0
                    for item in it { work += (item.tokenEnd - item.tokenBegin) * Int(pos[item.tokenEnd - 1] + 1) }
                    work *= c.groupSize
                    var job = AttentionJob(
                        qkv: qkv, width: width, out: out, outWidth: c.queryWidth, keys: keys, values: values, half: half,
                        items: it.baseAddress!, itemCount: it.count, positions: pos.baseAddress!, tables: tables.baseAddress!,
                        scratch: scratch.attentionScratch.baseAddress!, scratchPerPart: scratch.attentionScratchPerPart,
                        visible: scratch.visible.baseAddress!, group: c.groupSize, headDim: c.headDimension, kvHeads: c.kvHeadCount,
                        blockSize: blockSize, scale: 1 / Float(c.headDimension).squareRoot())
                    let parts = min(threads, it.count, scratch.attentionParts)
                    if parts <= 1 || work < 256 || ikq_parallel_pooled(attentionPart, &job, Int32(parts)) != 0 {
                        attentionPart(&job, 0, 1)
                    }
                }
            }
        }
    }
}

/// One attention work item: query tokens `tokenBegin..<tokenEnd` of one sequence, the query heads of one KV head.
struct AttentionItem {
    var tokenBegin: Int
    var tokenEnd: Int
    var kvHead: Int
    var blockTableStart: Int
}

/// Everything one attention part needs, passed to the C pool as a context pointer.
struct AttentionJob {
    var qkv: UnsafeMutablePointer<Float>
    var width: Int
    var out: UnsafeMutablePointer<Float>
    var outWidth: Int
    /// K and V: Float, or IEEE binary16 bit patterns when `half`.
    var keys: UnsafeRawPointer
    var values: UnsafeRawPointer
    var half: Bool
    var items: UnsafePointer<AttentionItem>
    var itemCount: Int
    var positions: UnsafePointer<Int32>
    var tables: UnsafePointer<Int32>
    var scratch: UnsafeMutablePointer<Float>
    var scratchPerPart: Int
    var visible: UnsafeMutablePointer<Int64>
    var group: Int
    var headDim: Int
    var kvHeads: Int
    var blockSize: Int
    var scale: Float
}

/// Part `part` of `parts` of an attention job: items `part, part + parts, …`.
private let attentionPart: @convention(c) (UnsafeMutableRawPointer?, Int32, Int32) -> Void = { context, part, parts in
    let job = context!.load(as: AttentionJob.self)
    let d = job.headDim, g = job.group
    let qBuf = job.scratch + Int(part) * job.scratchPerPart
    let oBuf = qBuf + 64 * d
    let visible = job.visible + Int(part) * 64
    // Items come in runs of one per KV head (same sequence and query tile); a part takes whole runs,
    // round-robin, so one thread walks all heads of a sequence's blocks while their pages are warm.
    let run = job.kvHeads
    var i = Int(part) * run
    var inRun = 0
    while i < job.itemCount {
        let item = job.items[i]
        var rows = 0
        for t in item.tokenBegin..<item.tokenEnd {
            let src = job.qkv + t * job.width + item.kvHead * g * d
            (qBuf + rows * d).update(from: src, count: g * d)
            for r in 0..<g { visible[rows + r] = Int64(job.positions[t]) + 1 }
            rows += g
        }
        if job.half {
            let bs = job.blockSize
            _ = ikc_paged_attention_half(qBuf, Int64(rows), Int64(d), job.keys.assumingMemoryBound(to: UInt16.self), job.values.assumingMemoryBound(to: UInt16.self),
                                         Int64(bs), Int64(job.kvHeads * bs * d), Int64(d), Int64(item.kvHead * bs * d),
                                         job.tables + item.blockTableStart, visible, job.scale, oBuf)
        } else {
            _ = ikc_paged_attention(qBuf, Int64(rows), Int64(d), job.keys.assumingMemoryBound(to: Float.self), job.values.assumingMemoryBound(to: Float.self),
                                    Int64(job.blockSize), Int64(job.kvHeads * d), Int64(item.kvHead * d), job.tables + item.blockTableStart, visible, job.scale, oBuf)
        }
        rows = 0
        for t in item.tokenBegin..<item.tokenEnd {
            (job.out + t * job.outWidth + item.kvHead * g * d).update(from: oBuf + rows * d, count: g * d)
            rows += g
        }
        inRun += 1
        if inRun == run {
            inRun = 0
            i += (Int(parts) - 1) * run + 1
        } else {
            i += 1
        }
    }
}

/// Scratch buffers of a forward pass, grown to the largest batch seen.
private struct Scratch {
    var capacity = 0
    var logitCapacity = 0
    var x = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    var normed = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    var qkv = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    var attention = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    var tmp = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    var gateUp = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    var activation = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    var q8 = UnsafeMutableBufferPointer<Int8>(start: nil, count: 0)
    var qd = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    var qs = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    var attentionScratch = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    var visible = UnsafeMutableBufferPointer<Int64>(start: nil, count: 0)
    var attentionParts = 0
    var attentionScratchPerPart = 0

    func deallocate() {
        for b in [x, normed, qkv, attention, tmp, gateUp, activation, qd, qs, attentionScratch] { b.baseAddress?.deallocate() }
        q8.baseAddress?.deallocate()
        visible.baseAddress?.deallocate()
    }

    mutating func reserve(tokens: Int, logitRows: Int, config c: ModelConfiguration, attentionParts parts: Int) {
        let rows = max(tokens, logitRows, 1)
        if rows > capacity {
            let n = max(rows, capacity * 2)
            func grow<T>(_ b: inout UnsafeMutableBufferPointer<T>, _ count: Int, _ zero: T) {
                b.baseAddress?.deallocate()
                b = .allocate(capacity: count)
                b.initialize(repeating: zero)
            }
            let widest = max(c.hiddenSize, c.intermediateSize, c.queryWidth)
            grow(&x, n * c.hiddenSize, 0)
            grow(&normed, n * c.hiddenSize, 0)
            grow(&qkv, n * (c.queryWidth + 2 * c.kvWidth), 0)
            grow(&attention, n * c.queryWidth, 0)
            grow(&tmp, n * c.hiddenSize, 0)
            grow(&gateUp, n * 2 * c.intermediateSize, 0)
            grow(&activation, n * c.intermediateSize, 0)
            grow(&q8, n * widest, 0)
            grow(&qd, n * widest / 32, 0)
            grow(&qs, n * widest / 32, 0)
            capacity = n
        }
        if parts > attentionParts {
            attentionScratch.baseAddress?.deallocate()
            visible.baseAddress?.deallocate()
            attentionScratchPerPart = 2 * 64 * c.headDimension
            attentionScratch = .allocate(capacity: parts * attentionScratchPerPart)
            attentionScratch.initialize(repeating: 0)
            visible = .allocate(capacity: parts * 64)
            visible.initialize(repeating: 0)
            attentionParts = parts
        }
    }
}

/// Accumulates the time between laps into a profile (no clock reads when disabled).
private struct PhaseClock {
    let enabled: Bool
    var last: UInt64
    init(enabled: Bool) {
        self.enabled = enabled
        last = enabled ? DispatchTime.now().uptimeNanoseconds : 0
    }
    mutating func lap(_ phase: ForwardProfile.Phase, _ profile: inout ForwardProfile) {
        guard enabled else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        profile.nanoseconds[phase, default: 0] += now - last
        last = now
    }
}
