"""core/synth_data.py run the way users run it, and every shipped configs/synth/*.yaml."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lib.config import parse_args

from core import synth_data

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = sorted((ROOT / "configs" / "synth").glob("*.yaml"))


def test_cli_writes_data_config_and_images(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(ROOT / "core" / "synth_data.py"), "--output_dir", str(out), "--n", "3",
                        "--seed", "4", "--workers", "1", "--no-progress", "--config", str(ROOT / "configs/synth/clean.yaml")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads((out / "data.json").read_text())
    assert len(rows) == 3 and all((out / row["img_path"]).is_file() for row in rows)
    assert all(row["synth"]["degradations"] == [] for row in rows)  # the clean config was applied
    saved = json.loads((out / "synth_config.json").read_text())
    assert saved["config"]["p_blur"] == 0 and saved["sources"]["n"] == "cli" and saved["summary"]["n_samples"] == 3
    assert "samples/s" in r.stdout and "827x1169 px at 100 dpi" in r.stdout


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_parse(path):
    args = parse_args(synth_data.SynthDataArgs, ["--config", str(path)])
    assert args._config_path == str(path)


def test_shipped_elements_config_generates_element_crops(tmp_path):
    args = parse_args(synth_data.SynthDataArgs, ["--config", str(ROOT / "configs/synth/elements.yaml"),
                                                "--output_dir", str(tmp_path), "--n", "4", "--workers", "1",
                                                "--no-progress"])
    summary = synth_data.main(args)
    assert summary["n_samples"] == 4 and "page" not in summary["elements"]


def test_bad_probability_is_a_clear_error():
    r = subprocess.run([sys.executable, str(ROOT / "core" / "synth_data.py"), "--p_seal", "2"], capture_output=True,
                       text=True, cwd=ROOT, timeout=60)
    assert r.returncode != 0 and "p_seal" in r.stderr
