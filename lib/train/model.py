"""Model preparation for training: which layers get LoRA, the PEFT wrapping (LoRA, QLoRA, full fine-tuning) and the
processor's pixel limits.

Not for: loading weights (lib/modeling.py) or speed patches (lib/train/speed.py).
"""

from __future__ import annotations

from typing import Sequence

import torch
from peft import LoraConfig, get_peft_model

from lib.train.args import SFTArgs

__all__ = ["VISION_PREFIXES", "PROJECTOR_NAMES", "is_vision_or_projector", "lora_target_names", "apply_peft",
           "set_pixel_limits", "describe_trainable"]

VISION_PREFIXES = ("vision_tower", "visual", "vision_model")
PROJECTOR_NAMES = ("multi_modal_projector", "merger", "mm_projector")


def is_vision_or_projector(name: str) -> bool:
    """True for a parameter/module name inside the vision tower or the multimodal projector."""
    return any(part in VISION_PREFIXES or part in PROJECTOR_NAMES for part in name.split("."))


def _is_linear(module) -> bool:
    if isinstance(module, torch.nn.Linear):
        return True
    return type(module).__name__ in ("Linear4bit", "Linear8bitLt")


def lora_target_names(model, *, language: bool, vision: bool, suffixes: Sequence[str]) -> list[str]:
    """Full names of the linear layers that get LoRA: language-model layers whose name ends with one of `suffixes`,
    and (if `vision`) every linear layer of the vision tower. Projector and lm_head never (use modules_to_save)."""
    names = []
    for name, module in model.named_modules():
        if not _is_linear(module):
            continue
        parts = name.split(".")
        if any(p in PROJECTOR_NAMES for p in parts) or parts[-1] == "lm_head":
            continue
        in_vision = any(p in VISION_PREFIXES for p in parts)
        if in_vision:
            if vision:
                names.append(name)
        elif language and parts[-1] in suffixes:
            names.append(name)
    return names


def apply_peft(model, args: SFTArgs):
    """Wrap `model` for LoRA/QLoRA per `args` (returns it unchanged for full fine-tuning)."""
    if args.finetune == "full":
        frozen = {pat: 0 for pat in args.freeze_modules}
        for name, p in model.named_parameters():
            hit = [pat for pat in frozen if pat in name]
            for pat in hit:
                frozen[pat] += 1
            p.requires_grad_(not hit)
        unused = [pat for pat, n in frozen.items() if not n]
        if unused:
            raise ValueError(f"freeze_modules: {unused} match no parameter of {args.model_name} (names look like "
                             f"{next(iter(model.state_dict()))!r})")
        return model
    if args.load_in_4bit:
        # Not peft's prepare_model_for_kbit_training: it casts every non-quantized parameter to fp32 (for Gemma 3 the
        # 262k-row embedding and the whole frozen vision tower; docs/GPU.md). Frozen weights need no fp32 copy, peft
        # creates the LoRA weights in fp32, and non-reentrant checkpointing needs no input-grad hook.
        for p in model.parameters():
            p.requires_grad_(False)
    targets = lora_target_names(model, language=args.finetune_language_layers, vision=args.finetune_vision_layers,
                                suffixes=args.lora_target_modules)
    if not targets and not args.modules_to_save:
        raise ValueError(f"no linear layer matches lora_target_modules={args.lora_target_modules} "
                         f"(language={args.finetune_language_layers}, vision={args.finetune_vision_layers})")
    config = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout, bias="none",
                        target_modules=targets or None, modules_to_save=list(args.modules_to_save) or None,
                        task_type=None)
    return get_peft_model(model, config)


def set_pixel_limits(processor, args: SFTArgs) -> None:
    """Qwen-style dynamic resolution: `min_pixels` / `max_pixels` of the image processor, where given."""
    ip = processor.image_processor
    for key in ("min_pixels", "max_pixels"):
        if getattr(args, key):
            setattr(ip, key, getattr(args, key))
            if isinstance(getattr(ip, "size", None), dict):
                ip.size[{"min_pixels": "shortest_edge", "max_pixels": "longest_edge"}[key]] = getattr(args, key)


def describe_trainable(model, args: SFTArgs) -> str:
    """`model <name>: lora (4-bit QLoRA), trainable N / M parameters (x.xx%)`."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return (f"model {args.model_name}: {args.finetune}{' (4-bit QLoRA)' if args.load_in_4bit else ''}, "
            f"trainable {trainable:,} / {total:,} parameters ({100 * trainable / max(total, 1):.2f}%)")
