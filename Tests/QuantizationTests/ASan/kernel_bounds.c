// Bounds check of the quantized kernels under AddressSanitizer, independent of the Swift packer.
//
// Every buffer is allocated at exactly the size the layout in CInferenceKitQuantKernels.h documents
// (no slack), filled with random bytes, and each path (scalar, AVX2, AVX-512 VNNI, as far as this CPU
// has them) runs over every weight kind, odd row counts (1 … 19: a lone group, a group pair, a tail
// group), K from 32 to 416 (one block, odd block counts, group-of-64/128 scale sharing), token counts
// 1 … 13 (full tiles plus tails) and arbitrary [group_begin, group_end) ranges, writing into an output
// exactly [tokens, rows]. Any read or write outside a buffer aborts with an ASan report.
//
//   clang -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
//     -I Sources/CInferenceKitQuantKernels/include Sources/CInferenceKitQuantKernels/kernels.c Sources/CInferenceKitQuantKernels/pool.c \
//     Tests/QuantizationTests/ASan/kernel_bounds.c -lm -lpthread -o /tmp/kernel_bounds && /tmp/kernel_bounds
//
// (Not part of the Swift test target — SwiftPM excludes this directory — but `make test` runs it
// through `make sanitize`.)
#include "CInferenceKitQuantKernels.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define IKQ_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IKQ_TEST_TSAN 1
#endif
#endif
#ifndef IKQ_TEST_TSAN
#define IKQ_TEST_TSAN 0
#endif

static uint64_t state = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void *exact(size_t n) {
    uint8_t *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)next();
    return p;
}

// Finite Float16 bits (exponent < 31) so the products stay finite; values do not matter for bounds.
static uint16_t *f16s(size_t n) {
    uint16_t *p = malloc(n ? n * 2 : 1);
    for (size_t i = 0; i < n; i++) p[i] = (uint16_t)(next() & 0xBBFF);
    return p;
}

// Two threads calling ikq_matmul_pooled at once on one shared matrix: each call either runs the whole
// product (0; the result must equal ikq_matmul_isa over all groups bit for bit, since the pool splits
// at even groups and every group pair is computed by the same code) or declines (-1) leaving the
// output untouched (NaN sentinels). Run under TSan for the pool's synchronisation.
typedef struct {
    int isa, threads;
    const ikq_packed_matrix *w;
    const int8_t *q;
    const float *d, *s, *ref;
    int64_t tokens;
    long ran, declined, wrong;
} pool_caller;

static void *pool_caller_run(void *arg) {
    pool_caller *c = arg;
    const int64_t n = c->tokens * c->w->rows;
    float *out = malloc((size_t)n * sizeof(float));
    for (int it = 0; it < 300; it++) {
        for (int64_t i = 0; i < n; i++) out[i] = NAN;
        const int rc = ikq_matmul_pooled(c->isa, c->w, c->q, c->d, c->s, c->tokens, out, c->w->rows, c->threads);
        if (rc == 0) {
            c->ran++;
            if (memcmp(out, c->ref, (size_t)n * sizeof(float)) != 0) c->wrong++;
        } else if (rc == -1) {
            c->declined++;
            for (int64_t i = 0; i < n; i++)
                if (!isnan(out[i])) { c->wrong++; break; }
        } else {
            c->wrong++;
        }
    }
    free(out);
    return NULL;
}

static int concurrent_pool_callers(int isa) {
    const int64_t rows = 203, nb = 13, cols = nb * 32, groups = (rows + 7) / 8, pairs = (groups + 1) / 2;
    uint8_t *codes = exact((size_t)(pairs * nb * 2 * 128));
    uint16_t *scales = f16s((size_t)(pairs * nb * 16));
    ikq_packed_matrix w = {.rows = rows, .cols = cols, .code_bits = 4, .weight_kind = IKQ_WEIGHT_OFFSET8, .scale_shift = 0,
                           .codes = codes, .scales = scales};
    int failures = 0;
    for (int64_t tokens = 1; tokens <= 3; tokens += 2) {
        float *x = malloc((size_t)(tokens * cols) * sizeof(float));
        for (int64_t i = 0; i < tokens * cols; i++) x[i] = (float)((int64_t)(next() % 2001) - 1000) / 100.0f;
        int8_t *q = malloc((size_t)(tokens * cols));
        float *d = malloc((size_t)(tokens * nb) * sizeof(float)), *s = malloc((size_t)(tokens * nb) * sizeof(float));
        ikq_quantize_activations(x, tokens, cols, q, d, s);
        float *ref = malloc((size_t)(tokens * rows) * sizeof(float));
        ikq_matmul_isa(isa, &w, q, d, s, tokens, ref, rows, 0, groups);
        pool_caller callers[2] = {{isa, 2, &w, q, d, s, ref, tokens, 0, 0, 0}, {isa, 4, &w, q, d, s, ref, tokens, 0, 0, 0}};
        pthread_t threads[2];
        for (int i = 0; i < 2; i++) pthread_create(&threads[i], NULL, pool_caller_run, &callers[i]);
        for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
        for (int i = 0; i < 2; i++) {
            if (callers[i].wrong || callers[i].ran + callers[i].declined != 300) {
                fprintf(stderr, "kernel_bounds: concurrent pool caller %d (isa %d, tokens %lld): %ld wrong of %ld run, %ld declined\n", i, isa,
                        (long long)tokens, callers[i].wrong, callers[i].ran, callers[i].declined);
                failures++;
            }
        }
        printf("kernel_bounds: concurrent pool callers (isa %d, tokens %lld): ran %ld + %ld, declined %ld + %ld\n", isa, (long long)tokens,
               callers[0].ran, callers[1].ran, callers[0].declined, callers[1].declined);
        free(x); free(q); free(d); free(s); free(ref);
    }
    free(codes); free(scales);
    return failures;
}

int main(void) {
    long runs = 0;
    const int detected = ikq_detected_isa();
    for (int isa = 0; isa <= detected; isa++) {
        for (int kind = 0; kind < 5; kind++) {  // 0 Q8_0, 1 INT8 row scales, 2 Q4_0, 3 Q4_1, 4 INT4 asymmetric
            for (int shift = 0; shift <= (kind >= 2 ? 2 : 0); shift++) {
                if (kind == 3 && shift) continue;  // Q4_1 has one scale per block
                for (int64_t rows = 1; rows <= 19; rows += (rows < 9 ? 1 : 2)) {
                    for (int64_t nb = 1 << shift; nb * 32 <= 416; nb += (1 << shift) * (nb < 4 ? 1 : 3)) {
                        const int64_t cols = nb * 32, groups = (rows + 7) / 8, pairs = (groups + 1) / 2, nsc = nb >> shift;
                        const int code8 = kind <= 1;
                        uint8_t *codes = exact((size_t)(pairs * nb * 2 * (code8 ? 256 : 128)));
                        uint16_t *scales = kind == 1 ? NULL : f16s((size_t)(pairs * nsc * 16));
                        float *row_scales = NULL;
                        if (kind == 1) {
                            row_scales = malloc((size_t)(pairs * 16) * sizeof(float));
                            for (int64_t i = 0; i < pairs * 16; i++) row_scales[i] = (float)(next() % 1000) / 1e5f;
                        }
                        uint16_t *mins = kind == 3 ? f16s((size_t)(pairs * nb * 16)) : NULL;
                        uint8_t *zeros = kind == 4 ? exact((size_t)(pairs * nsc * 16)) : NULL;
                        ikq_packed_matrix w = {
                            .rows = rows, .cols = cols, .code_bits = code8 ? 8 : 4,
                            .weight_kind = kind <= 1 ? IKQ_WEIGHT_SIGNED8 : kind == 2 ? IKQ_WEIGHT_OFFSET8 : kind == 3 ? IKQ_WEIGHT_MIN : IKQ_WEIGHT_ZERO,
                            .scale_shift = shift, .codes = codes, .scales = scales, .row_scales = row_scales, .mins = mins, .zeros = zeros,
                        };
                        for (int64_t tokens = 1; tokens <= 13; tokens += (tokens < 9 ? 1 : 4)) {
                            float *x = malloc((size_t)(tokens * cols) * sizeof(float));
                            for (int64_t i = 0; i < tokens * cols; i++) x[i] = (float)((int64_t)(next() % 2001) - 1000) / 100.0f;
                            int8_t *q = malloc((size_t)(tokens * cols));
                            float *d = malloc((size_t)(tokens * nb) * sizeof(float)), *s = malloc((size_t)(tokens * nb) * sizeof(float));
                            ikq_quantize_activations(x, tokens, cols, q, d, s);
                            float *out = malloc((size_t)(tokens * rows) * sizeof(float));
                            // The whole matrix, then a random split into two ranges (odd boundaries included).
                            ikq_matmul_isa(isa, &w, q, d, s, tokens, out, rows, 0, groups);
                            const int64_t mid = (int64_t)(next() % (uint64_t)(groups + 1));
                            ikq_matmul_isa(isa, &w, q, d, s, tokens, out, rows, 0, mid);
                            ikq_matmul_isa(isa, &w, q, d, s, tokens, out, rows, mid, groups);
                            // The persistent pool with 1 … 4 parts (it may decline when busy; here it never is).
                            if (ikq_matmul_pooled(isa, &w, q, d, s, tokens, out, rows, 1 + (int)(next() % 4)) != 0) {
                                fprintf(stderr, "kernel_bounds: the pool declined a job with no other caller\n");
                                return 1;
                            }
                            runs += 4;
                            free(x); free(q); free(d); free(s); free(out);
                        }
                        free(codes); free(scales); free(row_scales); free(mins); free(zeros);
                    }
                }
            }
        }
    }
    for (int isa = 0; isa <= detected; isa++)
        if (concurrent_pool_callers(isa)) return 1;
    // fork() after the pool has started workers: the child has none of them; its first pooled call
    // must start its own (not wait forever for the parent's) and match the unpooled product.
    // (Skipped under ThreadSanitizer, which does not support threads started after a fork.)
#if !IKQ_TEST_TSAN
    {
        const int64_t rows = 64, cols = 256, nb = cols / 32, pairs = (rows / 8 + 1) / 2;
        uint8_t *codes = exact((size_t)(pairs * nb * 2 * 128));
        uint16_t *scales = f16s((size_t)(pairs * nb * 16));
        ikq_packed_matrix w = {.rows = rows, .cols = cols, .code_bits = 4, .weight_kind = IKQ_WEIGHT_OFFSET8,
                               .scale_shift = 0, .codes = codes, .scales = scales};
        float x[256];
        for (int i = 0; i < 256; i++) x[i] = (float)((int64_t)(next() % 2001) - 1000) / 100.0f;
        int8_t q[256];
        float d[8], s[8], a[64], b[64];
        ikq_quantize_activations(x, 1, cols, q, d, s);
        if (ikq_matmul_pooled(ikq_active_isa(), &w, q, d, s, 1, a, rows, 2) != 0) return 1;
        fflush(stdout);
        const pid_t child = fork();
        if (child == 0) {
            memset(b, 0, sizeof b);
            alarm(20);  // a hang (waiting for the parent's workers) ends the child with SIGALRM
            if (ikq_matmul_pooled(ikq_active_isa(), &w, q, d, s, 1, b, rows, 2) != 0) _exit(2);
            _exit(memcmp(a, b, sizeof a) == 0 ? 0 : 3);
        }
        int status = 0;
        waitpid(child, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "kernel_bounds: pooled product in a forked child failed (status %d)\n", status);
            return 1;
        }
        free(codes);
        free(scales);
    }
#endif
    char probe[1000];
    memset(probe, 1, sizeof probe);
    const uint64_t sum = ikq_read_bandwidth_probe(probe, 999);  // a length that is not a multiple of 8 or 128
    printf("kernel_bounds: %ld kernel calls on paths 0…%d (probe %llx): no out-of-bounds access\n", runs, detected, (unsigned long long)sum);
    return 0;
}
