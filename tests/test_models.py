"""The embedded tiny models: built from config on first use, loaded through the ordinary `from_pretrained` path,
with Gemma's special tokens, a char-level tokenizer and a chat template that marks the answer for training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib.models.embedded import EMBEDDED_MODELS, resolve_model_path
from lib.models.tokenizer import character_vocabulary


@pytest.fixture(scope="module")
def gemma():
    from lib.modeling import load_model_and_processor

    return load_model_and_processor("embedded/tiny-gemma3")


def test_resolve_passes_other_names_through():
    assert resolve_model_path("google/gemma-3-12b-it") == "google/gemma-3-12b-it"
    assert resolve_model_path("/some/local/path") == "/some/local/path"
    with pytest.raises(ValueError, match="available"):
        resolve_model_path("embedded/nope")


def test_embedded_gemma_is_a_real_checkpoint_folder():
    path = Path(resolve_model_path("embedded/tiny-gemma3"))
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["architectures"] == ["Gemma3ForConditionalGeneration"]
    # one image token per patch: the projector does not pool (kernel 1), so glyphs are not blurred together
    spec = EMBEDDED_MODELS["embedded/tiny-gemma3"]
    assert cfg["mm_tokens_per_image"] == (spec["image_size"] // spec["patch_size"]) ** 2
    assert (path / "chat_template.jinja").is_file() or "chat_template" in json.loads(
        (path / "processor_config.json").read_text())
    # second call reuses the folder
    assert resolve_model_path("embedded/tiny-gemma3") == str(path)


def test_gemma_tokenizer_special_tokens_and_one_token_per_hanzi(gemma):
    _, processor = gemma
    tok = processor.tokenizer
    for t in ["<bos>", "<eos>", "<pad>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>",
              "<image_soft_token>"]:
        ids = tok.convert_tokens_to_ids(t)
        assert ids is not None and ids != tok.unk_token_id, t
        assert tok.decode([ids]) == t
    text = "臺灣省政府公報第一二三號"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)
    assert tok.decode(ids) == text
    # characters outside the vocabulary still round-trip through byte fallback
    rare = "𠀋"  # CJK Extension B
    assert rare not in character_vocabulary()
    assert tok.decode(tok(rare, add_special_tokens=False)["input_ids"]) == rare


def test_chat_template_marks_answer_and_end_of_turn(gemma):
    from PIL import Image

    from lib.prompt import build_messages, load_prompt

    _, processor = gemma
    msgs = build_messages(load_prompt(), Image.new("RGB", (96, 96), "white"), answer="公文")
    out = processor.apply_chat_template(msgs, tokenize=True, return_dict=True, return_tensors="pt",
                                        return_assistant_tokens_mask=True)
    ids = out["input_ids"][0].tolist()
    mask = out["assistant_masks"][0].tolist()
    marked = processor.tokenizer.convert_ids_to_tokens([i for i, m in zip(ids, mask) if m])
    assert marked == ["公", "文", "<end_of_turn>"]
    n_img = ids.count(processor.tokenizer.convert_tokens_to_ids("<image_soft_token>"))
    assert n_img == processor.image_seq_length == 16


def test_forward_and_greedy_generation_runs(gemma):
    import torch
    from PIL import Image

    from lib.generation import generate_batch
    from lib.prompt import load_prompt

    model, processor = gemma
    images = [Image.new("RGB", (96, 96), c) for c in ("white", "black", "gray")]
    outs = generate_batch(model, processor, load_prompt(), images, max_new_tokens=5, batch_size=2)
    assert len(outs) == 3 and all(o.n_tokens <= 5 and o.error is None for o in outs)
    assert torch.isfinite(next(model.parameters())).all()
