"""Analysis tools: train/test report (leakage on a constructed leaky split), add_layout, result slicing."""

import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from lib import analysis as A
from lib.config import parse_args

from core import add_layout
from core.data_analysis import analyze_train_test_data, eval_result_analysis

ROOT = Path(__file__).resolve().parents[1]

REAL = ROOT.parent / "shared" / "data" / "real"


def _img(path: Path, size=(60, 30), red_circle=False):
    im = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(im)
    d.rectangle([5, 5, 15, 15], fill="black")
    if red_circle:
        d.ellipse([size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4], outline=(200, 30, 30), width=3)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path.name


def _write(path: Path, rows):
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------- definitions


def test_char_classes_and_label_script():
    assert [A.char_class(c) for c in "臺台湾中A7，"] == ["hant", "han", "hans", "han", "latin", "digit", "punct"]
    assert A.label_script("臺灣省") == "hant" and A.label_script("台湾省") == "hans"
    assert A.label_script("臺湾") == "mixed" and A.label_script("中文") == "han" and A.label_script("OCR 3") == "latin"
    assert A.label_script("<table><tr><td>發</td></tr></table>") == "hant"  # markup is not text


def test_length_buckets_ignore_whitespace_and_markup():
    assert A.length_bucket("一 二\n三") == "0-19"
    assert A.length_bucket("字" * 20) == "20-99"
    assert A.length_bucket("<td>" * 100 + "字") == "0-19"
    assert A.length_bucket("字" * 500) == "500+"


def test_synthetic_traditional_text_has_no_simplified_only_characters():
    import inspect

    from lib.synth import content

    assert {c for c in inspect.getsource(content) if A.char_class(c) == "hans"} == set()


# ---------------------------------------------------------------- analyze_train_test_data


@pytest.fixture
def leaky_split(tmp_path):
    imgs = iter(_img(tmp_path / "images" / f"x{i}.png") for i in range(8))
    shared = "主旨：檢送本府一一三年度數位學習推動實施計畫乙份，請查照。"
    train = [
        {"img_path": f"images/{next(imgs)}", "ocr_results": shared, "doc_id": "docA", "element": "text"},
        {"img_path": f"images/{next(imgs)}", "ocr_results": "說明：依據行政程序法第一百零二條規定辦理。", "doc_id": "docA", "element": "text"},
        {"img_path": f"images/{next(imgs)}", "ocr_results": "<table><tr><td>項次</td><td>金額</td></tr></table>", "doc_id": "docB",
         "element": "table"},
        {"img_path": f"images/{next(imgs)}", "ocr_results": "正本：各級學校副本：本府教育局", "doc_id": "docC", "element": "text"},
    ]
    test = [
        # a page of a training document
        {"img_path": f"images/{next(imgs)}", "ocr_results": "第2頁 共3頁", "doc_id": "docA", "element": "footer"},
        # another document, identical label
        {"img_path": f"images/{next(imgs)}", "ocr_results": shared, "doc_id": "docX", "element": "text"},
        # another document, one character different (near-duplicate)
        {"img_path": f"images/{next(imgs)}", "ocr_results": "說明：依據行政程序法第一百零三條規定辦理。", "doc_id": "docY", "element": "text"},
        # clean, with characters never seen in training (鑫, 龘)
        {"img_path": f"images/{next(imgs)}", "ocr_results": "鑫龘企業有限公司負責人", "doc_id": "docZ", "element": "text"},
    ]
    return _write(tmp_path / "train.json", train), _write(tmp_path / "test.json", test)


def test_leakage_is_detected_on_a_constructed_leaky_split(leaky_split, tmp_path):
    train, test = leaky_split
    out = tmp_path / "report"
    args = parse_args(analyze_train_test_data.AnalyzeArgs, ["--train", str(train), "--test", str(test),
                                                            "--output_dir", str(out)])
    s = analyze_train_test_data.main(args)
    lk = s["leakage"]
    assert lk["shared_documents"] == ["docA"] and lk["test_samples_from_shared_documents"] == 1
    assert lk["exact_duplicate_labels"] == 1
    assert lk["near_duplicate_labels"] == 1 and lk["near_examples"][0]["similarity"] >= 0.9
    assert lk["leaky_test_samples"] == 3
    cov = s["coverage"]
    assert {c for c, _ in cov["top_unseen"]} >= {"鑫", "龘"}
    assert s["splits"]["train"]["samples"] == 4 and s["splits"]["train"]["documents"] == 3
    assert s["splits"]["test"]["elements"] == {"footer": 1, "text": 3}
    # the outputs exist and carry the computed numbers
    report = (out / "report.md").read_text()
    assert "documents in both: **1**" in report and "identical to a training label: **1**" in report
    assert f"**{cov['unseen_unique_chars']}**" in report and "鑫" in report
    assert json.loads((out / "summary.json").read_text())["leakage"]["leaky_test_samples"] == 3
    assert s["splits"]["train"]["samples_per_document"]["max"] == 2 and "samples per document: mean 1.33, max 2" in report
    for png in ("label_length_distribution.png", "samples_per_document.png", "script_mix.png", "element_mix.png"):
        assert (out / png).stat().st_size > 5000


def test_clean_split_reports_no_leak_and_fail_on_leak_exits(leaky_split, tmp_path):
    train, test = leaky_split
    args = parse_args(analyze_train_test_data.AnalyzeArgs, ["--train", str(train), "--test", str(train),
                                                            "--output_dir", str(tmp_path / "o"), "--no-plots",
                                                            "--fail_on_leak"])
    with pytest.raises(SystemExit) as e:
        analyze_train_test_data.main(args)
    assert e.value.code == 2
    rows = json.loads(test.read_text())[3:]
    clean = _write(tmp_path / "clean.json", rows)
    args = parse_args(analyze_train_test_data.AnalyzeArgs, ["--train", str(train), "--test", str(clean),
                                                            "--output_dir", str(tmp_path / "o2"), "--no-plots",
                                                            "--fail_on_leak"])
    assert analyze_train_test_data.main(args)["leakage"]["leaky_test_samples"] == 0


@pytest.mark.skipif(not (REAL / "omnidocbench_zh" / "blocks.json").is_file(), reason="shared real data not present")
def test_real_blocks_vs_tables_numbers(tmp_path):
    args = parse_args(analyze_train_test_data.AnalyzeArgs, [
        "--train", str(REAL / "omnidocbench_zh" / "blocks.json"), "--test", str(REAL / "omnidocbench_zh" / "tables.json"),
        "--output_dir", str(tmp_path), "--no-plots"])
    s = analyze_train_test_data.main(args)
    assert s["splits"]["train"]["samples"] == 128 and s["splits"]["test"]["samples"] == 6
    # blocks and tables come from the same OmniDocBench pages: 5 table pages share their doc_id with blocks
    assert s["leakage"]["n_shared_documents"] >= 1
    assert s["splits"]["train"]["script_mix"]["hans"] > s["splits"]["train"]["script_mix"]["hant"]


# ---------------------------------------------------------------- add_layout


def test_add_layout_original_interface_merges_layout_file(tmp_path):
    src = tmp_path / "results"
    src.mkdir()
    result = {"model_name": "m", "samples": [
        {"image_path": "data/a.png", "label": "甲", "prediction": "甲"},
        {"image_path": "data/b.png", "label": "乙", "prediction": "丙"}]}
    _write(src / "model.json", result)
    layout = {"results": [{"image_path": "data/a.png", "focus_layout": ["table", "stamp"]}]}
    lf = _write(tmp_path / "layout.json", layout)
    out = tmp_path / "out"
    args = parse_args(add_layout.AddLayoutArgs, ["--layout-file", str(lf), "--source-dir", str(src), "--output-dir", str(out),
                                                 "--no-detect"])
    add_layout.main(args)
    enriched = json.loads((out / "model.json").read_text())
    a, b = enriched["samples"]
    assert a["focus_layout"][:2] == ["table", "stamp"] and a["layout_attrs"]["layout_source"] == "layout_file"
    assert "len_0-19" in a["focus_layout"] and b["layout_attrs"]["layout_source"] == "none"
    assert enriched["layout_metadata"]["matched_samples"] == 1 and enriched["layout_metadata"]["match_rate"] == 0.5


def test_add_layout_detectors_and_synthetic_metadata(tmp_path):
    rows = [
        {"img_path": "images/" + _img(tmp_path / "images" / "seal.png", (120, 120), red_circle=True), "ocr_results": "臺北市政府"},
        {"img_path": "images/" + _img(tmp_path / "images" / "tall.png", (30, 200)), "ocr_results": "裝訂線"},
        {"img_path": "images/" + _img(tmp_path / "images" / "t.png"), "ocr_results": "<table><tr><td>1</td></tr></table>"},
        {"img_path": "images/" + _img(tmp_path / "images" / "plain.png"), "ocr_results": "plain text"},
        {"img_path": "images/" + _img(tmp_path / "images" / "s.png"), "ocr_results": "第1頁", "element": "footer",
         "layout": ["footer"], "synth": {"seed": 0}},
    ]
    inp = _write(tmp_path / "data.json", rows)
    args = parse_args(add_layout.AddLayoutArgs, ["--input", str(inp)])
    add_layout.main(args)
    out = json.loads((tmp_path / "data_layout.json").read_text())
    tags = [set(r["layout"]) for r in out]
    assert "seal" in tags[0] and "vertical" not in tags[0]
    assert "vertical" in tags[1] and "seal" not in tags[1]
    assert "table" in tags[2] and "seal" not in tags[2]
    assert not ({"table", "seal", "vertical"} & tags[3]) and "script_latin" in tags[3]
    assert "footer" in tags[4] and out[4]["layout_attrs"]["layout_source"] == "synthetic"
    # lib.data reads the tags back
    from lib.data import load_samples

    assert load_samples(tmp_path / "data_layout.json")[0].layout == out[0]["layout"]


# ---------------------------------------------------------------- eval_result_analysis


def _result(tmp_path):
    samples = []
    for d in range(6):  # text: perfect; seal: every character wrong; table: half the cells wrong
        samples.append({"image_path": f"t{d}.png", "label": "主旨請查照", "prediction": "主旨請查照", "doc_id": f"d{d}",
                        "element": "text", "layout": ["len_0-19"]})
        samples.append({"image_path": f"s{d}.png", "label": "王大明印", "prediction": "甲乙丙丁", "doc_id": f"d{d}",
                        "element": "seal", "layout": ["seal", "seal_over_text"]})
    samples.append({"image_path": "e.png", "label": "錯誤", "prediction": None, "error": "HTTP 503", "doc_id": "d9",
                    "element": "text"})
    r = {"model_name": "toy", "timestamp": "2026-01-01T00:00:00", "samples": samples}
    (tmp_path / "test_data=13").mkdir()
    return _write(tmp_path / "test_data=13" / "toy.json", r)


def test_eval_result_analysis_slices_with_cis_and_failcases(tmp_path, monkeypatch):
    rp = _result(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = parse_args(eval_result_analysis.EvalAnalysisArgs, ["--result_path", str(rp), "--threshold", "0.6",
                                                              "--n_bootstrap", "200"])
    a = eval_result_analysis.main(args)
    el = a["slices"]["element"]
    assert el["text"]["n"] == 6 and el["text"]["cer_micro"] == 0.0 and el["text"]["fail_rate"] == 0.0
    assert el["seal"]["n"] == 6 and el["seal"]["cer_micro"] == 1.0 and el["seal"]["n_fail"] == 6
    assert el["seal"]["cer_ci95"] == [1.0, 1.0] and el["text"]["n_docs"] == 6
    assert a["overall"]["cer_micro"] == pytest.approx(24 / 54)  # 6 seals x 4 edits / (6x5 + 6x4) characters
    lo, hi = a["overall"]["cer_ci95"]  # every document has the same ratio here, so the CI is a point
    assert lo == pytest.approx(24 / 54) and hi == pytest.approx(24 / 54)
    assert a["n_errors"] == 1 and a["n_scored"] == 12
    assert set(a["slices"]["layout"]) == {"seal", "seal_over_text", "(none)"}
    assert a["worst"][0]["element"] == "seal" and a["worst"][0]["cer"] == 1.0
    assert a["error_ops"]["substitutions"] == 24
    # the original's failure export, in the original's default place (test_data=<N> taken from the path)
    fc_path = Path(a["failcase_path"])
    assert fc_path == Path("results/evaluation/test_data=13/failcase/failcase_f1_0.6_toy.json")
    fc = json.loads((tmp_path / fc_path).read_text())
    assert fc["failcase_count"] == 6 and {s["element"] for s in fc["samples"]} == {"seal"}
    assert fc["focus_layout_distribution"]["seal"]["fail_rate"] == 100.0
    assert fc["focus_layout_distribution"]["seal"]["avg_cer"] == 1.0  # the original always printed 0 here
    report = (tmp_path / a["report_dir"] / "report.md").read_text()
    assert "| seal | 6 | 6 | 1.0000 |" in report and "micro CER **0.4444**" in report
    assert (tmp_path / a["report_dir"] / "cer_by_slice.png").stat().st_size > 5000


def test_eval_result_analysis_reads_existing_scores_without_rescoring(tmp_path, monkeypatch):
    from lib.utils.count_metric import score_result_file

    rp = _result(tmp_path)
    r = json.loads(rp.read_text())
    score_result_file(r, profiles=("standard",), n_bootstrap=50)
    r["samples"][0]["scores"]["standard"]["edits"] = 5  # a marker: analysis must use the stored scores
    rp.write_text(json.dumps(r, ensure_ascii=False))
    monkeypatch.chdir(tmp_path)
    args = parse_args(eval_result_analysis.EvalAnalysisArgs, ["--result_path", str(rp), "--n_bootstrap", "0",
                                                              "--no-plots", "--output", str(tmp_path / "f.json")])
    a = eval_result_analysis.main(args)
    assert not a["scored_here"] and a["slices"]["element"]["text"]["cer_micro"] == pytest.approx(5 / 30)
    args = parse_args(eval_result_analysis.EvalAnalysisArgs, ["--result_path", str(rp), "--n_bootstrap", "0",
                                                              "--no-plots", "--output", str(tmp_path / "f.json"), "--rescore"])
    assert eval_result_analysis.main(args)["slices"]["element"]["text"]["cer_micro"] == 0.0


def test_slice_ci_is_a_document_bootstrap_interval():
    # 10 documents with different error counts: the CI brackets the point estimate and is not a point
    edits = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    len_gt = [10] * 10
    f1 = [1 - e / 10 for e in edits]
    out = A.slice_table({"all": list(range(10))}, edits, len_gt, f1, [0] * 10, [f"d{i}" for i in range(10)],
                        [v <= 0.6 for v in f1], n_bootstrap=500, seed=0)["all"]
    assert out["cer_micro"] == pytest.approx(0.45) and out["n_fail"] == 6
    lo, hi = out["cer_ci95"]
    assert lo < 0.45 < hi and hi - lo > 0.1
    # two rows of one document move together: same documents, fewer independent units, wider interval
    same = A.slice_table({"all": list(range(10))}, edits, len_gt, f1, [0] * 10, [f"d{i // 5}" for i in range(10)],
                         [False] * 10, n_bootstrap=500, seed=0)["all"]
    assert same["n_docs"] == 2 and same["cer_ci95"][1] - same["cer_ci95"][0] > hi - lo
