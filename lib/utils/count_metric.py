"""OCR metrics under the original project's module path (yenhao-huang/vlm-sft-ocr ``lib/utils/count_metric.py``).

Everything lives in ``lib.metrics`` (normalization.py, text.py, tables.py, stats.py, registry.py, scoring.py) and is
re-exported here, so ``from lib.utils.count_metric import score_result_file`` and the original's
``char_f1_score`` / ``batch_char_f1_score`` both work. Definitions: docs/METRICS.md.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from lib.metrics import *  # noqa: F401,F403 - the public API
from lib.metrics import __all__ as _metrics_all

__all__ = list(_metrics_all) + ["char_f1_score", "batch_char_f1_score"]


def char_f1_score(pred: str, gt: str) -> float:
    """The original's character F1 on already-normalized text: multiset overlap tp; 0.0 when tp = 0 (so also when
    both are empty); else 2·P·R/(P+R) with P = tp/|pred|, R = tp/|gt|."""
    tp = sum((Counter(pred) & Counter(gt)).values())
    if tp == 0 or not pred or not gt:
        return 0.0
    precision, recall = tp / len(pred), tp / len(gt)
    return 2 * precision * recall / (precision + recall)


def batch_char_f1_score(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Macro mean of char_f1_score (the original's ``overall_f1``); 0.0 for an empty batch."""
    if len(predictions) == 0:
        return 0.0
    return sum(char_f1_score(p, r) for p, r in zip(predictions, references)) / len(predictions)
