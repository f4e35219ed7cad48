"""Embedded tiny vision-language models, built from config on first use (no download), then loaded like any checkpoint.

`resolve_model_path("embedded/tiny-gemma3")` builds a random-init `Gemma3ForConditionalGeneration` (SigLIP vision
tower + Gemma 3 text model + projector) with an offline character-level tokenizer, the Gemma chat template (with
`{% generation %}` markers) and a `Gemma3Processor`, saves them into a local folder and returns that folder; every
script then calls `from_pretrained(path)` exactly as for `google/gemma-3-12b-it`. `embedded/tiny-qwen2.5-vl`
does the same for `Qwen2_5_VLForConditionalGeneration`. Any other name or path is returned unchanged.

Why these shapes: the embedded Gemma sees a 96x96 image cut into 4x4 patches of 24 px, and `mm_tokens_per_image`
is 16, so the projector's average pooling has kernel 1 - each image token is one patch, not a blur of several.
The quickstart renders one glyph per patch (lib/quickstart_data.py), so a random-init model can learn to read.

The folder is `$GEMMA_OCR_CACHE/embedded/<name>-<spec hash>` (default `~/.cache/gemma-ocr`); it is written to a
temporary folder and renamed, so concurrent first uses never see half a model. Not for: real checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["EMBEDDED_MODELS", "EMBEDDED_PREFIX", "resolve_model_path", "is_embedded", "cache_dir", "build_embedded"]

EMBEDDED_PREFIX = "embedded/"
SPEC_VERSION = 1

GEMMA_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
                 "<end_of_image>", "<image_soft_token>", "<mask>"]

# Gemma 3's template, with {% generation %} markers around the model's answer and its <end_of_turn>, so
# `apply_chat_template(..., return_assistant_tokens_mask=True)` works. Images become <start_of_image>, which the
# processor expands to <start_of_image> + image_seq_length x <image_soft_token> + <end_of_image>.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['role'] == 'assistant' -%}{% generation %}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for item in message['content'] -%}{%- if item['type'] == 'text' -%}{{ item['text'] | trim }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>' }}{% endgeneration %}{{ '\n' }}"
    "{%- else -%}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>", "<|vision_pad|>"]

QWEN_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' -%}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['role'] == 'assistant' -%}{% generation %}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}{%- if item['type'] == 'text' -%}{{ item['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{%- else -%}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)

# Sizes. Small enough that tests train in seconds on 2 CPU cores; the quickstart trains the same model.
GEMMA_SPEC: dict[str, Any] = {
    "arch": "gemma3",
    "image_size": 96, "patch_size": 24,  # 4x4 patches; mm_tokens_per_image = 16 -> no pooling
    "vision_hidden": 128, "vision_layers": 2, "vision_heads": 4, "vision_intermediate": 256,
    "text_hidden": 128, "text_layers": 2, "text_heads": 4, "text_kv_heads": 2, "head_dim": 32,
    "text_intermediate": 256, "seed": 0,
    # Short contexts: a small RoPE base gives more rotary frequencies that tell nearby positions apart.
    "rope_theta": 100.0,
    # Untied output head, so LoRA runs can train it in full (modules_to_save) without touching the embeddings.
    "tie_word_embeddings": False, "lm_head_std": 0.1,
    # Gemma 3 initialises the projector to zeros: image tokens then carry nothing until it has grown. A random init
    # lets glyph information reach the language model from the first step.
    "projector_std": 0.05,
}
QWEN_SPEC: dict[str, Any] = {
    "arch": "qwen2_5_vl",
    "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
    "min_pixels": 56 * 56, "max_pixels": 112 * 112,
    "vision_hidden": 64, "vision_depth": 2, "vision_heads": 4, "vision_intermediate": 128, "out_hidden": 128,
    "text_hidden": 128, "text_layers": 2, "text_heads": 4, "text_kv_heads": 2, "text_intermediate": 256,
    "seed": 0,
}

# The GPU learning run's model (configs/learning_run/, superseded by the reader below): Gemma 3's architecture at
# ~1% of 4B's width. A 256 px image is 16x16 SigLIP patches of 16 px, each its own image token. ~13 M parameters.
LEARNING_RUN_SPEC: dict[str, Any] = {
    "arch": "gemma3",
    "image_size": 256, "patch_size": 16, "mm_tokens": 256,
    "vision_hidden": 256, "vision_layers": 4, "vision_heads": 4, "vision_intermediate": 1024,
    "text_hidden": 256, "text_layers": 4, "text_heads": 4, "text_kv_heads": 2, "head_dim": 64,
    "text_intermediate": 1024, "seed": 0, "rope_theta": 10000.0,
    "tie_word_embeddings": True, "lm_head_std": 0.02, "projector_std": 0.05,
}

# The reader (lib/reader/, docs/READER.md), before pretraining. Its input is a text line folded into a 256 px
# square (8 rows of 32 px: lib/reader/synth.py); 16 px patches, one image token each, so a 20-30 px glyph spans
# about 2x2 tokens. Vision 6 x 256 (the reading is done there), a 4-layer decoder that only has to spell out what
# the tower saw. 14.6 M parameters: 29 MB in bf16, which leaves room for the glyph atlas in a 64 MiB device call.
READER_SPEC: dict[str, Any] = dict(
    LEARNING_RUN_SPEC, vision_layers=6,
    reader={"input": "folded_line", "row_height": 32, "width": 256, "rows": 8})

EMBEDDED_MODELS: dict[str, dict[str, Any]] = {
    "embedded/tiny-gemma3": GEMMA_SPEC,
    "embedded/gemma3-learning-run": LEARNING_RUN_SPEC,
    "embedded/gemma3-reader-init": READER_SPEC,
    "embedded/tiny-qwen2.5-vl": QWEN_SPEC,
}


# Pretrained models committed to the repository (package data), loadable by name on a fresh machine.
SHIPPED_MODELS: dict[str, Path] = {
    "embedded/gemma3-reader": Path(__file__).resolve().parent / "gemma3-reader",
}


def is_embedded(name_or_path: str | os.PathLike) -> bool:
    return str(name_or_path).startswith(EMBEDDED_PREFIX)


def cache_dir() -> Path:
    root = os.environ.get("GEMMA_OCR_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "gemma-ocr")
    return Path(root) / "embedded"


def _spec_hash(spec: dict[str, Any]) -> str:
    payload = json.dumps({"v": SPEC_VERSION, **spec}, sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:10]


def resolve_model_path(name_or_path: str | os.PathLike) -> str:
    """A path or hub id usable by `from_pretrained`. `embedded/<name>` is built on first use into the cache."""
    name = str(name_or_path)
    if not is_embedded(name):
        return name
    if name in SHIPPED_MODELS:
        folder = SHIPPED_MODELS[name]
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{name}: the shipped weights are missing from {folder} (a partial checkout? "
                                    "they are committed to the repository)")
        return str(folder)
    if name not in EMBEDDED_MODELS:
        known = sorted(set(EMBEDDED_MODELS) | set(SHIPPED_MODELS))
        raise ValueError(f"unknown embedded model {name!r}; available: {', '.join(known)}")
    spec = EMBEDDED_MODELS[name]
    target = cache_dir() / f"{name[len(EMBEDDED_PREFIX):]}-{_spec_hash(spec)}"
    if (target / "config.json").is_file() and (target / "DONE").is_file():
        return str(target)
    build_embedded(name, target)
    return str(target)


def build_embedded(name: str, target: str | os.PathLike) -> Path:
    """Build the embedded model `name` into `target` (atomically: temp folder, then rename)."""
    spec = EMBEDDED_MODELS[name]
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        if spec["arch"] == "gemma3":
            _build_gemma3(spec, tmp)
        elif spec["arch"] == "qwen2_5_vl":
            _build_qwen25vl(spec, tmp)
        else:  # pragma: no cover - spec table is static
            raise ValueError(spec["arch"])
        (tmp / "embedded_spec.json").write_text(json.dumps({"name": name, "spec": spec, "version": SPEC_VERSION},
                                                           indent=2), encoding="utf-8")
        (tmp / "DONE").write_text("ok\n")
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race: its copy is as good as ours
            if not (target / "DONE").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _fast_tokenizer(special: list[str], template: str, **named):
    from transformers import PreTrainedTokenizerFast

    from lib.models.tokenizer import build_char_tokenizer

    tok_obj = build_char_tokenizer(special)
    tok = PreTrainedTokenizerFast(tokenizer_object=tok_obj, chat_template=template, **named)
    return tok


def _build_gemma3(spec: dict[str, Any], out: Path) -> None:
    import torch
    from transformers import (Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil,
                              Gemma3Processor, Gemma3TextConfig, GenerationConfig, SiglipVisionConfig)

    tok = _fast_tokenizer(
        GEMMA_SPECIAL, GEMMA_CHAT_TEMPLATE, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        unk_token="<unk>", padding_side="left",
        extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                              "image_token": "<image_soft_token>", "sot_token": "<start_of_turn>",
                              "eot_token": "<end_of_turn>"})
    ids = {t: tok.convert_tokens_to_ids(t) for t in GEMMA_SPECIAL}
    n_patches = spec.get("mm_tokens") or (spec["image_size"] // spec["patch_size"]) ** 2
    text = Gemma3TextConfig(
        vocab_size=len(tok), hidden_size=spec["text_hidden"], intermediate_size=spec["text_intermediate"],
        num_hidden_layers=spec["text_layers"], num_attention_heads=spec["text_heads"],
        num_key_value_heads=spec["text_kv_heads"], head_dim=spec["head_dim"], query_pre_attn_scalar=spec["head_dim"],
        max_position_embeddings=4096, sliding_window=1024, layer_types=["full_attention"] * spec["text_layers"],
        rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": spec["rope_theta"]},
                         "sliding_attention": {"rope_type": "default", "rope_theta": spec["rope_theta"]}},
        tie_word_embeddings=spec["tie_word_embeddings"],
        pad_token_id=ids["<pad>"], bos_token_id=ids["<bos>"], eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]])
    vision = SiglipVisionConfig(
        hidden_size=spec["vision_hidden"], intermediate_size=spec["vision_intermediate"],
        num_hidden_layers=spec["vision_layers"], num_attention_heads=spec["vision_heads"],
        image_size=spec["image_size"], patch_size=spec["patch_size"], vision_use_head=False)
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=n_patches,
                          boi_token_index=ids["<start_of_image>"], eoi_token_index=ids["<end_of_image>"],
                          image_token_index=ids["<image_soft_token>"],
                          tie_word_embeddings=spec["tie_word_embeddings"])
    config.architectures = ["Gemma3ForConditionalGeneration"]
    torch.manual_seed(spec["seed"])
    model = Gemma3ForConditionalGeneration(config)
    with torch.no_grad():
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0.0, spec["projector_std"])
        if not spec["tie_word_embeddings"]:
            model.lm_head.weight.normal_(0.0, spec["lm_head_std"])
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<bos>"], pad_token_id=ids["<pad>"], eos_token_id=[ids["<end_of_turn>"], ids["<eos>"]],
        do_sample=False)
    model.save_pretrained(out)
    image_processor = Gemma3ImageProcessorPil(
        size={"height": spec["image_size"], "width": spec["image_size"]}, do_pan_and_scan=False,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tok, chat_template=GEMMA_CHAT_TEMPLATE,
                                image_seq_length=n_patches)
    processor.save_pretrained(out)
    if spec.get("reader"):
        (out / "reader_config.json").write_text(json.dumps(spec["reader"], indent=2), encoding="utf-8")


def _build_qwen25vl(spec: dict[str, Any], out: Path) -> None:
    import torch
    from transformers import (GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration,
                              Qwen2_5_VLProcessor)
    from transformers import Qwen2VLImageProcessorPil

    tok = _fast_tokenizer(
        QWEN_SPECIAL, QWEN_CHAT_TEMPLATE, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                              "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"})
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    text_heads = spec["text_heads"]
    head_dim = spec["text_hidden"] // text_heads
    # mrope sections (temporal, height, width) in half-head-dim units; they must sum to head_dim // 2.
    half = head_dim // 2
    sec = [half - 2 * (half // 3), half // 3, half // 3]
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tok), "hidden_size": spec["text_hidden"], "intermediate_size": spec["text_intermediate"],
            "num_hidden_layers": spec["text_layers"], "num_attention_heads": text_heads,
            "num_key_value_heads": spec["text_kv_heads"], "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "mrope_section": sec, "rope_theta": 10000.0},
            "tie_word_embeddings": True, "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": spec["vision_depth"], "hidden_size": spec["vision_hidden"], "num_heads": spec["vision_heads"],
            "intermediate_size": spec["vision_intermediate"], "out_hidden_size": spec["out_hidden"],
            "patch_size": spec["patch_size"], "spatial_merge_size": spec["spatial_merge_size"],
            "temporal_patch_size": spec["temporal_patch_size"], "window_size": 56,
            "fullatt_block_indexes": [spec["vision_depth"] - 1],
        },
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    config.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    torch.manual_seed(spec["seed"])
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(pad_token_id=ids["<|endoftext|>"],
                                               eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]], do_sample=False)
    model.save_pretrained(out)
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=spec["min_pixels"], max_pixels=spec["max_pixels"], patch_size=spec["patch_size"],
        merge_size=spec["spatial_merge_size"], temporal_patch_size=spec["temporal_patch_size"])
    # Qwen's processor also wants a video processor, which needs torchvision (not installed here): save the parts;
    # lib.modeling.load_processor assembles the processor without video support when torchvision is absent.
    tok.save_pretrained(out)
    image_processor.save_pretrained(out)
    (out / "chat_template.jinja").write_text(QWEN_CHAT_TEMPLATE, encoding="utf-8")
    (out / "processor_config.json").write_text(json.dumps({"processor_class": Qwen2_5_VLProcessor.__name__}),
                                               encoding="utf-8")
