"""The learning run's pieces (docs/GPU.md) on CPU: line/paragraph rendering and held-out strings, fonts packed for a
machine without CJK fonts, the fast length measurement (== one processor call per sample), threaded image
validation, the vision-tower learning rate, the training time limit, and the learning-curve plot."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "data" / "example.json"


@pytest.fixture(scope="module")
def fonts():
    from lib.quickstart_data import pick_fonts

    return pick_fonts(2)


def test_strings_never_repeat_excluded_ones_and_respect_the_task():
    from lib.synth.lines import LineTask, content_pool, make_strings

    pool = content_pool(1, 20)
    assert len(pool) > 100 and all(len(x) >= 2 for x in pool)
    charset = "".join(sorted({c for ln in pool for c in ln}))
    task = LineTask(min_len=3, max_len=6, random_share=0.5)
    train = make_strings(random.Random(0), task, 400, pool, charset)
    assert all(3 <= len(s) <= 6 for s in train)
    held = make_strings(random.Random(1), task, 200, pool, charset, exclude=set(train))
    assert not set(held) & set(train)
    para = make_strings(random.Random(2), LineTask(max_lines=4, min_len=4, max_len=8), 50, pool, charset)
    assert all(2 <= s.count("\n") + 1 <= 4 for s in para)
    rand = make_strings(random.Random(3), LineTask(random_share=1.0), 50, pool, charset)
    assert all("\u4e00" <= c <= "\u9fff" for s in rand for c in s)  # random strings: Hanzi only, no prior


def test_rendered_dataset_loads_and_shows_the_text_where_the_task_says(tmp_path, fonts):
    import numpy as np
    from PIL import Image

    from lib.data import load_samples, validate_samples
    from lib.synth.lines import LineTask, build_line_dataset

    task = LineTask(image_size=128, min_font=16, max_font=20, max_len=6)
    texts = ["中華民國", "臺北市政府", "函"]
    paths = build_line_dataset(tmp_path, {"train": texts, "test": ["公文"]}, task=task, fonts=fonts, workers=2)
    samples = load_samples(paths["train"])
    assert [s.text for s in samples] == texts and validate_samples(samples).ok
    for s in samples:
        arr = np.asarray(Image.open(s.image_path).convert("L"), dtype=np.int16)
        assert arr.shape == (128, 128)
        ink_cols = np.nonzero((arr < arr.max() - 60).any(axis=0))[0]
        assert ink_cols.size and ink_cols.min() <= 12  # "left" placement: a line crop starts at the left edge
    assert json.loads((tmp_path / "task.json").read_text())["image_size"] == 128


def test_packed_fonts_draw_every_character_of_the_run(tmp_path):
    from lib.render import font_covers
    from lib.synth.lines import content_pool

    import core.benchmarks.learning_run as lr

    args = lr.LearningRunArgs(n_docs=30, pack_fonts=str(tmp_path / "fonts"))
    written = lr.pack_fonts(args, Path(args.pack_fonts))
    assert len(written) == 2 and all(p.stat().st_size < 3_000_000 for p in written)
    text = "".join(content_pool(1, 30))
    for p in written:
        assert font_covers(str(p), text), p


def test_fast_length_measurement_equals_one_processor_call_per_sample(monkeypatch):
    import lib.train.collator as C
    from lib.data import load_samples
    from lib.modeling import load_model_and_processor
    from lib.prompt import load_prompt
    from lib.train.collator import OCRCollator, _measure_one, measure_samples

    _, processor = load_model_and_processor("embedded/tiny-gemma3")
    base = load_samples(EXAMPLE)
    samples = [base[i % len(base)] for i in range(40)]
    collator = OCRCollator(processor, load_prompt())
    calls = []
    monkeypatch.setattr(C, "_measure_one", lambda c, s: calls.append(s) or _measure_one(c, s))
    fast = measure_samples(collator, samples)
    assert len(calls) <= 5  # the first sample + 4 checks, not one processor call per sample
    slow = [_measure_one(collator, s) for s in samples]
    assert fast == slow


def test_threaded_validation_names_the_broken_rows(tmp_path):
    from PIL import Image

    from lib.data import load_samples, validate_samples

    rows = []
    for i in range(80):
        Image.new("RGB", (8, 8), "white").save(tmp_path / f"{i}.png")
        rows.append({"img_path": f"{i}.png", "ocr_results": f"t{i}"})
    (tmp_path / "17.png").write_bytes(b"not a png")
    rows[33]["img_path"] = "missing.png"
    (tmp_path / "d.json").write_text(json.dumps(rows))
    report = validate_samples(load_samples(tmp_path / "d.json"), workers=4)
    assert sorted(p["row"] for p in report.problems) == [17, 33]
    assert {p["problem"].split(" (")[0] for p in report.problems} == {"unreadable or corrupt image", "file not found"}


def _args(tmp: Path, **kw):
    from lib.train.args import SFTArgs

    base = dict(model_name="embedded/tiny-gemma3", input_data=str(EXAMPLE), val_ratio=0.0, output_dir=str(tmp),
                max_steps=3, per_device_train_batch_size=2, gradient_accumulation_steps=1, eval_steps=10,
                save_steps=10, learning_rate=1e-3, max_seq_length=512, seed=1, finetune="full")
    base.update(kw)
    return SFTArgs(**base)


def test_vision_learning_rate_gets_its_own_parameter_groups(tmp_path):
    from lib.train import build_trainer
    from lib.train.model import VISION_PREFIXES

    trainer = build_trainer(_args(tmp_path, vision_learning_rate=5e-3), printer=lambda *a: None)
    opt = trainer.create_optimizer()
    by_lr: dict[float, set] = {}
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    for g in opt.param_groups:
        for p in g["params"]:
            by_lr.setdefault(g["lr"], set()).add(names[id(p)])
    assert set(by_lr) == {1e-3, 5e-3}
    assert all(any(v in n for v in VISION_PREFIXES + ("multi_modal_projector",)) for n in by_lr[5e-3])
    assert not any(any(v in n for v in VISION_PREFIXES) for n in by_lr[1e-3])
    trainable = sum(1 for p in trainer.model.parameters() if p.requires_grad)
    assert sum(len(v) for v in by_lr.values()) == trainable


def test_time_limit_stops_training_and_keeps_a_checkpoint(tmp_path):
    from lib.train import run_training

    meta = run_training(_args(tmp_path, max_steps=50, max_train_seconds=0.001, finetune="lora"),
                        printer=lambda *a: None)
    assert meta["global_step"] == 1
    assert (tmp_path / "checkpoint-1").is_dir() and (tmp_path / "lora" / "adapter_config.json").is_file()


def test_time_limit_evaluates_the_last_step_so_best_model_selection_sees_it(tmp_path):
    from lib.train import run_training

    meta = run_training(_args(tmp_path, max_steps=50, max_train_seconds=0.001, finetune="lora", val_ratio=0.25,
                              eval_steps=10, save_steps=10, eval_cer_samples=2, final_eval_samples=2,
                              eval_max_new_tokens=4), printer=lambda *a: None)
    assert meta["global_step"] == 1
    assert [e["step"] for e in meta["log_history"] if "eval_loss" in e][0] == 1
    assert meta["best_checkpoint"] is not None and meta["best_checkpoint"].endswith("checkpoint-1")


def test_learning_curve_plot(tmp_path):
    import core.benchmarks.learning_run as lr

    hist = [{"step": s, "loss": 5.0 / s} for s in range(1, 40)] + [{"step": s, "eval_cer": 1.0 / s} for s in (10, 20)]
    lr.plot_curve(hist, tmp_path / "c.png", "test")
    assert (tmp_path / "c.png").stat().st_size > 5000


def test_export_is_bf16_shards_that_load_back(tmp_path):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import core.benchmarks.learning_run as lr
    from lib.models.embedded import resolve_model_path

    src = Path(resolve_model_path("embedded/tiny-gemma3"))
    mb = lr.export_bf16(src, tmp_path / "export")
    shards = list((tmp_path / "export").glob("*.safetensors"))
    assert shards and all(p.stat().st_size <= 15_000_000 for p in shards) and mb < 64
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "export")
    assert model.dtype == torch.bfloat16
    assert AutoProcessor.from_pretrained(tmp_path / "export").image_processor.size["height"] == 96


def test_bad_train_args_is_a_clear_error_before_any_work(tmp_path):
    import core.benchmarks.learning_run as lr

    for bad, says in (("{learning_rate: 1}", "is not JSON"), ("[1, 2]", "must be a JSON object")):
        args = lr.LearningRunArgs(work_dir=str(tmp_path / "w"), train_args=bad)
        with pytest.raises(SystemExit, match=says):
            lr.main(args)
        assert not (tmp_path / "w" / "data").exists()  # refused before rendering anything


def test_learning_probe_trains_and_scores_held_out_lines(tmp_path):
    import core.benchmarks.learning_probe as probe
    from lib.config import parse_args

    args = parse_args(probe.ProbeArgs, ["--name", "t", "--image_size", "64", "--mm_tokens", "16", "--layers", "1",
                                        "--batch_size", "4", "--workers", "0", "--max_steps", "3", "--n_test", "4",
                                        "--aligned_share", "0.3", "--page_share", "0.3", "--out_dir", str(tmp_path)])
    out = probe.main(args)
    saved = json.loads((tmp_path / "probe_t.json").read_text(encoding="utf-8"))
    assert saved["curve"][-1]["step"] == 3 and 0 < saved["curve"][-1]["cer"]
    assert saved["hanzi"] > 300 and out["uniform_nats"] == round(math.log(saved["hanzi"]), 3)
    with pytest.raises(ValueError, match="square"):
        probe.ProbeArgs(mm_tokens=15)


def test_export_parts_round_trip_and_init_model_errors(tmp_path):
    from transformers import AutoModelForImageTextToText

    import core.benchmarks.learning_run as lr
    from lib.models.embedded import resolve_model_path

    lr.export_bf16(Path(resolve_model_path("embedded/tiny-gemma3")), tmp_path / "export")
    parts = lr.pack_parts(tmp_path / "export", tmp_path / "out" / "reader.tar", part_bytes=400_000)
    assert len(parts) >= 3 and all(p.stat().st_size <= 400_000 for p in parts)
    assert [p.name for p in parts][:2] == ["reader.tar.part-000", "reader.tar.part-001"]
    assert lr._init_model_source(str(tmp_path / "out" / "reader.tar"))[0] == "parts"
    model_dir = lr.unpack_parts(tmp_path / "out" / "reader.tar", tmp_path / "init")
    a = AutoModelForImageTextToText.from_pretrained(tmp_path / "export")
    b = AutoModelForImageTextToText.from_pretrained(model_dir)
    assert all(torch_equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))

    parts[1].unlink()  # a part lost on the way: named, not a tar error deep inside
    with pytest.raises(SystemExit, match="part-000, -001"):
        lr.unpack_parts(tmp_path / "out" / "reader.tar", tmp_path / "init2")
    args = lr.LearningRunArgs(work_dir=str(tmp_path / "w"), init_model=str(tmp_path / "nothing"))
    with pytest.raises(SystemExit, match="neither a model folder nor nothing.part-000"):
        lr.main(args)
    assert not (tmp_path / "w" / "data").exists()


def torch_equal(x, y) -> bool:
    import torch

    return bool(torch.equal(x, y))


def test_test_only_needs_a_model(tmp_path):
    import core.benchmarks.learning_run as lr

    with pytest.raises(SystemExit, match="--test_only scores an existing model"):
        lr.main(lr.LearningRunArgs(work_dir=str(tmp_path / "w"), test_only=True))
    assert not (tmp_path / "w").exists()


def test_test_only_scores_a_model_on_the_runs_test_sets(tmp_path):
    import core.benchmarks.learning_run as lr
    from lib.models.embedded import resolve_model_path

    model = tmp_path / "m"
    lr.export_bf16(Path(resolve_model_path("embedded/tiny-gemma3")), model)
    (model / "ocr_prompt.yml").write_text("prompt_text: 執行 OCR 任務：\nimage_position: image_first\n", encoding="utf-8")
    args = lr.LearningRunArgs(work_dir=str(tmp_path / "w"), test_only=True, init_model=str(model), n_train=50,
                              n_val=4, n_test=3, n_docs=60, workers=1, n_bootstrap=10, max_new_tokens=4,
                              eval_batch_size=3)
    out = lr.main(args)
    assert set(out["tests"]) == {"test_content", "test_random"}
    assert all(r["n"] == 3 and r["cer"] is not None for r in out["tests"].values())
    assert out["data"]["counts"] == {"test_content": 3, "test_random": 3}  # nothing else was rendered
    assert not list((tmp_path / "w" / "data" / "images").glob("train_*"))
    assert json.loads((tmp_path / "w" / "learning_run_test.json").read_text(encoding="utf-8"))["tests"]


def test_random_strings_can_draw_every_character_class():
    from lib.synth.lines import LineTask, make_strings

    charset = "公文函主旨說明0123456789ABC，。"
    only_hanzi = make_strings(random.Random(0), LineTask(random_share=1.0), 300, [], charset)
    every = make_strings(random.Random(0), LineTask(random_share=1.0, random_chars="all"), 300, [], charset)
    assert set("".join(only_hanzi)) <= set("公文函主旨說明")
    assert set("".join(every)) == set(charset)  # digits, Latin and punctuation too
    with pytest.raises(ValueError, match="random_chars"):
        make_strings(random.Random(0), LineTask(random_chars="digits"), 3, [], charset)
