"""Run a child command the way the pipeline scripts do: echo it, keep its whole output, fail loudly.

`run_logged` prints `$ <command>`, streams the child's stdout + stderr into a log file (and returns it), prints the
lines `echo` selects as they arrive (progress of a long training run), and on a non-zero exit writes the output's
tail to stderr and raises `SystemExit` naming the command and the log. Used by core/quickstart.py, core/quickstart_tiny.py and the
benchmarks that drive other core scripts. Not for: commands whose output must be parsed while they run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping, Sequence

__all__ = ["run_logged", "run_showing_tail", "split_with_script"]


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


def run_showing_tail(cmd: Sequence[str], printer: Callable[[str], None], *, cwd: str | Path | None = None,
                     n: int = 2) -> str:
    """`run_logged`, then the last `n` non-empty lines of the output, indented (the quickstarts' step log)."""
    out = run_logged(cmd, cwd=cwd, printer=printer)
    for ln in [ln for ln in out.splitlines() if ln.strip()][-n:]:
        printer(f"    {ln}")
    return out


def evaluate_with_script(name: str, extra: Sequence[str], test_file: str | Path, work: str | Path,
                         printer: Callable[[str], None], *, cwd: str | Path, n: int = 2) -> Path:
    """Run core/evaluate.py on `test_file` into work/results/<name>.json, as a user would; returns that path."""
    out = Path(work) / "results" / f"{name}.json"
    run_showing_tail([sys.executable, "core/evaluate.py", "--data-file", str(test_file), "--output-file", str(out),
                      "--no-progress", *extra], printer, cwd=cwd, n=n)
    return out


def split_with_script(raw: str | Path, split_dir: str | Path, *, seed: int, val_fraction: float,
                      test_fraction: float, printer: Callable[[str], None], cwd: str | Path):
    """Split `raw` by document with core/split_dataset.py, as a user would run it; (train, val, test) samples."""
    from lib.data import load_samples

    run_showing_tail([sys.executable, "core/split_dataset.py", "--input", str(raw), "--output_dir", str(split_dir),
                      "--seed", str(seed), "--val_ratio", str(val_fraction), "--test_fraction", str(test_fraction)],
                     printer, cwd=cwd)
    return tuple(load_samples(Path(split_dir) / f"{n}.json") for n in ("train", "val", "test"))
