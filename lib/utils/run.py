"""Run a child command the way the pipeline scripts do: echo it, keep its whole output, fail loudly.

`run_logged` prints `$ <command>`, streams the child's stdout + stderr into a log file (and returns it), prints the
lines `echo` selects as they arrive (progress of a long training run), and on a non-zero exit writes the output's
tail to stderr and raises `SystemExit` naming the command and the log. Used by core/quickstart.py and the
benchmarks that drive other core scripts. Not for: commands whose output must be parsed while they run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping, Sequence

__all__ = ["run_logged"]


def run_logged(cmd: Sequence[str], log_path: str | Path | None = None, *, cwd: str | Path | None = None,
               env: Mapping[str, str] | None = None, echo: Callable[[str], bool] | None = None,
               printer: Callable[[str], None] = print, tail_chars: int = 6000) -> str:
    """Run `cmd`; return its combined output (also written to `log_path` when given)."""
    printer("$ " + " ".join(map(str, cmd)))
    lines: list[str] = []
    fh = open(log_path, "w", encoding="utf-8") if log_path else None
    try:
        proc = subprocess.Popen(list(map(str, cmd)), cwd=cwd, env=dict(env) if env is not None else None, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8", errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if fh:
                fh.write(line)
                fh.flush()
            if echo is not None and echo(line):
                printer("    " + line.rstrip()[:300])
        rc = proc.wait()
    finally:
        if fh:
            fh.close()
    out = "".join(lines)
    if rc != 0:
        sys.stderr.write(out[-tail_chars:])
        where = f"; full output in {log_path}" if log_path else ""
        raise SystemExit(f"command failed ({rc}): {' '.join(map(str, cmd))}{where}")
    return out
