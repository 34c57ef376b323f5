"""Logits of the tiny Hugging Face Llama checkpoint (Fixtures/safetensors/tiny-llama) computed the
way transformers' LlamaForCausalLM does — half-split ("rotate_half") RoPE on the q_proj/k_proj rows
as stored, no permutation — in float64 numpy. The Swift test loads the same directory through
LlamaModel(huggingFaceDirectory:), which permutes q/k into adjacent-pair order for its kernels, so
agreement checks the permutation and the whole safetensors path against an independent forward pass.

    python3 Tests/ModelRuntimeTests/Oracle/hf_tiny_logits.py   # needs numpy, safetensors, ml_dtypes
"""
import json
import os

import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy)
import numpy as np
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "Fixtures", "safetensors")
SRC = os.path.join(FIX, "tiny-llama")

cfg = json.load(open(os.path.join(SRC, "config.json")))
w = {k: v.astype(np.float64) for k, v in load_file(os.path.join(SRC, "model.safetensors")).items()}
H, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
D = cfg.get("head_dim", H // nh)
eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]


def rmsnorm(x, g):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g


def rope_half(x, pos):  # x [T, heads, D]
    inv = 1.0 / theta ** (np.arange(0, D, 2) / D)
    ang = np.outer(pos, inv)  # [T, D/2]
    cos = np.concatenate([np.cos(ang)] * 2, axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(ang)] * 2, axis=-1)[:, None, :]
    rot = np.concatenate([-x[..., D // 2:], x[..., : D // 2]], axis=-1)
    return x * cos + rot * sin


def forward(ids):
    T = len(ids)
    pos = np.arange(T)
    x = w["model.embed_tokens.weight"][ids]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rmsnorm(x, w[p + "input_layernorm.weight"])
        q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(T, nh, D)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(T, nkv, D)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(T, nkv, D)
        q, k = rope_half(q, pos), rope_half(k, pos)
        out = np.zeros((T, nh, D))
        for hh in range(nh):
            kv = hh // (nh // nkv)
            s = q[:, hh] @ k[:, kv].T / np.sqrt(D)
            s = s + np.triu(np.full((T, T), -np.inf), 1)
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            out[:, hh] = s @ v[:, kv]
        x = x + out.reshape(T, nh * D) @ w[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, w[p + "post_attention_layernorm.weight"])
        g = h @ w[p + "mlp.gate_proj.weight"].T
        u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, w["model.norm.weight"])
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]
    return x @ head.T


ids = [1, 7, 3, 30, 12, 5, 19, 2, 8, 27, 4]
logits = forward(ids)
json.dump({"generator": "hf_tiny_logits.py", "token_ids": ids, "logits": [[float(f"{v:.7g}") for v in row] for row in logits]},
          open(os.path.join(FIX, "tiny-llama.logits.json"), "w"))
print("wrote tiny-llama.logits.json", logits.shape)
