"""Pairing two result files sample by sample for the comparison app, outside any Gradio callback.

Samples are paired by `image_path` as written in the files (the k-th occurrence of a path in one file with the
k-th in the other, so duplicated images still pair one to one) — the same rule as
`lib.utils.count_metric.paired_comparison`, whose statistics (mean difference, CI, p-value) the app shows.

Per pair, "which is better" compares the per-sample CER (lower is better; model 1 = the baseline, model 2 = the
candidate, e.g. before / after fine-tuning): `improved` (model 2 lower), `regressed` (model 2 higher), `same`;
`both wrong` = both CERs > 0. A pair where either side has an error has the verdict `error` and no ΔCER: the
paired statistics leave it out, so the filter counts and the statistics count the same pairs.

Not for: the statistics themselves (count_metric.paired_comparison).
"""

from __future__ import annotations

import dataclasses
import html
from collections import defaultdict
from typing import Any, Iterable, Sequence

from lib.ui.samples import Row, fmt_score, rows_from_result

__all__ = ["Pair", "pair_rows", "filter_pairs", "sort_pairs", "PAIR_FILTERS", "PAIR_SORT_KEYS", "verdict_text",
           "pairs_table", "paired_stats", "paired_stats_markdown", "pair_counts"]

PAIR_FILTERS = ("all", "improved", "regressed", "same", "both wrong", "errors")
VERDICT_FILTER = {"improved": "improved", "regressed": "regressed", "same": "same", "errors": "error"}
PAIR_SORT_KEYS = ("position", "delta", "cer_1", "cer_2")
EPS = 1e-12


@dataclasses.dataclass
class Pair:
    pos: int  # position in the paired list (model 1's order)
    a: Row  # model 1
    b: Row  # model 2

    @property
    def image_path(self) -> str:
        return self.a.image_path

    @property
    def label(self) -> str:
        return self.a.label

    @property
    def has_error(self) -> bool:
        return self.a.is_error or self.b.is_error

    @property
    def delta(self) -> float | None:
        """CER(model 2) − CER(model 1): negative = model 2 better; None when a side has an error or no score."""
        if self.has_error or self.a.cer is None or self.b.cer is None:
            return None
        return self.b.cer - self.a.cer

    @property
    def verdict(self) -> str:
        if self.has_error:
            return "error"
        d = self.delta
        if d is None:
            return "unknown"
        if d < -EPS:
            return "improved"
        if d > EPS:
            return "regressed"
        return "same"

    @property
    def both_wrong(self) -> bool:
        d = self.delta
        return d is not None and self.a.cer > EPS and self.b.cer > EPS


def pair_rows(result_a: dict, result_b: dict, rows_a: Sequence[Row] | None = None,
              rows_b: Sequence[Row] | None = None) -> tuple[list[Pair], int, int]:
    """(pairs in model 1's order, n only in model 1, n only in model 2)."""
    rows_a = list(rows_a if rows_a is not None else rows_from_result(result_a))
    rows_b = list(rows_b if rows_b is not None else rows_from_result(result_b))
    by_path: dict[str, list[Row]] = defaultdict(list)
    for r in rows_b:
        by_path[r.image_path].append(r)
    pairs, only_a = [], 0
    for r in rows_a:
        bucket = by_path.get(r.image_path)
        if bucket:
            pairs.append(Pair(len(pairs), r, bucket.pop(0)))
        else:
            only_a += 1
    only_b = sum(len(v) for v in by_path.values())
    return pairs, only_a, only_b


def filter_pairs(pairs: Iterable[Pair], which: str = "all", search: str = "") -> list[Pair]:
    if which not in PAIR_FILTERS:
        raise ValueError(f"unknown filter {which!r}; choose one of {PAIR_FILTERS}")
    out = []
    q = search.casefold() if search else ""
    for p in pairs:
        if which in VERDICT_FILTER and p.verdict != VERDICT_FILTER[which]:
            continue
        if which == "both wrong" and not p.both_wrong:
            continue
        if q and q not in "\n".join([p.label, p.a.prediction or "", p.b.prediction or "", p.image_path]).casefold():
            continue
        out.append(p)
    return out


def sort_pairs(pairs: Iterable[Pair], key: str = "position", descending: bool = False) -> list[Pair]:
    if key not in PAIR_SORT_KEYS:
        raise ValueError(f"unknown sort key {key!r}; choose one of {PAIR_SORT_KEYS}")
    get = {"position": lambda p: p.pos, "delta": lambda p: p.delta, "cer_1": lambda p: p.a.cer,
           "cer_2": lambda p: p.b.cer}[key]
    have = [p for p in pairs if get(p) is not None]
    missing = [p for p in pairs if get(p) is None]
    sign = -1 if descending else 1
    have.sort(key=lambda p: (sign * get(p), p.pos))
    return have + missing


def verdict_text(p: Pair, names: tuple[str, str] = ("Model 1", "Model 2")) -> str:
    d = p.delta
    if p.verdict == "error":
        who = " and ".join(n for n, r in zip(names, (p.a, p.b)) if r.is_error)
        return f"⚠ error in {who}: no ΔCER, left out of the paired statistics"
    if p.verdict == "improved":
        return f"✔ {names[1]} better (ΔCER {d:+.4f})"
    if p.verdict == "regressed":
        return f"✗ {names[0]} better (ΔCER {d:+.4f})"
    if p.verdict == "same":
        return "＝ same CER" + (" (both wrong)" if p.both_wrong else "")
    return "? no score"


def pair_counts(pairs: Sequence[Pair]) -> dict[str, int]:
    """Pairs per filter; improved + regressed + same + errors = all pairs (with scores)."""
    c = {"improved": 0, "regressed": 0, "same": 0, "both wrong": 0, "errors": 0}
    for p in pairs:
        if p.verdict in ("improved", "regressed", "same"):
            c[p.verdict] += 1
        c["both wrong"] += p.both_wrong
        c["errors"] += p.has_error
    return c


def pairs_table(pairs: Sequence[Pair], snippet: int = 30) -> list[list[Any]]:
    out = []
    for p in pairs:
        gt = p.label.replace("\n", " ")
        out.append([p.pos, p.verdict, fmt_score(p.a.cer), fmt_score(p.b.cer),
                    "—" if p.delta is None else f"{p.delta:+.4f}",
                    gt[:snippet] + ("…" if len(gt) > snippet else "")])
    return out


def paired_stats(result_a: dict, result_b: dict, metric: str = "cer", n_bootstrap: int = 2000,
                 n_permutations: int = 2000) -> dict | None:
    """count_metric.paired_comparison(a, b), or None while the metrics module is not available."""
    from lib.ui.samples import count_metric

    cm = count_metric()
    if cm is None or not hasattr(cm, "paired_comparison"):
        return None
    return cm.paired_comparison(result_a, result_b, metric=metric, n_bootstrap=n_bootstrap,
                                n_permutations=n_permutations)


def paired_stats_markdown(stats: dict | None, names: tuple[str, str]) -> str:
    """The result of count_metric.paired_comparison as one Markdown block."""
    if stats is None:
        return "*Paired statistics unavailable: the metrics module (lib.utils.count_metric) is not installed.*"
    metric = str(stats.get("metric", "cer")).upper()
    head = (f"**Paired {metric}: {html.escape(names[1])} − {html.escape(names[0])}** "
            f"(profile `{stats.get('profile')}`, n = {stats.get('n')} pairs from {stats.get('n_docs')} documents)")
    if stats.get("difference") is None:
        return head + " — no pairs to compare."
    from lib.metrics.stats import format_p_value

    ci = stats.get("ci95") or [None, None]
    better = "lower" if not stats.get("higher_is_better") else "higher"
    what = stats.get("difference_of") or ("micro CER" if stats.get("metric") == "cer" else "mean")
    p_text = format_p_value(stats.get("p_value"), stats.get("n_permutations"))
    parts = [f"{names[0]}: **{stats['a']:.4f}**", f"{names[1]}: **{stats['b']:.4f}**",
             f"difference of {what} **{stats['difference']:+.4f}**",
             f"95 % CI **[{ci[0]:+.4f}, {ci[1]:+.4f}]**" if None not in ci else "95 % CI —",
             f"p-value **{p_text}**",
             f"per sample: {stats.get('improved', 0)} improved · {stats.get('regressed', 0)} regressed · "
             f"{stats.get('unchanged', 0)} unchanged"]
    notes = []
    if stats.get("n_only_a") or stats.get("n_only_b"):
        notes.append(f"unpaired: {stats.get('n_only_a', 0)} only in model 1, {stats.get('n_only_b', 0)} only in model 2")
    if stats.get("n_label_mismatch"):
        notes.append(f"{stats['n_label_mismatch']} pair(s) have different ground truth in the two files (each file's "
                     f"own label is used)")
    if stats.get("n_excluded_errors"):
        notes.append(f"{stats['n_excluded_errors']} pair(s) with an error excluded (filter: errors)")
    if stats.get("difference_method"):
        notes.append(f"difference: {stats['difference_method']}")
    tail = (f"\n\n{better} {metric} is better; CI: document-level bootstrap, p: sign-flip permutation test"
            + ("; " + "; ".join(notes) if notes else ""))
    return head + "\n\n" + " · ".join(parts) + tail


@dataclasses.dataclass
class PairView:
    image: str  # HTML
    info: str  # Markdown: which is better, per-model scores
    label: str
    diff_a: str  # HTML
    diff_b: str
    tables: str  # HTML ("" when no table)


def render_pair(p: Pair, names: tuple[str, str], allowed_roots: Sequence[str], bases: Sequence[str] = (),
                zoom: int = 100, diff_profile: str | None = None) -> PairView:
    """Everything shown for one pair. `diff_profile` (e.g. "standard") diffs the normalized texts the scores were
    computed on instead of the raw texts."""
    from lib.ui.app import image_html
    from lib.ui.diff import char_diff, diff_html, diff_stats
    from lib.ui.paths import ServedFiles, resolve_image
    from lib.ui.tables import looks_like_table, side_by_side_html

    if isinstance(allowed_roots, ServedFiles):  # a running app: the image also becomes one it may serve
        img, reason = allowed_roots.resolve(p.image_path, bases)
    else:
        img, reason = resolve_image(p.image_path, allowed_roots, bases)

    def line(name: str, r: Row) -> str:
        if r.is_error:
            return f"**{html.escape(name)}**: ⚠ error — {html.escape(r.error or 'no prediction')}"
        st = diff_stats(char_diff(r.label, r.prediction or ""))
        return (f"**{html.escape(name)}**: CER **{fmt_score(r.cer)}** · F1 {fmt_score(r.f1)} · NED {fmt_score(r.ned)}"
                f" · {st.n_sub} sub / {st.n_del} missing / {st.n_ins} extra")

    info = "\n\n".join([f"<span class='ocr-verdict'>{verdict_text(p, names)}</span>",
                        f"pair {p.pos} · `{html.escape(p.image_path)}`" + (f" · element **{p.a.element}**"
                                                                             if p.a.element else ""),
                        line(names[0], p.a), line(names[1], p.b)])
    tables = ""
    if any(looks_like_table(t) for t in (p.label, p.a.prediction, p.b.prediction)):
        tables = side_by_side_html(p.label, p.a.prediction, titles=("Ground truth", names[0], names[1]),
                                   extra=(p.b.prediction,))
    gt, pa, pb = p.label, p.a.prediction, p.b.prediction
    if diff_profile:
        from lib.ui.samples import count_metric

        norm = count_metric().normalize
        gt = norm(gt, diff_profile)
        pa, pb = (None if x is None else norm(x, diff_profile) for x in (pa, pb))
    return PairView(image=image_html(img, reason, zoom, alt=p.image_path), info=info, label=p.label,
                    diff_a=diff_html(gt, pa), diff_b=diff_html(gt, pb), tables=tables)


__all__ += ["PairView", "render_pair"]
