#!/usr/bin/env python3
"""In-run baseline for `inferkit bench simulator`: the same serving simulation in plain Python.

Continuous batching (decodes first, chunked prefill under a token budget, at most max_num_seqs
sequences), paged KV blocks allocated on block boundaries and freed at the end, recompute
preemption of the most recently admitted request when blocks run out, and the same roofline
step-time formula (its constants are passed in by the Swift benchmark). Poisson arrivals and
log-normal chat lengths with the same parameters. It is the kind of simulator (discrete event,
one Python object per request) whose speed the Swift one is compared against; it is not a copy
of any existing project.

Usage: simulator-baseline.py --requests N --rate R --params '{"flops_mm":…}'  → prints one JSON line.
"""
import argparse
import collections
import json
import math
import random
import time


class Req:
    __slots__ = ("arrival", "prompt", "output", "computed", "generated", "blocks", "kv_tokens",
                 "first_token", "finish")

    def __init__(self, arrival, prompt, output):
        self.arrival, self.prompt, self.output = arrival, prompt, output
        self.computed = self.generated = self.blocks = self.kv_tokens = 0
        self.first_token = self.finish = None


def lognormal(rng, median, sigma, lo, hi):
    return min(hi, max(lo, int(round(median * math.exp(sigma * rng.gauss(0, 1))))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--params", required=True)
    a = ap.parse_args()
    p = json.loads(a.params)
    rng = random.Random(a.seed)
    t = 0.0
    reqs = []
    for _ in range(a.requests):
        t += rng.expovariate(a.rate)
        reqs.append(Req(t, lognormal(rng, 200, 1.0, 1, 8192), lognormal(rng, 250, 0.8, 1, 4096)))

    start = time.perf_counter()
    cpu_start = time.process_time()
    block, total_blocks = p["block_size"], p["blocks"]
    max_seqs, budget_max = p["max_num_seqs"], p["max_batched_tokens"]
    free_blocks = total_blocks
    waiting, running, done = collections.deque(), [], []
    now, nxt, steps = 0.0, 0, 0

    def step_time(prefill, decode, ctx):
        tokens = prefill + decode
        sampled = decode + (1 if prefill else 0)
        flops = p["flops_mm"] * tokens + p["flops_lm"] * sampled + p["flops_attn"] * (ctx + 0.5 * prefill * prefill)
        nbytes = p["bytes_weights"] + p["bytes_kv"] * (ctx + tokens)
        return max(flops / p["flops_rate"], nbytes / p["bytes_rate"]) + p["overhead"]

    def grow(r, tokens):
        nonlocal free_blocks
        need = -(-(r.kv_tokens + tokens) // block) - r.blocks
        if need > free_blocks:
            return False
        free_blocks -= need
        r.blocks += need
        r.kv_tokens += tokens
        return True

    def preempt(r):
        nonlocal free_blocks
        running.remove(r)
        free_blocks += r.blocks
        r.blocks = r.kv_tokens = r.computed = 0
        waiting.appendleft(r)

    while nxt < len(reqs) or waiting or running:
        while nxt < len(reqs) and reqs[nxt].arrival <= now:
            waiting.append(reqs[nxt])
            nxt += 1
        if not waiting and not running:
            now = reqs[nxt].arrival
            continue
        budget = budget_max
        batch = []
        preempted = False
        for r in list(running):  # decodes first, oldest first
            if not r.blocks or budget == 0:
                continue  # preempted earlier in this step, or out of budget
            if r.generated > 0 and r.computed == r.prompt + r.generated - 1:
                ok = True
                if r.computed + 1 > r.kv_tokens:
                    # Reserve to the end of the block, as the Swift scheduler does.
                    want = min(-(-(r.computed + 1) // block) * block, r.prompt + r.output - 1) - r.kv_tokens
                    while not grow(r, max(1, want)):
                        victim = running[-1]
                        preempt(victim)
                        preempted = True
                        if victim is r:
                            ok = False
                            break
                if ok:
                    batch.append((r, 1))
                    budget -= 1
        for r in running:  # prompts in progress
            if budget == 0:
                break
            if not (r.generated > 0 and r.computed == r.prompt + r.generated - 1):
                n = min(r.prompt + r.generated - r.computed, budget)
                batch.append((r, n))
                budget -= n
        while not preempted and waiting and budget > 0 and len(running) < max_seqs:
            r = waiting[0]
            length = r.prompt + r.generated
            need = -(-length // block)
            if need > free_blocks - int(0.01 * total_blocks):
                break
            waiting.popleft()
            free_blocks -= need
            r.blocks, r.kv_tokens = need, length
            running.append(r)
            n = min(length, budget)
            batch.append((r, n))
            budget -= n
        if not batch:
            now = reqs[nxt].arrival if nxt < len(reqs) else now
            continue
        prefill = sum(n for r, n in batch if not (r.generated > 0 and r.computed == r.prompt + r.generated - 1))
        decode = len(batch) - sum(1 for r, n in batch if not (r.generated > 0 and r.computed == r.prompt + r.generated - 1))
        ctx = sum(r.computed for r, _ in batch)
        now += step_time(prefill, decode, ctx)
        steps += 1
        for r, n in batch:
            r.computed += n
            if r.computed == r.prompt + r.generated:
                r.generated += 1
                if r.generated == 1:
                    r.first_token = now
                if r.generated == r.output:
                    r.finish = now
                    free_blocks += r.blocks
                    r.blocks = 0
                    done.append(r)
        if any(r.finish is not None for r, _ in batch):
            running = [r for r in running if r.finish is None]
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    ttft = sorted(r.first_token - r.arrival for r in done)
    print(json.dumps({"requests": len(done), "wall_seconds": wall, "steps": steps, "simulated_seconds": now,
                      "cpu_seconds": cpu, "ttft_p50": ttft[len(ttft) // 2], "requests_per_second": len(done) / wall,
                      "steps_per_second": steps / wall}))


if __name__ == "__main__":
    main()
