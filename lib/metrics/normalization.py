r"""Text normalization profiles applied to both prediction and ground truth before any text metric.

Three named profiles; the name used is recorded in every result file (`profiles`, `scores[<profile>]`):

* ``seed`` — the original project's ``normalize_text`` (yenhao-huang/vlm-sft-ocr ``core/count_score.py``), quirks
  included, so numbers are comparable with its published table: remove every whitespace run (``re.sub(r"\\s+", "")``),
  then the 32 ASCII ``string.punctuation`` characters, then exactly the characters in ``SEED_CJK_PUNCTUATION``.
  The original meant to remove the curly quotes “”‘’ too, but a string-literal slip (``'...：""''『...'``) turned
  them into two ASCII ``"`` and an implicit string concatenation, so curly quotes are **kept**; ︲ (U+FE32) and the
  small forms ﹏﹐﹑﹒﹔﹕﹖﹗ were never listed and are kept as well. No Unicode normalization, no width folding.
* ``standard`` (the default) — in this order: NFC; strip Markdown heading markers (``#`` .. ``######`` at a line
  start), emphasis markers (``**``, ``__``, ``~~`` anywhere; ``*x*`` around non-space text not touching an
  ASCII letter or digit, so ``2*3*4`` stays; ``_x_`` not inside a word, so ``snake_case`` stays) and inline HTML tags
  and comments other than table structure (``table thead tbody tfoot tr td th caption colgroup col`` are kept so TEDS
  can still read them); full-width ASCII U+FF01–U+FF5E → ASCII and U+3000 → space; Kangxi radicals (U+2F00–U+2FD5)
  and the CJK radicals supplement characters that have a compatibility mapping → unified ideographs (CJK
  compatibility ideographs are already mapped by NFC); finally delete all whitespace (``\s``) and all format
  characters (Unicode category Cf in the BMP: ZWSP/ZWNJ/ZWJ/LRM/RLM U+200B–U+200F, BOM U+FEFF, soft hyphen, bidi
  controls, word joiner ...). Punctuation and letter case are kept.
* ``lenient`` — delete every HTML tag (table structure too), then ``standard``, then OpenCC ``t2s`` (Traditional →
  Simplified, characters and phrases; never ``s2t``/``tw2sp``, which are lossy or rewrite vocabulary) so a prediction
  in the other script is not penalised, then delete every punctuation character (Unicode categories P*, plus all 32
  ASCII ``string.punctuation`` characters, symbols such as ``$+<=>^`|~`` included), then ``str.casefold()``. Applied
  to both sides.

Not for: table cell extraction (lib/metrics/tables.py) or computing distances (lib/metrics/text.py).
"""

from __future__ import annotations

import functools
import re
import string
import sys
import unicodedata

__all__ = ["PROFILES", "DEFAULT_PROFILE", "SEED_CJK_PUNCTUATION", "normalize", "check_profile", "t2s",
           "ProfileError"]

PROFILES: tuple[str, ...] = ("seed", "standard", "lenient")
DEFAULT_PROFILE = "standard"

# Exactly the characters the original removed after ASCII punctuation (its literal minus the slipped quotes).
SEED_CJK_PUNCTUATION = ("，。！？；：『』「」（）【】《》〈〉、·…—～"
                        "︰︱︳︴︵︶︷︸︹︺︻︼︽︾︿﹀﹁﹂﹃﹄﹙﹚﹛﹜﹝﹞")


class ProfileError(ValueError):
    """An unknown normalization profile name; the message suggests the closest known one."""


def check_profile(profile: str) -> str:
    if profile in PROFILES:
        return profile
    import difflib

    close = difflib.get_close_matches(str(profile), PROFILES, n=1, cutoff=0.3)
    hint = f" — did you mean {close[0]!r}?" if close else ""
    raise ProfileError(f"unknown normalization profile {profile!r}{hint} (known: {', '.join(PROFILES)})")


# ---------------------------------------------------------------------------------------------------------- seed
_SEED_WS = re.compile(r"\s+")
_SEED_TABLE = str.maketrans("", "", string.punctuation + SEED_CJK_PUNCTUATION)


def _normalize_seed_reference(text: str) -> str:
    """The original's three steps, literally (``_normalize_seed`` is the fast equivalent; the tests compare them)."""
    text = _SEED_WS.sub("", text)
    return text.translate(_SEED_TABLE)


@functools.lru_cache(maxsize=1)
def _seed_drop_lut():
    import numpy as np

    drop = np.zeros(0x10000, dtype=bool)
    for c in range(0x10000):
        if not 0xD800 <= c <= 0xDFFF and chr(c).isspace():
            drop[c] = True
    drop[[ord(c) for c in string.punctuation + SEED_CJK_PUNCTUATION]] = True
    return drop


def _normalize_seed(text: str) -> str:
    if text.isascii():
        return _normalize_seed_reference(text)
    import numpy as np

    units = np.frombuffer(text.encode("utf-16-le", "surrogatepass"), dtype=np.uint16)
    return units[~_seed_drop_lut()[units]].tobytes().decode("utf-16-le", "surrogatepass")


# ------------------------------------------------------------------------------------------------------ standard
def _format_chars() -> str:
    return "".join(chr(c) for c in range(0x10000) if unicodedata.category(chr(c)) == "Cf")


_CF_CHARS = _format_chars()
_CF_SET = frozenset(_CF_CHARS)
_TABLE_TAGS = ("table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "colgroup", "col")
# An HTML tag (opening, closing or self-closing) or comment whose name is not table structure.
_INLINE_TAG_RE = re.compile(r"<!--.*?-->|</?(?!(?:%s)\b)[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>" % "|".join(_TABLE_TAGS),
                            re.S | re.I)
_MD_HEADING_RE = re.compile(r"^[ \t]{0,3}#{1,6}(?=[ \t]|$)", re.M)
_MD_STRONG_RE = re.compile(r"\*\*|__|~~")
# *x* may touch CJK text (與*斜體*) but not ASCII letters/digits (2*3*4); _x_ follows CommonMark's no-intraword rule.
_MD_EMPH_STAR_RE = re.compile(r"(?<![*A-Za-z0-9])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![*A-Za-z0-9])", re.S)
_MD_EMPH_UNDERSCORE_RE = re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])", re.S)
_FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
_FULLWIDTH[0x3000] = 0x20


def _radical_table() -> dict[int, str]:
    table = {}
    for c in list(range(0x2E80, 0x2F00)) + list(range(0x2F00, 0x2FE0)):
        ch = chr(c)
        k = unicodedata.normalize("NFKC", ch)
        if k != ch and len(k) == 1:
            table[c] = k
    return table


_WIDTH_RADICAL_TABLE = {**_FULLWIDTH, **_radical_table()}
_WIDTH_RADICAL_STR = {chr(k): (v if isinstance(v, str) else chr(v)) for k, v in _WIDTH_RADICAL_TABLE.items()}


def _strip_markup_once(text: str) -> str:
    if "<" in text:
        text = _INLINE_TAG_RE.sub("", text)
    if "#" in text:
        text = _MD_HEADING_RE.sub("", text)
    if "*" in text or "_" in text or "~" in text:
        text = _MD_STRONG_RE.sub("", text)
        if "*" in text:
            text = _MD_EMPH_STAR_RE.sub(r"\1", text)
        if "_" in text:
            text = _MD_EMPH_UNDERSCORE_RE.sub(r"\1", text)
    return text


def _strip_markup(text: str) -> str:
    """Repeat until nothing changes (``<<b>b>`` → ``<b>`` → ``""``) so normalization is idempotent."""
    if "<" not in text and "#" not in text and "*" not in text and "_" not in text and "~" not in text:
        return text
    for _ in range(8):
        new = _strip_markup_once(text)
        if new == text:
            break
        text = new
    return text


def _fold_and_drop_reference(text: str) -> str:
    """Width/radical folding, then deletion of whitespace and format characters, written plainly (the definition;
    ``_fold_and_drop`` is the fast equivalent and the tests compare the two)."""
    text = "".join(_WIDTH_RADICAL_STR.get(ch, ch) for ch in text)
    return "".join(ch for ch in text if not ch.isspace() and ch not in _CF_SET)


@functools.lru_cache(maxsize=1)
def _luts():
    """Two 65,536-entry lookup tables over UTF-16 code units: the folded code unit, and whether to drop it."""
    import numpy as np

    fold = np.arange(0x10000, dtype=np.uint16)
    for k, v in _WIDTH_RADICAL_STR.items():
        fold[ord(k)] = ord(v)
    drop = np.zeros(0x10000, dtype=bool)
    for c in range(0x10000):
        if 0xD800 <= c <= 0xDFFF:
            continue  # surrogate halves of non-BMP characters pass through untouched
        ch = chr(fold[c])
        drop[c] = ch.isspace() or ch in _CF_SET
    return fold, drop


def _fold_and_drop(text: str) -> str:
    """One vectorised pass over the UTF-16 code units (about 6x faster than regex + str methods on a CJK page)."""
    import numpy as np

    fold, drop = _luts()
    units = np.frombuffer(text.encode("utf-16-le", "surrogatepass"), dtype=np.uint16)
    keep = ~drop[units]
    return fold[units[keep]].tobytes().decode("utf-16-le", "surrogatepass")


def _normalize_standard(text: str) -> str:
    if text.isascii():
        return "".join(_strip_markup(text).split())
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return _fold_and_drop(_strip_markup(text))


# ------------------------------------------------------------------------------------------------------- lenient
def _punct_chars() -> str:
    chars = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)).startswith("P")]
    return "".join(sorted(set(chars) | set(string.punctuation)))


def _ranges_class(chars: str) -> str:
    """A regex character class of code-point ranges (re scans a class of ranges far faster than a long list)."""
    cps = sorted({ord(c) for c in chars})
    parts, start, prev = [], None, None
    for c in cps + [None]:
        if start is None:
            start = prev = c
        elif c is not None and c == prev + 1:
            prev = c
        else:
            parts.append(re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev != start else ""))
            start = prev = c
    return "[" + "".join(parts) + "]"


@functools.lru_cache(maxsize=1)
def _punct_tables():
    """(drop LUT over UTF-16 code units for BMP punctuation, regex for the few punctuation marks beyond the BMP)."""
    import numpy as np

    chars = "".join(sorted(_punct_set()))
    drop = np.zeros(0x10000, dtype=bool)
    drop[[ord(c) for c in chars if ord(c) < 0x10000]] = True
    drop[0xD800:0xE000] = False  # surrogate halves belong to non-BMP characters
    astral = "".join(c for c in chars if ord(c) >= 0x10000)
    return drop, re.compile(_ranges_class(astral) + "+")


def _drop_punctuation_reference(text: str) -> str:
    chars = _punct_set()
    return "".join(ch for ch in text if ch not in chars)


@functools.lru_cache(maxsize=1)
def _punct_set() -> frozenset:
    return frozenset(_punct_chars())


def _drop_punctuation(text: str) -> str:
    import numpy as np

    if text.isascii():
        return text.translate(_ASCII_PUNCT_TABLE)
    drop, astral_re = _punct_tables()
    units = np.frombuffer(text.encode("utf-16-le", "surrogatepass"), dtype=np.uint16)
    kept = units[~drop[units]]
    out = kept.tobytes().decode("utf-16-le", "surrogatepass")
    high = np.flatnonzero((kept[:-1] >= 0xD800) & (kept[:-1] < 0xDC00) & (kept[1:] >= 0xDC00) & (kept[1:] < 0xE000))
    if high.size:  # characters beyond the BMP (OpenCC t2s emits some): check just those code points
        cps = 0x10000 + ((kept[high].astype(np.uint32) - 0xD800) << 10) + (kept[high + 1].astype(np.uint32) - 0xDC00)
        if any(int(c) in _astral_punct_codes() for c in cps):
            out = astral_re.sub("", out)
    return out


@functools.lru_cache(maxsize=1)
def _astral_punct_codes() -> frozenset:
    return frozenset(ord(c) for c in _punct_set() if ord(c) >= 0x10000)


_ASCII_PUNCT_TABLE = str.maketrans("", "", string.punctuation)


@functools.lru_cache(maxsize=1)
def _t2s_converter():
    import opencc

    return opencc.OpenCC("t2s")


def t2s(text: str) -> str:
    """OpenCC Traditional → Simplified (config ``t2s``: characters and phrases, no regional vocabulary)."""
    if not text or text.isascii():
        return text
    return _t2s_converter().convert(text)


_ANY_TAG_RE = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")


def _normalize_lenient(text: str) -> str:
    if "<" in text:
        text = _ANY_TAG_RE.sub("", text)  # table structure too: lenient compares text only
    text = _normalize_standard(text)
    # t2s before removing punctuation, so OpenCC's phrase matching does not join words across punctuation
    text = t2s(text)
    return _drop_punctuation(text).casefold()


_IMPL = {"seed": _normalize_seed, "standard": _normalize_standard, "lenient": _normalize_lenient}


def normalize(text: str | None, profile: str = DEFAULT_PROFILE) -> str:
    """Normalize `text` with a named profile (``seed``, ``standard``, ``lenient``; see the module docstring for
    the exact steps). ``None`` is treated as the empty string."""
    if text is None:
        return ""
    try:
        fn = _IMPL[profile]
    except KeyError:
        check_profile(profile)
        raise
    return fn(str(text))
