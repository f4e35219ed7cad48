"""TEDS / TEDS-S / cell-text CER with hand-computed values, invalid input and the per-table time limit."""

import pytest

from lib.metrics.tables import (TableParseError, TableTimeout, looks_like_table, parse_table, table_cell_text, teds,
                                teds_s, tree_edit_distance)
from lib.utils.count_metric import score_result_file

BARE = '<table><tr><td colspan="2">A</td></tr><tr><td>B</td><td>C</td></tr></table>'


def test_bare_table_against_itself_is_one():
    assert teds(BARE, BARE) == 1.0
    assert teds_s(BARE, BARE) == 1.0


def test_th_equals_td_and_thead_tbody_unwrapped_and_attributes_dropped():
    a = '<table><thead><tr><th class="h">名稱</th></tr></thead><tbody><tr><td style="x">值</td></tr></tbody></table>'
    b = "<table><tr><td>名稱</td></tr><tr><td>值</td></tr></table>"
    assert teds(a, b) == 1.0
    assert teds("<table><tr><th>A</th></tr></table>", "<table><tr><td>A</td></tr></table>") == 1.0


def test_colspan_table_markdown_vs_html():
    # Markdown cannot express colspan: | A | | gives two cells. Trees: HTML table(tr(td[cs=2] A), tr(td B, td C))
    # = 6 nodes; Markdown table(tr(td A, td ''), tr(td B, td C)) = 7 nodes. Cheapest edit: rename the colspan cell
    # (spans differ → cost 1) + insert one cell (1) → TED 2, TEDS = 1 − 2/7 for both TEDS and TEDS-S.
    md = "| A | |\n|---|---|\n| B | C |"
    assert teds(md, BARE) == pytest.approx(1 - 2 / 7)
    assert teds_s(md, BARE) == pytest.approx(1 - 2 / 7)


def test_cell_content_difference_full_vs_structure():
    # one cell differs: rename cost = normalized Levenshtein(ab, ax) = 1/2; 4 nodes → TEDS = 1 − 0.5/4
    a = "<table><tr><td>ab</td><td>c</td></tr></table>"
    b = "<table><tr><td>ax</td><td>c</td></tr></table>"
    assert teds(a, b) == pytest.approx(0.875)
    assert teds_s(a, b) == 1.0


def test_markdown_escaped_pipe():
    md = "| a \\| b | c |\n|---|---|"
    html = "<table><tr><td>a | b</td><td>c</td></tr></table>"
    assert teds(md, html) == 1.0
    assert table_cell_text(md) == "a | bc"


def test_invalid_input_raises_not_zero():
    with pytest.raises(TableParseError):
        teds("this is not a table", BARE)
    with pytest.raises(TableParseError):
        parse_table("<table></table>")


def test_time_limit():
    big = "<table>" + "".join("<tr>" + "".join(f"<td>{r}{c}</td>" for c in range(12)) + "</tr>"
                              for r in range(12)) + "</table>"
    other = "<table>" + "".join("<tr>" + "".join(f"<td>{c}{r}x</td>" for c in range(11)) + "</tr>"
                                for r in range(13)) + "</table>"
    with pytest.raises(TableTimeout):
        tree_edit_distance(parse_table(big), parse_table(other), time_limit_s=1e-9)
    assert 0.0 < teds(big, other, time_limit_s=60) < 1.0


def test_cell_text_row_by_row_inside_text():
    text = "前文\n<table><tr><td>姓名</td><td>王小明</td></tr><tr><td>電話</td><td>1234</td></tr></table>\n後文"
    assert table_cell_text(text).split() == ["前文", "姓名王小明", "電話1234", "後文"]
    assert looks_like_table(BARE) and looks_like_table("| A |\n|---|\n| 1 |")
    assert not looks_like_table("說明\n| A |\n|---|")


def test_scoring_tables_counts_invalid_and_uses_cell_text():
    gt = "<table><tr><td>姓名</td><td>王小明</td></tr><tr><td>電話</td><td>1234</td></tr></table>"
    result = {"model_name": "t", "samples": [
        {"image_path": "1.png", "label": gt, "prediction": "姓名 王小明\n電話 1234", "element": "table"},  # plain text
        {"image_path": "2.png", "label": gt, "prediction": gt, "element": "table"},
        {"image_path": "3.png", "label": "<table><tr><td>x</td></tr></table>", "prediction": "| x |\n|---|"},
    ]}
    out = score_result_file(result, profiles=("standard", "seed"), n_bootstrap=0)
    tables = out["scores"]["standard"]["tables"]
    assert tables["n"] == 3 and tables["n_invalid_pred"] == 1 and tables["n_timeouts"] == 0
    assert tables["teds_macro"] == pytest.approx((0.0 + 1.0 + 1.0) / 3)  # the invalid prediction counts as 0
    assert tables["headline_cer_uses"] == "cell text"
    assert tables["ci95"]["teds_macro"] is None  # n_bootstrap=0
    s1 = out["samples"][0]["scores"]
    assert s1["standard"]["cer"] == 0.0 and s1["standard"]["table_cell_cer"] == 0.0  # cell text matches
    assert "prediction" in s1["standard"]["table_error"]
    assert s1["seed"]["cer"] > 0.5  # seed scores the raw HTML string, like the original
    assert out["samples"][2]["scores"]["standard"]["teds"] == 1.0  # element missing: label is one table


def test_scoring_table_timeout_is_counted():
    big = "<table>" + "".join("<tr>" + "".join(f"<td>{r}{c}</td>" for c in range(12)) + "</tr>"
                              for r in range(12)) + "</table>"
    result = {"samples": [{"image_path": "t.png", "label": big, "prediction": big.replace("1", "7"),
                           "element": "table"}]}
    out = score_result_file(result, n_bootstrap=0, table_time_limit_s=1e-9)
    tables = out["scores"]["standard"]["tables"]
    assert tables["n_timeouts"] == 1 and tables["teds_macro"] is None
    assert "timeout" in out["samples"][0]["scores"]["standard"]["table_error"]


def test_teds_ci_by_document():
    good = "<table><tr><td>1</td><td>2</td></tr></table>"
    samples = [{"image_path": f"{i}.png", "label": good, "element": "table", "doc_id": f"d{i % 4}",
                "prediction": good if i % 2 else "<table><tr><td>1</td></tr></table>"} for i in range(8)]
    out = score_result_file({"samples": samples}, n_bootstrap=300)
    tables = out["scores"]["standard"]["tables"]
    lo, hi = tables["ci95"]["teds_macro"]
    assert lo <= tables["teds_macro"] <= hi and lo < hi
