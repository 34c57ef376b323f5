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

#ifdef __cplusplus
}
#endif

#endif
