"""The three apps in a real browser: Playwright drives Debian's Chromium (headless, /usr/bin/chromium; .ci/run
installs it). Each app starts on a free 127.0.0.1 port, loads the fixture results, and the tests navigate, sort,
filter and assert what the page shows (scores, CIs, diff marks, paired statistics), saving a screenshot each.
`UI_SCREENSHOT_DIR=docs/img` also copies the screenshots there (the README images)."""

from __future__ import annotations

import json
import re

import pytest

from fixtures.ui.browser import (CHROMIUM, CHROMIUM_ARGS, chromium_available, han_fonts, load_ui, running,
                                 save_screenshot)
from fixtures.ui.make_fixtures import make_ui_fixtures

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not chromium_available(), reason="needs /usr/bin/chromium (apt-get install chromium)"
                                 " and the playwright package")]
TIMEOUT_MS = 30000  # the first Gradio page load on a busy 2-core machine


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return make_ui_fixtures(tmp_path_factory.mktemp("uib"))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    ctx = browser.new_context(viewport={"width": 1500, "height": 1000}, device_scale_factor=1)
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    external = []
    pg.on("request", lambda r: external.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
          else None)
    yield pg
    ctx.close()
    assert external == [], f"the page made requests outside localhost: {external[:5]}"


def pick_option(page, elem_id: str, option: str):
    """Choose `option` in the Gradio dropdown with elem_id."""
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")


def wait_text(page, selector: str, pattern: str):
    page.wait_for_function("([sel, pat]) => { const el = document.querySelector(sel);"
                           " return el && new RegExp(pat).test(el.innerText); }", arg=[selector, pattern])


def table_first_col(page, selector: str) -> list[str]:
    """The first column of a Gradio Dataframe (its rows are virtual: gridcells carrying data-row / data-col)."""
    return page.eval_on_selector_all(f"{selector} [role=gridcell][data-col='0']",
                                     "cells => cells.sort((a, b) => a.dataset.row - b.dataset.row)"
                                     ".map(c => c.innerText.trim())")


# ------------------------------------------------------------------------------------------ evaluate viewer
@pytest.fixture(scope="module")
def viewer_url(fx):
    ev = load_ui("evaluate_viewer")
    args = ev.ViewerArgs(eval_dir=str(fx["results"]), data_root=[str(fx["data"])], initial_file="before_sft.json")
    with running(ev.build_app(args), ev.allowed_roots(args)) as url:
        yield url


def test_viewer(page, viewer_url, fx, tmp_path):
    res = json.loads(fx["a"].read_text(encoding="utf-8"))
    agg = res["scores"]["standard"]
    page.goto(viewer_url)
    page.locator("#sample-diff .d-sub").first.wait_for()
    header = page.inner_text("#run-header") + page.inner_text("#run-scores")
    assert res["model_name"] in header and "n = 12" in header and "errors = 1" in header
    lo, hi = agg["ci95"]["cer_micro"]
    assert f"{agg['cer_micro']:.4f}" in header and f"[{lo:.4f}, {hi:.4f}]" in header
    # sample 0: 臺 -> 台 is one substitution; per-sample scores are shown
    assert page.inner_text("#sample-diff .d-sub .d-old") == "臺" and page.inner_text("#sample-diff .d-sub .d-new") == "台"
    s0 = res["samples"][0]
    info = page.inner_text("#sample-info")
    assert f"CER {s0['cer_score']:.4f}" in info and f"NED {s0['scores']['standard']['ned']:.4f}" in info
    assert page.eval_on_selector("#sample-image img", "img => img.complete && img.naturalWidth > 0")  # served
    save_screenshot(page, tmp_path, "ui_evaluate_viewer.png")
    # zoom: the image is drawn at 200 % of the box width
    page.locator("#zoom input[type=number]").fill("200")
    page.locator("#zoom input[type=number]").press("Enter")
    page.wait_for_function("() => document.querySelector('#sample-image img')?.style.width === '200%'")

    # sort by CER, worst first: the seal (2 substitutions in 6 characters) comes first
    pick_option(page, "sort-key", "cer")
    page.locator("#sort-desc input").check()
    wait_text(page, "#sample-info", r"Sample #4\b")
    worst = max((s for s in res["samples"] if s["cer_score"] is not None), key=lambda s: s["cer_score"])
    assert table_first_col(page, "#sample-table")[0] == str(res["samples"].index(worst))
    # keyboard: → goes to the next worst
    page.locator("h1").click()
    page.keyboard.press("ArrowRight")
    wait_text(page, "#position", r"2 / 12")

    # filter: only tables -> the table is rendered side by side
    pick_option(page, "flt-element", "table")
    wait_text(page, "#match-count", r"^1 of 12 samples match")
    page.locator("#sample-tables table").nth(1).wait_for()
    assert "1,280" in page.inner_text("#sample-tables")
    save_screenshot(page, tmp_path, "ui_evaluate_viewer_table.png")
    page.locator("#flt-element .token-remove, #flt-element button[aria-label*='emove']").first.click()
    wait_text(page, "#match-count", r"^12 of 12")

    # search text
    page.locator("#flt-search textarea, #flt-search input").first.fill("蔣")
    page.keyboard.press("Enter")
    wait_text(page, "#match-count", r"^1 of 12")
    assert page.inner_text("#sample-diff .d-sub .d-new") == "万"

    # jump to a sample by number
    page.locator("#jump-number input").fill("7")
    page.locator("#btn-jump").click()
    wait_text(page, "#sample-info", r"Sample #7")
    assert "503" in page.inner_text("#sample-info")  # the sample whose request failed


def test_viewer_usability(page, viewer_url, fx):
    """The jump box shows the sample on screen and a bad number keeps it; the ground-truth column is not cut off;
    every widget draws Han characters in one plain font; the file list names model and CER; slices say how many
    there are, worst first; table cells that differ are marked."""
    page.goto(viewer_url)
    page.locator("#sample-diff .d-sub").first.wait_for()
    assert page.input_value("#jump-number input") == "0"
    page.locator("#btn-next").click()
    page.locator("#btn-next").click()
    wait_text(page, "#sample-info", r"Sample #2\b")
    assert page.input_value("#jump-number input") == "2"
    page.locator("#jump-number input").fill("999")
    page.locator("#jump-number input").press("Enter")
    page.get_by_text("does not exist").first.wait_for()  # the warning says why
    assert "Sample #2" in page.inner_text("#sample-info") and page.input_value("#jump-number input") == "2"

    cells = page.locator("#sample-table [role=gridcell][data-col='5']")
    cells.first.wait_for()
    cut = page.eval_on_selector_all("#sample-table [role=gridcell][data-col='5']",
                                    "cs => cs.filter(c => c.scrollWidth > c.clientWidth + 1).length")
    assert cut == 0, "ground-truth cells are cut off"

    fonts = han_fonts(page)
    assert set(fonts) == {"Noto Sans CJK TC"}, {k: sorted(v)[:3] for k, v in fonts.items()}

    page.locator("#file-select input").first.click()
    labels = [o.inner_text().strip("✓\n ") for o in page.get_by_role("option").all()]
    page.keyboard.press("Escape")
    assert any(label.startswith("before_sft.json · gemma-3-4b-it (before SFT) · CER ") for label in labels), labels

    pick_option(page, "flt-element", "table")
    page.locator("#sample-tables td.cell-diff").first.wait_for()
    assert page.locator("#sample-tables td.cell-diff").all_inner_texts() == ["1,280"]

    page.locator("#slice-table").scroll_into_view_if_needed()
    wait_text(page, "#slice-note", r"5 element slices, worst")
    cers = page.eval_on_selector_all("#slice-table [role=gridcell][data-col='3']",
                                     "cs => cs.sort((a, b) => a.dataset.row - b.dataset.row).map(c => c.innerText)")
    vals = [float(c) for c in cers if c.strip() not in ("—", "")]
    assert vals == sorted(vals, reverse=True) and len(vals) == 5


@pytest.fixture()
def review_app(tmp_path):
    """A viewer on a private copy of the fixtures (the review writes next to the dataset)."""
    fx = make_ui_fixtures(tmp_path / "rv")
    ev = load_ui("evaluate_viewer")
    args = ev.ViewerArgs(eval_dir=str(fx["results"]), data_root=[str(fx["data"])], rescan_seconds=1)
    with running(ev.build_app(args)) as url:
        yield url, fx


def test_review_workflow_and_deep_links(page, review_app, browser, tmp_path):
    from lib.review import load_review, sidecar_path

    url, fx = review_app
    data_before = fx["data"].joinpath("test.json").read_bytes()
    # a deep link opens that file, that sample and that filter
    page.goto(url + "?file=before_sft.json&sample=4&show=imperfect+(CER+%3E+0)")
    wait_text(page, "#sample-info", r"Sample #4\b")
    wait_text(page, "#match-count", r"^8 of 12 samples match")  # 7 with CER > 0 and the error
    assert page.input_value("#flt-errors input") == "imperfect (CER > 0)"

    # flag the seal as "ground truth wrong", note why, correct the ground truth
    page.locator("#review-flags label", has_text="ground truth wrong").click()
    page.locator("#review-note textarea").fill("印文不清：應為「臺北市政府印」之外框")
    page.locator("#review-label textarea").fill("臺北市政府印信")
    page.locator("#btn-review-save").click()
    wait_text(page, "#review-status", "saved to")
    review = load_review(fx["data"] / "test.json")
    item = review.items["images/gov_04.png"]
    assert item.flags == ["gt_wrong"] and item.label == "臺北市政府印信" and item.original_label == "臺北市政府印"
    assert review.path == sidecar_path(fx["data"] / "test.json")
    assert fx["data"].joinpath("test.json").read_bytes() == data_before  # never edited in place
    wait_text(page, "#review-summary", "ground truth wrong 1")

    # the review filter finds it; the saved review is shown again when the sample is opened
    pick_option(page, "flt-errors", "all")
    pick_option(page, "flt-review", "gt_wrong")
    wait_text(page, "#match-count", r"^1 of 12 samples match")
    assert page.input_value("#review-label textarea") == "臺北市政府印信"
    assert page.input_value("#review-note textarea").startswith("印文不清")
    pick_option(page, "flt-review", "all")
    wait_text(page, "#match-count", r"^12 of 12")

    # the top confusion 臺→台 is clickable: its samples only, and the link holds it
    page.locator("#confusion-table [role=gridcell][data-col='0']", has_text="臺→台").first.click()
    wait_text(page, "#match-count", r"^2 of 12 samples match \(substitution 臺→台\)")
    assert table_first_col(page, "#sample-table") == ["0", "4"]
    page.wait_for_function("() => location.search.includes('confusion=')")
    link = page.url
    assert "file=before_sft.json" in link and "sample=0" in link
    other = browser.new_page(viewport={"width": 1500, "height": 1000})
    other.set_default_timeout(TIMEOUT_MS)
    try:
        other.goto(link)
        wait_text(other, "#match-count", r"^2 of 12 samples match \(substitution 臺→台\)")
        wait_text(other, "#sample-info", r"Sample #0\b")
    finally:
        other.close()
    save_screenshot(page, tmp_path, "ui_evaluate_viewer_review.png")

    # export: a corrected copy beside the data, flags as row fields
    page.locator("#btn-export").click()
    wait_text(page, "#export-status", "wrote")
    rows = json.loads(fx["data"].joinpath("test.reviewed.json").read_text(encoding="utf-8"))
    assert rows[4]["ocr_results"] == "臺北市政府印信" and rows[4]["gt_wrong"] is True
    assert "gt_wrong" not in rows[0]

    # the scripts use the sidecar: count_score --skip-flagged gt_wrong leaves the seal out
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "rescored.json"
    r = subprocess.run([sys.executable, "core/count_score.py", "--input", str(fx["a"]), "--output", str(out),
                        "--skip-flagged", "gt_wrong", "--n_bootstrap", "0"], cwd=root, capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    rescored = json.loads(out.read_text(encoding="utf-8"))
    assert len(rescored["samples"]) == 11 and "images/gov_04.png" not in {s["image_path"] for s in rescored["samples"]}

    # a new result file appears in the list (rescanned), newest first
    newer = json.loads(fx["a"].read_text(encoding="utf-8"))
    newer["model_name"] = "brand-new-model"
    fx["results"].joinpath("zz_new.json").write_text(json.dumps(newer, ensure_ascii=False), encoding="utf-8")
    page.locator("#btn-refresh").click()
    page.locator("#file-select input").first.click()
    page.get_by_role("option", name=re.compile(r"^zz_new\.json · brand-new-model")).first.wait_for()
    first = page.get_by_role("option").first.inner_text()
    page.keyboard.press("Escape")
    assert first.strip("✓\n ").startswith("zz_new.json")


# ------------------------------------------------------------------------------------------ compare
@pytest.fixture(scope="module")
def compare_url(fx):
    cf = load_ui("compare_finetune")
    args = cf.CompareArgs(model1=str(fx["a"]), model2=str(fx["b"]), data_root=[str(fx["data"])])
    with running(cf.build_app(args), cf.allowed_roots(args)) as url:
        yield url


def test_compare(page, compare_url, fx, tmp_path):
    from lib.utils.count_metric import paired_comparison

    a, b = (json.loads(fx[k].read_text(encoding="utf-8")) for k in ("a", "b"))
    stats = paired_comparison(a, b, metric="cer", n_bootstrap=2000, n_permutations=2000)
    page.goto(compare_url)
    page.locator("#diff-1 .d-sub").first.wait_for()
    top = page.inner_text("#paired-stats")
    lo, hi = stats["ci95"]
    from lib.metrics.stats import format_p_value

    assert f"difference of micro CER {stats['difference']:+.4f}" in top
    assert f"[{lo:+.4f}, {hi:+.4f}]" in top
    assert f"p-value {format_p_value(stats['p_value'], stats['n_permutations'])}" in top
    counts = {k: stats[k] for k in ("improved", "regressed", "unchanged")}
    for name, key in (("improved", "improved"), ("regressed", "regressed"), ("same", "unchanged")):
        assert page.locator("#pair-filter label", has_text=f"{name} ({counts[key]})").count() == 1
    assert page.locator("#pair-filter label", has_text=f"errors ({stats['n_excluded_errors']})").count() == 1
    # pair 0: model 2 fixed the 臺/台 confusion
    assert "better" in page.inner_text("#pair-info") and page.locator("#diff-2 .d-sub").count() == 0
    assert page.eval_on_selector("#sample-image img", "img => img.complete && img.naturalWidth > 0")
    save_screenshot(page, tmp_path, "ui_compare_finetune.png")

    page.locator("#pair-filter label", has_text="regressed (2)").click()
    wait_text(page, "#pair-count", r"^2 of 12 pairs")
    assert table_first_col(page, "#pair-table") == ["6", "11"]
    assert "✗" in page.inner_text("#pair-info")
    page.locator("h1").click()
    page.keyboard.press("ArrowRight")
    wait_text(page, "#position", r"2 / 2")
    assert page.locator("#diff-2 .d-sub").count() == 1  # 王小明 -> 王大明

    page.locator("#pair-filter label", has_text="both wrong").click()
    wait_text(page, "#pair-count", r"^1 of 12 pairs")

    # the pair with an error: no verdict, no ΔCER
    page.locator("#pair-filter label", has_text="errors (1)").click()
    wait_text(page, "#pair-count", r"^1 of 12 pairs")
    info = page.inner_text("#pair-info")
    assert "error in" in info and "no ΔCER" in info and "better" not in info

    # normalized diff: 第1頁 vs 第 1 頁 differ only in spaces, which the standard profile removes
    page.locator("#pair-filter label", has_text="all (12)").click()
    wait_text(page, "#pair-count", r"^12 of 12 pairs")
    page.locator("#jump-number input").fill("5")
    page.locator("#jump-number input").press("Enter")
    wait_text(page, "#pair-info", r"pair 5\b")
    assert page.input_value("#jump-number input") == "5"
    assert page.locator("#diff-1 .d-del").count() > 0
    page.locator("#pair-normalized input").check()
    page.wait_for_function("() => document.querySelectorAll('#diff-1 .d-del, #diff-1 .d-ins, #diff-1 .d-sub')"
                           ".length === 0")


# ------------------------------------------------------------------------------------------ prompt manager
@pytest.fixture()
def prompt_url(fx, tmp_path):
    import shutil

    pm = load_ui("prompt_manager")
    folder = tmp_path / "prompts"
    shutil.copytree(fx["prompts"], folder)
    args = pm.PromptManagerArgs(config_dir=str(folder), initial_file="zh_tw.yml")
    with running(pm.build_app(args), []) as url:
        yield url, folder


def test_prompt_manager(page, prompt_url, tmp_path):
    from lib.prompt import load_prompt

    url, folder = prompt_url
    page.goto(url)
    page.locator("#prompt-table").get_by_text("zh_tw.yml").wait_for()
    table = page.inner_text("#prompt-table")
    assert "執行 OCR 任務：" in table and "broken.yaml" in table and "invalid YAML" in table
    save_screenshot(page, tmp_path, "ui_prompt_manager.png")

    page.get_by_role("tab", name="Add").click()
    page.locator("#new-name input, #new-name textarea").first.fill("../evil")
    page.locator("#new-text textarea").fill("請辨識公文")
    page.locator("#btn-add").click()
    wait_text(page, "#add-status", "invalid name")
    assert not (folder.parent / "evil.yml").exists() and not (folder / "evil.yml").exists()
    page.locator("#new-name input, #new-name textarea").first.fill("公文")
    page.locator("#btn-add").click()
    wait_text(page, "#add-status", "created 公文.yml")
    assert load_prompt(folder / "公文.yml").prompt_text == "請辨識公文"

    page.get_by_role("tab", name="View / edit / delete").click()
    pick_option(page, "edit-select", "zh_tw.yml")
    page.locator("#edit-yaml .cm-content").first.wait_for()
    wait_text(page, "#edit-yaml", "text_first")
    editor = page.locator("#edit-yaml .cm-content").first
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text('prompt_text: "改過的"\nimage_position: image_first\n')
    page.locator("#btn-save").click()
    wait_text(page, "#edit-status", "confirm overwrite")
    assert load_prompt(folder / "zh_tw.yml").prompt_text == "請輸出圖片中的繁體中文文字"  # not overwritten
    page.locator("#confirm-overwrite input").check()
    page.locator("#btn-save").click()
    wait_text(page, "#edit-status", "saved zh_tw.yml")
    assert load_prompt(folder / "zh_tw.yml").prompt_text == "改過的"
    save_screenshot(page, tmp_path, "ui_prompt_manager_edit.png")

    page.locator("#confirm-delete input").check()
    page.locator("#btn-delete").click()
    wait_text(page, "#edit-status", "deleted zh_tw.yml")
    assert not (folder / "zh_tw.yml").exists()
