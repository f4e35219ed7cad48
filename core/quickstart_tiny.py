"""The tiny demo (README command 1 until the reader shipped): watch a VLM learn to read Chinese from random weights, on a CPU.

    python core/quickstart_tiny.py                     # ~5 min on 2 CPU cores (317 s measured; package installation not included)

Steps, each with the project's own scripts: build the sample task (random Traditional Chinese strings of >= 300
distinct Hanzi on a grid, >= 2 fonts; lib/quickstart_data.py) -> core/split_dataset.py (train/val/test) ->
train the embedded tiny Gemma 3 (random init; LoRA on the language model, vision tower + projector + output head
trained in full; configs/quickstart/train.json) -> core/gemma_adapter_merge.py logic (merge + verify) ->
core/evaluate.py --mode hf on the test split for the untrained and the trained (merged) model -> scores side by side
with two blind baselines (the most common training answer; the trained model fed blank images).
Checks: trained micro CER (standard profile) <= 0.35, <= half the untrained CER, below both baselines; test strings
never occur in training. Exit status 1 if a check fails. Everything lands in --work_dir (default outputs/quickstart).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from lib.config import field, parse_args
from lib.utils.run import run_showing_tail, split_with_script

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class QuickstartArgs:
    """Build sample data, split, train the embedded model, merge, evaluate before/after, print the scores."""

    work_dir: str = field("outputs/quickstart", help="everything is written here (data, model, results)")
    train_config: str = field(str(ROOT / "configs" / "quickstart" / "train.json"), help="training config")
    n_samples: int = field(3400, help="samples rendered (split into train/val/test)")
    val_fraction: float = field(0.03, help="validation share")
    test_fraction: float = field(0.06, help="test share (held out; scored at the end)")
    n_chars: int = field(320, help="distinct Hanzi in the task (>= 300)")
    n_fonts: int = field(2, help="fonts the glyphs are drawn in (>= 2)")
    seed: int = field(0, help="data seed (strings, fonts, split)")
    max_steps: int | None = field(None, help="override the config's max_steps (shorter demo runs)")
    batch_size: int = field(32, help="evaluation batch size")
    threads: int = field(0, help="torch threads (0 = torch's default)")
    rebuild_data: bool = field(False, help="re-render the data even if it exists")



def main(args: QuickstartArgs) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from lib.quickstart_data import QuickstartTask, blank_image, build_dataset
    from lib.results import atomic_write_json

    t0 = time.time()
    timings: dict[str, float] = {}
    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:6.1f}s] {msg}", flush=True)

    # 1. data
    task = QuickstartTask(n_chars=args.n_chars, n_fonts=args.n_fonts)
    raw = work / "data" / "all.json"
    t = time.time()
    if args.rebuild_data or not raw.is_file():
        info = build_dataset(raw.parent, args.n_samples, task=task, seed=args.seed, file_name="all.json")
        log(f"data: {info['n']} images, {info['n_chars']} distinct Hanzi, fonts {info['fonts']} -> {raw}")
    timings["data_s"] = time.time() - t

    # 2. split (the project's split script, as a user would run it)
    t = time.time()
    split_dir = work / "split"
    train, val, test = split_with_script(raw, split_dir, seed=args.seed, val_fraction=args.val_fraction,
                                         test_fraction=args.test_fraction, printer=log, cwd=ROOT)
    train_strings = {s.text for s in train}
    leaked = [s.text for s in test if s.text in train_strings]
    hanzi = {c for s in train + val + test for c in s.text}
    fonts = sorted({s.extra.get("font", "?") for s in train + val + test})
    log(f"split: {len(train)} train / {len(val)} val / {len(test)} test; {len(hanzi)} distinct Hanzi; fonts {fonts};"
        f" test strings seen in training: {len(leaked)}")
    timings["split_s"] = time.time() - t

    # 3. train
    from lib.train.args import LEGACY_KEYS, SFTArgs

    t = time.time()
    argv = ["--config", args.train_config, "--input_data", str(split_dir / "train.json"), "--val_data",
            str(split_dir / "val.json"), "--output_dir", str(work / "model")]
    if args.max_steps:
        argv += ["--max_steps", str(args.max_steps)]
    sft_args = parse_args(SFTArgs, argv, legacy_keys=LEGACY_KEYS)
    from lib.train import run_training

    meta = run_training(sft_args, printer=log)
    timings["train_s"] = time.time() - t
    adapter = Path(meta["final_dir"])

    # 4. merge + verify
    from lib.merge import merge_adapter, verify_merge

    t = time.time()
    merged = work / "merged"
    merge_adapter(str(adapter), str(merged), dtype="float32", printer=log)
    report = verify_merge(str(adapter), str(merged), [s.image_path for s in test[:4]], [s.text for s in test[:4]],
                          dtype="float32", max_new_tokens=task.max_len + 2, printer=log)
    timings["merge_s"] = time.time() - t

    # 5. evaluate untrained and trained with core/evaluate.py (hf backend)
    t = time.time()
    results = {}
    max_new = str(task.grid * task.grid + 4)
    for name, model in (("untrained", sft_args.model_name), ("trained", str(merged))):
        out = work / "results" / f"{name}.json"
        run_showing_tail([sys.executable, "core/evaluate.py", "--mode", "hf", "--model-name", model, "--data-file",
                          str(split_dir / "test.json"), "--output-file", str(out), "--max-new-tokens", max_new,
                          "--batch-size", str(args.batch_size), "--prompt-config", str(adapter / "ocr_prompt.yml")],
                         log, cwd=ROOT, n=3)
        results[name] = json.loads(out.read_text(encoding="utf-8"))
    timings["evaluate_s"] = time.time() - t

    # 6. blind baselines
    from collections import Counter

    from lib.generation import generate_batch
    from lib.modeling import load_model_and_processor
    from lib.prompt import load_prompt
    from lib.train.callbacks import micro_cer

    labels = [s.text for s in test]
    common = Counter(s.text for s in train).most_common(1)[0][0]
    cer_common = micro_cer([common] * len(labels), labels)
    model, processor = load_model_and_processor(str(merged), dtype="float32")
    blank = generate_batch(model, processor, load_prompt(adapter / "ocr_prompt.yml"),
                           [blank_image(task)] * len(labels), max_new_tokens=int(max_new), batch_size=args.batch_size)
    cer_blank = micro_cer([o.text for o in blank], labels)

    def cer_of(name):
        scores = results[name].get("scores", {}).get("standard", {})
        return scores["cer_micro"] if "cer_micro" in scores else results[name]["overall_cer"]

    cer_untrained, cer_trained = cer_of("untrained"), cer_of("trained")
    total = time.time() - t0
    checks = {
        "trained_cer_le_0.35": cer_trained <= 0.35,
        "trained_le_half_untrained": cer_trained <= 0.5 * cer_untrained,
        "beats_most_common_answer": cer_trained < cer_common,
        "beats_blank_image": cer_trained < cer_blank,
        "no_test_string_in_training": not leaked,
        "distinct_hanzi_ge_300": len(hanzi) >= 300,
        "fonts_ge_2": len(fonts) >= 2,
        "merge_verified": report.ok,
    }
    examples = [(s.text, r.get("prediction")) for s, r in zip(test[:5], results["trained"]["samples"][:5])]
    print()
    print("=" * 78)
    print(f"Quickstart: {len(test)} held-out test images, micro CER (standard profile, lower is better)")
    print(f"  untrained model (random init)          {cer_untrained:7.4f}")
    print(f"  trained model (LoRA merged)            {cer_trained:7.4f}   ({cer_trained / max(cer_untrained, 1e-9):.2f}x)")
    print(f"  baseline: most common training answer  {cer_common:7.4f}")
    print(f"  baseline: trained model, blank image   {cer_blank:7.4f}")
    for gt, pred in examples:
        print(f"    {gt}  ->  {pred}")
    print(f"  time: {total:.0f} s total (data {timings['data_s']:.0f}, split {timings['split_s']:.0f}, train "
          f"{timings['train_s']:.0f}, merge {timings['merge_s']:.0f}, evaluate {timings['evaluate_s']:.0f}); "
          f"{os.cpu_count()} CPUs, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("  checks: " + ", ".join(f"{k} {'OK' if v else 'FAIL'}" for k, v in checks.items()))
    print("=" * 78)
    summary = {"cer_untrained": cer_untrained, "cer_trained": cer_trained, "cer_most_common_answer": cer_common,
               "cer_blank_image": cer_blank, "most_common_answer": common, "n_train": len(train), "n_val": len(val),
               "n_test": len(test), "distinct_hanzi": len(hanzi), "fonts": fonts, "checks": checks,
               "timings_s": {**timings, "total": total}, "cpu_count": os.cpu_count(),
               "load_average": list(os.getloadavg()), "train_metadata": {k: meta[k] for k in (
                   "global_step", "train_wall_s", "final_val_loss", "final_val_cer", "best_checkpoint")},
               "verify": report.to_dict()}
    atomic_write_json(summary, work / "quickstart_summary.json")
    return summary


if __name__ == "__main__":
    result = main(parse_args(QuickstartArgs, prog="quickstart_tiny.py"))
    sys.exit(0 if all(result["checks"].values()) else 1)
