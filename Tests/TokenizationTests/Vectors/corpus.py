"""Test strings shared by the vector generators: hand-written cases plus seeded random ones.

Everything here is deterministic (fixed seeds) so regenerating the fixtures gives the same strings.
Random characters come only from long-assigned Unicode blocks, so the Unicode version of the
oracle (Python `regex`, Hugging Face `tokenizers`) and of Swift's standard library agree on them.
"""

import random

HANDWRITTEN = [
    "",
    " ",
    "  ",
    "   ",
    "\t",
    "\n",
    "\n\n",
    "\r\n",
    " \n",
    "\n ",
    " \t\n \r\n\t ",
    "Hello",
    "Hello world",
    " Hello world",
    "Hello world ",
    "Hello  world",
    "Hello   world",
    "Hello\tworld",
    "Hello\nworld",
    "Hello\n\nworld",
    "Hello \n world",
    "Hello, world!",
    "HELLO WORLD",
    "hello-world_foo.bar",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure it's fine; they're here, we've been, you'll see, he'd go, don't.",
    "I'M SURE IT'S FINE; THEY'RE HERE, WE'VE BEEN, YOU'LL SEE, HE'D GO, DON'T.",
    "'s 't 're 've 'm 'll 'd",
    "'S 'T 'RE 'VE 'M 'LL 'D",
    "''s '' 's'",
    "rock 'n' roll",
    "O'Neil's café",
    "don't",
    "x's",
    "'",
    "''",
    "'''",
    "'abc",
    "$100.00 and €50,00 or £7",
    "3.14159265358979",
    "1,000,000",
    "2024-01-15T10:30:00Z",
    "192.168.0.1:8080",
    "+1 (555) 123-4567",
    "v1.2.3-beta+build.42",
    "0x1F600 0b1010 0o777",
    "1e-9 6.02e23",
    "a1b2c3",
    "abc123def456",
    "１２３ full-width digits",
    "٣٤٥ Arabic-Indic digits",
    "² ³ ½ ¾ Ⅷ ⅻ",
    "def foo(x, y):\n    return x + y\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    "    indented four\n        eight\n\t\ttabs",
    "if x == 1 and y != 2 or z >= 3: pass",
    "let x: [Int] = [1, 2, 3].map { $0 * 2 }",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); }",
    "SELECT * FROM users WHERE id = 7;",
    "<div class=\"a\">Hi &amp; bye</div>",
    "https://example.com/path?query=1&b=two#frag",
    "user@example.com",
    "{\"key\": [1, 2.5, true, null], \"nested\": {\"a\": \"b\"}}",
    "a  b   c    d     e",
    "trailing spaces   ",
    "   leading spaces",
    "line one\nline two\r\nline three\rfour",
    "....!!!???,,,;;;:::",
    "---___===+++***",
    "«quotes» “curly” ‘single’ „low“",
    "em—dash en–dash … ellipsis",
    "naïve café résumé façade coöperate",
    "Ångström Ærøskøbing Œuvre ß straße",
    "ñandú pingüino acción",
    "Ελληνικά γράμματα",
    "Русский текст, ёж.",
    "Україна і їжак",
    "עברית מימין לשמאל",
    "العربية من اليمين",
    "فارسی و اردو",
    "हिन्दी भाषा",
    "বাংলা ভাষা",
    "தமிழ் மொழி",
    "ภาษาไทย ไม่มีช่องว่าง",
    "中文字符测试",
    "日本語のテキスト、カタカナとひらがな。",
    "한국어 텍스트입니다",
    "混合English和中文",
    "e\u0301 a\u0308 n\u0303 combining",
    "\u0041\u030A\u0301 stacked",
    "Z\u0351\u0352\u0353a\u0354\u0355l\u0356g\u0357o",
    "😀",
    "😀😃😄",
    "Hello 😀 world",
    "👍🏽 👍🏿 👋🏻",
    "👨‍👩‍👧‍👦 family",
    "🏳️‍🌈 flag",
    "👩🏽‍💻 technologist",
    "🇺🇸🇯🇵🇩🇪",
    "❤️ ☺️ ✌🏼",
    "🤖🧠🦀🐍",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙",
    "𠜎𠜱𠝹𠱓",
    "\u00a0non-breaking\u00a0space",
    "thin\u2009space and\u3000ideographic",
    "zero\u200bwidth\u200cjoiner\u200d",
    "soft\u00adhyphen",
    "\u0085next line",
    "\u2028line sep\u2029para sep",
    "tab\u000bvt\u000cff",
    "\u0000nul\u0001soh\u001fus\u007fdel",
    "\ufeffBOM at start",
    "replacement \ufffd char",
    "private \ue000 use",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "abcdefghijklmnopqrstuvwxyz" * 8,
    "supercalifragilisticexpialidocious" * 4,
    "Pneumonoultramicroscopicsilicovolcanoconiosis",
    "=" * 80,
    "-" * 120 + "\n" + "#" * 50,
    " " * 40 + "x",
    "\n" * 20,
    "\t" * 12 + "tabs",
    "ab" * 70,
    "🙂" * 30,
    "中" * 60,
]

SPECIAL_TEMPLATES = [
    "{s}",
    "{s}{s}",
    "{s} {s}",
    "Hello{s}world",
    "Hello {s} world",
    "{s}user\nWhat is 2+2?{e}\n{s}assistant\n",
    "text before {s}",
    "{s}text after",
    " {s} ",
    "\n{s}\n",
    "<{s}>",
    "{s}{e}{s}",
    "<|im_start",
    "im_start|>",
    "<|im_start|",
    "<<|im_start|>>",
]


def random_strings(seed: int, count: int, alphabet_sets) -> list:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        length = rng.choice([1, 2, 3, 5, 8, 13, 21, 34, 55])
        chars = []
        for _ in range(length):
            alphabet = rng.choice(alphabet_sets)
            chars.append(rng.choice(alphabet))
        out.append("".join(chars))
    return out


def block(lo: int, hi: int) -> list:
    return [chr(c) for c in range(lo, hi + 1)]


ASCII_LETTERS = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
ASCII_DIGITS = list("0123456789")
ASCII_PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
WHITESPACE = [" ", " ", " ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2003"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ll", "'", "''"]
LATIN1 = block(0xC0, 0xFF)
LATIN_EXT = block(0x100, 0x17F)
GREEK = block(0x391, 0x3A9) + block(0x3B1, 0x3C9)
CYRILLIC = block(0x410, 0x44F)
HEBREW = block(0x5D0, 0x5EA)
ARABIC = block(0x627, 0x64A)
DEVANAGARI = block(0x905, 0x939) + ["\u093e", "\u093f", "\u0940", "\u094d"]
THAI = block(0xE01, 0xE2E)
CJK = block(0x4E00, 0x4FFF)
HIRAGANA = block(0x3041, 0x3093)
KATAKANA = block(0x30A1, 0x30F6)
HANGUL = block(0xAC00, 0xAD00)
COMBINING = block(0x300, 0x36F)
EMOJI = block(0x1F600, 0x1F64F) + block(0x1F300, 0x1F320) + ["\u2764\ufe0f", "\U0001F44D\U0001F3FD", "\U0001F468\u200d\U0001F469\u200d\U0001F467"]
SYMBOLS = list("©®™°±×÷§¶•†‡‰′″€£¥¢₹₿←→↑↓∀∂∃∅∇∈∉∑∏√∞≈≠≤≥")
NUMBERS_OTHER = list("²³¹¼½¾٠١٢٣٤٥٦٧٨٩०१२३४५६७८९ⅠⅡⅢⅣⅤ①②③")


def numbers() -> list:
    out = []
    digits = "31415926535897932384626433832795028841971693993751"
    for n in range(1, 31):
        out.append(digits[:n])
        out.append(" " + digits[:n])
        out.append("x" + digits[:n] + "y")
        out.append(digits[:n] + " apples")
    for value in [0, 7, 42, 100, 999, 1000, 65535, 123456789, 2 ** 31, 2 ** 64, 10 ** 20]:
        out.append(str(value))
        out.append(f"{value:,}")
        out.append(f"{value / 7:.6f}")
        out.append(f"-{value}")
    return out


def whitespace_runs() -> list:
    out = []
    units = [" ", "\t", "\n", "\r\n", "\u00a0", "\u3000"]
    for a in units:
        for b in units:
            for n in (1, 2, 3, 5):
                out.append("x" + a * n + b + "y")
                out.append(a * n + b)
                out.append("word" + a * n)
                out.append(a * n + "word")
    return out


def mixed(seed: int, count: int) -> list:
    rng = random.Random(seed)
    words = ("the of and to in is you that it he was for on are as with his they at be this have from or one had by "
             "word but not what all were we when your can said there use an each which she do how their if will up other "
             "about out many then them these so some her would make like him into time has look two more write go see "
             "number no way could people my than first water been call who oil its now find long down day did get come "
             "made may part machine learning tokenizer inference kernel quantization").split()
    pieces = [words, words, words, ASCII_DIGITS, ASCII_PUNCT, WHITESPACE, CONTRACTIONS, EMOJI, CJK, CYRILLIC, LATIN1, SYMBOLS]
    out = []
    for _ in range(count):
        n = rng.randint(1, 25)
        parts = []
        for _ in range(n):
            choice = rng.choice(pieces)
            item = rng.choice(choice)
            if choice is words and rng.random() < 0.2:
                item = item.capitalize()
            if choice is words and rng.random() < 0.1:
                item = item.upper()
            parts.append(item)
            if rng.random() < 0.6:
                parts.append(" ")
        out.append("".join(parts))
    return out


def corpus(special_open: str, special_close: str, with_specials: bool) -> list:
    strings = list(HANDWRITTEN)
    strings += numbers()
    strings += whitespace_runs()
    strings += random_strings(1, 400, [ASCII_LETTERS, ASCII_DIGITS, ASCII_PUNCT, WHITESPACE, CONTRACTIONS])
    strings += random_strings(2, 400, [LATIN1, LATIN_EXT, GREEK, CYRILLIC, HEBREW, ARABIC, DEVANAGARI, THAI, COMBINING, WHITESPACE, ASCII_LETTERS])
    strings += random_strings(3, 300, [CJK, HIRAGANA, KATAKANA, HANGUL, EMOJI, SYMBOLS, NUMBERS_OTHER, WHITESPACE, ASCII_PUNCT])
    strings += random_strings(4, 200, [EMOJI, COMBINING, ["\u200d", "\ufe0f", "\U0001F3FB", "\U0001F3FF"], WHITESPACE])
    strings += mixed(5, 900)
    if with_specials:
        for template in SPECIAL_TEMPLATES:
            strings.append(template.format(s=special_open, e=special_close))
    seen = set()
    unique = []
    for s in strings:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    return unique
