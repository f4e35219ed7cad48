"""The reader's PP-OCRv6 eye and its seal handling: rapidocr's real recogniser converted to PyTorch inside a Gemma 3
reader built from the committed one, real seals drawn by the synthesiser, the real PP-OCRv6 detector."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from lib.reader import ppocr_vision as V
from lib.reader.preprocess import LineFinder, ReaderInput, fold_line, prepare_lines
from lib.reader.stamps import drop_stamps, redness, seal_lines, seal_shape, seal_ink
from lib.render import find_cjk_fonts, load_font
from lib.synth.seal import SEAL_RED, composite, draw_seal

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def find_font(name: str):
    fonts = [f for f in find_cjk_fonts("hant") if f.name == name]
    assert fonts, f"tests need the {name} font (.ci/run installs it)"
    return fonts[0]


def _ctc(ids, chars):
    out, prev = [], 0
    for i in ids:
        if i != prev and i != 0:
            out.append(chars[i])
        prev = i
    return "".join(out)


@pytest.fixture(scope="module")
def pp_reader(tmp_path_factory):
    out = tmp_path_factory.mktemp("pp") / "reader"
    summary = V.build_ppocr_reader("embedded/gemma3-reader", out)
    assert summary["ppocr_classes"] == 18710 and summary["classes_in_vocab"] > 15000
    return out


def _square(img: Image.Image) -> torch.Tensor:
    sq = fold_line(img.convert("RGB"), ReaderInput())
    x = torch.from_numpy(np.asarray(sq).astype(np.float32) / 255).permute(2, 0, 1)[None]
    return (x - 0.5) / 0.5


def test_the_tower_reads_real_lines_as_rapidocr_does(pp_reader):
    """Through the fold (32 px rows), unfold, resize to 48 px and zero padding, the converted recogniser reads
    real RapidOCR test lines as rapidocr's own engine reads the line image."""
    from rapidocr import RapidOCR

    model = V.load_reader_model(pp_reader).eval()
    vt = model.model.vision_tower
    assert isinstance(vt, V.PPOCRVisionModel)
    chars = V.ppocr_characters()
    engine = RapidOCR()
    rows = json.loads((REAL / "rapidocr_lines" / "lines.json").read_text(encoding="utf-8"))
    rows = rows if isinstance(rows, list) else rows["data"]
    agree = 0
    for r in rows[:6]:
        img = Image.open(REAL / "rapidocr_lines" / r["img_path"]).convert("RGB")
        if img.height > 1.6 * img.width or img.height > 200:
            continue
        bgr = np.asarray(img)[:, :, ::-1].copy()
        ref = "".join(engine(bgr, use_det=False, use_cls=False, use_rec=True).txts or ())
        with torch.no_grad():
            ids = vt.head(vt.backbone(vt.unfold(_square(img)))).argmax(-1)[0].tolist()
        agree += _ctc(ids, chars) == ref
    assert agree >= 3, agree


def test_slots_hold_the_collapsed_path_then_the_end_vector(pp_reader):
    model = V.load_reader_model(pp_reader).eval()
    vt = model.model.vision_tower
    img = Image.new("RGB", (400, 48), "white")
    ImageDraw.Draw(img).text((8, 4), "中華民國", font=load_font(find_font("Noto Sans CJK TC"), 36), fill="black")
    with torch.no_grad():
        x = _square(img)
        out = vt(x).last_hidden_state[0]
        n = len(_ctc(vt.head(vt.backbone(vt.unfold(x))).argmax(-1)[0].tolist(), V.ppocr_characters()))
    assert out.shape == (256, 256)
    assert n >= 3
    assert torch.allclose(out[n:], vt.end.expand(256 - n, -1))       # every slot after the reading: the end vector
    assert not torch.allclose(out[n - 1], vt.end)


def test_gradients_reach_the_recogniser_and_batch_norm_stays_frozen(pp_reader):
    model = V.load_reader_model(pp_reader)
    model.train()
    vt = model.model.vision_tower
    bns = [m for m in vt.backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and not any(m.training for m in bns)
    before = [m.running_mean.clone() for m in bns]
    out = vt(torch.rand(2, 3, 256, 256) * 2 - 1).last_hidden_state
    out.pow(2).mean().backward()
    assert vt.feat_proj.weight.grad is not None and vt.head.weight.grad is not None
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in vt.backbone.parameters())
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, bns))


def test_checkpoint_loads_where_transformers_forces_siglip(pp_reader, monkeypatch):
    """transformers 5.17 turns every Gemma 3 vision_config dict into SigLIP's: the loader keeps our tower."""
    from transformers import Gemma3Config, SiglipVisionConfig

    native = V.load_reader_model(pp_reader)
    orig = Gemma3Config.from_dict

    def forced(d, **kw):
        c = orig(d, **kw)
        if isinstance(c.vision_config, V.PPOCRVisionConfig):
            c.vision_config = SiglipVisionConfig(hidden_size=256, image_size=256, patch_size=16)
        return c

    monkeypatch.setattr(Gemma3Config, "from_dict", forced)
    forced_model = V.load_reader_model(pp_reader)
    assert isinstance(forced_model.model.vision_tower, V.PPOCRVisionModel)
    a, b = native.state_dict(), forced_model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_half_copy_travels_and_builds_the_same_graph(tmp_path, monkeypatch):
    half = V.half_copy(tmp_path / "rec16.onnx")
    assert half.stat().st_size < 0.6 * V.rec_model_path().stat().st_size
    full_sd = V._converted("PP-OCRv6_rec_small").state_dict()
    monkeypatch.setenv("GEMMA_OCR_PPOCR_REC", str(half))
    V._onnx.cache_clear()
    V._converted.cache_clear()
    try:
        half_sd = V._converted("PP-OCRv6_rec_small").state_dict()
    finally:
        monkeypatch.delenv("GEMMA_OCR_PPOCR_REC")
        V._onnx.cache_clear()
        V._converted.cache_clear()
    assert half_sd.keys() == full_sd.keys()
    worst = max(float((half_sd[k].float() - full_sd[k].float()).abs().max()) for k in full_sd if full_sd[k].is_floating_point())
    assert 0 < worst < 0.05
    monkeypatch.setenv("GEMMA_OCR_PPOCR_REC", str(tmp_path / "missing.onnx"))
    with pytest.raises(FileNotFoundError, match="GEMMA_OCR_PPOCR_REC"):
        V.rec_model_path()


# -- seals ------------------------------------------------------------------------------------------------------

def _stamp(shape: str, text: str, centre: str, size: int = 180, under: str | None = None):
    rng = random.Random(3)
    font = find_font("AR PL UKai TW")
    mask, chars = draw_seal(shape, text, centre, font, size, rng)
    page = Image.new("RGB", (mask.width + 40, mask.height + 40), "white")
    if under:
        ImageDraw.Draw(page).text((10, page.height // 2 - 14), under, font=load_font(font, 28), fill=(20, 20, 25))
    composite(page, mask, (20, 20), SEAL_RED[0], opacity=0.92)
    return page, chars


def test_round_seal_unwraps_to_its_ring_text_then_its_centre():
    page, _ = _stamp("circle", "臺北市政府工務局", "收文章", under="主任委員王大明")
    ink = seal_ink(np.asarray(page))
    lines = seal_lines(page)
    assert len(lines) == 2
    ring, centre = lines[0][0], lines[1][0]
    assert ring.width > 3 * ring.height                # a straight band: eight glyphs side by side
    assert centre.width > 1.5 * centre.height
    from rapidocr import RapidOCR

    engine = RapidOCR()
    read = lambda im: "".join(engine(np.asarray(im)[:, :, ::-1].copy(), use_det=False, use_cls=False,
                                     use_rec=True).txts or ())
    assert sum(c in read(ring) for c in "臺北市政府工務局") >= 5
    assert sum(c in read(centre) for c in "收文章") >= 2
    assert seal_shape(ink, (20, 20, 200, 200)) == "round"


def test_square_seal_reads_columns_right_to_left():
    page, chars = _stamp("square", "臺南市政府衛生之印", "")
    lines = seal_lines(page)
    assert len(lines) == 1
    line = np.asarray(lines[0][0].convert("L"))
    # nine glyphs laid out in one row in the seal's reading order: 9 inked runs of columns
    inked = (line < 160).any(axis=0)
    runs = int(np.sum(inked[1:] & ~inked[:-1]) + inked[0])
    assert 7 <= runs <= 12, runs
    assert [c for c, _, _ in chars] == list("臺南市政府衛生之印")


def test_drop_stamps_removes_the_seal_and_keeps_black_text():
    page, _ = _stamp("circle", "文化部", "校對章", under="部長卓瑋")
    arr = np.asarray(page)
    assert (redness(arr) > 40).mean() > 0.02
    sig = np.asarray(drop_stamps(page, all_red=True))
    assert (redness(sig) > 40).mean() < 0.002
    dark_before = (arr.max(axis=2) < 90).sum()
    assert (sig.max(axis=2) < 90).sum() >= 0.9 * dark_before       # black strokes (under the seal too) stay
    text = np.asarray(drop_stamps(page))                              # stamp-sized component: dropped too
    assert (redness(text) > 40).mean() < 0.01
    small = Image.new("RGB", (200, 40), "white")
    ImageDraw.Draw(small).text((4, 4), "主旨", font=load_font(find_font("Noto Sans CJK TC"), 24), fill=(210, 30, 30))
    assert np.array_equal(np.asarray(drop_stamps(small)), np.asarray(small))   # a red heading stays


def test_prepare_lines_routes_seals_and_signatures():
    page, _ = _stamp("oval", "衛生福利部", "114.03.17")
    squares, boxes, layout = prepare_lines(page, ReaderInput(), LineFinder(), element="seal")
    assert layout == "ordered" and len(squares) == 2
    assert all(s.size == (256, 256) for s in squares)
    from lib.evaluation.backends import join_lines

    assert join_lines(boxes, ["衛生福利部", "114.03.17"], layout) == "衛生福利部\n114.03.17"
    blank = Image.new("RGB", (120, 120), "white")
    _, _, layout = prepare_lines(blank, ReaderInput(), None, element="seal")
    assert layout == "auto"                                    # no stamp found: read like any crop
