"""Which running trials a worker may fail by pid: only those of its own node (host name + boot id + PID namespace),
and only when the recorded process is gone or its pid now belongs to another process (start time differs).

Two containers sharing a host name, or two machines in a test, must not fail each other's live trials; a pid the
kernel reused after the worker died must not keep a dead trial RUNNING.
"""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
from optuna.trial import TrialState

from lib.search.storage import NODE_ENV, WORKER_ATTR, fail_dead_local_trials, node_id, worker_identity


def _running(study, worker: dict):
    t = study.ask()
    t.set_user_attr(WORKER_ATTR, worker)
    return t.number


def test_only_dead_workers_of_this_node_are_failed(monkeypatch):
    monkeypatch.delenv(NODE_ENV, raising=False)
    me = worker_identity()
    assert me["node"] == node_id() and me["pid"] == os.getpid()
    assert me["pid_start"] is None or isinstance(me["pid_start"], int)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    study = optuna.create_study()
    alive = _running(study, me)                                             # this worker: alive
    gone = _running(study, {**me, "pid": dead_pid, "pid_start": None})      # its process exited
    other_node = _running(study, {**me, "node": "another-machine", "pid": dead_pid})  # not ours to judge
    legacy = _running(study, {"host": me["host"], "pid": dead_pid})         # a record from before node ids
    failed = fail_dead_local_trials(study)
    if me["pid_start"] is not None:  # Linux: a reused pid (same number, another start time) counts as dead
        reused = _running(study, {**me, "pid_start": me["pid_start"] + 1})
        assert fail_dead_local_trials(study) == [reused]
    assert sorted(failed) == sorted([gone, legacy])
    states = {t.number: t.state for t in study.trials}
    assert states[alive] == TrialState.RUNNING and states[other_node] == TrialState.RUNNING
    assert "died while the trial ran" in study.trials[gone].user_attrs["fail_reason"]


def test_node_override(monkeypatch):
    monkeypatch.setenv(NODE_ENV, "rack3-node7")
    assert node_id() == "rack3-node7" and worker_identity("1")["gpu"] == "1"
    monkeypatch.delenv(NODE_ENV)
    assert node_id().startswith(__import__("socket").gethostname())
