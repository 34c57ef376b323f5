/// The OpenCL C source of every kernel, built once per device (see `OpenCLDeviceRuntime`).
///
/// Compile-time parameters (passed as `-D` build options):
/// - `TILE_RTS`: work-group edge of the GPU tiled matmul (16 → 256 work-items; 8 on small devices).
/// - `TILE_WPT`: outputs per work-item along each axis of the tiled matmul (tile = `TILE_RTS·TILE_WPT`).
///
/// The register-blocked CPU matmul uses fixed `8 × 16` blocks (eight `float16` accumulators).
enum KernelSource {
    /// Names of every kernel in ``source``; each is created once after the build.
    static let kernelNames = [
        "pack_a", "pack_b", "matmul_vector", "matmul_tiled",
        "attention", "softmax_rows", "rms_norm_rows", "rope", "silu", "add_broadcast", "mul_broadcast",
    ]

    /// Rows of one register block of the CPU matmul.
    static let vectorRows = 8
    /// Columns of one register block of the CPU matmul (one `float16`).
    static let vectorColumns = 16
    /// Keys scored per online-softmax step in the attention kernel.
    static let attentionBlock = 32

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
#define NR 16
#define ATT_BLOCK 32

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
                     int N, int K, int transB, int bBatchStride, int panels) {
    int k = get_global_id(0), p = get_global_id(1), batch = get_global_id(2);
    if (k >= K) return;
    __global const float* src = b + (long)batch * bBatchStride;
    __global float* dst = bp + (((long)batch * panels + p) * K + k) * NR;
    for (int c = 0; c < NR; c++) {
        int j = p * NR + c;
        float v = 0.0f;
        if (j < N) v = transB ? src[(long)j * K + k] : src[(long)k * N + j];
        dst[c] = v;
    }
}

/* ---------------------------------------------------------------------------
 * Register-blocked matmul for CPU devices (PoCL and friends).
 * Each work-item computes an MR x NR = 8 x 16 block of C with eight float16
 * accumulators. A is read as 8 consecutive floats per k (packed panel, or the
 * raw transposed A when M % 8 == 0); B as 16 consecutive floats per k (packed
 * panel, or raw B when N % 16 == 0). Only the store checks edges.
 * global: (N panels, M panels rounded up to the local size, batch)
 * ------------------------------------------------------------------------- */
#define STORE_ROW(r, acc) \
    if (i0 + r < M) { \
        __global float* crow = cb + (long)(i0 + r) * N + j0; \
        if (fullN) { vstore16(acc, 0, crow); } \
        else { float t[NR]; vstore16(acc, 0, t); for (int c = 0; c < N - j0; c++) crow[c] = t[c]; } \
    }

__kernel void matmul_vector(__global const float* A, __global const float* B, __global float* C,
                            int M, int N, int K,
                            int aPanelStride, int aKStride, int aBatchStride,
                            int bPanelStride, int bKStride, int bBatchStride,
                            int mPanels) {
    int jp = get_global_id(0), ip = get_global_id(1), batch = get_global_id(2);
    if (ip >= mPanels) return;
    __global const float* ap = A + (long)batch * aBatchStride + (long)ip * aPanelStride;
    __global const float* bp = B + (long)batch * bBatchStride + (long)jp * bPanelStride;
    float16 c0 = 0.0f, c1 = 0.0f, c2 = 0.0f, c3 = 0.0f, c4 = 0.0f, c5 = 0.0f, c6 = 0.0f, c7 = 0.0f;
    for (int k = 0; k < K; k++) {
        float16 b = vload16(0, bp + (long)k * bKStride);
        float8 a = vload8(0, ap + (long)k * aKStride);
        c0 = mad((float16)(a.s0), b, c0);
        c1 = mad((float16)(a.s1), b, c1);
        c2 = mad((float16)(a.s2), b, c2);
        c3 = mad((float16)(a.s3), b, c3);
        c4 = mad((float16)(a.s4), b, c4);
        c5 = mad((float16)(a.s5), b, c5);
        c6 = mad((float16)(a.s6), b, c6);
        c7 = mad((float16)(a.s7), b, c7);
    }
    int i0 = ip * MR, j0 = jp * NR;
    int fullN = j0 + NR <= N;
    __global float* cb = C + (long)batch * M * N;
    STORE_ROW(0, c0) STORE_ROW(1, c1) STORE_ROW(2, c2) STORE_ROW(3, c3)
    STORE_ROW(4, c4) STORE_ROW(5, c5) STORE_ROW(6, c6) STORE_ROW(7, c7)
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
 * Fused attention with online softmax: one pass over K and V per query row.
 * q: [B, Hq, Tq, D], k/v: [B, Hkv, Tk, D], out: [B, Hq, Tq, D].
 * Query head h reads kv head h / (Hq / Hkv). Causal: query i sees keys
 * j <= i + Tk - Tq. Keys are scored ATT_BLOCK at a time; the running max m,
 * normaliser l and the output row (used as the accumulator) are rescaled once
 * per block by exp(m_old - m_new).
 * global: (Tq, Hq, B)
 * ------------------------------------------------------------------------- */
__kernel void attention(__global const float* q, __global const float* k, __global const float* v,
                        __global float* out, int Hq, int Hkv, int Tq, int Tk, int D,
                        int causal, float scale) {
    int i = get_global_id(0), h = get_global_id(1), b = get_global_id(2);
    if (i >= Tq) return;
    int kvh = h / (Hq / Hkv);
    __global const float* qrow = q + (((long)b * Hq + h) * Tq + i) * D;
    __global const float* kb = k + ((long)b * Hkv + kvh) * (long)Tk * D;
    __global const float* vb = v + ((long)b * Hkv + kvh) * (long)Tk * D;
    __global float* orow = out + (((long)b * Hq + h) * Tq + i) * D;
    int visible = causal ? min(Tk, i + Tk - Tq + 1) : Tk;
    for (int x = 0; x < D; x++) orow[x] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    float s[ATT_BLOCK];
    for (int j0 = 0; j0 < visible; j0 += ATT_BLOCK) {
        int n = min(ATT_BLOCK, visible - j0);
        float bm = -INFINITY;
        for (int jj = 0; jj < n; jj++) {
            __global const float* krow = kb + (long)(j0 + jj) * D;
            float dot = 0.0f;
            for (int x = 0; x < D; x++) dot = mad(qrow[x], krow[x], dot);
            s[jj] = dot * scale;
            bm = fmax(bm, s[jj]);
        }
        float mNew = fmax(m, bm);
        float corr = exp(m - mNew);
        l *= corr;
        for (int jj = 0; jj < n; jj++) { s[jj] = exp(s[jj] - mNew); l += s[jj]; }
        __global const float* vblock = vb + (long)j0 * D;
        for (int x = 0; x < D; x++) {
            float acc = orow[x] * corr;
            for (int jj = 0; jj < n; jj++) acc = mad(s[jj], vblock[(long)jj * D + x], acc);
            orow[x] = acc;
        }
        m = mNew;
    }
    float inv = 1.0f / l;
    for (int x = 0; x < D; x++) orow[x] *= inv;
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
