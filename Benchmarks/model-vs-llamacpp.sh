#!/usr/bin/env bash
# inferkit bench model vs llama-bench on the same GGUF file, the same threads, in alternating rounds
# (the machines are shared and noisy: compare the medians of rounds run side by side).
#
#   Benchmarks/model-vs-llamacpp.sh [ROUNDS] [OUT_DIR]
# Needs: a release build of inferkit (swift build -c release --product inferkit) and llama.cpp built by
# Benchmarks/llama-cpp/build.sh (LLAMA_BENCH overrides its path). ISA=avx2 forces the AVX2 kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
OUT=${2:-Documentation/benchmarks/model-run}
. Benchmarks/side-by-side.sh
LLAMA_BENCH=${LLAMA_BENCH:-/tmp/llama.cpp-build/build/bin/llama-bench}
need_tool "$LLAMA_BENCH" llama-bench
write_machine "$OUT"
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r: inferkit" >&2
  "$INFERKIT" bench model "$MODEL" -p 512 -n 128 -r 3 -t "$THREADS" $ISA_FLAG --json > "$OUT/inferkit-$r.json" 2> /dev/null
  echo "round $r: llama-bench" >&2
  "$LLAMA_BENCH" -m "$MODEL" -t "$THREADS" -p 512 -n 128 -r 3 -o json > "$OUT/llama-bench-$r.json" 2> /dev/null
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
ik = {"pp512": [], "tg128": []}; ll = {"pp512": [], "tg128": []}
for r in range(1, rounds + 1):
    for row in json.load(open(f"{out}/inferkit-{r}.json"))["results"]:
        ik[row["test"]].append(row["t/s"])
    for row in json.load(open(f"{out}/llama-bench-{r}.json")):
        key = f"pp{row['n_prompt']}" if row["n_prompt"] else f"tg{row['n_gen']}"
        ll[key].append(row["avg_ts"])
lines = ["| test | inferkit t/s (rounds) | llama.cpp t/s (rounds) | median ratio |", "|---|---|---|---:|"]
for k in ("pp512", "tg128"):
    ratio = statistics.median(ik[k]) / statistics.median(ll[k])
    lines.append(f"| {k} | {', '.join(f'{v:.1f}' for v in ik[k])} | {', '.join(f'{v:.1f}' for v in ll[k])} | {ratio:.2f}× |")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
