#!/usr/bin/env python3
"""Generate the committed test vectors of Tests/QuantizationTests/Fixtures.

Run only when the vectors need regenerating (never at test time):

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install gguf
    /tmp/venv/bin/python tools/generate_quant_vectors.py

Outputs:
  ggml_blocks.json  Float32 inputs (as IEEE bit patterns) with the Q8_0 / Q4_0 / Q4_1 bytes that
                    gguf-py's numpy quantizers (gguf/quants.py, written to match ggml's
                    quantize_row_*_ref bit for bit) produce, plus their dequantized values.
  reference.gguf    a GGUF v3 file written by gguf-py's GGUFWriter with metadata of every value
                    type (arrays and a nested array included) and F32/F16/Q8_0/Q4_0/Q4_1 tensors.
  reference.json    what reference.gguf contains, for the reader tests.
"""
import json
import os
import struct

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "QuantizationTests", "Fixtures")


def f32hex(a):
    return np.ascontiguousarray(a, dtype=np.float32).tobytes().hex()


def cases():
    rng = np.random.default_rng(20261129)
    out = []
    out.append(("normal", rng.standard_normal((3, 96)).astype(np.float32)))
    out.append(("heavy_tailed_t2", rng.standard_t(2, (3, 64)).astype(np.float32)))
    out.append(("cauchy", (rng.standard_cauchy((2, 64)) * 0.01).astype(np.float32)))
    z = rng.standard_normal((3, 64)).astype(np.float32)
    z[1, :] = 0
    out.append(("all_zero_row", z))
    out.append(("tiny_magnitudes", (rng.standard_normal((2, 64)) * 1e-30).astype(np.float32)))
    out.append(("small_magnitudes", (rng.standard_normal((2, 64)) * 1e-4).astype(np.float32)))
    out.append(("positive_only", rng.uniform(0.1, 3.0, (2, 64)).astype(np.float32)))
    out.append(("negative_only", rng.uniform(-3.0, -0.1, (2, 64)).astype(np.float32)))
    out.append(("constant_block", np.full((1, 64), 0.75, dtype=np.float32)))
    # Exact ties. Q8_0: amax 127 -> d = 1, so x·id = k + 0.5 rounds half away from zero.
    t8 = np.array([127.0] + [k + 0.5 for k in range(-15, 15)] + [-0.5], dtype=np.float32)
    # Q4_0: max -8 -> d = 1, id = 1, x + 8.5 lands exactly on integers and half-integers.
    t4 = np.array([-8.0] + [k * 0.5 for k in range(-15, 16)], dtype=np.float32)
    # Q4_1: min 0, max 15 -> d = 1, (x - min) + 0.5 hits exact .5 and integers.
    t41 = np.array([0.0, 15.0] + [k * 0.5 for k in range(30)], dtype=np.float32)
    # Q4_0 sign tie: +3 and -3 share the largest magnitude; the first one sets the sign of d.
    tie_sign = np.array([3.0, -3.0] + list(np.linspace(-2.9, 2.9, 30)), dtype=np.float32)
    tie_sign2 = np.array([-3.0, 3.0] + list(np.linspace(-2.9, 2.9, 30)), dtype=np.float32)
    out.append(("ties", np.stack([t8, t4, t41, tie_sign, tie_sign2]).astype(np.float32)))
    # Ties at a non-unit scale: amax 12.7 -> d = 0.1 (not exact in binary).
    out.append(("ties_scaled", (np.array([[12.7] + [k * 0.05 for k in range(-31, 0)]], dtype=np.float32))))
    out.append(("wide_range", (rng.standard_normal((2, 64)) * np.logspace(-3, 3, 64)).astype(np.float32)))
    return out


def block_vectors():
    result = {"generator": "tools/generate_quant_vectors.py", "gguf_version": gguf.__version__ if hasattr(gguf, "__version__") else "unknown",
              "numpy_version": np.__version__, "cases": []}
    for name, x in cases():
        entry = {"name": name, "rows": int(x.shape[0]), "columns": int(x.shape[1]), "input": f32hex(x)}
        for key, qt in (("q8_0", T.Q8_0), ("q4_0", T.Q4_0), ("q4_1", T.Q4_1)):
            q = quants.quantize(x, qt)
            entry[key] = q.tobytes().hex()
            entry[key + "_dequantized"] = f32hex(quants.dequantize(q, qt))
        result["cases"].append(entry)
    with open(os.path.join(OUT, "ggml_blocks.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


def reference_gguf():
    path = os.path.join(OUT, "reference.gguf")
    w = gguf.GGUFWriter(path, "llama")  # writes general.architecture first
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 1.5)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo, GGUF ✓")
    w.add_uint64("test.u64", 18000000000000000000)
    w.add_int64("test.i64", -9000000000000000000)
    w.add_float64("test.f64", 2.718281828459045)
    w.add_array("test.array_i32", [1, -2, 3])
    w.add_array("test.array_str", ["a", "bc", ""])
    w.add_array("test.array_nested", [[1, 2], [3]])
    w.add_custom_alignment(64)  # sets general.alignment and aligns the data to it
    rng = np.random.default_rng(7)
    tensors = {}
    a = rng.standard_normal((3, 5)).astype(np.float32)
    w.add_tensor("t.f32", a)
    tensors["t.f32"] = {"type": 0, "dims": [5, 3], "values": f32hex(a)}
    b = rng.standard_normal((2, 7)).astype(np.float16)
    w.add_tensor("t.f16", b)
    tensors["t.f16"] = {"type": 1, "dims": [7, 2], "values": f32hex(b.astype(np.float32))}
    for name, qt in (("t.q8_0", T.Q8_0), ("t.q4_0", T.Q4_0), ("t.q4_1", T.Q4_1)):
        x = rng.standard_normal((2, 64)).astype(np.float32)
        q = quants.quantize(x, qt)
        w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qt)
        tensors[name] = {"type": int(qt), "dims": [64, 2], "input": f32hex(x), "bytes": q.tobytes().hex()}
    v = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    w.add_tensor("t.rank3", v)
    tensors["t.rank3"] = {"type": 0, "dims": [3, 2, 1], "values": f32hex(v)}
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump({"alignment": 64, "tensors": tensors, "tensor_order": list(tensors.keys())}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    block_vectors()
    reference_gguf()
    print("wrote", OUT)
