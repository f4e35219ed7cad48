"""Where a study lives: SQLite by default, any SQLAlchemy URL, or Optuna's journal file for parallel processes.

A storage is named by one string, so the search driver, its worker processes and every trial process (which
reports intermediate CER through `lib.search.pruning`) open the same study from the same argument:

- `sqlite:///optuna_studies/<study>.db` — the default; fine for one worker, and for a few processes on one machine
  (SQLite takes a file lock per write; Optuna retries).
- any RDB URL (`postgresql://user:pw@host/db`, `mysql+pymysql://...`) — several workers on several machines.
- `journal:<path>` or a path ending in `.log`/`.journal` — Optuna's `JournalStorage` on a `JournalFileBackend`:
  an append-only log with its own lock, the recommended storage for many processes on ONE machine (no SQLite locks).

Killed workers: RDB storages get Optuna's heartbeat (`heartbeat_interval`, `grace_period`): a trial whose worker
stopped beating is marked FAIL by the next worker that starts a trial. The journal storage has no heartbeat, so
`fail_dead_local_trials` checks the worker pid recorded on each running trial of this host instead.

Not for: choosing samplers or pruners (lib/search/study.py).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

__all__ = ["default_storage_url", "is_journal", "open_storage", "describe_storage", "fail_dead_local_trials",
           "fail_reason", "WORKER_ATTR", "FAIL_REASON_ATTR"]

WORKER_ATTR = "worker"  # user attr on each trial: {"host": ..., "pid": ...} of the worker process that runs it
FAIL_REASON_ATTR = "fail_reason"  # user attr: why a trial is FAIL (timeout, crash with exit code, worker died)
_JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")


def default_storage_url(study_name: str, root: str | os.PathLike = "optuna_studies") -> str:
    """`sqlite:///optuna_studies/<study>.db` (the folder is created)."""
    Path(root).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(root) / f'{study_name}.db'}"


def is_journal(url: str) -> bool:
    if url.startswith("journal:"):
        return True
    return "://" not in url and url.endswith(_JOURNAL_SUFFIXES)


def _journal_path(url: str) -> str:
    path = url[len("journal:"):] if url.startswith("journal:") else url
    if path.startswith("///"):
        path = path[2:]
    elif path.startswith("//"):
        path = path[2:]
    return path


def open_storage(url: str, *, heartbeat_interval: int | None = None, grace_period: int | None = None) -> Any:
    """An Optuna storage object for `url` (see the module docstring for the accepted forms).

    `heartbeat_interval`/`grace_period` (seconds) apply to RDB storages only; the workers that run trials pass them,
    trial processes that only report values do not (they must not beat for a trial they do not own).
    """
    import optuna

    if is_journal(url):
        from optuna.storages.journal import JournalFileBackend

        path = _journal_path(url)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    if "://" not in url:
        raise ValueError(f"--storage {url!r} is neither a database URL (sqlite:///x.db, postgresql://...) nor a "
                         f"journal file (journal:path or a path ending in {', '.join(_JOURNAL_SUFFIXES)})")
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///"):])
        if str(db) and db.parent != Path(""):
            db.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # several processes write the same file: wait for SQLite's lock instead of failing after 5 s
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    if heartbeat_interval:
        import warnings

        kwargs.update(heartbeat_interval=int(heartbeat_interval),
                      grace_period=int(grace_period) if grace_period else None,
                      heartbeat_stale_trial_callback=_mark_stale)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, **kwargs)
    return optuna.storages.RDBStorage(url, **kwargs)


def stale_reason_key(number: int) -> str:
    """Study user attr holding why trial `number` was failed by the heartbeat (a finished trial is read-only)."""
    return f"trial_{number}_{FAIL_REASON_ATTR}"


def _mark_stale(study: Any, trial: Any) -> None:
    """Heartbeat callback: say why the trial failed (its worker stopped sending heartbeats)."""
    study.set_user_attr(stale_reason_key(trial.number),
                        "its worker stopped sending heartbeats (killed or lost); marked failed")


def fail_reason(study: Any, trial: Any) -> str | None:
    """Why a FAIL trial failed: its own `fail_reason`, or the heartbeat's note on the study."""
    return trial.user_attrs.get(FAIL_REASON_ATTR) or study.user_attrs.get(stale_reason_key(trial.number))


def describe_storage(url: str) -> str:
    if is_journal(url):
        return f"journal file {_journal_path(url)}"
    if url.startswith("sqlite:///"):
        return f"SQLite {url[len('sqlite:///'):]}"
    return url.split("@")[-1] if "@" in url else url


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_local_trials(study: Any) -> list[int]:
    """Mark FAIL every RUNNING trial whose worker ran on this host and whose process no longer exists.

    This is the journal storage's stand-in for the heartbeat, and a fast path for RDB storages too (a worker on
    this machine that was killed is noticed at once instead of after the grace period). Returns the trial numbers.
    """
    from optuna.trial import TrialState

    host = socket.gethostname()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = t.user_attrs.get(WORKER_ATTR) or {}
        if w.get("host") != host or not isinstance(w.get("pid"), int) or _pid_alive(w["pid"]):
            continue
        try:
            study._storage.set_trial_user_attr(t._trial_id, FAIL_REASON_ATTR,
                                               f"worker process {w['pid']} on {host} died while the trial ran")
            if study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                failed.append(t.number)
        except Exception:  # another worker got there first
            pass
    return failed
