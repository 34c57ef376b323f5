import CInferenceKitQuantKernels
import Dispatch
import Foundation
import TensorCore

/// The weights of a linear layer `y = x · Wᵀ` with `W` `[N, K]`: dense Float32 or quantized.
///
/// A decoder holds each projection as `any LinearWeights` (or generically as `some LinearWeights`),
/// so some layers can stay Float32 while others run quantized.
public protocol LinearWeights: Sendable {
    /// `K`, the input features.
    var inputFeatures: Int { get }
    /// `N`, the output features.
    var outputFeatures: Int { get }
    /// `x` `[..., K]` (e.g. `[B, T, K]`) → `[..., N]`.
    func apply(_ x: Tensor, backend: some ComputeBackend) throws -> Tensor
}

/// Float32 weights `[N, K]`, multiplied on the given `ComputeBackend` (`x · Wᵀ` via `transposeB`).
public struct DenseLinear: LinearWeights {
    public let weight: Tensor
    public init(weight: Tensor) throws {
        guard weight.rank == 2 else {
            throw QuantizationError(.invalidShape, "DenseLinear weight has shape \(weight.shape); expected [N, K]")
        }
        self.weight = weight
    }
    public var inputFeatures: Int { weight.shape[1] }
    public var outputFeatures: Int { weight.shape[0] }

    public func apply(_ x: Tensor, backend: some ComputeBackend) throws -> Tensor {
        let (rows, outShape) = try linearShapes(x, k: inputFeatures, n: outputFeatures)
        let y = try backend.matmul(x.reshaped([rows, inputFeatures]), weight, transposeA: false, transposeB: true)
        return try y.reshaped(outShape)
    }
}

func linearShapes(_ x: Tensor, k: Int, n: Int) throws -> (rows: Int, out: Shape) {
    guard x.rank >= 1, x.shape[x.rank - 1] == k else {
        throw QuantizationError(.invalidShape, "linear layer input has shape \(x.shape); its last dimension must be K = \(k)")
    }
    guard x.elementCount > 0 else { throw QuantizationError(.invalidShape, "linear layer input \(x.shape) is empty") }
    return (x.elementCount / k, Shape(Array(x.shape.dimensions.dropLast()) + [n]))
}

/// A ``QuantizedMatrix`` repacked once for the CPU kernels, computing `y = x · Wᵀ`.
///
/// Each call quantizes the activations once to 8-bit blocks of 32 (scale `max|x|/127`), then
/// multiplies with integer dot products into int32 (AVX-512 VNNI `VPDPBUSD`, AVX2 `VPMADDUBSW`, or
/// portable C, chosen at run time), one scale multiply per 32 weights, split over threads by
/// pairs of 8-row groups on a persistent pool whose threads spin briefly between products (see
/// `ikq_matmul_pooled`; a second concurrent caller uses Dispatch threads instead). The result differs from `dequantize()` followed by a Float32 matmul only
/// by the activation rounding: per block, `|Δy| ≤ Σ|w|·d_x/2` with `d_x = max|x_block|/127`.
///
/// The packed layout interleaves 8 rows in 4-byte runs so one 32-byte load feeds 8 rows, and two
/// such groups side by side so one 64-byte load feeds 16; a thread's share of rows is one contiguous
/// stream. It holds the same number of bytes as the format, padding rows to a multiple of 16.
public struct QuantizedLinear: LinearWeights {
    public let format: QuantizationFormat
    public let outputFeatures: Int
    public let inputFeatures: Int
    let storage: PackedStorage

    /// Bytes of the weights the kernels stream per product (the format's size).
    public var weightBytes: Int { format.byteCount(rows: outputFeatures, columns: inputFeatures) }

    /// Repacks `matrix` (`[N, K]`) for the kernels.
    public init(_ matrix: QuantizedMatrix) {
        format = matrix.format
        outputFeatures = matrix.rows
        inputFeatures = matrix.columns
        storage = PackedStorage.pack(matrix)
    }

    /// Repacks a block-format matrix (`Q8_0`, `Q4_0`, `Q4_1`) read straight from stored bytes — for
    /// example a memory-mapped GGUF tensor — without an intermediate copy. `parts` are stacked row-wise
    /// (each `[rows_i, columns]` in the format's row-major block layout), so fused projections such as
    /// Q|K|V become one matrix.
    ///
    /// `rowsPacked` is called every few hundred rows with the number of rows packed so far, so a loader
    /// can release the source pages it no longer needs while a large matrix is still being packed.
    package init(format: QuantizationFormat, columns: Int, parts: [(rows: Int, bytes: UnsafeRawBufferPointer)],
                 rowsPacked: ((Int) -> Void)? = nil) throws {
        guard format.isBlockFormat else {
            throw QuantizationError(.unsupportedFormat, "only Q8_0, Q4_0 and Q4_1 can be packed from stored bytes (got \(format))")
        }
        guard columns > 0, columns % 32 == 0 else {
            throw QuantizationError(.invalidShape, "a \(format) matrix needs a positive multiple of 32 columns (got \(columns))")
        }
        let rowBytes = format.byteCount(rows: 1, columns: columns)
        var starts: [UnsafePointer<UInt8>] = []
        for (i, part) in parts.enumerated() {
            guard part.rows > 0, part.bytes.count == part.rows * rowBytes, let base = part.bytes.baseAddress else {
                throw QuantizationError(.invalidData, "part \(i) holds \(part.bytes.count) bytes; \(part.rows) rows of \(columns) \(format) columns need \(part.rows * rowBytes)")
            }
            let p = base.assumingMemoryBound(to: UInt8.self)
            for r in 0..<part.rows { starts.append(p + r * rowBytes) }
        }
        self.format = format
        outputFeatures = starts.count
        inputFeatures = columns
        storage = starts.withUnsafeBufferPointer {
            PackedStorage(format: format, rows: $0.count, columns: columns, bytes: UnsafeBufferPointer(start: nil, count: 0), rowStarts: $0, rowsPacked: rowsPacked)
        }
    }

    /// `out[t·outStride + n] = Σ_k W[n, k]·x[t, k]` from activations already quantized by
    /// ``quantizeActivations(_:tokens:q:d:s:)`` — the allocation-free form a decoder's hot loop uses.
    package func multiply(q: UnsafePointer<Int8>, d: UnsafePointer<Float>, s: UnsafePointer<Float>, tokens: Int,
                          out: UnsafeMutablePointer<Float>, outStride: Int, threads: Int, isa: ISA = .active) {
        let groups = (outputFeatures + 7) / 8
        let chunks = max(1, min(threads, groups))
        var descriptor = storage.descriptor
        let isaCode = Int32(isa.rawValue)
        if chunks > 1, ikq_matmul_pooled(isaCode, &descriptor, q, d, s, Int64(tokens), out, Int64(outStride), Int32(clamping: chunks)) == 0 {
            withExtendedLifetime(storage) {}
            return
        }
        let qs = UnsafeSendablePointer(UnsafeMutablePointer(mutating: q))
        let ds = UnsafeSendablePointer(UnsafeMutablePointer(mutating: d))
        let ss = UnsafeSendablePointer(UnsafeMutablePointer(mutating: s))
        let os = UnsafeSendablePointer(out)
        let storage = self.storage
        let body: @Sendable (Int) -> Void = { i in
            var w = storage.descriptor
            let g0 = i == 0 ? 0 : (groups * i / chunks) & ~1
            let g1 = i == chunks - 1 ? groups : (groups * (i + 1) / chunks) & ~1
            ikq_matmul_isa(isaCode, &w, qs.pointer, ds.pointer, ss.pointer, Int64(tokens), os.pointer, Int64(outStride), Int64(g0), Int64(g1))
        }
        if chunks == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: chunks, execute: body) }
        withExtendedLifetime(storage) {}
    }

    /// Quantizes `x` `[tokens, K]` to the kernels' 8-bit activation blocks (`q` `[tokens, K]`, `d`, `s` `[tokens, K/32]`).
    package static func quantizeActivations(_ x: UnsafePointer<Float>, tokens: Int, columns: Int,
                                            q: UnsafeMutablePointer<Int8>, d: UnsafeMutablePointer<Float>, s: UnsafeMutablePointer<Float>) {
        ikq_quantize_activations(x, Int64(tokens), Int64(columns), q, d, s)
    }

    /// A deep copy with its own packed buffers (benchmarks rotate over distinct copies to stream from memory).
    package func duplicated() -> QuantizedLinear {
        QuantizedLinear(format: format, outputFeatures: outputFeatures, inputFeatures: inputFeatures, storage: storage.copy())
    }

    init(format: QuantizationFormat, outputFeatures: Int, inputFeatures: Int, storage: PackedStorage) {
        self.format = format
        self.outputFeatures = outputFeatures
        self.inputFeatures = inputFeatures
        self.storage = storage
    }

    /// The instruction-set path the kernels use on this machine (`avx512-vnni`, `avx2`, `scalar`).
    public static var activeISA: String { ISA.active.name }

    public func apply(_ x: Tensor, backend: some ComputeBackend) throws -> Tensor {
        try apply(x)
    }

    /// `x` `[..., K]` → `[..., N]` using `threads` threads (default: every core).
    public func apply(_ x: Tensor, threads: Int = HostCPU.activeProcessorCount) throws -> Tensor {
        try apply(x, threads: threads, isa: ISA.active)
    }

    /// `x` `[..., K]` → `[..., N]` on a given instruction-set path (capped at ``ISA/detected``).
    public func apply(_ x: Tensor, threads: Int, isa: ISA) throws -> Tensor {
        let (tokens, outShape) = try linearShapes(x, k: inputFeatures, n: outputFeatures)
        try x.checkFiniteQuantization("linear layer input")
        let k = inputFeatures, nb = k / 32
        var q = [Int8](repeating: 0, count: tokens * k)
        var d = [Float](repeating: 0, count: tokens * nb)
        var s = [Float](repeating: 0, count: tokens * nb)
        x.withUnsafeBufferPointer { xp in
            ikq_quantize_activations(xp.baseAddress, Int64(tokens), Int64(k), &q, &d, &s)
        }
        return try Tensor(shape: outShape) { out in
            try run(q: q, d: d, s: s, tokens: tokens, out: out, threads: threads, isa: isa)
        }
    }

    /// The kernel call on already quantized activations (`q` `[T, K]`, `d`/`s` `[T, K/32]`), writing `out` `[T, N]`.
    func run(q: [Int8], d: [Float], s: [Float], tokens: Int, out: UnsafeMutableBufferPointer<Float>, threads: Int, isa: ISA) throws {
        q.withUnsafeBufferPointer { qp in
            d.withUnsafeBufferPointer { dp in
                s.withUnsafeBufferPointer { sp in
                    multiply(q: qp.baseAddress!, d: dp.baseAddress!, s: sp.baseAddress!, tokens: tokens, out: out.baseAddress!,
                             outStride: outputFeatures, threads: threads, isa: isa)
                }
            }
        }
    }
}

/// A pointer handed to worker threads that write disjoint ranges of one buffer.
/// `@unchecked Sendable`: each worker touches only its own rows (groups of 8) and the caller waits for all.
struct UnsafeSendablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ p: UnsafeMutablePointer<T>) { pointer = p }
}

extension Tensor {
    func checkFiniteQuantization(_ name: String) throws {
        let bad = withUnsafeBufferPointer { p in p.firstIndex { !$0.isFinite } }
        if let i = bad {
            throw QuantizationError(.nonFinite, "\(name) of shape \(shape) holds \(scalars[i]) at flat index \(i); replace NaN/Inf values before calling")
        }
    }
}

/// The kernels' instruction-set paths.
public enum ISA: Int32, Sendable, CaseIterable {
    case scalar = 0, avx2 = 1, avx512VNNI = 2

    public var name: String {
        switch self {
        case .scalar: "scalar"
        case .avx2: "avx2"
        case .avx512VNNI: "avx512-vnni"
        }
    }
    /// The best path this CPU supports.
    public static var detected: ISA { ISA(rawValue: ikq_detected_isa()) ?? .scalar }
    /// The path in use.
    public static var active: ISA { ISA(rawValue: ikq_active_isa()) ?? .scalar }
    /// Selects a path for the whole process (capped at ``detected``); returns the one now active.
    /// Meant for tests and benchmarks comparing paths.
    @discardableResult
    public static func select(_ isa: ISA) -> ISA { ISA(rawValue: ikq_set_isa(isa.rawValue)) ?? .scalar }
}

/// The packed buffers of one matrix.
/// `@unchecked Sendable`: written only in `init`, read-only afterwards, freed in `deinit`.
final class PackedStorage: @unchecked Sendable {
    let codes: UnsafeMutableRawBufferPointer
    let scales: UnsafeMutableBufferPointer<UInt16>?
    let rowScales: UnsafeMutableBufferPointer<Float>?
    let mins: UnsafeMutableBufferPointer<UInt16>?
    let zeros: UnsafeMutableBufferPointer<UInt8>?
    let descriptor: ikq_packed_matrix

    /// Packs `m`. Block formats go through the row-pointer form below (rows are runs of blocks).
    static func pack(_ m: QuantizedMatrix) -> PackedStorage {
        m.bytes.withUnsafeBufferPointer { src in
            guard m.format.isBlockFormat else { return PackedStorage(format: m.format, rows: m.rows, columns: m.columns, bytes: src, rowStarts: nil) }
            let rowBytes = m.format.byteCount(rows: 1, columns: m.columns)
            let starts = (0..<m.rows).map { src.baseAddress! + $0 * rowBytes }
            return starts.withUnsafeBufferPointer { PackedStorage(format: m.format, rows: m.rows, columns: m.columns, bytes: src, rowStarts: $0) }
        }
    }

    /// The packer of every format. `bytes` holds an INT8/INT4 matrix in its own layout; block formats
    /// (`Q8_0`, `Q4_0`, `Q4_1`) are read row by row from `rowStarts` (each row `columns/32` blocks),
    /// so they can come straight from a memory-mapped file or from several tensors stacked row-wise.
    /// `rowsPacked` is called every 512 rows with the rows packed so far.
    init(format: QuantizationFormat, rows: Int, columns k: Int, bytes src: UnsafeBufferPointer<UInt8>,
         rowStarts: UnsafeBufferPointer<UnsafePointer<UInt8>>?, rowsPacked: ((Int) -> Void)? = nil) {
        precondition(!format.isBlockFormat || rowStarts?.count == rows, "block formats are packed from one pointer per row")
        let m = (format: format, rows: rows, columns: k)
        let nb = k / 32, groups = (rows + 7) / 8, pairs = (groups + 1) / 2
        let code8 = m.format.codeBits == 8
        let blockBytes = code8 ? 256 : 128
        codes = .allocate(byteCount: max(pairs * nb * 2 * blockBytes, 1), alignment: 64)
        codes.initializeMemory(as: UInt8.self, repeating: code8 ? 0x80 : 0)
        var shift = 0, kind: Int32
        switch m.format {
        case .q8_0, .int8PerChannel: kind = Int32(IKQ_WEIGHT_SIGNED8)
        case .q4_0: kind = Int32(IKQ_WEIGHT_OFFSET8)
        case .q4_1: kind = Int32(IKQ_WEIGHT_MIN)
        case let .int4Grouped(g, sym):
            kind = Int32(sym ? IKQ_WEIGHT_OFFSET8 : IKQ_WEIGHT_ZERO)
            shift = g == 128 ? 2 : g == 64 ? 1 : 0
        }
        let nsc = nb >> shift
        func alloc<T>(_ n: Int, _: T.Type) -> UnsafeMutableBufferPointer<T> {
            let p = UnsafeMutableBufferPointer<T>.allocate(capacity: max(n, 1))
            UnsafeMutableRawBufferPointer(p).initializeMemory(as: UInt8.self, repeating: 0)
            return p
        }
        // Side arrays hold 16 lanes per (pair, block or scale group): lane (g % 2) · 8 + row in group.
        let sc = m.format == .int8PerChannel ? nil : alloc(pairs * nsc * 16, UInt16.self)
        let rsc = m.format == .int8PerChannel ? alloc(pairs * 16, Float.self) : nil
        let mn = m.format == .q4_1 ? alloc(pairs * nb * 16, UInt16.self) : nil
        var zr: UnsafeMutableBufferPointer<UInt8>?
        if case .int4Grouped(_, false) = m.format { zr = alloc(pairs * nsc * 16, UInt8.self) }
        func side(_ g: Int, _ n: Int, _ i: Int) -> Int { ((g / 2) * n + i) * 16 + (g % 2) * 8 }
        let cp = codes.bindMemory(to: UInt8.self)

        do {
            var codes32 = [UInt8](repeating: 0, count: 32)  // one block's codes in k order
            for r in 0..<rows {
                if r % 512 == 0, r > 0 { rowsPacked?(r) }
                let g = r / 8, rr = r % 8
                let row = rowStarts?[r]
                for b in 0..<nb {
                    // Gather the block's codes (k order) and its scale/min/zero from the format's layout.
                    switch m.format {
                    case .q8_0:
                        let src = row!, o = b * 34
                        for j in 0..<32 { codes32[j] = src[o + 2 + j] ^ 0x80 }
                        sc![side(g, nsc, b) + rr] = UInt16(src[o]) | UInt16(src[o + 1]) << 8
                    case .int8PerChannel:
                        let o = rows * 4 + r * k + b * 32
                        for j in 0..<32 { codes32[j] = src[o + j] ^ 0x80 }
                        if b == 0 { rsc![g * 8 + rr] = IntegerFormats.readF32(src, r * 4) }
                    case .q4_0, .q4_1:
                        let bytesPer = m.format == .q4_0 ? 18 : 20
                        let src = row!, o = b * bytesPer
                        let qo = o + bytesPer - 16
                        for j in 0..<16 { codes32[j] = src[qo + j] & 0x0F; codes32[j + 16] = src[qo + j] >> 4 }
                        sc![side(g, nsc, b) + rr] = UInt16(src[o]) | UInt16(src[o + 1]) << 8
                        if m.format == .q4_1 { mn![side(g, nb, b) + rr] = UInt16(src[o + 2]) | UInt16(src[o + 3]) << 8 }
                    case let .int4Grouped(group, sym):
                        let L = IntegerFormats.Int4Layout(rows: rows, columns: k, group: group, symmetric: sym)
                        let qo = L.codesOffset + (r * k + b * 32) / 2
                        for j in 0..<16 { codes32[j] = src[qo + j] & 0x0F; codes32[j + 16] = src[qo + j] >> 4 }
                        let gi = r * L.groupsPerRow + (b >> shift)
                        sc![side(g, nsc, b >> shift) + rr] = UInt16(src[gi * 2]) | UInt16(src[gi * 2 + 1]) << 8
                        if !sym { zr![side(g, nsc, b >> shift) + rr] = src[L.zerosOffset + gi] }
                    }
                    // Scatter into the pair-interleaved layout: chunk j of group g sits in the pair's
                    // 64-byte chunk j, first half for even g, second half for odd g.
                    let base = ((g / 2) * nb + b) * 2 * blockBytes + (g % 2) * 32
                    if code8 {
                        for j in 0..<8 { for t in 0..<4 { cp[base + j * 64 + rr * 4 + t] = codes32[4 * j + t] } }
                    } else {
                        for j in 0..<4 {
                            for t in 0..<4 { cp[base + j * 64 + rr * 4 + t] = codes32[8 * j + t] | codes32[8 * j + 4 + t] << 4 }
                        }
                    }
                }
            }
        }
        scales = sc
        rowScales = rsc
        mins = mn
        zeros = zr
        descriptor = ikq_packed_matrix(
            rows: Int64(rows), cols: Int64(k), code_bits: code8 ? 8 : 4, weight_kind: kind, scale_shift: Int32(shift), reserved: 0,
            codes: UnsafePointer(cp.baseAddress), scales: sc.map { UnsafePointer($0.baseAddress!) },
            row_scales: rsc.map { UnsafePointer($0.baseAddress!) }, mins: mn.map { UnsafePointer($0.baseAddress!) },
            zeros: zr.map { UnsafePointer($0.baseAddress!) })
    }

    private init(copying o: PackedStorage) {
        func dup<T>(_ b: UnsafeMutableBufferPointer<T>?) -> UnsafeMutableBufferPointer<T>? {
            guard let b else { return nil }
            let n = UnsafeMutableBufferPointer<T>.allocate(capacity: b.count)
            _ = n.initialize(fromContentsOf: b)
            return n
        }
        codes = .allocate(byteCount: o.codes.count, alignment: 64)
        codes.copyMemory(from: UnsafeRawBufferPointer(o.codes))
        scales = dup(o.scales)
        rowScales = dup(o.rowScales)
        mins = dup(o.mins)
        zeros = dup(o.zeros)
        var d = o.descriptor
        d.codes = UnsafePointer(codes.bindMemory(to: UInt8.self).baseAddress)
        d.scales = scales.map { UnsafePointer($0.baseAddress!) }
        d.row_scales = rowScales.map { UnsafePointer($0.baseAddress!) }
        d.mins = mins.map { UnsafePointer($0.baseAddress!) }
        d.zeros = zeros.map { UnsafePointer($0.baseAddress!) }
        descriptor = d
    }

    func copy() -> PackedStorage { PackedStorage(copying: self) }

    deinit {
        codes.deallocate()
        scales?.deallocate()
        rowScales?.deallocate()
        mins?.deallocate()
        zeros?.deallocate()
    }
}
