"""lib.utils.run.run_logged: output kept in the log and returned, selected lines echoed, failures loud."""

import sys

import pytest

from lib.utils.run import run_logged


def test_output_is_logged_returned_and_echoed_selectively(tmp_path):
    printed = []
    code = "import sys\nfor i in range(5): print(f'step {i}', flush=True)\nprint('noise'); print('warn', file=sys.stderr)"
    out = run_logged([sys.executable, "-c", code], tmp_path / "a.log", echo=lambda ln: ln.startswith("step 3"),
                     printer=printed.append)
    assert out == (tmp_path / "a.log").read_text(encoding="utf-8")
    assert "step 0" in out and "warn" in out  # stderr merged into the log
    assert printed[0].startswith("$ ") and printed[1:] == ["    step 3"]


def test_failure_names_the_command_and_the_log(tmp_path, capsys):
    with pytest.raises(SystemExit, match=r"command failed \(3\):.*full output in .*b\.log"):
        run_logged([sys.executable, "-c", "print('boom detail'); raise SystemExit(3)"], tmp_path / "b.log",
                   printer=lambda m: None)
    assert "boom detail" in capsys.readouterr().err
