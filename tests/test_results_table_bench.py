"""The results-table benchmark and its parts: table grids as HTML, label lines, line pairing for reader SFT."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lib.evaluation.reading_order import reading_order_text, table_html
from lib.train.line_labels import label_lines, line_rows_from_labels

ROOT = Path(__file__).resolve().parents[1]


def box(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def test_table_html_rebuilds_rows_and_columns_with_empty_cells():
    boxes = [box(0, 0, 40, 10), box(100, 0, 160, 10), box(0, 20, 30, 30), box(110, 20, 150, 30),
             box(200, 20, 240, 30), box(5, 40, 35, 50)]
    html = table_html(boxes, ["姓名", "職稱", "王", "科長", "A&B", "李"])
    assert html == ("<table><tr><td>姓名</td><td>職稱</td><td></td></tr><tr><td>王</td><td>科長</td><td>A&amp;B</td>"
                    "</tr><tr><td>李</td><td></td><td></td></tr></table>")
    assert reading_order_text(boxes, ["姓名", "職稱", "王", "科長", "A&B", "李"], layout="table") == html
    assert table_html([], []) == ""


def test_table_html_scores_as_a_table():
    from lib.metrics.tables import teds

    gt = "<table><tr><td>項目</td><td>金額</td></tr><tr><td>房租</td><td>100</td></tr></table>"
    cells = [box(0, 0, 80, 20), box(200, 0, 280, 20), box(0, 24, 80, 44), box(200, 24, 280, 44)]
    assert teds(table_html(cells, ["項目", "金額", "房租", "100"]), gt) == pytest.approx(1.0)


def test_label_lines_of_tables_and_text():
    assert label_lines("<table><tr><td>項目</td><td></td></tr><tr><th>房 租</th><td>100</td></tr></table>",
                       "table") == ["項目", "房 租", "100"]
    assert label_lines("主旨：請查照。\n\n說明：依據辦理。 ", "text") == ["主旨：請查照。", "說明：依據辦理。"]
    assert label_lines("", "text") == []


def test_line_pairing_from_element_labels_and_its_recogniser_check(tmp_path):
    from lib.data import Sample, load_samples

    subprocess.run([sys.executable, "core/synth_data.py", "--config", "configs/synth/elements.yaml", "--output_dir",
                    str(tmp_path / "el"), "--n", "12", "--seed", "5", "--granularity", "element", "--no-progress",
                    "--text_crops_per_page", "6"], cwd=ROOT, check=True, capture_output=True)
    samples = [s for s in load_samples(tmp_path / "el" / "data.json") if s.element == "text"][:6]
    assert len(samples) >= 4
    rows, stats = line_rows_from_labels(samples, tmp_path / "lines")
    assert stats["images_total"] == len(samples) and rows
    by_source: dict[str, list[dict]] = {}
    for r in rows:
        assert (tmp_path / "lines" / r["image_path"]).is_file() and r["element"] == "line"
        by_source.setdefault(r["source"], []).append(r)
    for s in samples:  # a used image gives exactly its label lines, in order
        if s.image_path in by_source:
            assert [r["ocr_text"] for r in by_source[s.image_path]] == label_lines(s.text, "text")
            assert {r["doc_id"] for r in by_source[s.image_path]} == {s.doc_id}
    # the labels of two used images swapped: the counts may agree, the recogniser does not
    used = [s for s in samples if s.image_path in by_source]
    a, b = used[0], used[1]
    wrong = [Sample(image_path=a.image_path, text=b.text, index=0, doc_id=a.doc_id, element="text"),
             Sample(image_path=b.image_path, text=a.text, index=1, doc_id=b.doc_id, element="text")]
    rows2, stats2 = line_rows_from_labels(wrong, tmp_path / "lines2")
    assert rows2 == [] and sum(stats2["images_skipped"].values()) == 2


def test_results_table_bench_runs_end_to_end(tmp_path):
    work = tmp_path / "rt"
    proc = subprocess.run([sys.executable, "-m", "core.benchmarks.bench_results_table", "--n_test_elements", "8",
                           "--n_test_pages", "1", "--n_train_elements", "24", "--val_fraction", "0.4", "--n_trials", "2", "--max_steps", "1",
                           "--work_dir", str(work)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((work / "summary.json").read_text(encoding="utf-8"))
    assert set(summary["rows"]) == {"reader", "reader_sft", "reader_sft_search", "paddle_page", "paddle_line",
                                    "tesseract"}
    n = sum(summary["test_counts"].values())
    assert n == 9 and all(r["n"] == n and r["errors"] == 0 for r in summary["rows"].values())
    assert summary["shared_docs"] == [] and summary["n_train_lines"] > 0
    assert "page" in summary["test_counts"]
    assert all(v["p_value"] is not None for v in summary["paired_vs_paddle_page"].values())
    table = (work / "results_table.md").read_text(encoding="utf-8")
    assert table.count("\n| ") == 7 and "PP-OCRv6 page mode" in table  # header + 6 engines
    # a rerun resumes: nothing is recomputed, same table
    proc2 = subprocess.run([sys.executable, "-m", "core.benchmarks.bench_results_table", "--n_test_elements", "8",
                            "--n_test_pages", "1", "--n_train_elements", "24", "--val_fraction", "0.4", "--n_trials", "2", "--max_steps", "1",
                            "--work_dir", str(work)], cwd=ROOT, capture_output=True, text=True)
    assert proc2.returncode == 0 and (work / "results_table.md").read_text(encoding="utf-8") == table
    assert "gemma_hyperparameter_search" not in proc2.stdout
