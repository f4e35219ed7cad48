"""core/results_table.py builds the README table from result files (ours and the original project's format)."""

import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


rt = importlib.import_module("core.results_table")


def original_result(path, model, preds, labels):
    """A result file exactly as the original project wrote it (no schema version, no scores per profile)."""
    path.write_text(json.dumps({
        "overall_cer": 0.5, "overall_f1": 0.5, "total_samples": len(preds), "timestamp": "2025-01-01T00:00:00",
        "model_name": model,
        "samples": [{"image_path": f"img{i}.png", "label": l, "prediction": p, "cer_score": 0, "f1_score": 0}
                    for i, (p, l) in enumerate(zip(preds, labels))]}, ensure_ascii=False), encoding="utf-8")


def test_table_from_files_and_globs(tmp_path):
    labels = ["中華民國", "政府公文", "會議紀錄", "第一條"]
    original_result(tmp_path / "good.json", "gemma-ft", labels, labels)
    original_result(tmp_path / "bad.json", "gemma-base", ["中華", "政府公文", "", "第一條"], labels)
    out = rt.main(rt.parse_args(rt.TableArgs, ["--results", str(tmp_path / "*.json"), "--n-bootstrap", "100"]))
    rows = {r["model"]: r for r in out["rows"]}
    assert rows["gemma-ft"]["cer"] == 0.0 and rows["gemma-ft"]["n"] == 4
    # 2 + 4 deleted characters of 4+4+4+3 = 15
    assert rows["gemma-base"]["cer"] == pytest.approx(6 / 15)
    lines = out["text"].splitlines()
    assert lines[0].startswith("| model | backend | data | CER % (95% CI) | F1 %")
    assert lines[2].startswith("| gemma-ft |") and lines[3].startswith("| gemma-base |")  # sorted by CER
    assert "40.00 (" in lines[3] and lines[3].endswith("| 4 | 0 | standard |")


def test_insert_into_a_document_between_markers(tmp_path):
    labels = ["中華民國"]
    original_result(tmp_path / "r.json", "m", labels, labels)
    doc = tmp_path / "README.md"
    doc.write_text("# T\n<!-- results-table:start -->\nold\n<!-- results-table:end -->\ntail\n", encoding="utf-8")
    rt.main(rt.parse_args(rt.TableArgs, ["--results", str(tmp_path / "r.json"), "--insert-into", str(doc)]))
    text = doc.read_text(encoding="utf-8")
    assert "old" not in text and "| m |" in text and text.endswith("<!-- results-table:end -->\ntail\n")
    with pytest.raises(ValueError, match="markers not found"):
        from lib.evaluation.results_table import insert_between_markers

        insert_between_markers("no markers", "x")


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no result files match"):
        rt.main(rt.parse_args(rt.TableArgs, ["--results", str(tmp_path / "*.json")]))
