"""What the confidence intervals resample: whole documents when the data names them (`doc_id`), single samples
when it does not (a doc_id guessed from file names such as line_0001.png, or none at all) or when every sample has
the same doc_id (one document leaves nothing to resample: a zero-width interval). P-values at the permutation floor
are shown as a bound ("< 0.0001"), never as if exact."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from lib.data import load_samples
from lib.metrics.scoring import paired_comparison, score_result_file
from lib.metrics.stats import format_p_value

ROOT = Path(__file__).resolve().parents[1]


def _lines(n=120, seed=0, doc_id=None, derived=False):
    rng = random.Random(seed)
    samples = []
    for i in range(n):
        gt = "".join(rng.choice("政府公文報告會議紀錄") for _ in range(8))
        pred = gt if rng.random() < 0.7 else gt[:-1] + "錯"
        s = {"image_path": f"lines/line_{i:04d}.png", "label": gt, "prediction": pred}
        if doc_id is not None:
            s["doc_id"] = doc_id(i)
        if derived:
            s["doc_id_derived"] = True
        samples.append(s)
    return {"samples": samples}


def _ci(res):
    return res["scores"]["standard"]["ci95"]["cer_micro"]


@pytest.mark.parametrize("doc_id,derived,unit", [
    (None, False, "sample"),  # no document ids at all
    (lambda i: "line", True, "sample"),  # the loader guessed "line" from line_0001.png ... for every row
    (lambda i: "scan-1", False, "sample (all samples have one doc_id)"),  # one real document
])
def test_without_document_ids_samples_are_resampled(doc_id, derived, unit):
    res = score_result_file(_lines(doc_id=doc_id, derived=derived), n_bootstrap=300)
    lo, hi = _ci(res)
    assert hi - lo > 0.005 and lo < res["overall_cer"] < hi
    assert res["scoring"]["bootstrap_unit"] == unit


def test_documents_are_resampled_when_the_data_names_them():
    res = score_result_file(_lines(doc_id=lambda i: f"doc{i // 10}"), n_bootstrap=300)
    assert res["scoring"]["bootstrap_unit"] == "doc_id" and res["scores"]["standard"]["n_docs"] == 12


def test_the_loader_marks_guessed_doc_ids(tmp_path):
    rows = [{"img_path": f"line_{i:04d}.png", "ocr_results": "字"} for i in range(3)]
    rows.append({"img_path": "x.png", "ocr_results": "字", "doc_id": "letter-7"})
    (tmp_path / "d.json").write_text(json.dumps(rows), encoding="utf-8")
    s = load_samples(tmp_path / "d.json")
    assert [x.doc_id for x in s] == ["line", "line", "line", "letter-7"]
    assert [x.doc_id_derived for x in s] == [True, True, True, False]
    assert s[0].to_row()["doc_id_derived"] is True and "doc_id_derived" not in s[3].to_row()


def test_p_value_at_the_floor_is_a_bound():
    assert format_p_value(1 / 10001, 10000) == "< 0.0001"
    assert format_p_value(1 / 2001, 2000) == "< 0.0005"
    assert format_p_value(0.0312, 10000) == "0.0312"
    a = _lines(doc_id=lambda i: f"d{i}")
    b = json.loads(json.dumps(a))
    for s in b["samples"]:
        s["prediction"] = "完全不同的文字"
    cmp = paired_comparison(a, b, n_bootstrap=100, n_permutations=999)
    assert cmp["p_value"] == pytest.approx(1 / 1000) and cmp["p_value_at_floor"] is True


def test_count_score_prints_the_floor_as_a_bound(tmp_path):
    a = _lines(doc_id=lambda i: f"d{i}")
    b = json.loads(json.dumps(a))
    for s in b["samples"]:
        s["prediction"] = "完全不同的文字"
    for name, r in (("a.json", a), ("b.json", b)):
        (tmp_path / name).write_text(json.dumps(r, ensure_ascii=False), encoding="utf-8")
    r = subprocess.run([sys.executable, "core/count_score.py", "--compare", str(tmp_path / "a.json"),
                        str(tmp_path / "b.json"), "--n_permutations", "999", "--n_bootstrap", "50"],
                       cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "p < 0.001" in r.stdout and "p = 0.001" not in r.stdout and "difference of micro CER" in r.stdout


def test_a_cer_difference_with_different_labels_is_the_difference_of_the_two_micro_cers():
    a = {"samples": [{"image_path": "1.png", "label": "一二三四", "prediction": "一二三四"},
                     {"image_path": "2.png", "label": "五六", "prediction": "五"}]}
    b = {"samples": [{"image_path": "1.png", "label": "一二三四五六七八", "prediction": "一二三四五六七"},
                     {"image_path": "2.png", "label": "五六", "prediction": "五六"}]}
    cmp = paired_comparison(a, b, n_bootstrap=50, n_permutations=100)
    assert cmp["a"] == pytest.approx(1 / 6) and cmp["b"] == pytest.approx(1 / 10)
    assert cmp["difference"] == pytest.approx(1 / 10 - 1 / 6) and cmp["n_label_mismatch"] == 1
