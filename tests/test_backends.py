"""Backends and their helpers: PP-OCRv6 (rapidocr) and Tesseract on real images, the retry policy, URL handling,
MIME sniffing, transparent images, reading order, post-processors."""

import json
import random
import shutil
from pathlib import Path

import pytest

from lib.data import load_samples
from lib.evaluation import postprocess as pp
from lib.evaluation.backends import (BackendError, OpenAIChatBackend, PaddleOCRBackend, TesseractBackend,
                                     json_path_get, normalize_chat_url, reading_order_text)
from lib.evaluation.http import HttpClient, RequestFailed, RetryPolicy, parse_retry_after
from lib.evaluation.images import check_image, load_rgb, sniff_mime, to_data_url
from lib.evaluation.stub_server import FaultPlan, StubServer

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / ".." / "shared" / "data" / "real"
LINES = REAL / "rapidocr_lines" / "lines.json"
needs_real = pytest.mark.skipif(not LINES.is_file(), reason="../shared/data/real not present")


# -- OCR engines on real images ----------------------------------------------------------------------------------

@needs_real
def test_paddleocr_line_mode_reads_the_pinned_lines():
    samples = {s.raw_image_path: s for s in load_samples(LINES)}
    be = PaddleOCRBackend("line")
    for name in ("images/text_rec.jpg", "images/test_without_det.jpg", "images/black_font_color_transparent.png"):
        assert be.predict(samples[name]).text == samples[name].text, name
    # options persist inside a rapidocr engine: a page call after line calls still detects (and vice versa)
    page = PaddleOCRBackend("page")
    page._local = be._local  # share the same engine object
    assert page.predict(samples["images/test_without_det.jpg"]).text == samples["images/test_without_det.jpg"].text
    assert be.predict(samples["images/text_rec.jpg"]).text == "韩国小馆"


@needs_real
def test_transparent_png_is_flattened_onto_a_contrasting_background():
    import numpy as np

    black = load_rgb(str(LINES.parent / "images" / "black_font_color_transparent.png"))
    white = load_rgb(str(LINES.parent / "images" / "white_font_color_transparent.png"))
    for im in (black, white):
        a = np.asarray(im.convert("L"))
        assert a.min() < 80 and a.max() > 175  # ink and background both present, not a uniform box


def test_tesseract_missing_language_names_the_debian_package():
    if shutil.which("tesseract") is None:
        with pytest.raises(BackendError, match="apt-get install -y tesseract-ocr tesseract-ocr-chi-tra"):
            TesseractBackend("chi_tra")
        return
    with pytest.raises(BackendError, match="apt-get install -y tesseract-ocr-klingon"):
        TesseractBackend("klingon")


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract not installed (CI installs it via .ci/run)")
def test_tesseract_reads_a_rendered_traditional_chinese_line(tmp_path):
    import lib.render as render
    fonts = render.find_cjk_fonts("hant")
    if not fonts:
        pytest.skip("no CJK font available")
    text = "中華民國政府公文"
    img = render.render_text_line(text, fonts[0].path, font_size=48)
    img.save(tmp_path / "line.png")
    (tmp_path / "d.json").write_text(json.dumps([{"img_path": "line.png", "ocr_results": text}]), encoding="utf-8")
    sample = load_samples(tmp_path / "d.json")[0]
    out = TesseractBackend("chi_tra", psm=7).predict(sample).text
    out = pp.collapse_cjk_spaces(out)
    from lib.utils.count_metric import cer

    assert cer(out, text) <= 0.25, out


# -- HTTP retries --------------------------------------------------------------------------------------------------

def test_backoff_is_exponential_with_full_jitter_and_honours_retry_after():
    pol = RetryPolicy(backoff_base_s=0.5, backoff_max_s=4.0)
    rng = random.Random(0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 4.0)]:
        waits = [pol.backoff(attempt, rng) for _ in range(200)]
        assert 0 <= min(waits) and max(waits) <= ceiling and max(waits) > 0.7 * ceiling
    assert pol.backoff(1, rng, retry_after=3.0) >= 3.0
    assert pol.backoff(1, rng, retry_after=100.0) == 4.0  # capped
    assert parse_retry_after("2") == 2.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_retry_after_header_is_waited_for():
    waits = []
    with StubServer(faults=FaultPlan(rate=1.0, kinds=("429",), retry_after="2")) as srv:
        client = HttpClient(RetryPolicy(max_retries=2, backoff_base_s=0.01, backoff_max_s=5, timeout_s=2),
                            sleep=waits.append)
        with pytest.raises(RequestFailed, match="HTTP 429.*gave up after 3 attempts"):
            client.post_json(srv.chat_url, {"messages": []}, lambda r, d: r.json())
    assert waits and all(w >= 2.0 for w in waits)


def test_client_errors_are_not_retried():
    with StubServer(require_api_key="k") as srv:
        client = HttpClient(RetryPolicy(max_retries=5, backoff_base_s=0.01))
        with pytest.raises(RequestFailed, match="HTTP 401") as exc:
            client.post_json(srv.chat_url, {"messages": []}, lambda r, d: r.json())
        assert exc.value.attempts == 1 and srv.stats["requests"] == 0


def test_model_name_from_v1_models_and_url_forms():
    assert normalize_chat_url("localhost:8000") == ("http://localhost:8000/v1/chat/completions", "http://localhost:8000/v1/models")
    assert normalize_chat_url("http://h/v1/") == ("http://h/v1/chat/completions", "http://h/v1/models")
    assert normalize_chat_url("https://h/v1/chat/completions")[1] == "https://h/v1/models"
    from lib.prompt import load_prompt

    with StubServer(model_id="gemma-12b") as srv:
        assert OpenAIChatBackend(srv.base_url, None, load_prompt()).model_name == "gemma-12b"
    with pytest.raises(BackendError, match="--model-name"):
        OpenAIChatBackend("http://127.0.0.1:9", None, load_prompt(), policy=RetryPolicy(max_retries=0, timeout_s=1))


def test_json_path():
    assert json_path_get({"a": [{"t": "x"}]}, "a.0.t") == "x"
    with pytest.raises(KeyError, match="'b'"):
        json_path_get({"a": 1}, "b")


# -- images ---------------------------------------------------------------------------------------------------------

def test_mime_is_sniffed_from_bytes(tmp_path):
    from PIL import Image

    p = tmp_path / "looks_like.jpg"
    Image.new("RGB", (4, 4)).save(p, format="PNG")
    assert sniff_mime(p.read_bytes(), str(p)) == "image/png"
    assert to_data_url(str(p)).startswith("data:image/png;base64,")
    Image.new("RGB", (4, 4)).save(tmp_path / "a.webp", format="WEBP")
    assert sniff_mime((tmp_path / "a.webp").read_bytes()) == "image/webp"
    assert to_data_url("https://example.org/x.png") == "https://example.org/x.png"
    assert "image not found" in check_image(str(tmp_path / "nope.png"))
    (tmp_path / "bad.png").write_bytes(b"garbage")
    assert "corrupt or unreadable" in check_image(str(tmp_path / "bad.png"))


def test_reading_order_groups_rows_and_sorts_left_to_right():
    def box(x0, y0, x1, y1):
        return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]

    boxes = [box(200, 12, 300, 40), box(0, 10, 150, 42), box(0, 60, 300, 90), box(10, 100, 80, 130),
             box(90, 104, 160, 128)]
    texts = ["中國", "我是", "第二行", "abc", "def"]
    assert reading_order_text(boxes, texts) == "我是中國\n第二行\nabc def"


def test_reading_order_two_columns_under_a_title_and_a_table():
    def box(x0, y0, x1, y1):
        return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]

    # a full-width title, then two columns whose lines sit at slightly different heights
    boxes = [box(0, 0, 600, 40), box(0, 80, 280, 100), box(320, 84, 600, 104), box(0, 110, 280, 130),
             box(320, 114, 600, 134), box(0, 140, 200, 160), box(320, 144, 500, 164)]
    texts = ["標題", "左一", "右一", "左二", "右二", "左三", "右三"]
    assert reading_order_text(boxes, texts) == "標題\n左一\n左二\n左三\n右一\n右二\n右三"
    # one line broken by wide gaps stays one line
    assert reading_order_text([box(0, 0, 80, 20), box(200, 2, 280, 22)], ["項目", "金額"]) == "項目金額"
    # a dense table crop is read row by row (layout="rows", used for element == "table")
    cells = [box(0, 0, 80, 20), box(200, 0, 280, 20), box(0, 24, 80, 44), box(200, 24, 280, 44)]
    assert reading_order_text(cells, ["項目", "金額", "房租", "100"], layout="rows") == "項目金額\n房租100"
    assert reading_order_text(cells, ["項目", "金額", "房租", "100"]) == "項目\n房租\n金額\n100"  # XY-cut: columns


# -- post-processors -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,expected", [
    ("<think>讓我看看</think>\n公文內容", "公文內容"),
    ("推理中</think>公文內容", "公文內容"),
    ("<think>還在想", ""),
    ("```markdown\n第一行\n第二行\n```", "第一行\n第二行"),
    ("```\n未結束的圍欄", "未結束的圍欄"),
    ("Here's the text extracted from the image:\n中華民國", "中華民國"),
    ("Sure! Here is the OCR result:\n中華民國", "中華民國"),
    ("以下是圖片中的文字內容：\n中華民國", "中華民國"),
    ("Here is a line of the document itself", "Here is a line of the document itself"),  # no colon: kept
    ("中華民國：一百年", "中華民國：一百年"),
])
def test_default_postprocessors(raw, expected):
    names = pp.resolve_postprocessors(["auto"], pp.DEFAULT_MODEL_POSTPROCESSORS)
    assert pp.apply_postprocessors(raw, names) == expected


def test_structured_layout_json_becomes_text():
    dots = json.dumps([{"bbox": [0, 0, 10, 10], "category": "Page-header", "text": "頁首"},
                       {"bbox": [0, 10, 10, 20], "category": "Title", "text": "標題"},
                       {"bbox": [0, 20, 10, 30], "category": "Picture"},
                       {"bbox": [0, 30, 10, 40], "category": "Text", "text": "正文第一段"}], ensure_ascii=False)
    assert pp.structured_to_text(dots) == "頁首\n標題\n正文第一段"
    assert pp.strip_headers_footers(dots) == "標題\n正文第一段"
    assert pp.apply_postprocessors(f"```json\n{dots}\n```", pp.DEFAULT_MODEL_POSTPROCESSORS) == "頁首\n標題\n正文第一段"
    assert pp.structured_to_text('{"text": "全文"}') == "全文"
    assert pp.structured_to_text("[1, 2]") == "[1, 2]"  # not a layout: unchanged
    assert pp.structured_to_text("[不是 JSON") == "[不是 JSON"


def test_cjk_spaces_and_unknown_names():
    assert pp.collapse_cjk_spaces("中 華 民 國 2024 年 ABC DEF") == "中華民國 2024 年 ABC DEF"
    assert pp.resolve_postprocessors(["none"], ["strip_think"]) == []
    with pytest.raises(ValueError, match="Did you mean 'strip_think'"):
        pp.resolve_postprocessors(["strip_thinks"], [])
