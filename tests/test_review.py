"""The review sidecar (lib/review.py) and the scripts that read it: flags, notes and corrected ground truth saved
next to the dataset, never into it; `evaluate.py --skip-flagged`, `count_score.py --skip-flagged`,
`split_dataset.py --skip-flagged --apply-corrections`; the viewer's link parsing and confusion filter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lib.data import load_samples
from lib.evaluation.stub_server import StubServer, table_responder
from lib.evaluation.testing import label_table, make_png_dataset
from lib.review import ReviewError, export_reviewed, flagged_rows, load_review, sidecar_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def reviewed(tmp_path):
    data = make_png_dataset(tmp_path, 6)
    rows = json.loads(data.read_text(encoding="utf-8"))
    review = load_review(data)
    assert review.items == {} and not review.path.exists()
    review.set(rows[1]["img_path"], flags=["gt_wrong"], note="標籤少一字", label=rows[1]["ocr_results"] + "字",
               original_label=rows[1]["ocr_results"], index=1)
    review.set(rows[3]["img_path"], flags=["ambiguous"], index=3)
    review.set(rows[4]["img_path"], flags=[], note="", label=rows[4]["ocr_results"],
               original_label=rows[4]["ocr_results"])  # nothing to record: no entry
    return data, rows


def test_sidecar_round_trip_and_the_data_file_is_untouched(reviewed):
    data, rows = reviewed
    before = data.read_bytes()
    again = load_review(data)
    assert again.path == sidecar_path(data) == data.with_name("data.review.json")
    assert set(again.items) == {rows[1]["img_path"], rows[3]["img_path"]}
    assert again.items[rows[1]["img_path"]].label == rows[1]["ocr_results"] + "字"
    assert again.counts() == {"gt_wrong": 1, "model_wrong": 0, "ambiguous": 1, "corrected": 1, "noted": 1}
    assert data.read_bytes() == before
    samples = load_samples(data)
    assert flagged_rows(data, samples, ["gt_wrong"]) == {1}
    assert flagged_rows(data, samples, ["gt_wrong", "ambiguous"]) == {1, 3}
    with pytest.raises(ReviewError, match="unknown flag"):
        again.set(rows[0]["img_path"], flags=["wrong"])


def test_bad_sidecar_is_one_clear_error(tmp_path):
    data = make_png_dataset(tmp_path, 2)
    sidecar_path(data).write_text("{not json", encoding="utf-8")
    with pytest.raises(ReviewError, match="data.review.json"):
        load_review(data)


def test_export_writes_a_corrected_copy(reviewed):
    data, rows = reviewed
    out = export_reviewed(data)
    assert out.name == "data.reviewed.json"
    copy = json.loads(out.read_text(encoding="utf-8"))
    assert copy[1]["ocr_results"] == rows[1]["ocr_results"] + "字" and copy[1]["gt_wrong"] is True
    assert copy[1]["review_note"] == "標籤少一字" and copy[3]["ambiguous"] is True and "gt_wrong" not in copy[0]
    with pytest.raises(ReviewError, match="overwrite the original"):
        export_reviewed(data, data)


def test_evaluate_skips_flagged_rows_and_applies_corrections(reviewed, tmp_path):
    sys.path.insert(0, str(ROOT / "core"))
    import evaluate as ev

    data, rows = reviewed
    table = label_table(data)
    fast = ["--no-progress", "--n-bootstrap", "0"]
    with StubServer(table_responder(table)) as srv:
        res = ev.main(ev.parse(["--vllm-url", srv.base_url, "--data-file", str(data), "--output-file",
                                str(tmp_path / "r.json"), "--skip-flagged", "gt_wrong", *fast]))
        fixed = ev.main(ev.parse(["--vllm-url", srv.base_url, "--data-file", str(data), "--output-file",
                                  str(tmp_path / "c.json"), "--apply-corrections", *fast]))
    assert [s["index"] for s in res["samples"]] == [0, 2, 3, 4, 5] and res["data"]["skipped_flagged"] == 1
    assert fixed["samples"][1]["label"] == rows[1]["ocr_results"] + "字"  # scored against the corrected label
    assert fixed["overall_cer"] > 0


def test_count_score_and_split_use_the_sidecar(reviewed, tmp_path):
    data, rows = reviewed
    result = {"model_name": "m", "data": {"path": str(data)},
              "samples": [{"image_path": r["img_path"], "label": r["ocr_results"], "prediction": r["ocr_results"]}
                          for r in rows]}
    src = tmp_path / "res.json"
    src.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "scored.json"
    r = subprocess.run([sys.executable, "core/count_score.py", "--input", str(src), "--output", str(out),
                        "--skip-flagged", "gt_wrong", "ambiguous", "--n_bootstrap", "0"], cwd=ROOT,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    scored = json.loads(out.read_text(encoding="utf-8"))
    assert [s["image_path"] for s in scored["samples"]] == [rows[i]["img_path"] for i in (0, 2, 4, 5)]
    assert scored["data"]["skipped_flagged_on_rescore"] == {"keys": ["gt_wrong", "ambiguous"], "n": 2}

    split = tmp_path / "split"
    r = subprocess.run([sys.executable, "core/split_dataset.py", "--input", str(data), "--output_dir", str(split),
                        "--skip-flagged", "ambiguous", "--apply-corrections", "--val_fraction", "0",
                        "--test_fraction", "0.3"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    written = [x for name in ("train", "val", "test") for x in json.loads((split / f"{name}.json").read_text())]
    labels = {Path(x["img_path"]).name: x["ocr_results"] for x in written}
    assert len(written) == 5 and Path(rows[3]["img_path"]).name not in labels
    assert labels[Path(rows[1]["img_path"]).name] == rows[1]["ocr_results"] + "字"


def test_view_links_round_trip():
    from lib.ui.viewer import parse_confusion, parse_view_query, view_query

    q = view_query("sub/a.json", 7, elements=["table", "seal"], errors="errors only", review="gt_wrong",
                   search="臺北", sort_key="cer", descending=True, confusion=("臺", "台"))
    from urllib.parse import parse_qsl

    back = parse_view_query(dict(parse_qsl(q)))
    assert back == {"file": "sub/a.json", "sample": 7, "element": ["table", "seal"], "show": "errors only",
                    "review": "gt_wrong", "q": "臺北", "sort": "cer", "desc": True, "confusion": ("臺", "台")}
    assert view_query(None, None) == ""
    # a link is a hint: malformed values are dropped, never an error
    assert parse_view_query({"sample": "-3", "show": "everything", "sort": "x", "confusion": "abc"}) == {}
    assert parse_confusion("臺→台") == ("臺", "台") and parse_confusion("臺台") is None


def test_confusion_filter_and_review_filter():
    from lib.review import ReviewItem
    from lib.ui.samples import RowFilter, filter_rows, row_confusions, rows_from_result, top_confusions

    res = {"samples": [{"image_path": "a.png", "label": "臺北市", "prediction": "台北市"},
                       {"image_path": "b.png", "label": "臺灣臺", "prediction": "台灣台"},
                       {"image_path": "c.png", "label": "公文", "prediction": "公文"}]}
    rows = rows_from_result(res)
    conf = row_confusions(rows)
    assert top_confusions(conf) == [("臺", "台", 3, 2)]
    hit = filter_rows(rows, RowFilter(confusion=("臺", "台"), confusions=conf))
    assert [r.pos for r in hit] == [0, 1]
    reviews = {"c.png": ReviewItem(flags=["model_wrong"])}
    assert [r.pos for r in filter_rows(rows, RowFilter(review="model_wrong", reviews=reviews))] == [2]
    assert [r.pos for r in filter_rows(rows, RowFilter(review="not reviewed", reviews=reviews))] == [0, 1]


def test_slices_say_what_is_left_out_and_come_worst_first():
    from lib.ui.samples import slice_table

    samples = [{"image_path": f"{i}.png", "label": "一二三四", "prediction": "一二三四"[: 4 - (i % 4)],
                "doc_id": f"d{i}"} for i in range(12)]
    info: dict = {}
    rows = slice_table({"samples": samples}, by="doc_id", max_groups=5, info=info, n_bootstrap=20)
    assert info == {"n_groups": 12, "shown": 5} and len(rows) == 5
    cers = [r["CER (micro)"] for r in rows]
    assert cers == sorted(cers, reverse=True) and cers[0] == 0.75
