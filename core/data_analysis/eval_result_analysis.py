"""Where does a model fail? Slice an evaluation result by element, layout, label length and script.

    python core/data_analysis/eval_result_analysis.py --result_path results/evaluation/test/gemma3_sft.json
    python core/data_analysis/eval_result_analysis.py --result_path r.json --threshold 0.5 --dataset data/input/test.json

For every slice: n, documents, micro CER with its 95 % CI and macro bag-of-characters F1 with its CI (the metric
core's document-level bootstrap), exact match, failures (F1 <= --threshold). Plus the worst-k samples, the top
confusion pairs and the error-op mix (substitutions / deletions / insertions) of the metric core's error anatomy.

Outputs (the original's failure export is kept):
- `--output` (default `<result folder>/failcase/failcase_f1_<threshold>_<result stem>.json`, or
  `results/evaluation/test_data=<N>/failcase/...` with --test-data): the failed samples (F1 <= threshold) with the
  original's keys (failcase_count, f1_distribution, focus_layout_distribution, ...) plus `slices`.
- `--report_dir` (default `<output folder>/<result stem>_analysis/`): report.md, analysis.json and PNG plots.

Scores are read from the result file when it has them for --profile (`scores[profile]`, as written by evaluate.py /
count_score.py), otherwise computed with lib.utils.count_metric.score_result_file. (The original read a per-sample
key `cer` that no result file has, so its average CER was always 0.)
"""

from __future__ import annotations

import dataclasses
import sys

from lib.config import field, format_config, parse_args

F1_RANGES = (("0.0", None, 0.0), ("0.0-0.2", 0.0, 0.2), ("0.2-0.4", 0.2, 0.4), ("0.4-0.6", 0.4, 0.6),
             ("0.6-0.8", 0.6, 0.8), ("0.8-1.0", 0.8, 1.0))


@dataclasses.dataclass
class EvalAnalysisArgs:
    result_path: str = field(None, help="result JSON written by evaluate.py / count_score.py (or the original's)")
    threshold: float = field(0.6, help="a sample fails when its bag-of-characters F1 <= threshold")
    output: str | None = field(None, help="failed-samples JSON (default: see the module docstring)")
    test_data: str | None = field(None, help="original flag: write to results/evaluation/test_data=<N>/failcase/")
    report_dir: str | None = field(None, help="folder for report.md, analysis.json and the plots")
    profile: str = field("standard", help="normalization profile of the metrics (seed | standard | lenient)")
    dataset: str | None = field(None, help="dataset JSON to take element/doc_id/layout from when the result lacks them")
    rescore: bool = field(False, help="recompute scores even when the result file has them")
    n_bootstrap: int = field(1000, help="bootstrap resamples for the 95 %% CIs (0 = no CIs)")
    seed: int = field(0, help="bootstrap seed")
    worst_k: int = field(20, help="how many worst samples (highest CER) to list")
    plots: bool = field(True, help="write PNG plots (matplotlib)")

    def __post_init__(self):
        if not self.result_path:
            raise ValueError("--result_path is required")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"--threshold is an F1 value in [0, 1], got {self.threshold}")


def _default_output(args: EvalAnalysisArgs):
    from pathlib import Path

    rp = Path(args.result_path)
    test_data = args.test_data
    if test_data is None:
        for parent in rp.parents:
            if parent.name.startswith("test_data="):
                test_data = parent.name.split("=", 1)[1]
                break
    folder = Path(f"results/evaluation/test_data={test_data}/failcase") if test_data else rp.parent / "failcase"
    return folder / f"failcase_f1_{args.threshold}_{rp.stem}.json"


def _f1_bucket(f1: float) -> str:
    for name, lo, hi in F1_RANGES:
        if lo is None and f1 == hi:
            return name
        if lo is not None and lo < f1 <= hi:
            return name
    return "0.0"


def analyze(result: dict, args: EvalAnalysisArgs) -> dict:
    """All numbers of the analysis (also used by the tests)."""
    import numpy as np

    from lib.analysis import label_script, layout_tags, length_bucket, slice_table

    samples = result["samples"]
    profile = args.profile
    have = all(s.get("error") or (isinstance(s.get("scores"), dict) and s["scores"].get(profile)) for s in samples)
    prof_scores = (result.get("scores") or {}).get(profile)
    if args.rescore or not have or not prof_scores:
        from lib.metrics import score_result_file

        score_result_file(result, profiles=(profile,), n_bootstrap=args.n_bootstrap, seed=args.seed)
        prof_scores = result["scores"][profile]
        scored_here = True
    else:
        scored_here = False
    pos = [i for i, s in enumerate(samples) if not s.get("error") and s.get("scores", {}).get(profile)]
    sc = [samples[i]["scores"][profile] for i in pos]
    edits = np.array([x["edits"] for x in sc], dtype=np.float64)
    len_gt = np.array([x["len_gt"] for x in sc], dtype=np.float64)
    f1 = np.array([x["bag_f1"] for x in sc], dtype=np.float64)
    exact = np.array([x["exact"] for x in sc], dtype=np.float64)
    cer = np.array([x["cer"] for x in sc], dtype=np.float64)
    fail = f1 <= args.threshold
    doc_ids = [samples[i].get("doc_id") or samples[i].get("image_path") for i in pos]

    keys = {"element": lambda s: [s.get("element") or "(none)"],
            "layout": lambda s: [t for t in layout_tags(s.get("layout", s.get("focus_layout")))
                                 if not t.startswith(("len_", "script_"))] or ["(none)"],
            "length_bucket": lambda s: [length_bucket(s.get("label") or "")],
            "script": lambda s: [label_script(s.get("label") or "")]}
    slices = {}
    for key, fn in keys.items():
        groups: dict[str, list[int]] = {}
        for k, i in enumerate(pos):
            for name in fn(samples[i]):
                groups.setdefault(name, []).append(k)
        slices[key] = slice_table(groups, edits, len_gt, f1, exact, doc_ids, fail, n_bootstrap=args.n_bootstrap,
                                  seed=args.seed)
    overall = slice_table({"all": list(range(len(pos)))}, edits, len_gt, f1, exact, doc_ids, fail,
                          n_bootstrap=args.n_bootstrap, seed=args.seed).get("all", {})
    order = sorted(range(len(pos)), key=lambda k: (-cer[k], -edits[k]))[:args.worst_k]
    worst = [{"image_path": samples[pos[k]].get("image_path"), "element": samples[pos[k]].get("element"),
              "cer": round(float(cer[k]), 4), "f1": round(float(f1[k]), 4), "edits": int(edits[k]),
              "len_gt": int(len_gt[k]), "label": (samples[pos[k]].get("label") or "")[:120],
              "prediction": (samples[pos[k]].get("prediction") or "")[:120]} for k in order]
    anatomy = prof_scores.get("anatomy") or {}
    return {"profile": profile, "scored_here": scored_here, "n_samples": len(samples), "n_scored": len(pos),
            "n_errors": len(samples) - len(pos), "overall": overall, "slices": slices, "worst": worst,
            "error_ops": {k: anatomy.get(k) for k in ("substitutions", "deletions", "insertions", "substitution_rate",
                                                       "deletion_rate", "insertion_rate")},
            "top_confusions": (anatomy.get("top_confusions") or [])[:20],
            "f1_distribution": {name: int(sum(1 for v in f1 if _f1_bucket(v) == name)) for name, _, _ in F1_RANGES},
            "fail_positions": [pos[k] for k in range(len(pos)) if fail[k]]}


def _fmt_ci(ci):
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "–"


def _report(a: dict, result: dict, args: EvalAnalysisArgs, plots: list[str]) -> str:
    o = a["overall"]
    L = [f"# Result analysis: {result.get('model_name', '?')}", "",
         f"- file: `{args.result_path}`; profile `{a['profile']}`; {a['n_scored']} scored samples, {a['n_errors']} errors"
         f" (excluded); scores {'computed here' if a['scored_here'] else 'read from the file'}",
         f"- micro CER **{o.get('cer_micro', float('nan')):.4f}** 95 % CI {_fmt_ci(o.get('cer_ci95'))}; "
         f"bag F1 **{o.get('bag_f1_macro', float('nan')):.4f}** CI {_fmt_ci(o.get('bag_f1_ci95'))}; "
         f"exact match {o.get('exact_match', 0):.3f}",
         f"- failures (F1 <= {args.threshold}): **{o.get('n_fail', 0)}** ({o.get('fail_rate', 0):.1%})", ""]
    for key, table in a["slices"].items():
        L += [f"## By {key}", "", "| slice | n | docs | CER (micro) | 95 % CI | F1 | 95 % CI | exact | fail rate |",
              "|---|---|---|---|---|---|---|---|---|"]
        for name, r in table.items():
            c = "–" if r["cer_micro"] is None else f"{r['cer_micro']:.4f}"
            L.append(f"| {name} | {r['n']} | {r['n_docs']} | {c} | {_fmt_ci(r['cer_ci95'])} | {r['bag_f1_macro']:.4f} | "
                     f"{_fmt_ci(r['bag_f1_ci95'])} | {r['exact_match']:.3f} | {r['fail_rate']:.1%} |")
        L.append("")
    ops = a["error_ops"]
    if ops.get("substitutions") is not None:
        L += ["## Error operations", "",
              f"substitutions {ops['substitutions']} ({ops['substitution_rate']:.4f} per GT char), deletions "
              f"{ops['deletions']} ({ops['deletion_rate']:.4f}), insertions {ops['insertions']} ({ops['insertion_rate']:.4f})", ""]
    if a["top_confusions"]:
        L += ["## Top confusion pairs (ground truth → prediction)", "", "| GT | pred | count | S/T variant |", "|---|---|---|---|"]
        L += [f"| {c[0]} | {c[1]} | {c[2]} | {'yes' if len(c) > 3 and c[3] else ''} |" for c in a["top_confusions"]]
        L.append("")
    L += [f"## Worst {len(a['worst'])} samples (by CER)", "", "| image | element | CER | F1 | label | prediction |",
          "|---|---|---|---|---|---|"]
    for w in a["worst"]:
        esc = lambda t: t.replace("|", "\\|").replace("\n", "⏎")[:50]  # noqa: E731
        L.append(f"| {w['image_path']} | {w['element'] or ''} | {w['cer']:.3f} | {w['f1']:.3f} | {esc(w['label'])} | "
                 f"{esc(w['prediction'])} |")
    if plots:
        L += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(L) + "\n"


def _plots(a: dict, out) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    keys = [k for k, t in a["slices"].items() if t]
    fig, axes = plt.subplots(len(keys), 1, figsize=(9, 2.6 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        items = [(n, r) for n, r in a["slices"][key].items() if r["cer_micro"] is not None][:15]
        names = [n for n, _ in items]
        vals = [r["cer_micro"] for _, r in items]
        lo = [r["cer_micro"] - r["cer_ci95"][0] if r["cer_ci95"] else 0 for _, r in items]
        hi = [r["cer_ci95"][1] - r["cer_micro"] if r["cer_ci95"] else 0 for _, r in items]
        ax.bar(range(len(vals)), vals, yerr=[lo, hi], capsize=3, color="#4878a8")
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels([f"{n}\n(n={r['n']})" for n, r in items], fontsize=8)
        ax.set_ylabel("micro CER")
        ax.set_title(f"CER by {key} (95 % CI, document bootstrap)", fontsize=10)
    fig.tight_layout()
    p = out / "cer_by_slice.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    files.append(p.name)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    dist = a["f1_distribution"]
    ax1.bar(list(dist), list(dist.values()), color="#6a9f58")
    ax1.set_title("F1 distribution (samples)")
    ops = a["error_ops"]
    if ops.get("substitutions") is not None:
        ax2.bar(["substitutions", "deletions", "insertions"], [ops["substitutions"], ops["deletions"], ops["insertions"]],
                color=["#c44e52", "#dd8452", "#8172b3"])
    ax2.set_title("Error operations (characters)")
    fig.tight_layout()
    p = out / "f1_and_error_ops.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    files.append(p.name)
    return files


def main(args: EvalAnalysisArgs) -> dict:
    import os
    from pathlib import Path

    from lib.results import ResultsError, atomic_write_json, load_results

    print(format_config(args))
    try:
        result = load_results(args.result_path)
    except ResultsError as exc:
        raise SystemExit(f"error: {exc}")
    if args.dataset:
        from lib.data import load_samples

        index = {}
        for s in load_samples(args.dataset):
            index[s.raw_image_path] = s
            index.setdefault(os.path.basename(s.raw_image_path), s)
        for smp in result["samples"]:
            d = index.get(smp.get("image_path", "")) or index.get(os.path.basename(smp.get("image_path", "")))
            if d is not None:
                smp.setdefault("element", d.element)
                smp.setdefault("doc_id", d.doc_id)
                if not smp.get("layout") and d.layout:
                    smp["layout"] = d.layout
    a = analyze(result, args)
    samples = result["samples"]
    failcases = [samples[i] for i in a["fail_positions"]]
    total = len(samples)

    # The original's export, with the layout table computed from real scores.
    from lib.analysis import layout_tags

    all_layout: dict[str, int] = {}
    for s in samples:
        for t in layout_tags(s.get("layout", s.get("focus_layout"))) or ["unknown"]:
            all_layout[t] = all_layout.get(t, 0) + 1
    groups: dict[str, list[dict]] = {}
    for s in failcases:
        for t in layout_tags(s.get("layout", s.get("focus_layout"))) or ["unknown"]:
            groups.setdefault(t, []).append(s)
    layout_stats = {t: {"failcase_count": len(items),
                        "failcase_percentage": round(len(items) / total * 100, 2) if total else 0,
                        "total_count": all_layout.get(t, 0),
                        "total_percentage": round(all_layout.get(t, 0) / total * 100, 2) if total else 0,
                        "fail_rate": round(len(items) / all_layout[t] * 100, 2) if all_layout.get(t) else 0,
                        "avg_f1": round(sum(x.get("f1_score") or 0 for x in items) / len(items), 4),
                        "avg_cer": round(sum(x.get("cer_score") or 0 for x in items) / len(items), 4)}
                    for t, items in groups.items()}
    export = {"source_file": args.result_path, "total_samples": total, "failcase_count": len(failcases),
              "failcase_percentage": round(len(failcases) / total * 100, 2) if total else 0,
              "pass_count": a["n_scored"] - len(failcases), "n_errors": a["n_errors"], "threshold": args.threshold,
              "profile": args.profile, "f1_distribution": a["f1_distribution"],
              "focus_layout_distribution": layout_stats, "focus_layout_groups": groups,
              "overall_cer": result.get("overall_cer"), "overall_f1": result.get("overall_f1"),
              "model_name": result.get("model_name"), "timestamp": result.get("timestamp"),
              "slices": a["slices"], "samples": failcases}
    out_json = Path(args.output) if args.output else _default_output(args)
    atomic_write_json(export, out_json)
    report_dir = Path(args.report_dir) if args.report_dir else out_json.parent / f"{Path(args.result_path).stem}_analysis"
    report_dir.mkdir(parents=True, exist_ok=True)
    plots = _plots(a, report_dir) if args.plots and a["n_scored"] else []
    report = _report(a, result, args, plots)
    (report_dir / "report.md").write_text(report, encoding="utf-8")
    atomic_write_json({k: v for k, v in a.items() if k != "fail_positions"}, report_dir / "analysis.json")
    print(report)
    print(f"failed samples (F1 <= {args.threshold}): {len(failcases)} of {a['n_scored']} -> {out_json}")
    print(f"report: {report_dir / 'report.md'}")
    a.update({"failcase_path": str(out_json), "report_dir": str(report_dir), "failcase_count": len(failcases)})
    return a


if __name__ == "__main__":
    main(parse_args(EvalAnalysisArgs, sys.argv[1:]))
