"""The reader's character set: what the pretraining data draws from and what the shipped reader is trained to emit.

Built from the standard character sets that Python's codecs enumerate (no download):
- Big5 level 1 (常用國字, 0xA440-0xC67E): 5,401 Traditional Hanzi - the characters of Taiwanese government text;
- GB2312 level 1 and 2 (0xB0A1-0xF7FE): 6,763 Simplified Hanzi, so Simplified documents (the public real sets are
  mostly Simplified) are readable too;
- Big5's symbol rows (full-width punctuation, 公文 symbols such as ○※△), printable ASCII, full-width digits and
  Latin letters, circled numbers, Roman numerals, Bopomofo.

Every character is also in the embedded tokenizer's vocabulary (`lib/models/tokenizer.character_vocabulary`), one
token each. Not for: rendering (lib/reader/glyphs.py checks which font covers which character).
"""

from __future__ import annotations

import functools
import unicodedata

__all__ = ["big5_level1", "gb2312_hanzi", "symbols", "reader_charset", "is_hanzi"]


def _decode_range(codec: str, lead: range, trail: list[int]) -> list[str]:
    out = []
    for a in lead:
        for b in trail:
            try:
                ch = bytes([a, b]).decode(codec)
            except UnicodeDecodeError:
                continue
            if len(ch) == 1:
                out.append(ch)
    return out


_BIG5_TRAIL = list(range(0x40, 0x7F)) + list(range(0xA1, 0xFF))


@functools.lru_cache(maxsize=None)
def big5_level1() -> tuple[str, ...]:
    """The 5,401 常用國字 of Big5 (0xA440-0xC67E), in code order."""
    chars = [c for c in _decode_range("big5", range(0xA4, 0xC7), _BIG5_TRAIL) if is_hanzi(c)]
    end = bytes([0xC6, 0x7E]).decode("big5")
    return tuple(chars[: chars.index(end) + 1])


@functools.lru_cache(maxsize=None)
def gb2312_hanzi(level2: bool = True) -> tuple[str, ...]:
    """GB2312 level 1 (3,755, rows 16-55) and, with `level2`, level 2 (3,008, rows 56-87)."""
    last = 0xF7 if level2 else 0xD7
    return tuple(c for c in _decode_range("gb2312", range(0xB0, last + 1), list(range(0xA1, 0xFF))) if is_hanzi(c))


def is_hanzi(ch: str) -> bool:
    return len(ch) == 1 and unicodedata.category(ch) == "Lo" and "CJK" in unicodedata.name(ch, "")


@functools.lru_cache(maxsize=None)
def symbols() -> tuple[str, ...]:
    """Punctuation, digits, Latin and 公文 symbols (Big5 rows 0xA1-0xA3 that the tokenizer has, plus ASCII)."""
    from lib.models.tokenizer import character_vocabulary

    vocab = set(character_vocabulary())
    out = [chr(c) for c in range(0x21, 0x7F)]
    out += [c for c in _decode_range("big5", range(0xA1, 0xA4), _BIG5_TRAIL) if not is_hanzi(c)]
    out += [chr(c) for c in range(0xFF01, 0xFF5F)]
    out += [chr(c) for c in range(0x2460, 0x2474)] + [chr(c) for c in range(0x2160, 0x216C)]
    out += list("、。，．；：？！「」『』（）〔〕【】《》〈〉…—～‧·○●□■△▲◎※×÷±％")
    return tuple(c for c in dict.fromkeys(out) if c in vocab and not c.isspace())


@functools.lru_cache(maxsize=None)
def reader_charset() -> tuple[str, ...]:
    """Everything the reader is pretrained on: symbols, then Big5 level 1, then GB2312 characters not in Big5."""
    from lib.models.tokenizer import character_vocabulary

    vocab = set(character_vocabulary())
    chars = list(symbols()) + list(big5_level1()) + list(gb2312_hanzi(level2=True))
    return tuple(c for c in dict.fromkeys(chars) if c in vocab)
