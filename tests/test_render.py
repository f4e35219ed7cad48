"""lib/render.py: font discovery, glyph coverage, deterministic rendering."""

import numpy as np
import pytest

from lib import render


@pytest.fixture(scope="module")
def hant_fonts():
    return render.find_cjk_fonts("hant")


def test_pypi_noto_tc_is_found_first(hant_fonts):
    assert render.pypi_font_dir() is not None, "justmytype-intl-cjk is in requirements.txt"
    first = hant_fonts[0]
    assert first.source == "pypi" and first.name == "Noto Sans TC" and "hant" in first.scripts


def test_simplified_fonts_are_separate():
    names = [f.name for f in render.find_cjk_fonts("hans")]
    assert "Noto Sans SC" in names and "Noto Sans TC" not in names


def test_font_covers_detects_missing_glyphs(hant_fonts):
    f = hant_fonts[0]
    assert render.font_covers(f, "中華民國113年 ABC\n")
    assert not render.font_covers(f, "中文😀")
    assert render.missing_glyphs(f, "中😀文😀") == ["😀"]


def test_ttc_face_index_matters():
    # Face 0 of the Noto CJK collection is JP, face 3 TC: coverage is read from the face asked for.
    kai = render.find_cjk_fonts("hant", kinds=["kai"])
    if not kai:
        pytest.skip("fonts-arphic-ukai not installed (apt-get install fonts-arphic-ukai; .ci/run installs it)")
    k = kai[0]
    assert k.path.endswith(".ttc") and k.index > 0
    assert render.font_covers(k, "簽")


def test_render_is_deterministic_and_draws_ink(hant_fonts):
    a = render.render_text_line("發文字號：府授字第1130001234號", hant_fonts[0], 28)
    b = render.render_text_line("發文字號：府授字第1130001234號", hant_fonts[0], 28)
    assert a.size == b.size and a.tobytes() == b.tobytes()
    arr = np.asarray(a.convert("L"))
    assert (arr < 128).mean() > 0.02  # text was actually drawn
    longer = render.render_text_line("發文字號：府授字第1130001234號附件", hant_fonts[0], 28)
    assert longer.width > a.width


def test_variable_font_weight_is_applied(hant_fonts):
    f = hant_fonts[0]
    thin = np.asarray(render.render_text_line("國", f, 64, weight=100).convert("L"))
    bold = np.asarray(render.render_text_line("國", f, 64, weight=900).convert("L"))
    assert (bold < 128).sum() > 2 * (thin < 128).sum()


def test_uncovered_text_is_refused(hant_fonts):
    with pytest.raises(render.FontCoverageError, match="😀"):
        render.render_text_line("中😀", hant_fonts[0], 20)


def test_vertical_line_is_tall(hant_fonts):
    img = render.render_text_line("臺北市政府", hant_fonts[0], 30, vertical=True)
    assert img.height > 3 * img.width


def test_font_index_is_used_while_the_file_is_unchanged_and_rebuilt_when_it_changes():
    pdir = render.pypi_font_dir()
    index = {}
    fonts = render._scan_dirs([str(pdir)], "pypi", index)
    tc = next(f for f in fonts if f.name == "Noto Sans TC")
    entry = index[tc.path]
    entry["faces"][0]["name"] = "From the index"
    assert "From the index" in [f.name for f in render._scan_dirs([str(pdir)], "pypi", index)]
    entry["stamp"] = [0, 0]  # as if the font file had changed on disk
    assert "Noto Sans TC" in [f.name for f in render._scan_dirs([str(pdir)], "pypi", index)]
