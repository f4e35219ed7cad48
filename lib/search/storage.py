"""Where a study lives: SQLite by default, any SQLAlchemy URL, or Optuna's journal file for parallel processes.

A storage is named by one string, so the search driver, its worker processes and every trial process (which
reports intermediate CER through `lib.search.pruning`) open the same study from the same argument:

- `sqlite:///optuna_studies/<study>.db` — the default; fine for one worker, and for a few processes on one machine
  (SQLite takes a file lock per write; Optuna retries).
- any RDB URL (`postgresql://user:pw@host/db`, `mysql+pymysql://...`) — several workers on several machines.
  `postgresql://` (and `postgres://`) uses the psycopg 3 driver (`pip install "psycopg[binary]"`, in
  requirements.txt) unless psycopg2 is installed; connections time out after 10 s (`?connect_timeout=N` in the URL
  overrides) and are checked before use (a server restart or a dropped idle connection during an hours-long trial
  is reconnected, not a crash).
- `journal:<path>` or a path ending in `.log`/`.journal` — Optuna's `JournalStorage` on a `JournalFileBackend`:
  an append-only log with its own lock, the recommended storage for many processes on ONE machine (no SQLite locks).

Killed workers: RDB storages get Optuna's heartbeat (`heartbeat_interval`, `grace_period`): a trial whose worker
stopped beating is marked FAIL by the next worker that starts or finishes a trial (`fail_stale`). The journal
storage has no heartbeat, so `fail_dead_local_trials` checks the worker process recorded on each running trial of
this machine instead. "This machine" is the node id (`node_id()`: host name, boot id and PID namespace, or
`GEMMA_OCR_SEARCH_NODE`): two containers that share a host name but not their process table never judge each
other's trials by pid, and a recycled pid is told apart by its process start time.

Errors a user can make (an unreachable server, a wrong password, a missing driver, a database whose Optuna schema
is older or newer than this Optuna) raise `StorageError` with one line that says what to do; the database is not
touched.

Not for: choosing samplers or pruners (lib/search/study.py).
"""

from __future__ import annotations

import os
import random
import socket
import time
from pathlib import Path
from typing import Any

from lib.config import ConfigError

__all__ = ["default_storage_url", "is_journal", "open_storage", "describe_storage", "fail_dead_local_trials",
           "fail_stale", "fail_reason", "node_id", "worker_identity", "StorageError", "WORKER_ATTR",
           "FAIL_REASON_ATTR", "NODE_ENV"]

WORKER_ATTR = "worker"  # user attr on each trial: {"host": ..., "pid": ...} of the worker process that runs it
FAIL_REASON_ATTR = "fail_reason"  # user attr: why a trial is FAIL (timeout, crash with exit code, worker died)
_JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")
NODE_ENV = "GEMMA_OCR_SEARCH_NODE"  # overrides node_id(): the name of this machine in the study's worker records
CONNECT_TIMEOUT_S = 10


class StorageError(ConfigError):
    """The study's storage cannot be used as given; the message (one line) says why and what to do."""


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


def _sqlalchemy_url(url: str) -> str:
    """`postgresql://` means psycopg2 to SQLAlchemy; use psycopg 3 (the driver in requirements.txt) unless psycopg2
    is the one installed. An explicit driver (`postgresql+psycopg2://`, `mysql+pymysql://`) is kept."""
    import importlib.util

    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
                return "postgresql+psycopg://" + url[len(prefix):]
            return "postgresql://" + url[len(prefix):]
    return url


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # several processes write the same file: wait for SQLite's lock instead of failing after 5 s
        return {"connect_args": {"timeout": 120}}
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgresql") and "connect_timeout=" not in url:
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    return kwargs


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    text = text.split("\n(Background on this error")[0]
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def open_storage(url: str, *, heartbeat_interval: int | None = None, grace_period: int | None = None) -> Any:
    """An Optuna storage object for `url` (see the module docstring for the accepted forms).

    `heartbeat_interval`/`grace_period` (seconds) apply to RDB storages only; the workers that run trials pass them,
    trial processes that only report values do not (they must not beat for a trial they do not own).
    Raises `StorageError` (one line) when the storage cannot be opened; nothing in it is changed then.
    """
    import optuna

    if is_journal(url):
        from optuna.storages.journal import JournalFileBackend

        path = _journal_path(url)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    if "://" not in url:
        raise StorageError(f"--storage {url!r} is neither a database URL (sqlite:///x.db, postgresql://...) nor a "
                           f"journal file (journal:path or a path ending in {', '.join(_JOURNAL_SUFFIXES)})")
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///"):])
        if str(db) and db.parent != Path(""):
            db.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"engine_kwargs": _engine_kwargs(url)}
    if heartbeat_interval:
        kwargs.update(heartbeat_interval=int(heartbeat_interval),
                      grace_period=int(grace_period) if grace_period else None,
                      heartbeat_stale_trial_callback=_mark_stale)
    return _rdb_storage(_sqlalchemy_url(url), describe_storage(url), kwargs)


def _rdb_storage(url: str, where: str, kwargs: dict[str, Any]) -> Any:
    import warnings

    import optuna
    import sqlalchemy.exc

    def create():
        # Several workers started together on an empty database all create Optuna's tables (and PostgreSQL's enum
        # types, the alembic stamp, the version row): the losers of that race get "already exists" / duplicate-key
        # errors. Once the winner committed, the tables are there and a retry just opens them.
        for attempt in range(_CREATE_RETRIES + 1):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna.storages.RDBStorage(url, **kwargs)
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError,
                    sqlalchemy.exc.OperationalError) as exc:
                if attempt == _CREATE_RETRIES or not _creation_race(exc):
                    raise
                time.sleep(random.uniform(0.1, 0.5) * (attempt + 1))
        raise AssertionError("unreachable")

    try:
        return create()
    except ImportError as exc:
        module = getattr(exc.__cause__, "name", None) or getattr(exc, "name", None) or "its driver"
        hint = (' (pip install "psycopg[binary]")' if url.startswith("postgresql") else
                " (e.g. pip install pymysql, and write mysql+pymysql://...)" if url.startswith("mysql") else "")
        raise StorageError(f"the storage {where} needs the database driver {module}, which is not installed{hint}"
                           ) from None
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError) as exc:
        raise StorageError(f"--storage {where} is not a database URL SQLAlchemy understands ({_one_line(exc)}); "
                           f"e.g. postgresql://user:password@host:5432/optuna") from None
    except sqlalchemy.exc.OperationalError as exc:
        check = ("check the path in --storage and that its folder is writable" if url.startswith("sqlite") else
                 "check the host, port, user, password and database name in --storage, and that the server runs")
        raise StorageError(f"cannot open the study database {where}: {_one_line(exc)} — {check}") from None
    except sqlalchemy.exc.DBAPIError as exc:
        raise StorageError(f"the study database {where} refused Optuna: {_one_line(exc)}") from None
    except RuntimeError as exc:
        msg = str(exc)
        if "table schema" not in msg:
            raise
        shown = _masked_url(url)
        if "optuna storage upgrade" in msg:
            todo = (f"back the database up, then upgrade it with `optuna storage upgrade --storage '{shown}'` "
                    f"(every machine of the study must then run this Optuna)")
        else:
            todo = "it was written by a newer Optuna: install that version (pip install -U optuna) on this machine"
        written_by = msg.split("(set up by ")[-1].split(")")[0] if "(set up by " in msg else "another Optuna"
        revision = _schema_revision(url)
        raise StorageError(f"the study database {where} has an Optuna schema this Optuna ({optuna.__version__}) "
                           f"cannot use (revision {revision}, set up by {written_by}); {todo}; nothing was changed"
                           ) from None


_CREATE_RETRIES = 6


def _creation_race(exc: BaseException) -> bool:
    """Whether a database error at storage creation is another process creating the same tables right now."""
    import sqlalchemy.exc

    text = str(getattr(exc, "orig", None) or exc).lower()
    return (isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in text or "duplicate" in text
            or "database is locked" in text)


def _masked_url(url: str) -> str:
    try:
        import sqlalchemy.engine

        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1] if "@" in url else url


def _schema_revision(url: str) -> str:
    """The alembic revision a database's Optuna tables are at ('?' where it cannot be read)."""
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, **_engine_kwargs(url))
        try:
            with engine.connect() as conn:
                return str(conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar())
        finally:
            engine.dispose()
    except Exception:
        return "?"


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
    """A storage for messages: the journal path, the SQLite file, or the database URL with its password hidden."""
    if is_journal(url):
        return f"journal file {_journal_path(url)}"
    if url.startswith("sqlite:///"):
        return f"SQLite {url[len('sqlite:///'):]}"
    return _masked_url(url)


def node_id() -> str:
    """This machine's name in the study: host name, boot id and PID namespace (or $GEMMA_OCR_SEARCH_NODE).

    Worker pids are only meaningful inside one PID namespace of one boot of one machine: containers that share a
    host name, or a machine that rebooted, must not judge each other's trials by pid.
    """
    override = os.environ.get(NODE_ENV)
    if override:
        return override
    parts = [socket.gethostname()]
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8])
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        pass
    return ":".join(parts)


def _process_start(pid: int) -> int | None:
    """Start time of process `pid` (clock ticks since boot), or None where /proc has no such process."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def worker_identity(gpu: str | None = None) -> dict[str, Any]:
    """The WORKER_ATTR record of this process: host, node, pid, its start time, GPU."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "node": node_id(), "pid": pid, "pid_start": _process_start(pid),
            "gpu": gpu}


def fail_stale(study: Any) -> list[int]:
    """Optuna's heartbeat check (RDB storages with a heartbeat): mark FAIL every RUNNING trial whose worker has not
    beaten within the grace period. Returns their numbers; [] for storages without a heartbeat."""
    import warnings

    import optuna
    from optuna.storages._heartbeat import is_heartbeat_enabled

    if not is_heartbeat_enabled(study._storage):
        return []
    running = optuna.trial.TrialState.RUNNING
    before = {t.number for t in study.get_trials(deepcopy=False, states=(running,))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return sorted(t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
                  if t.number in before)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead(worker: dict, node: str, host: str) -> bool:
    """Whether the worker recorded on a trial ran on this node and is gone (pid absent, or reused by another)."""
    pid = worker.get("pid")
    if not isinstance(pid, int):
        return False
    if "node" in worker:
        if worker["node"] != node:
            return False
    elif worker.get("host") != host:  # a record from before node ids: its host name is all there is
        return False
    if not _pid_alive(pid):
        return True
    start = worker.get("pid_start")
    now = _process_start(pid)
    return isinstance(start, int) and now is not None and now != start


def fail_dead_local_trials(study: Any) -> list[int]:
    """Mark FAIL every RUNNING trial whose worker ran on this node and whose process no longer exists.

    This is the journal storage's stand-in for the heartbeat, and a fast path for RDB storages too (a worker on
    this machine that was killed is noticed at once instead of after the grace period). Returns the trial numbers.
    """
    from optuna.trial import TrialState

    host, node = socket.gethostname(), node_id()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = t.user_attrs.get(WORKER_ATTR) or {}
        if not _dead(w, node, host):
            continue
        try:
            study._storage.set_trial_user_attr(t._trial_id, FAIL_REASON_ATTR,
                                               f"worker process {w['pid']} on {host} died while the trial ran")
            if study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                failed.append(t.number)
        except Exception:  # another worker got there first
            pass
    return failed
