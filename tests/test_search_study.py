"""End to end on the embedded tiny Gemma 3, on CPU: the search runs the real core/sft_gemma.py in trial processes.

One module-scoped study does what the issue asks to see, in as few training runs as possible:

1. 4 trials, 2 worker processes, one SQLite study, a median pruner: at least one trial is PRUNED, and each pruned
   trial's value at its pruning step is worse than the median of the completed trials there; trials.csv/.md, plots,
   best_config.json and the original's `{study}_best_*.json` exist; only the best trial keeps its adapter.
2. `--resume` adds a trial to the same study, and that trial is frozen (SIGSTOP, as a stuck NCCL call or file system
   would leave it): it is killed at `--trial-timeout`, marked FAIL with the reason, and the search finishes normally.
3. best_config.json trains unchanged with core/sft_gemma.py --config.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lib.train as train  # the project's own module: an import error must fail, never skip
import optuna
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[1]
SEARCH = REPO / "core" / "gemma_hyperparameter_search.py"
SFT = REPO / "core" / "sft_gemma.py"


def make_tiny_data(root: Path) -> tuple[Path, Path]:
    """4 training rows of the shipped quickstart images (data/example.json) and 2 of them as validation: the tiny
    model cannot read unseen text after 4 steps, but it starts to reproduce labels it trained on."""
    rows = json.loads((REPO / "data" / "example.json").read_text(encoding="utf-8"))
    for r in rows:
        r["img_path"] = str((REPO / "data" / r["img_path"]).resolve())
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.json").write_text(json.dumps(rows[:4], ensure_ascii=False), encoding="utf-8")
    (root / "val.json").write_text(json.dumps(rows[:2], ensure_ascii=False), encoding="utf-8")
    return root / "train.json", root / "val.json"


TRAIN = {  # tiny and deterministic (seeded); the search varies learning_rate only
    "model_name": "embedded/tiny-gemma3",
    "load_in_4bit": False,
    "max_steps": 4,
    "eval_steps": 2,
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 1,
    "eval_max_new_tokens": 6,
}
# At step 2, lr 2e-2 has moved the greedy output closer to the labels (CER 1.11) while lr 1e-7 has not (CER 1.33).
HI, LO = 2e-2, 1e-7
HANG_LIMIT = 20  # s


def _search_cmd(argv: list[str]) -> list[str]:
    return [sys.executable, str(SEARCH), *argv]


def _freeze_trial(number: int, study: str, deadline_s: float = 300) -> int:
    """SIGSTOP the training process of trial `number` once it runs: a frozen trial, as a hung NCCL call or a
    stuck file system would leave it. Returns its pid."""
    pattern = f"--optuna_study_name {study} --optuna_trial_number {number}"
    end = time.time() + deadline_s
    while time.time() < end:
        out = subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True, text=True).stdout.split()
        if out:
            pid = int(out[0])
            os.kill(pid, signal.SIGSTOP)
            return pid
        time.sleep(0.2)
    raise AssertionError(f"trial {number} never started")


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("search")
    train_path, val_path = make_tiny_data(tmp / "data")
    cfg = {"search_space": {"learning_rate": {"type": "categorical", "choices": [HI, LO]}},
           "pruner": {"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0, "interval_steps": 1},
           "input_data": str(train_path), "val_data": str(val_path), **TRAIN}
    (tmp / "search.json").write_text(json.dumps(cfg))
    # two good trials first (one per worker, concurrently), then two that barely learn: the pruner must stop them
    (tmp / "enqueue.json").write_text(json.dumps([{"learning_rate": v} for v in (HI, HI, LO, LO)]))
    (tmp / "enqueue2.json").write_text(json.dumps([{"learning_rate": LO}]))
    common = ["--study-name", "tiny", "--storage", f"sqlite:///{tmp}/tiny.db", "--config", str(tmp / "search.json"),
              "--base-output-dir", str(tmp / "out"), "--studies-dir", str(tmp / "studies"), "--search-mode", "random"]
    t0 = time.time()
    first = subprocess.run(_search_cmd(common + ["--n-trials", "4", "--n-workers", "2", "--enqueue",
                                                 str(tmp / "enqueue.json"), "--trial-timeout", "900"]),
                           cwd=REPO, capture_output=True, text=True, timeout=1200)
    first_s = time.time() - t0
    # resume: one more trial, frozen as soon as it runs: it must be killed at the time limit, and the search finish
    t0 = time.time()
    log = open(tmp / "resume.log", "w")
    proc = subprocess.Popen(_search_cmd(common + ["--resume", "--n-trials", "1", "--enqueue", str(tmp / "enqueue2.json"),
                                                  "--trial-timeout", str(HANG_LIMIT)]),
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        frozen_pid = _freeze_trial(4, "tiny")
        proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    second = subprocess.CompletedProcess(proc.args, proc.returncode, (tmp / "resume.log").read_text(), "")
    return {"tmp": tmp, "first": first, "second": second, "first_s": first_s, "second_s": time.time() - t0,
            "frozen_pid": frozen_pid, "storage": f"sqlite:///{tmp}/tiny.db"}


def _study(run):
    return optuna.load_study(study_name="tiny", storage=run["storage"])


def test_four_trials_two_workers_one_pruned(study_run):
    first = study_run["first"]
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    trials = _study(study_run).trials[:4]
    assert len(trials) == 4
    workers = {t.user_attrs["worker"]["pid"] for t in trials}
    assert len(workers) == 2, "the trials must have run in 2 worker processes"
    # the two workers ran concurrently: their first trials overlap in time
    t0, t1 = trials[0], trials[1]
    assert t0.datetime_start < t1.datetime_complete and t1.datetime_start < t0.datetime_complete
    states = [t.state for t in trials]
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states, states
    for t in trials:
        if t.state == TrialState.PRUNED:
            step = t.user_attrs["pruned_at_step"]
            median = t.user_attrs["median_at_pruned_step"]
            assert t.intermediate_values[step] > median  # worse than the median of completed trials there
            assert max(t.intermediate_values) == step  # it stopped there: no later report
            assert t.user_attrs["returncode"] == 77
        if t.state == TrialState.COMPLETE:
            assert t.value == t.user_attrs["objective_value"]
            assert max(t.intermediate_values) == TRAIN["max_steps"]  # measured on the final model


def test_outputs_and_checkpoint_cleanup(study_run):
    out = study_run["tmp"] / "out" / "tiny"
    for name in ("trials.csv", "trials.md", "optimization_history.png", "best_config.json", "summary.json"):
        assert (out / name).is_file(), name
    studies = study_run["tmp"] / "studies"
    assert (studies / "tiny_best_config.json").is_file() and (studies / "tiny_best_params.json").is_file()
    md = (out / "trials.md").read_text()
    assert "PRUNED" in md and "COMPLETE" in md and "learning_rate" in md
    study = _study(study_run)
    best = study.best_trial
    assert json.loads((out / "best_config.json").read_text())["learning_rate"] == best.params["learning_rate"]
    weights = {t.number: any(Path(t.user_attrs["output_dir"]).rglob("*.safetensors")) for t in study.trials
               if t.state == TrialState.COMPLETE}
    assert weights[best.number] and sum(weights.values()) == 1, weights


def test_resume_adds_a_trial_and_a_hung_trial_is_killed_and_failed(study_run):
    second = study_run["second"]
    assert second.returncode == 0, second.stdout[-4000:]
    trials = _study(study_run).trials
    assert len(trials) == 5  # resumed: same study, one more trial
    hung = trials[4]
    assert hung.state == TrialState.FAIL
    assert f"time limit of {HANG_LIMIT} s" in hung.user_attrs["fail_reason"]
    assert HANG_LIMIT <= hung.user_attrs["duration_s"] < HANG_LIMIT + 20
    state = Path(f"/proc/{study_run['frozen_pid']}/stat")
    assert not state.exists() or state.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # the frozen process is gone
    # the search went on: it finished normally and rewrote its outputs with the failed trial in them
    summary = json.loads((study_run["tmp"] / "out" / "tiny" / "summary.json").read_text())
    assert summary["n_trials_total"] == 5 and summary["n_trials_this_run"] == 1 and summary["states"]["FAIL"] == 1
    assert "killed after the trial time limit" in (study_run["tmp"] / "out" / "tiny" / "trials.md").read_text()


def test_best_config_round_trips_into_training(study_run, tmp_path):
    cfg = study_run["tmp"] / "out" / "tiny" / "best_config.json"
    best = json.loads(cfg.read_text())
    r = subprocess.run([sys.executable, str(SFT), "--config", str(cfg), "--output_dir", str(tmp_path / "m"),
                        "--max_steps", "1", "--eval_steps", "1"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    args = train.SFTArgs  # the same parser the training used accepts every key
    from lib.config import parse_args

    parsed = parse_args(args, ["--config", str(cfg)])
    for k, v in best.items():
        assert getattr(parsed, k) == v, k
    assert any((tmp_path / "m").rglob("*.safetensors"))
