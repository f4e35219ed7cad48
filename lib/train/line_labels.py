"""Line-level training rows for a folded-line reader, from element- or page-level labels.

A reader is trained on lines; users label elements or pages. For each labelled image, PP-OCRv6's detector
(`LineFinder`, the one the `hf` backend reads with) finds the lines, they are put in the order that backend joins
them in (`lib/evaluation/reading_order.py`: XY-cut for text, rows for tables), and when the number of detected
lines equals the number of label lines (tables: the label's non-empty cells, row by row), detected line k is paired
with label line k and written as a crop (a row of several boxes: their bounding box; nothing detected and a
one-line label: the whole image, as the backend reads it). Every pairing is checked: PP-OCRv6's recogniser reads
each crop, and an image in which one crop's reading is further than `max_ned` (normalised edit distance) from its
label line is skipped (equal counts do not prove the order: table cells come out of a grid the detector may see
differently). An image whose counts differ or whose line would need more than one fold is skipped too, counted: a wrong pairing teaches a wrong reading, and a user's
few hundred pages give thousands of lines even after skips. Crops are saved as the detector cuts them (de-skewed,
unfolded); the model folder's reader_config.json folds them when the reader trains and reads.

    rows, stats = line_rows_from_labels(samples, out_dir)      # rows in the project's data format, stats counts

Not for: models that read whole images (give them the element or page rows as they are).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["label_lines", "line_rows_from_labels"]


def label_lines(text: str, element: str | None) -> list[str]:
    """The label's lines in reading order: table cells row by row (HTML or Markdown tables), else its text lines."""
    if (element or "").lower() == "table":
        from lib.metrics.tables import TableParseError, table_cell_texts

        try:
            return table_cell_texts(text)
        except TableParseError:
            pass                       # a table crop labelled as plain text: its lines
    return [ln.strip() for ln in text.split("\n") if ln.strip()]


def _ned(a: str, b: str) -> float:
    from rapidfuzz.distance import Levenshtein

    a, b = re.sub(r"\s+", "", a), re.sub(r"\s+", "", b)
    return Levenshtein.normalized_distance(a, b) if (a or b) else 0.0


def _align(img, label: str, element: str | None, finder, spec, max_ned: float):
    """[(crop, text)] for one image, or the reason it is skipped."""
    from lib.evaluation.reading_order import order_boxes
    from lib.reader.preprocess import _crop_quad, split_long_line, unstack_vertical

    want = label_lines(label, element)
    if not want:
        return "empty label"
    rgb = img.convert("RGB")
    quads = finder(rgb)
    if not quads:  # a tight one-line crop: the hf backend reads the whole image as one line
        if len(want) != 1:
            return "nothing detected"
        crops = [rgb]
    else:
        layout = "rows" if (element or "").lower() == "table" else "auto"
        index = {str(k): q for k, q in enumerate(quads)}
        rows = order_boxes(quads, list(index), layout=layout)
        if layout == "rows":  # tables: every box is one cell
            got = [index[it[4]] for r in rows for it in r]
        else:  # a row of several boxes (wide gaps) is one label line: its bounding box
            got = []
            for r in rows:
                pts = np.concatenate([index[it[4]] for it in r])
                (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
                got.append(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32))
        if len(got) != len(want):
            return "line count differs"
        arr = np.asarray(rgb)
        crops = [_crop_quad(arr, q) for q in got]
    for crop in crops:
        w, h = crop.size
        probe = unstack_vertical(crop) if h > 1.6 * w and h > 48 else crop
        if len(split_long_line(probe, spec)) > 1:
            return "line longer than one fold"
    pairs = list(zip(crops, want))
    if max_ned < 1 and any(_ned(finder.recognise(c), t) > max_ned for c, t in pairs):
        return "a pairing the recogniser disagrees with"
    return pairs


def line_rows_from_labels(samples: Sequence, out_dir: str | Path, finder=None, spec=None,
                          elements: Sequence[str] | None = None, max_ned: float = 0.5) -> tuple[list[dict], dict]:
    """Line crops (written under out_dir/lines/) and their rows for every alignable sample; (rows, stats).

    `samples`: `lib.data.Sample`s (image_path, text, doc_id, element). `elements`: only these element types
    (default: all); `max_ned` 1 turns the recogniser check off. Row keys: image_path (relative to out_dir), ocr_text, doc_id, element "line", source, index."""
    from lib.evaluation.images import load_rgb
    from lib.reader.preprocess import LineFinder, ReaderInput

    finder = finder or LineFinder()
    spec = spec or ReaderInput()
    out = Path(out_dir)
    (out / "lines").mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    skipped: Counter = Counter()
    used: Counter = Counter()
    for i, s in enumerate(samples):
        el = (s.element or "text").lower()
        if elements and el not in elements:
            continue
        res = _align(load_rgb(s.image_path), s.text, el, finder, spec, max_ned)
        if isinstance(res, str):
            skipped[f"{el}: {res}"] += 1
            continue
        used[el] += 1
        for k, (crop, text) in enumerate(res):
            name = f"lines/{i:06d}_{k:03d}.png"
            crop.save(out / name)
            rows.append({"image_path": name, "ocr_text": text, "doc_id": s.doc_id, "element": "line",
                         "source": str(s.image_path), "index": k})
    stats = {"images_used": dict(used), "images_skipped": dict(skipped), "lines": len(rows),
             "images_total": sum(used.values()) + sum(skipped.values())}
    return rows, stats
