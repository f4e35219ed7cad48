"""Every trial of a study draws new parameters: across `--resume`, across the workers of one machine and across
machines running the same command (issue #19, item 1: the sampler was seeded `seed + worker_index` on every run,
so each resume and each machine replayed the same draws).

The trials here are a stand-in process that writes the metric the real training would (`metadata.json` with
`final_val_cer`), so a study of a dozen trials takes seconds; tests/test_search_distributed.py does the same checks
with real training on PostgreSQL, SQLite and the journal file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from lib.search.driver import RunSpec, create_or_load_study, run_search
from lib.search.storage import NODE_ENV
from lib.search.study import make_sampler, trial_seed

REPO = Path(__file__).resolve().parents[1]
# a "trial": reads its config, waits `sleep_s`, writes the final validation CER the driver reads
FAKE_TRIAL = [sys.executable, "-c",
              "import json, math, pathlib, sys, time\n"
              "a = sys.argv; out = pathlib.Path(a[a.index('--output_dir') + 1])\n"
              "cfg = json.loads(pathlib.Path(a[a.index('--config') + 1]).read_text())\n"
              "time.sleep(cfg.get('sleep_s', 0))\n"
              "cer = abs(math.log10(cfg['learning_rate']) + 4) + cfg.get('warmup_ratio', 0)\n"
              "(out / 'metadata.json').write_text(json.dumps({'final_val_cer': cer}))\n"]
SPACE = {"learning_rate": {"type": "loguniform", "low": 1e-6, "high": 1e-2},
         "warmup_ratio": {"type": "uniform", "low": 0.0, "high": 0.1}}
GRID = {"lora_r": {"type": "categorical", "choices": [8, 16, 32]},
        "warmup_ratio": {"type": "categorical", "choices": [0.0, 0.05]},
        "learning_rate": {"type": "categorical", "choices": [1e-4]}}


def _spec(tmp_path, mode="random", space=SPACE, sleep_s=0.0, name="seed") -> RunSpec:
    return RunSpec(study_name=name, storage=f"sqlite:///{tmp_path}/{name}.db", search_mode=mode, objective="eval_cer",
                   search_space=space, pruner={"type": "none"}, training_config={"sleep_s": sleep_s},
                   base_output_dir=str(tmp_path / "out"), studies_dir=str(tmp_path / "studies"), seed=3407,
                   trial_command=FAKE_TRIAL, heartbeat_interval=None, tpe_startup_trials=5)


def _param_sets(spec: RunSpec) -> list[tuple]:
    study = optuna.load_study(study_name=spec.study_name, storage=spec.storage)
    assert all(t.state == TrialState.COMPLETE for t in study.trials), [t.state for t in study.trials]
    return [tuple(sorted(t.params.items())) for t in study.trials]


@pytest.mark.parametrize("mode", ["random", "bayesian"])
def test_each_resume_draws_new_parameters(tmp_path, mode):
    # 4 invocations of `--resume --n-trials 2`: before the fix trials 0, 2, 4, 6 were identical (and 1, 3, 5, 7)
    spec = _spec(tmp_path, mode)
    for _ in range(4):
        run_search(spec, n_trials=2, resume=True)
    sets = _param_sets(spec)
    assert len(sets) == 8
    assert len(set(sets)) == 8, f"{8 - len(set(sets))} repeated parameter sets: {sets}"


def test_the_same_command_on_three_machines_draws_different_parameters(tmp_path):
    # "the same command with --resume on every machine": every machine's worker is worker 0 of its own run
    spec = _spec(tmp_path, "bayesian", sleep_s=0.3)
    create_or_load_study(spec, resume=True)
    spec_path = spec.save(tmp_path / "run_spec.json")
    procs = [subprocess.Popen([sys.executable, "-m", "lib.search.worker", str(spec_path), "--worker-index", "0",
                               "--n-trials", "3"], cwd=REPO, env={**os.environ, NODE_ENV: f"machine-{i}"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for i in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    sets = _param_sets(spec)
    assert len(sets) == 9 and len(set(sets)) == 9, sets
    study = optuna.load_study(study_name=spec.study_name, storage=spec.storage)
    assert {t.user_attrs["worker"]["node"] for t in study.trials} == {"machine-0", "machine-1", "machine-2"}


def test_grid_workers_share_one_grid_order(tmp_path):
    # The grid sampler's trial -> grid point map is a shuffle by its seed: workers seeded differently (seed + i)
    # ran some points twice and others never.
    spec = _spec(tmp_path, "grid", space=GRID, sleep_s=0.2)
    run_search(spec, n_trials=6, n_workers=2)
    sets = _param_sets(spec)
    assert len({t.user_attrs["worker"]["pid"] for t in optuna.load_study(study_name=spec.study_name,
                                                                          storage=spec.storage).trials}) == 2
    assert sorted(sets) == sorted({(("learning_rate", 1e-4), ("lora_r", r), ("warmup_ratio", w))
                                   for r in (8, 16, 32) for w in (0.0, 0.05)}), sets


def test_same_seed_same_study_and_trials_draw_apart(tmp_path):
    # seeded per trial: a study run again with the same seed makes the same draws, trial by trial
    first = _spec(tmp_path, "bayesian", name="a")
    again = _spec(tmp_path, "bayesian", name="b")
    run_search(first, n_trials=3)
    run_search(again, n_trials=3)
    assert _param_sets(first) == _param_sets(again)
    assert len({trial_seed(3407, n) for n in range(1000)}) == 1000
    assert trial_seed(3407, 5) != trial_seed(3408, 5)
    # the sampler itself: fresh samplers with one seed agree on trial 0 and differ between trials 0 and 1
    draws = []
    for _ in range(2):
        s = optuna.create_study(sampler=make_sampler("random", seed=1))
        draws.append([s.ask().suggest_float("x", 0, 1) for _ in range(2)])
    assert draws[0] == draws[1] and draws[0][0] != draws[0][1]
    summary = json.loads((Path(first.base_output_dir) / "a" / "summary.json").read_text())
    assert summary["n_trials_total"] == 3
