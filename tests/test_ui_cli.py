"""The apps' flags (the original's spellings kept), and one app run the way a user runs it: a subprocess on a free
port, reached over HTTP, serving only the allowed files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fixtures.ui.browser import load_ui
from fixtures.ui.make_fixtures import make_ui_fixtures
from lib.config import parse_args
from lib.ui.app import free_port

ROOT = Path(__file__).resolve().parents[1]


def test_flags():
    ev, cf, pm = load_ui("evaluate_viewer"), load_ui("compare_finetune"), load_ui("prompt_manager")
    a = parse_args(ev.ViewerArgs, ["--eval_dir", "r", "--initial_file", "x.json", "--data-root", "d1", "d2",
                                   "--port", "7000", "--share"])
    assert (a.eval_dir, a.initial_file, a.data_root, a.server_port, a.share) == ("r", "x.json", ["d1", "d2"], 7000, True)
    assert a.server_name == "127.0.0.1"  # not 0.0.0.0: the original exposed every viewer to the network
    c = parse_args(cf.CompareArgs, ["--model1", "a.json", "--model2", "b.json", "--server_port", "7001",
                                    "--server_name", "0.0.0.0", "--data_root", "d"])
    assert (c.model1, c.model2, c.server_port, c.server_name, c.data_root, c.share) == \
        ("a.json", "b.json", 7001, "0.0.0.0", ["d"], False)
    assert parse_args(cf.CompareArgs, ["--model1", "a", "--model2", "b"]).server_port == 7863  # the original's port
    p = parse_args(pm.PromptManagerArgs, ["--config-dir", "cfg", "--port", "7002", "--initial_file", "a.yml"])
    assert (p.config_dir, p.server_port, p.initial_file, p.server_name) == ("cfg", 7002, "a.yml", "127.0.0.1")


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def test_viewer_subprocess(tmp_path):
    fx = make_ui_fixtures(tmp_path / "app")
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "ui" / "evaluate_viewer.py"), "--eval_dir", str(fx["results"]),
                             "--data-root", str(fx["data"]), "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                status, body = _get(base + "/")
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if proc.poll() is not None or time.time() > deadline:
                out = proc.stdout.read() if proc.poll() is not None else ""
                pytest.fail(f"viewer did not come up (rc={proc.poll()}):\n{out[-3000:]}")
            time.sleep(0.5)
        assert b"OCR evaluation viewer" in body
        img = fx["data"] / "images" / "gov_00.png"
        assert _get(f"{base}/gradio_api/file={img}") == (200, img.read_bytes())
        assert _get(f"{base}/gradio_api/file=/etc/passwd")[0] == 403
        assert _get(f"{base}/gradio_api/file={ROOT / 'README.md'}")[0] == 403  # not even the working tree
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert "Serving only the images the result files name" in out and str(fx["data"].resolve()) in out


def test_bad_paths_fail_fast(tmp_path):
    ev, cf = load_ui("evaluate_viewer"), load_ui("compare_finetune")
    with pytest.raises(SystemExit, match="--eval_dir .* is not a folder"):
        ev.serve(ev.ViewerArgs(eval_dir=str(tmp_path / "missing")), block=False)
    with pytest.raises(SystemExit, match="--data-root .* is not a folder"):
        ev.serve(ev.ViewerArgs(eval_dir=str(tmp_path), data_root=[str(tmp_path / "nope")]), block=False)
    with pytest.raises(SystemExit, match="--model1 .*: no such result file"):
        cf.serve(cf.CompareArgs(model1=str(tmp_path / "a.json"), model2=str(tmp_path / "b.json")), block=False)
