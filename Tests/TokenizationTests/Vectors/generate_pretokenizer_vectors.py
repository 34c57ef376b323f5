#!/usr/bin/env python3
"""Writes Fixtures/pretokenizer-vectors.json: how llama.cpp's pre-tokenizer regexes split strings,
computed by Python's `regex` module (the engine whose Unicode classes generated llama.cpp's
unicode-data.cpp) running llama.cpp's own patterns.

Each pre-tokenizer is a list of patterns applied in turn, as llama.cpp's `unicode_regex_split`
does: every pattern splits each piece from the previous step into its matches and the text between
them. The patterns are those of llama-vocab.cpp (`llm_tokenizer_bpe`) for each pre-type.

Usage:  pip install regex && python3 generate_pretokenizer_vectors.py
"""

import json
import platform
import sys
from importlib.metadata import version
from pathlib import Path

import regex

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, str(Path(__file__).parent))
from corpus import corpus  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "Fixtures" / "pretokenizer-vectors.json"

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

PRE_TOKENIZERS = {
    "gpt2": [GPT2],
    "smollm": [r"\p{N}", GPT2],
    "llama3": [LLAMA3],
    "qwen2": [QWEN2],
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
}


def split(text, patterns):
    pieces = [text] if text else []
    for pattern in patterns:
        compiled = regex.compile(pattern)
        out = []
        for piece in pieces:
            last = 0
            for m in compiled.finditer(piece):
                if m.start() > last:
                    out.append(piece[last:m.start()])
                if m.end() > m.start():
                    out.append(m.group())
                last = m.end()
            if last < len(piece):
                out.append(piece[last:])
        pieces = out
    return pieces


def main():
    strings = corpus("<|im_start|>", "<|im_end|>", with_specials=False)
    # every string of the hand-written and structured part, every third of the random part (fixture size)
    strings = strings[:600] + strings[600::3]
    vectors = {}
    for name, patterns in PRE_TOKENIZERS.items():
        lengths = []
        for s in strings:
            pieces = split(s, patterns)
            assert "".join(pieces) == s
            lengths.append([len(p) for p in pieces])  # in Unicode scalars
        vectors[name] = {"patterns": patterns, "pieceLengths": lengths}
    out = {
        "generator": "Tests/TokenizationTests/Vectors/generate_pretokenizer_vectors.py",
        "oracle": "Python regex module running llama.cpp's llama-vocab.cpp patterns, each splitting the previous pieces into matches and gaps",
        "versions": {"python": platform.python_version(), "regex": version("regex")},
        "texts": strings,
        "preTokenizers": vectors,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {len(strings)} strings x {len(PRE_TOKENIZERS)} pre-tokenizers")


if __name__ == "__main__":
    main()
