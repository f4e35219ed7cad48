"""Train -> merge -> reload: the merged model (full VLM class, processor, prompt) gives the adapter's greedy output,
differs from the base, and the merge script refuses what it must refuse."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

from lib.train.args import SFTArgs

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "data" / "example.json"


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    from lib.train import run_training

    out = tmp_path_factory.mktemp("merge_run")
    args = SFTArgs(model_name="embedded/tiny-gemma3", input_data=str(EXAMPLE), val_ratio=0.0, output_dir=str(out),
                   load_in_4bit=False, max_steps=3, per_device_train_batch_size=4, gradient_accumulation_steps=1,
                   learning_rate=5e-3, lr_scheduler_type="constant", seed=2)
    run_training(args, printer=lambda *a: None)
    return out / "lora"


def test_merge_and_verify_via_the_script(adapter, tmp_path, monkeypatch):
    merged = tmp_path / "merged"
    argv = ["gemma_adapter_merge.py", "--lora_dir", str(adapter), "--output_dir", str(merged), "--dtype", "float32",
            "--verify", "--verify_data", str(EXAMPLE), "--verify_samples", "3", "--max_new_tokens", "8"]
    monkeypatch.setattr(sys, "argv", argv)
    try:
        runpy.run_path(str(ROOT / "core" / "gemma_adapter_merge.py"), run_name="__main__")
    except SystemExit as exc:  # the script exits 1 when verification fails
        assert exc.code in (None, 0), "merge --verify failed"
    cfg = json.loads((merged / "config.json").read_text())
    assert cfg["architectures"] == ["Gemma3ForConditionalGeneration"]
    for name in ("model.safetensors", "tokenizer.json", "ocr_prompt.yml", "training_config.json",
                 "training_metadata.json", "merge_info.json"):
        assert (merged / name).is_file(), name
    assert not (merged / "adapter_config.json").exists()
    info = json.loads((merged / "merge_info.json").read_text())
    v = info["verify"]
    assert v["ok"] and v["identical_text"] and v["max_logit_diff_merged_vs_adapter"] < 1e-3
    assert v["merged_differs_from_base"] and v["max_logit_diff_merged_vs_base"] > 1e-2
    assert info["disk"]["checked_path"] == str(tmp_path)  # nearest existing parent of the output folder


def test_merged_reload_gives_adapter_greedy_text(adapter, tmp_path):
    from lib.data import load_samples
    from lib.generation import generate_batch
    from lib.merge import merge_adapter
    from lib.modeling import load_model_and_processor
    from lib.prompt import load_prompt

    merged = tmp_path / "m"
    merge_adapter(str(adapter), str(merged), dtype="float32", printer=lambda *a: None)
    images = [s.image_path for s in load_samples(EXAMPLE)]
    prompt = load_prompt(adapter / "ocr_prompt.yml")
    a_model, a_proc = load_model_and_processor(str(adapter), dtype="float32")  # adapter folder -> base + adapter
    m_model, m_proc = load_model_and_processor(str(merged), dtype="float32")
    b_model, b_proc = load_model_and_processor("embedded/tiny-gemma3", dtype="float32")
    a = [o.text for o in generate_batch(a_model, a_proc, prompt, images, max_new_tokens=8, batch_size=3)]
    m = [o.text for o in generate_batch(m_model, m_proc, prompt, images, max_new_tokens=8, batch_size=3)]
    b = [o.text for o in generate_batch(b_model, b_proc, prompt, images, max_new_tokens=8, batch_size=3)]
    assert a == m
    assert a != b, "the trained adapter must change the output"


def test_merge_refuses_4bit_and_reports_disk_space(adapter, tmp_path):
    from lib.merge import MergeError, check_disk_space, merge_adapter

    with pytest.raises(MergeError, match="4-bit"):
        merge_adapter(str(adapter), str(tmp_path / "x"), dtype="4bit")
    with pytest.raises(MergeError, match="not enough disk space"):
        check_disk_space(tmp_path / "deep" / "new", required_bytes=1 << 60)
    assert check_disk_space(tmp_path / "deep" / "new", required_bytes=1)["checked_path"] == str(tmp_path)
