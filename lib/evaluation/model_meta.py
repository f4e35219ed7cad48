"""What a model was trained with, saved beside its weights so evaluation uses the same prompt and image settings.

File: `<model folder>/gemma_ocr_meta.json` = {"prompt": Prompt.to_dict(), "processor": {"do_pan_and_scan": ...,
"min_pixels": ..., "max_pixels": ..., ...}, ...anything else (base model, data hash)}, written by `write_model_meta`;
without it, the files training and merging save (`ocr_prompt.yml`, `training_config.json`) are read instead.
`core/evaluate.py` reads it: `hf` mode takes the prompt from it when `--prompt-config` is
not given, and any difference between it and what the evaluation uses (prompt, processor settings) is a warning.
`python -m lib.evaluation.model_meta <model folder> [--kwargs-only]` prints the vLLM `--mm-processor-kwargs` for
the compose recipe.

Not for: the weights' own configs (config.json / preprocessor_config.json are Hugging Face's).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["META_FILENAME", "read_model_meta", "write_model_meta", "processor_settings", "compare_with_meta",
           "mm_processor_kwargs"]

META_FILENAME = "gemma_ocr_meta.json"
PROCESSOR_KEYS = ("do_pan_and_scan", "pan_and_scan_min_crop_size", "pan_and_scan_max_num_crops",
                  "pan_and_scan_min_ratio_to_activate", "min_pixels", "max_pixels", "size", "image_seq_length")


def read_model_meta(model_path: str | os.PathLike | None) -> dict | None:
    """The saved training settings of a model folder: `gemma_ocr_meta.json` if present, else what training and
    merging save anyway (lib/train, lib/merge): the prompt in `ocr_prompt.yml` and the processor settings among the
    resolved arguments in `training_config.json`. None when the folder has none of them (e.g. a hub id)."""
    if not model_path:
        return None
    p = Path(model_path)
    f = p if p.is_file() else p / META_FILENAME
    if f.is_file():
        try:
            return json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return None
    if not p.is_dir():
        return None
    meta: dict[str, Any] = {}
    prompt_file = p / "ocr_prompt.yml"
    if prompt_file.is_file():
        try:
            import yaml

            data = yaml.safe_load(prompt_file.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("prompt_text"):
                meta["prompt"] = {k: data.get(k) for k in ("prompt_text", "image_position", "system_prompt")}
                meta["prompt"]["source"] = str(prompt_file)
        except Exception:  # an unreadable prompt file is the same as none: evaluation falls back to --prompt-config
            pass
    cfg_file = p / "training_config.json"
    if cfg_file.is_file():
        try:
            cfg = json.loads(cfg_file.read_text(encoding="utf-8")).get("config", {})
            proc = {k: cfg[k] for k in PROCESSOR_KEYS if cfg.get(k) is not None}
            if proc:
                meta["processor"] = proc
        except (json.JSONDecodeError, AttributeError):
            pass
    return meta or None


def write_model_meta(model_dir: str | os.PathLike, *, prompt=None, processor: Any = None, **extra) -> Path:
    """Save the training prompt (a lib.prompt.Prompt or dict) and processor settings (a processor or a dict)."""
    from lib.results import atomic_write_json

    meta: dict[str, Any] = dict(extra)
    if prompt is not None:
        meta["prompt"] = prompt.to_dict() if hasattr(prompt, "to_dict") else dict(prompt)
    if processor is not None:
        meta["processor"] = processor if isinstance(processor, dict) else processor_settings(processor)
    return atomic_write_json(meta, Path(model_dir) / META_FILENAME)


def processor_settings(processor: Any) -> dict:
    """The image settings of a HF processor that change what the model sees."""
    out = {}
    for obj in (getattr(processor, "image_processor", None), processor):
        if obj is None:
            continue
        for key in PROCESSOR_KEYS:
            if key not in out and hasattr(obj, key):
                value = getattr(obj, key)
                if isinstance(value, (int, float, str, bool, type(None), dict, list)):
                    out[key] = value
    return out


def _prompt_core(p: dict | None) -> dict:
    p = p or {}
    return {k: p.get(k) for k in ("prompt_text", "image_position", "system_prompt")}


def compare_with_meta(meta: dict | None, prompt=None, processor: Any = None) -> list[str]:
    """Warnings (strings) for every difference between the saved training settings and this evaluation."""
    if not meta:
        return []
    warnings = []
    if prompt is not None and meta.get("prompt"):
        a, b = _prompt_core(meta["prompt"]), _prompt_core(prompt.to_dict() if hasattr(prompt, "to_dict") else prompt)
        for k in a:
            if a[k] != b[k]:
                warnings.append(f"prompt {k} differs from training: trained with {a[k]!r}, evaluating with {b[k]!r}")
    if processor is not None and meta.get("processor"):
        now = processor if isinstance(processor, dict) else processor_settings(processor)
        for k, v in meta["processor"].items():
            if k in now and now[k] != v:
                warnings.append(f"processor setting {k} differs from training: trained with {v!r}, evaluating with {now[k]!r}")
    return warnings


def mm_processor_kwargs(meta: dict | None) -> dict:
    """The processor settings as vLLM's `--mm-processor-kwargs` JSON."""
    proc = (meta or {}).get("processor") or {}
    return {k: v for k, v in proc.items() if k in ("do_pan_and_scan", "min_pixels", "max_pixels")}


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    meta = read_model_meta(args[0] if args else None)
    if meta is None:
        sys.exit(f"no {META_FILENAME} in {args or '(no folder given)'}")
    if "--kwargs-only" in sys.argv:
        print(json.dumps(mm_processor_kwargs(meta)))
        sys.exit(0)
    print(f"MM_PROCESSOR_KWARGS='{json.dumps(mm_processor_kwargs(meta))}'")
    if meta.get("prompt"):
        print(f"# prompt: {json.dumps(_prompt_core(meta['prompt']), ensure_ascii=False)}")
