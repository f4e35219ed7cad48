"""Bootstrap confidence intervals and paired tests, resampling whole source documents.

Samples cut from one document (the crops of a page, the lines of a letter) are not independent: resampling them one
by one would give intervals that are too narrow. Every function here takes integer group codes (one per sample, from
``doc_id`` when present, else one group per sample) and resamples groups with replacement, then recomputes the
aggregate exactly as the headline number is computed (micro = Σ numerator / Σ denominator over the resampled samples;
a macro mean is the micro ratio of (Σ value) / (Σ 1)).

* CI: percentile bootstrap, 2.5th and 97.5th percentiles of the resampled statistic (``n_bootstrap`` resamples,
  numpy ``default_rng(seed)``).
* Paired test: two-sided sign-flip permutation test at the document level (the labels A/B of each document's paired
  differences are swapped at random): p = (1 + #{|T*| ≥ |T|}) / (1 + n_permutations).

Not for: computing the per-sample values (text.py) or reading result files (scoring.py).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = ["group_codes", "bootstrap_codes", "bootstrap_ratios", "paired_test", "format_p_value"]

_CHUNK_CELLS = 4_000_000  # resamples × groups per chunk (bounds memory: ~32 MB of float64)


def group_codes(doc_ids: Sequence[object | None]) -> np.ndarray:
    """Integer codes: equal doc_id → equal code; a missing doc_id (None or "") gets a group of its own."""
    codes = np.empty(len(doc_ids), dtype=np.int64)
    seen: dict[object, int] = {}
    nxt = 0
    for i, d in enumerate(doc_ids):
        if d is None or d == "":
            codes[i] = nxt
            nxt += 1
            continue
        key = ("doc", str(d))
        c = seen.get(key)
        if c is None:
            c = seen[key] = nxt
            nxt += 1
        codes[i] = c
    # make codes dense 0..G-1 in order of first appearance (they already are)
    return codes


def bootstrap_codes(doc_ids: Sequence[object | None]) -> tuple[np.ndarray, str]:
    """(group codes, unit) for a bootstrap: whole documents when the samples carry document ids, else single
    samples. When every sample has the same doc_id there is nothing to resample at the document level (the CI
    would have zero width), so samples are resampled and the unit says so."""
    codes = group_codes(doc_ids)
    if not any(d not in (None, "") for d in doc_ids):
        return codes, "sample"
    if len(codes) > 1 and int(codes.max()) == 0:
        return np.arange(len(codes), dtype=np.int64), "sample (all samples have one doc_id)"
    return codes, "doc_id"


def format_p_value(p: float | None, n_permutations: int | None = None) -> str:
    """A permutation p-value for people: at the floor 1/(R+1) no permutation was as extreme as the observed
    difference, so the test only says p is below that bound: "< 0.0001", never "0.0001" as if exact."""
    if p is None:
        return "—"
    if n_permutations:
        floor = 1.0 / (n_permutations + 1)
        if p <= floor * (1 + 1e-9):
            bound = float(f"{floor:.1g}")
            bound = bound if bound >= floor else float(f"{floor * 1.5:.1g}")
            return f"< {bound:g}"
    return f"{p:.4g}"


def _resample_weights(rng: np.random.Generator, n_rows: int, n_groups: int) -> np.ndarray:
    """(n_rows, n_groups) counts of how often each group is drawn in each resample of size n_groups."""
    idx = rng.integers(0, n_groups, size=(n_rows, n_groups))
    flat = idx + (np.arange(n_rows, dtype=np.int64)[:, None] * n_groups)
    return np.bincount(flat.ravel(), minlength=n_rows * n_groups).reshape(n_rows, n_groups).astype(np.float64)


def bootstrap_ratios(codes: np.ndarray, ratios: Mapping[str, tuple[np.ndarray, np.ndarray]], n_bootstrap: int = 1000,
                     seed: int = 0, confidence: float = 0.95) -> dict[str, list[float] | None]:
    """For each name → (numerator per sample, denominator per sample), the percentile CI of Σnum/Σden when whole
    groups are resampled. Resamples whose Σden is 0 are dropped. Returns name → [low, high] (None when no resample
    is defined or n_bootstrap is 0)."""
    names = list(ratios)
    if n_bootstrap <= 0 or len(codes) == 0 or not names:
        return {k: None for k in names}
    n_groups = int(codes.max()) + 1
    num = np.stack([np.bincount(codes, weights=np.asarray(ratios[k][0], dtype=np.float64), minlength=n_groups)
                    for k in names], axis=1)
    den = np.stack([np.bincount(codes, weights=np.asarray(ratios[k][1], dtype=np.float64), minlength=n_groups)
                    for k in names], axis=1)
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_CELLS // max(1, n_groups))
    out_num, out_den = [], []
    done = 0
    while done < n_bootstrap:
        r = min(rows, n_bootstrap - done)
        w = _resample_weights(rng, r, n_groups)
        out_num.append(w @ num)
        out_den.append(w @ den)
        done += r
    s_num = np.concatenate(out_num)
    s_den = np.concatenate(out_den)
    alpha = (1.0 - confidence) / 2.0
    result: dict[str, list[float] | None] = {}
    for j, k in enumerate(names):
        ok = s_den[:, j] > 0
        if not ok.any():
            result[k] = None
            continue
        vals = s_num[ok, j] / s_den[ok, j]
        lo, hi = np.quantile(vals, [alpha, 1.0 - alpha])
        result[k] = [float(lo), float(hi)]
    return result


def paired_test(codes: np.ndarray, diff_num: np.ndarray, diff_den: np.ndarray, n_bootstrap: int = 1000,
                n_permutations: int = 10000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Paired difference T = Σ diff_num / Σ diff_den (e.g. Σ(b−a)/n for a mean difference, or Σ(edits_b − edits_a) /
    Σ|g| for a micro CER difference). Returns {difference, ci95, p_value, n_groups}."""
    diff_num = np.asarray(diff_num, dtype=np.float64)
    diff_den = np.asarray(diff_den, dtype=np.float64)
    total_den = diff_den.sum()
    if len(codes) == 0 or total_den <= 0:
        return {"difference": None, "ci95": None, "p_value": None, "n_groups": 0}
    obs = float(diff_num.sum() / total_den)
    n_groups = int(codes.max()) + 1
    ci = bootstrap_ratios(codes, {"d": (diff_num, diff_den)}, n_bootstrap=n_bootstrap, seed=seed,
                          confidence=confidence)["d"]
    g_num = np.bincount(codes, weights=diff_num, minlength=n_groups)
    p_value = None
    if n_permutations > 0:
        rng = np.random.default_rng(seed + 1)
        rows = max(1, _CHUNK_CELLS // max(1, n_groups))
        extreme = 0
        done = 0
        thr = abs(obs) * total_den - 1e-9 * max(1.0, abs(obs) * total_den)
        while done < n_permutations:
            r = min(rows, n_permutations - done)
            signs = rng.integers(0, 2, size=(r, n_groups), dtype=np.int8).astype(np.float64) * 2.0 - 1.0
            stats = np.abs(signs @ g_num)
            extreme += int((stats >= thr).sum())
            done += r
        p_value = (1 + extreme) / (1 + n_permutations)
    return {"difference": obs, "ci95": ci, "p_value": p_value, "n_groups": n_groups,
            "p_value_at_floor": p_value is not None and extreme == 0}
