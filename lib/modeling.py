"""Load any image-text-to-text model and its processor the same way: a hub id, a local folder, an embedded tiny
model (`embedded/tiny-gemma3`, built on first use by `lib.models.embedded`), or a LoRA adapter folder (its base
model is read from `adapter_config.json`).

`dtype="auto"` means bf16 on a GPU that supports it, fp16 on other GPUs, fp32 on CPU. `load_in_4bit` loads the
language model in 4-bit NF4 through bitsandbytes (QLoRA) and keeps the vision tower, projector and lm_head out of
quantization. Not for: training logic (lib/train/) or generation (lib/generation.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from lib.results import read_training_metadata

__all__ = ["load_model_and_processor", "load_processor", "resolve_dtype", "NOT_QUANTIZED_MODULES", "end_of_turn_ids",
           "adapter_base_model", "is_adapter_dir", "ModelLoadError"]

log = logging.getLogger(__name__)

# Module names kept in full precision under 4-bit loading: vision towers and projectors of the architectures we
# support (Gemma 3: vision_tower / multi_modal_projector; Qwen2.5-VL: visual / merger), and the output head.
NOT_QUANTIZED_MODULES = ["vision_tower", "multi_modal_projector", "visual", "merger", "lm_head", "vision_model",
                         "mm_projector"]
# End-of-turn tokens of known chat formats; generation stops at the first one, training puts it in the labels.
END_OF_TURN_TOKENS = ["<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_utterance>"]


class ModelLoadError(RuntimeError):
    pass


def resolve_dtype(dtype: str | Any = "auto"):
    """"auto" -> bf16 on GPUs that support it, fp16 on older GPUs, fp32 on CPU; or a name like "bfloat16"."""
    import torch

    if not isinstance(dtype, str):
        return dtype
    name = dtype.lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    table = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
             "half": torch.float16, "fp32": torch.float32, "float32": torch.float32, "float": torch.float32}
    if name not in table:
        raise ValueError(f"unknown dtype {dtype!r}; use auto, bfloat16, float16 or float32")
    return table[name]


def is_adapter_dir(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "adapter_config.json").is_file() and not (p / "config.json").is_file()


def adapter_base_model(adapter_path: str | os.PathLike) -> str:
    cfg = json.loads((Path(adapter_path) / "adapter_config.json").read_text(encoding="utf-8"))
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise ModelLoadError(f"{adapter_path}/adapter_config.json has no base_model_name_or_path; pass the base "
                             "model with --model_name and the adapter with --adapter_path")
    # A training run records the embedded id (not the cache folder) so the adapter works on another machine.
    return (read_training_metadata(adapter_path) or {}).get("base_model") or base


@contextlib.contextmanager
def _without_video_processor():
    """Let a processor class be built with video_processor=None (video processors need torchvision)."""
    from transformers.processing_utils import ProcessorMixin

    original = ProcessorMixin.check_argument_for_proper_class

    def check(self, name, arg):
        if arg is None and "video" in name:
            return None
        return original(self, name, arg)

    ProcessorMixin.check_argument_for_proper_class = check
    try:
        yield
    finally:
        ProcessorMixin.check_argument_for_proper_class = original


def _image_only_processor(path: str, trust_remote_code: bool):
    """Tokenizer + image processor + chat template assembled into the checkpoint's processor class, without the
    video processor (Qwen2-VL / Qwen2.5-VL processors require one, and it requires torchvision)."""
    import transformers
    from transformers import AutoImageProcessor, AutoTokenizer

    cfg_file = Path(path) / "processor_config.json"
    cls_name = json.loads(cfg_file.read_text(encoding="utf-8")).get("processor_class") if cfg_file.is_file() else None
    if not cls_name:
        cfg = Path(path) / "preprocessor_config.json"
        cls_name = json.loads(cfg.read_text(encoding="utf-8")).get("processor_class") if cfg.is_file() else None
    cls = getattr(transformers, cls_name or "", None)
    if cls is None:
        raise ModelLoadError(f"cannot build a processor for {path}")
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    image_processor = AutoImageProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    template = tok.chat_template
    jinja = Path(path) / "chat_template.jinja"
    if jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    with _without_video_processor():
        proc = cls(image_processor=image_processor, tokenizer=tok, video_processor=None, chat_template=template)

    def save_pretrained(save_directory, **kwargs):  # ProcessorMixin.save_pretrained cannot skip a None attribute
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        tok.save_pretrained(out)
        image_processor.save_pretrained(out)
        if template:
            (out / "chat_template.jinja").write_text(template, encoding="utf-8")
        (out / "processor_config.json").write_text(json.dumps({"processor_class": cls.__name__}), encoding="utf-8")
        return [str(out)]

    proc.save_pretrained = save_pretrained
    return proc


def load_processor(name_or_path: str, *, trust_remote_code: bool = False):
    from transformers import AutoProcessor

    from lib.models.embedded import resolve_model_path

    path = resolve_model_path(name_or_path)
    try:
        proc = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        if not Path(path).is_dir():
            raise
        log.info("AutoProcessor failed for %s (%s); building it without a video processor", path, exc)
        proc = _image_only_processor(path, trust_remote_code)
    # Batched generation needs left padding (new tokens appended at the right of every row).
    proc.tokenizer.padding_side = "left"
    return proc


def load_model_and_processor(name_or_path: str, *, dtype: str | Any = "auto", load_in_4bit: bool = False,
                             trust_remote_code: bool = False, device_map: Any = None,
                             adapter_path: str | None = None, is_trainable: bool = False):
    """(model, processor). `name_or_path` may also be an adapter folder (then it is used as `adapter_path`).
    The processor comes from the adapter folder when it holds one (training saves it there), else from the base."""
    import torch
    from transformers import AutoModelForImageTextToText

    from lib.models.embedded import resolve_model_path

    name = str(name_or_path)
    if adapter_path is None and is_adapter_dir(name):
        adapter_path, name = name, adapter_base_model(name)
    path = resolve_model_path(name)
    torch_dtype = resolve_dtype(dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if load_in_4bit:
        if not torch.cuda.is_available():
            raise ModelLoadError("load_in_4bit needs a CUDA GPU and bitsandbytes; on CPU pass --load_in_4bit false")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ModelLoadError("load_in_4bit needs bitsandbytes. To fix: pip install 'bitsandbytes>=0.45'") from None
        from transformers import BitsAndBytesConfig

        compute = torch_dtype if torch_dtype != torch.float32 else torch.bfloat16
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute, llm_int8_skip_modules=list(NOT_QUANTIZED_MODULES))
        if device_map is None:
            device_map = {"": torch.cuda.current_device()}
    if device_map is not None:
        kwargs["device_map"] = device_map
    from lib.reader.ppocr_vision import register

    register()  # the reader's PP-OCRv6 vision tower is a model type of ours
    try:
        model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise ModelLoadError(f"cannot load model {name!r} ({path}): {exc}") from exc
    proc_source = adapter_path if adapter_path and (Path(adapter_path) / "processor_config.json").is_file() or \
        adapter_path and (Path(adapter_path) / "preprocessor_config.json").is_file() else path
    processor = load_processor(proc_source, trust_remote_code=trust_remote_code)
    from lib.reader.preprocess import attach_reader_input, reader_config

    spec = reader_config(adapter_path) or reader_config(path)
    if spec is not None:  # a folded-line reader (lib/reader): collator and hf backend fold its images
        attach_reader_input(processor, spec)
    if adapter_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_path, is_trainable=is_trainable)
    if device_map is None and torch.cuda.is_available() and not load_in_4bit:
        model.to("cuda")
    if not is_trainable:
        model.eval()
    return model, processor


def end_of_turn_ids(processor, model=None) -> list[int]:
    """Token ids that end the assistant's turn: the chat format's end-of-turn token first, then eos ids."""
    tok = getattr(processor, "tokenizer", processor)
    ids: list[int] = []
    vocab = tok.get_vocab()
    for t in END_OF_TURN_TOKENS:
        if t in vocab:
            ids.append(vocab[t])
            break
    extra: list[Any] = []
    gen_cfg = getattr(model, "generation_config", None) if model is not None else None
    if gen_cfg is not None and gen_cfg.eos_token_id is not None:
        extra += gen_cfg.eos_token_id if isinstance(gen_cfg.eos_token_id, list) else [gen_cfg.eos_token_id]
    if tok.eos_token_id is not None:
        extra.append(tok.eos_token_id)
    for i in extra:
        if i not in ids:
            ids.append(int(i))
    return ids
