// Decode-shaped attention on the CPU: a few query rows (the query heads that share one KV head,
// times a few positions) against a long key/value cache. The work is one streaming pass over K and
// one over V, so the kernel is written to read each byte of K and V once, for all rows together,
// in chunks of IKC_CHUNK keys: scores for the chunk (every row against the same K rows, still in
// L1), an online-softmax update per row (running max and sum, in log2 units so the exponential is
// exp2), then the chunk of V accumulated into every row's output.
#include "CInferenceKitCPUKernels.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define IKC_X86 1
#include <immintrin.h>
#else
#define IKC_X86 0
#endif

/// Keys per chunk: the chunk's K (and V) rows stay in L1/L2 while every row group uses them.
#define IKC_CHUNK 64
/// Query rows per group (the score block lives on the stack: IKC_ROWS × IKC_CHUNK floats).
#define IKC_ROWS 8
/// How many keys ahead the vector paths prefetch K and V into L2 (64 KiB ahead at D = 128): the V pass
/// and the chunk turnover break the pure sequential stream that the hardware prefetchers follow on their own.
#define IKC_PREFETCH_KEYS 128

static const float ikc_log2e = 1.4426950408889634f;

/// Prefetches (into L2) the four rows IKC_PREFETCH_KEYS rows past `row`. The addresses may lie past the
/// cache's end (x86 prefetches never fault); they are formed as integers so no out-of-bounds pointer exists.
static inline void ikc_prefetch_ahead(const float *row, int64_t d) {
    const uintptr_t bytes = (uintptr_t)(4 * d) * sizeof(float);
    const uintptr_t first = (uintptr_t)row + (uintptr_t)(IKC_PREFETCH_KEYS * d) * sizeof(float);
    for (uintptr_t a = 0; a < bytes; a += 64) __builtin_prefetch((const void *)(first + a), 0, 2);
}

// MARK: - Dispatch

static int ikc_isa = -1;

int ikc_detected_isa(void) {
#if IKC_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return IKC_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return IKC_ISA_AVX2;
#endif
    return IKC_ISA_SCALAR;
}

int ikc_active_isa(void) {
    int isa = __atomic_load_n(&ikc_isa, __ATOMIC_RELAXED);
    if (isa < 0) {
        isa = ikc_detected_isa();
        __atomic_store_n(&ikc_isa, isa, __ATOMIC_RELAXED);
    }
    return isa;
}

int ikc_set_isa(int isa) {
    const int best = ikc_detected_isa();
    if (isa > best) isa = best;
    if (isa < 0) isa = IKC_ISA_SCALAR;
    __atomic_store_n(&ikc_isa, isa, __ATOMIC_RELAXED);
    return isa;
}

/// The three per-chunk steps, one set per instruction-set path.
typedef struct ikc_ops {
    /// s[r·IKC_CHUNK + j] = alpha · ⟨q[r], k[j]⟩ for r < rows, j < n (q rows at stride d, key j at k + j·ks).
    void (*scores)(const float *q, const float *k, int rows, int64_t d, int64_t ks, int n, float alpha, float *s);
    /// Max over s[0..<nvis] with m_old, then s[j] = 2^(s[j] − m_new) for j < nvis and 0 for nvis ≤ j < ntot.
    void (*softmax)(float *s, int nvis, int ntot, float m_old, float *m_new, float *sum);
    /// acc[r] += Σ_j p[r·IKC_CHUNK + j] · v[j] for r < rows, j < n (acc rows at stride d, value j at v + j·ks).
    void (*accumulate)(const float *p, const float *v, int rows, int64_t d, int64_t ks, int n, float *acc);
} ikc_ops;

// MARK: - Scalar

static void ikc_scores_scalar(const float *q, const float *k, int rows, int64_t d, int64_t ks, int n, float alpha, float *s) {
    for (int j = 0; j < n; j++) {
        const float *kj = k + (int64_t)j * ks;
        for (int r = 0; r < rows; r++) {
            const float *qr = q + (int64_t)r * d;
            float a = 0;
            for (int64_t c = 0; c < d; c++) a += qr[c] * kj[c];
            s[r * IKC_CHUNK + j] = alpha * a;
        }
    }
}

static void ikc_softmax_scalar(float *s, int nvis, int ntot, float m_old, float *m_new, float *sum) {
    float mx = m_old;
    for (int j = 0; j < nvis; j++) mx = s[j] > mx ? s[j] : mx;
    float total = 0;
    for (int j = 0; j < nvis; j++) {
        s[j] = exp2f(s[j] - mx);
        total += s[j];
    }
    for (int j = nvis; j < ntot; j++) s[j] = 0;
    *m_new = mx;
    *sum = total;
}

static void ikc_accumulate_scalar(const float *p, const float *v, int rows, int64_t d, int64_t ks, int n, float *acc) {
    for (int j = 0; j < n; j++) {
        const float *vj = v + (int64_t)j * ks;
        for (int r = 0; r < rows; r++) {
            const float w = p[r * IKC_CHUNK + j];
            if (w == 0) continue;
            float *ar = acc + (int64_t)r * d;
            for (int64_t c = 0; c < d; c++) ar[c] += w * vj[c];
        }
    }
}

static const ikc_ops ikc_ops_scalar = {ikc_scores_scalar, ikc_softmax_scalar, ikc_accumulate_scalar};

// Coefficients of 2^f = e^(f·ln2) = Σ (ln2)^i/i! · f^i, |f| ≤ 0.5: the first omitted term,
// (ln2)^7/7! · 0.5^7 ≈ 1.2e-7, bounds the relative error.
#define IKC_C1 0.6931471805599453f
#define IKC_C2 0.2402265069591007f
#define IKC_C3 0.0555041086648216f
#define IKC_C4 0.0096181291076285f
#define IKC_C5 0.0013333558146428f
#define IKC_C6 0.0001540353039338f

#if IKC_X86

// MARK: - AVX-512F

#define IKC_T512 __attribute__((target("avx512f")))

IKC_T512 static inline __mmask16 ikc_mask16(int64_t count) {
    return count >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1u);
}

/// Lane i of the result = the sum of all lanes of a_i.
IKC_T512 static inline __m128 ikc_hsum4_512(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    const __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
    const __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
    const __m512 u = _mm512_add_ps(_mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m256 lo = _mm512_castps512_ps256(u);
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1));
    const __m256 y = _mm256_add_ps(lo, hi);
    return _mm_add_ps(_mm256_castps256_ps128(y), _mm256_extractf128_ps(y, 1));
}

/// Scores of R ≤ 4 rows (a constant, so the 4·R accumulators stay in registers) against keys k0…k3:
/// each K vector is loaded once for all R rows and each Q vector once for the four keys.
IKC_T512 __attribute__((always_inline)) static inline void ikc_scores4_512(const float *q, const float *k0, int64_t d,
                                                                         int64_t ks, float alpha, float *s, const int R) {
    const float *k1 = k0 + ks, *k2 = k1 + ks, *k3 = k2 + ks;
    __m512 a0[4], a1[4], a2[4], a3[4];
    for (int r = 0; r < R; r++) a0[r] = a1[r] = a2[r] = a3[r] = _mm512_setzero_ps();
    for (int64_t c = 0; c < d; c += 16) {
        const __mmask16 mk = ikc_mask16(d - c);
        const __m512 y0 = _mm512_maskz_loadu_ps(mk, k0 + c), y1 = _mm512_maskz_loadu_ps(mk, k1 + c);
        const __m512 y2 = _mm512_maskz_loadu_ps(mk, k2 + c), y3 = _mm512_maskz_loadu_ps(mk, k3 + c);
        for (int r = 0; r < R; r++) {
            const __m512 x = _mm512_maskz_loadu_ps(mk, q + r * d + c);
            a0[r] = _mm512_fmadd_ps(x, y0, a0[r]);
            a1[r] = _mm512_fmadd_ps(x, y1, a1[r]);
            a2[r] = _mm512_fmadd_ps(x, y2, a2[r]);
            a3[r] = _mm512_fmadd_ps(x, y3, a3[r]);
        }
    }
    const __m128 va = _mm_set1_ps(alpha);
    for (int r = 0; r < R; r++) _mm_storeu_ps(s + r * IKC_CHUNK, _mm_mul_ps(va, ikc_hsum4_512(a0[r], a1[r], a2[r], a3[r])));
}

IKC_T512 static void ikc_scores_avx512(const float *q, const float *k, int rows, int64_t d, int64_t ks, int n, float alpha, float *s) {
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        const float *k0 = k + (int64_t)j * ks;
        if (ks == d) ikc_prefetch_ahead(k0, d);  // strided (paged) rows: blocks are short and scattered, and a prefetch far past a small cache walks unmapped pages
        for (int r0 = 0; r0 < rows; r0 += 4) {
            const float *qr = q + (int64_t)r0 * d;
            float *sr = s + r0 * IKC_CHUNK + j;
            switch (rows - r0) {
            case 1: ikc_scores4_512(qr, k0, d, ks, alpha, sr, 1); break;
            case 2: ikc_scores4_512(qr, k0, d, ks, alpha, sr, 2); break;
            case 3: ikc_scores4_512(qr, k0, d, ks, alpha, sr, 3); break;
            default: ikc_scores4_512(qr, k0, d, ks, alpha, sr, 4); break;
            }
        }
    }
    for (; j < n; j++) {
        const float *kj = k + (int64_t)j * ks;
        for (int r = 0; r < rows; r++) {
            const float *qr = q + (int64_t)r * d;
            __m512 a = _mm512_setzero_ps();
            for (int64_t c = 0; c < d; c += 16) {
                const __mmask16 mk = ikc_mask16(d - c);
                a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, qr + c), _mm512_maskz_loadu_ps(mk, kj + c), a);
            }
            // The same reduction tree as the four-key path, so a key's score does not depend on whether it
            // fell in a group of four (which depends on the other rows of the call): batch invariance.
            s[r * IKC_CHUNK + j] = alpha * _mm_cvtss_f32(ikc_hsum4_512(a, a, a, a));
        }
    }
}

/// 2^x for x ≤ 0 (clamped to [−126, 126]).
IKC_T512 static inline __m512 ikc_exp2_512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-126.0f)), _mm512_set1_ps(126.0f));
    const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(IKC_C6);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(IKC_C5));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(IKC_C4));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(IKC_C3));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(IKC_C2));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(IKC_C1));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

IKC_T512 static void ikc_softmax_avx512(float *s, int nvis, int ntot, float m_old, float *m_new, float *sum) {
    __m512 vm = _mm512_set1_ps(m_old);
    int j = 0;
    for (; j + 16 <= nvis; j += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(s + j));
    if (j < nvis) vm = _mm512_mask_max_ps(vm, ikc_mask16(nvis - j), vm, _mm512_maskz_loadu_ps(ikc_mask16(nvis - j), s + j));
    const float mx = _mm512_reduce_max_ps(vm);
    const __m512 vx = _mm512_set1_ps(mx);
    __m512 vs = _mm512_setzero_ps();
    for (j = 0; j + 16 <= nvis; j += 16) {
        const __m512 p = ikc_exp2_512(_mm512_sub_ps(_mm512_loadu_ps(s + j), vx));
        _mm512_storeu_ps(s + j, p);
        vs = _mm512_add_ps(vs, p);
    }
    if (j < nvis) {
        const __mmask16 mk = ikc_mask16(nvis - j);
        const __m512 p = ikc_exp2_512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, s + j), vx));
        _mm512_mask_storeu_ps(s + j, mk, p);
        vs = _mm512_mask_add_ps(vs, mk, vs, p);
    }
    for (j = nvis; j < ntot; j++) s[j] = 0;
    *m_new = mx;
    *sum = _mm512_reduce_add_ps(vs);
}

/// acc[r] += Σ_j p[r][j]·v[j] for a constant number of rows R ≤ 4, four keys at a time: the four V rows
/// are read across their whole width (nearly sequential, which the hardware prefetchers follow) and each
/// accumulator load/store is shared by four FMAs.
IKC_T512 __attribute__((always_inline)) static inline void ikc_acc_rows_512(const float *p, const float *v, int64_t d, int64_t ks, int n,
                                                                          float *acc, const int R) {
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        const float *v0 = v + (int64_t)j * ks, *v1 = v0 + ks, *v2 = v1 + ks, *v3 = v2 + ks;
        if (ks == d) ikc_prefetch_ahead(v0, d);
        __m512 w0[4], w1[4], w2[4], w3[4];
        for (int r = 0; r < R; r++) {
            w0[r] = _mm512_set1_ps(p[r * IKC_CHUNK + j]);
            w1[r] = _mm512_set1_ps(p[r * IKC_CHUNK + j + 1]);
            w2[r] = _mm512_set1_ps(p[r * IKC_CHUNK + j + 2]);
            w3[r] = _mm512_set1_ps(p[r * IKC_CHUNK + j + 3]);
        }
        for (int64_t c = 0; c < d; c += 16) {
            const __mmask16 mk = ikc_mask16(d - c);
            const __m512 x0 = _mm512_maskz_loadu_ps(mk, v0 + c), x1 = _mm512_maskz_loadu_ps(mk, v1 + c);
            const __m512 x2 = _mm512_maskz_loadu_ps(mk, v2 + c), x3 = _mm512_maskz_loadu_ps(mk, v3 + c);
            for (int r = 0; r < R; r++) {
                __m512 a = _mm512_maskz_loadu_ps(mk, acc + r * d + c);
                a = _mm512_fmadd_ps(w0[r], x0, a);
                a = _mm512_fmadd_ps(w1[r], x1, a);
                a = _mm512_fmadd_ps(w2[r], x2, a);
                a = _mm512_fmadd_ps(w3[r], x3, a);
                _mm512_mask_storeu_ps(acc + r * d + c, mk, a);
            }
        }
    }
    for (; j < n; j++) {
        const float *vj = v + (int64_t)j * ks;
        for (int64_t c = 0; c < d; c += 16) {
            const __mmask16 mk = ikc_mask16(d - c);
            const __m512 x = _mm512_maskz_loadu_ps(mk, vj + c);
            for (int r = 0; r < R; r++) {
                const __m512 a = _mm512_maskz_loadu_ps(mk, acc + r * d + c);
                _mm512_mask_storeu_ps(acc + r * d + c, mk, _mm512_fmadd_ps(_mm512_set1_ps(p[r * IKC_CHUNK + j]), x, a));
            }
        }
    }
}

IKC_T512 static void ikc_accumulate_avx512(const float *p, const float *v, int rows, int64_t d, int64_t ks, int n, float *acc) {
    for (int r0 = 0; r0 < rows; r0 += 4) {
        const float *pr = p + r0 * IKC_CHUNK;
        float *ar = acc + (int64_t)r0 * d;
        switch (rows - r0) {
        case 1: ikc_acc_rows_512(pr, v, d, ks, n, ar, 1); break;
        case 2: ikc_acc_rows_512(pr, v, d, ks, n, ar, 2); break;
        case 3: ikc_acc_rows_512(pr, v, d, ks, n, ar, 3); break;
        default: ikc_acc_rows_512(pr, v, d, ks, n, ar, 4); break;
        }
    }
}

static const ikc_ops ikc_ops_avx512 = {ikc_scores_avx512, ikc_softmax_avx512, ikc_accumulate_avx512};

// MARK: - AVX2 + FMA

#define IKC_T256 __attribute__((target("avx2,fma")))

/// Lanes i < count set (count clamped to 0…8).
IKC_T256 static inline __m256i ikc_mask8(int64_t count) {
    const int c = count >= 8 ? 8 : (int)count;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

IKC_T256 static inline __m128 ikc_hsum4_256(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    const __m256 t0 = _mm256_add_ps(_mm256_unpacklo_ps(a0, a1), _mm256_unpackhi_ps(a0, a1));
    const __m256 t1 = _mm256_add_ps(_mm256_unpacklo_ps(a2, a3), _mm256_unpackhi_ps(a2, a3));
    const __m256 u = _mm256_add_ps(_mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1));
}

IKC_T256 static inline float ikc_hsum_256(__m256 a) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
}

IKC_T256 static inline float ikc_hmax_256(__m256 a) {
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
}

IKC_T256 static void ikc_scores_avx2(const float *q, const float *k, int rows, int64_t d, int64_t ks, int n, float alpha, float *s) {
    const int64_t full = d & ~(int64_t)7;
    const __m256i tm = ikc_mask8(d - full);
    const __m128 va = _mm_set1_ps(alpha);
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        const float *k0 = k + (int64_t)j * ks, *k1 = k0 + ks, *k2 = k1 + ks, *k3 = k2 + ks;
        if (ks == d) ikc_prefetch_ahead(k0, d);  // strided (paged) rows: blocks are short and scattered, and a prefetch far past a small cache walks unmapped pages
        for (int r = 0; r < rows; r++) {
            const float *qr = q + (int64_t)r * d;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            int64_t c = 0;
            for (; c < full; c += 8) {
                const __m256 x = _mm256_loadu_ps(qr + c);
                a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k0 + c), a0);
                a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k1 + c), a1);
                a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k2 + c), a2);
                a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k3 + c), a3);
            }
            if (c < d) {
                const __m256 x = _mm256_maskload_ps(qr + c, tm);
                a0 = _mm256_fmadd_ps(x, _mm256_maskload_ps(k0 + c, tm), a0);
                a1 = _mm256_fmadd_ps(x, _mm256_maskload_ps(k1 + c, tm), a1);
                a2 = _mm256_fmadd_ps(x, _mm256_maskload_ps(k2 + c, tm), a2);
                a3 = _mm256_fmadd_ps(x, _mm256_maskload_ps(k3 + c, tm), a3);
            }
            _mm_storeu_ps(s + r * IKC_CHUNK + j, _mm_mul_ps(va, ikc_hsum4_256(a0, a1, a2, a3)));
        }
    }
    for (; j < n; j++) {
        const float *kj = k + (int64_t)j * ks;
        for (int r = 0; r < rows; r++) {
            const float *qr = q + (int64_t)r * d;
            __m256 a = _mm256_setzero_ps();
            int64_t c = 0;
            for (; c < full; c += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(qr + c), _mm256_loadu_ps(kj + c), a);
            if (c < d) a = _mm256_fmadd_ps(_mm256_maskload_ps(qr + c, tm), _mm256_maskload_ps(kj + c, tm), a);
            s[r * IKC_CHUNK + j] = alpha * _mm_cvtss_f32(ikc_hsum4_256(a, a, a, a));  // as the four-key path (batch invariance)
        }
    }
}

IKC_T256 static inline __m256 ikc_exp2_256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-126.0f)), _mm256_set1_ps(126.0f));
    const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 f = _mm256_sub_ps(x, n);
    __m256 p = _mm256_set1_ps(IKC_C6);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(IKC_C5));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(IKC_C4));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(IKC_C3));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(IKC_C2));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(IKC_C1));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

IKC_T256 static void ikc_softmax_avx2(float *s, int nvis, int ntot, float m_old, float *m_new, float *sum) {
    __m256 vm = _mm256_set1_ps(m_old);
    int j = 0;
    for (; j + 8 <= nvis; j += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(s + j));
    float mx = ikc_hmax_256(vm);
    for (; j < nvis; j++) mx = s[j] > mx ? s[j] : mx;
    const __m256 vx = _mm256_set1_ps(mx);
    __m256 vs = _mm256_setzero_ps();
    for (j = 0; j + 8 <= nvis; j += 8) {
        const __m256 p = ikc_exp2_256(_mm256_sub_ps(_mm256_loadu_ps(s + j), vx));
        _mm256_storeu_ps(s + j, p);
        vs = _mm256_add_ps(vs, p);
    }
    if (j < nvis) {
        const __m256i mk = ikc_mask8(nvis - j);
        const __m256 p = _mm256_and_ps(ikc_exp2_256(_mm256_sub_ps(_mm256_maskload_ps(s + j, mk), vx)), _mm256_castsi256_ps(mk));
        _mm256_maskstore_ps(s + j, mk, p);
        vs = _mm256_add_ps(vs, p);
    }
    for (j = nvis; j < ntot; j++) s[j] = 0;
    *m_new = mx;
    *sum = ikc_hsum_256(vs);
}

/// acc[r] += Σ_j p[r][j]·v[j] for a constant number of rows R ≤ 4, four keys at a time (as the AVX-512 path).
IKC_T256 __attribute__((always_inline)) static inline void ikc_acc_rows_256(const float *p, const float *v, int64_t d, int64_t ks, int n,
                                                                          float *acc, const int R) {
    const int64_t full = d & ~(int64_t)7;
    const __m256i tm = ikc_mask8(d - full);
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        const float *v0 = v + (int64_t)j * ks, *v1 = v0 + ks, *v2 = v1 + ks, *v3 = v2 + ks;
        if (ks == d) ikc_prefetch_ahead(v0, d);
        float w[4][4];
        for (int r = 0; r < R; r++)
            for (int t = 0; t < 4; t++) w[r][t] = p[r * IKC_CHUNK + j + t];
        int64_t c = 0;
        for (; c < full; c += 8) {
            const __m256 x0 = _mm256_loadu_ps(v0 + c), x1 = _mm256_loadu_ps(v1 + c);
            const __m256 x2 = _mm256_loadu_ps(v2 + c), x3 = _mm256_loadu_ps(v3 + c);
            for (int r = 0; r < R; r++) {
                __m256 a = _mm256_loadu_ps(acc + r * d + c);
                a = _mm256_fmadd_ps(_mm256_set1_ps(w[r][0]), x0, a);
                a = _mm256_fmadd_ps(_mm256_set1_ps(w[r][1]), x1, a);
                a = _mm256_fmadd_ps(_mm256_set1_ps(w[r][2]), x2, a);
                a = _mm256_fmadd_ps(_mm256_set1_ps(w[r][3]), x3, a);
                _mm256_storeu_ps(acc + r * d + c, a);
            }
        }
        if (c < d) {
            const __m256 x0 = _mm256_maskload_ps(v0 + c, tm), x1 = _mm256_maskload_ps(v1 + c, tm);
            const __m256 x2 = _mm256_maskload_ps(v2 + c, tm), x3 = _mm256_maskload_ps(v3 + c, tm);
            for (int r = 0; r < R; r++) {
                __m256 a = _mm256_maskload_ps(acc + r * d + c, tm);
                a = _mm256_fmadd_ps(_mm256_set1_ps(w[r][0]), x0, a);
                a = _mm256_fmadd_ps(_mm256_set1_ps(w[r][1]), x1, a);
                a = _mm256_fmadd_ps(_mm256_set1_ps(w[r][2]), x2, a);
                a = _mm256_fmadd_ps(_mm256_set1_ps(w[r][3]), x3, a);
                _mm256_maskstore_ps(acc + r * d + c, tm, a);
            }
        }
    }
    for (; j < n; j++) {
        const float *vj = v + (int64_t)j * ks;
        int64_t c = 0;
        for (; c < full; c += 8) {
            const __m256 x = _mm256_loadu_ps(vj + c);
            for (int r = 0; r < R; r++)
                _mm256_storeu_ps(acc + r * d + c, _mm256_fmadd_ps(_mm256_set1_ps(p[r * IKC_CHUNK + j]), x, _mm256_loadu_ps(acc + r * d + c)));
        }
        if (c < d) {
            const __m256 x = _mm256_maskload_ps(vj + c, tm);
            for (int r = 0; r < R; r++)
                _mm256_maskstore_ps(acc + r * d + c, tm,
                                    _mm256_fmadd_ps(_mm256_set1_ps(p[r * IKC_CHUNK + j]), x, _mm256_maskload_ps(acc + r * d + c, tm)));
        }
    }
}

IKC_T256 static void ikc_accumulate_avx2(const float *p, const float *v, int rows, int64_t d, int64_t ks, int n, float *acc) {
    for (int r0 = 0; r0 < rows; r0 += 4) {
        const float *pr = p + r0 * IKC_CHUNK;
        float *ar = acc + (int64_t)r0 * d;
        switch (rows - r0) {
        case 1: ikc_acc_rows_256(pr, v, d, ks, n, ar, 1); break;
        case 2: ikc_acc_rows_256(pr, v, d, ks, n, ar, 2); break;
        case 3: ikc_acc_rows_256(pr, v, d, ks, n, ar, 3); break;
        default: ikc_acc_rows_256(pr, v, d, ks, n, ar, 4); break;
        }
    }
}

static const ikc_ops ikc_ops_avx2 = {ikc_scores_avx2, ikc_softmax_avx2, ikc_accumulate_avx2};

#endif  // IKC_X86

/// The kernels of a path (already clamped to what the CPU supports).
static const ikc_ops *ikc_ops_for(int isa) {
#if IKC_X86
    if (isa == IKC_ISA_AVX512) return &ikc_ops_avx512;
    if (isa == IKC_ISA_AVX2) return &ikc_ops_avx2;
#endif
    (void)isa;
    return &ikc_ops_scalar;
}

// MARK: - Driver

/// One chunk of `kc` keys (key j at kc_k + j·ks, absolute position first + j) for every row: scores, the
/// online-softmax update of m, l and acc, then the chunk of V. `visible` NULL: every key is visible.
static void ikc_chunk(const ikc_ops *ops, const float *q, const float *ck, const float *cv, int64_t ks, int64_t rows,
                      int64_t d, int kc, int64_t first, const int64_t *visible, float alpha, float *m, float *l,
                      float *acc) {
    float s[IKC_ROWS * IKC_CHUNK] __attribute__((aligned(64)));
    for (int64_t r0 = 0; r0 < rows; r0 += IKC_ROWS) {
        const int R = rows - r0 < IKC_ROWS ? (int)(rows - r0) : IKC_ROWS;
        int nv[IKC_ROWS];
        int nmax = 0;
        for (int r = 0; r < R; r++) {
            int64_t n = visible ? visible[r0 + r] - first : kc;
            n = n < 0 ? 0 : (n > kc ? kc : n);
            nv[r] = (int)n;
            nmax = nv[r] > nmax ? nv[r] : nmax;
        }
        if (nmax == 0) continue;
        ops->scores(q + r0 * d, ck, R, d, ks, nmax, alpha, s);
        for (int r = 0; r < R; r++) {
            float *sr = s + r * IKC_CHUNK;
            if (nv[r] == 0) {
                memset(sr, 0, (size_t)nmax * sizeof(float));
                continue;
            }
            const float m_old = m[r0 + r];
            float m_new, sum;
            ops->softmax(sr, nv[r], nmax, m_old, &m_new, &sum);
            if (m_old == -INFINITY) {
                l[r0 + r] = sum;
            } else {
                const float corr = exp2f(m_old - m_new);
                l[r0 + r] = l[r0 + r] * corr + sum;
                if (corr != 1.0f) {
                    float *ar = acc + (r0 + r) * d;
                    for (int64_t c = 0; c < d; c++) ar[c] *= corr;
                }
            }
            m[r0 + r] = m_new;
        }
        ops->accumulate(s, cv, R, d, ks, nmax, acc + r0 * d);
    }
}

static void ikc_partial(const ikc_ops *ops, const float *q, const float *k, const float *v, int64_t rows, int64_t d,
                        int64_t key_begin, int64_t key_end, const int64_t *visible, float scale, float *m, float *l,
                        float *acc) {
    const float alpha = scale * ikc_log2e;
    for (int64_t r = 0; r < rows; r++) {
        m[r] = -INFINITY;
        l[r] = 0;
    }
    if (rows > 0 && d > 0) memset(acc, 0, (size_t)(rows * d) * sizeof(float));
    for (int64_t j0 = key_begin; j0 < key_end; j0 += IKC_CHUNK) {
        const int kc = key_end - j0 < IKC_CHUNK ? (int)(key_end - j0) : IKC_CHUNK;
        ikc_chunk(ops, q, k + j0 * d, v + j0 * d, d, rows, d, kc, j0, visible, alpha, m, l, acc);
    }
}

void ikc_attention_partial_isa(int isa, const float *q, const float *k, const float *v, int64_t rows, int64_t d,
                               int64_t key_begin, int64_t key_end, const int64_t *visible, float scale, float *m,
                               float *l, float *acc) {
    if (isa > ikc_detected_isa()) isa = ikc_detected_isa();
    const ikc_ops *ops = ikc_ops_for(isa);
    ikc_partial(ops, q, k, v, rows, d, key_begin, key_end, visible, scale, m, l, acc);
}

void ikc_attention_partial(const float *q, const float *k, const float *v, int64_t rows, int64_t d, int64_t key_begin,
                           int64_t key_end, const int64_t *visible, float scale, float *m, float *l, float *acc) {
    ikc_attention_partial_isa(ikc_active_isa(), q, k, v, rows, d, key_begin, key_end, visible, scale, m, l, acc);
}

void ikc_attention_merge(int64_t parts, int64_t rows, int64_t d, const float *m, const float *l, const float *acc,
                         float *out) {
    for (int64_t r = 0; r < rows; r++) {
        float mx = -INFINITY;
        for (int64_t p = 0; p < parts; p++) mx = m[p * rows + r] > mx ? m[p * rows + r] : mx;
        float *o = out + r * d;
        for (int64_t c = 0; c < d; c++) o[c] = 0;
        if (mx == -INFINITY) continue;
        float total = 0;
        for (int64_t p = 0; p < parts; p++) {
            const float mp = m[p * rows + r];
            if (mp == -INFINITY) continue;
            const float w = exp2f(mp - mx);
            total += w * l[p * rows + r];
            const float *a = acc + (p * rows + r) * d;
            for (int64_t c = 0; c < d; c++) o[c] += w * a[c];
        }
        const float inv = 1.0f / total;
        for (int64_t c = 0; c < d; c++) o[c] *= inv;
    }
}

// MARK: - Paged driver

/// Most query rows one paged call takes (m and l live on its stack).
#define IKC_PAGED_MAX_ROWS 256

/// Starts a paged call: running max −∞ and sum 0 per row, output zeroed; returns the most keys any row sees.
static int64_t ikc_paged_begin(int64_t rows, int64_t d, const int64_t *visible, float *m, float *l, float *out) {
    int64_t most = 0;
    for (int64_t r = 0; r < rows; r++) {
        m[r] = -INFINITY;
        l[r] = 0;
        most = visible[r] > most ? visible[r] : most;
    }
    if (rows > 0 && d > 0) memset(out, 0, (size_t)(rows * d) * sizeof(float));
    return most;
}

/// Ends a paged call: divides each row by its softmax sum (a row that sees no key stays zero).
static void ikc_paged_finish(int64_t rows, int64_t d, const float *l, float *out) {
    for (int64_t r = 0; r < rows; r++) {
        if (l[r] == 0) continue;
        const float inv = 1.0f / l[r];
        float *o = out + r * d;
        for (int64_t c = 0; c < d; c++) o[c] *= inv;
    }
}

/// Prefetches logical block `b` of one head, whose first row starts at element `first`: its rows are d
/// elements of `elem` bytes every row_stride elements, in K and in V, as many as the longest row sees.
static void ikc_prefetch_block(const void *k_cache, const void *v_cache, size_t elem, int64_t first, int64_t b, int64_t block_size,
                               int64_t row_stride, int64_t d, int64_t most) {
    const int64_t rows = most - b * block_size < block_size ? most - b * block_size : block_size;
    const char *k = (const char *)k_cache, *v = (const char *)v_cache;
    for (int64_t j = 0; j < rows; j++) {
        const size_t at = (size_t)(first + j * row_stride) * elem;
        for (size_t c = 0; c < (size_t)d * elem; c += 64) {
            // Into L2 (T1): an L1 prefetch of a whole block's lines would wait for free L1 miss buffers.
            __builtin_prefetch(k + at + c, 0, 2);
            __builtin_prefetch(v + at + c, 0, 2);
        }
    }
}

static void ikc_paged(const ikc_ops *ops, const float *q, int64_t rows, int64_t d, const float *k_cache,
                      const float *v_cache, int64_t block_size, int64_t row_stride, int64_t head_offset,
                      const int32_t *block_table, const int64_t *visible, float scale, float *out) {
    const float alpha = scale * ikc_log2e;
    float m[IKC_PAGED_MAX_ROWS], l[IKC_PAGED_MAX_ROWS];
    const int64_t most = ikc_paged_begin(rows, d, visible, m, l, out);
    const int64_t blocks = (most + block_size - 1) / block_size;
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t base = ((int64_t)block_table[b] * block_size) * row_stride + head_offset;
        const int64_t in_block = most - b * block_size < block_size ? most - b * block_size : block_size;
        // The next block lives anywhere: the hardware prefetchers cannot guess it, the block table can.
        if (b + 1 < blocks)
            ikc_prefetch_block(k_cache, v_cache, sizeof(float), ((int64_t)block_table[b + 1] * block_size) * row_stride + head_offset, b + 1,
                               block_size, row_stride, d, most);
        for (int64_t j0 = 0; j0 < in_block; j0 += IKC_CHUNK) {
            const int kc = in_block - j0 < IKC_CHUNK ? (int)(in_block - j0) : IKC_CHUNK;
            ikc_chunk(ops, q, k_cache + base + j0 * row_stride, v_cache + base + j0 * row_stride, row_stride, rows, d, kc,
                      b * block_size + j0, visible, alpha, m, l, out);
        }
    }
    ikc_paged_finish(rows, d, l, out);
}

int ikc_paged_attention_isa(int isa, const float *q, int64_t rows, int64_t d, const float *k_cache, const float *v_cache,
                            int64_t block_size, int64_t row_stride, int64_t head_offset, const int32_t *block_table,
                            const int64_t *visible, float scale, float *out) {
    if (rows < 0 || rows > IKC_PAGED_MAX_ROWS || d <= 0 || block_size <= 0 || row_stride < d) return -1;
    if (isa > ikc_detected_isa()) isa = ikc_detected_isa();
    const ikc_ops *ops = ikc_ops_for(isa);
    ikc_paged(ops, q, rows, d, k_cache, v_cache, block_size, row_stride, head_offset, block_table, visible, scale, out);
    return 0;
}

// MARK: - Half-precision K/V

/// IEEE binary16 → binary32, exactly (subnormals, infinities and NaN included).
static inline float ikc_half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            int e = -1;
            uint32_t m = man;
            do { e++; m <<= 1; } while ((m & 0x400u) == 0);
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((m & 0x3FFu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/// IEEE binary32 → binary16, rounding to nearest even (overflow to ±inf, NaN kept NaN).
static inline uint16_t ikc_half_of(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t a = x & 0x7FFFFFFFu;
    if (a >= 0x7F800000u) return sign | (a > 0x7F800000u ? 0x7E00u : 0x7C00u);
    if (a >= 0x477FF000u) return sign | 0x7C00u;  // rounds past 65504
    if (a < 0x38800000u) {  // below the smallest normal half: subnormal or zero
        if (a < 0x33000000u) return sign;  // below half the smallest subnormal
        const uint32_t e = a >> 23, m = (a & 0x7FFFFFu) | 0x800000u;
        const uint32_t shift = 126 - e;  // 14 + (113 − e) − 1
        uint32_t r = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (r & 1u))) r++;
        return sign | (uint16_t)r;
    }
    uint32_t r = a - 0x38000000u;  // rebias 127 → 15 (exponent − 112)
    const uint32_t rem = r & 0x1FFFu;
    r >>= 13;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
    return sign | (uint16_t)r;
}

#if IKC_X86
__attribute__((target("avx512f"))) static void ikc_h2f_avx512(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    for (; i < n; i++) dst[i] = ikc_half_to_float(src[i]);
}
__attribute__((target("avx2,f16c"))) static void ikc_h2f_f16c(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = ikc_half_to_float(src[i]);
}
__attribute__((target("avx512f"))) static void ikc_f2h_avx512(const float *src, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) dst[i] = ikc_half_of(src[i]);
}
__attribute__((target("avx2,f16c"))) static void ikc_f2h_f16c(const float *src, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) dst[i] = ikc_half_of(src[i]);
}
#endif

/// Whether the CPU converts halves in hardware (F16C; every AVX2 CPU of this fleet has it). Cached.
static int ikc_f16c(void) {
#if IKC_X86
    static int known = -1;
    int v = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("f16c") ? 1 : 0;
        __atomic_store_n(&known, v, __ATOMIC_RELAXED);
    }
    return v;
#else
    return 0;
#endif
}

static void ikc_h2f(int isa, const uint16_t *src, float *dst, int64_t n) {
#if IKC_X86
    if (isa == IKC_ISA_AVX512) { ikc_h2f_avx512(src, dst, n); return; }
    if (isa == IKC_ISA_AVX2 && ikc_f16c()) { ikc_h2f_f16c(src, dst, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) dst[i] = ikc_half_to_float(src[i]);
}

void ikc_float_to_half_isa(int isa, const float *src, uint16_t *dst, int64_t n) {
    if (isa > ikc_detected_isa()) isa = ikc_detected_isa();
#if IKC_X86
    if (isa == IKC_ISA_AVX512) { ikc_f2h_avx512(src, dst, n); return; }
    if (isa == IKC_ISA_AVX2 && ikc_f16c()) { ikc_f2h_f16c(src, dst, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) dst[i] = ikc_half_of(src[i]);
}

void ikc_float_to_half(const float *src, uint16_t *dst, int64_t n) { ikc_float_to_half_isa(ikc_active_isa(), src, dst, n); }

void ikc_half_to_float_array(const uint16_t *src, float *dst, int64_t n) { ikc_h2f(ikc_active_isa(), src, dst, n); }

/// Keys converted per piece of a block (the converted K and V rows live on the stack).
#define IKC_HALF_PIECE 16
#define IKC_HALF_MAX_D 256

static void ikc_paged_half(const ikc_ops *ops, int isa, const float *q, int64_t rows, int64_t d, const uint16_t *k_cache,
                           const uint16_t *v_cache, int64_t block_size, int64_t block_stride, int64_t row_stride, int64_t head_offset,
                           const int32_t *block_table, const int64_t *visible, float scale, float *out) {
    const float alpha = scale * ikc_log2e;
    float m[IKC_PAGED_MAX_ROWS], l[IKC_PAGED_MAX_ROWS];
    // Converted rows at a stride of d + 16 floats (not d: the F32 kernels prefetch far ahead of contiguous rows).
    const int64_t ks = d + 16;
    float kb[IKC_HALF_PIECE * (IKC_HALF_MAX_D + 16)] __attribute__((aligned(64)));
    float vb[IKC_HALF_PIECE * (IKC_HALF_MAX_D + 16)] __attribute__((aligned(64)));
    const int64_t most = ikc_paged_begin(rows, d, visible, m, l, out);
    const int64_t blocks = (most + block_size - 1) / block_size;
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t base = (int64_t)block_table[b] * block_stride + head_offset;
        const int64_t in_block = most - b * block_size < block_size ? most - b * block_size : block_size;
        if (b == 0 && blocks > 1)
            ikc_prefetch_block(k_cache, v_cache, sizeof(uint16_t), (int64_t)block_table[1] * block_stride + head_offset, 1, block_size, row_stride, d, most);
        if (b + 2 < blocks)
            ikc_prefetch_block(k_cache, v_cache, sizeof(uint16_t), (int64_t)block_table[b + 2] * block_stride + head_offset, b + 2, block_size, row_stride, d, most);
        for (int64_t j0 = 0; j0 < in_block; j0 += IKC_HALF_PIECE) {
            const int kc = in_block - j0 < IKC_HALF_PIECE ? (int)(in_block - j0) : IKC_HALF_PIECE;
            for (int j = 0; j < kc; j++) {
                ikc_h2f(isa, k_cache + base + (j0 + j) * row_stride, kb + j * ks, d);
                ikc_h2f(isa, v_cache + base + (j0 + j) * row_stride, vb + j * ks, d);
            }
            ikc_chunk(ops, q, kb, vb, ks, rows, d, kc, b * block_size + j0, visible, alpha, m, l, out);
        }
    }
    ikc_paged_finish(rows, d, l, out);
}

int ikc_paged_attention_half_isa(int isa, const float *q, int64_t rows, int64_t d, const uint16_t *k_cache,
                                 const uint16_t *v_cache, int64_t block_size, int64_t block_stride, int64_t row_stride,
                                 int64_t head_offset, const int32_t *block_table, const int64_t *visible, float scale, float *out) {
    if (rows < 0 || rows > IKC_PAGED_MAX_ROWS || d <= 0 || d > IKC_HALF_MAX_D || block_size <= 0 || row_stride < d ||
        block_stride < block_size * row_stride)
        return -1;
    if (isa > ikc_detected_isa()) isa = ikc_detected_isa();
    const ikc_ops *ops = ikc_ops_for(isa);
    ikc_paged_half(ops, isa, q, rows, d, k_cache, v_cache, block_size, block_stride, row_stride, head_offset, block_table, visible, scale, out);
    return 0;
}

int ikc_paged_attention_half(const float *q, int64_t rows, int64_t d, const uint16_t *k_cache, const uint16_t *v_cache,
                             int64_t block_size, int64_t block_stride, int64_t row_stride, int64_t head_offset,
                             const int32_t *block_table, const int64_t *visible, float scale, float *out) {
    return ikc_paged_attention_half_isa(ikc_active_isa(), q, rows, d, k_cache, v_cache, block_size, block_stride, row_stride,
                                        head_offset, block_table, visible, scale, out);
}

int ikc_paged_attention(const float *q, int64_t rows, int64_t d, const float *k_cache, const float *v_cache,
                        int64_t block_size, int64_t row_stride, int64_t head_offset, const int32_t *block_table,
                        const int64_t *visible, float scale, float *out) {
    return ikc_paged_attention_isa(ikc_active_isa(), q, rows, d, k_cache, v_cache, block_size, row_stride, head_offset,
                                   block_table, visible, scale, out);
}

// MARK: - SwiGLU

static void ikc_silu_mul_scalar(const float *gate, const float *up, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

#if IKC_X86
IKC_T512 static void ikc_silu_mul_avx512(const float *gate, const float *up, float *out, int64_t n) {
    const __m512 nl2e = _mm512_set1_ps(-ikc_log2e), one = _mm512_set1_ps(1.0f);
    int64_t i = 0;
    for (; i < n; i += 16) {
        const __mmask16 mk = ikc_mask16(n - i);
        const __m512 g = _mm512_maskz_loadu_ps(mk, gate + i), u = _mm512_maskz_loadu_ps(mk, up + i);
        const __m512 e = ikc_exp2_512(_mm512_mul_ps(g, nl2e));
        _mm512_mask_storeu_ps(out + i, mk, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), u));
    }
}

IKC_T256 static void ikc_silu_mul_avx2(const float *gate, const float *up, float *out, int64_t n) {
    const __m256 nl2e = _mm256_set1_ps(-ikc_log2e), one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i), u = _mm256_loadu_ps(up + i);
        const __m256 e = ikc_exp2_256(_mm256_mul_ps(g, nl2e));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), u));
    }
    ikc_silu_mul_scalar(gate + i, up + i, out + i, n - i);
}
#endif

void ikc_silu_mul(const float *gate, const float *up, float *out, int64_t n) {
#if IKC_X86
    const int isa = ikc_active_isa();
    if (isa == IKC_ISA_AVX512) { ikc_silu_mul_avx512(gate, up, out, n); return; }
    if (isa == IKC_ISA_AVX2) { ikc_silu_mul_avx2(gate, up, out, n); return; }
#endif
    ikc_silu_mul_scalar(gate, up, out, n);
}
