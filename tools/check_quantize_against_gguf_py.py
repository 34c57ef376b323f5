#!/usr/bin/env python3
"""End-to-end check of `inferkit quantize` against gguf-py (run by hand; needs `pip install gguf`).

Writes a small F32/F16 model with gguf-py, quantizes it with inferkit to q8_0/q4_0/q4_1, reads the
results back with gguf-py's GGUFReader, and compares every quantized tensor byte for byte with
gguf-py's own quantizer on the same weights.

    /tmp/venv/bin/python tools/check_quantize_against_gguf_py.py .build/debug/inferkit
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf import quants, GGMLQuantizationType as T

inferkit = sys.argv[1] if len(sys.argv) > 1 else ".build/debug/inferkit"
tmp = tempfile.mkdtemp()
src = os.path.join(tmp, "model-f32.gguf")
rng = np.random.default_rng(3)
w = gguf.GGUFWriter(src, "llama")
w.add_context_length(128)
w.add_block_count(1)
w.add_array("tokenizer.ggml.tokens", ["<s>", "</s>", "a"])
ts = {
    "token_embd.weight": (rng.standard_normal((64, 96)) * 0.02).astype(np.float32),
    "blk.0.attn_norm.weight": np.ones(96, dtype=np.float32),
    "blk.0.attn_q.weight": (rng.standard_normal((96, 96)) * 0.05).astype(np.float16),
    "blk.0.ffn_up.weight": (rng.standard_t(3, (160, 96)) * 0.05).astype(np.float32),
    "odd.weight": rng.standard_normal((4, 40)).astype(np.float32),
}
for k, v in ts.items():
    w.add_tensor(k, v)
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
ok = True
for qt in (T.Q8_0, T.Q4_0, T.Q4_1):
    out = os.path.join(tmp, f"model-{qt.name}.gguf")
    subprocess.run([inferkit, "quantize", src, out, "--type", qt.name.lower()], check=True, stderr=subprocess.DEVNULL)
    r = gguf.GGUFReader(out)
    for t in r.tensors:
        x = ts[t.name]
        if x.ndim == 2 and x.shape[1] % 32 == 0:
            same = t.tensor_type == qt and bytes(np.asarray(t.data).view(np.uint8).ravel()) == quants.quantize(x.astype(np.float32), qt).tobytes()
        else:
            same = t.tensor_type.name in ("F32", "F16") and np.array_equal(np.asarray(t.data).reshape(x.shape), x)
        ok &= same
        print(f"{qt.name:5} {t.name:24} {t.tensor_type.name:5} {'identical' if same else 'DIFFERENT'}")
print("all identical" if ok else "MISMATCH")
sys.exit(0 if ok else 1)
