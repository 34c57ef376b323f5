#!/usr/bin/env python3
"""Writes Fixtures/spm-bpe-vectors.json: a small SentencePiece vocabulary trained here, and the
`sentencepiece` library's own encodings of test strings as the oracle.

The model is a SentencePiece *BPE* model: SentencePiece encodes those by merging the adjacent pair
with the best piece score, which is the algorithm llama.cpp runs for every `tokenizer.ggml.model =
llama` vocabulary. (For *unigram* models SentencePiece runs a Viterbi search instead, so llama.cpp's
merge order can legitimately pick other pieces; this oracle therefore uses a BPE model.)

Training options match what llama.cpp does to the text: no normalization (identity rule), no removal
of extra whitespace, a dummy `▁` prefix (llama.cpp's add_space_prefix), byte fallback to `<0xNN>`.

Usage:  pip install sentencepiece && python3 generate_spm_vectors.py
"""

import io
import json
import platform
import random
import sys
from importlib.metadata import version
from pathlib import Path

import sentencepiece as spm

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, str(Path(__file__).parent))
from corpus import corpus, mixed  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "Fixtures" / "spm-bpe-vectors.json"

TRAINING_TEXT = """\
Tokenizers turn text into numbers. A language model reads those numbers, one token at a time,
and predicts the next one. The vocabulary of a SentencePiece model holds pieces such as words,
parts of words and single characters; a space is written as a lower one-eighth block.
In 2024 the team trained 3 models on 1,000,000 sentences and measured 42 benchmarks.
She said: "It's not what I expected, but we'll see." They're going to the market at 9:30.
The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.
Inference servers batch requests, page the key-value cache and stream tokens back to clients.
Quantized weights store four or eight bits per value with a scale for every block of numbers.
Le café est très bon à Paris. Die Straße ist schön. ¿Dónde está la biblioteca?
Привет, как дела? Всё хорошо.
"""


def training_sentences():
    lines = [line for line in TRAINING_TEXT.splitlines() if line]
    lines += mixed(11, 600)
    rng = random.Random(3)
    words = TRAINING_TEXT.split()
    for _ in range(1500):
        lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 15))))
    return lines


def main():
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_sentences()),
        model_writer=model,
        model_type="bpe",
        vocab_size=800,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        split_digits=True,
        character_coverage=0.995,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        minloglevel=2,
        num_threads=1,
    )
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    n = sp.get_piece_size()
    pieces, scores, types = [], [], []
    for i in range(n):
        pieces.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif sp.is_byte(i):
            types.append(6)
        elif sp.is_unused(i):
            types.append(5)
        else:
            types.append(1)

    strings = corpus("<s>", "</s>", with_specials=False)
    strings = strings[:500] + strings[500::4]
    strings += ["<s>", "</s>", "<unk>", "a<s>b", "<0x41>", " world", "a", "b"]  # special texts stay text (no parsing)
    cases = []
    for s in strings:
        ids = sp.encode(s, out_type=int)
        cases.append({"text": s, "ids": ids, "decoded": sp.decode(ids)})

    out = {
        "generator": "Tests/TokenizationTests/Vectors/generate_spm_vectors.py",
        "oracle": "sentencepiece BPE model trained by the generator (identity normalization, dummy prefix, byte fallback); SentencePieceProcessor.encode/decode",
        "versions": {"python": platform.python_version(), "sentencepiece": version("sentencepiece")},
        "vocabulary": {"tokens": pieces, "scores": scores, "tokenTypes": types, "unknownTokenID": 0, "bosTokenID": 1, "eosTokenID": 2},
        "cases": cases,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {n} pieces, {len(cases)} cases")


if __name__ == "__main__":
    main()
