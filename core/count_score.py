#!/usr/bin/env python3
"""Re-score a result JSON with one or more normalization profiles, or compare two result files.

    python core/count_score.py --input results/gemma-12b-base.json --output results/gemma-12b-base_norm.json
    python core/count_score.py --input A.json --output A_scored.json --profile seed standard lenient
    python core/count_score.py --compare A.json B.json [--metric cer] [--profile standard] [--output cmp.json]

The input may be one of the original project's result files (overall_cer, overall_f1, total_samples, timestamp,
model_name, samples[{image_path, label, prediction, cer_score, f1_score}]) or ours (lib/results.py). The first
profile is the primary one: it fills overall_cer (micro CER), overall_f1 (macro bag-of-characters F1) and each
sample's cer_score/f1_score; every profile's scores go under scores[<profile>]. The output is written atomically.
Metric definitions: docs/METRICS.md.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from lib.config import field, format_config, parse_args


@dataclasses.dataclass
class CountScoreArgs:
    input: Optional[str] = field(None, help="result JSON to re-score (ours or the original project's)")
    output: Optional[str] = field(None, help="where to write the re-scored JSON (or the comparison with --compare)")
    profile: list[str] = field(default_factory=lambda: ["standard"], aliases=["profiles"],
                               help="normalization profile(s): seed | standard | lenient; the first is the primary")
    compare: list[str] = field(default_factory=list, help="two result files A B: paired comparison of B against A")
    metric: str = field("cer", help="metric for --compare: cer (micro) | cer_clipped | ned | bag_f1 | lcs_f1 | "
                                    "exact_match (means)")
    n_bootstrap: int = field(1000, help="bootstrap resamples (by doc_id) for the 95%% confidence intervals; 0 = none")
    n_permutations: int = field(10000, help="sign-flip permutations for the --compare p-value")
    seed: int = field(0, help="random seed of the bootstrap and the permutation test")
    errors_as_empty: bool = field(False, help="score samples with an 'error' as empty predictions instead of "
                                              "excluding them")
    workers: Optional[int] = field(None, help="threads/processes for scoring (default: all available cores)")
    table_time_limit_s: float = field(30.0, help="per-table CPU-time limit for TEDS; slower tables are counted as "
                                                 "timeouts")
    score_empty_labels: bool = field(False, help="include samples whose label is empty in the aggregate scores "
                                                 "(default: per-sample scores only, counted as n_empty_labels)")
    skip_flagged: list[str] = field(default_factory=list, help="leave out samples flagged with any of these in the "
                                    "review sidecar of the result's dataset (gt_wrong model_wrong ambiguous), or "
                                    "whose sample carries one of these keys as true")
    review: Optional[str] = field(None, help="review sidecar to use (default: <dataset>.review.json next to the "
                                             "dataset file the result records)")

    def __post_init__(self):
        from lib.metrics.normalization import check_profile

        if self.compare:
            if len(self.compare) != 2:
                raise ValueError(f"--compare takes exactly two result files (A B), got {len(self.compare)}")
        elif not self.input or not self.output:
            raise ValueError("give --input and --output (re-score a file), or --compare A.json B.json")
        if not self.profile:
            raise ValueError("--profile needs at least one of: seed, standard, lenient")
        for p in self.profile:
            check_profile(p)
        if self.compare:
            from lib.metrics.registry import MetricError, get_metric

            try:
                get_metric(self.metric)
            except MetricError as exc:
                raise ValueError(str(exc)) from None
        if self.n_bootstrap < 0 or self.n_permutations < 0:
            raise ValueError("--n_bootstrap and --n_permutations must be >= 0")


def _fmt(x, digits=4):
    return "-" if x is None else f"{x:.{digits}f}"


def _ci(ci):
    return "" if not ci else f" [{ci[0]:.4f}, {ci[1]:.4f}]"


def format_scores_table(result: dict) -> str:
    """A compact terminal table: one line per profile."""
    head = (f"{'profile':<9} {'n':>6} {'docs':>5} {'CER micro [95% CI]':<30} {'CER macro':>9} {'bag-F1':>7} "
            f"{'LCS-F1':>7} {'NED':>7} {'exact':>6} {'TEDS':>6} {'S/D/I':>16}")
    lines = [head, "-" * len(head)]
    for prof in result.get("profiles", []):
        s = result["scores"][prof]
        an = s.get("anatomy", {})
        sdi = f"{an.get('substitutions', '-')}/{an.get('deletions', '-')}/{an.get('insertions', '-')}"
        teds = (s.get("tables") or {}).get("teds_macro")
        lines.append(f"{prof:<9} {s['n']:>6} {s.get('n_docs', 0):>5} "
                     f"{(_fmt(s['cer_micro']) + _ci(s['ci95'].get('cer_micro'))):<30} {_fmt(s['cer_macro']):>9} "
                     f"{_fmt(s['bag_f1_macro']):>7} {_fmt(s['lcs_f1_macro']):>7} {_fmt(s['ned_macro']):>7} "
                     f"{_fmt(s['exact_match'], 3):>6} {_fmt(teds, 3):>6} {sdi:>16}")
    prim = result["scores"][result["profiles"][0]] if result.get("profiles") else {}
    extra = []
    if result.get("n_errors"):
        extra.append(f"{result['n_errors']} samples had errors "
                     f"({'scored as empty' if result.get('errors_as_empty') else 'excluded'})")
    if prim.get("n_empty_labels"):
        how = (result.get("scoring") or {}).get("empty_labels", "excluded from aggregates")
        extra.append(f"warning: {prim['n_empty_labels']} samples have an empty label ({how}; "
                     f"--score-empty-labels includes them)")
    unit = (result.get("scoring") or {}).get("bootstrap_unit")
    if unit and unit != "doc_id":
        extra.append(f"CIs resample {unit}")
    an = prim.get("anatomy") or {}
    if an.get("n_repetition_loops"):
        extra.append(f"{an['n_repetition_loops']} repetition loops")
    if an.get("n_empty_predictions"):
        extra.append(f"{an['n_empty_predictions']} empty predictions")
    by = {k: v for k, v in (an.get("by_class") or {}).items() if v.get("chars")}
    if by:
        extra.append("substituted or deleted, per ground-truth character: " + ", ".join(
            f"{k} {v['rate']:.3f} ({v['sub_del']}/{v['chars']})" for k, v in by.items()))
    tb = prim.get("tables") or {}
    if tb.get("n"):
        extra.append(f"tables: n={tb['n']} invalid pred={tb['n_invalid_pred']} invalid gt={tb['n_invalid_gt']} "
                     f"timeouts={tb['n_timeouts']} (headline CER uses {tb['headline_cer_uses']})")
    return "\n".join(lines + extra)


def _p(cmp: dict) -> str:
    from lib.metrics.stats import format_p_value

    text = format_p_value(cmp.get("p_value"), cmp.get("n_permutations"))
    return text if text.startswith("<") else f"= {text}"


def drop_flagged(data: dict, keys: list[str], review_path: str | None, source: str) -> int:
    """Remove the samples flagged `keys` (review sidecar of the result's dataset, or a true sample key) from
    `data`; records what was dropped under data['data']. Returns how many."""
    import os
    from types import SimpleNamespace

    from lib.review import FLAGS, flagged_rows, sidecar_path

    if not keys:
        return 0
    dpath = (data.get("data") or {}).get("path") if isinstance(data.get("data"), dict) else None
    if any(k in FLAGS for k in keys) and not review_path and not dpath:
        raise ValueError(f"{source} records no dataset path, so its review sidecar is unknown: pass --review "
                         f"<dataset>.review.json")
    if any(k in FLAGS for k in keys) and not review_path and not os.path.isfile(sidecar_path(dpath)):
        print(f"note: no review sidecar {sidecar_path(dpath)}; only sample keys are checked")
    samples = data["samples"]
    rows = [SimpleNamespace(index=i, raw_image_path=s.get("image_path", "")) for i, s in enumerate(samples)]
    flagged = flagged_rows(dpath or "", rows, keys, review_path) if (dpath or review_path) else set()
    flagged |= {i for i, s in enumerate(samples) if any(s.get(k) is True for k in keys)}
    data["samples"] = [s for i, s in enumerate(samples) if i not in flagged]
    if not isinstance(data.get("data"), dict):
        data["data"] = {}
    data["data"]["skipped_flagged_on_rescore"] = {"keys": list(keys), "n": len(flagged)}
    return len(flagged)


def format_comparison(cmp: dict) -> str:
    arrow = "higher is better" if cmp["higher_is_better"] else "lower is better"
    return "\n".join([
        f"Paired comparison on {cmp['n']} common samples ({cmp.get('n_docs', 0)} docs), metric {cmp['metric']} "
        f"({arrow}), profile {cmp['profile']}",
        f"  A {cmp.get('model_a')}: {_fmt(cmp['a'])}",
        f"  B {cmp.get('model_b')}: {_fmt(cmp['b'])}",
        f"  B − A = {_fmt(cmp['difference'])}{_ci(cmp['ci95'])} (difference of {cmp.get('difference_of', 'means')})"
        f"  p {_p(cmp)}",
        f"  improved {cmp['improved']}, regressed {cmp['regressed']}, unchanged {cmp['unchanged']}; "
        f"only in A {cmp['n_only_a']}, only in B {cmp['n_only_b']}, excluded (errors) {cmp['n_excluded_errors']}",
    ])


def main(args: CountScoreArgs) -> dict:
    import logging
    from datetime import datetime

    from lib.metrics.scoring import paired_comparison, score_result_file
    from lib.results import atomic_write_json, git_commit, load_results, write_results

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.compare:
        a, b = (load_results(p) for p in args.compare)
        cmp = paired_comparison(a, b, metric=args.metric, profile=args.profile[0], n_bootstrap=args.n_bootstrap,
                                n_permutations=args.n_permutations, seed=args.seed,
                                errors_as_empty=args.errors_as_empty)
        cmp["files"] = {"a": args.compare[0], "b": args.compare[1]}
        print(format_comparison(cmp))
        if args.output:
            atomic_write_json(cmp, args.output)
            print(f"Comparison written to {args.output}")
        return cmp

    print(f"Reading {args.input}")
    data = load_results(args.input)
    before = {"overall_cer": data.get("overall_cer"), "overall_f1": data.get("overall_f1")}
    n_flagged = drop_flagged(data, args.skip_flagged, args.review, args.input)
    if args.skip_flagged:
        print(f"left out {n_flagged} sample(s) flagged {' '.join(args.skip_flagged)}")
    score_result_file(data, profiles=args.profile, n_bootstrap=args.n_bootstrap, seed=args.seed,
                      errors_as_empty=args.errors_as_empty, workers=args.workers,
                      table_time_limit_s=args.table_time_limit_s, score_empty_labels=args.score_empty_labels)
    data["timestamp"] = datetime.now().isoformat()
    data.setdefault("rescored", []).append({"by": "core/count_score.py", "input": args.input,
                                            "profiles": list(args.profile), "previous": before,
                                            "git_commit": git_commit(), "timestamp": data["timestamp"]})
    write_results(data, args.output)
    print(format_scores_table(data))
    for key in ("overall_cer", "overall_f1"):
        old, new = before[key], data[key]
        if isinstance(old, (int, float)):
            change = f" (was {old:.6f})" if old != new else " (unchanged)"
        else:
            change = ""
        print(f"{key} [{args.profile[0]}] = {_fmt(new, 6)}{change}")
    print(f"Written to {args.output}")
    return data


if __name__ == "__main__":
    from lib.errors import cli_errors

    cli_args = parse_args(CountScoreArgs)  # bad flags, profiles or metrics exit 2 with "did you mean ..."
    # ResultsError (unreadable file), a sample without a label, an unreadable review sidecar: one line, exit 2
    with cli_errors("count_score.py", extra=(ValueError, KeyError, OSError)):
        main(cli_args)
