"""score_result_file / paired_comparison: schema fields, profiles, errors, doc-level bootstrap, paired tests."""

import copy
import json
import random

import numpy as np
import pytest

from lib.metrics import stats
from lib.results import load_results
from lib.utils.count_metric import paired_comparison, score_result_file, score_texts


def _result(pairs, **extra):
    return {"model_name": "m", "samples": [{"image_path": f"{i}.png", "label": g, "prediction": p, **extra}
                                           for i, (g, p) in enumerate(pairs)]}


def test_profiles_recorded_first_is_primary():
    r = _result([("臺灣，你好", "台湾你好"), ("中文", "中文")])
    out = score_result_file(r, profiles=("lenient", "standard", "seed"), n_bootstrap=0)
    assert out["profiles"] == ["lenient", "standard", "seed"]
    assert set(out["scores"]) == {"lenient", "standard", "seed"}
    assert out["overall_cer"] == out["scores"]["lenient"]["cer_micro"] == 0.0
    assert out["overall_f1"] == out["scores"]["lenient"]["bag_f1_macro"] == 1.0
    # standard: 臺灣,你好 (5) vs 台湾你好: 2 substitutions + 1 deletion
    assert out["scores"]["standard"]["cer_micro"] == pytest.approx(3 / 7)
    s0 = out["samples"][0]
    assert s0["cer_score"] == s0["scores"]["lenient"]["cer"] == 0.0
    assert s0["scores"]["standard"]["cer"] == pytest.approx(3 / 5)
    assert s0["scores"]["standard"]["substitutions"] == 2 and s0["scores"]["standard"]["deletions"] == 1
    ana = out["scores"]["standard"]["anatomy"]
    assert ana["st_confusions"] == 2 and ana["st_confusion_rate"] == pytest.approx(2 / 3)
    assert [c[:3] for c in ana["top_confusions"]] == [["灣", "湾", 1], ["臺", "台", 1]]  # ties: by code point
    assert ana["by_class"]["hanzi"] == {"chars": 6, "sub_del": 2, "rate": pytest.approx(2 / 6)}
    assert ana["by_class"]["other"] == {"chars": 1, "sub_del": 1, "rate": 1.0}  # the comma, deleted
    assert ana["by_class"]["digit"]["chars"] == ana["by_class"]["latin"]["chars"] == 0


def test_errors_by_character_class_add_up_to_the_substitutions_and_deletions():
    pairs = [("第113號ABC。", "第118號AB。x"), ("２０２６年３月", "2026年8月"), ("公文", ""), ("", "多")]
    out = score_result_file(_result(pairs), n_bootstrap=0, workers=2)
    ana = out["scores"]["standard"]["anatomy"]
    by = ana["by_class"]
    assert sum(v["sub_del"] for v in by.values()) == ana["substitutions"] + ana["deletions"]
    assert sum(v["chars"] for v in by.values()) == sum(len(s["label"]) for s in out["samples"] if s["label"])
    assert by["digit"] == {"chars": 8, "sub_del": 2, "rate": 0.25}  # 1→8 and 3→8 (full-width digits fold to ASCII)
    assert by["hanzi"]["chars"] == 6 and by["hanzi"]["sub_del"] == 2  # 公文 missing


def test_errors_excluded_or_scored_as_empty():
    r = _result([("中文", "中文"), ("一二三四", None)])
    r["samples"][1]["error"] = "HTTP 503"
    out = score_result_file(copy.deepcopy(r), n_bootstrap=0)
    assert out["n_errors"] == 1 and out["scores"]["standard"]["n"] == 1
    assert out["overall_cer"] == 0.0
    assert out["samples"][1]["cer_score"] is None and out["samples"][1]["scores"] == {"standard": None}
    out2 = score_result_file(copy.deepcopy(r), n_bootstrap=0, errors_as_empty=True)
    assert out2["scores"]["standard"]["n"] == 2 and out2["errors_as_empty"] is True
    assert out2["overall_cer"] == pytest.approx(4 / 6)
    assert out2["scores"]["standard"]["anatomy"]["n_empty_predictions"] == 1


def test_all_empty_never_divides_by_zero():
    out = score_result_file(_result([("", ""), ("", "")]), n_bootstrap=50, score_empty_labels=True)
    assert out["overall_cer"] == 0.0 and out["overall_f1"] == 1.0
    out = score_result_file(_result([("", "abc")]), n_bootstrap=50, score_empty_labels=True)
    assert out["overall_cer"] == 1.0
    out = score_result_file(_result([("", "abc")]), n_bootstrap=50)  # default: empty labels stay out
    assert out["overall_cer"] is None and out["scores"]["standard"]["n_empty_labels"] == 1
    out = score_result_file({"samples": []}, n_bootstrap=50)
    assert out["overall_cer"] is None and out["scores"]["standard"]["n"] == 0


def test_slices_report_n_and_seal_and_repetition():
    r = _result([("中華民國印", "國印中華民"), ("你好世界", "你好世界世界世界世界世界世界"), ("一", "一")])
    r["samples"][0]["element"] = "seal"
    r["samples"][1]["element"] = "text"
    out = score_result_file(r, n_bootstrap=100)
    sc = out["scores"]["standard"]
    assert sc["seals"] == {"n": 1, "seal_ned_macro": 0.0, "ci95": {"seal_ned_macro": [0.0, 0.0]}}
    assert {k: v["n"] for k, v in sc["slices"]["element"].items()} == {"(none)": 1, "seal": 1, "text": 1}
    assert sc["anatomy"]["n_repetition_loops"] == 1
    assert sc["anatomy"]["repetition_loops"][0]["image_path"] == "1.png"
    assert out["samples"][1]["scores"]["standard"]["repetition_loop"]["unit"] == "世界"


def test_ci_contains_estimate_and_is_reproducible():
    rng = random.Random(0)
    pairs = []
    for _ in range(60):
        g = "".join(rng.choice("一二三四五六七八九十") for _ in range(rng.randint(5, 30)))
        p = "".join(c if rng.random() > 0.1 else "口" for c in g)
        pairs.append((g, p))
    a = score_result_file(_result(pairs), n_bootstrap=500, seed=3)
    b = score_result_file(_result(pairs), n_bootstrap=500, seed=3)
    sc = a["scores"]["standard"]
    for k in ("cer_micro", "cer_macro", "bag_f1_macro", "lcs_f1_macro", "ned_macro", "exact_match"):
        lo, hi = sc["ci95"][k]
        assert lo <= sc[k] <= hi, k
    assert sc["ci95"] == b["scores"]["standard"]["ci95"]
    assert a["scoring"]["bootstrap_unit"] == "sample"


def test_bootstrap_resamples_whole_documents():
    # doc A: 10 perfect lines, doc B: 10 lines all wrong. Per-sample resampling underestimates the uncertainty:
    # with 2 documents a resample is AA (CER 0), AB (0.5) or BB (1), so the 95% CI is [0, 1].
    pairs = [("一二", "一二")] * 10 + [("一二", "三四")] * 10
    r = _result(pairs)
    for i, s in enumerate(r["samples"]):
        s["doc_id"] = "A" if i < 10 else "B"
    grouped = score_result_file(r, n_bootstrap=400)
    assert grouped["scoring"]["bootstrap_unit"] == "doc_id"
    assert grouped["scores"]["standard"]["n_docs"] == 2
    assert grouped["scores"]["standard"]["ci95"]["cer_micro"] == [0.0, 1.0]
    flat = score_result_file(_result(pairs), n_bootstrap=400)
    lo, hi = flat["scores"]["standard"]["ci95"]["cer_micro"]
    assert 0.2 < lo < 0.5 < hi < 0.8


def test_group_codes():
    codes = stats.group_codes(["a", None, "b", "a", "", None])
    assert codes.tolist() == [0, 1, 2, 0, 3, 4]


def test_paired_comparison_identical_and_clear_improvement():
    rng = random.Random(1)
    pairs = []
    for _ in range(40):
        g = "".join(rng.choice("甲乙丙丁戊己庚辛") for _ in range(20))
        pairs.append((g, g[:15] + "口口口口口"))
    a = _result(pairs)
    same = paired_comparison(a, copy.deepcopy(a), n_permutations=2000)
    assert same["difference"] == 0.0 and same["p_value"] == 1.0 and same["improved"] == same["regressed"] == 0
    b = copy.deepcopy(a)
    for s in b["samples"]:
        s["prediction"] = s["label"][:18] + "口口"
    random.Random(2).shuffle(b["samples"])  # pairing is by image_path, not by position
    b["samples"].append({"image_path": "extra.png", "label": "x", "prediction": "x"})
    cmp = paired_comparison(a, b, n_permutations=2000, n_bootstrap=500)
    assert cmp["n"] == 40 and cmp["n_only_b"] == 1 and cmp["n_only_a"] == 0
    assert cmp["a"] == pytest.approx(5 / 20) and cmp["b"] == pytest.approx(2 / 20)
    assert cmp["difference"] == pytest.approx(-3 / 20)
    assert cmp["ci95"][1] < 0 and cmp["p_value"] < 0.01
    assert cmp["improved"] == 40 and cmp["regressed"] == 0
    f1 = paired_comparison(a, b, metric="lcs_f1", n_permutations=500)
    assert f1["higher_is_better"] and f1["difference"] > 0 and f1["improved"] == 40
    with pytest.raises(KeyError, match="did you mean"):
        paired_comparison(a, b, metric="cre")


def test_reads_original_result_file_unchanged(tmp_path):
    original = {"overall_cer": 0.3, "overall_f1": 0.7, "total_samples": 2, "timestamp": "2025-01-01T00:00:00",
                "model_name": "gemma-3-12b-it", "samples": [
                    {"image_path": "a.png", "label": "公文", "prediction": "公文", "cer_score": 0.0, "f1_score": 1.0},
                    {"image_path": "b.png", "label": "主旨", "prediction": "主", "cer_score": 0.5, "f1_score": 0.6,
                     "focus_layout": {"header": True}}]}
    p = tmp_path / "orig.json"
    p.write_text(json.dumps(original, ensure_ascii=False), encoding="utf-8")
    data = load_results(p)
    assert data["schema_version"] == 0 and data["samples"][1]["layout"] == {"header": True}
    out = score_result_file(data, n_bootstrap=0)
    assert out["overall_cer"] == pytest.approx(1 / 4)
    assert out["samples"][1]["f1_score"] == pytest.approx(2 / 3)


def test_score_texts_for_training_callback():
    res = score_texts(["中文字", "一"], ["中文", "一二"], n_bootstrap=0)
    assert res["cer_micro"] == pytest.approx(2 / 4) and res["n"] == 2
    assert np.isfinite(res["cer_macro"])


def _required(td):  # lib/results.py uses postponed annotations, so __required_keys__ cannot see NotRequired
    return {k for k, v in td.__annotations__.items() if "NotRequired[" not in str(getattr(v, "__forward_arg__", v))}


def test_output_matches_the_schema_in_lib_results():
    from lib.results import Anatomy, ProfileScores, SampleScores, TableScores

    r = _result([("中文", "中文字"), ("<table><tr><td>1</td></tr></table>", "| 1 |\n|---|")])
    r["samples"][0].update(element="seal", doc_id="d", lang="zh-Hant")
    r["samples"].append({"image_path": "loop.png", "label": "你好", "prediction": "你好" * 9})
    out = score_result_file(r, profiles=("standard", "seed"), n_bootstrap=10)
    json.dumps(out, allow_nan=False)  # plain JSON types only (no numpy scalars, no NaN/inf)
    for prof in out["profiles"]:
        sc = out["scores"][prof]
        assert _required(ProfileScores) <= set(sc) <= set(ProfileScores.__annotations__)
        assert set(sc["anatomy"]) == set(Anatomy.__annotations__)
        assert set(sc["tables"]) == set(TableScores.__annotations__)
        for s in out["samples"]:
            ps = s["scores"][prof]
            assert _required(SampleScores) <= set(ps) <= set(SampleScores.__annotations__)
