"""The reader's data path: character set, glyph atlas, GPU/CPU line renderer, folding, text sampler, pretraining loop
and the hf backend's line pipeline (real files, the real PP-OCRv6 detector, a tiny model built from config)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lib.reader import charset as CS
from lib.reader.glyphs import FACES, available_faces, build_atlas, load_atlas, save_atlas
from lib.evaluation.backends import join_lines
from lib.reader.preprocess import (LineFinder, ReaderInput, fold_line, prepare_lines, split_long_line,
                                   unstack_vertical)
from lib.reader.synth import FOLD, LineBatch, LineRenderer, fold_strip, unfold_square
from lib.reader.text import LineSampler, gongwen_lines

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def test_charset_is_big5_level1_plus_gb2312():
    b5 = CS.big5_level1()
    assert len(b5) == 5401 and b5[0] == "一" and b5[-1] == "籲"
    assert len(CS.gb2312_hanzi(level2=False)) == 3755 and len(CS.gb2312_hanzi()) == 6763
    cs = set(CS.reader_charset())
    assert set(b5) <= cs and set(CS.gb2312_hanzi()) <= cs
    assert {"，", "。", "「", "」", "○", "※", "A", "z", "0", "９"} <= cs
    assert all(not c.isspace() for c in cs)


@pytest.fixture(scope="module")
def small_atlas(tmp_path_factory):
    faces = available_faces(["Noto Sans CJK TC", "AR PL UKai TW", "AR PL UMing TW"])
    assert len(faces) >= 2, "tests need fonts-noto-cjk and fonts-arphic-ukai/uming (.ci/run installs them)"
    chars = (" ",) + tuple("臺灣政府公文主旨說明辦法受文者發文日期字號附件正本副本中華民國年月日第條項") + tuple("0123456789ABCxyz，。：（）「」")
    atlas = build_atlas(chars, faces, size=32, workers=1)
    path = save_atlas(atlas, tmp_path_factory.mktemp("atlas") / "a.npz")
    return load_atlas(path)


def test_atlas_roundtrip_and_coverage(small_atlas):
    a = small_atlas
    assert a.cells.shape == (len(a.faces), len(a.chars), 32, 32)
    assert a.covered.all()  # these faces cover this set
    hz = a.chars.index("臺")
    assert a.cells[:, hz].max() > 200 and (a.cells[:, hz] > 0).mean() > 0.05  # real ink survived 4-bit packing
    assert a.cells[:, a.chars.index(" ")].max() == 0 and (a.advance[:, a.chars.index(" ")] > 0).all()
    assert (a.advance[:, hz] > 25).all()  # a Hanzi advances ~1 em


def test_fold_unfold_roundtrip():
    strip = torch.rand(2, 3, FOLD.row_height, FOLD.capacity)
    sq = fold_strip(strip)
    assert sq.shape == (2, 3, 256, 256)
    assert torch.equal(sq[:, :, 32:64, :], strip[:, :, :, 256:512])  # piece 1 is row 1
    assert torch.equal(unfold_square(sq), strip)


def test_renderer_draws_exactly_the_text_and_is_seeded(small_atlas):
    a = small_atlas
    r = LineRenderer(a, "cpu")
    s = LineSampler(a.chars, a.covered, list(range(len(a.faces))), ["臺灣政府公文主旨說明"], seed=0, max_len=20)
    texts, fonts = s.sample(6)
    batch = LineBatch(torch.from_numpy(s.encode(texts)), torch.tensor(fonts))
    img1 = r.render(batch, torch.Generator().manual_seed(5))
    img2 = r.render(batch, torch.Generator().manual_seed(5))
    img3 = r.render(batch, torch.Generator().manual_seed(6))
    assert img1.shape == (6, 3, 256, 256) and torch.equal(img1, img2) and not torch.equal(img1, img3)
    assert 0 <= float(img1.min()) and float(img1.max()) <= 1
    # clean rendering: ink only where the line is, and more characters -> more ink
    one = LineBatch(torch.from_numpy(s.encode(["臺", "臺灣政府公文"])), torch.tensor([0, 0]))
    clean = r.render(one, torch.Generator().manual_seed(0), clean=True)
    ink = (1 - clean).sum((1, 2, 3))
    assert ink[1] > 3 * ink[0] > 0
    strip = unfold_square(clean[:1])[0, 0]
    cols = (strip < 0.5).any(0).nonzero().flatten()
    assert cols.max() < 64  # one glyph: nothing drawn past it
    empty = LineBatch(torch.full((1, 4), -1), torch.tensor([0]))
    assert float(r.render(empty, torch.Generator().manual_seed(0), clean=True).min()) > 0.99


def test_sampler_respects_font_coverage(small_atlas):
    a = small_atlas
    cov = a.covered.copy()
    cov[0, a.chars.index("臺")] = False  # face 0 lacks 臺: it must never be asked to draw it
    s = LineSampler(a.chars, cov, [0], ["臺灣臺灣臺灣"], seed=1, max_len=10)
    texts, fonts = s.sample(200)
    assert all("臺" not in t for t in texts) and all(t for t in texts)
    enc = s.encode(texts, 10)
    assert enc.shape == (200, 10) and (enc[:, 0] >= 0).all()


def test_gongwen_pools_are_disjoint_by_document():
    train = gongwen_lines(range(0, 5))
    test = gongwen_lines(range(1_000_000, 1_000_005))
    assert train and test and any("：" in t for t in train)
    assert gongwen_lines(range(0, 5)) == train  # seeded


def test_make_eval_set_never_repeats_a_training_string(small_atlas):
    from lib.reader.pretrain import make_eval_set

    a = small_atlas
    train = ["臺灣政府公文主旨說明辦法", "受文者發文日期字號"]
    texts, fonts, chars, font_t = make_eval_set(a, [0, 1], 64, seed=0, max_len=12, exclude=train)
    joined = "\n".join(train)
    assert len(texts) == 64 and all(t not in joined for t in texts)
    assert chars.shape == (64, 12)


def test_fold_line_and_long_and_vertical_lines():
    spec = ReaderInput()
    line = Image.new("RGB", (300, 40), "white")
    sq = fold_line(line, spec)
    assert sq.size == (256, 256)
    long = Image.new("RGB", (6000, 40), "white")
    arr = np.asarray(long).copy()
    arr[5:35, ::50] = 0  # ink every 50 px; blank columns between
    pieces = split_long_line(Image.fromarray(arr), spec)
    assert len(pieces) >= 3 and sum(p.size[0] for p in pieces) == 6000
    assert all(p.size[0] * 32 / 40 <= spec.capacity for p in pieces)
    vert = np.full((200, 40, 3), 255, np.uint8)
    for k in range(4):
        vert[k * 50 + 8:k * 50 + 40, 6:34] = 0
    flat = unstack_vertical(Image.fromarray(vert))
    assert flat.size[0] > flat.size[1]  # now a horizontal line of 4 glyphs


@pytest.mark.skipif(not (REAL / "omnidocbench_zh" / "blocks.json").is_file(), reason="../shared/data/real missing")
def test_line_finder_cuts_a_real_block_into_lines():
    rows = json.loads((REAL / "omnidocbench_zh" / "blocks.json").read_text(encoding="utf-8"))
    row = max(rows, key=lambda r: r["ocr_results"].count("\n") * 0 + len(r["ocr_results"]))  # the longest block
    img = Image.open(REAL / "omnidocbench_zh" / row["img_path"])
    squares, boxes, layout = prepare_lines(img, ReaderInput(), LineFinder())
    assert len(squares) >= 3 and all(s.size == (256, 256) for s in squares)
    text = join_lines(boxes, [f"L{i}" for i in range(len(boxes))], layout)
    assert text.count("L") == len(set(id(b) for b, _ in boxes))


# ---- the reader through the project's own scripts (random-init reader spec: the path, not the accuracy) ----------

def _blocks(n: int, tmp_path: Path) -> Path:
    rows = json.loads((REAL / "omnidocbench_zh" / "blocks.json").read_text(encoding="utf-8"))
    picked = sorted(rows, key=lambda r: -len(r["ocr_results"]))[:n]
    out = []
    for r in picked:
        out.append({**r, "img_path": str((REAL / "omnidocbench_zh" / r["img_path"]).resolve())})
    path = tmp_path / "blocks.json"
    path.write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.skipif(not (REAL / "omnidocbench_zh" / "blocks.json").is_file(), reason="../shared/data/real missing")
def test_evaluate_hf_reads_a_reader_model_line_by_line(tmp_path, monkeypatch):
    import importlib

    from lib.generation import generate_batch as real_generate

    seen = []

    def spy(model, processor, prompt, images, **kw):
        seen.append([im.size for im in images])
        return real_generate(model, processor, prompt, images, **kw)

    monkeypatch.setattr("lib.generation.generate_batch", spy)
    ev = importlib.import_module("core.evaluate")
    data = _blocks(2, tmp_path)
    out = tmp_path / "res.json"
    ev.main(ev.parse(["--mode", "hf", "--model-name", "embedded/gemma3-reader-init", "--data-file", str(data),
                      "--output-file", str(out), "--max-new-tokens", "3", "--batch-size", "32", "--no-progress",
                      "--n-bootstrap", "20", "--log-level", "WARNING"]))
    res = json.loads(out.read_text(encoding="utf-8"))
    assert res["samples"] and all(s.get("prediction") is not None for s in res["samples"])
    sizes = [s for call in seen for s in call]
    assert sizes and all(s == (256, 256) for s in sizes)  # folded squares, never the raw block
    assert len(sizes) >= 2 * 3  # each long block was cut into several lines
    ident = json.dumps(res, ensure_ascii=False)
    assert "folded_line" in ident


def test_sft_gemma_fine_tunes_the_reader_on_folded_line_crops(tmp_path):
    import subprocess
    import sys

    from lib.reader.domain import build_domain_dataset

    info = build_domain_dataset(tmp_path / "dom", faces=["AR PL UKai TW", "Noto Sans CJK TC"], n_docs=3,
                                lines_per_doc=4, max_len=10)
    assert info["rows"] >= 8
    rows = json.loads(Path(info["data_file"]).read_text(encoding="utf-8"))
    img = Image.open(tmp_path / "dom" / rows[0]["image_path"])
    assert img.size[1] == 32 and img.size[0] > img.size[1]  # a line crop, unfolded
    cfg = tmp_path / "ft.json"
    cfg.write_text(json.dumps({"model_name": "embedded/gemma3-reader-init", "finetune": "full", "load_in_4bit": False,
                               "learning_rate": 1e-4, "max_steps": 2, "per_device_train_batch_size": 4,
                               "eval_steps": 2, "save_steps": 2, "logging_steps": 1, "eval_cer_samples": 2,
                               "final_eval_samples": 2, "eval_max_new_tokens": 4}), encoding="utf-8")
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, "core/sft_gemma.py", "--config", str(cfg), "--input_data", info["data_file"],
                        "--val_data", info["data_file"], "--output_dir", str(tmp_path / "m")],
                       cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads(next((tmp_path / "m").rglob("metadata.json")).read_text(encoding="utf-8"))
    assert meta.get("global_step") == 2


def test_pretraining_continues_across_calls(tmp_path, small_atlas):
    """Two calls as on two GPU machines: the second starts from the first's folder (also via its exported tar
    parts), continues the step count, samples and learning curve, and both save a loadable reader."""
    import tarfile

    from lib.reader.glyphs import save_atlas
    from lib.reader.pretrain import PretrainConfig, pretrain

    atlas = save_atlas(small_atlas, tmp_path / "atlas.npz")
    common = dict(atlas=str(atlas), batch_size=4, max_len=8, n_docs=3, n_val=4, eval_every=0, workers=0,
                  log_every=1, device="cpu", warmup_steps=1, pool=None, test_pool=None)
    r1 = pretrain(PretrainConfig(output_dir=str(tmp_path / "call1"), max_steps=2,
                                 export_parts=str(tmp_path / "out" / "reader.tar"), **common))
    assert r1["call"] == 1 and r1["total_steps"] == 2 and r1["samples"] == 8
    parts = sorted((tmp_path / "out").glob("reader.tar.part-*"))
    assert parts and all(p.stat().st_size <= 15 * 1024 * 1024 for p in parts)
    blob = tmp_path / "joined.tar"
    blob.write_bytes(b"".join(p.read_bytes() for p in parts))
    with tarfile.open(blob) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    back = tmp_path / "unpacked" / "call1"
    assert (back / "reader_config.json").is_file() and (back / "pretrain_state.json").is_file()
    r2 = pretrain(PretrainConfig(init=str(back), output_dir=str(tmp_path / "call2"), max_steps=3, **common))
    assert r2["call"] == 2 and r2["total_steps"] == 5 and r2["samples"] == 20
    state = json.loads((tmp_path / "call2" / "pretrain_state.json").read_text(encoding="utf-8"))
    assert [h["call"] for h in state["history"]] == [1, 1, 2, 2, 2]
    assert [v["call"] for v in state["val"]] == [1, 2]
    from lib.modeling import load_model_and_processor
    from lib.reader.preprocess import reader_input_of

    model, processor = load_model_and_processor(str(tmp_path / "call2"), dtype="float32")
    assert reader_input_of(processor) is not None  # still a folded-line reader


def test_bench_reader_runs_ours_and_trl_side_by_side(tmp_path, small_atlas, capsys):
    import importlib

    from lib.reader.glyphs import save_atlas

    bench = importlib.import_module("core.benchmarks.bench_reader")
    atlas = save_atlas(small_atlas, tmp_path / "atlas.npz")
    out = tmp_path / "bench.json"
    res = bench.main(bench.BenchReaderArgs(atlas=str(atlas), device="cpu", batch_size=2, trl_batch_size=2, steps=1,
                                           warmup_steps=1, n_samples=4, max_len=6, workers=0, output_file=str(out),
                                           pool=None))
    rows = {r["config"].split()[0]: r for r in res["rows"]}
    assert set(rows) == {"trl", "ours"} and all(r["samples_per_s"] > 0 for r in rows.values())
    assert rows["trl"]["x_trl"] == 1.0 and rows["ours"]["x_trl"] > 0
    assert json.loads(out.read_text(encoding="utf-8"))["gflop_per_sample"] > 1
    assert "x TRL" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["core/pretrain_reader.py", "--atlas", "/nonexistent/atlas.npz", "--device", "cpu"], "--atlas: no glyph atlas"),
    (["core/pretrain_reader.py", "--init", "/nonexistent/dir", "--atlas", "tests/test_reader.py", "--device", "cpu"],
     "--init: /nonexistent/dir is neither an embedded model name nor a model folder"),
    (["-m", "core.benchmarks.bench_reader", "--configs", "tlr", "--device", "cpu"], "unknown configuration(s) ['tlr']"),
])
def test_reader_scripts_give_one_line_errors(argv, needle, tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, *argv], cwd=root, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(root)})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert needle in r.stderr.strip().splitlines()[-1]


def test_pretrain_init_must_be_a_model_folder(tmp_path, small_atlas):
    from lib.reader.glyphs import save_atlas
    from lib.reader.pretrain import PretrainConfig, pretrain

    atlas = save_atlas(small_atlas, tmp_path / "a.npz")
    with pytest.raises(FileNotFoundError, match="--init: .* neither an embedded model name nor a model folder"):
        pretrain(PretrainConfig(init=str(tmp_path / "nothing"), atlas=str(atlas), device="cpu"))


def test_shipped_reader_name_resolves_to_its_committed_folder(tmp_path, monkeypatch):
    from lib.models import embedded as E

    monkeypatch.setitem(E.SHIPPED_MODELS, "embedded/gemma3-reader", tmp_path / "gemma3-reader")
    with pytest.raises(FileNotFoundError, match="shipped weights are missing"):
        E.resolve_model_path("embedded/gemma3-reader")
    (tmp_path / "gemma3-reader").mkdir()
    (tmp_path / "gemma3-reader" / "config.json").write_text("{}", encoding="utf-8")
    assert E.resolve_model_path("embedded/gemma3-reader") == str(tmp_path / "gemma3-reader")
