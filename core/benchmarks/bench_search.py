#!/usr/bin/env python3
"""Does the search beat the default configuration? Judged on the TEST split, with confidence intervals.

    python -m core.benchmarks.bench_search --data_dir outputs/bench_search/data --n_trials 10 \
        --search_config configs/hyperparm_configs/optuna/quickstart_search.json --work_dir outputs/bench_search/run

1. Runs core/gemma_hyperparameter_search.py on `<data_dir>/train.json` (validation: `<data_dir>/val.json`) with
   `--enqueue-default`: trial 0 is the fixed config's own values of the searched parameters (the default), measured
   in the same study by the same code; the sampler then proposes the rest. `--keep-all` keeps both adapters.
2. Evaluates the default trial's adapter and the best trial's adapter (chosen on VALIDATION CER) with
   core/evaluate.py --mode hf on `<data_dir>/test.json`, which the search never saw.
3. Prints validation and test micro CER (standard profile, 95 % bootstrap CI) side by side, and the paired
   difference best - default on the test split (lib.metrics.paired_comparison: mean difference, CI, p-value).
Writes `<work_dir>/bench_search.json`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from lib.config import field, parse_args
from lib.utils.run import run_logged

ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class BenchSearchArgs:
    """Search vs default configuration, judged on the test split."""

    data_dir: str = field("outputs/bench_search/data", help="folder with train.json, val.json, test.json")
    search_config: str = field(str(ROOT / "configs" / "hyperparm_configs" / "optuna" / "quickstart_search.json"),
                               help="search config (search_space + fixed training settings)")
    work_dir: str = field("outputs/bench_search/run", help="study, trials and results go here")
    study_name: str = field("bench_search", help="study name")
    n_trials: int = field(10, help="trials including the default one")
    n_workers: int = field(1, help="worker processes")
    gpus: str | None = field(None, help="GPU ids for the workers (e.g. 0,0 = two workers on GPU 0)")
    search_mode: str = field("bayesian", help="sampler")
    trial_timeout: int = field(1800, help="per-trial limit, seconds")
    search_timeout: int | None = field(None, help="start no new trial after this many seconds")
    max_new_tokens: int = field(10, help="generation limit for the test evaluation")
    batch_size: int = field(64, help="evaluation batch size")
    n_bootstrap: int = field(2000, help="bootstrap resamples for CIs")


def _run(cmd: list[str], log_path: Path) -> None:
    run_logged(cmd, log_path, cwd=ROOT, printer=lambda m: print(m, flush=True))


def main(args: BenchSearchArgs) -> dict:
    import optuna
    from optuna.trial import TrialState

    from lib.metrics import paired_comparison
    from lib.results import atomic_write_json

    data = Path(args.data_dir).resolve()
    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{work / 'study.db'}"
    t0 = time.time()
    cmd = [sys.executable, "core/gemma_hyperparameter_search.py", "--config", args.search_config,
           "--study-name", args.study_name, "--storage", storage, "--n-trials", str(args.n_trials),
           "--n-workers", str(args.n_workers), "--search-mode", args.search_mode, "--enqueue-default", "--keep-all",
           "--input-data", str(data / "train.json"), "--train-args", json.dumps({"val_data": str(data / "val.json")}),
           "--base-output-dir", str(work / "trials"), "--studies-dir", str(work / "studies"),
           "--trial-timeout", str(args.trial_timeout)]
    if args.gpus:
        cmd += ["--gpus", args.gpus]
    if args.search_timeout:
        cmd += ["--timeout", str(args.search_timeout)]
    _run(cmd, work / "search.log")
    search_s = time.time() - t0
    study = optuna.load_study(study_name=args.study_name, storage=storage)
    default = next(t for t in study.trials if t.user_attrs.get("baseline"))
    best = study.best_trial
    if default.state != TrialState.COMPLETE:
        raise SystemExit(f"the default trial {default.number} did not complete ({default.state.name})")
    base_model = default.user_attrs["training_config"]["model_name"]
    results = {}
    for name, trial in (("default", default), ("best", best)):
        trial_dir = Path(trial.user_attrs["output_dir"])
        if (trial_dir / "lora").is_dir():  # LoRA: base model + adapter
            final = trial_dir / "lora"
            model_args = ["--model-name", base_model, "--adapter_path", str(final)]
        else:  # full fine-tuning: the saved model itself
            final = trial_dir / "model"
            model_args = ["--model-name", str(final)]
        out = work / f"test_{name}.json"
        _run([sys.executable, "core/evaluate.py", "--mode", "hf", *model_args, "--prompt-config",
              str(final / "ocr_prompt.yml"), "--data-file", str(data / "test.json"), "--output-file", str(out),
              "--max-new-tokens", str(args.max_new_tokens), "--batch-size", str(args.batch_size),
              "--n_bootstrap", str(args.n_bootstrap)], work / f"eval_{name}.log")
        results[name] = json.loads(out.read_text(encoding="utf-8"))
    cmp = paired_comparison(results["default"], results["best"], metric="cer", n_bootstrap=args.n_bootstrap)

    def test_cer(r):
        s = r["scores"]["standard"]
        cer = s.get("cer_micro", s.get("micro_cer", r.get("overall_cer")))
        return cer, (s.get("ci95") or {}).get("cer_micro")

    states = {s.name: len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
    rows = []
    for name, t in (("default", default), ("best", best)):
        cer, ci = test_cer(results[name])
        rows.append({"config": name, "trial": t.number, "params": t.user_attrs.get("decoded_params", t.params),
                     "val_cer": t.value, "test_cer": cer, "test_cer_ci95": ci})
    summary = {"study": args.study_name, "n_trials": len(study.trials),
               "states": {k: v for k, v in states.items() if v}, "rows": rows, "paired_test_best_minus_default": cmp,
               "n_test": results["best"].get("total_samples"), "search_wall_s": round(search_s, 1),
               "device": _device(), "command": " ".join(sys.argv)}
    atomic_write_json(summary, work / "bench_search.json")
    print()
    print(f"Search vs default: {summary['n_trials']} trials {summary['states']}, search {search_s:.0f} s on "
          f"{summary['device']}")
    print(f"{'config':8} {'trial':>5} {'val CER':>8} {'test CER':>9}  95% CI (test)      params")
    for r in rows:
        ci = r["test_cer_ci95"]
        ci_s = f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""
        print(f"{r['config']:8} {r['trial']:>5} {r['val_cer']:8.4f} {r['test_cer']:9.4f}  {ci_s:18} {json.dumps(r['params'])}")
    ci = cmp.get("ci95") or [None, None]
    print(f"paired on {cmp.get('n')} test images ({cmp.get('n_docs')} documents): CER best - default = "
          f"{cmp.get('difference'):+.4f}, 95% CI [{ci[0]:+.4f}, {ci[1]:+.4f}], p = {cmp.get('p_value'):.4g}; "
          f"improved {cmp.get('improved')}, regressed {cmp.get('regressed')}, unchanged {cmp.get('unchanged')}")
    return summary


def _device() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:
        pass
    return f"CPU x{os.cpu_count()}"


if __name__ == "__main__":
    main(parse_args(BenchSearchArgs, prog="bench_search.py"))
