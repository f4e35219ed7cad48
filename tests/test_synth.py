"""Synthetic 公文 generator: determinism, labels equal to what is drawn, table HTML vs drawn grid, seal order."""

import json
import math
import random
import re

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lib import render
from lib.synth import content as C
from lib.synth.config import SynthConfig
from lib.synth.generate import generate_dataset, make_records
from lib.synth.page import compose_document, draw_table, table_geometry
from lib.synth.seal import draw_seal

CLEAN = dict(p_rotate=0, p_blur=0, p_jpeg=0, p_noise=0, p_lighting=0, p_tint=0, p_scan_lines=0, p_binarize=0)


def _fonts_by_name(script="hant"):
    return {f.short: f for f in render.find_cjk_fonts(script)}


def _strip_html(text):
    return re.sub(r"<[^>]+>", "", text)


# ---------------------------------------------------------------- determinism


def test_same_seed_same_files_whatever_the_worker_count(tmp_path):
    a = generate_dataset(tmp_path / "a", 5, seed=7, workers=1, progress=False)
    b = generate_dataset(tmp_path / "b", 5, seed=7, workers=2, progress=False)
    rows_a = json.loads((tmp_path / "a" / "data.json").read_text())
    rows_b = json.loads((tmp_path / "b" / "data.json").read_text())
    assert rows_a == rows_b and a["n_samples"] == 5
    for row in rows_a:
        assert (tmp_path / "a" / row["img_path"]).read_bytes() == (tmp_path / "b" / row["img_path"]).read_bytes()
    generate_dataset(tmp_path / "c", 5, seed=8, workers=1, progress=False)
    rows_c = json.loads((tmp_path / "c" / "data.json").read_text())
    assert [r["ocr_results"] for r in rows_c] != [r["ocr_results"] for r in rows_a]


def test_output_loads_and_validates_with_lib_data(tmp_path):
    from lib.data import load_samples, validate_samples

    generate_dataset(tmp_path, 6, seed=1, granularity="element", workers=1, progress=False)
    samples = load_samples(tmp_path / "data.json")
    assert len(samples) == 6
    assert validate_samples(samples).ok
    for s in samples:
        assert s.doc_id.startswith("synth-s1-d") and s.element in {"text", "table", "seal", "signature", "footer"}
        assert s.extra["font"]


# ---------------------------------------------------------------- labels are what is drawn


def test_every_label_character_is_covered_by_the_font_that_drew_it():
    cfg = SynthConfig(**CLEAN)
    by_name = _fonts_by_name()
    seen = set()
    for doc in range(12):
        for name, _, row in make_records(doc, cfg, 3, "element"):
            font = by_name[row["font"]]
            text = _strip_html(row["ocr_results"])
            assert text.strip(), name
            missing = render.missing_glyphs(font, text)
            assert not missing, f"{name}: {row['font']} cannot draw {missing}"
            seen.add(row["element"])
    assert seen >= {"text", "table", "seal", "signature", "footer"}


def test_page_label_is_covered_by_the_page_fonts_and_holds_its_elements():
    cfg = SynthConfig(**CLEAN, p_table=1.0, p_seal=1.0, p_signature=1.0, p_footer=1.0)
    by_name = _fonts_by_name()
    pages = compose_document(5, 11, cfg)
    for page in pages:
        fonts = [by_name[n] for n in page.meta["fonts"]]
        for ch in set(_strip_html(page.text)) - {" ", "\n"}:
            assert any(render.font_covers(f, ch) for f in fonts), ch
        lines = page.text.split("\n")
        for e in page.elements:  # each element's label appears, line by line, in the page label
            for line in e.text.split("\n"):
                assert line in lines, (e.kind, line)
    assert any("<table>" in p.text for p in pages)
    assert re.search(r"第\s?1\s?頁", pages[0].text.split("\n")[-1])


def test_clean_config_applies_no_degradation_and_heavy_applies_all():
    from lib.synth.degrade import degrade

    img = Image.new("RGB", (120, 80), (255, 255, 255))
    ImageDraw.Draw(img).rectangle([20, 20, 60, 40], fill=(0, 0, 0))
    arr, q, applied = degrade(img, SynthConfig(**CLEAN), np.random.default_rng(0))
    assert applied == [] and q == 92 and np.array_equal(arr, np.asarray(img))
    heavy = SynthConfig(**{k: 1.0 for k in CLEAN})
    arr, q, applied = degrade(img, heavy, np.random.default_rng(0))
    assert set(applied) == {"tint", "lighting", "noise", "scan_lines", "blur", "rotate", "binarize", "jpeg"}
    assert q < 92 and arr.shape[0] >= 80 and arr.shape[1] >= 120  # rotation grows the canvas, never crops


def test_probability_out_of_range_is_refused():
    with pytest.raises(ValueError, match="p_blur"):
        SynthConfig(p_blur=1.5)


def test_simplified_option_draws_and_labels_simplified(tmp_path):
    cfg = SynthConfig(**CLEAN, script="hans")
    pages = compose_document(0, 0, cfg)
    text = pages[0].text
    assert C.to_simplified(text) == text
    assert "发文" in text or "发" in text
    assert pages[0].font in _fonts_by_name("hans")


# ---------------------------------------------------------------- content


@pytest.mark.parametrize("n, expected", [(12000, "壹萬貳仟"), (10500, "壹萬零伍佰"), (100000, "壹拾萬"),
                                         (1005, "壹仟零伍"), (20300405, "貳仟零參拾萬零肆佰零伍"), (0, "零")])
def test_formal_numerals(n, expected):
    assert C.formal_numeral(n) == expected
    assert C.formal_amount(n) == f"新臺幣{expected}元整"


def test_item_numbering_levels():
    assert [C.numbered(0, 1), C.numbered(1, 2), C.numbered(2, 3), C.numbered(0, 12)] == ["一、", "（二）", "3.", "十二、"]


# ---------------------------------------------------------------- tables: HTML == drawn grid


def _html_grid(html):
    """Occupancy grid from the HTML alone (rows x cols, each position -> cell number), honouring spans."""
    from lxml import html as lhtml

    table = lhtml.fromstring(html)
    grid = {}
    for r, tr in enumerate(table.findall(".//tr")):
        c = 0
        for k, td in enumerate(tr.findall("td")):
            while (r, c) in grid:
                c += 1
            rs, cs = int(td.get("rowspan", 1)), int(td.get("colspan", 1))
            for rr in range(r, r + rs):
                for cc in range(c, c + cs):
                    assert (rr, cc) not in grid, "overlapping spans"
                    grid[(rr, cc)] = (r, k)
            c += cs
    n_rows = max(r for r, _ in grid) + 1
    n_cols = max(c for _, c in grid) + 1
    assert len(grid) == n_rows * n_cols, "ragged table"
    return grid, n_rows, n_cols


@pytest.mark.parametrize("seed", range(8))
def test_table_html_parses_and_matches_the_drawn_grid(seed):
    spec = C.make_table(random.Random(seed))
    grid, n_rows, n_cols = _html_grid(spec.to_html())
    assert (n_rows, n_cols) == (spec.n_rows, spec.n_cols)
    font = render.load_font(render.find_cjk_fonts()[0], 16)
    geom = table_geometry(spec, font, pad=5)
    img = Image.new("L", (geom.col_x[-1] + 20, geom.row_y[-1] + 20), 255)
    draw_table(ImageDraw.Draw(img), spec, (10, 10), font, geom, line_width=1, fill=0, draw_text=False)
    px = np.asarray(img)

    def dark(x, y):
        return px[y - 1:y + 2, x - 1:x + 2].min() < 128

    # Between two horizontally adjacent positions there is a drawn line exactly when the HTML puts them in
    # different cells; the same for vertical neighbours. So the drawing has the HTML's rows, columns and spans.
    for r in range(n_rows):
        ymid = 10 + (geom.row_y[r] + geom.row_y[r + 1]) // 2
        for c in range(n_cols - 1):
            assert dark(10 + geom.col_x[c + 1], ymid) == (grid[(r, c)] != grid[(r, c + 1)]), (r, c)
    for c in range(n_cols):
        xmid = 10 + (geom.col_x[c] + geom.col_x[c + 1]) // 2
        for r in range(n_rows - 1):
            assert dark(xmid, 10 + geom.row_y[r + 1]) == (grid[(r, c)] != grid[(r + 1, c)]), (r, c)


def test_generated_tables_have_merged_cells():
    specs = [C.make_table(random.Random(s)) for s in range(20)]
    assert any('colspan="' in s.to_html() for s in specs) and any('rowspan="' in s.to_html() for s in specs)


# ---------------------------------------------------------------- seals: label order == drawn order


@pytest.fixture(scope="module")
def seal_font():
    fonts = render.find_cjk_fonts("hant")
    return next((f for f in fonts if f.kind == "kai"), fonts[0])


@pytest.mark.parametrize("text", ["王大明印", "臺北市政府教育局印"])
def test_square_seal_reads_right_column_first_top_to_bottom(seal_font, text):
    mask, chars = draw_seal("square", text, "", seal_font, 120, random.Random(0))
    assert "".join(ch for ch, _, _ in chars) == text
    n = int(math.isqrt(len(text)))
    cols = [chars[i * n:(i + 1) * n] for i in range(n)]
    xs = [np.mean([x for _, x, _ in col]) for col in cols]
    assert xs == sorted(xs, reverse=True)  # columns right to left
    for col in cols:
        ys = [y for _, _, y in col]
        assert ys == sorted(ys)  # each column top to bottom
    # the characters really are drawn there: ink around each recorded centre
    arr = np.asarray(mask)
    for _, x, y in chars:
        assert arr[int(y) - 5:int(y) + 5, int(x) - 5:int(x) + 5].max() > 128


@pytest.mark.parametrize("shape", ["circle", "oval"])
def test_round_seal_arc_text_runs_clockwise_then_centre(seal_font, shape):
    text, centre = "臺北市政府教育局", "收文章"
    mask, chars = draw_seal(shape, text, centre, seal_font, 140, random.Random(0))
    assert "".join(ch for ch, _, _ in chars) == text + centre
    w, h = mask.size
    arc = chars[:len(text)]
    # angle clockwise from 12 o'clock, increasing along the label
    angles = [math.degrees(math.atan2(x - w / 2, -(y - h / 2))) for _, x, y in arc]
    assert angles == sorted(angles) and angles[0] < -60 and angles[-1] > 60
    centre_x = [x for _, x, _ in chars[len(text):]]
    assert centre_x == sorted(centre_x)


def test_seal_label_order_survives_into_element_rows():
    cfg = SynthConfig(**CLEAN, p_seal=1.0, seal_shapes=["square"])
    rows = [row for d in range(6) for _, _, row in make_records(d, cfg, 2, "element") if row["element"] == "seal"]
    assert rows
    for row in rows:
        chars = row["synth"]["chars"]
        assert "".join(ch for ch, _, _ in chars) == row["ocr_results"].replace("\n", "")
