"""Glyph atlases: every character of the reader's set pre-rasterised once per font face, so that text lines can be
composed by tensor indexing (lib/reader/synth.py) on the GPU or CPU, thousands of lines a second, instead of one
FreeType call per glyph per sample.

An atlas holds, for F faces and C characters: `cells` uint8 [F, C, S, S] (the glyph drawn with its left side
bearing at x=0 and its baseline at `baseline` px, ink = 255), `advance` float32 [F, C] (px at size S), `covered`
bool [F, C] (the face has a real glyph: a missing glyph is never drawn, so labels stay exact) and the face names.
Saved as one compressed .npz (`save_atlas` / `load_atlas`) so it can travel to a GPU machine without the fonts.

Faces come from Debian's font packages (fonts-cns11643-kai/-sung = TW-Kai/TW-Sung, fonts-cwtex-*, fonts-arphic-*,
fonts-noto-cjk, fonts-lxgw-wenkai, fonts-babelstone-han); a face whose file is absent is skipped with a warning.
Not for: page layout (lib/synth/) or degradations (lib/reader/synth.py).
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["Face", "FACES", "PRETRAIN_HELD_OUT", "Atlas", "available_faces", "reader_atlas_chars", "build_atlas", "save_atlas",
           "load_atlas"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Face:
    name: str
    pattern: str      # glob under the font folders
    index: int = 0    # face inside a .ttc
    kind: str = "ming"  # ming | kai | sans | fangsong | round


_D = "/usr/share/fonts"
FACES: tuple[Face, ...] = (
    Face("TW-Kai", f"{_D}/truetype/cns11643/TW-Kai-98_1.ttf", 0, "kai"),
    Face("TW-Sung", f"{_D}/truetype/cns11643/TW-Sung-98_1.ttf", 0, "ming"),
    Face("cwTeXMing", f"{_D}/truetype/cwtex/cwming.ttf", 0, "ming"),
    Face("cwTeXKai", f"{_D}/truetype/cwtex/cwkai.ttf", 0, "kai"),
    Face("cwTeXHeiBold", f"{_D}/truetype/cwtex/cwheib.ttf", 0, "sans"),
    Face("cwTeXYen", f"{_D}/truetype/cwtex/cwyen.ttf", 0, "round"),
    Face("cwTeXFangSong", f"{_D}/truetype/cwtex/cwfs.ttf", 0, "fangsong"),
    Face("AR PL UKai TW", f"{_D}/truetype/arphic/ukai.ttc", 2, "kai"),
    Face("AR PL UMing TW", f"{_D}/truetype/arphic/uming.ttc", 2, "ming"),
    Face("AR PL KaitiM Big5", f"{_D}/truetype/arphic-bkai00mp/bkai00mp.ttf", 0, "kai"),
    Face("AR PL Mingti2L Big5", f"{_D}/truetype/arphic-bsmi00lp/bsmi00lp.ttf", 0, "ming"),
    Face("Noto Sans CJK TC", f"{_D}/opentype/noto/NotoSansCJK-Regular.ttc", 3, "sans"),
    Face("Noto Sans CJK TC Bold", f"{_D}/opentype/noto/NotoSansCJK-Bold.ttc", 3, "sans"),
    Face("Noto Serif CJK TC", f"{_D}/opentype/noto/NotoSerifCJK-Regular.ttc", 3, "ming"),
    Face("Noto Serif CJK TC Bold", f"{_D}/opentype/noto/NotoSerifCJK-Bold.ttc", 3, "ming"),
    Face("Noto Sans CJK SC", f"{_D}/opentype/noto/NotoSansCJK-Regular.ttc", 2, "sans"),
    Face("Noto Serif CJK SC", f"{_D}/opentype/noto/NotoSerifCJK-Regular.ttc", 2, "ming"),
    Face("LXGW WenKai", f"{_D}/truetype/lxgw-wenkai/LXGWWenKai-Regular.ttf", 0, "kai"),
    Face("LXGW WenKai Light", f"{_D}/truetype/lxgw-wenkai/LXGWWenKai-Light.ttf", 0, "kai"),
    Face("BabelStone Han", f"{_D}/truetype/babelstone/BabelStoneHan.ttf", 0, "ming"),
)
# Faces the pretrained reader never sees: a domain to fine-tune on (the quickstart) and a held-out-font test.
PRETRAIN_HELD_OUT = ("LXGW WenKai", "LXGW WenKai Light", "BabelStone Han")


@dataclasses.dataclass
class Atlas:
    chars: tuple[str, ...]
    faces: tuple[str, ...]
    cells: np.ndarray      # uint8 [F, C, S, S]
    advance: np.ndarray    # float32 [F, C]
    covered: np.ndarray    # bool [F, C]
    size: int
    baseline: int

    def face_index(self, name: str) -> int:
        return self.faces.index(name)

    def subset_faces(self, names: Sequence[str]) -> "Atlas":
        idx = [self.faces.index(n) for n in names]
        return dataclasses.replace(self, faces=tuple(names), cells=self.cells[idx], advance=self.advance[idx],
                                   covered=self.covered[idx])


def _face_path(face: Face) -> str | None:
    hits = sorted(glob.glob(face.pattern))
    return hits[0] if hits else None


def available_faces(names: Sequence[str] | None = None) -> list[Face]:
    """The faces of FACES (or of `names`) whose font file is installed."""
    out = []
    for face in FACES:
        if names is not None and face.name not in names:
            continue
        if _face_path(face):
            out.append(face)
        else:
            log.warning("font face %s not installed (%s); skipped", face.name, face.pattern)
    return out


def _rasterise(args) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    face, chars, size, baseline = args
    from fontTools.ttLib import TTFont
    from PIL import Image, ImageDraw, ImageFont

    path = _face_path(face)
    tt = TTFont(path, fontNumber=face.index, lazy=True)
    cmap = tt.getBestCmap() or {}
    tt.close()
    font = ImageFont.truetype(path, size, index=face.index)
    cells = np.zeros((len(chars), size, size), np.uint8)
    adv = np.zeros(len(chars), np.float32)
    cov = np.zeros(len(chars), bool)
    img = Image.new("L", (size, size))
    draw = ImageDraw.Draw(img)
    for i, ch in enumerate(chars):
        if ord(ch) not in cmap:
            continue
        draw.rectangle((0, 0, size, size), fill=0)
        draw.text((0, baseline), ch, font=font, fill=255, anchor="ls")
        a = np.asarray(img)
        if not a.any() and ch.strip():
            continue
        cells[i] = a
        adv[i] = font.getlength(ch)
        cov[i] = True
    return cells, adv, cov


def reader_atlas_chars() -> tuple[str, ...]:
    """The atlas characters of the reader: a space, then lib.reader.charset.reader_charset()."""
    from lib.reader.charset import reader_charset

    return (" ",) + reader_charset()


def build_atlas(chars: Sequence[str], faces: Sequence[Face] | None = None, size: int = 32,
                workers: int | None = None) -> Atlas:
    """Rasterise `chars` in every face (one process per face, up to `workers`)."""
    faces = list(faces) if faces is not None else available_faces()
    if not faces:
        raise RuntimeError("no CJK font face installed: apt-get install fonts-noto-cjk fonts-cns11643-kai "
                           "fonts-cns11643-sung fonts-arphic-ukai fonts-arphic-uming (see .ci/run)")
    baseline = round(size * 0.86)
    chars = tuple(chars)
    jobs = [(f, chars, size, baseline) for f in faces]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(workers) as ex:
            parts = list(ex.map(_rasterise, jobs))
    else:
        parts = [_rasterise(j) for j in jobs]
    return Atlas(chars=chars, faces=tuple(f.name for f in faces), cells=np.stack([p[0] for p in parts]),
                 advance=np.stack([p[1] for p in parts]), covered=np.stack([p[2] for p in parts]), size=size,
                 baseline=baseline)


def save_atlas(atlas: Atlas, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # 4 bits of grey per pixel (16 levels keep the antialiasing), two pixels a byte: 1.7 MB a face compressed
    q = ((atlas.cells.astype(np.uint16) * 15 + 127) // 255).astype(np.uint8)
    packed = (q[..., 0::2] << 4) | q[..., 1::2]
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, cells4=packed, advance=atlas.advance, covered=atlas.covered,
                            chars=np.array("".join(atlas.chars)), faces=np.array("\n".join(atlas.faces)),
                            meta=np.array([atlas.size, atlas.baseline]))
    os.replace(tmp, path)
    return path


def load_atlas(path: str | os.PathLike) -> Atlas:
    with np.load(path) as z:
        size, baseline = (int(v) for v in z["meta"])
        packed = z["cells4"]
        cells = np.empty(packed.shape[:-1] + (packed.shape[-1] * 2,), np.uint8)
        cells[..., 0::2] = (packed >> 4) * 17
        cells[..., 1::2] = (packed & 15) * 17
        return Atlas(chars=tuple(str(z["chars"])), faces=tuple(str(z["faces"]).split("\n")), cells=cells,
                     advance=z["advance"], covered=z["covered"], size=size, baseline=baseline)
