"""GPU-only: QLoRA (4-bit language model, vision tower + projector unquantized) trains, and its adapter merged into
a bf16 base stays within the stated QLoRA tolerance of the adapter run on the 4-bit base. Skipped without CUDA."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "data" / "example.json"


def test_qlora_keeps_vision_unquantized_and_merges_into_bf16(tmp_path):
    pytest.importorskip("bitsandbytes")
    from lib.merge import merge_adapter, verify_merge
    from lib.modeling import load_model_and_processor
    from lib.train.args import SFTArgs
    from lib.train import run_training

    model, _ = load_model_and_processor("embedded/tiny-gemma3", load_in_4bit=True)
    kinds = {n: type(m).__name__ for n, m in model.named_modules()}
    assert any(k == "Linear4bit" for n, k in kinds.items() if "language_model" in n)
    assert not any(k == "Linear4bit" for n, k in kinds.items() if "vision_tower" in n or "projector" in n)
    del model
    args = SFTArgs(model_name="embedded/tiny-gemma3", input_data=str(EXAMPLE), val_ratio=0.25,
                   output_dir=str(tmp_path / "run"), load_in_4bit=True, max_steps=4, per_device_train_batch_size=4,
                   gradient_accumulation_steps=1, learning_rate=5e-3, eval_steps=4, save_steps=4,
                   eval_max_new_tokens=6)
    meta = run_training(args, printer=lambda *a: None)
    assert meta["load_in_4bit"] and meta["peak_memory"]["gpu_peak_allocated_gb"] > 0
    adapter = tmp_path / "run" / "lora"
    merged = tmp_path / "merged"
    merge_adapter(str(adapter), str(merged), dtype="bfloat16", printer=lambda *a: None)
    images = [str(p) for p in sorted((ROOT / "data" / "images").glob("*.png"))[:3]]
    report = verify_merge(str(adapter), str(merged), images, dtype="bfloat16", max_new_tokens=6,
                          printer=lambda *a: None)
    assert report.qlora and report.tolerance == 0.5
    assert report.max_logit_diff_merged_vs_adapter <= report.tolerance
