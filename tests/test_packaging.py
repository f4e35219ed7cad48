"""A non-editable install carries the default configs lib/ falls back on (configs/ shipped as lib/configs)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_the_default_configs(tmp_path):
    pytest.importorskip("setuptools")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                        str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"lib/configs/{p.relative_to(ROOT / 'configs').as_posix()}" for p in (ROOT / "configs").rglob("*")
               if p.is_file() and p.suffix in (".json", ".yml", ".yaml", ".md")}
    assert {"lib/configs/ocr_prompt/default.yml", "lib/configs/hyperparm_configs/default.json"} <= shipped <= names
    assert "lib/train/internals.py" in names and "lib/shipped.py" in names
    # what lib/ resolves from an installed copy (no checkout beside it)
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(target)
    out = subprocess.run([sys.executable, "-c", "import lib.prompt, lib.train.args as a; "
                          "print(lib.prompt.DEFAULT_PROMPT_PATH); print(a.DEFAULT_TRAIN_CONFIG)"],
                         capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(target)}, timeout=60)
    assert out.returncode == 0, out.stderr
    prompt, train = out.stdout.split()
    assert prompt == str(target / "lib/configs/ocr_prompt/default.yml") and Path(prompt).is_file()
    assert train == str(target / "lib/configs/hyperparm_configs/default.json") and Path(train).is_file()
