#!/usr/bin/env python3
"""Independent float64 numpy oracle for GGUF Llama-family models (llama.cpp's `llama` arch).

Reads a GGUF file with gguf-py, dequantizes every tensor with `gguf.quants.dequantize`, and runs
a from-scratch forward pass in float64: token embedding, pre-norm blocks (RMSNorm, GQA attention
with "normal" RoPE, SwiGLU MLP), final RMSNorm, tied (or separate) output projection. Nothing
from the InferenceKit repository is imported or called: this is a second implementation to judge
the Swift one against.

Tokenization uses Hugging Face `tokenizers`, built from the GGUF's own vocabulary and merges
(GPT-2 byte-level BPE, SmolLM pre-tokenizer: every digit split off, then the GPT-2 regex;
control tokens such as <|im_start|> matched as special tokens).

    python3 llama_oracle.py --model .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf \\
        --out Tests/ModelRuntimeTests/Fixtures/smollm2-oracle.json

See README.md beside this file.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from importlib import metadata

import numpy as np
import gguf
from gguf import GGUFReader, GGMLQuantizationType

TOP_K = 64
GREEDY_STEPS = 16

# Prompts of the committed fixture: a bare ChatML user turn; plain English; code; digits (split
# one per token by the pre-tokenizer) with multi-byte UTF-8 (tokens ending mid-character); and
# the exact rendering of the GGUF's chat template for one user message (its default system turn).
DEFAULT_PROMPTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "The quick brown fox jumps over the lazy dog. Once upon a time, in a small village by the sea, there lived",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "Order #4521: 3 × 12.50 € = 37.50 €, café in 東京 🚀",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nList three primary colors.<|im_end|>\n<|im_start|>assistant\n",
]


# ----------------------------------------------------------------------------------------------
# GGUF reading

def field_value(reader: GGUFReader, key: str, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


class Weights:
    """Hyperparameters from the GGUF metadata and dequantized float64 tensors, numpy-shaped
    [rows, cols] = reversed GGUF dims (GGUF lists ne0 = the contiguous, input dimension first)."""

    def __init__(self, path: str):
        r = GGUFReader(path)
        self.reader = r
        arch = field_value(r, "general.architecture")
        if arch != "llama":
            raise SystemExit(f"unsupported architecture {arch!r}: this oracle implements llama only")
        self.arch = arch

        def hp(name, default=None, required=True):
            v = field_value(r, f"{arch}.{name}", default)
            if v is None and required:
                raise SystemExit(f"GGUF metadata {arch}.{name} missing")
            return v

        self.n_layer = int(hp("block_count"))
        self.n_embd = int(hp("embedding_length"))
        self.n_ff = int(hp("feed_forward_length"))
        self.n_head = int(hp("attention.head_count"))
        self.n_head_kv = int(hp("attention.head_count_kv", self.n_head))
        self.head_dim = int(hp("attention.key_length", self.n_embd // self.n_head))
        v_len = int(hp("attention.value_length", self.head_dim))
        if v_len != self.head_dim:
            raise SystemExit("key_length != value_length is not supported")
        self.n_rot = int(hp("rope.dimension_count", self.head_dim))
        self.rope_base = float(hp("rope.freq_base", 10000.0))
        self.eps = float(hp("attention.layer_norm_rms_epsilon"))
        scaling = hp("rope.scaling.type", None, required=False)
        factor = hp("rope.scaling.factor", None, required=False)
        if (scaling not in (None, "none")) and not (factor in (None, 0.0, 1.0)):
            raise SystemExit(f"RoPE scaling {scaling!r} x{factor} not implemented")
        if self.n_head % self.n_head_kv:
            raise SystemExit("head_count must be a multiple of head_count_kv")
        if self.n_rot % 2 or self.n_rot > self.head_dim:
            raise SystemExit("rope.dimension_count must be even and <= head dim")

        self.tensors: dict[str, np.ndarray] = {}
        self.types: dict[str, str] = {}
        for t in r.tensors:
            a = gguf.quants.dequantize(t.data, t.tensor_type)
            want = tuple(int(d) for d in reversed(list(t.shape)))
            if a.shape != want:
                a = a.reshape(want)
            self.tensors[t.name] = np.asarray(a, dtype=np.float64)
            self.types[t.name] = t.tensor_type.name

        self.token_embd = self.tensors["token_embd.weight"]          # [vocab, n_embd]
        self.vocab = self.token_embd.shape[0]
        self.output = self.tensors.get("output.weight", self.token_embd)  # tied when absent
        self.tied_output = "output.weight" not in self.tensors
        self.output_norm = self.tensors["output_norm.weight"]
        self._check_shapes()

        # RoPE: llama.cpp "normal" mode rotates adjacent pairs (x[2j], x[2j+1]) with
        # theta_j = pos * base^(-2j / n_rot), j < n_rot/2; dims >= n_rot pass through.
        self.inv_freq = self.rope_base ** (-np.arange(0, self.n_rot, 2, dtype=np.float64) / self.n_rot)

    def _check_shapes(self):
        e, hd, f = self.n_embd, self.head_dim, self.n_ff
        for i in range(self.n_layer):
            p = f"blk.{i}."
            expect = {
                "attn_norm.weight": (e,), "ffn_norm.weight": (e,),
                "attn_q.weight": (self.n_head * hd, e), "attn_k.weight": (self.n_head_kv * hd, e),
                "attn_v.weight": (self.n_head_kv * hd, e), "attn_output.weight": (e, self.n_head * hd),
                "ffn_gate.weight": (f, e), "ffn_up.weight": (f, e), "ffn_down.weight": (e, f),
            }
            for name, shape in expect.items():
                got = self.tensors[p + name].shape
                if got != shape:
                    raise SystemExit(f"{p}{name}: shape {got}, expected {shape}")

    def hyperparameters(self) -> dict:
        return {
            "n_layer": self.n_layer, "n_embd": self.n_embd, "n_ff": self.n_ff,
            "n_head": self.n_head, "n_head_kv": self.n_head_kv, "head_dim": self.head_dim,
            "n_rot": self.n_rot, "rope_freq_base": self.rope_base, "rms_eps": self.eps,
            "vocab": self.vocab, "tied_output": self.tied_output,
        }


# ----------------------------------------------------------------------------------------------
# Forward pass

def rmsnorm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def rope(x: np.ndarray, positions: np.ndarray, inv_freq: np.ndarray, n_rot: int) -> np.ndarray:
    """x: [T, heads, head_dim]; rotates pairs (2j, 2j+1) of the first n_rot dims."""
    theta = positions[:, None].astype(np.float64) * inv_freq[None, :]   # [T, n_rot/2]
    cos = np.cos(theta)[:, None, :]
    sin = np.sin(theta)[:, None, :]
    out = x.copy()
    x0 = x[..., 0:n_rot:2]
    x1 = x[..., 1:n_rot:2]
    out[..., 0:n_rot:2] = x0 * cos - x1 * sin
    out[..., 1:n_rot:2] = x0 * sin + x1 * cos
    return out


class KVCache:
    def __init__(self, n_layer: int):
        self.k = [None] * n_layer   # each [n_head_kv, T, head_dim]
        self.v = [None] * n_layer
        self.length = 0


def forward(w: Weights, ids: list[int], cache: KVCache | None = None) -> np.ndarray:
    """Logits [len(ids), vocab] for tokens `ids` at positions cache.length ... (float64)."""
    if cache is None:
        cache = KVCache(w.n_layer)
    T = len(ids)
    start = cache.length
    pos = np.arange(start, start + T)
    H, Hkv, hd = w.n_head, w.n_head_kv, w.head_dim
    group = H // Hkv
    scale = 1.0 / math.sqrt(hd)
    x = w.token_embd[np.asarray(ids, dtype=np.int64)]               # [T, E]
    for i in range(w.n_layer):
        p = f"blk.{i}."
        t = w.tensors
        h = rmsnorm(x, t[p + "attn_norm.weight"], w.eps)
        q = (h @ t[p + "attn_q.weight"].T).reshape(T, H, hd)
        k = (h @ t[p + "attn_k.weight"].T).reshape(T, Hkv, hd)
        v = (h @ t[p + "attn_v.weight"].T).reshape(T, Hkv, hd)
        q = rope(q, pos, w.inv_freq, w.n_rot)
        k = rope(k, pos, w.inv_freq, w.n_rot)
        k = k.transpose(1, 0, 2)                                      # [Hkv, T, hd]
        v = v.transpose(1, 0, 2)
        if cache.k[i] is not None:
            k = np.concatenate([cache.k[i], k], axis=1)
            v = np.concatenate([cache.v[i], v], axis=1)
        cache.k[i], cache.v[i] = k, v
        S = k.shape[1]
        # causal mask: query at absolute position start+a sees keys 0 ... start+a
        mask = np.arange(S)[None, :] > (start + np.arange(T))[:, None]   # [T, S]
        attn = np.empty((T, H, hd))
        for hh in range(H):
            kv = hh // group
            s = (q[:, hh, :] @ k[kv].T) * scale                       # [T, S]
            s = np.where(mask, -np.inf, s)
            s = s - s.max(axis=1, keepdims=True)
            pr = np.exp(s)
            pr /= pr.sum(axis=1, keepdims=True)
            attn[:, hh, :] = pr @ v[kv]
        x = x + attn.reshape(T, H * hd) @ t[p + "attn_output.weight"].T
        h = rmsnorm(x, t[p + "ffn_norm.weight"], w.eps)
        g = h @ t[p + "ffn_gate.weight"].T
        u = h @ t[p + "ffn_up.weight"].T
        x = x + (silu(g) * u) @ t[p + "ffn_down.weight"].T
    cache.length = start + T
    x = rmsnorm(x, w.output_norm, w.eps)
    return x @ w.output.T


def logsumexp(v: np.ndarray) -> float:
    m = float(np.max(v))
    return m + math.log(float(np.sum(np.exp(v - m))))


def greedy(w: Weights, ids: list[int], steps: int, check_recompute: bool = False):
    """Greedy continuation with a KV cache; returns (tokens, top1-top2 margins, prompt logits)."""
    cache = KVCache(w.n_layer)
    logits = forward(w, ids, cache)
    prompt_logits = logits
    last = logits[-1]
    out, margins = [], []
    for _ in range(steps):
        order = np.argsort(-last, kind="stable")
        nxt = int(order[0])
        out.append(nxt)
        margins.append(float(last[order[0]] - last[order[1]]))
        last = forward(w, [nxt], cache)[-1]
    if check_recompute:
        full = forward(w, ids + out[:-1])
        assert [int(np.argmax(r)) for r in full[len(ids) - 1:]] == out, "KV-cached and full recompute disagree"
        err = float(np.max(np.abs(full[: len(ids)] - prompt_logits)))
        assert err < 1e-9, f"prefix logits moved by {err}"
    return out, margins, prompt_logits


# ----------------------------------------------------------------------------------------------
# Tokenizer (independent of the model code and of InferenceKit)

def build_tokenizer(reader: GGUFReader):
    from tokenizers import Tokenizer, AddedToken, Regex, decoders, models, pre_tokenizers

    model = field_value(reader, "tokenizer.ggml.model")
    pre = field_value(reader, "tokenizer.ggml.pre")
    if model != "gpt2" or pre not in ("smollm",):
        raise SystemExit(f"tokenizer {model}/{pre} not supported by this oracle (gpt2/smollm only)")
    tokens = field_value(reader, "tokenizer.ggml.tokens")
    types = field_value(reader, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field_value(reader, "tokenizer.ggml.merges")]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tk.decoder = decoders.ByteLevel()
    specials = [AddedToken(tokens[i], special=True, normalized=False)
                for i, ty in enumerate(types) if ty in (3, 4)]   # CONTROL, USER_DEFINED
    tk.add_special_tokens(specials)
    return tk


# ----------------------------------------------------------------------------------------------

def sig7(v: float) -> float:
    return float(f"{v:.7g}")


def write_fixture(result: dict, f) -> None:
    """JSON with one line per prompt position (diff-friendly, still compact)."""
    d = lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    head = [f" {d(k)}: {d(v)}" for k, v in result.items() if k != "prompts"]
    prompts = []
    for pr in result["prompts"]:
        fields = [f"   {d(k)}: {d(v)}" for k, v in pr.items() if k != "positions"]
        rows = ",\n".join("    " + d(p) for p in pr["positions"])
        fields.append(f'   "positions": [\n{rows}\n   ]')
        prompts.append("  {\n" + ",\n".join(fields) + "\n  }")
    f.write("{\n" + ",\n".join(head) + ',\n "prompts": [\n' + ",\n".join(prompts) + "\n ]\n}\n")


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="GGUF file")
    ap.add_argument("--out", help="fixture JSON to write")
    ap.add_argument("--prompt", action="append", help="prompt text (repeatable; default: the built-in set)")
    ap.add_argument("--top-k", type=int, default=TOP_K)
    ap.add_argument("--steps", type=int, default=GREEDY_STEPS)
    ap.add_argument("--check", action="store_true",
                    help="also assert that KV-cached decoding equals a full recompute")
    args = ap.parse_args(argv)

    w = Weights(args.model)
    tk = build_tokenizer(w.reader)
    prompts = args.prompt or DEFAULT_PROMPTS
    result = {
        "model": os.path.basename(args.model),
        "model_sha256": sha256(args.model),
        "generator": "llama_oracle.py",
        "numpy": np.__version__,
        "gguf": metadata.version("gguf"),
        "tokenizers": metadata.version("tokenizers"),
        "method": ("float64 numpy forward pass over tensors dequantized by gguf-py (no activation "
                   "quantization), llama arch: RMSNorm, normal (adjacent-pair) RoPE, causal GQA "
                   "attention, SwiGLU, tied output; logits of every prompt position, greedy "
                   "continuation with a KV cache."),
        "hyperparameters": w.hyperparameters(),
        "top_k": args.top_k,
        "prompts": [],
    }
    for text in prompts:
        ids = tk.encode(text, add_special_tokens=False).ids
        assert tk.decode(ids, skip_special_tokens=False) == text, "tokenizer round trip failed"
        cont, margins, logits = greedy(w, ids, args.steps, check_recompute=args.check)
        positions = []
        for p in range(len(ids)):
            row = logits[p]
            order = np.argsort(-row, kind="stable")[: args.top_k]
            positions.append({
                "position": p,
                "logsumexp": sig7(logsumexp(row)),
                "top_ids": [int(i) for i in order],
                "top_logits": [sig7(float(row[i])) for i in order],
            })
        entry = {
            "text": text,
            "token_ids": [int(i) for i in ids],
            "greedy_continuation": cont,
            "greedy_top1_margin": [sig7(m) for m in margins],
            "greedy_text": tk.decode(cont, skip_special_tokens=False),
            "positions": positions,
        }
        result["prompts"].append(entry)
        print(f"{len(ids):3d} tokens  {text!r}\n    -> {entry['greedy_text']!r}", file=sys.stderr)

    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            write_fixture(result, f)
        with open(args.out, encoding="utf-8") as f:
            assert json.load(f) == result, "fixture does not read back"
        print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)", file=sys.stderr)
    else:
        json.dump(result, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
