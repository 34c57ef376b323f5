#!/usr/bin/env python3
"""Compares the oracle with llama.cpp logits dumped by llamacpp_logits.c (see crosscheck.sh).

For each fixture prompt, the oracle is run (full recompute) on the prompt followed by
llama.cpp's greedy continuation, so that every row llama.cpp wrote (prompt positions, then one
row per greedy step) has an oracle row computed on the same tokens. Reported per prompt: top-1
agreement, how long the two greedy continuations stay identical, max/rms logit difference,
KL(oracle || llama.cpp) of the softmax, top-64 overlap. Also checks the tokenization with
llama-tokenize and that the fixture's recorded top-1 ids are the oracle's.

    python3 crosscheck.py --model M --fixture F --dumps DIR [--llama-tokenize BIN] [--require-exact]
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_oracle as o  # noqa: E402


def log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(1, keepdims=True))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--dumps", required=True, help="folder with ll.<k>.f32 and greedy_llama.txt")
    ap.add_argument("--llama-tokenize", help="llama-tokenize binary: also compare token ids")
    ap.add_argument("--require-exact", action="store_true",
                    help="fail unless every top-1 and every greedy token agree and max |dlogit| < 1e-3")
    args = ap.parse_args()

    fx = json.load(open(args.fixture, encoding="utf-8"))
    w = o.Weights(args.model)
    steps = None
    greedy_ll = {}
    for line in open(os.path.join(args.dumps, "greedy_llama.txt")):
        parts = line.split()
        greedy_ll[int(parts[0])] = [int(t) for t in parts[2:]]
    ok = True
    tot = {"pos": 0, "top1": 0, "g": 0, "gn": 0, "rows": 0, "rows_agree": 0, "maxabs": 0.0}
    for k, p in enumerate(fx["prompts"]):
        ids = p["token_ids"]
        n = len(ids)
        if args.llama_tokenize:
            with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as f:
                f.write(p["text"])
            out = subprocess.run([args.llama_tokenize, "-m", args.model, "-f", f.name, "--ids", "--log-disable"],
                                 capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            os.unlink(f.name)
            same = ast.literal_eval(out) == ids
            ok &= same
            print(f"prompt {k}: llama-tokenize ids {'identical' if same else 'DIFFER'}")
        gl = greedy_ll[k]
        steps = len(gl)
        L = np.fromfile(os.path.join(args.dumps, f"ll.{k}.f32"), dtype=np.float32).reshape(-1, w.vocab)
        L = L[: n + steps].astype(np.float64)
        O = o.forward(w, ids + gl)[: n + steps]    # row n-1+s predicts gl[s]
        for pos in p["positions"]:
            assert pos["top_ids"][0] == int(O[pos["position"]].argmax()), "fixture top-1 is not the oracle's"
        t1l, t1o = L.argmax(1), O.argmax(1)
        agree = t1l == t1o
        lo, ll = log_softmax(O), log_softmax(L)
        kl = (np.exp(lo) * (lo - ll)).sum(1)
        d = np.abs(L - O)
        ov = min(len(set(np.argsort(-L[i])[:64]) & set(np.argsort(-O[i])[:64])) for i in range(n))
        og = p["greedy_continuation"]
        same_prefix = next((i for i in range(min(len(og), steps)) if og[i] != gl[i]), min(len(og), steps))
        rows = agree[: n + steps - 1]
        print(f"prompt {k}: {n} tokens; top-1 agreement {agree[:n].sum()}/{n} prompt positions, "
              f"{rows.sum()}/{len(rows)} rows incl. llama.cpp's greedy path; greedy continuations identical for "
              f"{same_prefix}/{steps} tokens; max |dlogit| {d.max():.2e}, rms {np.sqrt((d ** 2).mean()):.2e}; "
              f"KL mean {kl.mean():.1e} max {kl.max():.1e}; top-64 overlap >= {ov}/64")
        for i in np.nonzero(~rows)[0]:
            s = np.sort(O[i])[::-1]
            print(f"    row {i}: oracle top-1 {t1o[i]}, llama.cpp top-1 {t1l[i]} "
                  f"(oracle's own margin between them {O[i, t1o[i]] - O[i, t1l[i]]:.3f}, top1-top2 {s[0] - s[1]:.3f})")
        tot["pos"] += n; tot["top1"] += int(agree[:n].sum()); tot["g"] += same_prefix; tot["gn"] += steps
        tot["rows"] += len(rows); tot["rows_agree"] += int(rows.sum()); tot["maxabs"] = max(tot["maxabs"], float(d.max()))
    print(f"TOTAL: top-1 agreement {tot['top1']}/{tot['pos']} prompt positions, {tot['rows_agree']}/{tot['rows']} rows; "
          f"identical greedy tokens {tot['g']}/{tot['gn']}; max |dlogit| {tot['maxabs']:.2e}")
    if args.require_exact:
        ok &= tot["rows_agree"] == tot["rows"] and tot["g"] == tot["gn"] and tot["maxabs"] < 1e-3
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
