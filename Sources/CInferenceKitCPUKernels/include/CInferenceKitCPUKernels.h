// CInferenceKitCPUKernels — single-precision CPU kernels that BLAS does not serve well.
//
// Plain C with no special build flags. Each kernel is compiled three times inside this target:
// with __attribute__((target("avx512f"))), with __attribute__((target("avx2,fma"))) and as
// portable scalar C. The first call picks the best version the CPU supports
// (__builtin_cpu_supports); tests force the lower paths with ikc_set_isa.
#ifndef CINFERENCEKIT_CPU_KERNELS_H
#define CINFERENCEKIT_CPU_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Instruction-set paths, best last.
enum { IKC_ISA_SCALAR = 0, IKC_ISA_AVX2 = 1, IKC_ISA_AVX512 = 2 };

/// The best path this CPU supports.
int ikc_detected_isa(void);
/// The path in use (the detected one unless lowered by ikc_set_isa).
int ikc_active_isa(void);
/// Uses `isa` if this CPU supports it, otherwise the best supported below it; returns the path now in use.
int ikc_set_isa(int isa);

/// Partial attention of `rows` query rows against the keys [key_begin, key_end) of one KV head.
///
/// q:   [rows, d] queries (contiguous).
/// k,v: [Tk, d] keys and values of the head (row j at k + j·d); only rows key_begin..<key_end are read.
/// visible: per query row, the number of leading keys it may see (keys j ≥ visible[r] are masked);
///          NULL: every key is visible.
/// scale: the score scale (usually 1/√d).
/// Writes per row r: m[r] = the largest visible score·scale·log2(e) in the range (−∞ when the row
/// sees no key there), l[r] = Σ 2^(score·scale·log2e − m[r]), and acc[r·d ..< r·d + d] =
/// Σ 2^(…) · v[j] (unnormalised). K is read once for all rows, then V once (per chunk of keys).
void ikc_attention_partial(const float *q, const float *k, const float *v, int64_t rows, int64_t d,
                           int64_t key_begin, int64_t key_end, const int64_t *visible, float scale,
                           float *m, float *l, float *acc);

/// Same, with an explicit path (clamped to what the CPU supports).
void ikc_attention_partial_isa(int isa, const float *q, const float *k, const float *v, int64_t rows, int64_t d,
                               int64_t key_begin, int64_t key_end, const int64_t *visible, float scale,
                               float *m, float *l, float *acc);

/// Merges `parts` partial results of the same rows and writes the normalised output.
///
/// m, l: [parts, rows]; acc: [parts, rows, d]; out: [rows, d].
/// out[r] = Σ_p 2^(m_p − M) acc_p[r] / Σ_p 2^(m_p − M) l_p[r], M = max_p m_p[r].
/// A row whose every part saw no key is written as zeros.
void ikc_attention_merge(int64_t parts, int64_t rows, int64_t d, const float *m, const float *l, const float *acc,
                         float *out);

/// Attention of `rows` query rows of one KV head against keys in a paged cache, normalised.
///
/// q:          [rows, d] queries (contiguous), e.g. the query heads of one KV head for a few tokens.
/// k_cache,
/// v_cache:    [blocks, block_size, …] with key `j` of block `b` at `(b·block_size + j)·row_stride + head_offset`
///             (KVPaging's `[blocks, block_size, Hkv, D]` layout: row_stride = Hkv·D, head_offset = h·D).
/// block_table: the sequence's blocks in position order; position p lives in block_table[p / block_size].
/// visible:    per row, how many leading positions it sees (a causal row at position p sees p + 1).
/// out:        [rows, d] softmax(q·kᵀ·scale)·v; a row that sees no key is zeros.
/// Returns 0, or −1 (nothing written) when rows > 256, d ≤ 0, block_size ≤ 0 or row_stride < d.
int ikc_paged_attention(const float *q, int64_t rows, int64_t d, const float *k_cache, const float *v_cache,
                        int64_t block_size, int64_t row_stride, int64_t head_offset, const int32_t *block_table,
                        const int64_t *visible, float scale, float *out);

/// Paged attention over half-precision (IEEE binary16) K and V. Row j of logical block b of the head
/// starts at element block_table[b]·block_stride + head_offset + j·row_stride: block_stride =
/// block_size·row_stride for the token-major layout of ikc_paged_attention ([blocks, block_size, Hkv, D]),
/// or Hkv·block_size·D with row_stride = D and head_offset = h·block_size·D for the head-major layout
/// ([blocks, Hkv, block_size, D], one contiguous run per head and block). Each piece of 16 keys is
/// converted to float (F16C / AVX-512 when present) and run through the float kernels, so a row's result
/// does not depend on the other rows. Returns −1 (nothing written) also when d > 256 or block_stride is
/// smaller than block_size·row_stride.
int ikc_paged_attention_half(const float *q, int64_t rows, int64_t d, const uint16_t *k_cache, const uint16_t *v_cache,
                             int64_t block_size, int64_t block_stride, int64_t row_stride, int64_t head_offset,
                             const int32_t *block_table, const int64_t *visible, float scale, float *out);
int ikc_paged_attention_half_isa(int isa, const float *q, int64_t rows, int64_t d, const uint16_t *k_cache,
                                 const uint16_t *v_cache, int64_t block_size, int64_t block_stride, int64_t row_stride,
                                 int64_t head_offset, const int32_t *block_table, const int64_t *visible, float scale, float *out);

/// binary32 → binary16 with round-to-nearest-even (K/V writes), and back.
void ikc_float_to_half(const float *src, uint16_t *dst, int64_t n);
void ikc_float_to_half_isa(int isa, const float *src, uint16_t *dst, int64_t n);
void ikc_half_to_float_array(const uint16_t *src, float *dst, int64_t n);

/// Same, with an explicit path (clamped to what the CPU supports).
int ikc_paged_attention_isa(int isa, const float *q, int64_t rows, int64_t d, const float *k_cache, const float *v_cache,
                            int64_t block_size, int64_t row_stride, int64_t head_offset, const int32_t *block_table,
                            const int64_t *visible, float scale, float *out);

/// SwiGLU: out[i] = gate[i] · sigmoid(gate[i]) · up[i] for i < n (the exponential as a degree-6 polynomial
/// of 2^f on the vector paths, relative error ≈ 1e-7; expf on the scalar path). `out` may alias `gate`.
void ikc_silu_mul(const float *gate, const float *up, float *out, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
