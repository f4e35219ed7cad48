#!/usr/bin/env python3
"""Does our trainer teach a random-init VLM to read? One command: data -> train -> held-out CER -> learning curve.

    python -m core.benchmarks.learning_run --stage line --work_dir runs/learn --export_parts runs/learn/reader.tar
    python -m core.benchmarks.learning_run --stage paragraph --init_model runs/learn/reader.tar --work_dir runs/learn2

(GPU: ~9 min each on one H100.)

1. Renders the stage's data with all CPU cores (lib/synth/lines.py) as 256 px squares: `line` = single lines of
   2-12 characters in 18-26 px glyphs near the left edge (a line crop, letterboxed); `paragraph` = 1-4 lines of 4-12
   characters in 18-22 px glyphs anywhere; `dense` = 1-6 short lines anywhere. `--random_share` (default 90 %) of
   the strings are uniformly random characters (no language prior helps), the rest real 公文 text windows.
   Validation and the two test sets (`test_content`: 公文 text from unseen documents; `test_random`: random
   characters) are single lines whatever the stage, and never repeat a training string.
2. Trains with `core/sft_gemma.py --config <configs/learning_run/...>` (the project's own training path) in a
   subprocess: the embedded `gemma3-reader` (Gemma 3 architecture, 13 M parameters, random init) or `--init_model`
   (a model folder, or the prefix of a previous run's `--export_parts`).
3. Scores both test sets with `core/evaluate.py --mode hf` (greedy; micro CER, standard profile, 95 % bootstrap CI).
4. Writes `<out_dir>/learning_curve.png` (validation CER and training loss against step and minutes), the summary
   `<out_dir>/learning_run.json`, and with `--export_dir` the trained model in bf16 shards of <= 15 MB; with
   `--export_parts PREFIX` the same export as one tar split into `PREFIX.part-000, -001, ...` of <= 15 MB (two files
   for the reader: they travel back from a GPU machine that returns few, small files), which `--init_model PREFIX`
   unpacks to continue training in a later call.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import sys
import time
from pathlib import Path

from lib.config import field, parse_args
from lib.results import atomic_write_json, read_training_metadata
from lib.utils.run import run_logged

ROOT = Path(__file__).resolve().parents[2]

STAGES = {
    # dense: 1-6 lines of 4-10 characters anywhere in the square - most image tokens carry a glyph and every sample
    # has 5-60 answer tokens, so a random-init model gets far more reading signal per step than from one line
    "dense": dict(min_font=20, max_font=24, min_len=4, max_len=10, max_lines=6, min_lines=1, placement="anywhere"),
    "line": dict(min_font=18, max_font=26, min_len=2, max_len=12, max_lines=1, placement="left"),
    # paragraph: 1-4 lines. The measured H100 run (docs/bench/h100_learning_run_paragraph.json) drew 2-4: paragraph
    # CER fell, but the model learned that every crop has >= 2 lines and added lines to single-line crops
    "paragraph": dict(min_font=18, max_font=22, min_len=4, max_len=12, max_lines=4, min_lines=1, placement="anywhere"),
}


@dataclasses.dataclass
class LearningRunArgs:
    """Train the embedded reader VLM on rendered text crops and report held-out CER with a learning curve."""

    stage: str = field("line", choices=sorted(STAGES), help="curriculum stage: dense (1-6 short lines anywhere) | "
                       "line (single lines at the left, like a detector's crop) | paragraph (1-4 lines anywhere)")
    train_config: str | None = field(None, help="training config (default configs/learning_run/<stage>.json)")
    init_model: str | None = field(None, help="start from this model folder (e.g. a previous run's --export_dir), or "
                                   "from a previous run's --export_parts PREFIX, instead of the config's model_name")
    work_dir: str = field("runs/learning_run", help="data, checkpoints, results")
    out_dir: str | None = field(None, help="curve PNG + summary JSON (default: work_dir)")
    export_dir: str | None = field(None, help="also save the trained model here in bf16 shards <= 15 MB")
    export_parts: str | None = field(None, help="also save the bf16 export as one tar split into PREFIX.part-000, "
                                     "-001, ... (<= 15 MB each); --init_model PREFIX continues from it")
    n_train: int = field(200_000, help="training samples rendered")
    n_val: int = field(256, help="validation samples (CER during training)")
    n_test: int = field(500, help="samples in each test set (test_content, test_random)")
    n_docs: int = field(3000, help="synthetic documents whose text feeds the training strings")
    random_chars: str = field("all", choices=["hanzi", "all"], help="what the training's random strings draw "
                              "from: all (every character of the set: digits, Latin letters, punctuation too - the "
                              "measured recipe) | hanzi (what line runs 1-2 used); the random test set stays Hanzi")
    random_share: float = field(0.9, help="share of training strings of uniformly random characters (the rest: 公文 "
                                "text windows); random strings leave reading as the only way to lower the loss")
    workers: int = field(0, help="rendering processes (0 = all cores)")
    seed: int = field(0, help="data seed")
    max_steps: int | None = field(None, help="override the config's max_steps")
    max_train_seconds: float | None = field(None, help="override the config's max_train_seconds")
    eval_batch_size: int = field(128, help="test-set generation batch size")
    max_new_tokens: int = field(80, help="test-set generation limit")
    n_bootstrap: int = field(1000, help="bootstrap resamples for the test CIs")
    train_args: str = field("{}", help="extra training settings as JSON (override the config file)")
    test_only: bool = field(False, help="only render the test sets and score --init_model on them (no training); "
                            "use the data settings (--stage, --seed, --n_train, --n_docs, --random_share, "
                            "--random_chars) of the run that made the model so the test strings are the same")
    pack_fonts: str | None = field(None, help="only write the run's two fonts, subset to its characters, into this "
                                   "folder and exit (carry it to a machine without CJK fonts; point "
                                   "GEMMA_OCR_FONT_DIRS at it there)")


_ECHO = ("eval_cer", "step ", "final validation", "max_train_seconds", "Error", "error")


def _run(cmd: list[str], log_path: Path) -> None:
    run_logged(cmd, log_path, cwd=ROOT, echo=lambda line: any(k in line for k in _ECHO),
               printer=lambda m: print(m, flush=True))


def run_charset(seed: int = 0, n_docs: int = 3000):
    """The run's two fonts, its character set (what both fonts draw of the 公文 text pools) and the train/test text
    pools (documents of disjoint seed ranges)."""
    from lib.quickstart_data import pick_fonts
    from lib.synth.lines import content_pool, task_charset

    fonts = pick_fonts(2)
    pool_train = content_pool(seed * 2 + 1, n_docs)
    pool_test = content_pool(seed * 2 + 2, max(50, n_docs // 10))
    return fonts, task_charset(fonts, pool_train + pool_test), pool_train, pool_test


def make_data(args: LearningRunArgs, data_dir: Path, tests_only: bool = False) -> dict:
    from lib.synth.lines import LineTask, build_line_dataset, make_strings

    t0 = time.time()
    done = data_dir / "data_info.json"
    if done.is_file():
        info = json.loads(done.read_text(encoding="utf-8"))
        # a full run's data holds the test sets too, so --test_only reuses it
        if info.get("key") in (_data_key(args), _data_key(args) + "-tests" if tests_only else None):
            print(f"data: reusing {data_dir} ({info['counts']})", flush=True)
            return info
    task = LineTask(**STAGES[args.stage], random_share=args.random_share, random_chars=args.random_chars)
    fonts, charset, pool_train, pool_test = run_charset(args.seed, args.n_docs)
    rng = random.Random(args.seed)
    train = make_strings(rng, task, args.n_train, pool_train, charset)
    seen = set(train)
    val = make_strings(rng, task, args.n_val, pool_test, charset, exclude=seen)
    # the test sets are single lines whatever the stage (the target: held-out single-line CER)
    line = LineTask(**STAGES["line"])
    test_c = make_strings(rng, dataclasses.replace(line, random_share=0.0), args.n_test, pool_test, charset,
                          exclude=seen)
    test_r = make_strings(rng, dataclasses.replace(line, random_share=1.0), args.n_test, pool_test, charset,
                          exclude=seen)
    paths = {} if tests_only else build_line_dataset(data_dir, {"train": train, "val": val}, task=task, fonts=fonts,
                                                     seed=args.seed, workers=args.workers)
    paths.update(build_line_dataset(data_dir / "test", {"test_content": test_c, "test_random": test_r}, task=line,
                                    fonts=fonts, seed=args.seed, workers=args.workers))
    info = {"key": _data_key(args) + ("-tests" if tests_only else ""), "paths": {k: str(v) for k, v in paths.items()},
            "counts": {**({} if tests_only else {"train": len(train), "val": len(val)}), "test_content": len(test_c),
                       "test_random": len(test_r)},
            "fonts": [f.name for f in fonts], "charset_size": len(charset),
            "hanzi": sum("\u4e00" <= c <= "\u9fff" for c in charset), "task": dataclasses.asdict(task),
            "seconds": round(time.time() - t0, 1)}
    atomic_write_json(info, data_dir / "data_info.json")
    print(f"data: {info['counts']} in {info['seconds']} s, fonts {info['fonts']}, {info['charset_size']} characters "
          f"({info['hanzi']} Hanzi)", flush=True)
    return info


def pack_fonts(args: LearningRunArgs, out_dir: Path) -> list[Path]:
    """The fonts `make_data` would pick, subset (fontTools) to every character the run can draw."""
    from fontTools import subset

    from lib import render

    fonts, _, pool_train, pool_test = run_charset(args.seed, args.n_docs)
    text = "".join(pool_train + pool_test)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for f in fonts:
        opts = subset.Options()
        opts.font_number = getattr(f, "index", 0) or 0
        opts.layout_features = ["*"]
        opts.name_IDs = ["*"]
        opts.name_languages = ["*"]
        font = subset.load_font(f.path, opts)
        sub = subset.Subsetter(opts)
        # + ASCII, and lib.render's script probes (so the subset is still recognised as a Traditional Chinese font)
        sub.populate(text=text + "".join(chr(c) for c in range(0x20, 0x7F)) + "".join(render.SCRIPT_PROBES.values()))
        sub.subset(font)
        dest = out_dir / (f.name.replace(" ", "") + ".otf")
        subset.save_font(font, str(dest), opts)
        written.append(dest)
        print(f"{f.name}: {f.path} -> {dest} ({dest.stat().st_size / 1e6:.1f} MB)")
    return written


def _data_key(args: LearningRunArgs) -> str:
    return json.dumps([args.stage, args.n_train, args.n_val, args.n_test, args.n_docs, args.random_share, args.seed,
                       args.random_chars])


def plot_curve(log_history: list[dict], out_png: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ev = [(h["step"], h["eval_cer"]) for h in log_history if "eval_cer" in h]
    tr = [(h["step"], h["loss"]) for h in log_history if "loss" in h]
    fig, ax1 = plt.subplots(figsize=(7, 4), dpi=120)
    if ev:
        ax1.plot(*zip(*ev), "o-", color="tab:blue", label="validation CER (greedy)")
    ax1.set_xlabel("optimizer step")
    ax1.set_ylabel("CER", color="tab:blue")
    ax1.set_ylim(0, max(1.05, max((c for _, c in ev), default=1.0)))
    ax1.grid(alpha=0.3)
    ax2 = ax1.twinx()
    if tr:
        ax2.plot(*zip(*tr), color="tab:orange", alpha=0.7, label="training loss")
    ax2.set_ylabel("training loss", color="tab:orange")
    ax2.set_yscale("log")
    ax1.set_title(title.replace("; ", "\n", 1), fontsize=9)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)


def export_bf16(model_dir: Path, export_dir: Path) -> float:
    """The trained model + processor in bf16, safetensors shards <= 15 MB. Returns the size in MB."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.bfloat16)
    export_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(export_dir, max_shard_size="15MB")
    AutoProcessor.from_pretrained(model_dir).save_pretrained(export_dir)
    for name in ("ocr_prompt.yml", "training_config.json", "metadata.json"):
        if (model_dir / name).is_file():
            (export_dir / name).write_bytes((model_dir / name).read_bytes())
    return sum(p.stat().st_size for p in export_dir.iterdir() if p.is_file()) / 1e6


PART_BYTES = 15_000_000


def pack_parts(src_dir: Path, prefix: Path, part_bytes: int = PART_BYTES) -> list[Path]:
    """`src_dir` as one uncompressed tar (top folder `model/`) split into `prefix.part-000`, `-001`, ... of at most
    `part_bytes` each; older parts of the same prefix are removed first. Returns the parts."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(src_dir, arcname="model")
    data = buf.getvalue()
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for old in prefix.parent.glob(prefix.name + ".part-*"):
        old.unlink()
    parts = []
    for k, start in enumerate(range(0, len(data), part_bytes)):
        part = prefix.with_name(f"{prefix.name}.part-{k:03d}")
        part.write_bytes(data[start:start + part_bytes])
        parts.append(part)
    return parts


def unpack_parts(prefix: Path, dest: Path) -> Path:
    """Join `prefix.part-000 ...` (written by `pack_parts`) and extract them into `dest`; returns `dest/model`."""
    import io
    import shutil
    import tarfile

    parts = sorted(prefix.parent.glob(prefix.name + ".part-*"))
    expected = [prefix.with_name(f"{prefix.name}.part-{k:03d}") for k in range(len(parts))]
    if not parts or parts != expected:
        raise SystemExit(f"--init_model {prefix}: expected {prefix.name}.part-000, -001, ... (from --export_parts), "
                         f"found {[p.name for p in parts] or 'none'}")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
            tar.extractall(dest, filter="data")
    except tarfile.TarError as exc:
        raise SystemExit(f"--init_model {prefix}: the parts do not form a readable tar ({exc}); copy all of them") from None
    if not (dest / "model" / "config.json").is_file():
        raise SystemExit(f"--init_model {prefix}: the archive holds no model/config.json")
    return dest / "model"


def _init_model_source(init_model: str) -> tuple[str, Path]:
    """('dir' | 'parts', path) for --init_model, or SystemExit naming what was looked for."""
    p = Path(init_model).resolve()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise SystemExit(f"--init_model {init_model}: folder has no config.json (pass a saved model folder)")
        return "dir", p
    if (p.parent / f"{p.name}.part-000").is_file():
        return "parts", p
    raise SystemExit(f"--init_model {init_model}: neither a model folder nor {p.name}.part-000 (from --export_parts)")


def _init_model_dir(init: tuple[str, Path], work: Path, init_model: str) -> Path:
    """The model folder for a checked --init_model: the folder itself, or its parts unpacked under `work`."""
    kind, path = init
    if kind == "parts":
        path = unpack_parts(path, work / "init_model")
        print(f"init_model: unpacked {init_model}.part-* into {path}", flush=True)
    return path


def score_tests(args: LearningRunArgs, model_dir: Path, paths: dict, out: Path, work: Path) -> dict:
    """`core/evaluate.py --mode hf` on both single-line test sets; {name: cer, ci95, exact_match, n, examples}."""
    tests = {}
    for name in ("test_content", "test_random"):
        res_path = out / f"{name}_results.json"
        _run([sys.executable, "core/evaluate.py", "--mode", "hf", "--model-name", str(model_dir), "--prompt-config",
              str(model_dir / "ocr_prompt.yml"), "--data-file", paths[name], "--output-file", str(res_path),
              "--max-new-tokens", str(args.max_new_tokens), "--batch-size", str(args.eval_batch_size),
              "--n_bootstrap", str(args.n_bootstrap)], work / f"eval_{name}.log")
        r = json.loads(res_path.read_text(encoding="utf-8"))
        s = r["scores"]["standard"]
        tests[name] = {"cer": s.get("cer_micro"), "ci95": (s.get("ci95") or {}).get("cer_micro"),
                       "exact_match": s.get("exact_match"), "n": r.get("total_samples"),
                       "errors_by_class": (s.get("anatomy") or {}).get("by_class", {}),
                       "examples": [{"gt": x.get("label"), "pred": x.get("prediction")}
                                    for x in r.get("samples", [])[:5]]}
    return tests


def _print_tests(tests: dict) -> None:
    for name, r in tests.items():
        lo, hi = r["ci95"] or (float("nan"), float("nan"))
        print(f"{name:13s} micro CER {r['cer']:.4f} [95% CI {lo:.4f}, {hi:.4f}], exact match {r['exact_match']}, "
              f"n={r['n']}")
        by = {k: v for k, v in (r.get("errors_by_class") or {}).items() if v["chars"]}
        print("    substitutions + deletions per ground-truth character: " + ", ".join(
            f"{k} {v['rate']:.3f} ({v['chars']} chars)" for k, v in by.items()))
        for ex in r["examples"][:3]:
            print(f"    gt {ex['gt']!r} -> pred {ex['pred']!r}")


def score_only(args: LearningRunArgs, init: tuple[str, Path]) -> dict:
    """Render only the run's two test sets (the same strings and images a full run with these data settings
    makes) and score `--init_model` on them: checks an exported reader on any machine."""
    work = Path(args.work_dir).resolve()
    out = Path(args.out_dir).resolve() if args.out_dir else work
    out.mkdir(parents=True, exist_ok=True)
    model_dir = _init_model_dir(init, work, args.init_model)
    data = make_data(args, work / "data", tests_only=True)
    t = time.time()
    tests = score_tests(args, model_dir, data["paths"], out, work)
    import torch

    summary = {"stage": args.stage, "command": " ".join(sys.argv), "init_model": args.init_model,
               "device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU x{os.cpu_count()}",
               "data": {k: data[k] for k in ("counts", "fonts", "charset_size", "hanzi")}, "tests": tests,
               "seconds": {"eval": round(time.time() - t, 1)}}
    atomic_write_json(summary, out / "learning_run_test.json")
    _print_tests(tests)
    return summary


def main(args: LearningRunArgs) -> dict:
    if args.pack_fonts:
        pack_fonts(args, Path(args.pack_fonts))
        return {}
    try:
        extra = json.loads(args.train_args)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--train_args is not JSON ({exc}); write e.g. '{{\"learning_rate\": 0.001}}'") from None
    if not isinstance(extra, dict):
        raise SystemExit("--train_args must be a JSON object of training settings, e.g. '{\"learning_rate\": 0.001}'")
    cfg = args.train_config or str(ROOT / "configs" / "learning_run" / f"{args.stage}.json")
    if not Path(cfg).is_file():
        raise SystemExit(f"--train_config {cfg}: no such file (the stage's configs are in configs/learning_run/)")
    init = _init_model_source(args.init_model) if args.init_model else None
    if args.test_only:
        if init is None:
            raise SystemExit("--test_only scores an existing model: also pass --init_model (folder or parts prefix)")
        return score_only(args, init)
    t0 = time.time()
    work = Path(args.work_dir).resolve()
    out = Path(args.out_dir).resolve() if args.out_dir else work
    out.mkdir(parents=True, exist_ok=True)
    data = make_data(args, work / "data")
    t_data = time.time() - t0

    model_dir = work / "model"
    cmd = [sys.executable, "core/sft_gemma.py", "--config", cfg, "--input_data", data["paths"]["train"],
           "--val_data", data["paths"]["val"], "--output_dir", str(model_dir)]
    if init:
        cmd += ["--model_name", str(_init_model_dir(init, work, args.init_model))]
    if args.max_steps is not None:
        cmd += ["--max_steps", str(args.max_steps)]
    if args.max_train_seconds is not None:
        cmd += ["--max_train_seconds", str(args.max_train_seconds)]
    for k, v in extra.items():
        cmd += [f"--{k}", v if isinstance(v, str) else json.dumps(v)]
    t = time.time()
    _run(cmd, work / "train.log")
    t_train = time.time() - t
    meta = read_training_metadata(model_dir)
    if meta is None:
        raise SystemExit(f"training wrote no metadata.json in {model_dir} (see {work / 'train.log'})")
    final = Path(meta["final_dir"])

    t = time.time()
    tests = score_tests(args, final, data["paths"], out, work)
    t_eval = time.time() - t
    log_history = meta.get("log_history", [])
    evals = [{"step": h["step"], "eval_cer": h["eval_cer"], "eval_loss": h.get("eval_loss")}
             for h in log_history if "eval_cer" in h]
    device = (meta.get("hardware") or {}).get("gpus") or [f"CPU x{os.cpu_count()}"]
    title = (f"{args.stage}: {meta['global_step']} steps, {meta['train_wall_s']:.0f} s on {device[0]}; test CER "
             f"{tests['test_content']['cer']:.3f} (公文 text) / {tests['test_random']['cer']:.3f} (random chars)")
    plot_curve(log_history, out / "learning_curve.png", title.replace("公文", "document"))
    export_mb, parts = None, []
    if args.export_dir or args.export_parts:
        export_dir = Path(args.export_dir).resolve() if args.export_dir else work / "export"
        export_mb = round(export_bf16(final, export_dir), 1)
        if args.export_parts:
            parts = [str(p) for p in pack_parts(export_dir, Path(args.export_parts).resolve())]
            print(f"export: {len(parts)} parts {args.export_parts}.part-* ({export_mb} MB)", flush=True)
    summary = {
        "stage": args.stage, "command": " ".join(sys.argv), "config": cfg, "init_model": args.init_model,
        "device": device[0], "data": {k: data[k] for k in ("counts", "fonts", "charset_size", "hanzi", "task")},
        "global_step": meta["global_step"], "train_loss": meta.get("train_loss"),
        "final_val_cer": meta.get("final_val_cer"), "best_checkpoint": meta.get("best_checkpoint"),
        "tests": tests, "val_curve": evals, "seconds": {"data": round(t_data, 1), "train": round(t_train, 1),
                                                        "train_loop": meta.get("train_wall_s"),
                                                        "eval": round(t_eval, 1), "total": round(time.time() - t0, 1)},
        "peak_memory": meta.get("peak_memory"), "export_mb": export_mb, "export_parts": parts,
    }
    atomic_write_json(summary, out / "learning_run.json")
    print(f"\nlearning run ({args.stage}) on {device[0]}: {meta['global_step']} steps; data {t_data:.0f} s, "
          f"train {t_train:.0f} s, eval {t_eval:.0f} s, total {time.time() - t0:.0f} s")
    print("validation CER by step: " + ", ".join(f"{e['step']}:{e['eval_cer']:.3f}" for e in evals))
    _print_tests(tests)
    return summary


if __name__ == "__main__":
    main(parse_args(LearningRunArgs, prog="learning_run.py"))
