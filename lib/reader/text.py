"""What the reader's pretraining lines say: 公文 text, uniformly random characters, and numbers / dates / Latin.

- `gongwen`: windows of lines of synthetic 公文 (lib/synth/content.py: 主旨/說明/辦法, 受文者, 發文日期/字號, 附件,
  正本/副本, agencies, laws, 民國 dates, amounts, phone numbers, e-mail), Traditional or converted to Simplified.
  Training documents and test documents come from disjoint seed ranges.
- `random`: characters drawn uniformly from what the chosen font covers (mostly Hanzi), so every character of the
  set is seen and no language prior can stand in for reading.
- `mixed`: numbers, dates, codes, Latin words and punctuation in 公文 formats.

`LineSampler.sample(n)` returns `(texts, font_ids)`; every character of a text is covered by its font (uncovered
ones are dropped from the text before drawing, so the label is exactly what is drawn). Not for: drawing.
"""

from __future__ import annotations

import random
import string
from typing import Sequence

import numpy as np

from lib.reader.charset import is_hanzi

__all__ = ["gongwen_lines", "LineSampler", "TEST_DOC_SEED0"]

TEST_DOC_SEED0 = 1_000_000  # test documents: seeds from here on; training: 0 .. n_docs-1


def gongwen_lines(seeds: Sequence[int], simplified_share: float = 0.3) -> list[str]:
    """Every text line of the synthetic 公文 documents with these seeds (one line per field / item / table cell)."""
    from lib.synth import content as C

    out: list[str] = []
    for s in seeds:
        rng = random.Random(s)
        doc = C.make_document(rng)
        if rng.random() < simplified_share:
            doc = C.map_document(doc, C.to_simplified)
        lines = [doc.title, doc.receiver, *doc.address_lines, *doc.copies, doc.signer_title + doc.signer_name]
        lines += [k + "：" + v for k, v in doc.header_fields]
        for head, items in doc.sections:
            lines += [head + "：" + t if i == 0 else t for i, (_, t) in enumerate(items)]
        if doc.table is not None:
            lines += [c[4] for c in doc.table.cells if c[4]]
        if doc.vertical:
            lines.append(doc.vertical)
        out += [ln.strip() for ln in lines if ln.strip()]
    return out


_WORDS = ["OCR", "PDF", "KPI", "ESG", "AI", "e-Gov", "COVID-19", "5G", "ISO", "No.", "Email", "Tel", "Fax",
          "http", "www", "gov.tw", "APP", "ID", "QR", "USB", "WiFi", "Excel", "Word", "ODF", "CSV", "GPS"]


def _mixed(rng: random.Random) -> str:
    k = rng.randrange(10)
    y, m, d = rng.randint(80, 116), rng.randint(1, 12), rng.randint(1, 31)
    if k == 0:
        return f"中華民國{y}年{m}月{d}日" if rng.random() < 0.5 else f"{y}.{m:02d}.{d:02d}"
    if k == 1:
        return f"({rng.randint(2, 8):02d}){rng.randint(2000, 8999)}-{rng.randint(0, 9999):04d}"
    if k == 2:
        return f"{rng.randint(1, 999_999_999):,}元" if rng.random() < 0.5 else f"新臺幣{rng.randint(1, 99_999):,}萬元"
    if k == 3:
        return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(rng.randint(3, 14)))
    if k == 4:
        return f"第{rng.randint(1, 200)}條第{rng.randint(1, 9)}項" + rng.choice(["", "第1款", "規定", "之1"])
    if k == 5:
        return f"{rng.randint(0, 100)}.{rng.randint(0, 99)}%" + rng.choice(["", "（含）", "以上"])
    if k == 6:
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 5)))
    if k == 7:
        return f"{rng.choice(string.ascii_lowercase)}{rng.randint(1, 999)}@mail.{rng.choice(['gov', 'edu', 'org'])}.tw"
    if k == 8:
        return f"{y}{rng.choice(['府', '北市', '臺教', '院臺'])}{rng.choice(['教', '秘', '財'])}字第{rng.randint(10**9, 10**10 - 1)}號"
    return f"{rng.randint(1, 999)}-{rng.randint(1, 99)}" + rng.choice(["號", "樓", "室", "頁", "份", "件"])


class LineSampler:
    """Draws (text, font) pairs. `chars`: the atlas characters; `covered` [F, C] bool; `faces`: face indices to
    draw fonts from; `pool`: 公文 lines (disjoint pools for training and test)."""

    def __init__(self, chars: Sequence[str], covered: np.ndarray, faces: Sequence[int], pool: Sequence[str], *,
                 seed: int, max_len: int = 48, mix: tuple[float, float, float] = (0.45, 0.4, 0.15)):
        self.rng = random.Random(seed)
        self.chars = tuple(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}
        self.covered = covered
        self.faces = list(faces)
        self.pool = list(pool)
        self.max_len = max_len
        self.mix = mix
        # per face: covered Hanzi and covered symbols (random strings are 85 % Hanzi)
        self._hanzi = {f: [i for i in np.flatnonzero(covered[f]) if is_hanzi(self.chars[i])] for f in self.faces}
        self._other = {f: [i for i in np.flatnonzero(covered[f]) if not is_hanzi(self.chars[i]) and self.chars[i] != " "]
                       for f in self.faces}

    def _random_text(self, f: int) -> str:
        n = self.rng.randint(1, self.max_len)
        hz, ot = self._hanzi[f], self._other[f]
        return "".join(self.chars[self.rng.choice(hz) if self.rng.random() < 0.85 or not ot else self.rng.choice(ot)]
                       for _ in range(n))

    def _window(self) -> str:
        line = self.rng.choice(self.pool)
        if self.rng.random() < 0.25:  # two lines run together, like a wrapped paragraph read as one
            line = line + self.rng.choice(self.pool)
        n = self.rng.randint(1, min(self.max_len, len(line)))
        i = self.rng.randint(0, len(line) - n)
        return line[i:i + n].strip() or line[:n]

    def one(self) -> tuple[str, int]:
        f = self.rng.choice(self.faces)
        r = self.rng.random()
        if r < self.mix[0] and self.pool:
            text = self._window()
        elif r < self.mix[0] + self.mix[1]:
            text = self._random_text(f)
        else:
            text = _mixed(self.rng)
            if self.rng.random() < 0.5 and self.pool:
                text = self._window()[: self.rng.randint(0, 12)] + text
        cov = self.covered[f]
        text = "".join(c for c in text if c in self.index and cov[self.index[c]])[: self.max_len]
        text = " ".join(text.split())
        if not text:
            return self.one()
        return text, f

    def sample(self, n: int) -> tuple[list[str], list[int]]:
        pairs = [self.one() for _ in range(n)]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def encode(self, texts: Sequence[str], width: int | None = None) -> np.ndarray:
        """Atlas indices [n, width], -1 padded."""
        width = width or max(len(t) for t in texts)
        out = np.full((len(texts), width), -1, np.int64)
        for i, t in enumerate(texts):
            ids = [self.index[c] for c in t][:width]
            out[i, :len(ids)] = ids
        return out
