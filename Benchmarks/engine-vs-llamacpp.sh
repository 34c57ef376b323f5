#!/usr/bin/env bash
# inferkit bench engine vs llama-batched-bench on the same GGUF file and threads, in alternating rounds
# (the machines are shared and noisy: compare the medians of rounds run side by side).
#
#   Benchmarks/engine-vs-llamacpp.sh [ROUNDS] [OUT_DIR]
# Needs: a release build of inferkit (swift build -c release --product inferkit) and llama.cpp built by
# Benchmarks/llama-cpp/build.sh (LLAMA_BATCHED_BENCH overrides its path). ISA=avx2 forces the AVX2 kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
OUT=${2:-Documentation/benchmarks/engine-run}
. Benchmarks/side-by-side.sh
NPL=${NPL:-1,4,8,16,32,64}
LLAMA_BATCHED_BENCH=${LLAMA_BATCHED_BENCH:-/tmp/llama.cpp-build/build/bin/llama-batched-bench}
need_tool "$LLAMA_BATCHED_BENCH" llama-batched-bench
write_machine "$OUT"
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r: inferkit bench engine" >&2
  "$INFERKIT" bench engine "$MODEL" --npl "$NPL" -p 128 -n 128 -r 1 -t "$THREADS" $ISA_FLAG --json > "$OUT/inferkit-$r.json" 2> /dev/null
  echo "round $r: llama-batched-bench" >&2
  # One context holding every sequence (64 × 256 tokens), one prefill batch per point as the engine does.
  "$LLAMA_BATCHED_BENCH" -m "$MODEL" -c 16640 -b 8192 -ub 512 -npp 128 -ntg 128 -npl "$NPL" -t "$THREADS" > "$OUT/llama-batched-bench-$r.txt" 2> /dev/null
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
ik, ll = {}, {}
for r in range(1, rounds + 1):
    for p in json.load(open(f"{out}/inferkit-{r}.json"))["points"]:
        ik.setdefault(p["npl"], []).append((p["s_pp"], p["s_tg"]))
    for line in open(f"{out}/llama-batched-bench-{r}.txt"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 10 and cells[0].isdigit():
            ll.setdefault(int(cells[2]), []).append((float(cells[5]), float(cells[7])))
lines = ["| npl | inferkit S_TG t/s (rounds) | llama.cpp S_TG t/s (rounds) | S_TG ratio | inferkit S_PP | llama.cpp S_PP | S_PP ratio |",
         "|---:|---|---|---:|---:|---:|---:|"]
for k in sorted(ik):
    a, b = ik[k], ll.get(k, [])
    if not b: continue
    tg = statistics.median(x[1] for x in a) / statistics.median(x[1] for x in b)
    pp = statistics.median(x[0] for x in a) / statistics.median(x[0] for x in b)
    lines.append(f"| {k} | {', '.join(f'{x[1]:.1f}' for x in a)} | {', '.join(f'{x[1]:.1f}' for x in b)} | {tg:.2f}× | "
                 f"{statistics.median(x[0] for x in a):.1f} | {statistics.median(x[0] for x in b):.1f} | {pp:.2f}× |")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
