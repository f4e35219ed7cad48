"""Offline character-level tokenizers for the embedded tiny models (built with the `tokenizers` library, no hub).

One token per character for ASCII, CJK punctuation, full-width forms and every CJK Unified Ideograph of the basic
block (U+4E00-U+9FFF, 20,992 Hanzi, Traditional and Simplified), plus byte-fallback tokens `<0x00>`..`<0xFF>` so
any other character still round-trips. A character-level vocabulary makes one Hanzi one token, which is what a
tiny random-init model needs to learn to read glyphs (a BPE vocabulary would ask it to learn spelling too).

Not for: real checkpoints (they bring their own tokenizer) - `lib/models/embedded.py` calls this only when it
builds an embedded model.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["character_vocabulary", "build_char_tokenizer"]


def character_vocabulary() -> list[str]:
    """The ordinary (non-special) characters of the embedded tokenizers, in id order."""
    chars: list[str] = []
    chars += [chr(c) for c in range(0x20, 0x7F)]  # printable ASCII, incl. space
    chars += ["\n", "\t"]
    chars += [chr(c) for c in range(0x3000, 0x3040)]  # CJK symbols and punctuation
    chars += [chr(c) for c in range(0xFF01, 0xFF5F)]  # full-width forms
    chars += [chr(c) for c in range(0x2010, 0x2028)]  # dashes, quotes, ellipsis
    chars += ["·", "×", "÷", "°", "±", "§", "¥", "€", "£", "©", "®", "™", "→", "←", "↑", "↓", "○", "●", "□", "■",
              "△", "▲", "☆", "★", "※"]
    chars += [chr(c) for c in range(0x2460, 0x2474)]  # circled numbers ①..⑳
    chars += [chr(c) for c in range(0x2160, 0x216C)]  # Roman numerals Ⅰ..Ⅻ
    chars += [chr(c) for c in range(0x3105, 0x312A)]  # Bopomofo
    chars += [chr(c) for c in range(0x4E00, 0xA000)]  # CJK Unified Ideographs (basic block)
    return list(dict.fromkeys(chars))


def build_char_tokenizer(special_tokens: Sequence[str], *, unk_token: str | None = None):
    """A `tokenizers.Tokenizer`: `special_tokens` get ids 0..n-1 (in that order), then 256 byte-fallback tokens,
    then `character_vocabulary()`. Special tokens are matched whole in the input text (chat templates emit them)."""
    from tokenizers import Tokenizer, decoders, models, AddedToken

    vocab: dict[str, int] = {}
    for tok in special_tokens:
        vocab.setdefault(tok, len(vocab))
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for ch in character_vocabulary():
        vocab.setdefault(ch, len(vocab))
    # BPE without merges = one token per character, unknown characters fall back to their UTF-8 bytes.
    model = models.BPE(vocab=vocab, merges=[], unk_token=unk_token, byte_fallback=True, fuse_unk=False)
    tok = Tokenizer(model)
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special_tokens])
    return tok
