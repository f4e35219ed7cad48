"""Every runnable script answers --help quickly (heavy imports live inside main) and exits 0."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for d in ("core", "core/data_analysis", "core/benchmarks", "ui") for p in (ROOT / d).glob("*.py")
                 if not p.name.startswith("_"))


def test_scripts_found():
    names = {p.name for p in SCRIPTS}
    assert {"split_dataset.py"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_help(script):
    r = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "usage:" in r.stdout.lower()
