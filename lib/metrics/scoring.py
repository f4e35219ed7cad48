"""Score a result file (the schema in lib/results.py) with one or more normalization profiles, and compare two.

``score_result_file`` fills, for every profile in ``profiles`` (the first one is the primary):

* per sample: ``scores[profile]`` = {cer, cer_clipped, ned, exact, bag_f1, lcs_f1, len_pred, len_gt, edits,
  substitutions, deletions, insertions, [teds, teds_s, table_cell_cer | seal_ned], [repetition_loop]} and the
  original's ``cer_score`` (unclipped CER) / ``f1_score`` (bag F1) of the primary profile;
* top level: ``scores[profile]`` (aggregates, 95 % CIs, anatomy, tables, seals, slices), ``overall_cer`` (micro CER
  of the primary profile), ``overall_f1`` (macro bag F1 of the primary profile), ``profiles``, ``total_samples``,
  ``n_errors``, ``errors_as_empty``, ``scoring`` (the settings used).

Which text a CER uses: under ``seed`` the raw strings, exactly like the original. Under ``standard`` and ``lenient``
every table in a prediction or a label (HTML or Markdown) is first replaced by its cell text (cells joined row by row),
so a table is comparable with plain-text OCR output; table samples get TEDS/TEDS-S on top of that.
A sample is a table sample when its ``element`` is ``table`` (or it has no element and its label is one table).

Samples whose ``error`` is set are excluded (counted in ``n_errors``) unless ``errors_as_empty``, which scores them as
empty predictions.

Not for: the metric definitions themselves (text.py, tables.py) or the CLI (core/count_score.py).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Sequence

import numpy as np

from lib.metrics import stats
from lib.metrics.normalization import DEFAULT_PROFILE, PROFILES, check_profile, normalize
from lib.metrics.registry import get_metric, headline_keys, pair_metrics
from lib.metrics.tables import (DEFAULT_TIME_LIMIT_S, TableParseError, TableTimeout, has_table, looks_like_table,
                                parse_table, table_cell_text, tree_edit_distance)
from lib.metrics.text import CHAR_CLASSES, PairBatch, is_st_confusion, score_pairs, seal_ned

__all__ = ["score_result_file", "paired_comparison", "score_texts", "HEADLINE_METRICS", "PER_SAMPLE_METRICS"]

log = logging.getLogger(__name__)

# from the registry: the aggregates in scores[profile] and the per-sample keys of the text metrics
HEADLINE_METRICS = headline_keys()
PER_SAMPLE_METRICS = tuple(m.sample_key for m in pair_metrics())
_TOP_CONFUSIONS = 20
_MAX_EXAMPLES = 20


def _prediction_text(s: dict, errors_as_empty: bool) -> str:
    if s.get("error") and errors_as_empty:
        return ""
    p = s.get("prediction")
    return "" if p is None else str(p)


def _is_table_sample(s: dict) -> bool:
    el = s.get("element")
    if el:
        return str(el).lower() == "table"
    return looks_like_table(s.get("label"))


def _is_seal_sample(s: dict) -> bool:
    return str(s.get("element") or "").lower() == "seal"


def _cer_text(text: str, profile: str) -> str:
    if profile != "seed" and has_table(text):
        return table_cell_text(text)
    return text


def _per_sample_arrays(b: PairBatch, both_empty: float) -> dict[str, np.ndarray]:
    return {m.sample_key: m.from_pairs(b, both_empty) for m in pair_metrics()}


def _micro(num: float, den: float) -> float:
    if den > 0:
        return float(num / den)
    return 0.0 if num == 0 else 1.0


def _aggregate(idx: np.ndarray, arrays: dict[str, np.ndarray], b: PairBatch, codes: np.ndarray, n_bootstrap: int,
               seed: int) -> dict[str, Any]:
    """Headline numbers + CIs over the samples `idx` (positions in the batch)."""
    n = int(idx.size)
    out: dict[str, Any] = {"n": n}
    if n == 0:
        out.update({k: None for k in HEADLINE_METRICS})
        out["ci95"] = {k: None for k in HEADLINE_METRICS}
        out["n_docs"] = 0
        return out
    ones = np.ones(n)
    ratios: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # aggregate -> per-sample (numerator, denominator)
    for m in pair_metrics():
        for key, kind, _ in m.aggregates:
            if kind == "micro":
                num, den = (a[idx].astype(float) for a in m.micro_arrays(b))
                out[key] = _micro(num.sum(), den.sum())
            else:
                num, den = arrays[m.sample_key][idx], ones
                out[key] = float(num.mean())
            ratios[key] = (num, den)
    out["chars_gt"] = int(b.len_g[idx].sum())
    out["edits"] = int(b.lev[idx].sum())
    sub_codes = codes[idx]
    _, dense = np.unique(sub_codes, return_inverse=True)
    out["n_docs"] = int(dense.max()) + 1
    out["ci95"] = stats.bootstrap_ratios(dense, ratios, n_bootstrap=n_bootstrap, seed=seed)
    return out


def _anatomy(idx: np.ndarray, b: PairBatch, samples: list[dict], positions: np.ndarray) -> dict[str, Any]:
    n = int(idx.size)
    subs, dels, ins = int(b.sub[idx].sum()), int(b.dele[idx].sum()), int(b.ins[idx].sum())
    edits = int(b.lev[idx].sum())
    chars = int(b.len_g[idx].sum())
    st = b.st_total  # corpus-level: counted over the whole batch
    empty = int(((b.len_p[idx] == 0) & (b.len_g[idx] > 0)).sum())
    members = set(idx.tolist())
    loops = [(k, v) for k, v in sorted(b.loops.items()) if k in members]
    top = [[g, p, c, is_st_confusion(g, p)] for g, p, c in b.top_confusions(_TOP_CONFUSIONS)]
    return {
        "substitutions": subs, "deletions": dels, "insertions": ins,
        "substitution_rate": _micro(subs, chars) if chars else 0.0,
        "deletion_rate": _micro(dels, chars) if chars else 0.0,
        "insertion_rate": _micro(ins, chars) if chars else 0.0,
        "top_confusions": top,  # [gt_char, pred_char, count, is_S/T_variant]
        "st_confusions": st,
        "st_confusion_rate": st / edits if edits else 0.0,
        "n_empty_predictions": empty,
        "empty_prediction_rate": empty / n if n else 0.0,
        "n_repetition_loops": len(loops),
        "repetition_loop_rate": len(loops) / n if n else 0.0,
        "repetition_loops": [{"sample": int(positions[k]), "image_path": samples[positions[k]].get("image_path"),
                              **v} for k, v in loops[:_MAX_EXAMPLES]],
        "by_class": _by_class(idx, b),
    } if b.anatomy else {"computed": False}


def _by_class(idx: np.ndarray, b: PairBatch) -> dict[str, dict]:
    """Per ground-truth character class: characters, how many were substituted or deleted, and that rate
    (insertions have no ground-truth character: see `insertions`)."""
    if b.cls_chars is None:
        return {}
    chars, errs = b.cls_chars[idx].sum(axis=0), b.cls_errors[idx].sum(axis=0)
    return {name: {"chars": int(c), "sub_del": int(e), "rate": _micro(int(e), int(c)) if c else 0.0}
            for name, c, e in zip(CHAR_CLASSES, chars, errs)}


def _table_scores(samples: list[dict], positions: list[int], preds: list[str], profile: str,
                  time_limit_s: float | None) -> tuple[dict[int, dict], dict[str, Any]]:
    """TEDS/TEDS-S/cell CER for table samples; returns (per sample position -> scores, aggregate)."""
    from rapidfuzz.distance import Levenshtein

    per: dict[int, dict] = {}
    teds_v, teds_s_v, cell_edits, cell_chars = [], [], 0, 0
    n_invalid_pred = n_invalid_gt = n_timeouts = 0
    invalid_examples = []
    norm_profile = profile
    for k, pos in enumerate(positions):
        s = samples[pos]
        if not _is_table_sample(s):
            continue
        label, pred = s.get("label") or "", preds[k]
        entry: dict[str, Any] = {}
        gp = normalize(table_cell_text(label), norm_profile)
        pp = normalize(table_cell_text(pred), norm_profile)
        d = Levenshtein.distance(pp, gp)
        cell_edits += d
        cell_chars += len(gp)
        entry["table_cell_cer"] = (d / len(gp)) if gp else (0.0 if not pp else 1.0)
        try:
            gt_tree = parse_table(label, norm_profile)
        except TableParseError as exc:
            n_invalid_gt += 1
            entry["table_error"] = f"ground truth: {exc}"
            invalid_examples.append({"sample": pos, "side": "label", "error": str(exc)})
            per[pos] = entry
            continue
        try:
            pred_tree = parse_table(pred, norm_profile)
        except TableParseError as exc:
            n_invalid_pred += 1
            entry.update({"teds": 0.0, "teds_s": 0.0, "table_error": f"prediction: {exc}"})
            teds_v.append(0.0)
            teds_s_v.append(0.0)
            if len(invalid_examples) < _MAX_EXAMPLES:
                invalid_examples.append({"sample": pos, "side": "prediction", "error": str(exc)})
            per[pos] = entry
            continue
        size = max(pred_tree.size(), gt_tree.size())
        try:
            t = 1.0 - tree_edit_distance(pred_tree, gt_tree, False, time_limit_s) / size
            ts = 1.0 - tree_edit_distance(pred_tree, gt_tree, True, time_limit_s) / size
        except TableTimeout as exc:
            n_timeouts += 1
            entry["table_error"] = f"timeout: {exc}"
            per[pos] = entry
            continue
        entry.update({"teds": t, "teds_s": ts})
        teds_v.append(t)
        teds_s_v.append(ts)
        per[pos] = entry
    n = len(per)
    agg = {"n": n, "n_scored": len(teds_v), "teds_macro": float(np.mean(teds_v)) if teds_v else None,
           "teds_s_macro": float(np.mean(teds_s_v)) if teds_s_v else None,
           "table_cell_cer_micro": _micro(cell_edits, cell_chars) if n else None,
           "n_invalid_pred": n_invalid_pred, "n_invalid_gt": n_invalid_gt, "n_timeouts": n_timeouts,
           "invalid_examples": invalid_examples[:_MAX_EXAMPLES],
           "headline_cer_uses": "cell text" if profile != "seed" else "raw text (seed profile)"}
    return per, agg


def _mean_cis(codes: np.ndarray, ks: list[int], values: dict[str, list[float]], n_bootstrap: int,
              seed: int) -> dict[str, list[float] | None]:
    """Document-bootstrap CIs of plain means over the samples at batch positions `ks`."""
    if not ks:
        return {name: None for name in values}
    _, dense = np.unique(codes[np.asarray(ks, dtype=np.int64)], return_inverse=True)
    ones = np.ones(len(ks))
    return stats.bootstrap_ratios(dense, {name: (np.asarray(v, dtype=float), ones) for name, v in values.items()},
                                  n_bootstrap=n_bootstrap, seed=seed)


def _slices(key: str, included: list[int], samples: list[dict], arrays, b: PairBatch, codes, n_bootstrap, seed,
            keep: np.ndarray | None = None):
    values = [samples[pos].get(key) for pos in included]
    if all(v is None or v == "" for v in values):
        return None
    allowed = None if keep is None else set(keep.tolist())
    groups: dict[str, list[int]] = {}
    for k, v in enumerate(values):
        if allowed is not None and k not in allowed:
            continue
        name = "(none)" if v is None or v == "" else (str(v) if not isinstance(v, (dict, list)) else None)
        if name is None:
            return None  # structured values (e.g. layout attributes) are sliced by the analysis scripts
        groups.setdefault(name, []).append(k)
    out = {}
    for name, ks in sorted(groups.items()):
        agg = _aggregate(np.asarray(ks, dtype=np.int64), arrays, b, codes, n_bootstrap, seed)
        out[name] = agg
    return out


def score_texts(preds: Sequence[str | None], gts: Sequence[str | None], profile: str = DEFAULT_PROFILE,
                doc_ids: Sequence[object] | None = None, n_bootstrap: int = 0, seed: int = 0,
                anatomy: bool = False, workers: int | None = None) -> dict[str, Any]:
    """Headline aggregates for plain lists of strings (e.g. the training callback's eval_cer = result['cer_micro'])."""
    check_profile(profile)
    preds = [_cer_text("" if p is None else str(p), profile) for p in preds]
    gts = [_cer_text("" if g is None else str(g), profile) for g in gts]
    b = score_pairs(preds, gts, profile=profile, anatomy=anatomy, workers=workers)
    arrays = _per_sample_arrays(b, 0.0 if profile == "seed" else 1.0)
    codes = stats.group_codes(list(doc_ids) if doc_ids is not None else [None] * len(preds))
    return _aggregate(np.arange(len(preds)), arrays, b, codes, n_bootstrap, seed)


def bootstrap_doc_ids(samples: Sequence[dict]) -> list[object | None]:
    """The document of each sample for the bootstrap: its ``doc_id`` unless that was only guessed from the image
    path (``doc_id_derived``), in which case the sample is its own unit."""
    return [None if s.get("doc_id_derived") else s.get("doc_id") for s in samples]


def score_result_file(result: dict, profiles: Sequence[str] = (DEFAULT_PROFILE,), n_bootstrap: int = 1000,
                      seed: int = 0, errors_as_empty: bool = False, anatomy: bool = True, workers: int | None = None,
                      table_time_limit_s: float | None = DEFAULT_TIME_LIMIT_S, score_empty_labels: bool = False) -> dict:
    """Score `result` (a dict in the lib/results.py schema, modified in place and returned); see the module docstring
    for what is filled. `profiles`: normalization profiles, the first is the primary (``overall_cer``/``overall_f1``,
    per-sample ``cer_score``/``f1_score``). Samples whose label is empty get per-sample scores but stay out of the
    aggregates (counted in ``n_empty_labels``) unless `score_empty_labels`."""
    if isinstance(profiles, str):
        profiles = (profiles,)
    profiles = list(dict.fromkeys(check_profile(p) for p in profiles))
    if not profiles:
        raise ValueError(f"score_result_file: no profile given (choose from {', '.join(PROFILES)})")
    samples = result.get("samples")
    if not isinstance(samples, list):
        raise ValueError("score_result_file: the result has no 'samples' list")
    for i, s in enumerate(samples):
        if "label" not in s:
            raise ValueError(f"samples[{i}] ({s.get('image_path', '?')}) has no 'label'; a result file needs the "
                             f"ground truth of every sample")
    included = [i for i, s in enumerate(samples) if errors_as_empty or not s.get("error")]
    n_errors = sum(1 for s in samples if s.get("error"))
    positions = np.asarray(included, dtype=np.int64)
    raw_preds = [_prediction_text(samples[i], errors_as_empty) for i in included]
    raw_gts = ["" if samples[i].get("label") is None else str(samples[i]["label"]) for i in included]
    empty_label = [k for k, g in enumerate(raw_gts) if not g.strip()]
    if empty_label:
        log.warning("%d sample(s) have an empty label (first: %s); %s", len(empty_label),
                    samples[included[empty_label[0]]].get("image_path"),
                    "scored" if score_empty_labels else "left out of the aggregate scores (--score-empty-labels "
                    "includes them)")
    all_idx = np.arange(len(included), dtype=np.int64)
    if not score_empty_labels and empty_label:
        all_idx = np.setdiff1d(all_idx, np.asarray(empty_label, dtype=np.int64))
    codes, unit = stats.bootstrap_codes(bootstrap_doc_ids([samples[included[k]] for k in all_idx]))
    # indexed by batch position like the arrays; samples left out of the aggregates get groups of their own
    codes_all = np.arange(len(included), dtype=np.int64) + (int(codes.max()) + 1 if len(codes) else 0)
    codes_all[all_idx] = codes
    codes = codes_all

    agg_scores: dict[str, Any] = {}
    per_sample: dict[int, dict[str, dict]] = {i: {} for i in included}
    for profile in profiles:
        both_empty = 0.0 if profile == "seed" else 1.0
        preds = [_cer_text(p, profile) for p in raw_preds]
        gts = [_cer_text(g, profile) for g in raw_gts]
        b = score_pairs(preds, gts, profile=profile, anatomy=anatomy, workers=workers)
        arrays = _per_sample_arrays(b, both_empty)
        agg = _aggregate(all_idx, arrays, b, codes, n_bootstrap, seed)
        agg["anatomy"] = _anatomy(all_idx, b, samples, positions)
        table_per, agg["tables"] = _table_scores(samples, included, raw_preds, profile, table_time_limit_s)
        seal_vals = []
        for k, pos in enumerate(included):
            s = samples[pos]
            entry = {name: float(arrays[name][k]) for name in PER_SAMPLE_METRICS}
            entry.update({"len_pred": int(b.len_p[k]), "len_gt": int(b.len_g[k]), "edits": int(b.lev[k])})
            if b.anatomy:
                entry.update({"substitutions": int(b.sub[k]), "deletions": int(b.dele[k]),
                              "insertions": int(b.ins[k])})
                if k in b.loops:
                    entry["repetition_loop"] = b.loops[k]
            if pos in table_per:
                entry.update(table_per[pos])
            if _is_seal_sample(s):
                v = seal_ned(raw_preds[k], raw_gts[k], profile)
                entry["seal_ned"] = v
                seal_vals.append(v)
            per_sample[pos][profile] = entry
        agg["seals"] = {"n": len(seal_vals), "seal_ned_macro": float(np.mean(seal_vals)) if seal_vals else None}
        k_of = {pos: k for k, pos in enumerate(included)}
        seal_k = [k_of[pos] for pos in included if "seal_ned" in per_sample[pos][profile]]
        agg["seals"]["ci95"] = _mean_cis(codes, seal_k, {"seal_ned_macro": [per_sample[included[k]][profile]["seal_ned"]
                                                                           for k in seal_k]}, n_bootstrap, seed)
        table_k = [k_of[pos] for pos, e in table_per.items() if "teds" in e]
        agg["tables"]["ci95"] = _mean_cis(codes, table_k, {
            "teds_macro": [table_per[included[k]]["teds"] for k in table_k],
            "teds_s_macro": [table_per[included[k]]["teds_s"] for k in table_k]}, n_bootstrap, seed)
        agg["slices"] = {}
        for key in ("element", "lang"):
            sl = _slices(key, included, samples, arrays, b, codes, n_bootstrap, seed, keep=all_idx)
            if sl is not None:
                agg["slices"][key] = sl
        agg["n_empty_labels"] = len(empty_label)
        agg["n_errors"] = n_errors if not errors_as_empty else 0
        agg["n_errors_scored_as_empty"] = n_errors if errors_as_empty else 0
        agg_scores[profile] = agg

    primary = profiles[0]
    for i, s in enumerate(samples):
        if i in per_sample:
            s["scores"] = per_sample[i]
            s["cer_score"] = per_sample[i][primary]["cer"]
            s["f1_score"] = per_sample[i][primary]["bag_f1"]
        else:
            s["scores"] = {p: None for p in profiles}
            s["cer_score"] = None
            s["f1_score"] = None
    result["profiles"] = profiles
    result["scores"] = agg_scores
    result["overall_cer"] = agg_scores[primary]["cer_micro"]
    result["overall_f1"] = agg_scores[primary]["bag_f1_macro"]
    result["total_samples"] = len(samples)
    result["n_errors"] = n_errors
    result["errors_as_empty"] = bool(errors_as_empty)
    result["scoring"] = {"n_bootstrap": int(n_bootstrap), "seed": int(seed), "confidence": 0.95,
                         "bootstrap_unit": unit, "table_time_limit_s": table_time_limit_s,
                         "empty_labels": "scored" if score_empty_labels else "excluded from aggregates"}
    result.setdefault("schema_version", 1)
    return result


# ----------------------------------------------------------------------------------------------- paired comparison
def _pair_keys(samples: list[dict]) -> list[tuple[str, int]]:
    seen: Counter = Counter()
    keys = []
    for s in samples:
        p = str(s.get("image_path", ""))
        keys.append((p, seen[p]))
        seen[p] += 1
    return keys


def paired_comparison(result_a: dict, result_b: dict, metric: str = "cer", profile: str = DEFAULT_PROFILE,
                      n_bootstrap: int = 1000, n_permutations: int = 10000, seed: int = 0,
                      errors_as_empty: bool = False) -> dict[str, Any]:
    """Compare B against A on their common samples (paired by image_path; the k-th repeat of a path pairs with the
    k-th). difference = B − A of the aggregate (micro for ``cer``, the mean otherwise), with a document-level
    bootstrap CI and a sign-flip permutation p-value. Both files are re-scored here with `profile`."""
    check_profile(profile)
    m = get_metric(metric)
    allowed = [p.name for p in pair_metrics()]
    if metric not in allowed:
        raise ValueError(f"paired_comparison supports {', '.join(allowed)}; {metric!r} is reported per file only")
    col = m.sample_key
    sa, sb = result_a["samples"], result_b["samples"]
    ka, kb = _pair_keys(sa), _pair_keys(sb)
    index_b = {k: i for i, k in enumerate(kb)}
    common = [(i, index_b[k]) for i, k in enumerate(ka) if k in index_b]
    n_only_a = len(sa) - len(common)
    n_only_b = len(sb) - len(common)
    pairs = [(i, j) for i, j in common
             if errors_as_empty or not (sa[i].get("error") or sb[j].get("error"))]
    n_excluded = len(common) - len(pairs)
    mismatched = [sa[i].get("image_path") for i, j in pairs if (sa[i].get("label") or "") != (sb[j].get("label") or "")]
    if mismatched:
        log.warning("%d paired samples have different labels in A and B (first: %s); each file's own label is used",
                    len(mismatched), mismatched[0])
    out: dict[str, Any] = {"metric": metric, "profile": profile, "higher_is_better": m.higher_is_better,
                           "model_a": result_a.get("model_name"), "model_b": result_b.get("model_name"),
                           "n": len(pairs), "n_only_a": n_only_a, "n_only_b": n_only_b, "n_excluded_errors": n_excluded,
                           "n_label_mismatch": len(mismatched), "definition": "difference = B − A"}
    if not pairs:
        out.update({"a": None, "b": None, "difference": None, "ci95": None, "p_value": None, "n_docs": 0,
                    "improved": 0, "regressed": 0, "unchanged": 0})
        return out
    both_empty = 0.0 if profile == "seed" else 1.0

    def run(samples, idxs):
        preds = [_cer_text(_prediction_text(samples[i], errors_as_empty), profile) for i in idxs]
        gts = [_cer_text(str(samples[i].get("label") or ""), profile) for i in idxs]
        b = score_pairs(preds, gts, profile=profile, anatomy=False)
        return b, _per_sample_arrays(b, both_empty)

    ba, arr_a = run(sa, [i for i, _ in pairs])
    bb, arr_b = run(sb, [j for _, j in pairs])
    doc_a, doc_b = bootstrap_doc_ids([sa[i] for i, _ in pairs]), bootstrap_doc_ids([sb[j] for _, j in pairs])
    codes, unit = stats.bootstrap_codes([x if x not in (None, "") else y for x, y in zip(doc_a, doc_b)])
    n = len(pairs)
    out["bootstrap_unit"] = unit
    if m.micro_arrays is not None:  # cer: the micro aggregate, as in scores[profile]
        (num_a, den), (num_b, den_b) = ([x.astype(float) for x in m.micro_arrays(bt)] for bt in (ba, bb))
        a_val, b_val = _micro(num_a.sum(), den.sum()), _micro(num_b.sum(), den_b.sum())
        diff_num = num_b - num_a
        out["difference_of"] = "micro " + metric.upper()
        if den.sum() <= 0:
            diff_num, den = arr_b[col] - arr_a[col], np.ones(n)
        elif mismatched and den_b.sum() > 0:
            # each file's micro CER has its own denominator: split B − A exactly into per-pair terms
            # num_b/Σden_b − num_a/Σden_a (their sum is b_val − a_val) instead of dividing both by A's label lengths
            diff_num = (num_b / float(den_b.sum()) - num_a / float(den.sum())) * n
            den = np.ones(n)
            out["difference_method"] = "per-pair terms of each file's own micro CER (labels differ)"
        out["mean_sample_difference"] = float((arr_b[col] - arr_a[col]).mean())
    else:
        out["difference_of"] = "mean " + metric
        a_val, b_val = float(arr_a[col].mean()), float(arr_b[col].mean())
        diff_num, den = arr_b[col] - arr_a[col], np.ones(n)
    test = stats.paired_test(codes, diff_num, den, n_bootstrap=n_bootstrap, n_permutations=n_permutations, seed=seed)
    per = arr_b[col] - arr_a[col]
    better = per > 1e-12 if m.higher_is_better else per < -1e-12
    worse = per < -1e-12 if m.higher_is_better else per > 1e-12
    out.update({"a": a_val, "b": b_val, "difference": test["difference"], "ci95": test["ci95"],
                "p_value": test["p_value"], "p_value_at_floor": test.get("p_value_at_floor", False),
                "n_docs": test["n_groups"], "n_bootstrap": n_bootstrap,
                "n_permutations": n_permutations, "improved": int(better.sum()), "regressed": int(worse.sum()),
                "unchanged": int(n - better.sum() - worse.sum())})
    return out
