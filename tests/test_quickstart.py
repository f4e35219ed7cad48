"""The quickstart task (lib/quickstart_data.py), the tiny from-scratch demo (core/quickstart_tiny.py) and the README's first command (core/quickstart.py: the shipped reader fine-tuned on an unseen domain)."""

from __future__ import annotations

import json
import runpy
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_task_has_300_hanzi_in_two_fonts_and_glyphs_sit_in_their_cells(tmp_path):
    import numpy as np

    from lib.quickstart_data import QuickstartTask, build_dataset, pick_characters, pick_fonts, render_grid

    task = QuickstartTask()
    fonts = pick_fonts(2)
    assert len({f.name for f in fonts}) == 2
    chars = pick_characters(fonts, 320)
    assert len(set(chars)) == 320 and all("\u4e00" <= c <= "\u9fff" for c in chars)
    img = np.asarray(render_grid(chars[:5], fonts[0], task).convert("L"))
    assert img.shape == (task.image_size, task.image_size)
    ink = img < 128
    for i in range(task.grid * task.grid):
        r, c = divmod(i, task.grid)
        cell = ink[r * task.cell:(r + 1) * task.cell, c * task.cell:(c + 1) * task.cell]
        assert cell.any() == (i < 5), f"cell {i}"
    info = build_dataset(tmp_path, 30, task=task, seed=1, fonts=fonts, chars=chars)
    rows = json.loads(Path(info["path"]).read_text())
    texts = [r["ocr_results"] for r in rows]
    assert len(set(texts)) == 30 and all(task.min_len <= len(t) <= task.max_len for t in texts)
    assert {r["font"] for r in rows} == {f.short for f in fonts}
    assert (tmp_path / rows[0]["img_path"]).is_file()


@pytest.mark.slow
def test_quickstart_runs_end_to_end(tmp_path, monkeypatch, capsys):
    """A shortened run of README command 1 (few samples and steps): every stage runs and the summary is written.
    The real run's thresholds are checked by the script itself (exit status 1 when a check fails)."""
    argv = ["quickstart_tiny.py", "--work_dir", str(tmp_path), "--n_samples", "60", "--val_fraction", "0.1",
            "--test_fraction", "0.15", "--max_steps", "2"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(ROOT / "core" / "quickstart_tiny.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "untrained model" in out and "trained model" in out and "most common training answer" in out
    summary = json.loads((tmp_path / "quickstart_summary.json").read_text())
    for key in ("cer_untrained", "cer_trained", "cer_most_common_answer", "cer_blank_image", "checks", "timings_s"):
        assert key in summary
    assert summary["checks"]["no_test_string_in_training"] and summary["checks"]["fonts_ge_2"]
    assert summary["checks"]["merge_verified"]
    # 2 steps cannot meet the real run's CER thresholds: exit 1 must come from those checks and nothing else
    failed = sorted(k for k, ok in summary["checks"].items() if not ok)
    assert exc.value.code == (1 if failed else 0), (exc.value.code, failed)
    assert set(failed) <= {"trained_cer_le_0.35", "trained_le_half_untrained", "beats_most_common_answer",
                           "beats_blank_image", "distinct_hanzi_ge_300"}, failed  # what 2 steps on 60 rows can miss
    assert (tmp_path / "results" / "trained.json").is_file() and (tmp_path / "merged" / "config.json").is_file()


@pytest.mark.slow
def test_reader_quickstart_runs_end_to_end(tmp_path, monkeypatch, capsys):
    """A shortened README command 1 (12 documents, 2 fine-tuning steps): the shipped reader is scored, fine-tuned,
    scored again, and PP-OCRv6 and Tesseract read the same test file; the summary names every check. Two steps
    cannot fine-tune anything, so the improvement checks must fail and the exit status must be 1 because of them alone."""
    if not shutil.which("tesseract"):
        pytest.skip("tesseract not installed (apt-get install tesseract-ocr tesseract-ocr-chi-tra)")
    argv = ["quickstart.py", "--work_dir", str(tmp_path), "--n_docs", "12", "--test_fraction", "0.3",
            "--val_fraction", "0.1", "--max_steps", "2"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(ROOT / "core" / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    for row in ("reader, no domain SFT", "reader + SFT on the domain", "PP-OCRv6", "Tesseract"):
        assert row in out, row
    summary = json.loads((tmp_path / "quickstart_summary.json").read_text())
    assert set(summary["scores"]) == {"base", "finetuned", "paddleocr", "tesseract"}
    from lib.data import load_samples

    test_rows = load_samples(tmp_path / "split" / "test_unseen.json")
    train_rows = load_samples(tmp_path / "split" / "train.json")
    assert test_rows and not {s.text for s in test_rows} & {s.text for s in train_rows}
    assert not {s.doc_id for s in test_rows} & {s.doc_id for s in train_rows}
    assert all(s["n"] == len(test_rows) and s["errors"] == 0 for s in summary["scores"].values())
    # the base reader reads an unseen font: far better than nothing, worse than perfect
    assert 0.0 < summary["scores"]["base"]["cer"] < 0.9
    assert (tmp_path / "model" / "model" / "reader_config.json").is_file()  # the fine-tuned folder is still a reader
    failed = sorted(k for k, ok in summary["checks"].items() if not ok)
    # the improvement checks cannot pass after 2 steps; the base-difficulty check is a statistic of the full run's
    # 100+ test lines and on this run's 3-4 test documents it falls on either side of 0.05 (a CI run fell below)
    assert exc.value.code == (1 if failed else 0) and set(failed) <= {
        "finetuned_le_0.9x_base", "finetuned_better_paired_p_lt_0.05", "base_reads_domain_badly_cer_ge_0.05"}, failed
    assert {"no_test_document_in_training", "every_test_image_scored"}.isdisjoint(failed), failed


def test_reader_quickstart_refuses_a_pretraining_face(tmp_path):
    import subprocess

    r = subprocess.run([sys.executable, "core/quickstart.py", "--work_dir", str(tmp_path), "--faces", "TW-Kai"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--faces: ['TW-Kai'] are not held out of the reader's pretraining" in r.stderr
    assert "Traceback" not in r.stderr
