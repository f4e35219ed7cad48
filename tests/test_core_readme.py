"""core/README.md documents every script and every flag it accepts (as shown by its --help)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "core" / "README.md").read_text(encoding="utf-8")
SCRIPTS = sorted(p for d in ("core", "core/data_analysis") for p in (ROOT / d).glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_script_and_flag_is_documented(script):
    rel = str(script.relative_to(ROOT))
    assert f"`{rel}`" in README, f"{rel} has no section in core/README.md"
    out = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    flags = set(re.findall(r"(?<![\w-])(--[A-Za-z][\w-]*)", out))
    section = README.split(f"### `{rel}`", 1)[1].split("\n### ", 1)[0]
    missing = sorted(f for f in flags if f not in section)
    assert not missing, f"{rel}: flags missing from core/README.md: {missing} (run: python docs/gen_core_readme.py)"
