"""README command 1: the original's workflow on a CPU — base reader -> SFT on your domain -> next to PP-OCRv6.

    python core/quickstart.py                     # writes outputs/quickstart/, prints the table, exit 1 if a check fails

Steps, each with the project's own scripts: render a labelled 公文 line set in a font the shipped reader never saw
in pretraining (`lib/reader/domain.py`; documents disjoint from pretraining and its tests) -> core/split_dataset.py
(train/val/test by document) -> core/evaluate.py --mode hf with the shipped reader `embedded/gemma3-reader` (no
domain SFT) -> full fine-tune of the reader (`core/sft_gemma.py`'s run_training, configs/quickstart/reader_train.json)
-> core/evaluate.py --mode hf with the fine-tuned reader -> core/evaluate.py --mode paddleocr (PP-OCRv6, line mode:
these are line crops) and --mode tesseract (chi_tra, one line) on the same test images -> one table.

Checks (each can fail; exit status 1 if one does): the fine-tuned reader's micro CER is at most 0.9x the base
reader's and lower by a paired sign-flip test over documents (p < 0.05); the base reader reads the domain badly enough to be worth fine-tuning (CER >= 0.05); no test document
occurs in training (test lines whose text is also a training line are left out of the test file, and counted);
every backend scored every test image (no errors); the fine-tune took <= 10 min.
How the reader compares with PP-OCRv6 and Tesseract is printed, not checked: it is whatever it is.

The tiny from-scratch demo that this command used to run is `core/quickstart_tiny.py`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from lib.config import field, parse_args
from lib.utils.run import evaluate_with_script, run_showing_tail, split_with_script

ROOT = Path(__file__).resolve().parents[1]

BACKENDS = ("base", "finetuned", "paddleocr", "tesseract")


@dataclasses.dataclass
class QuickstartArgs:
    """Fine-tune the shipped reader on one unseen 公文 font and compare it with PP-OCRv6 and Tesseract."""

    work_dir: str = field("outputs/quickstart", help="everything is written here (data, model, results)")
    model: str = field("embedded/gemma3-reader", help="the base reader (a model folder or a shipped name)")
    train_config: str = field(str(ROOT / "configs" / "quickstart" / "reader_train.json"), help="training config")
    faces: list[str] = field(default_factory=lambda: ["BabelStone Han"],
                             help="font faces of the domain (held out of the reader's pretraining)")
    domain: str = field("fax", choices=["fax", "clean"], help="scan conditions (lib/reader/domain.py DOMAINS)")
    n_docs: int = field(480, help="synthetic 公文 documents rendered (12 lines each; training sees each line at most once)")
    val_fraction: float = field(0.03, help="validation share (documents)")
    test_fraction: float = field(0.1, help="test share (documents; scored at the end)")
    seed: int = field(0, help="data seed (documents, degradations, split)")
    max_steps: int | None = field(None, help="override the config's max_steps (shorter demo runs)")
    batch_size: int = field(32, help="evaluation batch size")
    baselines: list[str] = field(default_factory=lambda: ["paddleocr", "tesseract"],
                                 choices=["paddleocr", "tesseract"], help="baselines run on the same test images")
    threads: int = field(0, help="torch threads (0 = torch's default)")
    rebuild_data: bool = field(False, help="re-render the data even if it exists")



def _evaluate(name: str, extra: list[str], test_file: Path, work: Path, log) -> dict:
    out = evaluate_with_script(name, extra, test_file, work, log, cwd=ROOT)
    return json.loads(out.read_text(encoding="utf-8"))


def _score(res: dict) -> dict:
    std = res["scores"]["standard"]
    return {"cer": std["cer_micro"], "ci": (std.get("ci95") or {}).get("cer_micro"), "f1": std.get("bag_f1_macro"),
            "n": res["total_samples"], "errors": res.get("n_errors", 0) or 0}


def main(args: QuickstartArgs) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from lib.data import load_samples
    from lib.reader.domain import DOMAINS, build_domain_dataset
    from lib.reader.glyphs import PRETRAIN_HELD_OUT
    from lib.results import atomic_write_json

    bad = [f for f in args.faces if f not in PRETRAIN_HELD_OUT]
    if bad:
        raise ValueError(f"--faces: {bad} are not held out of the reader's pretraining; a domain face must be one of "
                         f"{list(PRETRAIN_HELD_OUT)}")
    if "tesseract" in args.baselines:  # before any work, not after the fine-tune: binary and chi_tra data, one line
        from lib.evaluation.backends import TesseractBackend

        TesseractBackend(lang="chi_tra", psm=7)
    t0 = time.time()
    timings: dict[str, float] = {}
    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:6.1f}s] {msg}", flush=True)

    # 1. data: one domain (an unseen font), documents of its own
    t = time.time()
    data_dir = work / "data"
    raw = data_dir / "data.json"
    if args.rebuild_data or not raw.is_file():
        info = build_domain_dataset(data_dir, faces=args.faces, n_docs=args.n_docs, seed=args.seed,
                                    degrade=DOMAINS[args.domain])
        log(f"data: {info['rows']} line images from {info['docs']} documents, fonts {info['faces']} -> {raw}")
    timings["data_s"] = time.time() - t

    # 2. split by document (the project's split script, as a user would run it)
    t = time.time()
    split = work / "split"
    train, val, test = split_with_script(raw, split, seed=args.seed, val_fraction=args.val_fraction,
                                         test_fraction=args.test_fraction, printer=log, cwd=ROOT)
    train_docs = {s.doc_id for s in train}
    train_strings = {s.text for s in train}
    shared_docs = sorted({s.doc_id for s in test} & train_docs)
    # short lines recur across documents ("說明：", "正本："): a test line whose text is also a training line
    # measures memory, not reading, so it is left out of the test file that every backend reads
    repeated = [s for s in test if s.text in train_strings]
    test = [s for s in test if s.text not in train_strings]
    test_file = split / "test_unseen.json"
    atomic_write_json([s.to_row(relative_to=split, fmt="split") for s in test], test_file)
    test = load_samples(test_file)
    log(f"split: {len(train)} train / {len(val)} val / {len(test)} test lines ({len(repeated)} test lines whose text "
        f"is also a training line left out); test documents in training: {len(shared_docs)}")
    timings["split_s"] = time.time() - t
    max_new = str(max(len(s.text) for s in test) + 8)
    hf = ["--mode", "hf", "--max-new-tokens", max_new, "--batch-size", str(args.batch_size)]

    # 3. the base reader, no domain SFT
    t = time.time()
    results = {"base": _evaluate("base", [*hf, "--model-name", args.model], test_file, work, log)}
    timings["evaluate_base_s"] = time.time() - t

    # 4. fine-tune (full: the reader is 14.6 M parameters)
    from lib.train import run_training
    from lib.train.args import LEGACY_KEYS, SFTArgs

    t = time.time()
    argv = ["--config", args.train_config, "--model_name", args.model, "--input_data", str(split / "train.json"),
            "--val_data", str(split / "val.json"), "--output_dir", str(work / "model")]
    if args.max_steps:
        argv += ["--max_steps", str(args.max_steps)]
    meta = run_training(parse_args(SFTArgs, argv, legacy_keys=LEGACY_KEYS), printer=log)
    timings["train_s"] = time.time() - t
    tuned = Path(meta["final_dir"])

    # 5. the fine-tuned reader, then the baselines, on the same test images
    t = time.time()
    results["finetuned"] = _evaluate("finetuned", [*hf, "--model-name", str(tuned)], test_file, work, log)
    timings["evaluate_finetuned_s"] = time.time() - t
    t = time.time()
    if "paddleocr" in args.baselines:
        results["paddleocr"] = _evaluate("paddleocr", ["--mode", "paddleocr", "--paddle-mode", "line"], test_file,
                                         work, log)
    if "tesseract" in args.baselines:
        results["tesseract"] = _evaluate("tesseract", ["--mode", "tesseract", "--tesseract-lang", "chi_tra",
                                                       "--tesseract-psm", "7"], test_file, work, log)
    timings["baselines_s"] = time.time() - t

    scores = {k: _score(v) for k, v in results.items()}
    base, tuned_cer = scores["base"]["cer"], scores["finetuned"]["cer"]
    from lib.metrics.scoring import paired_comparison

    # paired by test image, document-level sign-flip test: is the fine-tuned reader better than chance would make it?
    paired = paired_comparison(results["finetuned"], results["base"])
    total = time.time() - t0
    checks = {
        "finetuned_le_0.9x_base": tuned_cer <= 0.9 * base,
        "finetuned_better_paired_p_lt_0.05": paired["difference"] > 0 and paired["p_value"] < 0.05,
        "base_reads_domain_badly_cer_ge_0.05": base >= 0.05,
        "no_test_document_in_training": not shared_docs,
        "every_test_image_scored": all(s["errors"] == 0 and s["n"] == len(test) for s in scores.values()),
        "finetune_le_10_min": timings["train_s"] <= 600,
    }
    label = {"base": f"reader, no domain SFT ({args.model})", "finetuned": "reader + SFT on the domain (full)",
             "paddleocr": "PP-OCRv6 (rapidocr, line mode)", "tesseract": "Tesseract 5 chi_tra (psm 7)"}

    def ci(s):
        return f"[{s['ci'][0]:.4f}, {s['ci'][1]:.4f}]" if s.get("ci") else ""

    print()
    print("=" * 84)
    print(f"Quickstart: {len(test)} held-out line images of {len({s.doc_id for s in test})} unseen 公文 documents, "
          f"'{args.domain}' scans in {', '.join(args.faces)} (a font the reader never saw)")
    print(f"{'micro CER, standard profile (lower is better)':<48} {'CER':>7}  95% CI (bootstrap)")
    for k in BACKENDS:
        if k in scores:
            print(f"  {label[k]:<46} {scores[k]['cer']:7.4f}  {ci(scores[k])}")
    for s, r in list(zip(test, results["finetuned"].get("samples", [])))[:4]:
        b = next((x.get("prediction") for x in results["base"]["samples"] if x.get("image_path") == r.get("image_path")), None)
        print(f"    {s.text}\n      base: {b}\n      SFT:  {r.get('prediction')}")
    print(f"  time: {total:.0f} s total (data {timings['data_s']:.0f}, split {timings['split_s']:.0f}, base eval "
          f"{timings['evaluate_base_s']:.0f}, fine-tune {timings['train_s']:.0f}, fine-tuned eval "
          f"{timings['evaluate_finetuned_s']:.0f}, baselines {timings['baselines_s']:.0f}); {os.cpu_count()} CPUs, "
          f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"  fine-tuned vs base, paired over {paired['n']} images / {paired['n_docs']} documents: CER lower by "
          f"{paired['difference']:.4f}, sign-flip p = {paired['p_value']:.4f} (improved {paired['improved']}, "
          f"regressed {paired['regressed']})")
    print("  checks: " + ", ".join(f"{k} {'OK' if v else 'FAIL'}" for k, v in checks.items()))
    print("=" * 84)
    summary = {"scores": scores, "n_test_left_out_repeated": len(repeated), "faces": args.faces, "model": args.model, "n_train": len(train), "n_val": len(val),
               "n_test": len(test), "checks": checks, "timings_s": {**timings, "total": total},
               "paired_vs_base": {k: paired[k] for k in ("n", "n_docs", "difference", "p_value", "improved",
                                                         "regressed", "unchanged")},
               "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()),
               "train_metadata": {k: meta.get(k) for k in ("global_step", "train_wall_s", "final_val_loss",
                                                           "final_val_cer", "final_dir")}}
    atomic_write_json(summary, work / "quickstart_summary.json")
    return summary


if __name__ == "__main__":
    from lib.errors import cli_errors

    with cli_errors("quickstart.py", extra=(FileNotFoundError, ValueError)):  # one line, exit 2
        result = main(parse_args(QuickstartArgs, prog="quickstart.py"))
    sys.exit(0 if all(result["checks"].values()) else 1)
