"""The search driver: build the study, run trials (each the training in its own process), write results.

`run_search(settings)` is what `core/gemma_hyperparameter_search.py` calls. One study can be worked on by

- `n_workers` processes started here (`python -m lib.search.worker <run_spec.json>`), each running its share of
  `n_trials`, optionally pinned to GPUs (`gpus`), all on the same storage;
- any number of other machines running the same command with the same `--storage` URL and `--resume`.

Each trial: the sampler picks parameters from the search space, they are laid over the fixed training
configuration (base_config < config file < command line), the result is written to
`<base_output_dir>/<study>/trial_NNNN/trial_config.json`, and `python -m lib.search.train_trial --config
trial_config.json --output_dir ... --optuna_storage ... --optuna_study_name ... --optuna_trial_number N` runs with a
wall-clock limit: core/sft_gemma.py's training with `lib.search.pruning.OptunaPruningCallback` passed in, which
reports the validation metric and stops a pruned trial (exit status 77). The trial's value is the saved model's
final validation metric from its metadata.json (`lib.results.read_training_metadata`), else the last value the
callback reported. The trial is COMPLETE, PRUNED, or FAIL with a reason (`fail_reason` user attribute: time limit,
exit status + log tail, no metric reported, worker died).

Not for: parsing the command line (core/gemma_hyperparameter_search.py) or writing tables/plots (report.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from lib.results import TrainingMetadata, atomic_write_json, read_training_metadata
from lib.search import report
from lib.search.space import grid_values, suggest
from lib.search.storage import (FAIL_REASON_ATTR, WORKER_ATTR, describe_storage, fail_dead_local_trials,
                                fail_reason, fail_stale, open_storage, worker_identity)
from lib.search.study import make_pruner, make_sampler
from lib.search.trial import PARENT_PID_ENV, PRUNED_EXIT_CODE, run_trial_process, tail

__all__ = ["RunSpec", "TrialFailed", "METRICS", "create_or_load_study", "run_worker", "run_search",
           "default_trial_command"]

log = logging.getLogger("search")
REPO_ROOT = Path(__file__).resolve().parents[2]
METRICS = {"eval_cer": ["minimize"], "eval_loss": ["minimize"], "eval_cer+wall_time": ["minimize", "minimize"]}


class TrialFailed(Exception):
    """A trial that did not produce its objective; the message is also its `fail_reason`."""


def default_trial_command() -> list[str]:
    """This Python running the trial entry point as a module (lib/search/train_trial.py)."""
    return [sys.executable, "-m", "lib.search.train_trial"]


@dataclasses.dataclass
class RunSpec:
    """Everything a worker needs, resolved once by the driver and written to `run_spec.json`."""

    study_name: str
    storage: str
    search_mode: str
    objective: str
    search_space: dict
    pruner: dict | None
    training_config: dict  # fixed training arguments every trial starts from
    base_output_dir: str
    studies_dir: str
    seed: int | None = 3407
    trial_timeout: float | None = None
    timeout: float | None = None
    trial_command: list[str] = dataclasses.field(default_factory=default_trial_command)
    heartbeat_interval: int | None = 60
    grace_period: int | None = None
    keep_all: bool = False
    tpe_startup_trials: int = 5

    @property
    def metric(self) -> str:
        return self.objective.split("+")[0]

    @property
    def study_dir(self) -> Path:
        return Path(self.base_output_dir) / self.study_name

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(dataclasses.asdict(self), path)

    @classmethod
    def load(cls, path: str | Path) -> "RunSpec":
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


def _storage(spec: RunSpec, *, heartbeat: bool):
    if heartbeat:
        return open_storage(spec.storage, heartbeat_interval=spec.heartbeat_interval, grace_period=spec.grace_period)
    return open_storage(spec.storage)


def _sampler(spec: RunSpec):
    # One seed for the whole study, in every worker and on every machine: each trial's draws are seeded by
    # (seed, trial number), so no two trials repeat each other (lib/search/study.py, "Seeding").
    grid = grid_values(spec.search_space) if spec.search_mode == "grid" else None
    return make_sampler(spec.search_mode, seed=spec.seed, grid=grid,
                        multi_objective=len(METRICS[spec.objective]) > 1, n_startup_trials=spec.tpe_startup_trials)


def _space_difference(stored: dict, wanted: dict) -> str:
    """What differs between two search spaces, for one line of an error message."""
    parts = []
    for name in sorted(set(stored) | set(wanted)):
        if name not in wanted:
            parts.append(f"{name} only in the study")
        elif name not in stored:
            parts.append(f"{name} only in this config")
        elif stored[name] != wanted[name]:
            parts.append(f"{name}: {json.dumps(stored[name])} in the study, {json.dumps(wanted[name])} here")
    return "; ".join(parts)


def create_or_load_study(spec: RunSpec, *, resume: bool):
    """Create the study (or open it with `resume`), storing the settings trial processes need."""
    storage = _storage(spec, heartbeat=False)
    directions = METRICS[spec.objective]
    try:
        study = optuna.create_study(study_name=spec.study_name, storage=storage, directions=directions,
                                    sampler=_sampler(spec), pruner=make_pruner(spec.pruner),
                                    load_if_exists=resume)
    except optuna.exceptions.DuplicatedStudyError:
        raise SystemExit(f"study '{spec.study_name}' already exists in {describe_storage(spec.storage)}: pass "
                         f"--resume to add trials to it, or choose another --study-name") from None
    stored = study.user_attrs.get("search")
    settings = {"metric": spec.metric, "objective": spec.objective, "pruner": spec.pruner,
                "search_space": spec.search_space, "search_mode": spec.search_mode,
                "base_training_config": spec.training_config}
    if stored is None:
        study.set_user_attr("search", settings)
    else:
        if [d.name.lower() for d in study.directions] != directions or stored.get("objective") != spec.objective:
            raise SystemExit(f"study '{spec.study_name}' optimises {stored.get('objective')}; --objective "
                             f"{spec.objective} cannot resume it (choose another --study-name)")
        if stored.get("search_space") is not None and stored.get("search_space") != spec.search_space:
            # its trials would not be comparable, and TPE would model a space the trials were not drawn from
            raise SystemExit(f"study '{spec.study_name}' in {describe_storage(spec.storage)} searches another space "
                             f"({_space_difference(stored['search_space'], spec.search_space)}): resume it with "
                             f"its own search space, or choose another --study-name; the study was not changed")
        changed = [k for k in ("base_training_config", "pruner", "search_mode") if stored.get(k) != settings[k]]
        if changed:
            log.warning("resuming '%s' with another %s than it was stored with; new trials use this one, and it is "
                        "stored", spec.study_name, ", ".join(changed))
            study.set_user_attr("search", settings)
    return study


def _objective_factory(spec: RunSpec, storage, *, gpu: str | None):
    study_id = storage.get_study_id_from_name(spec.study_name)

    def objective(trial: "optuna.Trial"):
        params = suggest(trial, spec.search_space)
        trial_dir = (spec.study_dir / f"trial_{trial.number:04d}").resolve()
        trial_dir.mkdir(parents=True, exist_ok=True)
        config = report.best_training_config(spec.training_config, params)
        cfg_path = atomic_write_json(config, trial_dir / "trial_config.json")
        trial.set_user_attr(WORKER_ATTR, worker_identity(gpu))
        trial.set_user_attr("output_dir", str(trial_dir))
        trial.set_user_attr("training_config", config)
        trial.set_user_attr("decoded_params", params)
        cmd = list(spec.trial_command) + ["--config", str(cfg_path), "--output_dir", str(trial_dir),
                                          "--optuna_storage", spec.storage, "--optuna_study_name", spec.study_name,
                                          "--optuna_trial_number", str(trial.number)]
        env = dict(os.environ)
        env[PARENT_PID_ENV] = str(os.getpid())
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        log.info("trial %d: %s", trial.number, json.dumps(params, ensure_ascii=False))
        res = run_trial_process(cmd, timeout_s=spec.trial_timeout, log_path=trial_dir / "train.log", env=env,
                                cwd=str(REPO_ROOT))
        trial.set_user_attr("duration_s", round(res.duration_s, 2))
        trial.set_user_attr("returncode", res.returncode)
        # what the trial process stored (the Trial object here does not see it): public storage API by id
        attrs = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)).user_attrs
        if res.timed_out:
            raise TrialFailed(f"killed after the trial time limit of {spec.trial_timeout:g} s "
                              f"(--trial-timeout); log: {res.log_path}")
        if res.returncode == PRUNED_EXIT_CODE or (res.returncode != 0 and "pruned_at_step" in attrs):
            log.info("trial %d pruned at step %s (%s=%.4g, median of completed trials %s)", trial.number,
                     attrs.get("pruned_at_step"), spec.metric, attrs.get("pruned_value", math.nan),
                     attrs.get("median_at_pruned_step"))
            raise optuna.TrialPruned(f"pruned at step {attrs.get('pruned_at_step')}")
        if res.returncode != 0:
            sig = f" (killed by signal {res.killed_by_signal})" if res.killed_by_signal else ""
            raise TrialFailed(f"training exited with status {res.returncode}{sig}; last log lines "
                              f"({res.log_path}):\n{tail(res.log_path)}")
        value = _final_metric(trial_dir, spec.metric)
        if value is not None:  # the training's final evaluation (all validation samples, the saved model)
            trial.set_user_attr("objective_value", value)
            trial.set_user_attr("objective_source", "metadata.json")
        else:  # the last value the pruning callback saw
            value = attrs.get("objective_value")
        if value is None:
            raise TrialFailed(f"training finished but reported no {spec.metric}: the trial must evaluate on a "
                              f"validation split (eval_steps <= max steps) — log: {res.log_path}")
        if len(METRICS[spec.objective]) > 1:
            return float(value), float(res.duration_s)
        return float(value)

    return objective


# the study's metric -> the TrainingMetadata key of its final value (the saved model on the whole validation set)
_FINAL_KEYS = {"eval_cer": "final_val_cer", "eval_loss": "final_val_loss"}


def _final_metric(trial_dir: Path, metric: str) -> float | None:
    """The training's final validation metric, from the trial's metadata.json."""
    meta: TrainingMetadata = read_training_metadata(trial_dir) or {}  # type: ignore[typeddict-item]
    value = meta.get(_FINAL_KEYS.get(metric, ""))  # type: ignore[misc]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _after_trial(spec: RunSpec):
    def callback(study, frozen) -> None:
        if frozen.state == TrialState.FAIL:
            reason = fail_reason(study, frozen) or ""
            log.warning("trial %d failed: %s", frozen.number, reason.splitlines()[0] if reason else "?")
        _fail_dead(study)
        report.cleanup_checkpoints(study, keep_all=spec.keep_all, root=spec.study_dir)

    return callback


def _fail_dead(study) -> list[int]:
    """Mark FAIL the trials of workers that died: on this node by pid, elsewhere by the heartbeat."""
    dead = fail_dead_local_trials(study)
    stale = fail_stale(study)
    if dead or stale:
        log.warning("trials %s were left RUNNING by a dead worker: marked failed", sorted(dead + stale))
    return dead + stale


def run_worker(spec: RunSpec, *, n_trials: int | None, worker_index: int = 0, gpu: str | None = None) -> int:
    """Run up to `n_trials` trials of the study in this process; returns how many this worker finished."""
    storage = _storage(spec, heartbeat=True)
    study = optuna.load_study(study_name=spec.study_name, storage=storage, sampler=_sampler(spec),
                              pruner=make_pruner(spec.pruner))
    _fail_dead(study)
    n_before = len(study.trials)

    objective = _objective_factory(spec, storage, gpu=gpu)

    def wrapped(trial):
        try:
            return objective(trial)
        except TrialFailed as exc:
            trial.set_user_attr(FAIL_REASON_ATTR, str(exc))
            raise

    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_exit)  # SIGTERM -> SystemExit -> the running trial's group is killed
    try:
        study.optimize(wrapped, n_trials=n_trials, timeout=spec.timeout, catch=(TrialFailed,),
                       callbacks=[_after_trial(spec)], gc_after_trial=False, show_progress_bar=False)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return len(study.trials) - n_before


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


def _spawn_worker(spec_path: Path, *, n_trials: int | None, worker_index: int, gpu: str | None, log_path: Path):
    cmd = [sys.executable, "-m", "lib.search.worker", str(spec_path), "--worker-index", str(worker_index)]
    if n_trials is not None:
        cmd += ["--n-trials", str(n_trials)]
    if gpu is not None:
        cmd += ["--gpu", gpu]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log_path, "ab")
    log.info("worker %d: %s (log %s)", worker_index, shlex.join(cmd), log_path)
    return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(REPO_ROOT)), fh


def _shares(n_trials: int | None, n_workers: int) -> list[int | None]:
    if n_trials is None:
        return [None] * n_workers
    return [n_trials // n_workers + (1 if i < n_trials % n_workers else 0) for i in range(n_workers)]


def run_search(spec: RunSpec, *, n_trials: int | None, n_workers: int = 1, resume: bool = False,
               gpus: list[str] | None = None, enqueue: list[dict] | None = None,
               baseline: dict | None = None) -> dict[str, Any]:
    """Create/resume the study, run it with `n_workers` processes, write tables/plots/best config. Returns a summary."""
    start = time.time()
    spec.study_dir.mkdir(parents=True, exist_ok=True)
    study = create_or_load_study(spec, resume=resume)
    n_existing = len(study.trials)
    if baseline:  # the fixed config's own values: measured once per study
        study.enqueue_trial(baseline, skip_if_exists=True, user_attrs={"baseline": True})
    for params in enqueue or []:
        study.enqueue_trial(params)
    spec_path = spec.save(spec.study_dir / "run_spec.json")
    log.info("study '%s' (%s, %s, objective %s): %d trials already, running %s more with %d worker(s)",
             spec.study_name, describe_storage(spec.storage), spec.search_mode, spec.objective, n_existing,
             "unbounded" if n_trials is None else n_trials, n_workers)
    shares = _shares(n_trials, n_workers)
    gpus = gpus or []
    children = []
    try:
        for i in range(1, n_workers):
            if shares[i] == 0:
                continue
            gpu = gpus[i % len(gpus)] if gpus else None
            children.append(_spawn_worker(spec_path, n_trials=shares[i], worker_index=i, gpu=gpu,
                                          log_path=spec.study_dir / f"worker_{i}.log"))
        if shares[0] != 0:
            run_worker(spec, n_trials=shares[0], worker_index=0, gpu=gpus[0] if gpus else None)
        for proc, fh in children:
            rc = proc.wait()
            fh.close()
            if rc != 0:
                log.warning("worker pid %d exited with status %d (see %s)", proc.pid, rc, spec.study_dir)
    finally:
        for proc, fh in children:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            fh.close()

    study = optuna.load_study(study_name=spec.study_name, storage=_storage(spec, heartbeat=True))
    _fail_dead(study)
    csv_path, md_path = report.write_trial_table(study, spec.study_dir)
    plots = report.write_plots(study, spec.study_dir)
    best = report.write_best_outputs(study, out_dir=spec.study_dir, studies_dir=spec.studies_dir)
    cleaned = report.cleanup_checkpoints(study, keep_all=spec.keep_all, root=spec.study_dir)
    states = {s.name: len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
    summary = {"study_name": spec.study_name, "storage": spec.storage, "objective": spec.objective,
               "n_trials_total": len(study.trials), "n_trials_this_run": len(study.trials) - n_existing,
               "states": {k: v for k, v in states.items() if v}, "wall_s": round(time.time() - start, 1),
               "trials_csv": str(csv_path), "trials_md": str(md_path), "plots": [str(p) for p in plots],
               "freed_bytes": cleaned["freed_bytes"], **best}
    atomic_write_json(summary, spec.study_dir / "summary.json")
    return summary
