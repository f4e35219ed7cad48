"""Batched greedy generation for OCR with any image-text-to-text model: the one decoding path used by in-process
evaluation (`core/evaluate.py --mode hf`), the training-time CER callback and merge verification.

Greedy, KV-cached, left-padded batches sorted by estimated prompt length (so a batch wastes little padding),
results returned in input order, stopping at the chat format's end-of-turn token (Gemma's `<end_of_turn>`,
Qwen's `<|im_end|>`) or eos. Messages come from `lib.prompt.build_messages`, exactly as in training.
An image that cannot be opened gives that sample an `error`, not a crash of the batch.

Not for: served backends (vLLM / OpenAI-compatible servers live in lib/evaluation/).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Sequence

__all__ = ["GenOut", "generate_batch", "open_image", "decode_new_tokens"]


@dataclasses.dataclass
class GenOut:
    text: str  # decoded answer, special tokens removed, stripped
    n_tokens: int  # new tokens generated, end-of-turn token included when it was reached
    error: str | None = None  # why there is no text (unreadable image, ...)
    latency_s: float = 0.0  # this sample's share of its batch's wall time
    stopped: bool = True  # reached an end-of-turn/eos token (False: cut by max_new_tokens)


def open_image(image: Any):
    """A PIL RGB image from a PIL image, a path, or an http(s)/data URL."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image
    src = str(image)
    if src.startswith("data:"):
        import base64
        import io

        return Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")
    if src.startswith(("http://", "https://")):
        import io

        import requests

        resp = requests.get(src, timeout=30)
        resp.raise_for_status()
        return Image.open(io.BytesIO(resp.content)).convert("RGB")
    with Image.open(src) as im:
        return im.convert("RGB")


def _size_key(image: Any) -> int:
    """Pixel count, a proxy for the number of image tokens (read from the header only, without decoding)."""
    try:
        from PIL import Image

        if isinstance(image, Image.Image):
            return image.width * image.height
        if isinstance(image, (str, os.PathLike)) and os.path.isfile(image):
            with Image.open(image) as im:
                return im.width * im.height
    except Exception:  # unreadable: it will get an error when opened
        return 0
    return 0


def decode_new_tokens(tokenizer, new_ids: Sequence[int], stop_ids: Sequence[int], pad_id: int | None) -> tuple[str, int, bool]:
    """Cut at the first stop token (kept in the count), drop padding, decode without special tokens."""
    ids = list(new_ids)
    stopped = False
    for i, t in enumerate(ids):
        if t in stop_ids:
            ids, stopped, n = ids[:i], True, i + 1
            break
    else:
        if pad_id is not None:
            ids = [t for t in ids if t != pad_id]
        n = len(ids)
    return tokenizer.decode(ids, skip_special_tokens=True).strip(), n, stopped


def generate_batch(model, processor, prompt, images: Sequence[Any], *, max_new_tokens: int = 512, batch_size: int = 8,
                   progress: Callable[[int], None] | None = None) -> list[GenOut]:
    """Greedy OCR answers for `images` (PIL images, paths or URLs), in input order.

    `prompt` is a `lib.prompt.Prompt`; `progress(n_done)` is called after each batch (e.g. a tqdm update)."""
    import torch

    from lib.modeling import end_of_turn_ids
    from lib.prompt import build_messages

    tok = getattr(processor, "tokenizer", processor)
    old_side = tok.padding_side
    tok.padding_side = "left"
    stop_ids = end_of_turn_ids(processor, model)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else stop_ids[0]
    results: list[GenOut | None] = [None] * len(images)
    order = sorted(range(len(images)), key=lambda i: _size_key(images[i]))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), max(1, batch_size)):
            idx = order[start:start + max(1, batch_size)]
            loaded = []
            for i in idx:
                try:
                    loaded.append((i, open_image(images[i])))
                except Exception as exc:  # corrupt/missing image: this sample only
                    results[i] = GenOut(text="", n_tokens=0, error=f"cannot open image: {type(exc).__name__}: {exc}",
                                        stopped=False)
            if not loaded:
                continue
            t0 = time.perf_counter()
            conversations = [build_messages(prompt, im) for _, im in loaded]
            inputs = processor.apply_chat_template(conversations, add_generation_prompt=True, tokenize=True,
                                                   return_dict=True, processor_kwargs={"padding": True,
                                                                                       "return_tensors": "pt"})
            inputs = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in inputs.items()}
            if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
                inputs["pixel_values"] = inputs["pixel_values"].to(next(model.parameters()).dtype)
            with torch.inference_mode():
                out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                     eos_token_id=stop_ids, pad_token_id=pad_id, use_cache=True,
                                     top_p=None, top_k=None, temperature=None)
            new = out[:, inputs["input_ids"].shape[1]:].tolist()
            dt = (time.perf_counter() - t0) / len(loaded)
            for (i, _), ids in zip(loaded, new):
                text, n, stopped = decode_new_tokens(tok, ids, stop_ids, pad_id)
                results[i] = GenOut(text=text, n_tokens=n, latency_s=dt, stopped=stopped)
            if progress:
                progress(len(idx))
    finally:
        tok.padding_side = old_side
        if was_training:
            model.train()
    return [r if r is not None else GenOut(text="", n_tokens=0, error="not generated") for r in results]
