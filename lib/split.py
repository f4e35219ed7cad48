"""Seeded train/val/test splitting that keeps every page of one source document in one split.

The original shuffled pages, so pages of one PDF landed in both train and test and the test score measured
memory of the document as much as reading. Here whole documents (`Sample.doc_id`, derived from the image path when
the file has none) are shuffled with a seeded RNG and assigned to test, then val, until each reaches its target share
of *samples*; the rest is train.

Not for: stratification by content (element mix is reported per split so imbalance is visible).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import Sequence

from lib.data import Sample

__all__ = ["split_by_document", "split_summary"]


def split_by_document(samples: Sequence[Sample], *, val_fraction: float, test_fraction: float, seed: int
                      ) -> dict[str, list[Sample]]:
    """Return {"train": [...], "val": [...], "test": [...]} (each in input order) with no doc_id in two splits.

    Targets are shares of samples; a split whose fraction is > 0 gets at least one document when there are enough
    documents to leave one for train.
    """
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= frac < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {frac}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"val_fraction + test_fraction must be < 1 (train needs data), got {val_fraction + test_fraction}")

    by_doc: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_doc[s.doc_id].append(s)
    docs = sorted(by_doc)  # sorted first so the result depends only on the seed, not on dict order
    random.Random(seed).shuffle(docs)

    n_total = len(samples)
    assignment: dict[str, str] = {}
    remaining = list(docs)
    for split, frac in (("test", test_fraction), ("val", val_fraction)):
        if frac <= 0:
            continue
        target = frac * n_total
        taken = 0
        while remaining and len(remaining) > 1:
            doc = remaining[0]
            size = len(by_doc[doc])
            # stop when adding this document overshoots more than stopping short would undershoot
            if taken > 0 and abs(taken + size - target) > abs(taken - target):
                break
            assignment[doc] = split
            taken += size
            remaining.pop(0)
            if taken >= target:
                break
    for doc in remaining:
        assignment[doc] = "train"

    out: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    for s in samples:
        out[assignment[s.doc_id]].append(s)
    return out


def split_summary(splits: dict[str, list[Sample]]) -> dict[str, dict]:
    """Counts per split: samples, documents, elements, label characters."""
    summary = {}
    for name, items in splits.items():
        summary[name] = {
            "samples": len(items),
            "documents": len({s.doc_id for s in items}),
            "elements": dict(Counter(s.element or "unknown" for s in items)),
            "label_chars": sum(len(s.text) for s in items),
        }
    return summary
