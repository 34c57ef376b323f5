// Quantized GEMV/GEMM kernels with run-time CPU dispatch. See include/CInferenceKitQuantKernels.h.
#include "CInferenceKitQuantKernels.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define IKQ_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

// MARK: - Dispatch

static int ikq_isa = -1;

#if IKQ_X86
static uint64_t ikq_xgetbv(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}
#endif

static int ikq_detect_isa_uncached(void);

// CPUID and XGETBV exit to the hypervisor in a virtual machine (about 11 µs per call measured on this
// project's KVM guests), so the answer is computed once.
int ikq_detected_isa(void) {
    static int detected = -1;
    int isa = __atomic_load_n(&detected, __ATOMIC_RELAXED);
    if (isa < 0) {
        isa = ikq_detect_isa_uncached();
        __atomic_store_n(&detected, isa, __ATOMIC_RELAXED);
    }
    return isa;
}

static int ikq_detect_isa_uncached(void) {
#if IKQ_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return IKQ_ISA_SCALAR;
    const int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1, avx = (c >> 28) & 1;
    if (!(osxsave && avx && fma && f16c)) return IKQ_ISA_SCALAR;
    const uint64_t xcr0 = ikq_xgetbv();
    if ((xcr0 & 0x6) != 0x6) return IKQ_ISA_SCALAR;  // OS saves XMM and YMM state
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return IKQ_ISA_SCALAR;
    const int avx2 = (b >> 5) & 1;
    if (!avx2) return IKQ_ISA_SCALAR;
    const int avx512f = (b >> 16) & 1, avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1, vnni = (c >> 11) & 1;
    if (avx512f && avx512bw && avx512vl && vnni && (xcr0 & 0xE6) == 0xE6) return IKQ_ISA_AVX512_VNNI;  // opmask + ZMM state
    return IKQ_ISA_AVX2;
#else
    return IKQ_ISA_SCALAR;
#endif
}

int ikq_active_isa(void) {
    int isa = __atomic_load_n(&ikq_isa, __ATOMIC_RELAXED);
    if (isa < 0) {
        isa = ikq_detected_isa();
        __atomic_store_n(&ikq_isa, isa, __ATOMIC_RELAXED);
    }
    return isa;
}

int ikq_set_isa(int isa) {
    const int best = ikq_detected_isa();
    if (isa > best) isa = best;
    if (isa < 0) isa = IKQ_ISA_SCALAR;
    __atomic_store_n(&ikq_isa, isa, __ATOMIC_RELAXED);
    return isa;
}

// MARK: - Helpers

/// Bytes the decode kernels (and the prefetching bandwidth probe) prefetch ahead of their loads.
#ifndef IKQ_DECODE_AHEAD
#define IKQ_DECODE_AHEAD 4096
#endif

static inline float ikq_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            exp = 127 - 15 + 1;
            while ((mant & 0x400) == 0) { mant <<= 1; exp--; }
            bits = sign | (exp << 23) | ((mant & 0x3FF) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/// The 32-byte chunk 0 of block b of row group g: groups are stored in pairs (2p, 2p + 1), block by
/// block, each 64-byte chunk holding group 2p's 32 bytes then group 2p + 1's (see the header).
static inline const uint8_t *ikq_group_block(const ikq_packed_matrix *w, int64_t g, int64_t nb, int64_t b, int64_t block_bytes) {
    return w->codes + ((g >> 1) * nb + b) * 2 * block_bytes + 32 * (g & 1);
}

/// Index of row 0 of group g in a per-(pair, i) side array of 16 entries (scales, mins, zeros), n entries per pair.
static inline int64_t ikq_side_index(int64_t g, int64_t n, int64_t i) {
    return ((g >> 1) * n + i) * 16 + (g & 1) * 8;
}

static inline int32_t ikq_load_i32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

// MARK: - Activation quantization

static void ikq_quantize_activations_scalar(const float *x, int64_t n, int8_t *q, float *d, float *s) {
    for (int64_t b = 0; b < n / 32; b++) {
        float amax = 0;
        int nan = 0;
        for (int j = 0; j < 32; j++) { const float a = fabsf(x[b * 32 + j]); if (a > amax) amax = a; nan |= a != a; }
        // A NaN input makes the block's scale NaN, so it reaches the product instead of becoming finite codes.
        const float db = nan ? NAN : amax / 127.0f, id = db != 0 && !nan ? 1.0f / db : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            const int32_t v = (int32_t)lrintf(x[b * 32 + j] * id);
            const int32_t c = v > 127 ? 127 : v < -127 ? -127 : v;
            q[b * 32 + j] = (int8_t)c;
            sum += c;
        }
        d[b] = db;
        s[b] = (float)sum;
    }
}

#if IKQ_X86
__attribute__((target("avx2,fma,f16c")))
static void ikq_quantize_activations_avx2(const float *x, int64_t n, int8_t *q, float *d, float *s) {
    const __m256 signmask = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8), v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(signmask, v0), _mm256_andnot_ps(signmask, v1)),
                                 _mm256_max_ps(_mm256_andnot_ps(signmask, v2), _mm256_andnot_ps(signmask, v3)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        // max drops NaN operands: look for them separately so a NaN input makes the block's scale NaN.
        const __m256 un = _mm256_or_ps(_mm256_or_ps(_mm256_cmp_ps(v0, v0, _CMP_UNORD_Q), _mm256_cmp_ps(v1, v1, _CMP_UNORD_Q)),
                                       _mm256_or_ps(_mm256_cmp_ps(v2, v2, _CMP_UNORD_Q), _mm256_cmp_ps(v3, v3, _CMP_UNORD_Q)));
        const int nan = _mm256_movemask_ps(un) != 0;
        const float db = nan ? NAN : amax / 127.0f, id = db != 0 && !nan ? 1.0f / db : 0.0f;
        const __m256 vid = _mm256_set1_ps(id);
        // Round to nearest (even) and pack 32 int32 → 32 int8 with signed saturation.
        __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, vid)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, vid));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, vid)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, vid));
        const __m256i lim = _mm256_set1_epi32(127), nlim = _mm256_set1_epi32(-127);
        i0 = _mm256_max_epi32(_mm256_min_epi32(i0, lim), nlim);
        i1 = _mm256_max_epi32(_mm256_min_epi32(i1, lim), nlim);
        i2 = _mm256_max_epi32(_mm256_min_epi32(i2, lim), nlim);
        i3 = _mm256_max_epi32(_mm256_min_epi32(i3, lim), nlim);
        __m256i sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
        const __m256i p01 = _mm256_packs_epi32(i0, i1), p23 = _mm256_packs_epi32(i2, i3);
        __m256i p = _mm256_packs_epi16(p01, p23);
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(q + b * 32), p);
        d[b] = db;
        s[b] = (float)_mm_cvtsi128_si32(s4);
    }
}
#endif

void ikq_quantize_activations(const float *x, int64_t tokens, int64_t cols, int8_t *q, float *d, float *s) {
    const int64_t nb = cols / 32;
    for (int64_t t = 0; t < tokens; t++) {
#if IKQ_X86
        if (ikq_active_isa() >= IKQ_ISA_AVX2) {
            ikq_quantize_activations_avx2(x + t * cols, cols, q + t * cols, d + t * nb, s + t * nb);
            continue;
        }
#endif
        ikq_quantize_activations_scalar(x + t * cols, cols, q + t * cols, d + t * nb, s + t * nb);
    }
}

// MARK: - Scalar kernel (portable reference for the packed layout)

static void ikq_matmul_scalar(const ikq_packed_matrix *w, const int8_t *q, const float *d, const float *s, int64_t tokens,
                              float *out, int64_t out_stride, int64_t g0, int64_t g1) {
    const int64_t K = w->cols, nb = K / 32, nsc = nb >> w->scale_shift;
    const int64_t block_bytes = w->code_bits == 8 ? 256 : 128;
    for (int64_t g = g0; g < g1; g++) {
        for (int64_t t = 0; t < tokens; t++) {
            float acc[8] = {0};
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *c = ikq_group_block(w, g, nb, b, block_bytes);
                const int8_t *x = q + t * K + b * 32;
                int32_t dot[8] = {0};
                for (int r = 0; r < 8; r++) {
                    if (w->code_bits == 8) {
                        for (int j = 0; j < 8; j++)
                            for (int u = 0; u < 4; u++) dot[r] += (int32_t)(int8_t)(c[j * 64 + r * 4 + u] ^ 0x80) * x[4 * j + u];
                    } else {
                        for (int j = 0; j < 4; j++)
                            for (int u = 0; u < 4; u++) {
                                const uint8_t v = c[j * 64 + r * 4 + u];
                                dot[r] += (int32_t)(v & 0x0F) * x[8 * j + u] + (int32_t)(v >> 4) * x[8 * j + 4 + u];
                            }
                    }
                }
                const float dx = d[t * nb + b], sx = s[t * nb + b];
                const int64_t si = ikq_side_index(g, nsc, b >> w->scale_shift);
                for (int r = 0; r < 8; r++) {
                    const float sc = w->row_scales ? w->row_scales[g * 8 + r] : ikq_f16_to_f32(w->scales[si + r]);
                    float f = (float)dot[r];
                    switch (w->weight_kind) {
                    case IKQ_WEIGHT_OFFSET8: f -= 8.0f * sx; break;
                    case IKQ_WEIGHT_ZERO: f -= (float)w->zeros[si + r] * sx; break;
                    case IKQ_WEIGHT_MIN: acc[r] += ikq_f16_to_f32(w->mins[ikq_side_index(g, nb, b) + r]) * dx * sx; break;
                    default: break;
                    }
                    acc[r] += sc * dx * f;
                }
            }
            const int64_t valid = w->rows - g * 8 < 8 ? w->rows - g * 8 : 8;
            for (int r = 0; r < valid; r++) out[t * out_stride + g * 8 + r] = acc[r];
        }
    }
}

// MARK: - SIMD kernels
//
// One micro-kernel body, instantiated for AVX-512 VNNI (VPDPBUSD on 256-bit vectors) and AVX2
// (VPMADDUBSW + VPMADDWD). Each computes TT tokens × 8 rows: per block of 32, integer dot products
// accumulate in int32 lanes (lane r = row r), then one conversion and one scale FMA per block.

#if IKQ_X86

#define IKQ_KERNEL_BODY(DOT8, DOT4, OFFSET8BIT)                                                                         \
    const int64_t K = w->cols, nb = K / 32, nsc = nb >> w->scale_shift;                                                 \
    const int64_t block_bytes = w->code_bits == 8 ? 256 : 128;                                                          \
    const __m256i nib = _mm256_set1_epi8(0x0F);                                                                         \
    (void)nib;                                                                                                          \
    __m256 acc[TT];                                                                                                     \
    for (int c = 0; c < TT; c++) acc[c] = _mm256_setzero_ps();                                                          \
    __m256 rs = _mm256_setzero_ps();                                                                                    \
    if (w->row_scales) rs = _mm256_loadu_ps(w->row_scales + g * 8);                                                     \
    for (int64_t b = 0; b < nb; b++) {                                                                                  \
        const uint8_t *cb = ikq_group_block(w, g, nb, b, block_bytes);                                                  \
        __m256i ia[TT];                                                                                                 \
        for (int c = 0; c < TT; c++) ia[c] = _mm256_setzero_si256();                                                    \
        if (CODE8) {                                                                                                    \
            for (int j = 0; j < 8; j++) {                                                                               \
                const __m256i wv = _mm256_loadu_si256((const __m256i *)(cb + 64 * j));                                  \
                for (int c = 0; c < TT; c++) {                                                                          \
                    const __m256i xv = _mm256_set1_epi32(ikq_load_i32(q + (t0 + c) * K + b * 32 + 4 * j));              \
                    DOT8(ia[c], wv, xv);                                                                                \
                }                                                                                                       \
            }                                                                                                           \
        } else {                                                                                                        \
            for (int j = 0; j < 4; j++) {                                                                               \
                const __m256i v = _mm256_loadu_si256((const __m256i *)(cb + 64 * j));                                   \
                const __m256i lo = _mm256_and_si256(v, nib), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);       \
                for (int c = 0; c < TT; c++) {                                                                          \
                    const int8_t *xp = q + (t0 + c) * K + b * 32 + 8 * j;                                               \
                    DOT4(ia[c], lo, _mm256_set1_epi32(ikq_load_i32(xp)));                                               \
                    DOT4(ia[c], hi, _mm256_set1_epi32(ikq_load_i32(xp + 4)));                                           \
                }                                                                                                       \
            }                                                                                                           \
        }                                                                                                               \
        const int64_t si = ikq_side_index(g, nsc, b >> w->scale_shift);                                                 \
        const __m256 sv = w->row_scales ? rs : _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w->scales + si)));    \
        __m256 zv = _mm256_setzero_ps(), mv = _mm256_setzero_ps();                                                      \
        if (KIND == IKQ_WEIGHT_ZERO)                                                                                    \
            zv = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(w->zeros + si))));           \
        if (KIND == IKQ_WEIGHT_MIN) mv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w->mins + ikq_side_index(g, nb, b)))); \
        const float offset = KIND == IKQ_WEIGHT_OFFSET8 ? 8.0f : KIND == IKQ_WEIGHT_SIGNED8 ? (OFFSET8BIT) : 0.0f;      \
        for (int c = 0; c < TT; c++) {                                                                                  \
            const float dx = d[(t0 + c) * nb + b], sx = s[(t0 + c) * nb + b];                                           \
            __m256 f = _mm256_cvtepi32_ps(ia[c]);                                                                       \
            if (KIND == IKQ_WEIGHT_ZERO) f = _mm256_fnmadd_ps(zv, _mm256_set1_ps(sx), f);                               \
            else if (offset != 0.0f) f = _mm256_sub_ps(f, _mm256_set1_ps(offset * sx));                                 \
            if (KIND == IKQ_WEIGHT_MIN) acc[c] = _mm256_fmadd_ps(mv, _mm256_set1_ps(dx * sx), acc[c]);                  \
            acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(sv, _mm256_set1_ps(dx)), f, acc[c]);                                 \
        }                                                                                                               \
    }                                                                                                                   \
    const int64_t valid = w->rows - g * 8 < 8 ? w->rows - g * 8 : 8;                                                    \
    if (valid == 8) {                                                                                                   \
        for (int c = 0; c < TT; c++) _mm256_storeu_ps(out + (t0 + c) * out_stride + g * 8, acc[c]);                     \
    } else {                                                                                                            \
        for (int c = 0; c < TT; c++) {                                                                                  \
            float tmp[8];                                                                                               \
            _mm256_storeu_ps(tmp, acc[c]);                                                                              \
            for (int r = 0; r < valid; r++) out[(t0 + c) * out_stride + g * 8 + r] = tmp[r];                            \
        }                                                                                                               \
    }

// VNNI: codes are q + 128 (unsigned) × signed activations; the +128·Σx is removed with `offset`.
#define IKQ_VNNI_DOT(acc, w, x) acc = _mm256_dpbusd_epi32(acc, w, x)
// AVX2, 8-bit: undo the offset, then |w| × sign(x, w) keeps VPMADDUBSW's int16 sums below 2·127·127.
#define IKQ_AVX2_DOT8(acc, w, x)                                                                                        \
    do {                                                                                                                \
        const __m256i ws_ = _mm256_xor_si256(w, _mm256_set1_epi8((char)0x80));                                          \
        const __m256i p_ = _mm256_maddubs_epi16(_mm256_abs_epi8(ws_), _mm256_sign_epi8(x, ws_));                        \
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p_, _mm256_set1_epi16(1)));                                       \
    } while (0)
// AVX2, 4-bit: codes ≤ 15, so pair sums ≤ 2·15·127 fit int16.
#define IKQ_AVX2_DOT4(acc, w, x) acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1)))

#define IKQ_DEFINE_TILE(NAME, TARGET, DOT8, DOT4, OFF)                                                                  \
    __attribute__((target(TARGET))) __attribute__((always_inline)) static inline void NAME(                            \
        const ikq_packed_matrix *w, const int8_t *q, const float *d, const float *s, float *out, int64_t out_stride,   \
        int64_t g, int64_t t0, const int TT, const int CODE8, const int KIND) {                                         \
        IKQ_KERNEL_BODY(DOT8, DOT4, OFF)                                                                                \
    }

#define IKQ_VNNI_TARGET "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"
#define IKQ_AVX2_TARGET "avx2,fma,f16c"

IKQ_DEFINE_TILE(ikq_tile_vnni, IKQ_VNNI_TARGET, IKQ_VNNI_DOT, IKQ_VNNI_DOT, 128.0f)
IKQ_DEFINE_TILE(ikq_tile_avx2, IKQ_AVX2_TARGET, IKQ_AVX2_DOT8, IKQ_AVX2_DOT4, 0.0f)

// Specialise on (code width, weight kind) and tile the tokens: TILE tokens at a time, then the rest one by one.
#define IKQ_DEFINE_DRIVER(NAME, TARGET, TILEFN, TILE)                                                                   \
    __attribute__((target(TARGET))) static void NAME##_spec(const ikq_packed_matrix *w, const int8_t *q,               \
        const float *d, const float *s, int64_t tokens, float *out, int64_t os, int64_t g0, int64_t g1,               \
        const int CODE8, const int KIND) {                                                                               \
        for (int64_t g = g0; g < g1; g++) {                                                                             \
            int64_t t = 0;                                                                                              \
            for (; t + TILE <= tokens; t += TILE) TILEFN(w, q, d, s, out, os, g, t, TILE, CODE8, KIND);                 \
            for (; t < tokens; t++) TILEFN(w, q, d, s, out, os, g, t, 1, CODE8, KIND);                                  \
        }                                                                                                               \
    }                                                                                                                   \
    __attribute__((target(TARGET))) static void NAME(const ikq_packed_matrix *w, const int8_t *q, const float *d,      \
        const float *s, int64_t tokens, float *out, int64_t os, int64_t g0, int64_t g1) {                              \
        if (w->code_bits == 8) NAME##_spec(w, q, d, s, tokens, out, os, g0, g1, 1, IKQ_WEIGHT_SIGNED8);                 \
        else if (w->weight_kind == IKQ_WEIGHT_OFFSET8) NAME##_spec(w, q, d, s, tokens, out, os, g0, g1, 0, IKQ_WEIGHT_OFFSET8); \
        else if (w->weight_kind == IKQ_WEIGHT_MIN) NAME##_spec(w, q, d, s, tokens, out, os, g0, g1, 0, IKQ_WEIGHT_MIN);  \
        else NAME##_spec(w, q, d, s, tokens, out, os, g0, g1, 0, IKQ_WEIGHT_ZERO);                                      \
    }

// Decode path for AVX-512: two 8-row groups side by side in one ZMM (rows of group g in lanes 0–7,
// group g + 1 in lanes 8–15), halving the instructions per weight byte of the 256-bit tile.
__attribute__((target(IKQ_VNNI_TARGET))) __attribute__((always_inline)) static inline void ikq_pair_vnni512(
    const ikq_packed_matrix *w, const int8_t *q, const float *d, const float *s, float *out, int64_t out_stride,
    int64_t g, int64_t t0, const int TT, const int CODE8, const int KIND) {
    const int64_t K = w->cols, nb = K / 32, nsc = nb >> w->scale_shift;
    const int64_t block_bytes = CODE8 ? 256 : 128;
    const __m512i nib = _mm512_set1_epi8(0x0F);
    const uint8_t *pair = w->codes + (g >> 1) * nb * 2 * block_bytes;  // g is even here
    __m512 acc[TT];
    for (int c = 0; c < TT; c++) acc[c] = _mm512_setzero_ps();
    __m512 rs = _mm512_setzero_ps();
    if (w->row_scales) rs = _mm512_loadu_ps(w->row_scales + g * 8);
    const float offset = KIND == IKQ_WEIGHT_OFFSET8 ? 8.0f : KIND == IKQ_WEIGHT_SIGNED8 ? 128.0f : 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *pb = pair + b * 2 * block_bytes;
        __m512i ia[TT];
        for (int c = 0; c < TT; c++) ia[c] = _mm512_setzero_si512();
        if (CODE8) {
            for (int j = 0; j < 8; j++) {
                const __m512i wv = _mm512_loadu_si512(pb + 64 * j);
                for (int c = 0; c < TT; c++)
                    ia[c] = _mm512_dpbusd_epi32(ia[c], wv, _mm512_set1_epi32(ikq_load_i32(q + (t0 + c) * K + b * 32 + 4 * j)));
            }
        } else {
            for (int j = 0; j < 4; j++) {
                const __m512i v = _mm512_loadu_si512(pb + 64 * j);
                const __m512i lo = _mm512_and_si512(v, nib), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
                for (int c = 0; c < TT; c++) {
                    const int8_t *xp = q + (t0 + c) * K + b * 32 + 8 * j;
                    ia[c] = _mm512_dpbusd_epi32(ia[c], lo, _mm512_set1_epi32(ikq_load_i32(xp)));
                    ia[c] = _mm512_dpbusd_epi32(ia[c], hi, _mm512_set1_epi32(ikq_load_i32(xp + 4)));
                }
            }
        }
        const int64_t si = ikq_side_index(g, nsc, b >> w->scale_shift);
        __m512 sv = rs;
        if (!w->row_scales)
            sv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w->scales + si)));
        __m512 zv = _mm512_setzero_ps(), mv = _mm512_setzero_ps();
        if (KIND == IKQ_WEIGHT_ZERO) {
            const __m128i z = _mm_loadu_si128((const __m128i *)(w->zeros + si));
            zv = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(z));
        }
        if (KIND == IKQ_WEIGHT_MIN) {
            mv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w->mins + ikq_side_index(g, nb, b))));
        }
        for (int c = 0; c < TT; c++) {
            const float dx = d[(t0 + c) * nb + b], sx = s[(t0 + c) * nb + b];
            __m512 f = _mm512_cvtepi32_ps(ia[c]);
            if (KIND == IKQ_WEIGHT_ZERO) f = _mm512_fnmadd_ps(zv, _mm512_set1_ps(sx), f);
            else if (offset != 0.0f) f = _mm512_sub_ps(f, _mm512_set1_ps(offset * sx));
            if (KIND == IKQ_WEIGHT_MIN) acc[c] = _mm512_fmadd_ps(mv, _mm512_set1_ps(dx * sx), acc[c]);
            acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(sv, _mm512_set1_ps(dx)), f, acc[c]);
        }
    }
    const int64_t valid = w->rows - g * 8 < 16 ? w->rows - g * 8 : 16;
    // A masked vector store (a byte loop here became a memmove call per token and pair of groups).
    const __mmask16 keep = valid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1u);
    for (int c = 0; c < TT; c++) _mm512_mask_storeu_ps(out + (t0 + c) * out_stride + g * 8, keep, acc[c]);
}

// Decode (one token) on AVX-512 VNNI: a pair of 8-row groups per ZMM, read as one 64-byte load per
// chunk from the pair-interleaved layout, so each thread streams one contiguous run of codes (plus one
// of scales). Specialised per format at compile time, two independent int32 dot-product chains per
// block, and non-temporal software prefetches running ahead of the hardware prefetcher.
__attribute__((target(IKQ_VNNI_TARGET))) __attribute__((always_inline)) static inline void ikq_decode_pairs_vnni(
    const ikq_packed_matrix *w, const int8_t *q, const float *d, const float *s, float *out, int64_t g0, int64_t g1,
    const int CODE8, const int KIND, const int ROWSCALE) {
    const int64_t nb = w->cols / 32;
    const int shift = w->scale_shift;
    const int64_t nsc = nb >> shift, bb = CODE8 ? 256 : 128;
    const uint8_t *zeros = w->zeros;
    const uint16_t *scales = w->scales, *mins = w->mins;
    const float *row_scales = w->row_scales;
    const __m512i nib = _mm512_set1_epi8(0x0F);
    const float offset = KIND == IKQ_WEIGHT_OFFSET8 ? 8.0f : KIND == IKQ_WEIGHT_SIGNED8 ? 128.0f : 0.0f;
    for (int64_t g = g0; g + 2 <= g1; g += 2) {  // g is even
        const uint8_t *pair = w->codes + (g >> 1) * nb * 2 * bb;
        __m512 acc = _mm512_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *pb = pair + b * 2 * bb;
            for (int64_t o = 0; o < 2 * bb; o += 64) _mm_prefetch((const char *)(pb + IKQ_DECODE_AHEAD + o), _MM_HINT_NTA);
            const int8_t *xb = q + b * 32;
            __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
            if (CODE8) {
                for (int j = 0; j < 8; j += 2) {
                    a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512(pb + 64 * j), _mm512_set1_epi32(ikq_load_i32(xb + 4 * j)));
                    a1 = _mm512_dpbusd_epi32(a1, _mm512_loadu_si512(pb + 64 * j + 64), _mm512_set1_epi32(ikq_load_i32(xb + 4 * j + 4)));
                }
            } else {
                for (int j = 0; j < 4; j++) {
                    const __m512i v = _mm512_loadu_si512(pb + 64 * j);
                    a0 = _mm512_dpbusd_epi32(a0, _mm512_and_si512(v, nib), _mm512_set1_epi32(ikq_load_i32(xb + 8 * j)));
                    a1 = _mm512_dpbusd_epi32(a1, _mm512_and_si512(_mm512_srli_epi16(v, 4), nib), _mm512_set1_epi32(ikq_load_i32(xb + 8 * j + 4)));
                }
            }
            const float dx = d[b], sx = s[b];
            __m512 f = _mm512_cvtepi32_ps(_mm512_add_epi32(a0, a1));
            const int64_t si = ikq_side_index(g, nsc, b >> shift);
            if (KIND == IKQ_WEIGHT_ZERO) {
                const __m512 zv = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(zeros + si))));
                f = _mm512_fnmadd_ps(zv, _mm512_set1_ps(sx), f);
            } else if (offset != 0.0f) {
                f = _mm512_sub_ps(f, _mm512_set1_ps(offset * sx));
            }
            if (KIND == IKQ_WEIGHT_MIN) {
                const __m512 mv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(mins + ikq_side_index(g, nb, b))));
                acc = _mm512_fmadd_ps(mv, _mm512_set1_ps(dx * sx), acc);
            }
            if (ROWSCALE) {
                acc = _mm512_fmadd_ps(_mm512_set1_ps(dx), f, acc);
            } else {
                const __m512 sv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(scales + si)));
                acc = _mm512_fmadd_ps(_mm512_mul_ps(sv, _mm512_set1_ps(dx)), f, acc);
            }
        }
        if (ROWSCALE) acc = _mm512_mul_ps(acc, _mm512_loadu_ps(row_scales + g * 8));
        const int64_t valid = w->rows - g * 8 < 16 ? w->rows - g * 8 : 16;
        if (valid == 16) {
            _mm512_storeu_ps(out + g * 8, acc);
        } else {
            float tmp[16];
            _mm512_storeu_ps(tmp, acc);
            for (int r = 0; r < valid; r++) out[g * 8 + r] = tmp[r];
        }
    }
}

#define IKQ_DECODE_VARIANT(NAME, CODE8, KIND, ROWSCALE)                                                                  \
    __attribute__((target(IKQ_VNNI_TARGET))) __attribute__((noinline)) static void NAME(const ikq_packed_matrix *w,    \
        const int8_t *q, const float *d, const float *s, float *out, int64_t g0, int64_t g1) {                           \
        ikq_decode_pairs_vnni(w, q, d, s, out, g0, g1, CODE8, KIND, ROWSCALE);                                           \
    }
IKQ_DECODE_VARIANT(ikq_decode_q8_vnni, 1, IKQ_WEIGHT_SIGNED8, 0)
IKQ_DECODE_VARIANT(ikq_decode_i8_vnni, 1, IKQ_WEIGHT_SIGNED8, 1)
IKQ_DECODE_VARIANT(ikq_decode_q4_vnni, 0, IKQ_WEIGHT_OFFSET8, 0)
IKQ_DECODE_VARIANT(ikq_decode_q4min_vnni, 0, IKQ_WEIGHT_MIN, 0)
IKQ_DECODE_VARIANT(ikq_decode_q4zero_vnni, 0, IKQ_WEIGHT_ZERO, 0)

// Decode over groups [g0, g1) (g0 even): pairs through the specialised kernels, an odd last group through the 256-bit tile.
__attribute__((target(IKQ_VNNI_TARGET))) static void ikq_decode_vnni(const ikq_packed_matrix *w, const int8_t *q, const float *d,
    const float *s, float *out, int64_t g0, int64_t g1, const int CODE8, const int KIND) {
    const int64_t pairs_end = g0 + ((g1 - g0) & ~(int64_t)1);
    if (CODE8) {
        if (w->row_scales) ikq_decode_i8_vnni(w, q, d, s, out, g0, pairs_end);
        else ikq_decode_q8_vnni(w, q, d, s, out, g0, pairs_end);
    } else if (KIND == IKQ_WEIGHT_OFFSET8) ikq_decode_q4_vnni(w, q, d, s, out, g0, pairs_end);
    else if (KIND == IKQ_WEIGHT_MIN) ikq_decode_q4min_vnni(w, q, d, s, out, g0, pairs_end);
    else ikq_decode_q4zero_vnni(w, q, d, s, out, g0, pairs_end);
    if (pairs_end < g1) ikq_tile_vnni(w, q, d, s, out, 0, pairs_end, 0, 1, CODE8, KIND);
}

__attribute__((target(IKQ_VNNI_TARGET))) static void ikq_matmul_vnni_spec(const ikq_packed_matrix *w, const int8_t *q,
    const float *d, const float *s, int64_t tokens, float *out, int64_t os, int64_t g0, int64_t g1, const int CODE8, const int KIND) {
    // Pairs of groups in ZMM registers: 8 tokens at a time, then the remaining tokens one by one
    // (decode is the T = 1 case); an odd last group uses the 256-bit tile.
    if (g0 < g1 && (g0 & 1)) {  // an odd first group has no partner in its pair here: 256-bit tile
        int64_t t = 0;
        for (; t + 6 <= tokens; t += 6) ikq_tile_vnni(w, q, d, s, out, os, g0, t, 6, CODE8, KIND);
        for (; t < tokens; t++) ikq_tile_vnni(w, q, d, s, out, os, g0, t, 1, CODE8, KIND);
        g0++;
    }
    if (tokens == 1) { ikq_decode_vnni(w, q, d, s, out, g0, g1, CODE8, KIND); return; }
    const int TILE = 8;
    int64_t g = g0;
    for (; g + 2 <= g1; g += 2) {
        int64_t t = 0;
        for (; t + TILE <= tokens; t += TILE) ikq_pair_vnni512(w, q, d, s, out, os, g, t, TILE, CODE8, KIND);
        for (; t < tokens; t++) ikq_pair_vnni512(w, q, d, s, out, os, g, t, 1, CODE8, KIND);
    }
    for (; g < g1; g++) {
        int64_t t = 0;
        for (; t + 6 <= tokens; t += 6) ikq_tile_vnni(w, q, d, s, out, os, g, t, 6, CODE8, KIND);
        for (; t < tokens; t++) ikq_tile_vnni(w, q, d, s, out, os, g, t, 1, CODE8, KIND);
    }
}

__attribute__((target(IKQ_VNNI_TARGET))) static void ikq_matmul_vnni(const ikq_packed_matrix *w, const int8_t *q, const float *d,
    const float *s, int64_t tokens, float *out, int64_t os, int64_t g0, int64_t g1) {
    if (w->code_bits == 8) ikq_matmul_vnni_spec(w, q, d, s, tokens, out, os, g0, g1, 1, IKQ_WEIGHT_SIGNED8);
    else if (w->weight_kind == IKQ_WEIGHT_OFFSET8) ikq_matmul_vnni_spec(w, q, d, s, tokens, out, os, g0, g1, 0, IKQ_WEIGHT_OFFSET8);
    else if (w->weight_kind == IKQ_WEIGHT_MIN) ikq_matmul_vnni_spec(w, q, d, s, tokens, out, os, g0, g1, 0, IKQ_WEIGHT_MIN);
    else ikq_matmul_vnni_spec(w, q, d, s, tokens, out, os, g0, g1, 0, IKQ_WEIGHT_ZERO);
}
IKQ_DEFINE_DRIVER(ikq_matmul_avx2, IKQ_AVX2_TARGET, ikq_tile_avx2, 4)

#endif  // IKQ_X86

void ikq_matmul(const ikq_packed_matrix *w, const int8_t *q, const float *d, const float *s, int64_t tokens,
                float *out, int64_t out_stride, int64_t group_begin, int64_t group_end) {
    ikq_matmul_isa(ikq_active_isa(), w, q, d, s, tokens, out, out_stride, group_begin, group_end);
}

void ikq_matmul_isa(int isa, const ikq_packed_matrix *w, const int8_t *q, const float *d, const float *s, int64_t tokens,
                    float *out, int64_t out_stride, int64_t group_begin, int64_t group_end) {
    if (isa > ikq_detected_isa()) isa = ikq_detected_isa();
#if IKQ_X86
    if (isa == IKQ_ISA_AVX512_VNNI) { ikq_matmul_vnni(w, q, d, s, tokens, out, out_stride, group_begin, group_end); return; }
    if (isa == IKQ_ISA_AVX2) { ikq_matmul_avx2(w, q, d, s, tokens, out, out_stride, group_begin, group_end); return; }
#endif
    ikq_matmul_scalar(w, q, d, s, tokens, out, out_stride, group_begin, group_end);
}

// MARK: - Bandwidth probe
//
// Sums the buffer with the widest loads available, so the probe spends as little CPU per byte as the
// kernels do and measures the memory system, not instruction throughput.

#if IKQ_X86
__attribute__((target("avx2"))) __attribute__((always_inline)) static inline uint64_t ikq_probe_avx2_body(const uint8_t *p, size_t bytes,
                                                                                                          const int PREFETCH) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 128 <= bytes; i += 128) {
        if (PREFETCH) {  // the same non-temporal prefetch distance as the decode kernels
            _mm_prefetch((const char *)(p + i + IKQ_DECODE_AHEAD), _MM_HINT_NTA);
            _mm_prefetch((const char *)(p + i + IKQ_DECODE_AHEAD + 64), _MM_HINT_NTA);
        }
        a0 = _mm256_add_epi64(a0, _mm256_loadu_si256((const __m256i *)(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_loadu_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_loadu_si256((const __m256i *)(p + i + 96)));
    }
    const __m256i a = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, a);
    uint64_t sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    for (; i < bytes; i++) sum += p[i];
    return sum;
}
__attribute__((target("avx2"))) static uint64_t ikq_probe_avx2(const uint8_t *p, size_t bytes) { return ikq_probe_avx2_body(p, bytes, 0); }
__attribute__((target("avx2"))) static uint64_t ikq_probe_avx2_prefetching(const uint8_t *p, size_t bytes) { return ikq_probe_avx2_body(p, bytes, 1); }
#endif

uint64_t ikq_read_bandwidth_probe_prefetching(const void *p, size_t bytes) {
#if IKQ_X86
    if (ikq_detected_isa() >= IKQ_ISA_AVX2) return ikq_probe_avx2_prefetching((const uint8_t *)p, bytes);
#endif
    return ikq_read_bandwidth_probe(p, bytes);
}

uint64_t ikq_read_bandwidth_probe(const void *p, size_t bytes) {
#if IKQ_X86
    if (ikq_detected_isa() >= IKQ_ISA_AVX2) return ikq_probe_avx2((const uint8_t *)p, bytes);
#endif
    const uint64_t *u = (const uint64_t *)p;
    const size_t n = bytes / 8;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        a0 += u[i]; a1 += u[i + 1]; a2 += u[i + 2]; a3 += u[i + 3];
        a4 += u[i + 4]; a5 += u[i + 5]; a6 += u[i + 6]; a7 += u[i + 7];
    }
    for (; i < n; i++) a0 += u[i];
    return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}
