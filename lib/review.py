"""Review of a dataset's samples — flags (ground truth wrong, model wrong, ambiguous), notes and corrected ground
truth — kept in a sidecar file next to the data file, never in the data file itself.

    data/test.json  ->  data/test.review.json
    {"format": "gemma-ocr-review", "version": 1, "data_file": "test.json",
     "items": {"images/p1.png": {"flags": ["gt_wrong"], "note": "...", "label": "corrected text",
                                 "original_label": "text as in the data", "index": 3, "updated": "..."}}}

Items are keyed by the image path as written in the data file (what result files record as `image_path`). The
evaluation viewer writes it; `core/evaluate.py --skip-flagged gt_wrong`, `core/count_score.py --skip-flagged ...`
and `core/split_dataset.py --skip-flagged ... --apply-corrections` read it; `export_reviewed` writes a corrected
copy of the data (`test.reviewed.json`) with the flags as row fields (`"gt_wrong": true`).

Not for: the viewer's widgets (ui/evaluate_viewer.py) or scoring (lib/metrics).
"""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

from lib.errors import UserError

__all__ = ["FLAGS", "ReviewError", "ReviewItem", "Review", "sidecar_path", "load_review", "flagged_rows",
           "apply_corrections", "export_reviewed"]

FLAGS = ("gt_wrong", "model_wrong", "ambiguous")  # ground truth wrong / model wrong / ambiguous sample
FORMAT = "gemma-ocr-review"


class ReviewError(UserError, ValueError):
    """A sidecar that cannot be read or a review value that cannot be saved; the message says what to do."""


def sidecar_path(data_file: str | os.PathLike) -> Path:
    """`dir/name.json` -> `dir/name.review.json` (also for .jsonl)."""
    p = Path(data_file)
    return p.with_name(p.stem + ".review.json")


@dataclasses.dataclass
class ReviewItem:
    flags: list[str] = dataclasses.field(default_factory=list)
    note: str = ""
    label: str | None = None  # corrected ground truth (None: not corrected)
    original_label: str | None = None
    index: int | None = None  # dataset row when the review was saved
    updated: str = ""

    @property
    def empty(self) -> bool:
        return not self.flags and not self.note.strip() and self.label is None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"flags": list(self.flags)}
        if self.note.strip():
            out["note"] = self.note
        if self.label is not None:
            out["label"] = self.label
            out["original_label"] = self.original_label
        for key in ("index", "updated"):
            if getattr(self, key) not in (None, ""):
                out[key] = getattr(self, key)
        return out


@dataclasses.dataclass
class Review:
    path: Path
    data_file: str
    items: dict[str, ReviewItem]

    def get(self, image_path: str) -> ReviewItem:
        return self.items.get(image_path) or ReviewItem()

    def set(self, image_path: str, *, flags: Sequence[str] = (), note: str = "", label: str | None = None,
            original_label: str | None = None, index: int | None = None) -> ReviewItem:
        """Record the review of one sample (replacing the previous one) and save the sidecar atomically. A
        corrected label equal to the original counts as no correction; an empty review removes the entry."""
        bad = [f for f in flags if f not in FLAGS]
        if bad:
            raise ReviewError(f"unknown flag(s) {bad}; choose from {', '.join(FLAGS)}")
        if label is not None and original_label is not None and label == original_label:
            label = None
        item = ReviewItem(flags=[f for f in FLAGS if f in flags], note=note or "", label=label,
                          original_label=original_label if label is not None else None, index=index,
                          updated=datetime.now().isoformat(timespec="seconds"))
        if item.empty:
            self.items.pop(image_path, None)
        else:
            self.items[image_path] = item
        self.save()
        return item

    def flagged(self, keys: Iterable[str]) -> set[str]:
        keys = set(keys)
        return {p for p, it in self.items.items() if keys & set(it.flags)}

    def counts(self) -> dict[str, int]:
        c = {f: 0 for f in FLAGS}
        c["corrected"] = c["noted"] = 0
        for it in self.items.values():
            for f in it.flags:
                c[f] += 1
            c["corrected"] += it.label is not None
            c["noted"] += bool(it.note.strip())
        return c

    def save(self) -> Path:
        from lib.results import atomic_write_json

        payload = {"format": FORMAT, "version": 1, "data_file": self.data_file,
                   "updated": datetime.now().isoformat(timespec="seconds"),
                   "items": {k: v.to_json() for k, v in sorted(self.items.items())}}
        try:
            return atomic_write_json(payload, self.path)
        except OSError as exc:
            raise ReviewError(f"cannot save the review to {self.path} ({exc.strerror or exc}); make its folder "
                              f"writable") from None


def load_review(data_file: str | os.PathLike, path: str | os.PathLike | None = None) -> Review:
    """The review of `data_file` (its sidecar, or `path`); an empty one when no sidecar exists yet."""
    p = Path(path) if path else sidecar_path(data_file)
    if not p.is_file():
        return Review(p, Path(data_file).name, {})
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReviewError(f"review file {p} is not valid UTF-8 JSON ({exc}); fix it or move it away") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("items"), dict):
        raise ReviewError(f"{p} is not a review sidecar (expected {{\"format\": \"{FORMAT}\", \"items\": {{...}}}})")
    items = {}
    for key, v in raw["items"].items():
        if not isinstance(v, dict):
            raise ReviewError(f"{p}: item {key!r} is not an object")
        items[key] = ReviewItem(flags=[f for f in v.get("flags") or [] if f in FLAGS], note=str(v.get("note") or ""),
                                label=v.get("label") if isinstance(v.get("label"), str) else None,
                                original_label=v.get("original_label"), index=v.get("index"),
                                updated=str(v.get("updated") or ""))
    return Review(p, str(raw.get("data_file") or Path(data_file).name), items)


def _key(sample) -> str:
    return getattr(sample, "raw_image_path", "") or getattr(sample, "image_path", "")


def flagged_rows(data_file: str | os.PathLike, samples: Sequence, keys: Iterable[str],
                 review_path: str | os.PathLike | None = None) -> set[int]:
    """Dataset rows (Sample.index) whose image is flagged with any of `keys` in the review sidecar."""
    keys = [k for k in keys if k in FLAGS]
    if not keys:
        return set()
    paths = load_review(data_file, review_path).flagged(keys)
    return {s.index for s in samples if _key(s) in paths}


def apply_corrections(samples: Sequence, review: Review) -> int:
    """Replace the labels of samples that have a corrected ground truth in `review` (in place); returns how many."""
    n = 0
    for s in samples:
        it = review.items.get(_key(s))
        if it is not None and it.label is not None:
            s.text = it.label
            n += 1
    return n


def export_reviewed(data_file: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """A copy of the data file with corrected labels applied, each flag as a row field (`"gt_wrong": true`) and
    the note as `review_note`: `name.reviewed.json` beside the original (which is never modified)."""
    from lib.data import load_samples, save_samples

    data_file = Path(data_file)
    review = load_review(data_file)
    samples = load_samples(data_file)
    apply_corrections(samples, review)
    for s in samples:
        it = review.items.get(_key(s))
        if it is None:
            continue
        for f in it.flags:
            s.extra[f] = True
        if it.note.strip():
            s.extra["review_note"] = it.note
    target = Path(out) if out else data_file.with_name(data_file.stem + ".reviewed.json")
    if target.resolve() == data_file.resolve():
        raise ReviewError(f"refusing to overwrite the original data file {data_file}")
    return save_samples(samples, target)
