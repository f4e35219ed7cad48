"""The original's results table, reproduced: reader -> + SFT -> + SFT with the search's best config, next to
PP-OCRv6 (page and line modes) and Tesseract, on one held-out synthetic 公文 test set of pages and elements.

    python -m core.benchmarks.bench_results_table --work_dir outputs/results_table          # Dev VM: ~50 min
    python -m core.benchmarks.bench_results_table --n_test_elements 40 --n_test_pages 2 --n_train_elements 40 \
        --n_trials 1 --max_steps 4 --work_dir /tmp/rt                                           # a smoke run

Steps, each with the project's own scripts:
1. test set: `core/synth_data.py` element crops (`configs/synth/elements.yaml`: text, table, seal, signature,
   footer) and whole pages of the same documents (seed `--test_seed`) -> one test file;
2. training set: element crops of other documents (seed `--train_seed`), turned into line crops for the reader by
   `lib/train/line_labels.py` (detected lines paired with label lines, every pairing checked by PP-OCRv6's
   recogniser; what cannot be paired is skipped and counted), split by document (core/split_dataset.py);
3. `core/evaluate.py --mode hf` with the shipped reader (no domain SFT);
4. `core/gemma_hyperparameter_search.py` over lr / schedule / warm-up (`configs/results_table/reader_search.json`),
   its first trial the fixed config (`configs/results_table/reader_sft.json`): that trial is "+ SFT", the best trial
   is "+ SFT + search" (each trial is a full fine-tune of the same length);
5. the same test file through both fine-tuned readers, PP-OCRv6 page mode (detector + recogniser + the project's
   reading order; tables as an HTML grid), PP-OCRv6 line mode (recogniser only) and Tesseract;
6. one table (micro CER with document-bootstrap CIs, bag-F1, exact match, TEDS on tables, seal NED, loops, per
   element) and paired p-values (document-level sign-flip permutations) of each reader row against PP-OCRv6 page mode
   (`lib.metrics.scoring.paired_comparison`), written to `<work_dir>/results_table.md` and `summary.json`.
Documents of the test set never occur in training (checked; exit 1 otherwise). Every result file keeps its journal:
an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import sys
import time
from pathlib import Path

from lib.config import field, parse_args
from lib.utils.run import evaluate_with_script, run_showing_tail, split_with_script

ROOT = Path(__file__).resolve().parents[2]
CFG = ROOT / "configs" / "results_table"


@dataclasses.dataclass
class ResultsTableArgs:
    """Reproduce the original's results table on held-out synthetic 公文 pages and elements."""

    work_dir: str = field("outputs/results_table", help="everything is written here")
    model: str = field("embedded/gemma3-reader", help="the base reader (shipped name or model folder)")
    n_test_elements: int = field(480, help="test element crops")
    n_test_pages: int = field(24, help="test pages (the same documents as the first test elements)")
    n_train_elements: int = field(900, help="training element crops (other documents), before line pairing")
    test_seed: int = field(7001, help="synth seed of the test documents")
    train_seed: int = field(7002, help="synth seed of the training documents")
    synth_config: str = field(str(ROOT / "configs" / "synth" / "elements.yaml"), help="synth config of both sets")
    text_crops_per_page: int = field(6, help="training set: text paragraphs cropped per page (more lines to learn)")
    search_config: str = field(str(CFG / "reader_search.json"), help="search space + fixed training config")
    n_trials: int = field(3, help="search trials (the first is the fixed config)")
    max_steps: int | None = field(None, help="override every trial's max_steps (smoke runs)")
    max_new_tokens: int = field(96, help="reader: tokens per folded line")
    batch_size: int = field(32, help="evaluation batch size")
    val_fraction: float = field(0.15, help="validation share of the training documents (the search ranks trials on it)")
    seed: int = field(0, help="split seed")


def _evaluate(name: str, extra: list[str], test_file: Path, work: Path, log) -> Path:
    return evaluate_with_script(name, extra, test_file, work, log, cwd=ROOT, n=1)


def _synth(out: Path, n: int, seed: int, granularity: str, args: ResultsTableArgs, log, extra=()) -> Path:
    if not (out / "data.json").is_file():
        run_showing_tail([sys.executable, "core/synth_data.py", "--config", args.synth_config, "--output_dir",
                          str(out), "--n", str(n), "--seed", str(seed), "--granularity", granularity,
                          "--no-progress", *extra], log, cwd=ROOT, n=1)
    return out / "data.json"


def _row(res: dict, profile: str = "standard") -> dict:
    s = res["scores"][profile]
    el = {k: {"n": v["n"], "cer": v["cer_micro"]} for k, v in (s.get("slices", {}).get("element") or {}).items()}
    return {"cer": s["cer_micro"], "ci": s.get("ci95", {}).get("cer_micro"), "f1": s.get("bag_f1_macro"),
            "exact": s.get("exact_match"), "n": s["n"], "errors": s.get("n_errors", 0),
            "teds": (s.get("tables") or {}).get("teds_macro"), "teds_s": (s.get("tables") or {}).get("teds_s_macro"),
            "seal_ned": (s.get("seals") or {}).get("seal_ned_macro"),
            "loop_rate": (s.get("anatomy") or {}).get("repetition_loop_rate"), "elements": el}


def main(args: ResultsTableArgs) -> dict:
    from lib.data import load_samples
    from lib.metrics.scoring import paired_comparison
    from lib.train.line_labels import line_rows_from_labels
    from lib.results import atomic_write_json

    t0 = time.time()
    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:6.1f}s] {msg}", flush=True)

    # 1. the test set: element crops + pages of held-out documents, one file
    t = time.time()
    el_file = _synth(work / "test_elements", args.n_test_elements, args.test_seed, "element", args, log)
    pg_file = _synth(work / "test_pages", args.n_test_pages, args.test_seed, "page", args, log)
    test = load_samples(el_file) + load_samples(pg_file)
    test_file = work / "test.json"
    atomic_write_json([s.to_row(relative_to=work, fmt="split") for s in test], test_file)
    test = load_samples(test_file)
    counts: dict[str, int] = {}
    for s in test:
        counts[s.element or "text"] = counts.get(s.element or "text", 0) + 1
    log(f"test: {len(test)} samples from {len({s.doc_id for s in test})} documents: {counts}")

    # 2. training lines from other documents
    train_raw = _synth(work / "train_elements", args.n_train_elements, args.train_seed, "element", args, log,
                       extra=["--text_crops_per_page", str(args.text_crops_per_page)])
    lines_dir = work / "train_lines"
    lines_file = lines_dir / "data.json"
    if not lines_file.is_file():
        rows, stats = line_rows_from_labels(load_samples(train_raw), lines_dir)
        atomic_write_json(rows, lines_file)
        atomic_write_json(stats, lines_dir / "pairing_stats.json")
    stats = json.loads((lines_dir / "pairing_stats.json").read_text(encoding="utf-8"))
    log(f"training lines: {stats['lines']} from {sum(stats['images_used'].values())} of {stats['images_total']} "
        f"element crops; skipped: {stats['images_skipped']}")
    split = work / "split"
    train, val, _ = split_with_script(lines_file, split, seed=args.seed, val_fraction=args.val_fraction, test_fraction=0.0,
                                      printer=log, cwd=ROOT)
    if not val:
        raise ValueError(f"--val_fraction {args.val_fraction}: the validation split of {lines_file} is empty; the search "
                         "needs validation lines (raise --val_fraction or --n_train_elements)")
    shared = sorted({s.doc_id for s in test} & {s.doc_id for s in train + val})
    train_strings = {s.text for s in train}
    test_lines = [ln.strip() for s in test for ln in s.text.split("\n") if ln.strip()]
    seen = sum(ln in train_strings for ln in test_lines)
    log(f"test documents in training: {len(shared)}; test label lines that are also training lines: {seen} of "
        f"{len(test_lines)} (short 公文 lines recur: 正本：, 說明：)")
    timings["data_s"] = time.time() - t

    hf = ["--mode", "hf", "--max-new-tokens", str(args.max_new_tokens), "--batch-size", str(args.batch_size)]
    files: dict[str, Path] = {}
    # 3. the reader without domain SFT
    t = time.time()
    files["reader"] = _evaluate("reader", [*hf, "--model-name", args.model], test_file, work, log)
    timings["eval_reader_s"] = time.time() - t

    # 4. the search; its first trial is the fixed config (= plain SFT)
    t = time.time()
    search_dir = work / "search"
    best_file = search_dir / "rt" / "best_params.json"
    if not best_file.is_file():
        train_args = {"val_data": str(split / "val.json")}
        if args.max_steps:
            train_args.update(max_steps=args.max_steps, eval_steps=args.max_steps, save_steps=args.max_steps)
        run_showing_tail([sys.executable, "core/gemma_hyperparameter_search.py", "--config", args.search_config,
                          "--study-name", "rt", "--n-trials", str(args.n_trials), "--enqueue-default", "--keep-all",
                          "--model-name", args.model, "--input-data", str(split / "train.json"),
                          "--train-args", json.dumps(train_args), "--storage", f"sqlite:///{search_dir / 'rt.db'}",
                          "--base-output-dir", str(search_dir), "--studies-dir", str(search_dir),
                          "--trial-timeout", "0"], log, cwd=ROOT, n=3)
    if not best_file.is_file():
        raise ValueError(f"the search finished without a best trial (see {search_dir / 'rt'}/trial_*/train.log)")
    best = json.loads(best_file.read_text(encoding="utf-8"))
    sft_dir = search_dir / "rt" / "trial_0000" / "model"
    best_dir = Path(best["best_adapter_dir"]) / "model"
    timings["search_s"] = time.time() - t
    log(f"search: best trial {best['best_trial']} ({best['best_params']}), val CER {best['best_value']:.4f}")

    # 5. both fine-tuned readers and the baselines on the same test file
    t = time.time()
    files["reader_sft"] = _evaluate("reader_sft", [*hf, "--model-name", str(sft_dir)], test_file, work, log)
    files["reader_sft_search"] = (files["reader_sft"] if best["best_trial"] == 0 else
                                  _evaluate("reader_sft_search", [*hf, "--model-name", str(best_dir)], test_file,
                                            work, log))
    timings["eval_sft_s"] = time.time() - t
    t = time.time()
    files["paddle_page"] = _evaluate("paddle_page", ["--mode", "paddleocr", "--paddle-mode", "page"], test_file, work, log)
    files["paddle_line"] = _evaluate("paddle_line", ["--mode", "paddleocr", "--paddle-mode", "line"], test_file, work, log)
    files["tesseract"] = _evaluate("tesseract", ["--mode", "tesseract", "--tesseract-lang", "chi_tra"], test_file,
                                   work, log)
    timings["eval_baselines_s"] = time.time() - t

    # 6. the table
    res = {k: json.loads(p.read_text(encoding="utf-8")) for k, p in files.items()}
    rows = {k: _row(r) for k, r in res.items()}
    ref = res["paddle_page"]
    pvals = {k: paired_comparison(ref, res[k], metric="cer") for k in ("reader", "reader_sft", "reader_sft_search")}
    label = {"reader": f"reader, no domain SFT ({args.model})", "reader_sft": "reader + SFT (fixed config)",
             "reader_sft_search": f"reader + SFT + search (best of {args.n_trials} trials)",
             "paddle_page": "PP-OCRv6 page mode (det + rec + reading order)", "paddle_line": "PP-OCRv6 line mode (rec only)",
             "tesseract": "Tesseract 5 chi_tra"}
    els = sorted({e for r in rows.values() for e in r["elements"]})

    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}"

    lines = [f"Held-out synthetic 公文: {len(test)} samples ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}) "
             f"from {len({s.doc_id for s in test})} documents never trained on. Micro CER %, standard profile, "
             "95 % document-bootstrap CI; p: paired test of the row against PP-OCRv6 page mode on the same images (document-level sign-flip permutations).", "",
             "| engine | CER % (95 % CI) | p vs PP-OCRv6 page | bag-F1 % | exact % | TEDS % (tables) | seal NED % | "
             "loops % | " + " | ".join(f"{e} CER %" for e in els) + " |",
             "|---|---|---|---|---|---|---|---|" + "---|" * len(els)]
    for k, r in rows.items():
        ci = f" ({pct(r['ci'][0])}–{pct(r['ci'][1])})" if r.get("ci") else ""
        p = pvals.get(k, {}).get("p_value")
        lines.append(f"| {label[k]} | {pct(r['cer'])}{ci} | {'-' if p is None else f'{p:.3g}'} | {pct(r['f1'])} | "
                     f"{pct(r['exact'])} | {pct(r['teds'])} | {pct(r['seal_ned'])} | {pct(r['loop_rate'])} | "
                     + " | ".join(pct(r["elements"].get(e, {}).get("cer")) for e in els) + " |")
    table = "\n".join(lines)
    (work / "results_table.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    summary = {"rows": rows, "paired_vs_paddle_page": {k: {kk: v.get(kk) for kk in ("a", "b", "difference", "ci95",
                                                                                     "p_value", "n_docs")}
                                                       for k, v in pvals.items()},
               "best_trial": best, "pairing": stats, "n_train_lines": len(train), "n_val_lines": len(val),
               "test_counts": counts, "shared_docs": shared, "test_lines_seen_in_training": seen,
               "timings_s": {**timings, "total": time.time() - t0}, "cpu_count": os.cpu_count(),
               "files": {k: str(v) for k, v in files.items()}}
    atomic_write_json(summary, work / "summary.json")
    if shared:
        print(f"FAIL: {len(shared)} test documents occur in training, e.g. {shared[:3]}", file=sys.stderr)
    return summary


if __name__ == "__main__":
    from lib.errors import cli_errors

    with cli_errors("bench_results_table.py", extra=(FileNotFoundError, ValueError)):
        out = main(parse_args(ResultsTableArgs, prog="bench_results_table.py"))
    sys.exit(1 if out["shared_docs"] else 0)
