"""Hand-computed values for every text metric and every normalization profile (see docs/METRICS.md)."""

import pytest

from lib.utils.count_metric import (PROFILES, bag_f1, cer, cer_clipped, error_anatomy, exact_match, get_metric,
                                    is_st_confusion, lcs_f1, ned, normalize, repetition_loop, score_pairs, seal_ned)
from lib.metrics.normalization import ProfileError
from lib.metrics.registry import MetricError


# ------------------------------------------------------------------------------------------------- normalization
@pytest.mark.parametrize("text, seed, standard, lenient", [
    ("ａｂｃ１２３　中文", "ａｂｃ１２３中文", "abc123中文", "abc123中文"),  # full-width ASCII + ideographic space
    ("⼀⼆⼈", "⼀⼆⼈", "一二人", "一二人"),  # Kangxi radicals U+2F00 U+2F06 U+2F08
    ("中\u200b文\ufeff", "中\u200b文\ufeff", "中文", "中文"),  # format chars: seed keeps them (not whitespace)
    ("「你好」，世界！", "你好世界", "「你好」,世界!", "你好世界"),
    # the original's literal slip: curly quotes, ︲ and the small forms ﹏﹐ are NOT removed by seed
    ("“引號”‘單’︲﹏﹐", "“引號”‘單’︲﹏﹐", "“引號”‘單’︲﹏﹐", "引号单"),
    ("# 標題\n**粗體**與*斜體*", "標題粗體與斜體", "標題粗體與斜體", "标题粗体与斜体"),
    ("<b>重要</b><br/>事項", "b重要bbr事項", "重要事項", "重要事项"),
    ("Hello, World!", "HelloWorld", "Hello,World!", "helloworld"),
    ("臺灣的頭髮", "臺灣的頭髮", "臺灣的頭髮", "台湾的头发"),  # t2s only in lenient
    ("snake_case 2*3*4", "snakecase234", "snake_case2*3*4", "snakecase234"),  # not emphasis
    ("", "", "", ""),
])
def test_profiles_hand_computed(text, seed, standard, lenient):
    assert normalize(text, "seed") == seed
    assert normalize(text, "standard") == standard
    assert normalize(text, "lenient") == lenient
    assert normalize(text) == standard  # default profile


def test_standard_keeps_table_structure_and_strips_other_tags():
    t = '<table><tr><td colspan="2"><b>1</b></td></tr></table>'
    assert normalize(t, "standard") == '<table><tr><tdcolspan="2">1</td></tr></table>'
    assert normalize(t, "lenient") == "1"


def test_nfc_and_compatibility_ideographs():
    assert normalize("e\u0301", "standard") == "\u00e9"  # NFC composes
    assert normalize("\uf900", "standard") == "\u8c48"  # CJK compatibility ideograph → unified (豈)
    assert normalize("\uf900", "seed") == "\uf900"


def test_unknown_profile_did_you_mean():
    with pytest.raises(ProfileError, match="did you mean 'standard'"):
        normalize("x", "standrad")
    assert PROFILES == ("seed", "standard", "lenient")


# ------------------------------------------------------------------------------------------------------- metrics
@pytest.mark.parametrize("profile", PROFILES)
def test_empty_empty(profile):
    assert cer("", "", profile) == 0.0
    assert ned("", "", profile) == 0.0
    assert lcs_f1("", "", profile) == 1.0
    assert exact_match("", "", profile) == 1.0
    # our F1 defines both-empty as 1.0; the seed profile keeps the original's 0.0 (tp = 0)
    assert bag_f1("", "", profile) == (0.0 if profile == "seed" else 1.0)
    assert seal_ned("", "", profile) == 0.0


@pytest.mark.parametrize("profile", PROFILES)
def test_empty_prediction(profile):
    assert cer("", "中文字", profile) == 1.0
    assert ned(None, "中文字", profile) == 1.0
    assert bag_f1("", "中文字", profile) == 0.0
    assert lcs_f1("", "中文字", profile) == 0.0
    a = error_anatomy("", "中文字", profile)
    assert (a["substitutions"], a["deletions"], a["insertions"]) == (0, 3, 0)


@pytest.mark.parametrize("profile", PROFILES)
def test_empty_label(profile):
    # defined, never a division by zero: every predicted character is wrong → CER 1.0
    assert cer("ab", "", profile) == 1.0
    assert cer_clipped("ab", "", profile) == 1.0
    assert ned("ab", "", profile) == 1.0
    assert bag_f1("ab", "", profile) == 0.0
    assert lcs_f1("ab", "", profile) == 0.0
    a = error_anatomy("ab", "", profile)
    assert (a["substitutions"], a["deletions"], a["insertions"]) == (0, 0, 2)


def test_insertion_heavy_cer_above_one():
    # gt 中文 (2), pred 中中文文字字 (6): 4 insertions
    assert cer("中中文文字字", "中文") == 2.0  # unclipped, as in the original
    assert cer_clipped("中中文文字字", "中文") == 1.0
    assert ned("中中文文字字", "中文") == pytest.approx(4 / 6)
    assert bag_f1("中中文文字字", "中文") == pytest.approx(2 * 2 / (6 + 2))  # tp = 2
    assert lcs_f1("中中文文字字", "中文") == pytest.approx(2 * 2 / (6 + 2))  # LCS = 2


def test_reading_order_gap_between_bag_and_lcs_f1():
    # every character present (bag F1 = 1) but in reverse order: LCS = 1, lev = 4
    assert bag_f1("右左下上", "上下左右") == 1.0
    assert lcs_f1("右左下上", "上下左右") == pytest.approx(2 * 1 / 8)
    assert cer("右左下上", "上下左右") == 1.0


def test_bag_f1_partial_overlap():
    # pred 甲乙乙丙 (4) vs gt 甲乙丁 (3): tp = 2, P = 2/4, R = 2/3, F1 = 2PR/(P+R) = 4/7
    assert bag_f1("甲乙乙丙", "甲乙丁") == pytest.approx(4 / 7)


def test_full_width_digits_per_profile():
    assert cer("１２３", "123", "seed") == 1.0
    assert cer("１２３", "123", "standard") == 0.0
    assert cer("１２３", "123", "lenient") == 0.0


def test_kangxi_radicals_per_profile():
    assert cer("⼀⼆⼈", "一二人", "seed") == 1.0
    assert cer("⼀⼆⼈", "一二人", "standard") == 0.0


def test_st_pairs_per_profile():
    assert cer("臺灣", "台湾", "standard") == 1.0
    assert cer("臺灣", "台湾", "seed") == 1.0
    assert cer("臺灣", "台湾", "lenient") == 0.0
    assert is_st_confusion("國", "国") and not is_st_confusion("國", "家")


def test_punctuation_only_differs_per_profile():
    assert cer("你好，世界", "你好世界", "standard") == pytest.approx(1 / 4)
    assert cer("你好，世界", "你好世界", "seed") == 0.0
    assert cer("你好,世界", "你好，世界", "standard") == 0.0  # full-width comma folded to ASCII


def test_error_anatomy_hand_computed():
    # gt 國家很好。天氣 → pred 国家好。天氣啊啊: 國→国 (substitution, an S/T variant), 很 deleted, 啊啊 inserted
    a = error_anatomy("国家好。天氣啊啊", "國家很好。天氣", "standard")
    assert (a["substitutions"], a["deletions"], a["insertions"]) == (1, 1, 2)
    assert a["confusions"] == {("國", "国"): 1}
    assert a["st_confusions"] == 1
    assert a["repetition_loop"] is None


def test_repetition_loop_detector():
    loop = repetition_loop("你好世界世界世界世界世界世界", "你好世界")
    assert loop == {"unit": "世界", "repeats": 6, "count_pred": 6, "count_gt": 1}
    assert repetition_loop("哈哈哈哈哈哈", "哈哈哈哈哈哈") is None  # repeated in the ground truth too
    assert repetition_loop("世界世界", "世界") is None  # 2 copies is not a loop
    # a legitimate run (哈×5, also in the ground truth) before a real loop of the same period (好×8)
    assert repetition_loop("哈哈哈哈哈好好好好好好好好", "哈哈哈哈哈好") == {
        "unit": "好", "repeats": 8, "count_pred": 8, "count_gt": 1}
    b = score_pairs(["你好世界世界世界世界世界世界", "你好"], ["你好世界", "你好"])
    assert list(b.loops) == [0]


def test_seal_rotation_invariant():
    assert ned("國印中華民", "中華民國印") == pytest.approx(4 / 5)
    assert seal_ned("國印中華民", "中華民國印") == 0.0
    assert seal_ned("國印中華氏", "中華民國印") == pytest.approx(1 / 5)
    assert seal_ned("中華民國印", "中華民國印") == 0.0


def test_score_pairs_matches_single_pair_functions():
    preds = ["國家好。天氣啊啊", "", "ab", "中中文文字字", "右左下上", "一"]
    gts = ["國家很好。天氣", "中文字", "", "中文", "上下左右", "一"]
    b = score_pairs(preds, gts, workers=1)
    for k, (p, g) in enumerate(zip(preds, gts)):
        assert b.lev[k] == round(ned(p, g) * max(len(p), len(g)))
        assert b.sub[k] + b.dele[k] + b.ins[k] == b.lev[k]
        f1 = bag_f1(p, g)
        if p and g:
            assert 2 * b.bag_tp[k] / (len(p) + len(g)) == pytest.approx(f1)


def test_registry_and_did_you_mean():
    m = get_metric("cer")
    assert m.higher_is_better is False and "micro" in m.aggregation and "lev" in m.definition
    assert get_metric("lcs_f1").higher_is_better is True
    assert m("中中文文字字", "中文") == 2.0
    with pytest.raises(MetricError, match="did you mean 'cer'"):
        get_metric("cre")
    with pytest.raises(MetricError, match="did you mean 'teds'"):
        get_metric("ted")


def test_process_pool_path_equals_in_process_path():
    import random

    rng = random.Random(0)
    preds = ["".join(rng.choice("一二三四五國国") for _ in range(rng.randint(0, 300))) for _ in range(60)]
    gts = [p[: len(p) // 2] + "六" + p[len(p) // 2 + 2:] if p else "七" for p in preds]
    pooled = score_pairs(preds, gts, workers=2, min_chars_for_processes=1000)
    local = score_pairs(preds, gts, workers=1)
    for name in ("lev", "indel", "bag_tp", "sub", "dele", "ins", "len_p", "len_g"):
        assert getattr(pooled, name).tolist() == getattr(local, name).tolist(), name
    assert pooled.confusions == local.confusions and pooled.loops == local.loops
