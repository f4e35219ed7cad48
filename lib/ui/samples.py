"""What the viewers show about a result file, computed outside any Gradio callback so it can be unit-tested:
rows with per-sample scores, filtering, sorting, worst-k, per-element slices with confidence intervals, and the
header (model, overall scores with CIs, n, errors, timestamp, config).

Scores come from the file (the values `core/evaluate.py` / `core/count_score.py` wrote). Where a file lacks them
(an original-project file has no NED and no CIs), they are computed with the metrics module
(`lib.utils.count_metric.score_result_file`) on a copy — the file itself is never modified — and marked as
recomputed in the header.

Not for: defining metrics (lib.utils.count_metric) or reading files (lib.results.load_results).
"""

from __future__ import annotations

import copy
import dataclasses
import html
import math
from typing import Any, Iterable, Sequence

from lib.metrics.registry import aggregate_labels, headline_keys

__all__ = ["Row", "RowFilter", "rows_from_result", "filter_rows", "sort_rows", "worst_k", "slice_table",
           "header_markdown", "header_parts", "overall_scores", "primary_profile", "ensure_scored", "SORT_KEYS", "ERROR_FILTERS",
           "layout_label", "config_json", "rows_table", "ROWS_TABLE_HEADERS", "fmt_score", "count_metric",
           "REVIEW_FILTERS", "row_confusions", "top_confusions"]

SORT_KEYS = ("position", "cer", "f1", "ned", "length")
ERROR_FILTERS = ("all", "errors only", "no errors", "imperfect (CER > 0)", "perfect (CER = 0)")
REVIEW_FILTERS = ("all", "flagged (any)", "gt_wrong", "model_wrong", "ambiguous", "corrected", "with a note",
                  "not reviewed")
N_BOOTSTRAP_UI = 1000  # bootstrap resamples for CIs the viewer computes itself (slices, files without CIs)


def count_metric():
    """The metrics module. An import error in it is raised, not hidden behind "scores unavailable"."""
    import lib.metrics as cm

    return cm


def primary_profile(result: dict) -> str | None:
    profiles = result.get("profiles") or list((result.get("scores") or {}).keys())
    return profiles[0] if profiles else None


def layout_label(layout: Any) -> str | None:
    """A short, filterable label for the original's `focus_layout` / add_layout attributes."""
    if layout in (None, "", [], {}):
        return None
    if isinstance(layout, str):
        return layout
    if isinstance(layout, dict):
        for key in ("type", "layout", "name", "label", "focus_layout"):
            if isinstance(layout.get(key), str):
                return layout[key]
        return ",".join(f"{k}={v}" for k, v in sorted(layout.items()) if isinstance(v, (str, int, float, bool)))
    if isinstance(layout, (list, tuple)):
        return ",".join(str(x) for x in layout)
    return str(layout)


@dataclasses.dataclass
class Row:
    pos: int  # position in result["samples"] (0-based); what "jump to index" uses
    index: int | None  # row in the dataset file, when recorded
    image_path: str
    label: str
    prediction: str | None
    error: str | None
    element: str | None
    layout: str | None
    doc_id: str | None
    length: int  # ground-truth length in characters (raw text)
    cer: float | None
    f1: float | None
    ned: float | None

    @property
    def is_error(self) -> bool:
        return bool(self.error) or self.prediction is None


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    return None


def _sample_metric(s: dict, profile: str | None, names: Sequence[str]) -> float | None:
    per = (s.get("scores") or {}).get(profile) if profile else None
    if isinstance(per, dict):
        for n in names:
            if _num(per.get(n)) is not None:
                return _num(per.get(n))
    return None


def ensure_scored(result: dict, n_bootstrap: int = N_BOOTSTRAP_UI) -> tuple[dict, bool]:
    """(result, recomputed): `result` itself when it has per-sample NED and aggregate scores, else a scored copy
    made by the metrics module (standard profile; the original file's own numbers stay in the header)."""
    cm = count_metric()
    prof = primary_profile(result)
    has_agg = bool(result.get("scores")) and prof is not None
    ok_samples = [s for s in result["samples"] if not s.get("error") and s.get("prediction") is not None]
    has_ned = all(_sample_metric(s, prof, ("ned",)) is not None for s in ok_samples)
    if (has_agg and has_ned) or cm is None:
        return result, False
    scored = copy.deepcopy(result)
    scored = cm.score_result_file(scored, n_bootstrap=n_bootstrap) or scored
    return scored, True


def rows_from_result(result: dict, original: dict | None = None) -> list[Row]:
    """One Row per sample. `original` (the file as read, when `result` is a recomputed copy) supplies the stored
    cer_score / f1_score, which take precedence so the viewer shows the numbers the file reports."""
    prof = primary_profile(result)
    rows = []
    orig_samples = original["samples"] if original is not None else result["samples"]
    for pos, (s, o) in enumerate(zip(result["samples"], orig_samples)):
        cer = _num(o.get("cer_score"))
        f1 = _num(o.get("f1_score"))
        if cer is None:
            cer = _num(s.get("cer_score")) if _num(s.get("cer_score")) is not None else _sample_metric(s, prof, ("cer",))
        if f1 is None:
            f1 = _num(s.get("f1_score")) if _num(s.get("f1_score")) is not None else _sample_metric(s, prof, ("bag_f1", "f1"))
        ned = _sample_metric(o, primary_profile(original or result), ("ned",))
        if ned is None:
            ned = _sample_metric(s, prof, ("ned",))
        label = s.get("label") or ""
        idx = s.get("index")
        rows.append(Row(
            pos=pos, index=idx if isinstance(idx, int) else None, image_path=str(s.get("image_path") or ""),
            label=label, prediction=s.get("prediction"), error=s.get("error") or None,
            element=s.get("element") or None, layout=layout_label(s.get("layout")), doc_id=s.get("doc_id"),
            length=len(label), cer=cer, f1=f1, ned=ned,
        ))
    return rows


@dataclasses.dataclass
class RowFilter:
    elements: Sequence[str] = ()  # empty = all
    layouts: Sequence[str] = ()
    min_len: int | None = None
    max_len: int | None = None
    errors: str = "all"  # one of ERROR_FILTERS
    search: str = ""  # substring of label, prediction or image path (case-insensitive)
    review: str = "all"  # one of REVIEW_FILTERS, judged with `reviews`
    reviews: Any = None  # image_path -> lib.review.ReviewItem (the review sidecar of the file's dataset)
    confusion: tuple[str, str] | None = None  # (ground-truth char, predicted char): samples with that substitution
    confusions: Any = None  # row position -> set of (gt char, pred char), from `row_confusions`

    def _review_ok(self, r: Row) -> bool:
        if self.review == "all":
            return True
        it = (self.reviews or {}).get(r.image_path)
        if self.review == "not reviewed":
            return it is None
        if it is None:
            return False
        if self.review == "flagged (any)":
            return bool(it.flags)
        if self.review == "corrected":
            return it.label is not None
        if self.review == "with a note":
            return bool(it.note.strip())
        return self.review in it.flags

    def matches(self, r: Row) -> bool:
        if not self._review_ok(r):
            return False
        if self.confusion is not None and self.confusion not in (self.confusions or {}).get(r.pos, ()):
            return False
        if self.elements and (r.element or "(none)") not in self.elements:
            return False
        if self.layouts and (r.layout or "(none)") not in self.layouts:
            return False
        if self.min_len is not None and r.length < self.min_len:
            return False
        if self.max_len is not None and r.length > self.max_len:
            return False
        if self.errors == "errors only" and not r.is_error:
            return False
        if self.errors == "no errors" and r.is_error:
            return False
        if self.errors == "imperfect (CER > 0)" and not (r.is_error or (r.cer or 0) > 0):
            return False
        if self.errors == "perfect (CER = 0)" and (r.is_error or r.cer != 0):
            return False
        if self.search:
            q = self.search.casefold()
            hay = "\n".join([r.label, r.prediction or "", r.image_path, r.error or ""]).casefold()
            if q not in hay:
                return False
        return True


def filter_rows(rows: Iterable[Row], flt: RowFilter) -> list[Row]:
    if flt.errors not in ERROR_FILTERS:
        raise ValueError(f"unknown error filter {flt.errors!r}; choose one of {ERROR_FILTERS}")
    if flt.review not in REVIEW_FILTERS:
        raise ValueError(f"unknown review filter {flt.review!r}; choose one of {REVIEW_FILTERS}")
    return [r for r in rows if flt.matches(r)]


def row_confusions(rows: Sequence[Row], profile: str = "standard") -> dict[int, dict[tuple[str, str], int]]:
    """Per row position: the character substitutions (ground-truth char, predicted char) -> count of a minimal
    Levenshtein alignment of the normalized texts, the alignment the scores count (errors have none)."""
    from rapidfuzz.distance import Levenshtein

    norm = count_metric().normalize
    out: dict[int, dict[tuple[str, str], int]] = {}
    for r in rows:
        if r.is_error:
            continue
        g, p = norm(r.label, profile), norm(r.prediction or "", profile)
        subs: dict[tuple[str, str], int] = {}
        for op in Levenshtein.editops(g, p):
            if op.tag == "replace":
                key = (g[op.src_pos], p[op.dest_pos])
                subs[key] = subs.get(key, 0) + 1
        if subs:
            out[r.pos] = subs
    return out


def top_confusions(per_row: dict[int, dict[tuple[str, str], int]], k: int = 20) -> list[tuple[str, str, int, int]]:
    """The k most frequent substitutions: (gt char, pred char, count, samples with it), most frequent first."""
    count: dict[tuple[str, str], int] = {}
    samples: dict[tuple[str, str], int] = {}
    for subs in per_row.values():
        for key, n in subs.items():
            count[key] = count.get(key, 0) + n
            samples[key] = samples.get(key, 0) + 1
    ranked = sorted(count, key=lambda key: (-count[key], -samples[key], key))
    return [(g, p, count[(g, p)], samples[(g, p)]) for g, p in ranked[:k]]


def sort_rows(rows: Iterable[Row], key: str = "position", descending: bool = False) -> list[Row]:
    """Sort by a score or by position; samples without that score (errors) always go last."""
    if key not in SORT_KEYS:
        raise ValueError(f"unknown sort key {key!r}; choose one of {SORT_KEYS}")
    attr = "pos" if key == "position" else key
    have = [r for r in rows if getattr(r, attr) is not None]
    missing = [r for r in rows if getattr(r, attr) is None]
    sign = -1 if descending else 1
    have.sort(key=lambda r: (sign * getattr(r, attr), r.pos))  # ties stay in position order
    return have + missing


def worst_k(rows: Iterable[Row], k: int = 10, metric: str = "cer") -> list[Row]:
    """The k worst samples: highest CER/NED, lowest F1; errors are not included (they have no score)."""
    higher_is_worse = metric in ("cer", "ned")
    return [r for r in sort_rows(rows, metric, descending=higher_is_worse) if getattr(r, metric) is not None][:k]


def fmt_score(v: float | None, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


ROWS_TABLE_HEADERS = ["#", "element", "CER", "F1", "NED", "ground truth"]


def rows_table(rows: Sequence[Row], snippet: int = 24) -> list[list[Any]]:
    """Table rows for the sample list (ROWS_TABLE_HEADERS): position, element, CER, F1, NED, ground-truth snippet."""
    out = []
    for r in rows:
        gt = r.label.replace("\n", " ")
        out.append([r.pos, r.element or "", fmt_score(r.cer, 3), fmt_score(r.f1, 3), fmt_score(r.ned, 3),
                    "ERROR: " + (r.error or "") if r.is_error else (gt[:snippet] + ("…" if len(gt) > snippet else ""))])
    return out


# ---------------------------------------------------------------------------------------------- aggregates
def _ci(v: Any) -> tuple[float, float] | None:
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(_num(x) is not None for x in v):
        return float(v[0]), float(v[1])
    return None


HEADLINE = headline_keys()  # the metric registry's aggregates, in its order (lib/metrics/registry.py)


def overall_scores(agg: dict) -> list[tuple[str, float, tuple[float, float] | None]]:
    """(name, value, 95 % CI or None) for the headline aggregates of one profile's block
    (`result["scores"][profile]` as filled by count_metric.score_result_file: values plus `ci95[name]`)."""
    cis = agg.get("ci95") if isinstance(agg.get("ci95"), dict) else {}
    names = [n for n in HEADLINE if n in agg] + [n for n in agg if n not in HEADLINE and n in cis]
    return [(n, float(agg[n]), _ci(cis.get(n))) for n in names if _num(agg.get(n)) is not None]


def _slice_values(s: dict, by: str) -> str:
    v = layout_label(s.get(by)) if by == "layout" else s.get(by)
    return "(none)" if v in (None, "") else str(v)


def slice_table(result: dict, by: str = "element", n_bootstrap: int = N_BOOTSTRAP_UI, seed: int = 0,
                max_groups: int = 100, info: dict | None = None) -> list[dict[str, Any]]:
    """Per `by` group (element, layout, doc_id, ...): n, errors, micro CER with its 95 % CI and mean bag F1,
    worst (highest micro CER) first. Uses the slices stored by count_metric.score_result_file when the file has them
    (element, lang); other keys are scored with count_metric.score_texts on each group's non-error samples. At most
    `max_groups` rows (slicing by document can make thousands): the worst ones; `info`, when given, receives
    {"n_groups": all groups, "shown": rows returned} so the page can say what was left out."""
    cm = count_metric()
    prof = primary_profile(result)
    stored = (((result.get("scores") or {}).get(prof or "") or {}).get("slices") or {}).get(by) or {}
    groups: dict[str, list[dict]] = {}
    for s in result["samples"]:
        groups.setdefault(_slice_values(s, by), []).append(s)

    def score(samples, boot):
        ok = [s for s in samples if not s.get("error")]
        if not ok:
            return None
        return cm.score_texts([s.get("prediction") for s in ok], [s.get("label") for s in ok],
                              profile=prof or "standard", doc_ids=[s.get("doc_id") for s in ok],
                              n_bootstrap=boot, seed=seed)

    ranked = []
    for name, samples in groups.items():
        agg = stored.get(name)
        quick = agg if agg is not None else score(samples, 0)
        cer = (quick or {}).get("cer_micro")
        ranked.append((name, samples, agg, cer))
    ranked.sort(key=lambda x: (x[3] is None, -(x[3] or 0.0), -len(x[1]), x[0]))
    if info is not None:
        info.update({"n_groups": len(ranked), "shown": min(len(ranked), max_groups)})
    out = []
    for name, samples, agg, _ in ranked[:max_groups]:
        ok = [s for s in samples if not s.get("error")]
        row: dict[str, Any] = {by: name, "n": len(samples), "errors": len(samples) - len(ok)}
        if agg is None:
            agg = score(samples, n_bootstrap)
        if agg:
            found = {n: (v, ci) for n, v, ci in overall_scores(agg)}
            if "cer_micro" in found:
                row["CER (micro)"], row["CER 95% CI"] = found["cer_micro"]
            if "bag_f1_macro" in found:
                row["F1"] = found["bag_f1_macro"][0]
        out.append(row)
    return out


METRIC_LABELS = aggregate_labels()  # aggregate key -> label, from the metric registry


def header_markdown(result: dict, source: str, recomputed: dict | None = None) -> str:
    """Model, overall scores with 95 % CIs, n, errors, timestamp and run facts as Markdown."""
    return "\n\n".join(header_parts(result, source, recomputed))


def header_parts(result: dict, source: str, recomputed: dict | None = None) -> tuple[str, str]:
    """(facts, scores) Markdown: model/n/errors/timestamp/run facts, and the overall scores table with CIs."""
    n = len(result["samples"])
    n_err = result.get("n_errors")
    if n_err is None:
        n_err = sum(1 for s in result["samples"] if s.get("error") or s.get("prediction") is None)
    facts = [f"`{html.escape(source)}`", f"**n = {n}**", f"**errors = {n_err}**",
             f"timestamp {html.escape(str(result.get('timestamp') or '—'))}",
             f"schema v{result.get('schema_version', 0)}"]
    if result.get("backend"):
        facts.append(f"backend `{html.escape(str(result['backend']))}`")
    if result.get("git_commit"):
        facts.append(f"git `{html.escape(str(result['git_commit'])[:12])}`")
    head = [f"### {html.escape(str(result.get('model_name') or '(unnamed model)'))}", " · ".join(facts)]
    lines: list[str] = []
    block = result if result.get("scores") else (recomputed or {})
    prof = primary_profile(block) if block else None
    agg = (block.get("scores") or {}).get(prof or "", {}) if block else {}
    rows = overall_scores(agg)
    if rows:
        note = "" if block is result else " — recomputed by the viewer: the file has no CIs"
        lines.append(f"Overall scores, profile `{prof}`, 95 % bootstrap CI over documents{note}:")
        table = ["| metric | value | 95 % CI |", "|---|---|---|"]
        for name, val, ci in rows:
            table.append(f"| {METRIC_LABELS.get(name, name)} | **{val:.4f}** | "
                         + (f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "—") + " |")
        lines.append("\n".join(table))
    if block is not result or not rows:
        stored = []
        if _num(result.get("overall_cer")) is not None:
            stored.append(f"CER {result['overall_cer']:.4f}")
        if _num(result.get("overall_f1")) is not None:
            stored.append(f"F1 {result['overall_f1']:.4f}")
        head.append("As stored in the file: " + (" · ".join(stored) if stored else "no scores"))
    return "\n\n".join(head), "\n\n".join(lines)


def config_json(result: dict) -> dict:
    """The run facts worth showing next to the header (resolved config, prompt, decoding, data, timings)."""
    keys = ("config", "prompt", "decoding", "postprocessors", "data", "timings", "errors_as_empty", "profiles")
    return {k: result[k] for k in keys if k in result}
