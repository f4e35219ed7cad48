"""Atomically written files (results, splits, configs, review sidecars) get the mode a plain write would give them
— the umask respected, an existing file's mode kept — and leave no temp files behind: not after a failed write,
and not after a writer killed mid-write (the next write to the same path removes its temp file)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lib.results import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.mark.parametrize("umask,expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_new_files_respect_the_umask(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        p = atomic_write_text("x", tmp_path / "r.json")
    finally:
        os.umask(old)
    assert mode(p) == expected


def test_an_existing_files_mode_is_kept(tmp_path):
    p = tmp_path / "r.json"
    p.write_text("old")
    p.chmod(0o640)
    atomic_write_json({"a": 1}, p)
    assert mode(p) == 0o640 and json.loads(p.read_text()) == {"a": 1}


def test_split_and_config_files_are_readable_by_the_group(tmp_path):
    """The scripts' outputs, written under umask 022: 0644, as `open(..., "w")` would make them."""
    from lib.evaluation.testing import make_png_dataset

    data = make_png_dataset(tmp_path, 8)
    r = subprocess.run(f"umask 022 && {sys.executable} core/split_dataset.py --input {data} --output_dir "
                       f"{tmp_path / 'split'} --val_fraction 0.25 --test_fraction 0.25", shell=True, cwd=ROOT,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    written = sorted((tmp_path / "split").iterdir())
    assert written and all(mode(p) == 0o644 for p in written), [(p.name, oct(mode(p))) for p in written]


def test_a_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    p = tmp_path / "r.json"
    p.write_text("old")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text("new", p)
    monkeypatch.undo()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r.json"] and p.read_text() == "old"


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path):
    p = tmp_path / "r.json"
    # a writer that dies (SIGKILL) between creating its temp file and renaming it
    code = ("import os, sys, tempfile; from pathlib import Path; p = Path(sys.argv[1]); "
            "fd, t = tempfile.mkstemp(prefix=f'.{p.name}.{os.getpid()}.', suffix='.tmp', dir=p.parent); "
            "os.write(fd, b'half'); os.kill(os.getpid(), 9)")
    proc = subprocess.run([sys.executable, "-c", code, str(p)], timeout=60)
    assert proc.returncode == -9
    leftovers = [x.name for x in tmp_path.iterdir() if x.name.endswith(".tmp")]
    assert len(leftovers) == 1
    live = tmp_path / f".r.json.{os.getppid()}.abc.tmp"  # a live process's write in progress is left alone
    live.write_text("busy")
    atomic_write_text("full", p)
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted(["r.json", live.name]) and p.read_text() == "full"
