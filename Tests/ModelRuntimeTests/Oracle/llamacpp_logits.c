// Cross-check helper for llama_oracle.py (not part of InferenceKit; built and run by
// crosscheck.sh against the llama.cpp that Benchmarks/llama-cpp/build.sh builds).
// Evaluates token-id prompts with libllama and writes, for each prompt, the float32 logits of
// every prompt position followed by those of each greedy step, plus the greedy tokens.
//   llamacpp_logits MODEL IDS_FILE OUT_PREFIX STEPS THREADS
// IDS_FILE: one prompt per line, space-separated token ids.
// Writes OUT_PREFIX.<k>.f32 (rows of n_vocab floats: the prompt positions, then STEPS rows, the
// logits after feeding each greedy token) and prints "k greedy id id ..." lines on stdout.
// EXACT=1 in the environment: F32 K/V cache and no flash attention (llama.cpp's defaults are an
// F16 cache and flash attention "auto").
#include "llama.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: %s MODEL IDS OUT_PREFIX STEPS THREADS\n", argv[0]); return 2; }
    int steps = atoi(argv[4]), threads = atoi(argv[5]);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "load failed\n"); return 1; }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    int nv = llama_vocab_n_tokens(vocab);
    FILE *in = fopen(argv[2], "r");
    if (!in) { perror("ids"); return 1; }
    char line[65536];
    int k = 0;
    while (fgets(line, sizeof line, in)) {
        llama_token ids[4096]; int n = 0;
        for (char *t = strtok(line, " \t\r\n"); t && n < 4096; t = strtok(NULL, " \t\r\n")) ids[n++] = atoi(t);
        if (n == 0) continue;
        struct llama_context_params cp = llama_context_default_params();
        cp.n_ctx = 512; cp.n_batch = 512; cp.n_ubatch = 512; cp.n_threads = threads; cp.n_threads_batch = threads;
        cp.no_perf = true;
        if (getenv("EXACT")) {   // F32 KV cache, no flash attention: no F16 rounding of K/V
            cp.type_k = GGML_TYPE_F32; cp.type_v = GGML_TYPE_F32;
            cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
        }
        struct llama_context *ctx = llama_init_from_model(model, cp);
        if (!ctx) { fprintf(stderr, "ctx failed\n"); return 1; }
        char path[4096]; snprintf(path, sizeof path, "%s.%d.f32", argv[3], k);
        FILE *out = fopen(path, "wb");
        struct llama_batch b = llama_batch_init(n, 0, 1);
        for (int i = 0; i < n; i++) {
            b.token[i] = ids[i]; b.pos[i] = i; b.n_seq_id[i] = 1; b.seq_id[i][0] = 0; b.logits[i] = 1;
        }
        b.n_tokens = n;
        if (llama_decode(ctx, b)) { fprintf(stderr, "decode failed\n"); return 1; }
        for (int i = 0; i < n; i++) fwrite(llama_get_logits_ith(ctx, i), sizeof(float), nv, out);
        llama_batch_free(b);
        printf("%d greedy", k);
        const float *last = llama_get_logits_ith(ctx, n - 1);
        struct llama_batch one = llama_batch_init(1, 0, 1);
        for (int s = 0; s < steps; s++) {
            int best = 0;
            for (int j = 1; j < nv; j++) if (last[j] > last[best]) best = j;
            printf(" %d", best);
            one.token[0] = best; one.pos[0] = n + s; one.n_seq_id[0] = 1; one.seq_id[0][0] = 0; one.logits[0] = 1;
            one.n_tokens = 1;
            if (llama_decode(ctx, one)) { fprintf(stderr, "decode failed\n"); return 1; }
            last = llama_get_logits_ith(ctx, 0);
            fwrite(last, sizeof(float), nv, out);
        }
        printf("\n");
        fflush(stdout);
        llama_batch_free(one);
        fclose(out);
        llama_free(ctx);
        k++;
    }
    llama_model_free(model);
    return 0;
}
