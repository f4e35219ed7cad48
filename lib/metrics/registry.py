"""The metric registry, the one source of what this project reports: every metric with its direction, its
aggregation, its exact definition (the docstring of its per-pair function), the keys it is stored under and a
label. Scoring (scoring.py), the training CER callback (lib/train/callbacks.py) and the apps iterate or look up
these entries, so adding a text metric is one `register_metric` call here. An unknown name gets "did you mean …?".

The text metrics scored from a batch of pairs (`pair_metrics()`) also carry `from_pairs`: their per-sample values,
vectorized over a `text.PairBatch` (what scoring stores per sample and averages), and, for micro-averaged ones,
`micro_arrays`: the per-sample numerator and denominator summed for the headline (Σ edits / Σ |gt| for CER).

Not for: the normalization profiles (normalization.py) or the statistics (stats.py).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from lib.metrics import tables, text

__all__ = ["Metric", "METRICS", "register_metric", "get_metric", "list_metrics", "pair_metrics", "headline_keys",
           "aggregate_labels", "MetricError"]


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
    sample_key: str | None = None  # key in samples[i].scores[profile]
    # (key in scores[profile], "micro" | "mean", label in the apps), the headline first
    aggregates: tuple[tuple[str, str, str], ...] = ()
    from_pairs: Callable[[text.PairBatch, float], np.ndarray] | None = None  # (batch, both_empty) -> per-sample
    micro_arrays: Callable[[text.PairBatch], tuple[np.ndarray, np.ndarray]] | None = None  # (numerator, denominator)

    def __call__(self, *args, **kwargs):
        if self.fn is None:
            raise TypeError(f"metric {self.name!r} is an aggregate only; see its definition: {self.definition}")
        return self.fn(*args, **kwargs)

    @property
    def headline(self) -> str | None:
        """The key of its headline aggregate in `scores[profile]` (e.g. cer_micro)."""
        return self.aggregates[0][0] if self.aggregates else None

    def counts(self, preds: Sequence[str | None], gts: Sequence[str | None], profile: str) -> tuple[int, int]:
        """(numerator, denominator) of the micro aggregate over the pairs, e.g. (Σ edits, Σ |gt|) for cer: shards
        (data-parallel ranks) add theirs before dividing."""
        if self.micro_arrays is None:
            raise TypeError(f"metric {self.name!r} has no micro aggregate; its aggregation: {self.aggregation}")
        # in this process (no worker processes): the callers include training processes that hold a GPU
        num, den = self.micro_arrays(text.score_pairs(preds, gts, profile, anatomy=False,
                                                      min_chars_for_processes=1 << 62))
        return int(num.sum()), int(den.sum())


METRICS: dict[str, Metric] = {}


def register_metric(name: str, higher_is_better: bool, aggregation: str, fn: Callable | None = None,
                    definition: str | None = None, **keys) -> Metric:
    """Register a metric; `keys`: sample_key, aggregates, from_pairs, micro_arrays (see `Metric`)."""
    if name in METRICS:
        raise ValueError(f"metric {name!r} is already registered")
    doc = definition or (fn.__doc__ or "").strip()
    m = Metric(name, higher_is_better, aggregation, fn, " ".join(doc.split()), **keys)
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


def pair_metrics() -> list[Metric]:
    """The metrics scored from a batch of (prediction, ground truth) pairs, in registration order."""
    return [m for m in METRICS.values() if m.from_pairs is not None]


def headline_keys() -> tuple[str, ...]:
    """The aggregates of the text metrics in `scores[profile]`, in registration order (cer_micro, cer_macro, ...)."""
    return tuple(key for m in pair_metrics() for key, _, _ in m.aggregates)


def aggregate_labels() -> dict[str, str]:
    """Aggregate key -> the label the apps show for it, for every registered metric."""
    return {key: label for m in METRICS.values() for key, _, label in m.aggregates}


# -- per-sample values over a PairBatch (the vectorized form of each per-pair function) -----------------------------

def _cer_values(b: text.PairBatch, both_empty: float) -> np.ndarray:
    lp, lg, lev = b.len_p.astype(float), b.len_g.astype(float), b.lev.astype(float)
    return np.where(lg > 0, lev / np.where(lg > 0, lg, 1.0), np.where(lp > 0, 1.0, 0.0))


def _ned_values(b: text.PairBatch, both_empty: float) -> np.ndarray:
    longest = np.maximum(b.len_p, b.len_g).astype(float)
    return np.where(longest > 0, b.lev.astype(float) / np.where(longest > 0, longest, 1.0), 0.0)


def _bag_f1_values(b: text.PairBatch, both_empty: float) -> np.ndarray:
    lp, lg, tp = b.len_p.astype(float), b.len_g.astype(float), b.bag_tp.astype(float)
    tot = lp + lg
    return np.where(tot == 0, both_empty, np.where((tp > 0) & (lp > 0) & (lg > 0),
                                                   2.0 * tp / np.where(tot > 0, tot, 1.0), 0.0))


def _lcs_f1_values(b: text.PairBatch, both_empty: float) -> np.ndarray:
    tot = (b.len_p + b.len_g).astype(float)
    return np.where(tot == 0, 1.0, 1.0 - b.indel.astype(float) / np.where(tot > 0, tot, 1.0))


# Registration order is the order of the keys in result files and of the rows in the apps.
register_metric("cer", False, "micro: Σ lev(p, g) / Σ |g| over samples (the original's overall CER); "
                "cer_macro = mean of per-sample CER", text.cer, sample_key="cer",
                aggregates=(("cer_micro", "micro", "CER (micro)"), ("cer_macro", "mean", "CER (macro)")),
                from_pairs=_cer_values, micro_arrays=lambda b: (b.lev, b.len_g))
register_metric("ned", False, "macro mean", text.ned, sample_key="ned",
                aggregates=(("ned_macro", "mean", "NED (mean)"),), from_pairs=_ned_values)
register_metric("bag_f1", True, "macro mean (the original's overall F1)", text.bag_f1, sample_key="bag_f1",
                aggregates=(("bag_f1_macro", "mean", "F1 (bag of chars, mean)"),), from_pairs=_bag_f1_values)
register_metric("lcs_f1", True, "macro mean", text.lcs_f1, sample_key="lcs_f1",
                aggregates=(("lcs_f1_macro", "mean", "F1 (LCS, mean)"),), from_pairs=_lcs_f1_values)
register_metric("exact_match", True, "macro mean (fraction of samples)", text.exact_match, sample_key="exact",
                aggregates=(("exact_match", "mean", "exact match"),), from_pairs=lambda b, e: b.exact.astype(float))
register_metric("cer_clipped", False, "macro mean of min(CER, 1)", text.cer_clipped, sample_key="cer_clipped",
                aggregates=(("cer_clipped_macro", "mean", "CER clipped at 1 (macro)"),),
                from_pairs=lambda b, e: np.minimum(_cer_values(b, e), 1.0))
register_metric("seal_ned", False, "macro mean over samples whose element is 'seal'", text.seal_ned,
                sample_key="seal_ned", aggregates=(("seal_ned_macro", "mean", "seal NED (mean)"),))
register_metric("teds", True, "macro mean over table samples with a parseable ground truth (invalid predictions "
                "count as 0, timeouts excluded and counted)", tables.teds, sample_key="teds",
                aggregates=(("teds_macro", "mean", "TEDS (mean)"),))
register_metric("teds_s", True, "macro mean over table samples, like teds", tables.teds_s, sample_key="teds_s",
                aggregates=(("teds_s_macro", "mean", "TEDS-S (mean)"),))
register_metric("table_cell_cer", False, "micro CER over table samples on cell text (cells joined row by row)",
                None, "CER (lev/|g|) between the cell texts of prediction and ground truth: every table replaced by "
                "its cells joined row by row, then the profile's normalization.", sample_key="table_cell_cer",
                aggregates=(("table_cell_cer_micro", "micro", "table cell CER (micro)"),))
