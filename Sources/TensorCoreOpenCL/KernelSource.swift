/// The OpenCL C source of every kernel, built once per device (see `OpenCLDeviceRuntime`).
///
/// Compile-time parameters (passed as `-D` build options):
/// - `TILE_RTS`: work-group edge of the GPU tiled matmul (16 → 256 work-items; 8 on small devices).
/// - `TILE_WPT`: outputs per work-item along each axis of the tiled matmul (tile = `TILE_RTS·TILE_WPT`).
///
/// The register-blocked CPU matmul uses fixed `8 × 32` blocks (sixteen `float16` accumulators).
enum KernelSource {
    /// Names of every kernel in ``source``; each is created once after the build.
    static let kernelNames = [
        "pack_a", "pack_b", "matmul_vector", "matmul_rows_bt", "matmul_rows_bn", "matmul_rows_reduce", "matmul_tiled",
        "attention", "attention_split", "attention_combine", "attention_blocked", "softmax_rows", "rms_norm_rows", "rope", "silu", "add_broadcast", "mul_broadcast",
    ]

    /// Rows of one register block of the CPU matmul.
    static let vectorRows = 8
    /// Columns of one register block of the CPU matmul (two `float16`).
    static let vectorColumns = 32
    /// Work-items along M per work-group of the CPU matmul (they share a panel of b).
    static let vectorGroupRows = 16
    /// Largest rows of `a` per product for the few-row CPU kernels.
    static let fewRowsMax = 8
    /// Rows of `b` per work-item of `matmul_rows_bt`.
    static let rowsBT = 4
    /// Rows of k per work-item chunk of `matmul_rows_bn`, and columns per work-item (16 `float16`).
    static let rowsChunk = 128
    static let rowsColumns = 256

    /// Keys scored per online-softmax step in the row-wise attention kernel.
    static let attentionBlock = 32
    /// Most key ranges one row is split into by `attention_split` (the combine kernel's array size).
    static let attentionMaxSplits = 64
    /// Query rows per work-item of the register-blocked attention kernel.
    static let attentionQueryRows = 8
    /// Keys per step of the register-blocked attention kernel (one `float16`).
    static let attentionKeyBlock = 16

    static let source = #"""
#ifndef TILE_RTS
#define TILE_RTS 16
#endif
#ifndef TILE_WPT
#define TILE_WPT 4
#endif
#define TILE (TILE_RTS * TILE_WPT)
#define TILE_K 16
#define MR 8
#define NR 32
#define ATT_BLOCK 32

/* Horizontal max and sum of a float16. */
float hmax16(float16 v) {
    float8 a = fmax(v.lo, v.hi); float4 b = fmax(a.lo, a.hi); float2 c = fmax(b.lo, b.hi);
    return fmax(c.x, c.y);
}
float hsum16(float16 v) {
    float8 a = v.lo + v.hi; float4 b = a.lo + a.hi; float2 c = b.lo + b.hi;
    return c.x + c.y;
}


/* ---------------------------------------------------------------------------
 * Packing for the register-blocked matmul.
 * pack_a: A (M x K, or K x M when transposed) -> panels [batch][M/MR][K][MR],
 *         rows past M are zero.
 * pack_b: B (K x N, or N x K when transposed) -> panels [batch][N/NR][K][NR],
 *         columns past N are zero.
 * global: (K rounded up to the local size, panels, batch)
 * ------------------------------------------------------------------------- */
__kernel void pack_a(__global const float* a, __global float* ap,
                     int M, int K, int transA, int aBatchStride, int panels) {
    int k = get_global_id(0), p = get_global_id(1), batch = get_global_id(2);
    if (k >= K) return;
    __global const float* src = a + (long)batch * aBatchStride;
    __global float* dst = ap + (((long)batch * panels + p) * K + k) * MR;
    for (int r = 0; r < MR; r++) {
        int i = p * MR + r;
        float v = 0.0f;
        if (i < M) v = transA ? src[(long)k * M + i] : src[(long)i * K + k];
        dst[r] = v;
    }
}

__kernel void pack_b(__global const float* b, __global float* bp,
                     int N, int K, int transB, int bBatchStride, int panels, int nr) {
    int k = get_global_id(0), p = get_global_id(1), batch = get_global_id(2);
    if (k >= K) return;
    __global const float* src = b + (long)batch * bBatchStride;
    __global float* dst = bp + (((long)batch * panels + p) * K + k) * nr;
    for (int c = 0; c < nr; c++) {
        int j = p * nr + c;
        float v = 0.0f;
        if (j < N) v = transB ? src[(long)j * K + k] : src[(long)k * N + j];
        dst[c] = v;
    }
}

/* ---------------------------------------------------------------------------
 * Register-blocked matmul for CPU devices (PoCL and friends).
 * Each work-item computes an MR x NR = 8 x 32 block of C in sixteen float16 accumulators (two per row).
 * Per step of k it reads 8 consecutive floats of A (a packed panel, or the raw transposed A when
 * M % 8 == 0) and 32 of B (always a packed panel), then does 16 vector FMAs. Only the store checks edges.
 * Work-groups of 16 work-items along M share one panel of B while it is hot in cache.
 * global: (N panels, M panels rounded up to the local size, batch)
 * ------------------------------------------------------------------------- */
#define STORE_ROW2(r, lo, hi) \
    if (i0 + r < M) { \
        __global float* crow = cb + (long)(i0 + r) * N + j0; \
        if (fullN) { vstore16(lo, 0, crow); vstore16(hi, 1, crow); } \
        else { float t[NR]; vstore16(lo, 0, t); vstore16(hi, 1, t); for (int c = 0; c < N - j0; c++) crow[c] = t[c]; } \
    }
#define STEP2(r, s) { float16 x = (float16)(a.s); c##r##a = mad(x, b0, c##r##a); c##r##b = mad(x, b1, c##r##b); }

__kernel void matmul_vector(__global const float* A, __global const float* B, __global float* C,
                              int M, int N, int K,
                              int aPanelStride, int aKStride, int aBatchStride,
                              int bPanelStride, int bKStride, int bBatchStride,
                              int mPanels) {
    int jp = get_global_id(0), ip = get_global_id(1), batch = get_global_id(2);
    if (ip >= mPanels) return;
    __global const float* ap = A + (long)batch * aBatchStride + (long)ip * aPanelStride;
    __global const float* bp = B + (long)batch * bBatchStride + (long)jp * bPanelStride;
    float16 c0a = 0.0f, c1a = 0.0f, c2a = 0.0f, c3a = 0.0f, c4a = 0.0f, c5a = 0.0f, c6a = 0.0f, c7a = 0.0f;
    float16 c0b = 0.0f, c1b = 0.0f, c2b = 0.0f, c3b = 0.0f, c4b = 0.0f, c5b = 0.0f, c6b = 0.0f, c7b = 0.0f;
    for (int k = 0; k < K; k++) {
        __global const float* bk = bp + (long)k * bKStride;
        float16 b0 = vload16(0, bk), b1 = vload16(1, bk);
        float8 a = vload8(0, ap + (long)k * aKStride);
        STEP2(0, s0) STEP2(1, s1) STEP2(2, s2) STEP2(3, s3) STEP2(4, s4) STEP2(5, s5) STEP2(6, s6) STEP2(7, s7)
    }
    int i0 = ip * MR, j0 = jp * NR;
    int fullN = j0 + NR <= N;
    __global float* cb = C + (long)batch * M * N;
    STORE_ROW2(0, c0a, c0b) STORE_ROW2(1, c1a, c1b) STORE_ROW2(2, c2a, c2b) STORE_ROW2(3, c3a, c3b)
    STORE_ROW2(4, c4a, c4b) STORE_ROW2(5, c5a, c5b) STORE_ROW2(6, c6a, c6b) STORE_ROW2(7, c7a, c7b)
}

/* ---------------------------------------------------------------------------
 * Few-row matmul for CPU devices (M <= 8 rows of a per product: decode steps, GEMV).
 * With so few rows the product is a stream over b; these kernels read b contiguously instead of
 * packing it (which would add two passes over the whole of b).
 *
 * matmul_rows_bt: b is [N, K] (transposed weights). Each work-item owns 4 rows of b and computes
 *   their dot products with every row of a, 16 values of k at a time.  global: (ceil(N/4) rounded, batch)
 * matmul_rows_bn: b is [K, N] with N % 16 == 0. Each work-item owns 256 columns and a chunk of RC rows
 *   of k, keeping 16 float16 accumulators per row of a; partial sums go to part[batch][chunk][M][N] and
 *   matmul_rows_reduce adds the chunks.  global: (ceil(N/256), ceil(K/RC), batch)
 * ------------------------------------------------------------------------- */
#define RB 4
#define RC 128
#define RW 16

__kernel void matmul_rows_bt(__global const float* A, __global const float* B, __global float* C,
                             int M, int N, int K, int aBatchStride, int bBatchStride) {
    int g = get_global_id(0), batch = get_global_id(1);
    int n0 = g * RB;
    if (n0 >= N) return;
    __global const float* a = A + (long)batch * aBatchStride;
    __global const float* b = B + (long)batch * bBatchStride;
    __global const float* brow[RB];
    #pragma unroll
    for (int c = 0; c < RB; c++) brow[c] = b + (long)min(n0 + c, N - 1) * K;   /* rows past N repeat; not stored */
    int k16 = K / 16 * 16;
    for (int m = 0; m < M; m++) {
        __global const float* arow = a + (long)m * K;
        float16 acc[RB];
        #pragma unroll
        for (int c = 0; c < RB; c++) acc[c] = 0.0f;
        for (int k = 0; k < k16; k += 16) {
            float16 x = vload16(0, arow + k);
            #pragma unroll
            for (int c = 0; c < RB; c++) acc[c] = mad(x, vload16(0, brow[c] + k), acc[c]);
        }
        __global float* crow = C + ((long)batch * M + m) * N;
        #pragma unroll
        for (int c = 0; c < RB; c++) {
            if (n0 + c < N) {
                float t = hsum16(acc[c]);
                for (int k = k16; k < K; k++) t = mad(arow[k], brow[c][k], t);
                crow[n0 + c] = t;
            }
        }
    }
}

__kernel void matmul_rows_bn(__global const float* A, __global const float* B, __global float* part,
                             int M, int N, int K, int aBatchStride, int bBatchStride, int chunks) {
    int jb = get_global_id(0), chunk = get_global_id(1), batch = get_global_id(2);
    int j0 = jb * RW * 16;
    if (j0 >= N) return;
    int k0 = chunk * RC, k1 = min(K, k0 + RC);
    __global const float* a = A + (long)batch * aBatchStride;
    __global const float* b = B + (long)batch * bBatchStride + j0;
    int vectors = min(RW, (N - j0) / 16);
    for (int m = 0; m < M; m++) {
        float16 acc[RW];
        #pragma unroll
        for (int v = 0; v < RW; v++) acc[v] = 0.0f;
        for (int k = k0; k < k1; k++) {
            float16 x = (float16)(a[(long)m * K + k]);
            __global const float* bk = b + (long)k * N;
            /* Constant indices only (the guard is uniform), so acc stays in registers. */
            #pragma unroll
            for (int v = 0; v < RW; v++) if (v < vectors) acc[v] = mad(x, vload16(v, bk), acc[v]);
        }
        __global float* prow = part + (((long)batch * chunks + chunk) * M + m) * N + j0;
        #pragma unroll
        for (int v = 0; v < RW; v++) if (v < vectors) vstore16(acc[v], v, prow);
    }
}

/* c[batch][m][n] = sum over chunks of part[batch][chunk][m][n].  global: (M*N rounded, batch) */
__kernel void matmul_rows_reduce(__global const float* part, __global float* C, int MN, int chunks) {
    int i = get_global_id(0), batch = get_global_id(1);
    if (i >= MN) return;
    __global const float* p = part + (long)batch * chunks * MN + i;
    float t = 0.0f;
    for (int c = 0; c < chunks; c++) t += p[(long)c * MN];
    C[(long)batch * MN + i] = t;
}

/* ---------------------------------------------------------------------------
 * Local-memory tiled matmul for GPUs.
 * A work-group of TILE_RTS x TILE_RTS work-items computes a TILE x TILE block
 * of C; each work-item owns TILE_WPT x TILE_WPT outputs strided by TILE_RTS.
 * K advances in steps of TILE_K; tiles are staged in local memory with zero
 * fill past the edges, so any M, N, K and both transposes work.
 * global: (ceil(N/TILE)*TILE_RTS, ceil(M/TILE)*TILE_RTS, batch), local: (TILE_RTS, TILE_RTS, 1)
 * ------------------------------------------------------------------------- */
__kernel __attribute__((reqd_work_group_size(TILE_RTS, TILE_RTS, 1)))
void matmul_tiled(__global const float* A, __global const float* B, __global float* C,
                  int M, int N, int K, int transA, int transB,
                  int aBatchStride, int bBatchStride) {
    __local float As[TILE_K][TILE + 1];
    __local float Bs[TILE_K][TILE + 1];
    int tn = get_local_id(0), tm = get_local_id(1);
    int offN = get_group_id(0) * TILE, offM = get_group_id(1) * TILE;
    int batch = get_global_id(2);
    int tid = tm * TILE_RTS + tn;
    __global const float* a = A + (long)batch * aBatchStride;
    __global const float* b = B + (long)batch * bBatchStride;
    float acc[TILE_WPT][TILE_WPT];
    for (int x = 0; x < TILE_WPT; x++)
        for (int y = 0; y < TILE_WPT; y++) acc[x][y] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += TILE_K) {
        for (int l = tid; l < TILE_K * TILE; l += TILE_RTS * TILE_RTS) {
            /* Consecutive work-items read consecutive addresses of the source layout. */
            int kk, mm;
            if (transA) { kk = l / TILE; mm = l % TILE; } else { mm = l / TILE_K; kk = l % TILE_K; }
            int gi = offM + mm, gk = k0 + kk;
            float v = 0.0f;
            if (gi < M && gk < K) v = transA ? a[(long)gk * M + gi] : a[(long)gi * K + gk];
            As[kk][mm] = v;
            int nn;
            if (transB) { nn = l / TILE_K; kk = l % TILE_K; } else { kk = l / TILE; nn = l % TILE; }
            int gj = offN + nn;
            gk = k0 + kk;
            float w = 0.0f;
            if (gj < N && gk < K) w = transB ? b[(long)gj * K + gk] : b[(long)gk * N + gj];
            Bs[kk][nn] = w;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int kk = 0; kk < TILE_K; kk++) {
            float breg[TILE_WPT];
            for (int y = 0; y < TILE_WPT; y++) breg[y] = Bs[kk][tn + y * TILE_RTS];
            for (int x = 0; x < TILE_WPT; x++) {
                float av = As[kk][tm + x * TILE_RTS];
                for (int y = 0; y < TILE_WPT; y++) acc[x][y] = mad(av, breg[y], acc[x][y]);
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    __global float* c = C + (long)batch * M * N;
    for (int x = 0; x < TILE_WPT; x++) {
        int i = offM + tm + x * TILE_RTS;
        if (i >= M) continue;
        for (int y = 0; y < TILE_WPT; y++) {
            int j = offN + tn + y * TILE_RTS;
            if (j < N) c[(long)i * N + j] = acc[x][y];
        }
    }
}

/* ---------------------------------------------------------------------------
 * Row-wise fused attention with online softmax (the GPU kernel): one pass over K and V per query row.
 * q: [B, Hq, Tq, D], k/v: [B, Hkv, Tk, D], out: [B, Hq, Tq, D].
 * Query head h reads kv head h / (Hq / Hkv). Causal: query i sees keys j <= i + Tk - Tq.
 * attend_range scores keys [j0, j1) ATT_BLOCK at a time; the running max m, normaliser l and the
 * unnormalised output row are rescaled once per block by exp(m_old - m_new). The output row lives in a
 * scratch buffer laid out [D][rows] (element x of a row at acc[x * stride]), so neighbouring work-items
 * (neighbouring rows) touch neighbouring addresses: coalesced on GPUs. All rows of a work-group read
 * the same key at the same time (one broadcast load).
 *
 * attention: one work-item per row over all visible keys, then out = acc / l.  global: (Tq, Hq, B)
 * attention_split + attention_combine (decode with few rows, "flash decoding"): the keys of each row
 *   are split into `splits` ranges of `per` keys, one work-item each, writing its unnormalised row and
 *   (m, l); the combine kernel merges them: out = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s with
 *   M = max_s m_s over non-empty ranges.  global: (Tq, Hq * splits, B), then (Tq, Hq, B)
 * ------------------------------------------------------------------------- */
void attend_range(__global const float* qrow, __global const float* kb, __global const float* vb,
                  __global float* acc, long stride, int j0, int j1, int D, float scale,
                  float* mOut, float* lOut) {
    for (int x = 0; x < D; x++) acc[x * stride] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    float s[ATT_BLOCK];
    for (int jb = j0; jb < j1; jb += ATT_BLOCK) {
        int n = min(ATT_BLOCK, j1 - jb);
        float bm = -INFINITY;
        for (int jj = 0; jj < n; jj++) {
            __global const float* krow = kb + (long)(jb + jj) * D;
            float dot = 0.0f;
            for (int x = 0; x < D; x++) dot = mad(qrow[x], krow[x], dot);
            s[jj] = dot * scale;
            bm = fmax(bm, s[jj]);
        }
        float mNew = fmax(m, bm);
        float corr = exp(m - mNew);
        l *= corr;
        for (int jj = 0; jj < n; jj++) { s[jj] = exp(s[jj] - mNew); l += s[jj]; }
        __global const float* vblock = vb + (long)jb * D;
        for (int x = 0; x < D; x++) {
            float o = acc[x * stride] * corr;
            for (int jj = 0; jj < n; jj++) o = mad(s[jj], vblock[(long)jj * D + x], o);
            acc[x * stride] = o;
        }
        m = mNew;
    }
    *mOut = m;
    *lOut = l;
}

/* acc: scratch [D][R] with R = B*Hq*Tq. */
__kernel void attention(__global const float* q, __global const float* k, __global const float* v,
                        __global float* acc, __global float* out, int Hq, int Hkv, int Tq, int Tk, int D,
                        int causal, float scale, int R) {
    int i = get_global_id(0), h = get_global_id(1), b = get_global_id(2);
    if (i >= Tq) return;
    int kvh = h / (Hq / Hkv);
    long row = ((long)b * Hq + h) * Tq + i;
    __global const float* qrow = q + row * D;
    __global const float* kb = k + ((long)b * Hkv + kvh) * (long)Tk * D;
    __global const float* vb = v + ((long)b * Hkv + kvh) * (long)Tk * D;
    int visible = causal ? min(Tk, i + Tk - Tq + 1) : Tk;
    float m, l;
    attend_range(qrow, kb, vb, acc + row, R, 0, visible, D, scale, &m, &l);
    float inv = 1.0f / l;
    __global float* orow = out + row * D;
    for (int x = 0; x < D; x++) orow[x] = acc[(long)x * R + row] * inv;
}

#define MAX_SPLITS 64

/* partO: [D][R] with R = B*Hq*splits*Tq; partML: [R][2]. */
__kernel void attention_split(__global const float* q, __global const float* k, __global const float* v,
                              __global float* partO, __global float* partML,
                              int Hq, int Hkv, int Tq, int Tk, int D, int causal, float scale,
                              int splits, int per, int R) {
    int i = get_global_id(0), hs = get_global_id(1), b = get_global_id(2);
    if (i >= Tq) return;
    int h = hs / splits, split = hs % splits;
    int kvh = h / (Hq / Hkv);
    __global const float* qrow = q + (((long)b * Hq + h) * Tq + i) * D;
    __global const float* kb = k + ((long)b * Hkv + kvh) * (long)Tk * D;
    __global const float* vb = v + ((long)b * Hkv + kvh) * (long)Tk * D;
    int visible = causal ? min(Tk, i + Tk - Tq + 1) : Tk;
    int j0 = split * per, j1 = min(visible, j0 + per);
    long row = (((long)b * Hq + h) * splits + split) * Tq + i;
    float m, l;
    attend_range(qrow, kb, vb, partO + row, R, j0, j1, D, scale, &m, &l);   /* empty range: m = -inf, l = 0 */
    partML[row * 2] = m;
    partML[row * 2 + 1] = l;
}

__kernel void attention_combine(__global const float* partO, __global const float* partML, __global float* out,
                                int Hq, int Tq, int D, int splits, int R) {
    int i = get_global_id(0), h = get_global_id(1), b = get_global_id(2);
    if (i >= Tq) return;
    long base = ((long)b * Hq + h) * splits;
    float M = -INFINITY;
    for (int s = 0; s < splits; s++) {
        long row = (base + s) * Tq + i;
        if (partML[row * 2 + 1] > 0.0f) M = fmax(M, partML[row * 2]);
    }
    float w[MAX_SPLITS];
    float L = 0.0f;
    for (int s = 0; s < splits; s++) {
        long row = (base + s) * Tq + i;
        float l = partML[row * 2 + 1];
        w[s] = l > 0.0f ? exp(partML[row * 2] - M) : 0.0f;
        L += w[s] * l;
    }
    float inv = 1.0f / L;
    __global float* orow = out + (((long)b * Hq + h) * Tq + i) * D;
    for (int x = 0; x < D; x++) {
        float acc = 0.0f;
        for (int s = 0; s < splits; s++) {
            if (w[s] != 0.0f) acc = mad(w[s], partO[(long)x * R + (base + s) * Tq + i], acc);
        }
        orow[x] = acc * inv;
    }
}

/* ---------------------------------------------------------------------------
 * Register-blocked attention for CPU devices.
 * One work-item per block of QR = 8 rows of one kv head, the rows running over the (query head of the
 * group, query index) pairs, so GQA heads that share K/V share its loads (decode with Tq = 1 and 4 heads
 * per kv head fills half a block instead of one row in eight). Per block of KB = 16 keys:
 *   S (8 x 16) = Q_rows . K[j0:j0+16]^T: dot products 16 dimensions at a time (float16), reduced per
 *     (row, key); scaled; masked (causal rows see keys j <= i + Tk - Tq; keys past Tk none);
 *   online softmax per row: running max m and normaliser l, corr = exp(m_old - m_new);
 *   O (8 x D, in the acc scratch rows) = O * corr + P . V[j0:j0+16, :], 16 dimensions at a time in
 *     eight float16 registers.
 * Finally out = O / l for the rows that exist. (Pre-transposing K to [D, Tk] for broadcast-FMA scores
 * measured slower: the transpose costs two extra passes over K, which dominates decode.)
 * global: (ceil(group*Tq/8), Hkv, B)
 * ------------------------------------------------------------------------- */
#define QR 8
#define KB 16

__kernel void attention_blocked(__global const float* q, __global const float* k, __global const float* v,
                                __global float* acc, __global float* out,
                                int Hq, int Hkv, int Tq, int Tk, int rowsPad, int D,
                                int causal, float scale) {
    int blk = get_global_id(0), kvh = get_global_id(1), b = get_global_id(2);
    int group = Hq / Hkv;
    int rows = group * Tq;                    /* virtual rows of this kv head: (head in group, query) */
    int v0 = blk * QR;
    if (v0 >= rows) return;
    __global const float* kh = k + ((long)b * Hkv + kvh) * (long)Tk * D;
    __global const float* vh = v + ((long)b * Hkv + kvh) * (long)Tk * D;
    __global float* oh = acc + (((long)b * Hkv + kvh) * rowsPad + v0) * D;
    int offset = Tk - Tq;

    __global const float* qrow[QR];
    int lim[QR];
    float m[QR], l[QR];
    int maxLim = 0;
    #pragma unroll
    for (int r = 0; r < QR; r++) {
        int vr = min(v0 + r, rows - 1);       /* rows past the end repeat the last row; never stored */
        int hh = kvh * group + vr / Tq, i = vr % Tq;
        qrow[r] = q + (((long)b * Hq + hh) * Tq + i) * D;
        lim[r] = causal ? min(Tk, i + offset + 1) : Tk;
        maxLim = max(maxLim, lim[r]);
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    for (int x = 0; x < QR * D; x++) oh[x] = 0.0f;

    const int16 iota = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    float p[QR][KB];
    for (int j0 = 0; j0 < maxLim; j0 += KB) {
        float16 s[QR];
        #pragma unroll
        for (int r = 0; r < QR; r++) s[r] = 0.0f;
        int n = min(KB, Tk - j0);
        /* Keys in place ([Tk, D] rows): dot products 16 dimensions at a time, reduced per (row, key). */
        float sc[QR][KB];
        for (int jj = 0; jj < KB; jj++) {
            float16 part[QR];
            float tail[QR];
            #pragma unroll
            for (int r = 0; r < QR; r++) { part[r] = 0.0f; tail[r] = 0.0f; }
            if (jj < n) {
                __global const float* krow = kh + (long)(j0 + jj) * D;
                int d = 0;
                for (; d + 16 <= D; d += 16) {
                    float16 kv = vload16(0, krow + d);
                    #pragma unroll
                    for (int r = 0; r < QR; r++) part[r] = mad(vload16(0, qrow[r] + d), kv, part[r]);
                }
                for (; d < D; d++) {
                    #pragma unroll
                    for (int r = 0; r < QR; r++) tail[r] = mad(qrow[r][d], krow[d], tail[r]);
                }
            }
            #pragma unroll
            for (int r = 0; r < QR; r++) sc[r][jj] = hsum16(part[r]) + tail[r];
        }
        #pragma unroll
        for (int r = 0; r < QR; r++) s[r] = vload16(0, sc[r]);
        int16 keyIndex = iota + j0;
        float corr[QR];
        #pragma unroll
        for (int r = 0; r < QR; r++) {
            float16 sr = select((float16)(-INFINITY), s[r] * scale, keyIndex < (int16)(lim[r]));
            float mNew = fmax(m[r], hmax16(sr));
            corr[r] = exp(m[r] - mNew);
            float16 pr = exp(sr - mNew);
            l[r] = l[r] * corr[r] + hsum16(pr);
            m[r] = mNew;
            vstore16(pr, 0, p[r]);
        }
        __global const float* vb = vh + (long)j0 * D;
        int d0 = 0;
        for (; d0 + 16 <= D; d0 += 16) {
            float16 o[QR];
            #pragma unroll
            for (int r = 0; r < QR; r++) o[r] = vload16(0, oh + r * D + d0) * corr[r];
            for (int jj = 0; jj < n; jj++) {
                float16 vv = vload16(0, vb + (long)jj * D + d0);
                #pragma unroll
                for (int r = 0; r < QR; r++) o[r] = mad((float16)(p[r][jj]), vv, o[r]);
            }
            #pragma unroll
            for (int r = 0; r < QR; r++) vstore16(o[r], 0, oh + r * D + d0);
        }
        for (int d = d0; d < D; d++) {
            for (int r = 0; r < QR; r++) {
                float o = oh[r * D + d] * corr[r];
                for (int jj = 0; jj < n; jj++) o = mad(p[r][jj], vb[(long)jj * D + d], o);
                oh[r * D + d] = o;
            }
        }
    }
    for (int r = 0; r < QR && v0 + r < rows; r++) {
        int vr = v0 + r, hh = kvh * group + vr / Tq, i = vr % Tq;
        float inv = 1.0f / l[r];
        __global float* orow = out + (((long)b * Hq + hh) * Tq + i) * D;
        for (int x = 0; x < D; x++) orow[x] = oh[r * D + x] * inv;
    }
}

/* ---------------------------------------------------------------------------
 * Row-wise and elementwise kernels.
 * ------------------------------------------------------------------------- */
/* Softmax over rows of length D; an all -inf row gives zeros, a +inf/NaN max gives NaN.
 * Global sizes of these kernels are rounded up to a fixed local size (one PoCL specialisation each);
 * work-items past the end return. global: (rows) */
__kernel void softmax_rows(__global const float* x, __global float* y, int D, int rows) {
    long r = get_global_id(0);
    if (r >= rows) return;
    __global const float* xr = x + r * D;
    __global float* yr = y + r * D;
    float m = -INFINITY;
    int nanSeen = 0;
    for (int j = 0; j < D; j++) { float t = xr[j]; nanSeen |= isnan(t); m = fmax(m, t); }
    if (nanSeen || isinf(m)) {
        float fill = (!nanSeen && m < 0.0f) ? 0.0f : NAN;
        for (int j = 0; j < D; j++) yr[j] = fill;
        return;
    }
    float sum = 0.0f;
    for (int j = 0; j < D; j++) { float e = exp(xr[j] - m); yr[j] = e; sum += e; }
    float inv = 1.0f / sum;
    for (int j = 0; j < D; j++) yr[j] *= inv;
}

/* y = x / sqrt(mean(x^2) + eps) * w over rows of length D. global: (rows) */
__kernel void rms_norm_rows(__global const float* x, __global const float* w, __global float* y,
                            int D, float eps, int rows) {
    long r = get_global_id(0);
    if (r >= rows) return;
    __global const float* xr = x + r * D;
    __global float* yr = y + r * D;
    float ss = 0.0f;
    for (int j = 0; j < D; j++) ss = mad(xr[j], xr[j], ss);
    float inv = rsqrt(ss / (float)D + eps);
    for (int j = 0; j < D; j++) yr[j] = xr[j] * inv * w[j];
}

/* Rotary embedding. x: [B, H, T, D]; cs: [P, D/2, 2] (cos, sin) per position entry,
 * P = T (shared positions) or B*T (per sequence). interleaved: pairs (2i, 2i+1), else (i, i+D/2).
 * global: (B*H*T*D/2, rounded up); total = B*H*T*D/2 */
__kernel void rope(__global const float* x, __global const float* cs, __global float* y,
                   int H, int T, int D, int perSequence, int interleaved, long total) {
    long g = get_global_id(0);
    if (g >= total) return;
    int hd = D / 2;
    int i = (int)(g % hd);
    long row = g / hd;
    int t = (int)(row % T);
    int b = (int)(row / ((long)H * T));
    long p = perSequence ? (long)b * T + t : t;
    float c = cs[(p * hd + i) * 2], s = cs[(p * hd + i) * 2 + 1];
    int i0 = interleaved ? 2 * i : i;
    int i1 = interleaved ? 2 * i + 1 : i + hd;
    float x0 = x[row * D + i0], x1 = x[row * D + i1];
    y[row * D + i0] = x0 * c - x1 * s;
    y[row * D + i1] = x0 * s + x1 * c;
}

/* y = x * sigmoid(x). global: (count) */
__kernel void silu(__global const float* x, __global float* y, long count) {
    long i = get_global_id(0);
    if (i >= count) return;
    float v = x[i];
    y[i] = v / (1.0f + exp(-v));
}

/* y = a + b[i % period] (b broadcast over leading dims). global: (count) */
__kernel void add_broadcast(__global const float* a, __global const float* b, __global float* y, int period, long count) {
    long i = get_global_id(0);
    if (i >= count) return;
    y[i] = a[i] + b[i % period];
}

__kernel void mul_broadcast(__global const float* a, __global const float* b, __global float* y, int period, long count) {
    long i = get_global_id(0);
    if (i >= count) return;
    y[i] = a[i] * b[i % period];
}
"""#
}
