"""Turn OCR samples into model inputs with labels on the answer only.

Messages come from `lib.prompt.build_messages` (the same function evaluation uses). The chat template is rendered
twice per sample - the prompt alone (with the generation prompt) and prompt + answer - and the labels are exactly
the answer's tokens followed by the chat format's end-of-turn token (`<end_of_turn>` for Gemma, `<|im_end|>` for
Qwen); image tokens, prompt tokens, padding and whatever the template puts after the end-of-turn are -100.
This works with any chat template (it needs no `{% generation %}` markers, which real checkpoints lack).

Batches are LEFT-padded, so every row ends at the same position and the loss needs logits only for the last
`n_label_positions + 1` positions (`OCRTrainer` passes `logits_to_keep`), instead of a (batch x sequence x vocab)
tensor - 262k-entry vocabularies make that the largest tensor of a step.

Nothing is truncated: `measure_samples` counts each sample's tokens (image tokens included) before training, and
samples longer than `max_seq_length` are reported and skipped.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Sequence

from lib.data import Sample
from lib.prompt import Prompt, build_messages
from lib.reader.preprocess import fold_for_training, reader_input_of

__all__ = ["OCRCollator", "LabelError", "measure_samples", "SampleLength", "IGNORE_INDEX"]

log = logging.getLogger(__name__)
IGNORE_INDEX = -100


class LabelError(ValueError):
    """The chat template does not render prompt + answer as prompt followed by the answer."""


@dataclasses.dataclass
class SampleLength:
    index: int
    n_tokens: int
    n_image_tokens: int
    n_label_tokens: int
    pixels: tuple[int, int]  # (width, height) of the image the model sees, after the processor's resize


def _open(sample_or_image: Any):
    from lib.generation import open_image

    return open_image(sample_or_image.image_path if isinstance(sample_or_image, Sample) else sample_or_image)


class OCRCollator:
    """Callable collator for `transformers.Trainer`: a list of `Sample` -> a left-padded batch with labels."""

    def __init__(self, processor, prompt: Prompt, end_of_turn_id: int | None = None, pad_to_multiple_of: int = 0,
                 padding_side: str = "left"):
        from lib.modeling import end_of_turn_ids

        self.processor = processor
        self.pad_to_multiple_of = pad_to_multiple_of or None
        # "left" for the logits_to_keep loss; the chunked loss uses "right": a left-padded row's pad queries see no
        # key at all (fully masked), which GPU attention kernels may turn into NaN in the backward pass
        self.padding_side = padding_side
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.prompt = prompt
        self.end_of_turn_id = end_of_turn_id if end_of_turn_id is not None else end_of_turn_ids(processor)[0]
        self.image_token_ids = set(getattr(processor, "image_token_ids", None) or [])
        tok_image = getattr(self.tokenizer, "image_token_id", None)
        if tok_image is not None:
            self.image_token_ids.add(tok_image)

    # -- text ------------------------------------------------------------------------------------------------------
    def texts(self, answer: str) -> tuple[str, str]:
        """(prompt text, prompt + answer text) as the chat template renders them (image placeholders unexpanded)."""
        prompt_only = self.processor.apply_chat_template(build_messages(self.prompt, None), tokenize=False,
                                                         add_generation_prompt=True)
        full = self.processor.apply_chat_template(build_messages(self.prompt, None, answer=answer), tokenize=False)
        if not full.startswith(prompt_only):
            raise LabelError("the chat template renders the prompt differently with and without the answer, so the "
                             f"answer cannot be located.\nprompt: {prompt_only!r}\nfull:   {full!r}")
        return prompt_only, full

    def answer_ids(self, answer: str) -> list[int]:
        """The label token ids of an answer: its tokens through the first end-of-turn token."""
        return self._answer_ids(*self.texts(answer))

    def _answer_ids(self, prompt_only: str, full: str) -> list[int]:
        tail = self.tokenizer(full[len(prompt_only):], add_special_tokens=False)["input_ids"]
        if self.end_of_turn_id not in tail:
            raise LabelError(f"the chat template puts no end-of-turn token (id {self.end_of_turn_id}) after the "
                             f"answer: {full[len(prompt_only):]!r}")
        return tail[:tail.index(self.end_of_turn_id) + 1]

    # -- batches ---------------------------------------------------------------------------------------------------
    def __call__(self, samples: Sequence[Sample]) -> dict[str, Any]:
        import torch

        images = [_open(s) for s in samples]
        spec = reader_input_of(self.processor)
        if spec is not None:  # a folded-line reader reads its line crops folded into its square
            images = [fold_for_training(im, spec) for im in images]
        fulls, label_ids = [], []
        for s in samples:
            prompt_only, full = self.texts(s.text)
            fulls.append(full)
            label_ids.append(self._answer_ids(prompt_only, full))
        old_side = self.tokenizer.padding_side
        self.tokenizer.padding_side = self.padding_side
        try:
            batch = self.processor(text=fulls, images=[[im] for im in images], padding=True, return_tensors="pt",
                                   add_special_tokens=False, pad_to_multiple_of=self.pad_to_multiple_of)
        finally:
            self.tokenizer.padding_side = old_side
        input_ids = batch["input_ids"]
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        for row, ans in enumerate(label_ids):
            ids = input_ids[row].tolist()
            end = self._label_end(ids, ans, samples[row])
            labels[row, end - len(ans):end] = torch.tensor(ans)
        batch["labels"] = labels
        # label positions (flat, shifted) computed here on the host, so the chunked loss never waits for the GPU
        batch["loss_index"] = (labels[:, 1:].reshape(-1) != IGNORE_INDEX).nonzero().squeeze(1)
        return dict(batch)

    def _label_end(self, ids: list[int], ans: list[int], sample: Sample) -> int:
        """Index one past the answer's end-of-turn token in a row (searched from the right)."""
        n = len(ans)
        for end in range(len(ids), n - 1, -1):
            if ids[end - n:end] == ans:
                return end
        raise LabelError(f"row {sample.index}: the answer's tokens were not found in the tokenized sequence (the "
                         "tokenizer merges the answer with the text around it); report this model and template")


def _fixed_image_tokens(processor) -> bool:
    """True when every image becomes the same number of tokens at the same resolution (Gemma 3 without
    pan-and-scan), so one processor call tells the image part of every sample."""
    ip = getattr(processor, "image_processor", None)
    return (getattr(processor, "image_seq_length", None) is not None and ip is not None
            and not getattr(ip, "do_pan_and_scan", False))


def _measure_one(collator: OCRCollator, s: Sample) -> SampleLength:
    image = _open(s)
    _, full = collator.texts(s.text)
    enc = collator.processor(text=[full], images=[[image]], return_tensors="pt", add_special_tokens=False)
    ids = enc["input_ids"][0].tolist()
    n_img = sum(1 for t in ids if t in collator.image_token_ids)
    pv = enc.get("pixel_values")
    if "image_grid_thw" in enc:  # Qwen-style: (t, h, w) patches
        t, h, w = enc["image_grid_thw"][0].tolist()
        patch = getattr(collator.processor.image_processor, "patch_size", 14)
        pixels = (int(w * patch), int(h * patch))
    elif pv is not None and pv.dim() == 4:
        pixels = (int(pv.shape[-1]), int(pv.shape[-2]))
    else:
        pixels = image.size
    return SampleLength(index=s.index, n_tokens=len(ids), n_image_tokens=n_img,
                        n_label_tokens=len(collator.answer_ids(s.text)), pixels=pixels)


def answer_lengths(collator: OCRCollator, answers: Sequence[str]) -> list[int]:
    """len(collator.answer_ids(a)) for every answer, with one batched tokenizer call. The chat template is rendered
    once around a sentinel answer and reused when that reproduces the real rendering on a spread of answers
    (otherwise each answer is rendered)."""
    sentinel = "\u2063SENTINEL\u2063"
    prompt_only, full_s = collator.texts(sentinel)
    at = full_s.index(sentinel)
    pre, post = full_s[:at], full_s[at + len(sentinel):]

    def fast(a: str) -> str:
        return pre + a.strip() + post

    render = fast
    for a in list(answers[:: max(1, len(answers) // 16)])[:16] + list(answers[-1:]):
        if fast(a) != collator.texts(a)[1]:
            render = lambda a: collator.texts(a)[1]  # noqa: E731 - template transforms answers: render each
            break
    tails = [render(a)[len(prompt_only):] for a in answers]
    out = []
    for a, ids in zip(answers, collator.tokenizer(tails, add_special_tokens=False)["input_ids"]):
        if collator.end_of_turn_id not in ids:
            raise LabelError(f"the chat template puts no end-of-turn token (id {collator.end_of_turn_id}) after the "
                             f"answer {a[:60]!r}")
        out.append(ids.index(collator.end_of_turn_id) + 1)
    return out


def measure_samples(collator: OCRCollator, samples: Sequence[Sample]) -> list[SampleLength]:
    """Tokens per sample (image tokens included) and the pixels the model sees. One processor call per sample, or,
    for processors with a fixed image size and token count (Gemma 3 without pan-and-scan), one call for the first
    sample and a batched tokenizer call for the answers (checked against the full processor on a few samples)."""
    samples = list(samples)
    if len(samples) > 32 and _fixed_image_tokens(collator.processor):
        first = _measure_one(collator, samples[0])
        base = first.n_tokens - first.n_label_tokens  # prompt, image tokens and what follows the answer
        lens = answer_lengths(collator, [s.text for s in samples])
        out = [SampleLength(index=s.index, n_tokens=base + n, n_image_tokens=first.n_image_tokens, n_label_tokens=n,
                            pixels=first.pixels) for s, n in zip(samples, lens)]
        probe = list(range(1, len(samples), max(1, len(samples) // 4)))[:4]
        if all(_measure_one(collator, samples[i]) == out[i] for i in probe):
            return out
    return [_measure_one(collator, s) for s in samples]
