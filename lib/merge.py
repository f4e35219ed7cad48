"""Merge a LoRA adapter into its base model and check the result.

The base is loaded in bf16 (or fp32 / fp16 - never 4-bit: merging into quantized weights loses the adapter's
precision, and vLLM wants plain weights), the adapter applied and folded in with `merge_and_unload`, and the full
vision-language class saved (`Gemma3ForConditionalGeneration` in `config.architectures`, not the text-only class
vLLM rejects) with the processor, chat template, the training prompt (`ocr_prompt.yml`) and the training metadata.

`verify_merge` compares merged vs adapter model on a few samples: max |logit difference| on the prompt + answer
positions and identical greedy text; and merged vs base: outputs must differ (an all-zero adapter would pass the
first check and prove nothing). For adapters trained with QLoRA (4-bit base) merged into bf16 the logits differ by
quantization error: the tolerance is wider and identical text is not required.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from lib.results import read_training_metadata

__all__ = ["merge_adapter", "verify_merge", "estimate_model_bytes", "check_disk_space", "MergeError",
           "VerifyReport", "COPY_FILES"]

COPY_FILES = ("ocr_prompt.yml", "training_config.json", "metadata.json")


class MergeError(RuntimeError):
    pass


def estimate_model_bytes(model, dtype) -> int:
    import torch

    per = torch.tensor([], dtype=dtype).element_size()
    return sum(p.numel() for p in model.parameters()) * per


def check_disk_space(output_dir: str | os.PathLike, required_bytes: int, margin: float = 1.15) -> dict:
    """Free space on the filesystem that will hold `output_dir` (its nearest existing parent) vs what is needed."""
    p = Path(output_dir).resolve()
    while not p.exists():
        p = p.parent
    free = shutil.disk_usage(p).free
    need = int(required_bytes * margin)
    info = {"checked_path": str(p), "free_gb": round(free / 2 ** 30, 3), "required_gb": round(need / 2 ** 30, 3)}
    if free < need:
        raise MergeError(f"not enough disk space for the merged model in {output_dir}: {info['free_gb']} GB free on "
                         f"{p}, ~{info['required_gb']} GB needed. Free space or choose another --output_dir")
    return info


def merge_adapter(adapter_path: str, output_dir: str, *, base_model: str | None = None, dtype: str = "bfloat16",
                  trust_remote_code: bool = False, printer=print) -> dict:
    """Load base + adapter, merge, save the full model with processor and training files. Returns a summary."""
    import torch
    from peft import PeftModel

    from lib.modeling import adapter_base_model, load_model_and_processor, resolve_dtype

    if dtype in ("4bit", "int4", "nf4"):
        raise MergeError("merging into a 4-bit base is not supported: use --dtype bfloat16 (or float32)")
    base = base_model or adapter_base_model(adapter_path)
    torch_dtype = resolve_dtype(dtype)
    if torch_dtype == torch.bfloat16 and not torch.cuda.is_available():
        printer("note: merging in bfloat16 on CPU (pass --dtype float32 for exact fp32 weights)")
    model, processor = load_model_and_processor(base, dtype=torch_dtype, trust_remote_code=trust_remote_code,
                                                adapter_path=adapter_path, load_in_4bit=False)
    if not isinstance(model, PeftModel):
        raise MergeError(f"{adapter_path} did not load as a PEFT adapter")
    disk = check_disk_space(output_dir, estimate_model_bytes(model, torch_dtype))
    printer(f"disk: {disk['free_gb']} GB free at {disk['checked_path']}, ~{disk['required_gb']} GB needed")
    merged = model.merge_and_unload()
    arch = type(merged).__name__
    merged.config.architectures = [arch]
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    from lib.reader.preprocess import copy_reader_config

    copy_reader_config(base, out)  # a folded-line reader stays one after merging
    for name in COPY_FILES:
        src = Path(adapter_path) / name
        if src.is_file():
            shutil.copy2(src, out / (name if name != "metadata.json" else "training_metadata.json"))
    adapter_meta = read_training_metadata(adapter_path) or {}
    summary = {"base_model": base, "adapter_path": str(adapter_path), "output_dir": str(out), "dtype": str(torch_dtype),
               "architectures": [arch], "disk": disk, "load_in_4bit_during_training": adapter_meta.get("load_in_4bit")}
    (out / "merge_info.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    printer(f"merged {arch} saved to {out}")
    return summary


@dataclasses.dataclass
class VerifyReport:
    ok: bool
    max_logit_diff_merged_vs_adapter: float
    tolerance: float
    identical_text: bool
    n_text_equal: int
    n_samples: int
    max_logit_diff_merged_vs_base: float
    merged_differs_from_base: bool
    qlora: bool
    messages: list[str]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _logits(model, processor, prompt, images, answers):
    """Logits over every position of prompt + answer (teacher forcing) for each sample, as a list of fp32 tensors."""
    import torch

    from lib.data import Sample
    from lib.train.collator import OCRCollator

    collator = OCRCollator(processor, prompt)
    out = []
    device = next(model.parameters()).device
    for img, ans in zip(images, answers):
        if not isinstance(img, str):
            raise MergeError("verify needs image paths")
        batch = collator([Sample(image_path=img, text=ans or " ", index=0, doc_id="v")])
        batch.pop("labels")
        batch = {k: v.to(device) for k, v in batch.items()}
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(next(model.parameters()).dtype)
        with torch.inference_mode():
            out.append(model(**batch).logits[0].float().cpu())
    return out


def verify_merge(adapter_path: str, merged_dir: str, images: Sequence[str], answers: Sequence[str] | None = None, *,
                 base_model: str | None = None, dtype: str = "float32", max_new_tokens: int = 64,
                 tolerance: float | None = None, qlora: bool | None = None, printer=print) -> VerifyReport:
    """Compare merged vs adapter (≈, identical greedy text) and merged vs base (must differ) on `images`."""
    import gc

    import torch

    from lib.generation import generate_batch
    from lib.modeling import adapter_base_model, load_model_and_processor
    from lib.prompt import load_prompt

    base = base_model or adapter_base_model(adapter_path)
    prompt_file = Path(adapter_path) / "ocr_prompt.yml"
    prompt = load_prompt(prompt_file if prompt_file.is_file() else None)
    if qlora is None:
        qlora = bool((read_training_metadata(adapter_path) or {}).get("load_in_4bit"))
    if tolerance is None:
        # fp32 merge of an fp32-trained adapter: rounding only. bf16: bf16 rounding of W + BA. QLoRA: 4-bit error.
        tolerance = 0.5 if qlora else (1e-3 if dtype in ("float32", "fp32") else 0.15)
    answers = list(answers) if answers is not None else ["" for _ in images]

    def run(name_or_path, adapter=None, load_in_4bit=False):
        model, processor = load_model_and_processor(name_or_path, dtype=dtype, adapter_path=adapter,
                                                    load_in_4bit=load_in_4bit)
        gen = [o.text for o in generate_batch(model, processor, prompt, list(images), max_new_tokens=max_new_tokens,
                                              batch_size=4)]
        logits = _logits(model, processor, prompt, list(images), answers)
        del model
        gc.collect()
        return gen, logits

    # A QLoRA adapter is compared as it was trained: on the 4-bit base (when a GPU is there to load it).
    a_text, a_logits = run(base, adapter_path, load_in_4bit=bool(qlora and torch.cuda.is_available()))
    m_text, m_logits = run(merged_dir)
    b_text, b_logits = run(base)
    diff_ma = max(float((a - m).abs().max()) for a, m in zip(a_logits, m_logits))
    diff_mb = max(float((b - m).abs().max()) for b, m in zip(b_logits, m_logits))
    n_equal = sum(a == m for a, m in zip(a_text, m_text))
    identical = n_equal == len(images)
    differs = diff_mb > max(10 * tolerance, 1e-2) or any(b != m for b, m in zip(b_text, m_text))
    msgs = []
    if diff_ma > tolerance:
        msgs.append(f"merged vs adapter: max |logit diff| {diff_ma:.3g} > tolerance {tolerance:g}")
    if not qlora and not identical:
        msgs.append(f"merged vs adapter: greedy text differs on {len(images) - n_equal}/{len(images)} samples")
    if not differs:
        msgs.append(f"merged vs base: outputs are the same (max |logit diff| {diff_mb:.3g}): the adapter changes "
                    "nothing - was it trained?")
    report = VerifyReport(ok=not msgs, max_logit_diff_merged_vs_adapter=diff_ma, tolerance=tolerance,
                          identical_text=identical, n_text_equal=n_equal, n_samples=len(images),
                          max_logit_diff_merged_vs_base=diff_mb, merged_differs_from_base=differs, qlora=qlora,
                          messages=msgs)
    printer(f"verify: merged vs adapter max|Δlogit| {diff_ma:.3g} (tol {tolerance:g}), greedy text identical "
            f"{n_equal}/{len(images)}; merged vs base max|Δlogit| {diff_mb:.3g} -> {'OK' if report.ok else 'FAILED'}")
    return report
