"""The `seed` profile + micro CER + macro bag-F1 reproduce the original project's definitions exactly.

The reference below re-implements the original's count_score.py behaviour from its description (normalize_text with
the string-literal slip, jiwer CER over the corpus and per sample, char_f1_score macro mean) and uses jiwer itself,
the library the original called.
"""

import re
import string

import pytest

from lib.utils.count_metric import batch_char_f1_score, char_f1_score, score_result_file

jiwer = pytest.importorskip("jiwer", reason="jiwer (requirements.txt) is the original's CER library")


def original_normalize_text(text):
    text = re.sub(r"\s+", "", text)
    text = text.translate(str.maketrans("", "", string.punctuation))
    # the original's literal: '，。！？；：""''『』…' — the ''-pair ends and restarts the string, so the curly quotes
    # it meant to list are gone and two ASCII " remain
    chinese_punctuation = '，。！？；：""''『』「」（）【】《》〈〉、·…—～︰︱︳︴︵︶︷︸︹︺︻︼︽︾︿﹀﹁﹂﹃﹄﹙﹚﹛﹜﹝﹞'
    return text.translate(str.maketrans("", "", chinese_punctuation))


SAMPLES = [
    # (label, prediction): lengths differ a lot so micro CER (Σedits/Σlen) ≠ macro CER (mean of ratios)
    ("中華民國一百一十三年十二月三十一日，行政院公告。", "中華民國一百一十三年十二月三十一日 行政院公告"),
    ("甲乙", "甲丙丙"),
    ("「公文」第 12 號：“請查照”", "公文第12號“請査照”"),
    ("台北市 信義區", "臺北市信義區區區"),
    ("（附件）…詳如說明", "附件詳如說明書"),
]


def original_scores(samples):
    refs = [original_normalize_text(g) for g, _ in samples]
    hyps = [original_normalize_text(p) for _, p in samples]
    return {"overall_cer": jiwer.cer(refs, hyps), "overall_f1": batch_char_f1_score(hyps, refs),
            "cer": [jiwer.cer([r], [h]) for r, h in zip(refs, hyps)],
            "f1": [char_f1_score(h, r) for r, h in zip(refs, hyps)]}


def test_seed_reproduces_original_with_micro_not_macro():
    ref = original_scores(SAMPLES)
    result = {"model_name": "x", "samples": [{"image_path": f"{i}.png", "label": g, "prediction": p}
                                             for i, (g, p) in enumerate(SAMPLES)]}
    out = score_result_file(result, profiles=("seed",), n_bootstrap=0)
    assert out["overall_cer"] == pytest.approx(ref["overall_cer"], abs=1e-12)
    assert out["overall_f1"] == pytest.approx(ref["overall_f1"], abs=1e-12)
    assert [s["cer_score"] for s in out["samples"]] == pytest.approx(ref["cer"], abs=1e-12)
    assert [s["f1_score"] for s in out["samples"]] == pytest.approx(ref["f1"], abs=1e-12)
    macro = sum(ref["cer"]) / len(ref["cer"])
    assert abs(out["overall_cer"] - macro) > 0.05  # the test data really separates micro from macro
    assert out["scores"]["seed"]["cer_macro"] == pytest.approx(macro)


def test_seed_hand_computed_micro_macro():
    # labels 一二三四五六七八九十 (10) and 甲乙 (2); predictions exact and 甲丙 → edits 0 and 1
    result = {"samples": [{"image_path": "a", "label": "一二三四五六七八九十", "prediction": "一二三四五六七八九十"},
                          {"image_path": "b", "label": "甲乙", "prediction": "甲丙"}]}
    out = score_result_file(result, profiles=("seed",), n_bootstrap=0)
    assert out["overall_cer"] == pytest.approx(1 / 12)  # micro: Σedits / Σlen
    assert out["scores"]["seed"]["cer_macro"] == pytest.approx((0 + 1 / 2) / 2)
    assert out["overall_f1"] == pytest.approx((1.0 + 0.5) / 2)  # macro bag F1: 甲丙 vs 甲乙 → tp 1, F1 1/2


def test_seed_both_empty_f1_is_zero_like_the_original():
    out = score_result_file({"samples": [{"image_path": "a", "label": "。", "prediction": "，"}]},
                            profiles=("seed", "standard"), n_bootstrap=0)
    assert char_f1_score("", "") == 0.0
    assert out["samples"][0]["scores"]["seed"]["bag_f1"] == 0.0  # both normalize to ""
    assert out["samples"][0]["scores"]["seed"]["cer"] == 0.0
