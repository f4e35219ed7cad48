"""lib.generation: batched greedy decoding equals one-at-a-time decoding (left padding, length-sorted batches),
results come back in input order, decoding stops at the end-of-turn token, a bad image fails only its sample."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from lib.generation import decode_new_tokens, generate_batch
from lib.prompt import load_prompt


@pytest.fixture(scope="module")
def qwen():
    from lib.modeling import load_model_and_processor

    return load_model_and_processor("embedded/tiny-qwen2.5-vl", dtype="float32")


def _images(tmp_path: Path) -> list[str]:
    paths = []
    for i, (w, h) in enumerate([(112, 56), (56, 56), (112, 112), (84, 56), (56, 112)]):
        img = Image.new("RGB", (w, h), (255 - 40 * i, 30 * i, 200))
        p = tmp_path / f"im{i}.png"
        img.save(p)
        paths.append(str(p))
    return paths


def test_batched_equals_single_and_keeps_order(qwen, tmp_path):
    model, processor = qwen
    images = _images(tmp_path)
    prompt = load_prompt()
    single = [generate_batch(model, processor, prompt, [im], max_new_tokens=6, batch_size=1)[0] for im in images]
    batched = generate_batch(model, processor, prompt, images, max_new_tokens=6, batch_size=3)
    assert [o.text for o in batched] == [o.text for o in single]
    assert [o.n_tokens for o in batched] == [o.n_tokens for o in single]
    assert all(o.n_tokens <= 6 for o in batched)
    assert processor.tokenizer.padding_side == "left"


def test_bad_image_fails_only_its_sample(qwen, tmp_path):
    model, processor = qwen
    images = _images(tmp_path)[:2]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    outs = generate_batch(model, processor, load_prompt(), [images[0], str(bad), images[1]], max_new_tokens=3,
                          batch_size=4)
    assert outs[1].error and "cannot open image" in outs[1].error and outs[1].text == ""
    assert outs[0].error is None and outs[2].error is None


def test_decoding_stops_at_end_of_turn(qwen):
    _, processor = qwen
    tok = processor.tokenizer
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    pad = tok.pad_token_id
    ids = tok("公文", add_special_tokens=False)["input_ids"] + [eot] + tok("多餘", add_special_tokens=False)["input_ids"]
    text, n, stopped = decode_new_tokens(tok, ids, [eot], pad)
    assert (text, n, stopped) == ("公文", 3, True)
    text, n, stopped = decode_new_tokens(tok, tok("公文", add_special_tokens=False)["input_ids"] + [pad, pad], [eot], pad)
    assert (text, n, stopped) == ("公文", 2, False)
