"""Compare the splits of an OCR dataset: sizes, label lengths, characters, scripts, elements and leakage.

    python core/data_analysis/analyze_train_test_data.py --train data/input/train.json --test data/input/test.json
    python core/data_analysis/analyze_train_test_data.py --train a.json --val v.json --test b.json --output_dir out/

Per split: sample and document counts, label length distribution, character frequency, script mix (Traditional-only
/ Simplified-only / shared Han / Latin / digits; definitions in lib/analysis.py), element mix. Between training
(train + val) and test: character coverage (test characters never seen in training) and leakage — documents
(`doc_id`) or images in both, identical labels, near-duplicate labels (similarity >= --near_threshold).
Writes `report.md`, `summary.json` and PNG plots (label lengths, samples per document, script and element mix)
to --output_dir; exits 2 with --fail_on_leak when test leaks.
"""

from __future__ import annotations

import dataclasses
import sys

from lib.config import field, format_config, parse_args


@dataclasses.dataclass
class AnalyzeArgs:
    train: str = field("data/input/train.json", help="training split (raw or split format)")
    test: str = field("data/input/test.json", help="test split")
    val: str | None = field(None, help="optional validation split (counted as training for coverage and leakage)")
    output_dir: str = field("outputs/data_analysis", help="folder for report.md, summary.json and the plots")
    near_threshold: float = field(0.9, help="labels at least this similar (0-1, rapidfuzz ratio) count as near-duplicates")
    min_label_len: int = field(10, help="labels shorter than this are not checked for duplicates (too generic)")
    prefix_chars: int = field(300, help="near-duplicate check compares the first N characters of each label")
    fail_on_leak: bool = field(False, help="exit with status 2 when any test sample leaks from training")
    plots: bool = field(True, help="write PNG plots (matplotlib)")


def _plots(stats: dict, out, names: list[str]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name in names:
        lengths = stats[name]["_lengths"]
        if lengths:
            ax.hist(lengths, bins=40, alpha=0.55, label=f"{name} (n={len(lengths)})")
    ax.set_xlabel("label length (characters, whitespace and markup removed)")
    ax.set_ylabel("samples")
    ax.set_title("Label length distribution")
    ax.legend()
    fig.tight_layout()
    p = out / "label_length_distribution.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    files.append(p.name)

    # The original's per-document plots: how many samples each source document contributes, per split.
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        counts = sorted(stats[name]["_per_doc"].values(), reverse=True)
        ax.bar(range(len(counts)), counts, color="#4878a8")
        ax.set_title(f"{name}: {len(counts)} documents")
        ax.set_xlabel("document (sorted)")
        ax.set_ylabel("samples")
    fig.tight_layout()
    p = out / "samples_per_document.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    files.append(p.name)

    for key, title, fname in (("script_mix_share", "Script mix (share of characters)", "script_mix.png"),
                              ("elements", "Element mix (samples)", "element_mix.png")):
        cats = sorted({c for n in names for c in stats[n][key]})
        fig, ax = plt.subplots(figsize=(9, 4.5))
        width = 0.8 / max(1, len(names))
        for k, name in enumerate(names):
            vals = [stats[name][key].get(c, 0) for c in cats]
            ax.bar([i + k * width for i in range(len(cats))], vals, width=width, label=name)
        ax.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(cats))])
        ax.set_xticklabels(cats)
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
        p = out / fname
        fig.savefig(p, dpi=110)
        plt.close(fig)
        files.append(p.name)
    return files


def _report(summary: dict, names: list[str]) -> str:
    L = ["# Train/test data analysis", ""]
    L.append("| split | samples | documents | mean len | median | p90 | max | unique chars | Hant | Hans | Han | Latin | digits |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in names:
        s = summary["splits"][n]
        m, sh = s["length"], s["script_mix_share"]
        L.append(f"| {n} | {s['samples']} | {s['documents']} | {m['mean']} | {m['median']} | {m['p90']} | {m['max']} | "
                 f"{s['chars_unique']} | {sh['hant']:.1%} | {sh['hans']:.1%} | {sh['han']:.1%} | {sh['latin']:.1%} | "
                 f"{sh['digit']:.1%} |")
    L += ["", "## Elements and label scripts", ""]
    for n in names:
        s = summary["splits"][n]
        spd = s["samples_per_document"]
        L.append(f"- **{n}**: elements {s['elements']}; label scripts {s['label_scripts']}; length buckets "
                 f"{s['length_buckets']}; samples per document: mean {spd['mean']}, max {spd['max']}")
    cov = summary["coverage"]
    L += ["", "## Character coverage (test vs training)", "",
          f"- test uses {cov['test_unique_chars']} distinct characters; **{cov['unseen_unique_chars']}** "
          f"({cov['unseen_unique_share']:.1%}) never occur in training",
          f"- those make up {cov['unseen_occurrences']} character occurrences = **{cov['unseen_occurrence_share']:.2%}** "
          f"of the test text (covered: {cov['covered_occurrence_share']:.2%})",
          f"- most frequent unseen: {' '.join(f'{c}×{k}' for c, k in cov['top_unseen'][:20]) or '(none)'}"]
    lk = summary["leakage"]
    L += ["", "## Leakage (test vs training)", "",
          f"- documents in both: **{lk['n_shared_documents']}** ({lk['test_samples_from_shared_documents']} test samples)"
          + (f": {', '.join(lk['shared_documents'][:10])}" if lk['shared_documents'] else ""),
          f"- images in both: **{lk['n_shared_images']}**",
          f"- test labels identical to a training label: **{lk['exact_duplicate_labels']}**",
          f"- test labels near-duplicate (similarity >= {lk['near_threshold']}) of a training label: "
          f"**{lk['near_duplicate_labels']}**",
          f"- test samples affected by any of these: **{lk['leaky_test_samples']}** of {summary['splits']['test']['samples']}"]
    for ex in lk["near_examples"][:10]:
        L.append(f"  - {ex['test']} ~ {ex['train']} ({ex['similarity']}): {ex['label']}")
    L += ["", "## Most frequent characters", ""]
    for n in names:
        L.append(f"- {n}: " + " ".join(f"{c}×{k}" for c, k in summary["splits"][n]["top_chars"][:20]))
    if summary.get("plots"):
        L += ["", "## Plots", ""] + [f"![{p}]({p})" for p in summary["plots"]]
    return "\n".join(L) + "\n"


def main(args: AnalyzeArgs) -> dict:
    from collections import Counter
    from pathlib import Path

    from lib.analysis import char_coverage, leakage, split_stats
    from lib.config import resolved_config
    from lib.data import DataError, load_samples
    from lib.results import atomic_write_json

    print(format_config(args))
    paths = {"train": args.train, "val": args.val, "test": args.test}
    data = {}
    for name, path in paths.items():
        if path is None:
            continue
        try:
            data[name] = load_samples(path)
        except DataError as exc:
            raise SystemExit(f"error: {exc}")
    names = [n for n in ("train", "val", "test") if n in data]
    stats = {n: split_stats(data[n]) for n in names}
    training = data["train"] + data.get("val", [])
    train_chars: Counter = stats["train"]["_chars"] + (stats["val"]["_chars"] if "val" in stats else Counter())
    summary = {
        "files": {n: str(paths[n]) for n in names},
        "splits": {n: {k: v for k, v in stats[n].items() if not k.startswith("_")} for n in names},
        "coverage": char_coverage(train_chars, stats["test"]["_chars"]),
        "leakage": leakage(training, data["test"], near_threshold=args.near_threshold, min_len=args.min_label_len,
                           prefix=args.prefix_chars),
        "config": resolved_config(args),
    }
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.plots:
        summary["plots"] = _plots(stats, out, names)
    atomic_write_json(summary, out / "summary.json")
    report = _report(summary, names)
    (out / "report.md").write_text(report, encoding="utf-8")
    print(report)
    print(f"wrote {out / 'report.md'}, {out / 'summary.json'}" + (f" and {len(summary['plots'])} plots" if args.plots else ""))
    if args.fail_on_leak and summary["leakage"]["leaky_test_samples"]:
        print(f"error: {summary['leakage']['leaky_test_samples']} test sample(s) leak from training", file=sys.stderr)
        raise SystemExit(2)
    return summary


if __name__ == "__main__":
    main(parse_args(AnalyzeArgs, sys.argv[1:]))
