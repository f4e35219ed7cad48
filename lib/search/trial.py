"""Run one trial as its own process group with a wall-clock limit, and say how it ended.

The trial is `python -m lib.search.train_trial` (core/sft_gemma.py's training with the pruning callback), started in
a new session so that killing its process group also kills whatever it started (data-loader workers, torchrun
children). A trial that runs past its
limit gets SIGTERM, then SIGKILL after `grace_s`; its GPU memory is released when the process group is gone.

Not for: deciding what a trial trains (lib/search/driver.py).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["TrialProcessResult", "run_trial_process", "tail", "PRUNED_EXIT_CODE", "PARENT_PID_ENV",
           "start_parent_watch"]

PRUNED_EXIT_CODE = 77  # a trial process's exit status when the pruner stopped it
PARENT_PID_ENV = "GEMMA_OCR_SEARCH_PARENT_PID"  # set by the driver: the trial exits if that process goes away


@dataclasses.dataclass
class TrialProcessResult:
    returncode: int | None
    duration_s: float
    timed_out: bool
    log_path: str

    @property
    def killed_by_signal(self) -> int | None:
        return -self.returncode if self.returncode is not None and self.returncode < 0 else None


def _kill_group(proc: subprocess.Popen, grace_s: float) -> None:
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
            if sig == signal.SIGTERM:  # a stopped (frozen) process only acts on SIGTERM once continued
                os.killpg(pgid, signal.SIGCONT)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            # the leader is gone; make sure no child of the group survives it
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
        except subprocess.TimeoutExpired:
            continue


def run_trial_process(cmd: Sequence[str], *, timeout_s: float | None, log_path: str | os.PathLike,
                      env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None,
                      grace_s: float = 15.0) -> TrialProcessResult:
    """Run `cmd`, stdout+stderr to `log_path`; kill its process group after `timeout_s` seconds (None: no limit)."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log_path, "ab") as log:
        log.write(("$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc, grace_s)
        except BaseException:  # the worker itself is being stopped (Ctrl-C, SIGTERM): take the trial with it
            _kill_group(proc, grace_s=5.0)
            raise
    return TrialProcessResult(returncode=proc.returncode, duration_s=time.monotonic() - start, timed_out=timed_out,
                              log_path=str(log_path))


def tail(path: str | os.PathLike, n_lines: int = 15, max_chars: int = 2000) -> str:
    """The last lines of a log file (for a failed trial's reason)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [ln for ln in text.splitlines() if ln.strip()][-n_lines:]
    return "\n".join(lines)[-max_chars:]


_watch_started = False


def start_parent_watch(interval: float = 2.0) -> None:
    """Exit this process when the search worker that started it is gone (killed worker -> no orphan on the GPU)."""
    global _watch_started
    expected = os.environ.get(PARENT_PID_ENV)
    if _watch_started or not expected or not expected.isdigit():
        return
    expected_pid = int(expected)
    _watch_started = True

    def watch() -> None:
        while True:
            if os.getppid() != expected_pid:
                print(f"search worker {expected_pid} is gone: stopping this trial", flush=True)
                os._exit(143)
            time.sleep(interval)

    threading.Thread(target=watch, name="search-parent-watch", daemon=True).start()
