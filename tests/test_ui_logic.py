"""The UI logic outside Gradio: character diff, table sanitising, rows/filters/sorting/slices, pairing, headers,
the prompt store. Browser tests: test_ui_browser.py; traversal fuzz: test_ui_traversal.py."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import Levenshtein

from fixtures.ui.make_fixtures import SAMPLES, make_ui_fixtures
from lib.ui.compare import filter_pairs, pair_counts, pair_rows, paired_stats, paired_stats_markdown, sort_pairs
from lib.ui.diff import char_diff, diff_html, diff_stats
from lib.ui.prompts import PromptStore, PromptStoreError, render_prompt_yaml
from lib.ui.samples import (RowFilter, filter_rows, header_markdown, rows_from_result, slice_table, sort_rows,
                            worst_k)
from lib.ui.tables import looks_like_table, side_by_side_html, table_to_safe_html
from lib.ui.viewer import open_result, render_sample, step


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return make_ui_fixtures(tmp_path_factory.mktemp("ui"))


def _load(p):
    return json.loads(p.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------------ diff
text = st.text(alphabet="臺台北市政府公告abc \n<>&", max_size=25)


@given(text, text)
@settings(max_examples=200, deadline=None)
def test_diff_is_a_minimal_alignment(gt, pred):
    ops = char_diff(gt, pred)
    assert "".join(o.gt for o in ops) == gt and "".join(o.pred for o in ops) == pred
    assert diff_stats(ops).n_edits == Levenshtein.distance(gt, pred)


def test_diff_html_marks_each_kind_and_escapes():
    h = diff_html("臺北<市>政府", "台北<市>政<府府")
    assert '<del class="d-old">臺</del><ins class="d-new">台</ins>' in h  # substitution
    assert '<ins class="d-ins" title="extra">' in h  # insertion
    assert "&lt;市&gt;" in h and "<市>" not in h  # escaped
    h2 = diff_html("公告事項", "公告")
    assert re.search(r'<del class="d-del" title="missing">事項</del>', h2)
    assert "no prediction" in diff_html("x", None)
    assert "␣" in diff_html("第 1 頁", "第1頁")  # a missing space is visible


def test_table_rendering_is_sanitised():
    evil = '<table><tr><td onclick="x()">a<script>alert(1)</script></td><td><img src=x onerror=alert(1)>b</td></tr></table>'
    out = table_to_safe_html(evil)
    assert "<script" not in out and "onerror" not in out and "onclick" not in out and "<img" not in out
    assert out.startswith("<table>") and "<td>a</td>" in out
    assert looks_like_table("| a | b |\n|---|---|\n| 1 | 2 |")
    md = table_to_safe_html("| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<th>a</th>" in md and "<td>2</td>" in md
    both = side_by_side_html(SAMPLES[9][1], SAMPLES[9][2])
    assert both.count("<table>") == 2 and "1,280" in both


# ------------------------------------------------------------------------------------------ rows & filters
def test_rows_carry_file_scores(fx):
    res = _load(fx["a"])
    rows = rows_from_result(res)
    assert len(rows) == len(SAMPLES)
    for r, s in zip(rows, res["samples"]):
        assert r.cer == s["cer_score"] and r.f1 == s["f1_score"]
        if not s.get("error"):
            assert r.ned == s["scores"]["standard"]["ned"]
    err = [r for r in rows if r.is_error]
    assert len(err) == 1 and err[0].cer is None and "503" in err[0].error


def test_filter_sort_worst(fx):
    rows = rows_from_result(_load(fx["a"]))
    assert [r.element for r in filter_rows(rows, RowFilter(elements=["table"]))] == ["table"]
    assert len(filter_rows(rows, RowFilter(errors="errors only"))) == 1
    assert all(r.cer == 0 for r in filter_rows(rows, RowFilter(errors="perfect (CER = 0)")))
    assert [r.pos for r in filter_rows(rows, RowFilter(search="蔣"))] == [10]
    assert all(3 <= r.length <= 7 for r in filter_rows(rows, RowFilter(min_len=3, max_len=7)))
    by_cer = sort_rows(rows, "cer", descending=True)
    cers = [r.cer for r in by_cer if r.cer is not None]
    assert cers == sorted(cers, reverse=True) and by_cer[-1].is_error  # unscored last
    assert sort_rows(rows, "f1")[0].f1 == min(r.f1 for r in rows if r.f1 is not None)
    w = worst_k(rows, 3)
    assert len(w) == 3 and w[0].cer == max(cers) and w[0].element == "seal"
    with pytest.raises(ValueError, match="unknown sort key"):
        sort_rows(rows, "bleu")


def test_step_wraps_and_handles_filtered_out():
    assert step([3, 5, 9], 5, +1) == 9 and step([3, 5, 9], 9, +1) == 3 and step([3, 5, 9], 3, -1) == 9
    assert step([3, 5, 9], 4, +1) == 3 and step([], 1, 1) is None


def test_header_and_slices_show_cis(fx):
    res = _load(fx["a"])
    agg = res["scores"]["standard"]
    md = header_markdown(res, "before_sft.json")
    lo, hi = agg["ci95"]["cer_micro"]
    assert f"**{agg['cer_micro']:.4f}**" in md and f"[{lo:.4f}, {hi:.4f}]" in md
    assert "n = 12" in md and "errors = 1" in md and res["timestamp"] in md
    sl = {r["element"]: r for r in slice_table(res, "element")}
    assert sl["text"]["n"] == 8 and sl["text"]["errors"] == 1
    stored = agg["slices"]["element"]["seal"]
    assert sl["seal"]["CER (micro)"] == stored["cer_micro"] and sl["seal"]["CER 95% CI"] == tuple(stored["ci95"]["cer_micro"])
    by_doc = slice_table(res, "doc_id")  # not stored by the scorer: computed with count_metric.score_texts
    assert sum(r["n"] for r in by_doc) == 12 and all("CER 95% CI" in r for r in by_doc)


def test_legacy_file_gets_recomputed_cis(fx):
    loaded = open_result(fx["results"], "legacy/original_format.json")
    assert loaded.recomputed and loaded.result.get("scores") is None  # the file as read is not modified
    md = header_markdown(loaded.result, "legacy", loaded.scored)
    assert "recomputed by the viewer" in md and "As stored in the file: CER 0.1000" in md
    assert loaded.rows[0].ned is not None


def test_render_sample(fx):
    loaded = open_result(fx["results"], "before_sft.json")
    roots = [str(fx["results"]), str(fx["data"])]
    v = render_sample(loaded, loaded.rows[0], roots)
    assert "gradio_api/file=" in v.image and "gov_00.png" in v.image
    assert "d-sub" in v.diff and "CER **0.1429**" in v.info
    v9 = render_sample(loaded, loaded.rows[9], roots)
    assert v9.tables.count("<table>") == 2
    no_root = render_sample(loaded, loaded.rows[0], [str(fx["results"])])
    assert "<img" not in no_root.image and "--data-root" in no_root.image


# --------------------------------------------------------------------------------------------- compare
def test_pairing_and_verdicts(fx):
    a, b = _load(fx["a"]), _load(fx["b"])
    pairs, only_a, only_b = pair_rows(a, b)
    assert len(pairs) == 12 and only_a == only_b == 0
    counts = pair_counts(pairs)
    stats = paired_stats(a, b, n_bootstrap=200, n_permutations=200)
    # the filter counts are the metrics module's counts: the pair with an error is in neither, but under "errors"
    assert counts["improved"] == stats["improved"] and counts["regressed"] == stats["regressed"]
    assert counts["same"] == stats["unchanged"] and counts["errors"] == stats["n_excluded_errors"] == 1
    err = filter_pairs(pairs, "errors")
    assert [p.verdict for p in err] == ["error"] and err[0].delta is None
    reg = filter_pairs(pairs, "regressed")
    assert {p.pos for p in reg} == {6, 11}  # 受文者 lost a character; 王小明 -> 王大明
    assert all(p.delta > 0 for p in reg)
    assert sort_pairs(pairs, "delta")[0].delta == min(p.delta for p in pairs if p.delta is not None)
    assert sort_pairs(pairs, "delta")[-1].verdict == "error"  # no delta: last
    md = paired_stats_markdown(stats, ("A", "B"))
    from lib.metrics.stats import format_p_value

    assert f"difference of micro CER **{stats['difference']:+.4f}**" in md
    assert f"p-value **{format_p_value(stats['p_value'], stats['n_permutations'])}**" in md


def test_pairing_duplicates_and_unpaired():
    def res(paths):
        return {"samples": [{"image_path": p, "label": "x", "prediction": "x", "cer_score": 0.0} for p in paths]}

    pairs, only_a, only_b = pair_rows(res(["a", "a", "b"]), res(["a", "c", "a"]))
    assert [(p.a.pos, p.b.pos) for p in pairs] == [(0, 0), (1, 2)] and only_a == 1 and only_b == 1


# ---------------------------------------------------------------------------------------------- prompts
def test_prompt_store_crud(tmp_path):
    from lib.prompt import load_prompt

    store = PromptStore(tmp_path / "prompts")
    y = render_prompt_yaml("請辨識文字", "text_first", None, "test")
    assert store.add("新 prompt", y) == "新 prompt.yml"
    p = load_prompt(store.root / "新 prompt.yml")  # the training/evaluation loader reads what the UI wrote
    assert p.prompt_text == "請辨識文字" and p.image_position == "text_first"
    with pytest.raises(PromptStoreError, match="already exists"):
        store.add("新 prompt.yml", y)
    y2 = render_prompt_yaml("新的", "image_first")
    with pytest.raises(PromptStoreError, match="confirm overwrite"):
        store.update("新 prompt.yml", y2)
    assert load_prompt(store.root / "新 prompt.yml").prompt_text == "請辨識文字"
    store.update("新 prompt.yml", y2, confirm_overwrite=True)
    assert load_prompt(store.root / "新 prompt.yml").prompt_text == "新的"
    with pytest.raises(PromptStoreError, match="invalid YAML"):
        store.add("bad", "prompt_text: [x\n")
    with pytest.raises(PromptStoreError, match="unknown key"):
        store.add("bad", "prompt_txt: x\n")
    with pytest.raises(PromptStoreError, match="image_position"):
        store.add("bad", "prompt_text: x\nimage_position: left\n")
    assert not (store.root / "bad.yml").exists()
    with pytest.raises(PromptStoreError, match="confirm delete"):
        store.delete("新 prompt.yml")
    store.delete("新 prompt.yml", confirm=True)
    assert store.names() == []


def test_normalized_diff_matches_the_score(fx):
    """'第 1 頁' vs '第1頁' differs in the raw text but not as scored (profile standard deletes whitespace)."""
    loaded = open_result(fx["results"], "before_sft.json")
    row = loaded.rows[5]
    assert row.cer == 0.0
    raw = render_sample(loaded, row, [str(fx["data"])])
    norm = render_sample(loaded, row, [str(fx["data"])], diff_profile="standard")
    assert 'class="d-del"' in raw.diff and "d-del" not in norm.diff and "d-ins" not in norm.diff


def test_edge_case_files(tmp_path):
    from lib.results import ResultsError

    (tmp_path / "empty.json").write_text('{"model_name": "m", "samples": []}', encoding="utf-8")
    (tmp_path / "broken.json").write_text('{"samples": [', encoding="utf-8")
    (tmp_path / "odd.json").write_text(json.dumps({"samples": [
        {"image_path": "", "label": None, "prediction": None},
        {"img_path": "x.png", "label": "長" * 5000, "prediction": "長" * 4000 + "短"}]}), encoding="utf-8")
    empty = open_result(tmp_path, "empty.json")
    assert empty.rows == [] and slice_table(empty.scored) == [] and "n = 0" in header_markdown(empty.result, "e")
    with pytest.raises(ResultsError, match="not valid JSON"):
        open_result(tmp_path, "broken.json")
    odd = open_result(tmp_path, "odd.json")
    assert odd.rows[0].is_error and odd.rows[0].label == "" and odd.rows[1].image_path == "x.png"
    v = render_sample(odd, odd.rows[1], [str(tmp_path)])
    assert v.diff.count("d-") >= 1 and "image not found" in v.image
    assert "this sample has no image_path" in render_sample(odd, odd.rows[0], [str(tmp_path)]).image
