#!/usr/bin/env python3
"""Generates the safetensors fixtures for SafetensorsTests.swift.

The oracle is the reference `safetensors` library (PyPI, numpy API) and numpy /
ml_dtypes, never the Swift reader:

* valid files are written by `safetensors.numpy.save_file`; the expected values
  beside them are the arrays numpy widened to float32;
* every file in `hostile/` is checked here to be REJECTED by the reference
  reader (`safetensors.safe_open`), and every file in `edge/` to be ACCEPTED,
  and the manifest records which;
* the RoPE permutation oracle is llama.cpp convert_hf_to_gguf.py's
  `reshape(n_head, 2, rows // n_head // 2, *rest).swapaxes(1, 2).reshape(shape)`
  reimplemented in numpy.

Run from the repository root (needs `pip install safetensors numpy ml_dtypes`):

    python3 Tests/ModelRuntimeTests/Oracle/make_safetensors_fixtures.py

Output is deterministic (fixed seeds) and under 300 kB.
"""
import json
import math
import os
import shutil
import struct

import ml_dtypes
import numpy as np
import safetensors
import safetensors.numpy as stnp

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Fixtures", "safetensors")


def floats(a):
    """float32 values as JSON-safe numbers (non-finite values as strings)."""
    out = []
    for v in np.asarray(a, dtype=np.float32).ravel().tolist():
        if math.isnan(v):
            out.append("nan")
        elif math.isinf(v):
            out.append("inf" if v > 0 else "-inf")
        else:
            out.append(v)
    return out


def write_json(path, obj, compact=False):
    with open(path, "w") as f:
        if compact:
            json.dump(obj, f, sort_keys=True, separators=(",", ":"))
        else:
            json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")


def describe(path, arrays):
    """Expected entries read back through the reference reader."""
    out = {}
    with safetensors.safe_open(path, framework="numpy") as f:
        for name in f.keys():
            a = f.get_tensor(name)
            assert a.dtype == arrays[name].dtype and a.shape == arrays[name].shape, name
            entry = {"shape": list(a.shape), "dtype": {
                "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int32": "I32", "uint8": "U8"}[str(a.dtype)]}
            if entry["dtype"] in ("F32", "F16", "BF16"):
                entry["values"] = floats(a.astype(np.float32))
            out[name] = entry
    return out


def dtypes_fixture(rng):
    f16_specials = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, -65504.0, 6.1035156e-05, 5.9604645e-08, -5.9604645e-08,
                             3.0517578e-05, np.inf, -np.inf, np.nan, 0.333251953125], dtype=np.float16)
    bf16_specials = np.array([0.0, -0.0, 1.0, -1.5, 3.3895314e38, 1.1754944e-38, 9.18355e-41, np.inf, -np.inf, np.nan],
                             dtype=np.float32).astype(ml_dtypes.bfloat16)
    arrays = {
        "f32.matrix": rng.standard_normal((3, 5)).astype(np.float32),
        "f16.vector": rng.standard_normal(7).astype(np.float16),
        "bf16.cube": rng.standard_normal((2, 3, 4)).astype(np.float32).astype(ml_dtypes.bfloat16),
        "f16.specials": f16_specials,
        "bf16.specials": bf16_specials,
        # Odd sizes so a vectorised converter's tail is exercised.
        "f16.odd": (rng.standard_normal(1001) * 100).astype(np.float16),
        "bf16.odd": (rng.standard_normal(999) * 1e4).astype(np.float32).astype(ml_dtypes.bfloat16),
        "f32.scalar": np.array(3.25, dtype=np.float32),
        "f32.empty": np.zeros((0, 3), dtype=np.float32),
        "i32.ids": np.array([1, -2, 3, 2147483647], dtype=np.int32),
        "u8.bytes": np.array([0, 255, 7], dtype=np.uint8),
    }
    path = os.path.join(ROOT, "dtypes.safetensors")
    stnp.save_file(arrays, path, metadata={"format": "np", "note": "InferenceKit fixture \u00e9"})
    expected = {"metadata": {"format": "np", "note": "InferenceKit fixture \u00e9"}, "tensors": describe(path, arrays)}
    # Byte layout as the reference library wrote it (read independently with struct + json).
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    for name, entry in header.items():
        if name != "__metadata__":
            expected["tensors"][name]["data_offsets"] = entry["data_offsets"]
    expected["header_length"] = n
    expected["file_length"] = len(raw)
    write_json(os.path.join(ROOT, "dtypes.expected.json"), expected, compact=True)


TINY = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 16,
    "intermediate_size": 24,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "max_position_embeddings": 64,
    "vocab_size": 32,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "torch_dtype": "bfloat16",
    "attention_bias": False,
    "mlp_bias": False,
}


def tiny_llama_arrays(rng):
    c = TINY
    h, f, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd = h // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd

    def bf16(*shape):
        return (rng.standard_normal(shape) * 0.05).astype(np.float32).astype(ml_dtypes.bfloat16)

    arrays = {"model.embed_tokens.weight": bf16(v, h)}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        arrays[p + "input_layernorm.weight"] = (1 + rng.standard_normal(h) * 0.01).astype(np.float32)
        arrays[p + "self_attn.q_proj.weight"] = bf16(q, h)
        arrays[p + "self_attn.k_proj.weight"] = bf16(kv, h)
        arrays[p + "self_attn.v_proj.weight"] = bf16(kv, h)
        arrays[p + "self_attn.o_proj.weight"] = bf16(h, q)
        arrays[p + "post_attention_layernorm.weight"] = (1 + rng.standard_normal(h) * 0.01).astype(np.float32)
        arrays[p + "mlp.gate_proj.weight"] = bf16(f, h)
        arrays[p + "mlp.up_proj.weight"] = bf16(f, h)
        arrays[p + "mlp.down_proj.weight"] = (rng.standard_normal((h, f)) * 0.05).astype(np.float16)
    arrays["model.norm.weight"] = (1 + rng.standard_normal(h) * 0.01).astype(np.float32)
    arrays["lm_head.weight"] = bf16(v, h)
    return arrays


def tiny_llama_fixture(rng):
    arrays = tiny_llama_arrays(rng)
    single = os.path.join(ROOT, "tiny-llama")
    sharded = os.path.join(ROOT, "tiny-llama-sharded")
    for d in (single, sharded):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        write_json(os.path.join(d, "config.json"), TINY)
    stnp.save_file(arrays, os.path.join(single, "model.safetensors"), metadata={"format": "pt"})

    names = list(arrays)
    first = [n for n in names if n.startswith("model.embed_tokens") or n.startswith("model.layers.0.")]
    shards = {"model-00001-of-00002.safetensors": first,
              "model-00002-of-00002.safetensors": [n for n in names if n not in first]}
    weight_map = {}
    total = 0
    for shard, members in shards.items():
        part = {n: arrays[n] for n in members}
        stnp.save_file(part, os.path.join(sharded, shard), metadata={"format": "pt"})
        for n in members:
            weight_map[n] = shard
            total += arrays[n].nbytes
    write_json(os.path.join(sharded, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})
    write_json(os.path.join(ROOT, "tiny-llama.expected.json"),
               {"tensors": describe(os.path.join(single, "model.safetensors"), arrays)}, compact=True)


def permute_oracle(w, n_head, n_head_kv=None):
    # llama.cpp convert_hf_to_gguf.py LlamaModel.permute, reimplemented.
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def permute_fixture(rng):
    cases = []
    for name, heads, kv_heads, rows, cols in [("q", 3, None, 3 * 6, 5), ("k", 4, 2, 2 * 4, 7), ("bias", 2, None, 2 * 8, None)]:
        shape = (rows, cols) if cols else (rows,)
        w = rng.standard_normal(shape).astype(np.float32)
        out = permute_oracle(w, heads, kv_heads)
        cases.append({"name": name, "heads": kv_heads or heads, "shape": list(shape),
                      "input": floats(w), "output": floats(out)})
    write_json(os.path.join(ROOT, "permute.expected.json"), {"cases": cases}, compact=True)


def header_file(header_obj_or_bytes, data=b"", length=None):
    h = header_obj_or_bytes if isinstance(header_obj_or_bytes, bytes) else json.dumps(header_obj_or_bytes).encode()
    n = len(h) if length is None else length
    return struct.pack("<Q", n) + h + data


def reference_accepts(path):
    try:
        with safetensors.safe_open(path, framework="numpy") as f:
            for k in f.keys():
                f.get_slice(k)
        return True
    except Exception:  # the reference raises SafetensorError / other errors for invalid files
        return False


def hostile_fixtures():
    t = lambda dtype, shape, b, e: {"dtype": dtype, "shape": shape, "data_offsets": [b, e]}
    hostile = {
        "hole": header_file({"a": t("F32", [1], 0, 4), "b": t("F32", [1], 8, 12)}, bytes(12)),
        "overlap": header_file({"a": t("F32", [2], 0, 8), "b": t("F32", [2], 4, 12)}, bytes(12)),
        "trailing-bytes": header_file({"a": t("F32", [1], 0, 4)}, bytes(8)),
        "past-end": header_file({"a": t("F32", [4], 0, 16)}, bytes(8)),
        "size-mismatch": header_file({"a": t("F32", [3], 0, 8)}, bytes(8)),
        "end-before-begin": header_file({"a": t("F32", [0], 8, 4)}, bytes(8)),
        "negative-dim": header_file({"a": t("F32", [-1], 0, 4)}, bytes(4)),
        "negative-offset": header_file({"a": t("F32", [1], -4, 0)}, bytes(4)),
        "huge-shape": header_file({"a": t("F32", [2 ** 62, 2 ** 62, 0], 0, 0)}),
        "overflow-bytes": header_file({"a": t("F64", [2 ** 61], 0, 0)}),
        "float-dim": header_file({"a": t("F32", [1.0], 0, 4)}, bytes(4)),
        "unknown-dtype": header_file({"a": t("Q4_0", [1], 0, 4)}, bytes(4)),
        "missing-dtype": header_file({"a": {"shape": [1], "data_offsets": [0, 4]}}, bytes(4)),
        "one-offset": header_file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}, bytes(4)),
        "duplicate-name": header_file(b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', bytes(4)),
        "metadata-number": header_file({"__metadata__": {"n": 1}, "a": t("F32", [1], 0, 4)}, bytes(4)),
        "header-array": header_file([1, 2, 3]),
        "header-length-past-end": header_file({"a": t("F32", [1], 0, 4)}, bytes(4), length=1000),
        "header-length-huge": header_file({}, b"", length=2 ** 63 + 5),
        "header-length-over-limit": header_file({}, b"", length=100_000_001),
        "truncated-json": header_file(b'{"a":{"dtype":"F32","shape":[1],"data_off'),
        "invalid-utf8-name": header_file(b'{"\xff\xfe":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', bytes(4)),
        "deep-nesting": header_file(b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}"),
        "sub-byte-fraction": header_file({"a": t("F4", [3], 0, 2)}, bytes(2)),
        "too-short": b"\x08\x00\x00",
        "empty": b"",
    }
    edge = {
        "no-tensors": header_file({}),
        "header-leading-space": header_file(b' {"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', bytes(4)),
        "zero-size-tensors": header_file({"a": t("F32", [0], 0, 0), "b": t("F16", [2, 0], 0, 0), "c": t("F32", [1], 0, 4)}, bytes(4)),
        "scalar": header_file({"s": t("F32", [], 0, 4)}, struct.pack("<f", -7.5)),
        "space-padded": header_file(b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}      ', struct.pack("<f", 2.0)),
        "metadata-null": header_file({"__metadata__": None, "a": t("BF16", [2], 0, 4)}, bytes(4)),
        "unsorted-header": header_file({"b": t("F32", [1], 4, 8), "a": t("F32", [1], 0, 4)}, struct.pack("<ff", 1.0, 2.0)),
        "unaligned-data": header_file(b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', struct.pack("<ff", 1.5, -3.0)),
        "f4-whole-bytes": header_file({"a": t("F4", [4], 0, 2)}, bytes(2)),
        "extra-entry-keys": header_file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "note": 1}}, bytes(4)),
    }
    # The README's format notes say "Duplicate keys are disallowed", but the
    # reference reader (serde into a map) silently keeps the last entry. The
    # Swift reader follows the written format and rejects them; the manifest
    # records the divergence.
    reference_accepts_anyway = {"duplicate-name"}
    manifest = {}
    mismatches = []
    for kind, cases, want in (("hostile", hostile, False), ("edge", edge, True)):
        d = os.path.join(ROOT, kind)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name, content in cases.items():
            path = os.path.join(d, name + ".safetensors")
            with open(path, "wb") as f:
                f.write(content)
            got = reference_accepts(path)
            reference_want = want or name in reference_accepts_anyway
            if got != reference_want:
                mismatches.append(f"reference safetensors {'accepts' if got else 'rejects'} {kind}/{name}")
            manifest[f"{kind}/{name}.safetensors"] = {
                "expected": "accept" if want else "reject",
                "reference": "accept" if got else "reject",
            }
    assert not mismatches, mismatches
    write_json(os.path.join(ROOT, "reference-verdicts.json"),
               {"safetensors_version": safetensors.__version__, "verdicts": manifest})


CONFIG_SMOLLM2_LIKE = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "eos_token_id": 0,
    "hidden_act": "silu",
    "hidden_size": 576,
    "initializer_range": 0.041666666666666664,
    "intermediate_size": 1536,
    "is_llama_config": True,
    "max_position_embeddings": 8192,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 9,
    "num_hidden_layers": 30,
    "num_key_value_heads": 3,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_interleaved": False,
    "rope_scaling": None,
    "rope_theta": 100000,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.40.1",
    "use_cache": True,
    "vocab_size": 49152,
}


def main():
    os.makedirs(ROOT, exist_ok=True)
    rng = np.random.default_rng(20250607)
    dtypes_fixture(rng)
    tiny_llama_fixture(rng)
    permute_fixture(rng)
    hostile_fixtures()
    write_json(os.path.join(ROOT, "smollm2-like-config.json"), CONFIG_SMOLLM2_LIKE)
    for dp, _, fs in os.walk(ROOT):
        for f in fs:
            os.chmod(os.path.join(dp, f), 0o644)
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(ROOT) for f in fs)
    print(f"wrote {ROOT} ({total} bytes)")
    assert total < 300_000, total


if __name__ == "__main__":
    main()
