"""The metric registry: every metric this project reports, with its direction, its aggregation and its exact
definition (the docstring of its per-pair function). An unknown name gets "did you mean …?".

Not for: computing aggregates (scoring.py) — the registry describes; scoring.py and the UIs look metrics up here.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable, Sequence

from lib.metrics import tables, text

__all__ = ["Metric", "METRICS", "register_metric", "get_metric", "list_metrics", "MetricError"]


class MetricError(KeyError):
    def __str__(self):  # KeyError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    aggregation: str  # how the headline number over samples is formed
    fn: Callable | None  # per-pair function (pred, gt, profile=...) -> float
    definition: str
    # micro-averaged metrics: (preds, gts, profile) -> (numerator, denominator) summed over the pairs, so that
    # shards (data-parallel ranks) can add theirs before dividing
    micro_counts: Callable[[Sequence, Sequence, str], tuple[int, int]] | None = None

    def __call__(self, *args, **kwargs):
        if self.fn is None:
            raise TypeError(f"metric {self.name!r} is an aggregate only; see its definition: {self.definition}")
        return self.fn(*args, **kwargs)

    def counts(self, preds: Sequence[str | None], gts: Sequence[str | None], profile: str) -> tuple[int, int]:
        """(numerator, denominator) of the micro aggregate over the pairs, e.g. (Σ edits, Σ |gt|) for cer."""
        if self.micro_counts is None:
            raise TypeError(f"metric {self.name!r} has no micro aggregate; its aggregation: {self.aggregation}")
        return self.micro_counts(preds, gts, profile)


METRICS: dict[str, Metric] = {}


def register_metric(name: str, higher_is_better: bool, aggregation: str, fn: Callable | None = None,
                    definition: str | None = None, micro_counts: Callable | None = None) -> Metric:
    if name in METRICS:
        raise ValueError(f"metric {name!r} is already registered")
    doc = definition or (fn.__doc__ or "").strip()
    m = Metric(name, higher_is_better, aggregation, fn, " ".join(doc.split()), micro_counts)
    METRICS[name] = m
    return m


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(METRICS), n=2, cutoff=0.4)
        hint = f" — did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise MetricError(f"unknown metric {name!r}{hint} (known: {', '.join(METRICS)})") from None


def list_metrics() -> list[Metric]:
    return list(METRICS.values())


def _cer_counts(preds: Sequence[str | None], gts: Sequence[str | None], profile: str) -> tuple[int, int]:
    """(Σ lev(p, g), Σ |g|) after the profile's normalization: the pair scorer scoring.py's cer_micro uses."""
    b = text.score_pairs(preds, gts, profile, anatomy=False)
    return int(b.lev.sum()), int(b.len_g.sum())


register_metric("cer", False, "micro: Σ lev(p, g) / Σ |g| over samples (the original's overall CER); "
                "cer_macro = mean of per-sample CER", text.cer, micro_counts=_cer_counts)
register_metric("cer_clipped", False, "macro mean of min(CER, 1)", text.cer_clipped)
register_metric("ned", False, "macro mean", text.ned)
register_metric("exact_match", True, "macro mean (fraction of samples)", text.exact_match)
register_metric("bag_f1", True, "macro mean (the original's overall F1)", text.bag_f1)
register_metric("lcs_f1", True, "macro mean", text.lcs_f1)
register_metric("seal_ned", False, "macro mean over samples whose element is 'seal'", text.seal_ned)
register_metric("teds", True, "macro mean over table samples with a parseable ground truth (invalid predictions "
                "count as 0, timeouts excluded and counted)", tables.teds)
register_metric("teds_s", True, "macro mean over table samples, like teds", tables.teds_s)
register_metric("table_cell_cer", False, "micro CER over table samples on cell text (cells joined row by row)",
                None, "CER (lev/|g|) between the cell texts of prediction and ground truth: every table replaced by "
                "its cells joined row by row, then the profile's normalization.")
