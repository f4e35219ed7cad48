"""Storages: SQLite default, journal file, and killed workers (heartbeat for RDB, dead-pid check for journal).

These run real worker processes (`python -m lib.search.worker`) whose trial is a process that only waits; the
worker is SIGKILLed mid-trial, as a crashed machine or an OOM kill would do. No training here (that is
tests/test_search_study.py): what is tested is the storage's bookkeeping.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from lib.search.driver import RunSpec, create_or_load_study
from lib.search.storage import (FAIL_REASON_ATTR, default_storage_url, fail_reason, describe_storage, fail_dead_local_trials,
                                is_journal, open_storage)

REPO = Path(__file__).resolve().parents[1]
# a "trial" that waits, and exits when its worker is gone (what the pruning callback does inside real training)
WAITING_TRIAL = [sys.executable, "-c",
                 "import time; from lib.search.trial import start_parent_watch; start_parent_watch(0.2); "
                 "time.sleep(120)"]


def test_storage_urls(tmp_path):
    url = default_storage_url("s1", tmp_path / "studies")
    assert url == f"sqlite:///{tmp_path}/studies/s1.db" and (tmp_path / "studies").is_dir()
    assert is_journal("journal:x/y") and is_journal("optuna_studies/s.journal.log") and not is_journal(url)
    assert describe_storage(url).startswith("SQLite")
    with pytest.raises(ValueError, match="neither a database URL"):
        open_storage("optuna_studies/s.db")


def _spec(tmp_path, storage, **kw):
    return RunSpec(study_name="kill", storage=storage, search_mode="random", objective="eval_cer",
                   search_space={"learning_rate": {"type": "loguniform", "low": 1e-5, "high": 1e-3}},
                   pruner={"type": "none"}, training_config={}, base_output_dir=str(tmp_path / "out"),
                   studies_dir=str(tmp_path / "studies"), trial_command=WAITING_TRIAL, **kw)


def _start_worker_and_kill_it(spec, tmp_path):
    spec_path = spec.save(tmp_path / "spec.json")
    worker = subprocess.Popen([sys.executable, "-m", "lib.search.worker", str(spec_path), "--n-trials", "1"],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    study = optuna.load_study(study_name=spec.study_name, storage=open_storage(spec.storage))
    deadline = time.time() + 90
    while time.time() < deadline:  # wait until the trial process runs
        trials = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if trials and "output_dir" in trials[0].user_attrs and (Path(trials[0].user_attrs["output_dir"]) /
                                                                 "train.log").exists():
            break
        time.sleep(0.3)
    else:
        worker.kill()
        pytest.fail("the worker never started its trial")
    time.sleep(1.0)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    return study


def _no_orphan(tmp_path):
    # the trial process notices that its worker died and exits (it must not hold a GPU for nobody)
    out = subprocess.run(["pgrep", "-f", "start_parent_watch"], capture_output=True, text=True).stdout.split()
    alive = []
    for p in out:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and int(p) != os.getpid():  # a zombie has exited (only its parent has not reaped it)
            alive.append(p)
    return alive


def test_killed_worker_is_failed_by_heartbeat(tmp_path):
    spec = _spec(tmp_path, f"sqlite:///{tmp_path}/kill.db", heartbeat_interval=1, grace_period=2)
    create_or_load_study(spec, resume=False)
    study = _start_worker_and_kill_it(spec, tmp_path)
    time.sleep(3.0)  # > grace period
    hb = optuna.load_study(study_name="kill", storage=open_storage(spec.storage, heartbeat_interval=1, grace_period=2))
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        optuna.storages.fail_stale_trials(hb)
    (t,) = hb.get_trials()
    assert t.state == TrialState.FAIL
    assert "heartbeat" in fail_reason(hb, t)
    deadline = time.time() + 10
    while _no_orphan(tmp_path) and time.time() < deadline:
        time.sleep(0.3)
    assert not _no_orphan(tmp_path)


def test_killed_worker_on_journal_storage_is_failed_by_pid_check(tmp_path):
    spec = _spec(tmp_path, f"journal:{tmp_path}/kill.journal.log", heartbeat_interval=None)
    create_or_load_study(spec, resume=False)
    study = _start_worker_and_kill_it(spec, tmp_path)
    fresh = optuna.load_study(study_name="kill", storage=open_storage(spec.storage))
    assert fresh.trials[0].state == TrialState.RUNNING  # the journal has no heartbeat ...
    assert fail_dead_local_trials(fresh) == [0]  # ... the dead worker's pid is noticed instead
    t = optuna.load_study(study_name="kill", storage=open_storage(spec.storage)).trials[0]
    assert t.state == TrialState.FAIL and "died while the trial ran" in t.user_attrs[FAIL_REASON_ATTR]
