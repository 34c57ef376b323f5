/// OpenCL C source of the paged-KV kernels, built through TensorCoreOpenCL's per-device program cache.
enum PagedKernelSource {
    static let label = "KVPagingOpenCL paged attention"
    static let kernels = ["kv_scatter", "paged_attention"]
    /// Build options for `queryRows` virtual rows per work-item (each value is its own cached program).
    static func options(queryRows: Int) -> String { "-cl-mad-enable -D QR=\(queryRows)" }
    /// Virtual query rows (query heads of one KV head × query positions) per work-item: 4 when every
    /// sequence has at most 4 (decode with 4 query heads per KV head), else 8.
    static func queryRows(group: Int, maxQueries: Int) -> Int { group * maxQueries <= 4 ? 4 : 8 }
    /// Most KV heads one work-item covers (`HGMAX` in the source).
    static let maxHeadsPerItem = 8

    static let source = """
    /* Paged K/V storage: keys and values each [numBlocks, blockSize, Hkv, D], row-major; a slot is
     * block * blockSize + offset and holds Hkv * D floats ("row"). */

    /* kv_scatter: write T new token rows [T, Hkv * D] of keys and values at the slots of a slot mapping.
     * global: (roundUp(row, 64), T) */
    __kernel void kv_scatter(__global const float* keyRows, __global const float* valueRows,
                             __global const int* slots, __global float* keys, __global float* values,
                             int row, int T) {
        int i = get_global_id(0), t = get_global_id(1);
        if (i >= row || t >= T) return;
        long dst = (long)slots[t] * row + i, src = (long)t * row + i;
        keys[dst] = keyRows[src];
        values[dst] = valueRows[src];
    }

    inline float sum16(float16 x) {
        float8 a = x.lo + x.hi; float4 b = a.lo + a.hi; float2 c = b.lo + b.hi; return c.x + c.y;
    }
    inline float max16(float16 x) {
        float8 a = fmax(x.lo, x.hi); float4 b = fmax(a.lo, a.hi); float2 c = fmax(b.lo, b.hi); return fmax(c.x, c.y);
    }

    #ifndef QR
    #define QR 8
    #endif
    #define KB 16
    #define HGMAX 8

    /* paged_attention: causal grouped-query attention of packed queries [N, Hq, D] over paged K/V.
     * One work-item per (block of QR virtual rows, group of up to HGMAX KV heads, sequence). A virtual row
     * is a pair (query head of a KV head's group, query position), so the query heads sharing a KV head
     * share its loads. Keys are visited 16 at a time: their slots come from the block table (any block
     * size); then, for each KV head of the work-item in turn, 16-wide dot products give the QR x 16
     * scores, an online softmax per row (running max m, normaliser l, rescale by exp(m_old - m_new)) and
     * the P.V update 16 dimensions at a time into the row's accumulator in `acc`. Covering several KV
     * heads per work-item makes it read whole slot rows [Hkv, D] (contiguous memory) rather than 512-byte
     * pieces 4 KiB apart, which the CPU prefetchers follow far better.
     * The query at position i of a sequence with context c and q queries sees keys 0 ... c - q + i.
     * seqInfo: per sequence (context length, query length, first query row).
     * global: (ceil(group * maxQ / QR), ceil(Hkv / headsPerItem), S) */
    __kernel void paged_attention(__global const float* q, __global const float* k, __global const float* v,
                                  __global const int* tables, __global const int* seqInfo,
                                  __global float* acc, __global float* out,
                                  int Hq, int Hkv, int D, int blockSize, int tableStride, int rowsPad, float scale,
                                  int headsPerItem) {
        int blk = get_global_id(0), hg = get_global_id(1), s = get_global_id(2);
        int ctx = seqInfo[3 * s], tq = seqInfo[3 * s + 1], q0 = seqInfo[3 * s + 2];
        int group = Hq / Hkv;
        int rows = group * tq;
        int v0 = blk * QR;
        int h0 = hg * headsPerItem, nh = min(Hkv - h0, min(headsPerItem, HGMAX));
        if (v0 >= rows || nh <= 0) return;
        __global const int* table = tables + (long)s * tableStride;
        const long rowStride = (long)Hkv * D;

        int lim[QR], head[QR], qpos[QR];
        int maxLim = 0;
        #pragma unroll
        for (int r = 0; r < QR; r++) {
            int vr = min(v0 + r, rows - 1);      /* rows past the end repeat the last one; never stored */
            head[r] = vr / tq;
            qpos[r] = vr % tq;
            lim[r] = ctx - tq + qpos[r] + 1;
            maxLim = max(maxLim, lim[r]);
        }
        float m[HGMAX][QR], l[HGMAX][QR];
        for (int hi = 0; hi < nh; hi++) {
            __global float* oh = acc + (((long)s * Hkv + h0 + hi) * rowsPad + v0) * D;
            for (int x = 0; x < QR * D; x++) oh[x] = 0.0f;
            #pragma unroll
            for (int r = 0; r < QR; r++) { m[hi][r] = -INFINITY; l[hi][r] = 0.0f; }
        }

        const int16 iota = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        float p[QR][KB];
        long slot[KB];
        for (int j0 = 0; j0 < maxLim; j0 += KB) {
            int n = min(KB, maxLim - j0);
            for (int jj = 0; jj < n; jj++) {
                int pos = j0 + jj;
                slot[jj] = ((long)table[pos / blockSize] * blockSize + pos % blockSize) * rowStride;
            }
            int16 keyIndex = iota + j0;
            for (int hi = 0; hi < nh; hi++) {
                int kvh = h0 + hi;
                __global float* oh = acc + (((long)s * Hkv + kvh) * rowsPad + v0) * D;
                __global const float* qrow[QR];
                #pragma unroll
                for (int r = 0; r < QR; r++) qrow[r] = q + ((long)(q0 + qpos[r]) * Hq + kvh * group + head[r]) * D;
                __global const float* kh = k + (long)kvh * D;
                __global const float* vh = v + (long)kvh * D;
                float sc[QR][KB];
                for (int jj = 0; jj < KB; jj++) {
                    float16 part[QR];
                    float tail[QR];
                    #pragma unroll
                    for (int r = 0; r < QR; r++) { part[r] = 0.0f; tail[r] = 0.0f; }
                    if (jj < n) {
                        __global const float* krow = kh + slot[jj];
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
                    for (int r = 0; r < QR; r++) sc[r][jj] = sum16(part[r]) + tail[r];
                }
                float corr[QR];
                #pragma unroll
                for (int r = 0; r < QR; r++) {
                    float16 sr = select((float16)(-INFINITY), vload16(0, sc[r]) * scale, keyIndex < (int16)(lim[r]));
                    float mNew = fmax(m[hi][r], max16(sr));
                    corr[r] = exp(m[hi][r] - mNew);
                    float16 pr = exp(sr - mNew);
                    l[hi][r] = l[hi][r] * corr[r] + sum16(pr);
                    m[hi][r] = mNew;
                    vstore16(pr, 0, p[r]);
                }
                int d0 = 0;
                for (; d0 + 16 <= D; d0 += 16) {
                    float16 o[QR];
                    #pragma unroll
                    for (int r = 0; r < QR; r++) o[r] = vload16(0, oh + r * D + d0) * corr[r];
                    for (int jj = 0; jj < n; jj++) {
                        float16 vv = vload16(0, vh + slot[jj] + d0);
                        #pragma unroll
                        for (int r = 0; r < QR; r++) o[r] = mad((float16)(p[r][jj]), vv, o[r]);
                    }
                    #pragma unroll
                    for (int r = 0; r < QR; r++) vstore16(o[r], 0, oh + r * D + d0);
                }
                for (int d = d0; d < D; d++) {
                    for (int r = 0; r < QR; r++) {
                        float o = oh[r * D + d] * corr[r];
                        for (int jj = 0; jj < n; jj++) o = mad(p[r][jj], vh[slot[jj] + d], o);
                        oh[r * D + d] = o;
                    }
                }
            }
        }
        for (int hi = 0; hi < nh; hi++) {
            int kvh = h0 + hi;
            __global const float* oh = acc + (((long)s * Hkv + kvh) * rowsPad + v0) * D;
            for (int r = 0; r < QR && v0 + r < rows; r++) {
                float inv = 1.0f / l[hi][r];
                __global float* orow = out + ((long)(q0 + qpos[r]) * Hq + kvh * group + head[r]) * D;
                for (int x = 0; x < D; x++) orow[x] = oh[r * D + x] * inv;
            }
        }
    }
    """
}
