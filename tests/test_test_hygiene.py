"""Tests that cannot hide a failure: the project's own modules are imported (an import error fails, never skips),
assertions are not behind `if key in result:`, and every `pytest.raises(SystemExit)` checks the exit status (exit 1
of a failed run is not a pass)."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
FILES = sorted(p for p in TESTS.rglob("*.py") if p.name != Path(__file__).name)

OWN_IMPORTORSKIP = re.compile(r"importorskip\(\s*[\"'](lib|core|ui|tests|fixtures)(\.|[\"'])")
CONDITIONAL_KEY = re.compile(r"^(\s*)if\s+[\"'][\w.]+[\"']\s+in\s+\w+\s*:")
BARE_SYSTEMEXIT = re.compile(r"raises\(\s*SystemExit\s*\)\s*:")


def _lines():
    for p in FILES:
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            yield p, i, line


def test_own_modules_are_never_importorskipped():
    bad = [f"{p.relative_to(TESTS)}:{i}" for p, i, line in _lines() if OWN_IMPORTORSKIP.search(line)]
    assert not bad, f"importorskip on the project's own modules turns an import bug into a skip: {bad}"


def test_no_assertions_behind_a_key_check():
    bad = []
    for p in FILES:
        lines = p.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            m = CONDITIONAL_KEY.match(line)
            if m and i + 1 < len(lines) and lines[i + 1].strip().startswith(("assert", "sc =", "agg =")):
                bad.append(f"{p.relative_to(TESTS)}:{i + 1}")
    assert not bad, f"assertions that run only when a key happens to be there: {bad}"


def test_every_systemexit_check_looks_at_the_status():
    bad = [f"{p.relative_to(TESTS)}:{i}" for p, i, line in _lines() if BARE_SYSTEMEXIT.search(line)]
    assert not bad, f"pytest.raises(SystemExit) without `as exc` accepts any exit status, 1 included: {bad}"


def test_the_checks_can_fail():
    assert OWN_IMPORTORSKIP.search('pytest.importorskip("lib.generation")')
    assert CONDITIONAL_KEY.match('    if "scores" in res:  # scored')
    assert BARE_SYSTEMEXIT.search("    with pytest.raises(SystemExit):")
    assert not BARE_SYSTEMEXIT.search("    with pytest.raises(SystemExit) as exc:")
