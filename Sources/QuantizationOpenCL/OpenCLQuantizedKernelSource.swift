import Foundation
import Quantization

/// Generates the OpenCL C source of the quantized matmul kernels.
///
/// Every kernel computes `y[t, n] = Σ_k x[t, k] · w[n, k]` for a tile of `rows` output rows × `tokens`
/// tokens per work-item (CPU layout) or per work-group (GPU layout), decoding one 32-weight block at a
/// time into two 16-wide halves. The format-specific part is `decode`: it reads the block's scale `d`,
/// its additive term `o` (the weight is `d·code + o`), and the codes as two `float16`s. The tiles are
/// written out (one variable per row and token) rather than left to loops over private arrays, so the
/// device compiler keeps every accumulator in a register.
enum QuantKernelSource {
    /// How work is split; see ``kernel(_:_:rows:tokens:)``.
    enum Layout: Sendable { case cpu, gpu }

    /// A tile of output rows × tokens, and the local size the launch uses with it.
    struct Tile: Sendable, Hashable {
        let rows: Int
        let tokens: Int
        /// CPU: work-items per work-group along the rows (dimension 1). GPU: work-items per group sharing one tile.
        let local: Int
    }

    /// The tiles a layout launches: `decode` for one token, `batch` for more.
    ///
    /// CPU (measured with PoCL on a 2-core Zen 4, `Documentation/benchmarks/quant.md`): one row per work-item
    /// for decode, so each thread streams rows in memory order (several rows per work-item means several
    /// streams and ran ~2× slower), and a 2 × 8 tile for batches, which reads each weight block once per
    /// 8 tokens and spends two FMAs per 32 weights and token. GPU (never run on a GPU): 64 work-items per
    /// row pair split the blocks of K and reduce in local memory, 4 tokens per group for batches.
    static func tiles(_ layout: Layout) -> (decode: Tile, batch: Tile) {
        switch layout {
        case .cpu: (Tile(rows: 16, tokens: 1, local: 1), Tile(rows: 2, tokens: 8, local: 4))
        case .gpu: (Tile(rows: 2, tokens: 1, local: 64), Tile(rows: 2, tokens: 4, local: 64))
        }
    }

    /// The whole program for one layout: every family at both tiles.
    static func program(_ layout: Layout) -> (source: String, kernels: [String]) {
        let t = tiles(layout)
        var source = prelude, names: [String] = []
        for f in Family.allCases {
            for tile in [t.decode, t.batch] {
                source += kernel(f, layout, rows: tile.rows, tokens: tile.tokens)
                names.append(name(f, layout, rows: tile.rows, tokens: tile.tokens))
            }
        }
        return (source, names)
    }

    /// The byte layouts, one kernel family each.
    enum Family: String, CaseIterable, Sendable {
        case q8_0, q4_0, q4_1, int8, int4

        init(_ format: QuantizationFormat) {
            switch format {
            case .q8_0: self = .q8_0
            case .q4_0: self = .q4_0
            case .q4_1: self = .q4_1
            case .int8PerChannel: self = .int8
            case .int4Grouped: self = .int4
            }
        }

        /// Bytes per 32-weight block in the region the kernels walk (INT8 and INT4 walk only their codes).
        var blockBytes: Int {
            switch self {
            case .q8_0: 34
            case .q4_0: 18
            case .q4_1: 20
            case .int8: 32
            case .int4: 16
            }
        }

        /// Declarations once per row `r` (row index `n{r}`): `w{r}`, the first block of the row (GPU layout)
        /// or of the row's part of panel `pc` (`panel`: CPU layout, `cw` blocks per row in this panel).
        func rowSetup(_ r: Int, panel: Bool) -> String {
            let base = self == .int8 ? "__global const char *w\(r) = (__global const char *)(w + (size_t)N * 4)"
                : self == .int4 ? "__global const uchar *w\(r) = w + codes" : "__global const uchar *w\(r) = w"
            let offset = panel ? "((size_t)pc * N + (size_t)n\(r) * cw) * \(blockBytes)" : "(size_t)n\(r) * nb * \(blockBytes)"
            return "\(base) + \(offset);" + (self == .int4 ? " const size_t g\(r) = (size_t)n\(r) * groups;" : "")
        }

        /// Declarations once per work-item (`P0`, `P1` are the format parameters).
        var setup: String {
            switch self {
            case .q8_0, .q4_0, .q4_1, .int8: ""
            case .int4: "const int groups = K / P0; const size_t zeros = (size_t)N * groups * 2, codes = zeros + (P1 ? 0 : (size_t)N * groups);"
            }
        }

        /// True when the weight has an additive term `o` per block (Q4_1 minimum, INT4 zero point); Q4_0's
        /// fixed −8 is applied to the codes instead.
        var hasOffset: Bool { self == .q4_1 || self == .int4 }

        /// Decodes block `b` of row `r` into `d{r}` (scale), `o{r}` (offset) and `l{r}`, `h{r}` (codes 0–15, 16–31).
        /// `block` indexes the block from `row` (default `w{r}`); `global` is its index in the whole row (INT4 scales).
        func decode(_ r: Int, _ cpu: Bool, block b: String = "b", global: String = "b", row: String? = nil) -> String {
            let w = row ?? "w\(r)"
            func half(_ i: String, _ p: String) -> String { cpu ? "half_to_float(((__global const ushort *)\(p))[\(i)])" : "vload_half(\(i), (__global const half *)\(p))" }
            switch self {
            case .q8_0:
                return """
                __global const uchar *p\(r) = \(w) + \(b) * 34;
                            const float d\(r) = \(half("0", "p\(r)"));
                            const float16 l\(r) = convert_float16(vload16(0, (__global const char *)(p\(r) + 2))), h\(r) = convert_float16(vload16(0, (__global const char *)(p\(r) + 18)));
                """
            case .q4_0:
                // w = d·(u − 8): the offset is applied to the codes as signed bytes before the conversion.
                return """
                __global const uchar *p\(r) = \(w) + \(b) * 18;
                            const float d\(r) = \(half("0", "p\(r)"));
                            const uchar16 c\(r) = vload16(0, p\(r) + 2);
                            const float16 l\(r) = convert_float16(as_char16(c\(r) & (uchar16)(0x0F)) - (char16)(8)), h\(r) = convert_float16(as_char16(c\(r) >> (uchar16)(4)) - (char16)(8));
                """
            case .q4_1:
                // w = d·u + m.
                return """
                __global const uchar *p\(r) = \(w) + \(b) * 20;
                            const float d\(r) = \(half("0", "p\(r)")), o\(r) = \(half("1", "p\(r)"));
                            const uchar16 c\(r) = vload16(0, p\(r) + 4);
                            const float16 l\(r) = convert_float16(c\(r) & (uchar16)(0x0F)), h\(r) = convert_float16(c\(r) >> (uchar16)(4));
                """
            case .int8:
                return """
                const float16 l\(r) = convert_float16(vload16(0, \(w) + \(b) * 32)), h\(r) = convert_float16(vload16(1, \(w) + \(b) * 32));
                """
            case .int4:
                return """
                const size_t gi\(r) = g\(row == nil ? r : 0) + (size_t)((\(global)) * 32 / P0);
                            const float d\(r) = \(half("gi\(r)", "w"));
                            const float o\(r) = -d\(r) * (P1 ? 8.0f : (float)w[zeros + gi\(r)]);
                            const uchar16 c\(r) = vload16(0, \(w) + \(b) * 16);
                            const float16 l\(r) = convert_float16(c\(r) & (uchar16)(0x0F)), h\(r) = convert_float16(c\(r) >> (uchar16)(4));
                """
            }
        }

        /// The per-row factor applied at the store (INT8 per channel keeps one scale per row).
        func finalScale(_ r: Int) -> String {
            self == .int8 ? " * ((__global const float *)w)[n\(r)]" : ""
        }
    }

    static func name(_ f: Family, _ layout: Layout, rows: Int, tokens: Int) -> String {
        if layout == .cpu && tokens == 1 { return decodeName(f, rows: rows) }
        return "qmm_\(f.rawValue)_\(layout == .cpu ? "cpu" : "gpu")_r\(rows)_t\(tokens)"
    }

    /// A kernel for `rows` × `tokens` outputs.
    ///
    /// CPU layout: NDRange `[⌈T / tokens⌉, ⌈N / rows⌉ (rounded up to the local size)]` — tokens first, so
    /// consecutive work-groups reuse the same weight rows from cache; each work-item walks all blocks of its
    /// rows with `float16` accumulators per (row, token) that are summed once at the end, and PoCL compiles
    /// the explicit vectors to AVX-512 (work-groups of one work-item for decode keep its own cross-work-item
    /// vectorizer out of the way; larger decode groups ran ~2× slower).
    /// GPU layout: NDRange `[⌈N / rows⌉ · L, ⌈T / tokens⌉]` with local size `[L, 1]`, `L` a power of two
    /// ≤ 256; work-item `l` of a group takes blocks `l, l + L, …` with scalar accumulators, and the group
    /// sums them through local memory.
    static func kernel(_ f: Family, _ layout: Layout, rows: Int, tokens: Int) -> String {
        if layout == .cpu && tokens == 1 { return decodeKernel(f, rows: rows) }
        let rs = 0..<rows, ts = 0..<tokens
        let cpu = layout == .cpu
        let acc = cpu ? "float16" : "float"
        var s = "__kernel void \(name(f, layout, rows: rows, tokens: tokens))(__global const uchar *w, __global const float *x, __global float *y, int N, int K, int T, int P0, int P1"
        s += cpu ? ") {\n" : ", __local float *red) {\n"
        s += cpu ? "    const int row0 = get_global_id(1) * \(rows), tok0 = get_global_id(0) * \(tokens);\n"
            : "    const int row0 = get_group_id(0) * \(rows), tok0 = get_global_id(1) * \(tokens), lid = get_local_id(0), L = get_local_size(0);\n"
        if cpu { s += "    if (row0 >= N || tok0 >= T) return;\n" }
        s += "    const int nb = K / 32;\n    \(f.setup)\n"
        s += "    // Rows and tokens past the end are clamped (read again, never stored) so the loop has no branches.\n"
        for r in rs { s += "    const int n\(r) = min(row0 + \(r), N - 1);" + (cpu ? "\n" : " \(f.rowSetup(r, panel: false))\n") }
        for t in ts { s += "    __global const float *x\(t) = x + (size_t)min(tok0 + \(t), T - 1) * K;\n" }
        for r in rs { s += "    " + ts.map { "\(acc) a\(r)_\($0) = 0.0f;" }.joined(separator: " ") + "\n" }
        if cpu {
            // Panels of `panelBlocks` blocks: the weights of this panel for all rows are contiguous, and the
            // panel's activations stay in L1 while they stream past.
            s += "    for (int pc = 0; pc < nb; pc += \(panelBlocks)) {\n    const int cw = min(\(panelBlocks), nb - pc);\n"
            for r in rs { s += "    \(f.rowSetup(r, panel: true))\n" }
            s += "    for (int b = 0; b < cw; b++) {\n"
        } else {
            s += "    for (int b = lid; b < nb; b += L) {\n"
        }
        let xb = cpu ? "(pc + b)" : "b"
        // Decode the block of every row once, then use it for every token of the tile.
        for r in rs { s += f.decode(r, cpu, global: xb).split(separator: "\n").map { "        " + $0.trimmingCharacters(in: .whitespaces) + "\n" }.joined() }
        // A CPU tile of several tokens turns the codes into the dequantized weights first (d·q and d·u + o are exact
        // in Float32), so each token costs two FMAs per 32 weights.
        let scaled = cpu && tokens > 1 && f != .int8
        if scaled {
            for r in rs {
                s += f.hasOffset ? "        const float16 sl\(r) = fma(l\(r), (float16)d\(r), (float16)o\(r)), sh\(r) = fma(h\(r), (float16)d\(r), (float16)o\(r));\n"
                    : "        const float16 sl\(r) = l\(r) * d\(r), sh\(r) = h\(r) * d\(r);\n"
            }
        }
        for t in ts {
            s += "        {\n            const float16 xl = vload16(0, x\(t) + \(xb) * 32), xh = vload16(1, x\(t) + \(xb) * 32);\n"
            if scaled {
                for r in rs { s += "            a\(r)_\(t) = fma(sl\(r), xl, fma(sh\(r), xh, a\(r)_\(t)));\n" }
                s += "        }\n"
                continue
            }
            if f.hasOffset { s += "            const float16 xs = xl + xh;\(cpu ? "" : " const float sx = hsum16(xs);")\n" }
            for r in rs { s += "            " + accumulate(f, cpu, r, into: "a\(r)_\(t)") + "\n" }
            s += "        }\n"
        }
        s += cpu ? "    }\n    }\n" : "    }\n"
        if cpu {
            for r in rs {
                for t in ts {
                    s += "    if (row0 + \(r) < N && tok0 + \(t) < T) y[(size_t)(tok0 + \(t)) * N + row0 + \(r)] = hsum16(a\(r)_\(t))\(f.finalScale(r));\n"
                }
            }
        } else {
            // Tree reduction over the L work-items, one slot per (row, token).
            let m = rows * tokens
            for r in rs { for t in ts { s += "    red[\(r * tokens + t) * L + lid] = a\(r)_\(t);\n" } }
            s += "    for (int h = L / 2; h > 0; h >>= 1) {\n        barrier(CLK_LOCAL_MEM_FENCE);\n        if (lid < h) for (int i = 0; i < \(m); i++) red[i * L + lid] += red[i * L + lid + h];\n    }\n"
            s += "    if (lid == 0) {\n"
            for r in rs {
                for t in ts {
                    s += "        if (row0 + \(r) < N && tok0 + \(t) < T) y[(size_t)(tok0 + \(t)) * N + row0 + \(r)] = red[\(r * tokens + t) * L]\(f.finalScale(r));\n"
                }
            }
            s += "    }\n"
        }
        return s + "}\n"
    }

    /// `acc += block · x` for decoded block `r` against `xl`, `xh` (and `xs = xl + xh`, `sx = Σxs` when the format has offsets).
    static func accumulate(_ f: Family, _ cpu: Bool, _ r: Int, into a: String) -> String {
        let dot = "fma(l\(r), xl, h\(r) * xh)"
        switch (f, cpu) {
        case (.int8, true): return "\(a) = fma(l\(r), xl, fma(h\(r), xh, \(a)));"
        case (.int8, false): return "\(a) += hsum16(\(dot));"
        case (.q8_0, true), (.q4_0, true): return "\(a) = fma((float16)d\(r), \(dot), \(a));"
        case (.q8_0, false), (.q4_0, false): return "\(a) = fma(d\(r), hsum16(\(dot)), \(a));"
        case (_, true): return "\(a) = fma((float16)d\(r), \(dot), fma((float16)o\(r), xs, \(a)));"
        case (_, false): return "\(a) = fma(d\(r), hsum16(\(dot)), fma(o\(r), sx, \(a)));"
        }
    }

    /// Blocks per panel of the CPU layout. The CPU kernels read K in panels of 128 blocks (4096 weights):
    /// the upload reorders the blocks panel by panel (``panelize(_:)``) so that a panel of consecutive rows
    /// is one contiguous stream, and the panel's 16 KiB of activations stay in L1. Without panels, K = 14336
    /// decode ran at about half the rate of K = 4096 (its 56 KiB of activations came from L2 for every row).
    static let panelBlocks = 128

    /// The CPU decode kernel: work-item `i` computes rows `i·rows …` one after another, panel by panel, for
    /// token `get_global_id(0)` (one sequential stream per thread, few work-groups), two blocks per
    /// iteration into two accumulators so consecutive FMAs do not wait on each other. NDRange `[T, ⌈N / rows⌉]`.
    static func decodeKernel(_ f: Family, rows: Int) -> String {
        func body(_ r: Int, _ block: String) -> String {
            var s = f.decode(r, true, block: block, global: "(pc + \(block))", row: "w0").split(separator: "\n").map { "                " + $0.trimmingCharacters(in: .whitespaces) + "\n" }.joined()
            s += "                {\n                    const float16 xl = vload16(0, xc + \(block) * 32), xh = vload16(1, xc + \(block) * 32);\n"
            if f.hasOffset { s += "                    const float16 xs = xl + xh;\n" }
            return s + "                    " + accumulate(f, true, r, into: "a\(r)") + "\n                }\n"
        }
        var s = "__kernel void \(decodeName(f, rows: rows))(__global const uchar *w, __global const float *x, __global float *y, int N, int K, int T, int P0, int P1) {\n"
        s += "    const int row0 = get_global_id(1) * \(rows), tok = get_global_id(0);\n"
        s += "    if (row0 >= N || tok >= T) return;\n"
        s += "    const int nb = K / 32, count = min(\(rows), N - row0);\n    \(f.setup)\n"
        s += "    float out[\(rows)];\n    for (int i = 0; i < \(rows); i++) out[i] = 0.0f;\n"
        s += "    for (int pc = 0; pc < nb; pc += \(panelBlocks)) {\n"
        s += "        const int cw = min(\(panelBlocks), nb - pc);\n"
        s += "        __global const float *xc = x + (size_t)tok * K + pc * 32;\n"
        s += "        for (int i = 0; i < count; i++) {\n"
        s += "            const int n0 = row0 + i;\n"
        s += "            \(f.rowSetup(0, panel: true))\n"
        s += "            float16 a0 = 0.0f, a1 = 0.0f;\n            int b = 0;\n"
        s += "            for (; b + 1 < cw; b += 2) {\n" + body(0, "b") + body(1, "(b + 1)") + "            }\n"
        s += "            if (b < cw) {\n" + body(0, "b") + "            }\n"
        s += "            out[i] += hsum16(a0 + a1);\n        }\n    }\n"
        s += "    for (int i = 0; i < count; i++) {\n        const int n0 = row0 + i;\n"
        s += "        y[(size_t)tok * N + n0] = out[i]\(f.finalScale(0));\n"
        return s + "    }\n}\n"
    }

    /// The bytes a CPU-layout kernel reads: the header (INT8 scales; INT4 scales and zero points) unchanged, then
    /// the 32-weight blocks (or code groups) reordered panel by panel: for each panel of ``panelBlocks``
    /// blocks, every row's blocks of that panel in row order. Equal to `matrix.bytes` when K fits one panel.
    ///
    /// - Throws: `invalidData` when the byte count does not match the format and shape.
    static func panelize(_ matrix: QuantizedMatrix) throws -> [UInt8] {
        let n = matrix.rows, nb = matrix.columns / 32
        let family = Family(matrix.format)
        let header: Int
        switch matrix.format {
        case .int8PerChannel: header = n * 4
        case let .int4Grouped(g, symmetric): header = n * (matrix.columns / g) * (symmetric ? 2 : 3)
        case .q8_0, .q4_0, .q4_1: header = 0
        }
        let bs = family.blockBytes
        guard matrix.bytes.count == header + n * nb * bs else {
            throw QuantizationError(.invalidData, "\(matrix.format) matrix [\(n), \(matrix.columns)] holds \(matrix.bytes.count) bytes, not \(header + n * nb * bs); re-quantize it")
        }
        if nb <= panelBlocks { return matrix.bytes }
        var out = [UInt8](repeating: 0, count: matrix.bytes.count)
        matrix.bytes.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                d.update(from: s, count: header)
                var at = header
                for pc in stride(from: 0, to: nb, by: panelBlocks) {
                    let cw = min(panelBlocks, nb - pc)
                    for row in 0..<n {
                        (d + at).update(from: s + header + (row * nb + pc) * bs, count: cw * bs)
                        at += cw * bs
                    }
                }
            }
        }
        return out
    }

    static func decodeName(_ f: Family, rows: Int) -> String { "qmm_\(f.rawValue)_cpu_decode_r\(rows)" }

    static let prelude = """
    // Float16 bits to Float32 with integer operations: PoCL expands vload_half to a longer scalar sequence.
    // Exact for every input (normal, subnormal, zero, Inf, NaN).
    inline float half_to_float(ushort h) {
        const uint e = (h >> 10) & 0x1f, m = h & 0x3ff;
        const float sub = (float)m * 0x1p-24f;
        const uint normal = (((uint)h & 0x7fff) << 13) + (112u << 23), special = 0x7f800000u | (m << 13);
        const uint mag = e == 0 ? as_uint(sub) : e == 31 ? special : normal;
        return as_float(mag | ((uint)(h & 0x8000) << 16));
    }
    inline float hsum16(float16 v) {
        const float8 a = v.lo + v.hi;
        const float4 b = a.lo + a.hi;
        return (b.x + b.y) + (b.z + b.w);
    }

    """
}
