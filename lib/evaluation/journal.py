"""The evaluation journal: one JSONL file, appended as each sample finishes, from which an interrupted run
(Ctrl-C, a crash, `kill -9`, a lost machine) continues with no sample lost or evaluated twice.

Line 1 is a header `{"type": "header", "run": {...}}` holding the run's identity (backend, model, prompt, data hash,
decoding settings); `--resume` refuses a journal whose identity differs, naming the keys that differ. Every other
line is `{"type": "sample", "index": i, ...}` with the raw prediction or the error. A line cut short by a kill is
detected (no trailing newline / not JSON) and truncated away before appending, so the journal stays parseable.
If a sample appears twice (possible only with `retry_errors`, where a later success replaces an error), the last
successful record wins.

Not for: scores or post-processing (done from the journal's raw predictions when the run is finalized).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from lib.errors import UserError

__all__ = ["Journal", "JournalMismatch", "identity_diff"]

JOURNAL_VERSION = 1


class JournalMismatch(UserError, RuntimeError):
    """The journal on disk belongs to a different run; the message lists what differs and what to do."""


def identity_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += identity_diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: journal has {va!r}, this run has {vb!r}")
    return out


def _canonical(obj: Any) -> Any:
    return json.loads(json.dumps(obj, ensure_ascii=False, sort_keys=True, default=str))


class Journal:
    def __init__(self, path: str | os.PathLike, identity: dict, *, fsync_every: int = 0):
        self.path = Path(path)
        self.identity = _canonical(identity)
        self.records: dict[int, dict] = {}
        self.n_lines_dropped = 0
        self.n_duplicates = 0
        self.fsync_every = fsync_every
        self._fh = None
        self._lock = threading.Lock()
        self._since_sync = 0

    # -- opening ---------------------------------------------------------------------------------------------
    def open(self, resume: bool = True) -> "Journal":
        """Load an existing journal (when `resume`) and open it for appending; a new journal gets a header.
        With `resume=False` an existing journal is moved aside to `<name>.<timestamp>.bak`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size > 0:
            if not resume:
                backup = self.path.with_name(f"{self.path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
                os.replace(self.path, backup)
            else:
                self._load_existing()
                self._fh = open(self.path, "a", encoding="utf-8")
                return self
        self._fh = open(self.path, "w", encoding="utf-8")
        self._write_line({"type": "header", "version": JOURNAL_VERSION, "run": self.identity,
                          "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, sync=True)
        return self

    def _load_existing(self) -> None:
        raw = self.path.read_bytes()
        good_end = raw.rfind(b"\n") + 1  # everything after the last newline is a line cut short
        if good_end < len(raw):
            self.n_lines_dropped += 1
        lines = raw[:good_end].decode("utf-8", errors="replace").splitlines()
        if not lines:
            raise JournalMismatch(f"{self.path}: journal has no complete header line; delete it or pass --no-resume")
        try:
            header = json.loads(lines[0])
        except json.JSONDecodeError:
            raise JournalMismatch(f"{self.path}: first line is not a journal header; delete it or pass --no-resume") from None
        if header.get("type") != "header":
            raise JournalMismatch(f"{self.path}: first line is not a journal header; delete it or pass --no-resume")
        diffs = identity_diff(header.get("run", {}), self.identity)
        if diffs:
            raise JournalMismatch(
                f"{self.path} was written by a different run, refusing to mix results:\n  " + "\n  ".join(diffs)
                + "\nUse a different --output-file/--checkpoint-file, restore the original settings, or pass "
                  "--no-resume to start over (the old journal is kept as a .bak file).")
        for line in lines[1:]:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                self.n_lines_dropped += 1
                continue
            if rec.get("type") == "sample" and isinstance(rec.get("index"), int):
                self._remember(rec)
        if good_end < len(raw):
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)

    def _remember(self, rec: dict) -> None:
        old = self.records.get(rec["index"])
        if old is not None:
            self.n_duplicates += 1
            if old.get("error") is None:  # a success is never replaced
                return
        self.records[rec["index"]] = rec

    # -- writing ---------------------------------------------------------------------------------------------
    def _write_line(self, obj: dict, sync: bool = False) -> None:
        self._fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self._fh.flush()  # in the OS page cache now: survives kill -9 of this process
        self._since_sync += 1
        if sync or (self.fsync_every and self._since_sync >= self.fsync_every):
            os.fsync(self._fh.fileno())  # survives a machine crash too
            self._since_sync = 0

    def append(self, record: dict) -> None:
        rec = {"type": "sample", **record}
        with self._lock:
            self._write_line(rec)
            self._remember(rec)

    def done_indices(self, retry_errors: bool = False) -> set[int]:
        return {i for i, r in self.records.items() if not (retry_errors and r.get("error"))}

    def sync(self) -> None:
        with self._lock:
            if self._fh:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._since_sync = 0

    def close(self) -> None:
        with self._lock:
            if self._fh:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
                self._fh = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def ordered(self, indices: Iterable[int]) -> list[dict | None]:
        return [self.records.get(i) for i in indices]
