#!/usr/bin/env python3
"""Independent tokenizers, to check fused-distill's tokenizer ids (src/data/tokenizer.ts).

Standard library only (no transformers, no tokenizers package). Written from the published algorithms,
not from fused-distill's code or the tokenizers library it runs:

- BERT WordPiece, as transformers' tokenization_bert.py (BasicTokenizer + WordpieceTokenizer) does it:
  clean text (drop NUL, U+FFFD and control characters: category C* except tab / newline / CR;
  whitespace, including category Zs, becomes a space), spaces around CJK ideographs, whitespace split,
  lowercase and, when lowercasing (or strip_accents true), NFD and drop category Mn, split on
  punctuation (ASCII non-alphanumerics and category P*), then greedy longest-match-first WordPiece
  with "##" continuations; a word over max_input_chars_per_word (100) characters, or one with a
  part not in the vocabulary, is [UNK].
- SentencePiece Unigram over a tokenizer.json's vocabulary (piece, log-probability): the normalizers
  (Sequence of Replace, NFKC, NFD, Lowercase), the Metaspace pre-tokenizer (spaces become the
  replacement, a replacement prepended per prepend_scheme, split before each replacement), and Viterbi
  over the lattice of pieces, where a character no piece of length one covers is an unknown of score
  (lowest piece score - 10); consecutive unknowns fuse into one <unk>.
- Special tokens inside text (the added tokens of the tokenizer) are matched in the raw text first,
  longest at each position, and kept whole; the text between them is tokenized alone.
- Pairs as transformers builds them: [CLS] a [SEP] b [SEP] with token types 0 then 1 (BERT) or
  <s> a </s></s> b </s> with token types 0 (RoBERTa / XLM-R), truncated longest first (one token
  at a time from the longer, from the second on a tie, as truncate_sequences), padded to max_length.

Input on stdin (JSON): {"kind": "wordpiece", "vocab": [token, ...], "lowercase": bool,
"strip_accents": bool|null, "chinese_chars": bool} or {"kind": "unigram", "tokenizer": {tokenizer.json}};
both with "specials" ([token, ...] matched in text; WordPiece's default [PAD] [UNK] [CLS] [SEP] [MASK]),
"texts": [text, ...] and "pairs": [[a, b, max_length], ...]. Output: {"ids": [[...], ...], "pairs":
[{"input_ids": [...], "token_type_ids": [...], "attention_mask": [...]}, ...]}.
"""

import json
import re
import sys
import unicodedata

# --- BERT's BasicTokenizer and WordpieceTokenizer -------------------------------------------------


def is_whitespace(ch):
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


CJK_RANGES = [
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
]


def is_cjk(ch):
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def basic_tokenize(text, lowercase, strip_accents, chinese_chars):
    cleaned = []
    for ch in text:
        if ord(ch) == 0 or ord(ch) == 0xFFFD or is_control(ch):
            continue
        cleaned.append(" " if is_whitespace(ch) else ch)
    text = "".join(cleaned)
    if chinese_chars:
        text = "".join(f" {ch} " if is_cjk(ch) else ch for ch in text)
    words = []
    for token in text.split():
        if lowercase:
            token = token.lower()
            if strip_accents is not False:
                token = strip_marks(token)
        elif strip_accents:
            token = strip_marks(token)
        words.extend(split_punctuation(token))
    return " ".join(words).split()


def strip_marks(token):
    return "".join(ch for ch in unicodedata.normalize("NFD", token) if unicodedata.category(ch) != "Mn")


def split_punctuation(token):
    out = []
    start_new = True
    for ch in token:
        if is_punctuation(ch):
            out.append(ch)
            start_new = True
        else:
            if start_new:
                out.append("")
            start_new = False
            out[-1] += ch
    return out


def wordpiece(word, vocab, unk="[UNK]", max_chars=100):
    chars = list(word)  # code points, as Python strings index them
    if len(chars) > max_chars:
        return [unk]
    pieces = []
    start = 0
    while start < len(chars):
        end = len(chars)
        found = None
        while start < end:
            sub = "".join(chars[start:end])
            if start > 0:
                sub = "##" + sub
            if sub in vocab:
                found = sub
                break
            end -= 1
        if found is None:
            return [unk]
        pieces.append(found)
        start = end
    return pieces


class WordPiece:
    def __init__(self, spec):
        self.vocab = {t: i for i, t in enumerate(spec["vocab"])}
        self.lowercase = spec.get("lowercase", True)
        self.strip_accents = spec.get("strip_accents")
        self.chinese_chars = spec.get("chinese_chars", True)
        self.specials = spec.get("specials", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
        self.cls, self.sep, self.pad = (self.vocab[t] for t in ("[CLS]", "[SEP]", "[PAD]"))
        self.layout = "bert"

    def ids_of_span(self, text):
        out = []
        for word in basic_tokenize(text, self.lowercase, self.strip_accents, self.chinese_chars):
            out.extend(self.vocab[p] for p in wordpiece(word, self.vocab))
        return out


# --- SentencePiece Unigram with the Metaspace pre-tokenizer ----------------------------------------

UNK_PENALTY = 10.0


def normalize(normalizer, text):
    if normalizer is None:
        return text
    kind = normalizer["type"]
    if kind == "Sequence":
        for n in normalizer["normalizers"]:
            text = normalize(n, text)
        return text
    if kind == "Replace":
        pattern = normalizer["pattern"]
        if "Regex" in pattern:
            return re.sub(pattern["Regex"], normalizer["content"], text)
        return text.replace(pattern["String"], normalizer["content"])
    if kind in ("NFKC", "NFC", "NFD", "NFKD"):
        return unicodedata.normalize(kind, text)
    if kind == "Lowercase":
        return text.lower()
    raise SystemExit(f"tokenizers_reference.py: normalizer {kind} is not implemented here")


def metaspace(pre, text, first):
    if pre is None or pre.get("type") != "Metaspace":
        raise SystemExit("tokenizers_reference.py: only the Metaspace pre-tokenizer is implemented here")
    rep = pre.get("replacement", "▁")
    text = text.replace(" ", rep)
    scheme = pre.get("prepend_scheme", "always")
    if (scheme == "always" or (scheme == "first" and first)) and not text.startswith(rep):
        text = rep + text
    if not pre.get("split", True):
        return [text] if text else []
    # split before each replacement character (it stays with the word that follows it)
    words = []
    for ch in text:
        if ch == rep or not words:
            words.append(ch)
        else:
            words[-1] += ch
    return words


class Unigram:
    def __init__(self, spec):
        tok = spec["tokenizer"]
        model = tok["model"]
        if model["type"] != "Unigram":
            raise SystemExit("tokenizers_reference.py: the tokenizer.json's model is not Unigram")
        self.pieces = {p: (i, s) for i, (p, s) in enumerate(model["vocab"])}
        self.max_len = max(len(p) for p in self.pieces)
        self.unk_id = model["unk_id"]
        self.unk_score = min(s for _, s in model["vocab"]) - UNK_PENALTY
        self.normalizer = tok.get("normalizer")
        self.pre = tok.get("pre_tokenizer")
        self.specials = spec.get("specials") or [t["content"] for t in tok.get("added_tokens", [])]
        self.lstrip = {t["content"] for t in tok.get("added_tokens", []) if t.get("lstrip")}
        self.rstrip = {t["content"] for t in tok.get("added_tokens", []) if t.get("rstrip")}
        self.cls, self.sep, self.pad = (self.pieces[t][0] for t in ("<s>", "</s>", "<pad>"))
        self.vocab = {p: i for p, (i, _) in self.pieces.items()}
        self.layout = "roberta"
        self.first = True

    def viterbi(self, word):
        n = len(word)
        best = [float("-inf")] * (n + 1)
        back = [None] * (n + 1)
        best[0] = 0.0
        for start in range(n):
            if best[start] == float("-inf"):
                continue
            single = False
            for end in range(start + 1, min(n, start + self.max_len) + 1):
                piece = word[start:end]
                if piece in self.pieces:
                    pid, score = self.pieces[piece]
                    if end == start + 1:
                        single = True
                    if best[start] + score > best[end]:
                        best[end] = best[start] + score
                        back[end] = (start, pid)
            if not single and best[start] + self.unk_score > best[start + 1]:
                best[start + 1] = best[start] + self.unk_score
                back[start + 1] = (start, self.unk_id)
        ids = []
        end = n
        while end > 0:
            start, pid = back[end]
            ids.append(pid)
            end = start
        ids.reverse()
        fused = []
        for pid in ids:
            if pid == self.unk_id and fused and fused[-1] == self.unk_id:
                continue
            fused.append(pid)
        return fused

    def ids_of_span(self, text):
        out = []
        for word in metaspace(self.pre, normalize(self.normalizer, text), self.first):
            out.extend(self.viterbi(word))
        return out


# --- special tokens in text, pairs ----------------------------------------------------------------


def split_specials(tokenizer, text):
    """[(is_special, span)]: the special tokens found left to right (longest first at a position)."""
    specials = sorted(tokenizer.specials, key=len, reverse=True)
    lstrip = getattr(tokenizer, "lstrip", set())
    rstrip = getattr(tokenizer, "rstrip", set())
    parts = []
    buf = ""
    i = 0
    while i < len(text):
        hit = next((s for s in specials if text.startswith(s, i)), None)
        if hit is None:
            buf += text[i]
            i += 1
            continue
        if hit in lstrip:
            buf = buf.rstrip()
        if buf:
            parts.append((False, buf))
        parts.append((True, hit))
        buf = ""
        i += len(hit)
        if hit in rstrip:
            while i < len(text) and text[i].isspace():
                i += 1
    if buf:
        parts.append((False, buf))
    return parts


def ids(tokenizer, text):
    out = []
    for k, (special, span) in enumerate(split_specials(tokenizer, text)):
        tokenizer.first = k == 0
        out.extend([tokenizer.vocab[span]] if special else tokenizer.ids_of_span(span))
    return out


def pair(tokenizer, a, b, max_length):
    x, y = ids(tokenizer, a), ids(tokenizer, b)
    specials = 4 if tokenizer.layout == "roberta" else 3
    for _ in range(len(x) + len(y) + specials - max_length):
        if len(x) > len(y):
            x = x[:-1]
        else:
            y = y[:-1]
    middle = [tokenizer.sep, tokenizer.sep] if tokenizer.layout == "roberta" else [tokenizer.sep]
    seq = [tokenizer.cls] + x + middle + y + [tokenizer.sep]
    types = [0] * len(seq) if tokenizer.layout == "roberta" else [0] * (len(x) + 2) + [1] * (len(y) + 1)
    pad = max_length - len(seq)
    return {
        "input_ids": seq + [tokenizer.pad] * pad,
        "token_type_ids": types + [0] * pad,
        "attention_mask": [1] * len(seq) + [0] * pad,
    }


def main():
    spec = json.load(sys.stdin)
    tokenizer = WordPiece(spec) if spec["kind"] == "wordpiece" else Unigram(spec)
    print(
        json.dumps(
            {
                "ids": [ids(tokenizer, t) for t in spec.get("texts", [])],
                "pairs": [pair(tokenizer, a, b, m) for a, b, m in spec.get("pairs", [])],
            }
        )
    )


if __name__ == "__main__":
    main()
