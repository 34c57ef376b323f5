#!/usr/bin/env python3
"""Writes Fixtures/smollm2-bpe-vectors.json: SmolLM2's tokenization of a few thousand strings by an
independent tokenizer, Hugging Face `tokenizers`, built from the vocabulary and merges in the GGUF.

The pre-tokenizer pipeline is the one llama.cpp runs for `tokenizer.ggml.pre = smollm`
(llama-vocab.cpp: the regexes "\\p{N}" then the GPT-2 pattern, with byte-level encoding):
HF `Digits(individual_digits=True)` then `ByteLevel(add_prefix_space=False, use_regex=True)`,
whose regex is GPT-2's. The control tokens (token_type 3) are added as special tokens, so they are
split out of the text before BPE, as llama.cpp's `tokenizer_st_partition` does.

Usage:  pip install gguf tokenizers
        python3 generate_bpe_vectors.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
"""

import json
import os
import platform
import random
import sys
from importlib.metadata import version
from pathlib import Path

import gguf
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, str(Path(__file__).parent))
from corpus import corpus  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
DEFAULT_MODEL = ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = HERE.parent / "Fixtures" / "smollm2-bpe-vectors.json"


def field(reader, key):
    return reader.fields[key].contents()


def main():
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(os.environ.get("INFERENCEKIT_MODELS_DIR", DEFAULT_MODEL.parent)) / DEFAULT_MODEL.name
    reader = gguf.GGUFReader(str(path))
    assert field(reader, "tokenizer.ggml.model") == "gpt2"
    assert field(reader, "tokenizer.ggml.pre") == "smollm"
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    merges = field(reader, "tokenizer.ggml.merges")

    vocab = {t: i for i, t in enumerate(tokens)}
    merge_pairs = []
    for m in merges:
        space = m.index(" ", 1)  # llama.cpp splits at the first space after the first byte
        merge_pairs.append((m[:space], m[space + 1:]))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merge_pairs, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = [t for t, ty in zip(tokens, types) if ty in (3, 4)]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])

    strings = corpus("<|im_start|>", "<|im_end|>", with_specials=True)
    strings += [
        "<|endoftext|>", "a<|endoftext|>b", "<filename>main.py<file_sep>", "<jupyter_code>print(1)<jupyter_output>1",
        "<repo_name><reponame>", "<gh_stars>100", "<issue_start>bug<issue_comment>fixed<issue_closed>",
        "<empty_output>", "<jupyter_start><jupyter_text>", "<jupyter_script>",
    ]

    encode_vectors = []
    for s in strings:
        ids = tok.encode(s, add_special_tokens=False).ids
        decoded = tok.decode(ids, skip_special_tokens=False)
        encode_vectors.append({"text": s, "ids": ids, "roundTrips": decoded == s})

    # decoding oracle: random id sequences, including lone byte tokens that form invalid UTF-8
    rng = random.Random(7)
    byte_tokens = [vocab[c] for c in "".join(chr(x) for x in range(0x100, 0x144)) if c in vocab]
    byte_tokens += [vocab[chr(c)] for c in range(0xA1, 0x100) if chr(c) in vocab and c != 0xAD]
    decode_vectors = []
    for i in range(300):
        n = rng.randint(1, 12)
        ids = []
        for _ in range(n):
            r = rng.random()
            if r < 0.4:
                ids.append(rng.choice(byte_tokens))
            elif r < 0.5:
                ids.append(rng.randrange(0, 17))  # control tokens
            else:
                ids.append(rng.randrange(17, len(tokens)))
        decode_vectors.append({
            "ids": ids,
            "text": tok.decode(ids, skip_special_tokens=False),
            "textSkippingSpecial": tok.decode(ids, skip_special_tokens=True),
        })

    out = {
        "generator": "Tests/TokenizationTests/Vectors/generate_bpe_vectors.py",
        "oracle": "Hugging Face tokenizers BPE(vocab, merges) + Sequence[Digits(individual_digits), ByteLevel(add_prefix_space=False)] + added control tokens",
        "versions": {
            "python": platform.python_version(),
            "tokenizers": version("tokenizers"),
            "gguf": version("gguf"),
        },
        "model": path.name,
        "vocabularySize": len(tokens),
        "mergeCount": len(merges),
        "encode": encode_vectors,
        "decode": decode_vectors,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {len(encode_vectors)} encode, {len(decode_vectors)} decode vectors;"
          f" {sum(not v['roundTrips'] for v in encode_vectors)} do not round-trip")


if __name__ == "__main__":
    main()
