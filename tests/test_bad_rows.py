"""Bad rows in an evaluation: reported per row while the run goes on (a row without a label), rejected up front
(URL images with a backend that reads local files), never scored silently (empty labels: warned, counted, out of
the aggregates unless asked), duplicates scored once and conflicting labels flagged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lib.data import load_samples, validate_samples
from lib.evaluation.stub_server import StubServer, table_responder
from lib.evaluation.testing import label_table, make_png_dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "core"))
import evaluate as ev  # noqa: E402

FAST = ["--backoff-base", "0.01", "--backoff-max", "0.05", "--no-progress", "--n-bootstrap", "50"]


def run_eval(data, out, url, *extra):
    return ev.main(ev.parse(["--vllm-url", url, "--data-file", str(data), "--output-file", str(out), *FAST, *extra]))


def edit_rows(data: Path, fn) -> list[dict]:
    rows = json.loads(data.read_text(encoding="utf-8"))
    rows = fn(rows)
    data.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return rows


def test_a_row_without_a_label_is_reported_and_the_rest_is_evaluated(tmp_path, caplog):
    data = make_png_dataset(tmp_path, 6)
    table = label_table(data)
    edit_rows(data, lambda rows: [{k: v for k, v in r.items() if i != 2 or k != "ocr_results"}
                                  for i, r in enumerate(rows)])
    with StubServer(table_responder(table)) as srv:
        res = run_eval(data, tmp_path / "r.json", srv.base_url)
    assert [s["index"] for s in res["samples"]] == [0, 1, 3, 4, 5]
    assert res["n_errors"] == 0 and res["overall_cer"] == 0.0
    bad = res["data"]["malformed_rows"]
    assert len(bad) == 1 and bad[0].startswith("row 2 (images/") and "no label" in bad[0]
    assert res["data"]["n_in_file"] == 6
    assert "skipping row 2" in caplog.text


def test_url_images_are_refused_up_front_by_local_backends(tmp_path):
    data = make_png_dataset(tmp_path, 3)
    edit_rows(data, lambda rows: rows[:1] + [{"img_path": "https://example.invalid/p1.png", "ocr_results": "公文"}]
              + rows[1:])
    # before any model is loaded (the model name does not even exist): one line naming the rows and the fix
    r = subprocess.run([sys.executable, "core/evaluate.py", "--mode", "hf", "--model-name", "no/such-model",
                        "--data-file", str(data), "--output-file", str(tmp_path / "r.json")],
                       cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "rows 1" in r.stderr and "--mode hf" in r.stderr and "download the image" in r.stderr
    report = validate_samples(load_samples(data), check_images=False)
    assert [p["row"] for p in report.problems] == [1] and "URL" in report.problems[0]["problem"]
    assert validate_samples(load_samples(data), check_images=False, allow_urls=True).ok


def test_empty_labels_are_warned_counted_and_kept_out_of_micro_cer(tmp_path, caplog):
    data = make_png_dataset(tmp_path, 5)
    table = label_table(data)
    rows = json.loads(data.read_text(encoding="utf-8"))
    from lib.evaluation.stub_server import image_key

    key = image_key((tmp_path / rows[1]["img_path"]).read_bytes())
    table[key] = "雜訊文字"  # the model reads something where the label says there is nothing
    edit_rows(data, lambda rs: [dict(r, ocr_results="") if i == 1 else r for i, r in enumerate(rs)])
    with StubServer(table_responder(table)) as srv:
        res = run_eval(data, tmp_path / "r.json", srv.base_url)
        both = run_eval(data, tmp_path / "r2.json", srv.base_url, "--score-empty-labels")
    sc = res["scores"]["standard"]
    assert sc["n_empty_labels"] == 1 and sc["n"] == 4 and res["overall_cer"] == 0.0  # not Σ edits inflated by 4
    assert res["data"]["n_empty_labels"] == 1 and "empty label" in caplog.text
    assert res["samples"][1]["scores"]["standard"]["cer"] == 1.0  # still scored per sample
    assert both["scores"]["standard"]["n"] == 5 and both["overall_cer"] > 0


def test_duplicates_are_scored_once_and_conflicting_labels_flagged(tmp_path):
    data = make_png_dataset(tmp_path, 4)
    table = label_table(data)
    rows = edit_rows(data, lambda rs: rs + [dict(rs[0]), dict(rs[1], ocr_results="別的標籤")])
    with StubServer(table_responder(table)) as srv:
        res = run_eval(data, tmp_path / "r.json", srv.base_url)
        assert srv.stats["requests"] == 5  # the exact duplicate (row 4) is not asked again
    assert [s["index"] for s in res["samples"]] == [0, 1, 2, 3, 5]
    assert res["data"]["skipped_duplicates"] == [4]
    report = validate_samples(load_samples(data), check_images=False)
    assert {(p["row"], p["field"]) for p in report.problems} == {(4, "row"), (5, "label")}
    conflict = next(p for p in report.problems if p["row"] == 5)
    assert "row 1" in conflict["problem"] and "different label" in conflict["problem"]
    assert len(rows) == 6


def test_a_run_where_every_sample_fails_exits_non_zero(tmp_path):
    data = make_png_dataset(tmp_path, 2)
    r = subprocess.run([sys.executable, "core/evaluate.py", "--vllm-url", "http://127.0.0.1:9", "--model-name", "m",
                        "--max-retries", "0", "--timeout", "2", "--data-file", str(data), "--output-file",
                        str(tmp_path / "r.json"), "--no-progress", "--n-bootstrap", "0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 1 and "all 2 samples failed" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["n_errors"] == 2


@pytest.mark.parametrize("bad", ["none", "staandard"])
def test_profiles_are_checked_before_the_run(bad):
    with pytest.raises(SystemExit) as e:
        ev.parse(["--profiles", bad])
    assert e.value.code == 2
