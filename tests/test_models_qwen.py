"""Not only Gemma: the embedded tiny Qwen2.5-VL (dynamic resolution, 3-D rotary positions, `<|im_end|>`,
`visual`/`merger` modules) goes through the same label mask -> train -> merge -> reload path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib.train.args import SFTArgs

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "data" / "example.json"


@pytest.fixture(scope="module")
def qwen():
    from lib.modeling import load_model_and_processor

    return load_model_and_processor("embedded/tiny-qwen2.5-vl")


def test_qwen_labels_end_with_im_end_and_skip_image_tokens(qwen):
    from lib.data import load_samples
    from lib.prompt import load_prompt
    from lib.train.collator import IGNORE_INDEX, OCRCollator, measure_samples

    model, processor = qwen
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    tok = processor.tokenizer
    samples = load_samples(EXAMPLE)[:3]
    collator = OCRCollator(processor, load_prompt())
    batch = collator(samples)
    pad_id = tok.convert_tokens_to_ids("<|image_pad|>")
    for row, s in enumerate(samples):
        labels = batch["labels"][row].tolist()
        kept = [t for t in labels if t != IGNORE_INDEX]
        assert tok.convert_ids_to_tokens(kept) == list(s.text) + ["<|im_end|>"]
        ids = batch["input_ids"][row].tolist()
        assert all(labels[i] == IGNORE_INDEX for i, t in enumerate(ids) if t == pad_id)
    # min/max pixels bound the image tokens: a 96x96 image -> (96/14 rounded) patches merged 2x2
    lengths = measure_samples(collator, samples)
    ip = processor.image_processor
    max_pixels = getattr(ip, "max_pixels", None) or ip.size["longest_edge"]
    assert all(0 < ln.n_image_tokens <= max_pixels // (28 * 28) for ln in lengths)


def test_qwen_lora_targets_language_only_by_default(qwen):
    from lib.train.model import lora_target_names

    model, _ = qwen
    names = lora_target_names(model, language=True, vision=False, suffixes=["q_proj", "v_proj"])
    assert names and all("visual" not in n for n in names)
    vision = lora_target_names(model, language=False, vision=True, suffixes=[])
    assert vision and all("visual" in n and "merger" not in n for n in vision)


def test_qwen_train_merge_reload(tmp_path):
    from lib.generation import generate_batch
    from lib.merge import merge_adapter, verify_merge
    from lib.modeling import load_model_and_processor
    from lib.prompt import load_prompt
    from lib.train import run_training

    args = SFTArgs(model_name="embedded/tiny-qwen2.5-vl", input_data=str(EXAMPLE), val_ratio=0.25,
                   output_dir=str(tmp_path / "run"), load_in_4bit=False, max_steps=3, per_device_train_batch_size=4,
                   gradient_accumulation_steps=1, learning_rate=5e-3, lr_scheduler_type="constant", eval_steps=3,
                   save_steps=3, eval_max_new_tokens=6, finetune_vision_layers=True, seed=3)
    meta = run_training(args, printer=lambda *a: None)
    adapter = tmp_path / "run" / "lora"
    assert json.loads((adapter / "metadata.json").read_text())["base_model"] == "embedded/tiny-qwen2.5-vl"
    assert any("eval_cer" in h for h in meta["log_history"])
    merged = tmp_path / "merged"
    merge_adapter(str(adapter), str(merged), dtype="float32", printer=lambda *a: None)
    assert json.loads((merged / "config.json").read_text())["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    images = [str(p) for p in sorted((ROOT / "data" / "images").glob("*.png"))[:3]]
    report = verify_merge(str(adapter), str(merged), images, dtype="float32", max_new_tokens=6,
                          printer=lambda *a: None)
    assert report.ok, report.messages
    m, p = load_model_and_processor(str(merged), dtype="float32")
    outs = generate_batch(m, p, load_prompt(adapter / "ocr_prompt.yml"), images, max_new_tokens=6, batch_size=2)
    assert len(outs) == 3 and all(o.error is None for o in outs)
