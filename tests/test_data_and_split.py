"""Dataset loading, validation reports and document-grouped splitting, through the real script."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from lib.data import DataError, derive_doc_id, load_samples, validate_samples
from lib.split import split_by_document

ROOT = Path(__file__).resolve().parents[1]


def make_dataset(tmp_path, n_docs=12, pages=(1, 2, 3)):
    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    rows = []
    for d in range(n_docs):
        for p in range(pages[d % len(pages)]):
            name = f"doc{d:02d}.pdf_{p}.png"
            Image.new("RGB", (32, 16), "white").save(img_dir / name)
            rows.append({"img_path": f"imgs/{name}", "ocr_results": f"第{d}號文件第{p}頁"})
    path = tmp_path / "ocr.json"
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path, rows


@pytest.mark.parametrize("raw,doc", [
    ("imgs/report.pdf_12.png", "report.pdf"),
    ("a/b/report.PDF_page3.jpg", "report.PDF"),
    ("contract_A/page_001.png", "contract_A"),
    ("images/scan-0003.png", "scan"),
    ("docstructbench_x.pdf_30__a7.png", "docstructbench_x.pdf"),
])
def test_derive_doc_id(raw, doc):
    assert derive_doc_id(raw) == doc


def test_loader_reads_both_formats_and_resolves_paths(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "raw.json").write_text(json.dumps([{"img_path": "a.png", "ocr_results": "甲", "doc_id": 7}]))
    (tmp_path / "split.json").write_text(json.dumps([{"image_path": "a.png", "ocr_text": "甲", "element": "seal"}]))
    (tmp_path / "rows.jsonl").write_text(json.dumps({"img_path": "a.png", "ocr_results": "乙"}) + "\n\n")
    raw, split, jl = (load_samples(tmp_path / n) for n in ("raw.json", "split.json", "rows.jsonl"))
    assert raw[0].image_path == str(tmp_path / "a.png") and raw[0].doc_id == "7" and raw[0].text == "甲"
    assert split[0].element == "seal" and jl[0].text == "乙"


def test_malformed_rows_all_named(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps([{"img_path": "a.png"}, {"ocr_results": "x"}, 5, {"img_path": "b.png", "ocr_results": 3}]))
    with pytest.raises(DataError) as e:
        load_samples(tmp_path / "bad.json")
    msg = str(e.value)
    assert "4 malformed row(s)" in msg and "row 0" in msg and "row 1" in msg and "row 2" in msg and "row 3" in msg


def test_validation_report_names_every_bad_row_and_field(tmp_path):
    path, rows = make_dataset(tmp_path, n_docs=3)
    (tmp_path / "imgs" / "corrupt.png").write_bytes(b"\x89PNG not really")
    rows += [{"img_path": "imgs/missing.png", "ocr_results": "字"},
             {"img_path": "imgs/corrupt.png", "ocr_results": "字"},
             {"img_path": rows[0]["img_path"], "ocr_results": "   "},
             dict(rows[1])]
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    report = validate_samples(load_samples(path))
    n = len(rows)
    assert report.bad_rows == {n - 4, n - 3, n - 2, n - 1}
    fields = {(p["row"], p["field"]) for p in report.problems}
    assert fields == {(n - 4, "image"), (n - 3, "image"), (n - 2, "label"), (n - 1, "row")}
    text = report.format()
    assert "file not found" in text and "corrupt" in text and "empty" in text and "duplicate of row 1" in text


def test_split_keeps_documents_together_and_is_seeded(tmp_path):
    path, _ = make_dataset(tmp_path, n_docs=30)
    samples = load_samples(path)
    a = split_by_document(samples, val_fraction=0.1, test_fraction=0.2, seed=1)
    b = split_by_document(samples, val_fraction=0.1, test_fraction=0.2, seed=1)
    c = split_by_document(samples, val_fraction=0.1, test_fraction=0.2, seed=2)
    docs = {k: {s.doc_id for s in v} for k, v in a.items()}
    assert not (docs["train"] & docs["test"]) and not (docs["train"] & docs["val"]) and not (docs["val"] & docs["test"])
    assert sum(len(v) for v in a.values()) == len(samples)
    assert [s.index for s in a["test"]] == [s.index for s in b["test"]]
    assert [s.index for s in a["test"]] != [s.index for s in c["test"]]
    assert abs(len(a["test"]) - 0.2 * len(samples)) <= 3 and len(a["val"]) >= 1


def run_script(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "core/split_dataset.py", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_split_script_outputs_and_original_flags(tmp_path):
    path, rows = make_dataset(tmp_path, n_docs=20)
    out = tmp_path / "out"
    r = run_script("--input", str(path), "--output_dir", str(out), "--seed", "3", "--test_ratio", "1")
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "split_summary.json").read_text())
    assert summary["test_fraction"] == 0.5 and summary["splits"]["test"]["samples"] > 0
    test = json.loads((out / "ocr_test.json").read_text())
    non_test = json.loads((out / "ocr_non_test.json").read_text())
    assert set(test[0]) >= {"image_path", "ocr_text"} and len(test) + len(non_test) == len(rows)
    # image paths are relative to the output folder and resolve to the real files
    for name in ("train", "val", "test"):
        for s in load_samples(out / f"{name}.json"):
            assert Path(s.image_path).is_file()
    assert "samples" in r.stdout and "test" in r.stdout


def test_split_script_refuses_bad_rows_unless_skipped(tmp_path):
    path, rows = make_dataset(tmp_path, n_docs=6)
    rows.append({"img_path": "imgs/nope.png", "ocr_results": "字"})
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    r = run_script("--input", str(path), "--output_dir", str(tmp_path / "o1"))
    assert r.returncode != 0 and f"row {len(rows) - 1} [image] file not found" in r.stdout + r.stderr
    assert not (tmp_path / "o1" / "train.json").exists()
    r = run_script("--input", str(path), "--output_dir", str(tmp_path / "o2"), "--skip_invalid")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "o2" / "split_summary.json").read_text())["skipped_rows"] == [len(rows) - 1]


def test_validate_data_script(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "d.json").write_text(json.dumps([{"img_path": "a.png", "ocr_results": "甲"}, {"img_path": "b.png", "ocr_results": ""}]))
    r = subprocess.run([sys.executable, "core/validate_data.py", "--input", str(tmp_path / "d.json"), "--report", str(tmp_path / "r.json")],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "row 1 [label]" in r.stdout and "row 1 [image] file not found" in r.stdout
    assert json.loads((tmp_path / "r.json").read_text())["bad_rows"] == [1]
