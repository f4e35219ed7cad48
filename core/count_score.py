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
import sys
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


def format_comparison(cmp: dict) -> str:
    arrow = "higher is better" if cmp["higher_is_better"] else "lower is better"
    return "\n".join([
        f"Paired comparison on {cmp['n']} common samples ({cmp.get('n_docs', 0)} docs), metric {cmp['metric']} "
        f"({arrow}), profile {cmp['profile']}",
        f"  A {cmp.get('model_a')}: {_fmt(cmp['a'])}",
        f"  B {cmp.get('model_b')}: {_fmt(cmp['b'])}",
        f"  B − A = {_fmt(cmp['difference'])}{_ci(cmp['ci95'])}  p = {_fmt(cmp['p_value'])}",
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
    score_result_file(data, profiles=args.profile, n_bootstrap=args.n_bootstrap, seed=args.seed,
                      errors_as_empty=args.errors_as_empty, workers=args.workers,
                      table_time_limit_s=args.table_time_limit_s)
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
    cli_args = parse_args(CountScoreArgs)  # bad flags, profiles or metrics exit 2 with "did you mean ..."
    try:
        main(cli_args)
    except (ValueError, KeyError, OSError) as exc:  # ResultsError (unreadable file), a sample without a label, ...
        print(f"count_score.py: error: {exc}", file=sys.stderr)
        sys.exit(1)
