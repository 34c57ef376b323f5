#!/usr/bin/env bash
# Validates llama_oracle.py (and the committed fixture) against llama.cpp, twice:
#   exact : llama.cpp on an F32 copy of the model (dequantized by llama.cpp's own llama-quantize),
#           F32 K/V cache, no flash attention — the oracle's arithmetic in float32; expect every
#           top-1 and greedy token equal and max |dlogit| ~ 1e-5 (--require-exact enforces it).
#   stock : llama.cpp on the Q4_1 file with its defaults (activations quantized to 8 bits for the
#           quantized matmuls, F16 K/V cache, flash attention auto) — how far a production
#           kernel path drifts from the float64 reference; near-ties may flip.
# Needs the llama.cpp build of Benchmarks/llama-cpp/build.sh (its build dir: $1, LLAMA_CPP_BUILD_DIR
# or /tmp/llama.cpp-build) and the oracle's Python packages (README.md). Writes only to a temp dir.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
LB="${1:-${LLAMA_CPP_BUILD_DIR:-/tmp/llama.cpp-build}}"
PY="${PYTHON:-python3}"
MODEL="${MODEL:-$ROOT/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
FIXTURE="${FIXTURE:-$ROOT/Tests/ModelRuntimeTests/Fixtures/smollm2-oracle.json}"
THREADS="${THREADS:-2}"
SRC="$(ls -d "$LB"/src/*/vendor/llama.cpp | head -n 1)"
BUILD="$LB/build"
[ -f "$BUILD/src/libllama.a" ] || { echo "error: no llama.cpp build in $LB (run Benchmarks/llama-cpp/build.sh)" >&2; exit 1; }
WORK="$(mktemp -d /tmp/oracle-crosscheck.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

nice -n 10 cmake --build "$BUILD" -j 2 --target llama-quantize llama-tokenize >/dev/null
nice -n 10 gcc -O2 -c "$HERE/llamacpp_logits.c" -o "$WORK/llamacpp_logits.o" -I"$SRC/include" -I"$SRC/ggml/include"
nice -n 10 g++ "$WORK/llamacpp_logits.o" -o "$WORK/llamacpp_logits" "$BUILD/src/libllama.a" \
  "$BUILD/ggml/src/libggml.a" "$BUILD/ggml/src/libggml-cpu.a" "$BUILD/ggml/src/libggml-base.a" -fopenmp -lpthread -lm -ldl
"$BUILD/bin/llama-quantize" --allow-requantize "$MODEL" "$WORK/model-f32.gguf" F32 >"$WORK/quantize.log" 2>&1

"$PY" -c 'import json, sys
for p in json.load(open(sys.argv[1], encoding="utf-8"))["prompts"]:
    print(" ".join(map(str, p["token_ids"])))' "$FIXTURE" >"$WORK/ids.txt"
steps="$("$PY" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["prompts"][0]["greedy_continuation"]))' "$FIXTURE")"

mkdir -p "$WORK/exact" "$WORK/stock"
EXACT=1 nice -n 10 "$WORK/llamacpp_logits" "$WORK/model-f32.gguf" "$WORK/ids.txt" "$WORK/exact/ll" "$steps" "$THREADS" \
  >"$WORK/exact/greedy_llama.txt" 2>"$WORK/exact/llama.log"
nice -n 10 "$WORK/llamacpp_logits" "$MODEL" "$WORK/ids.txt" "$WORK/stock/ll" "$steps" "$THREADS" \
  >"$WORK/stock/greedy_llama.txt" 2>"$WORK/stock/llama.log"

echo "== exact: llama.cpp, F32 weights (llama-quantize F32), F32 K/V, no flash attention"
nice -n 10 "$PY" "$HERE/crosscheck.py" --model "$MODEL" --fixture "$FIXTURE" --dumps "$WORK/exact" \
  --llama-tokenize "$BUILD/bin/llama-tokenize" --require-exact
echo "== stock: llama.cpp defaults on the Q4_1 file"
nice -n 10 "$PY" "$HERE/crosscheck.py" --model "$MODEL" --fixture "$FIXTURE" --dumps "$WORK/stock"
