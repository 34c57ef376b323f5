// CInferenceKitQuantKernels — quantized matrix products on the CPU.
//
// Plain C with no special build flags. The hot loops are compiled three times inside this
// target: with __attribute__((target("avx512…,avx512vnni"))) (VPDPBUSD), with
// __attribute__((target("avx2,fma,f16c"))) (VPMADDUBSW), and as portable scalar C. The
// first call picks the best version the CPU (and OS) supports through CPUID/XGETBV, so a
// package depending on InferenceKit needs no flags and a CPU without AVX-512 gets correct
// results from the AVX2 or scalar path. Tests force each path with ikq_set_isa.
#ifndef CINFERENCEKIT_QUANT_KERNELS_H
#define CINFERENCEKIT_QUANT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Instruction-set paths, best last.
enum { IKQ_ISA_SCALAR = 0, IKQ_ISA_AVX2 = 1, IKQ_ISA_AVX512_VNNI = 2 };

/// How a code becomes a weight (s = scale of the block or row).
enum {
    IKQ_WEIGHT_SIGNED8 = 0,  ///< 8-bit codes stored as q + 128 (offset binary): w = s·q  (Q8_0, INT8)
    IKQ_WEIGHT_OFFSET8 = 1,  ///< 4-bit codes u: w = s·(u − 8)                          (Q4_0, INT4 symmetric)
    IKQ_WEIGHT_MIN = 2,      ///< 4-bit codes u: w = s·u + m, m per block (Float16)      (Q4_1)
    IKQ_WEIGHT_ZERO = 3,     ///< 4-bit codes u: w = s·(u − z), z per group (uint8)       (INT4 asymmetric)
};

/// A weight matrix [rows, cols] repacked for the kernels: rows in groups of 8, groups in pairs
/// (2p, 2p + 1), K in blocks of 32.
///
/// A group's block is a run of 32-byte chunks; chunk j of group g holds, at byte r·4 + t,
///   8-bit (8 chunks):  the code of row r, k = 4j + t;
///   4-bit (4 chunks):  k = 8j + t in the low nibble and k = 8j + 4 + t in the high nibble.
/// codes:  [pair][block][chunk j][64 bytes: group 2p's chunk j, then group 2p + 1's], so one 64-byte
///         load feeds 16 rows and a range of pairs is one contiguous stream.
/// scales: Float16 bits [pair][cols/32 >> scale_shift][16] (lane (g & 1)·8 + r), or row_scales
///         Float32 [pairs·16] (index g·8 + r) when non-NULL.
/// mins:   Float16 bits [pair][cols/32][16] (IKQ_WEIGHT_MIN).
/// zeros:  uint8 [pair][cols/32 >> scale_shift][16] (IKQ_WEIGHT_ZERO).
/// Every array covers ceil(groups / 2) pairs; rows past `rows` (and an unpaired last group) are zero
/// and never written out.
typedef struct ikq_packed_matrix {
    int64_t rows;
    int64_t cols;
    int32_t code_bits;
    int32_t weight_kind;
    int32_t scale_shift;
    int32_t reserved;
    const uint8_t *codes;
    const uint16_t *scales;
    const float *row_scales;
    const uint16_t *mins;
    const uint8_t *zeros;
} ikq_packed_matrix;

/// The best path this CPU supports.
int ikq_detected_isa(void);
/// The path in use (the detected one unless lowered by ikq_set_isa).
int ikq_active_isa(void);
/// Uses `isa` if this CPU supports it, otherwise the best supported below it; returns the path now in use.
int ikq_set_isa(int isa);

/// Quantizes activations x [tokens, cols] (cols a multiple of 32) to 8-bit blocks of 32:
/// d = max|x|/127, q = round(x/d); writes q [tokens, cols], d [tokens, cols/32] and
/// s [tokens, cols/32] = Σq of each block (as float).
void ikq_quantize_activations(const float *x, int64_t tokens, int64_t cols, int8_t *q, float *d, float *s);

/// out[t·out_stride + n] = Σ_k W[n, k] · x[t, k] for row groups [group_begin, group_end) and every
/// token, from the quantized activations of ikq_quantize_activations.
void ikq_matmul(const ikq_packed_matrix *w, const int8_t *q, const float *d, const float *s, int64_t tokens,
                float *out, int64_t out_stride, int64_t group_begin, int64_t group_end);

/// ikq_matmul on a given path (capped at the detected one), without changing the process-wide choice.
void ikq_matmul_isa(int isa, const ikq_packed_matrix *w, const int8_t *q, const float *d, const float *s, int64_t tokens,
                    float *out, int64_t out_stride, int64_t group_begin, int64_t group_end);

/// ikq_matmul_isa over every row group, split into `threads` parts (even group boundaries; at most one
/// per online CPU and one per group pair) run on a persistent pool: the caller runs part 0, pool
/// threads the others. Workers spin briefly after each
/// job so back-to-back products start without a kernel wake-up, then sleep. One job at a time:
/// returns -1 without doing anything when another thread is using the pool (or threads cannot be
/// started), so the caller can fall back to its own threads; 0 when the product is done.
int ikq_matmul_pooled(int isa, const ikq_packed_matrix *w, const int8_t *q, const float *d, const float *s, int64_t tokens,
                      float *out, int64_t out_stride, int threads);

/// Runs fn(context, part, parts) for part 0 … parts − 1 on the same pool as ikq_matmul_pooled (part 0 on the
/// caller), so other work between products (attention, say) uses the threads that are already spinning
/// instead of waking a second set. `parts` is capped at the online CPUs; `fn` receives the capped count.
/// Returns -1 without calling fn when the pool is busy or cannot start threads, 0 when every part ran.
int ikq_parallel_pooled(void (*fn)(void *context, int part, int parts), void *context, int parts);

/// Streams `bytes` bytes from `p` (summing 64-bit words) — the read-bandwidth probe of the benchmark.
uint64_t ikq_read_bandwidth_probe(const void *p, size_t bytes);
/// The probe with the decode kernels' non-temporal software prefetch (the benchmark takes the faster of the two).
uint64_t ikq_read_bandwidth_probe_prefetching(const void *p, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif
