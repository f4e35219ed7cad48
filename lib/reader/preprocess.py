"""Real images to the reader's input: find the text lines, cut each out, fold it into the 256 px square.

A model folder with `reader_config.json` (`{"input": "folded_line", "row_height": 32, "width": 256, "rows": 8}`)
reads line images folded the way it was pretrained (lib/reader/synth.py): the line is scaled to 32 px high,
padded with white to a multiple of 256 px, and its 256 px pieces are stacked top to bottom. A page or block is
first cut into lines by PP-OCRv6's text detector (rapidocr, offline; `find_lines`), each line is read on its own,
and the texts are joined in reading order by the hf backend (`join_lines` in lib/evaluation/backends.py, with the
XY-cut of lib/evaluation/reading_order.py). A line longer than the fold holds (2,048 px at 32 px high, ~60 Hanzi) is cut at its widest
blank column into pieces that fit; a vertical line (much taller than wide) is cut into its glyphs at blank rows,
which are then laid out left to right.

Not for: training-time rendering (lib/reader/synth.py) or generation (lib/generation.py).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import weakref
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

__all__ = ["ReaderInput", "reader_config", "copy_reader_config", "attach_reader_input", "reader_input_of", "fold_for_training", "fold_line", "split_long_line", "unstack_vertical", "LineFinder",
           "prepare_lines"]


@dataclasses.dataclass(frozen=True)
class ReaderInput:
    row_height: int = 32
    width: int = 256
    rows: int = 8

    @property
    def capacity(self) -> int:
        return self.width * self.rows


def reader_config(model_dir: str | Path | None) -> ReaderInput | None:
    """The folded-line input spec of a model folder, or None for an ordinary VLM."""
    if not model_dir:
        return None
    p = Path(model_dir) / "reader_config.json"
    if not p.is_file():
        return None
    data = json.loads(p.read_text(encoding="utf-8"))
    if data.get("input") != "folded_line":
        raise ValueError(f"{p}: unknown reader input {data.get('input')!r} (expected 'folded_line')")
    return ReaderInput(int(data.get("row_height", 32)), int(data.get("width", 256)), int(data.get("rows", 8)))


def copy_reader_config(base_model: str | Path, out_dir: str | Path) -> bool:
    """Write `base_model`'s reader_config.json into `out_dir` (a merged or fully fine-tuned copy of a folded-line
    reader stays one). `base_model` may be a shipped/embedded name. False when the base is an ordinary VLM."""
    from lib.models.embedded import resolve_model_path

    src = Path(resolve_model_path(base_model)) / "reader_config.json"
    if not src.is_file():
        return False
    (Path(out_dir) / "reader_config.json").write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    return True


_ATTACHED: "weakref.WeakKeyDictionary[Any, ReaderInput]" = weakref.WeakKeyDictionary()


def attach_reader_input(processor, spec: ReaderInput) -> None:
    """Mark a loaded processor as a folded-line reader's (kept beside it: a processor attribute would be saved
    into its config by save_pretrained)."""
    _ATTACHED[processor] = spec


def reader_input_of(processor) -> ReaderInput | None:
    try:
        return _ATTACHED.get(processor)
    except TypeError:
        return None


def fold_for_training(img: Image.Image, spec: ReaderInput) -> Image.Image:
    """A labelled line crop -> the square (vertical lines re-laid first; a line too long is squeezed to fit)."""
    w, h = img.size
    if h > 1.6 * w and h > 48:
        img = unstack_vertical(img)
    return fold_line(img, spec)


def _to_strip(img: Image.Image, spec: ReaderInput) -> np.ndarray:
    img = img.convert("RGB")
    w, h = img.size
    new_w = max(1, round(w * spec.row_height / max(h, 1)))
    return np.asarray(img.resize((new_w, spec.row_height), Image.BICUBIC if new_w > w else Image.LANCZOS))


def split_long_line(img: Image.Image, spec: ReaderInput = ReaderInput()) -> list[Image.Image]:
    """A line too long for one fold, cut at blank columns (lowest ink) into pieces that each fit."""
    w, h = img.size
    scaled_w = w * spec.row_height / max(h, 1)
    if scaled_w <= spec.capacity - 8:
        return [img]
    gray = np.asarray(img.convert("L"), dtype=np.float32)
    ink = (255 - gray).sum(0)
    max_w = int((spec.capacity - 16) * h / spec.row_height)  # source px that fit one fold
    pieces, start = [], 0
    while w - start > max_w:
        lo, hi = start + int(max_w * 0.6), start + max_w
        cut = lo + int(np.argmin(ink[lo:hi]))
        pieces.append(img.crop((start, 0, cut, h)))
        start = cut
    pieces.append(img.crop((start, 0, w, h)))
    return pieces


def unstack_vertical(img: Image.Image) -> Image.Image:
    """A vertical line (top to bottom) re-laid as a horizontal one: cut at blank rows, glyphs placed left to right."""
    gray = np.asarray(img.convert("L"), dtype=np.float32)
    h, w = gray.shape
    ink = (255 - gray).mean(1)
    blank = ink < max(4.0, 0.08 * float(ink.max() if ink.size else 0))
    cuts, in_glyph, top = [], False, 0
    for y, b in enumerate(blank):
        if not b and not in_glyph:
            in_glyph, top = True, y
        elif b and in_glyph:
            in_glyph = False
            cuts.append((top, y))
    if in_glyph:
        cuts.append((top, h))
    # merge fragments shorter than a third of the width into their neighbour (parts of one glyph: 三, 二)
    merged: list[list[int]] = []
    for a, b in cuts:
        if merged and (b - a < w / 3 or merged[-1][1] - merged[-1][0] < w / 3) and b - merged[-1][0] < 1.2 * w:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    if len(merged) <= 1:
        return img
    gap = max(2, w // 8)
    out = Image.new("RGB", (sum(b - a for a, b in merged) * 0 + len(merged) * (w + gap) + gap, w + 2 * gap), "white")
    x = gap
    for a, b in merged:
        glyph = img.convert("RGB").crop((0, a, w, b))
        out.paste(glyph, (x, gap + max(0, (w - (b - a)) // 2)))
        x += w + gap
    return out


def fold_line(img: Image.Image, spec: ReaderInput = ReaderInput()) -> Image.Image:
    """One line image -> the reader's square (rows x row_height, width), white where the line has ended."""
    strip = _to_strip(img, spec)
    L = spec.capacity
    if strip.shape[1] > L:  # callers split first; squeeze what still does not fit rather than cut text
        strip = np.asarray(Image.fromarray(strip).resize((L, spec.row_height), Image.LANCZOS))
    canvas = np.full((spec.row_height, L, 3), 255, np.uint8)
    canvas[:, :strip.shape[1]] = strip
    square = canvas.reshape(spec.row_height, spec.rows, spec.width, 3).transpose(1, 0, 2, 3)
    return Image.fromarray(np.ascontiguousarray(square.reshape(spec.rows * spec.row_height, spec.width, 3)))


class LineFinder:
    """PP-OCRv6 text detection (rapidocr) returning line quadrilaterals; one engine per thread."""

    def __init__(self, box_thresh: float = 0.5, unclip_ratio: float = 1.6):
        self.box_thresh, self.unclip_ratio = box_thresh, unclip_ratio
        self._local = threading.local()

    def _engine(self):
        eng = getattr(self._local, "engine", None)
        if eng is None:
            from rapidocr import RapidOCR

            eng = RapidOCR(params={"Global.log_level": "error"})
            self._local.engine = eng
        return eng

    def __call__(self, img: Image.Image) -> list[np.ndarray]:
        bgr = np.asarray(img.convert("RGB"))[:, :, ::-1].copy()
        # options persist inside the engine between calls: pass every one of them on every call
        res = self._engine()(bgr, use_det=True, use_cls=False, use_rec=False, box_thresh=self.box_thresh,
                             unclip_ratio=self.unclip_ratio)
        boxes = getattr(res, "boxes", None)
        return [] if boxes is None else [np.asarray(b, dtype=np.float32) for b in boxes]

    def recognise(self, img: Image.Image) -> str:
        """PP-OCRv6's recogniser on one line crop (no detection)."""
        bgr = np.asarray(img.convert("RGB"))[:, :, ::-1].copy()
        res = self._engine()(bgr, use_det=False, use_cls=False, use_rec=True)
        return "".join(getattr(res, "txts", None) or ())


def _crop_quad(img: np.ndarray, quad: np.ndarray) -> Image.Image:
    from rapidocr.utils.process_img import get_rotate_crop_image

    return Image.fromarray(get_rotate_crop_image(img, quad.astype(np.float32)))


def prepare_lines(img: Image.Image, spec: ReaderInput, finder: LineFinder | None, *, element: str | None = None
                  ) -> tuple[list[Image.Image], list[Any], str]:
    """(folded squares, their boxes, layout) for one image. Single-line elements and images in which detection
    finds nothing are read as one line; each box may give several squares (long lines): boxes repeat then."""
    from lib.reader.stamps import drop_stamps, seal_lines

    kind = (element or "").lower()
    rgb = img.convert("RGB")
    if kind == "seal":
        lines = seal_lines(rgb)
        if lines:
            squares, boxes = [], []
            for line, box in lines:
                for k, piece in enumerate(split_long_line(line, spec)):
                    squares.append(fold_line(piece, spec))
                    boxes.append((box, k))
            return squares, boxes, "ordered"
    else:
        rgb = drop_stamps(rgb, all_red=kind == "signature")
    quads: list[np.ndarray] = []
    if finder is not None and kind not in ("line",):
        quads = finder(rgb)
    squares, boxes = [], []
    if not quads:
        w, h = rgb.size
        crops = [(rgb, np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32))]
    else:
        arr = np.asarray(rgb)
        crops = [(_crop_quad(arr, q), q) for q in quads]
    for crop, box in crops:
        cw, ch = crop.size
        if ch > 1.6 * cw and ch > 48:
            crop = unstack_vertical(crop)
        for k, piece in enumerate(split_long_line(crop, spec)):
            squares.append(fold_line(piece, spec))
            boxes.append((box, k))
    layout = "table" if (element or "").lower() == "table" else "auto"
    return squares, boxes, layout
