"""Assemble the OCR trainer from `SFTArgs`: the Trainer's arguments, the model (loaded or given, wrapped for LoRA),
the collator, the samples (long ones skipped), the callbacks and the speed switches.

`training_arguments` maps SFTArgs onto `transformers.TrainingArguments` mechanically: every SFTArgs field named like
a TrainingArguments field passes through by name, `trainer_args` passes any other one, and `derived_settings` sets
what follows from the run itself (precision from the device, the evaluation plan from whether there is a
validation set, ...). A new Trainer setting needs no line here.

Not for: the run around the trainer (lib/train/run.py) or what the trainer computes (lib/train/trainer.py).
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Sequence

import torch
from transformers import TrainingArguments, set_seed
from transformers.trainer_callback import PrinterCallback

from lib.modeling import load_model_and_processor
from lib.prompt import load_prompt
from lib.train import internals, speed
from lib.train.args import SFTArgs
from lib.train.callbacks import GenerationCER, StepLogCallback, TimeLimitCallback
from lib.train.collator import OCRCollator
from lib.train.model import apply_peft, describe_trainable, set_pixel_limits
from lib.train.samples import ListDataset, TrainingDataError, filter_long, prepare_samples
from lib.train.trainer import OCRTrainer

__all__ = ["build_trainer", "training_arguments", "derived_settings", "TRAINER_FIELDS", "PASSED_THROUGH"]

TRAINER_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainingArguments) if f.init)
# SFTArgs fields named like a Trainer field that do not pass through as they are: set by derived_settings (the
# evaluation plan, TF32 on CUDA only), resolved by run_training ('latest'), or ours under a Trainer name that older
# transformers releases gave another meaning (their LengthGroupedSampler)
_NOT_PASSED = frozenset({"eval_steps", "save_steps", "metric_for_best_model", "tf32", "resume_from_checkpoint",
                         "group_by_length"})
PASSED_THROUGH = tuple(f.name for f in dataclasses.fields(SFTArgs) if f.name in TRAINER_FIELDS - _NOT_PASSED)


def derived_settings(args: SFTArgs, *, has_eval: bool, cuda: bool) -> dict[str, Any]:
    """The Trainer settings that follow from the run rather than from one SFTArgs field, each with its reason."""
    save_steps = args.save_steps
    if has_eval and save_steps % args.eval_steps:
        save_steps = args.eval_steps  # best-checkpoint selection needs a checkpoint at every evaluation
    return {
        # precision and device: bf16 where the GPU has it and --dtype allows it; fp32 on CPU
        "bf16": cuda and torch.cuda.is_bf16_supported() and args.dtype in ("auto", "bfloat16", "bf16"),
        "fp16": False, "use_cpu": not cuda, "tf32": True if (args.tf32 and cuda) else None,
        "warmup_steps": args.warmup_ratio,  # transformers 5 reads warmup_steps < 1 as a ratio
        "data_seed": args.seed,  # one seed for weights and data order
        # the evaluation plan: validation loss + generation CER every eval_steps, best checkpoint kept by the metric
        "eval_strategy": "steps" if has_eval else "no", "eval_steps": args.eval_steps if has_eval else None,
        "save_strategy": "steps", "save_steps": save_steps, "load_best_model_at_end": has_eval,
        "metric_for_best_model": args.metric_for_best_model if has_eval else None, "greater_is_better": False,
        "gradient_checkpointing_kwargs": {"use_reentrant": False} if args.gradient_checkpointing else None,
        # workers outlive an epoch: no worker processes re-created at every epoch start
        "dataloader_persistent_workers": args.dataloader_num_workers > 0,
        # the collator takes Sample objects, and the CER comes from generation, not from predictions
        "remove_unused_columns": False, "prediction_loss_only": True,
        "disable_tqdm": True,  # StepLogCallback prints one dense line per step
        "save_only_model": False,  # checkpoints resume: optimizer and scheduler state too
        # no per-step host<->device syncs (docs/GPU.md): a NaN/inf check of every loss and blocking batch copies
        # would make the CPU wait for the GPU each step instead of queueing the next one
        "logging_nan_inf_filter": False, "accelerator_config": {"non_blocking": True},
    }


def check_trainer_args(args: SFTArgs) -> None:
    """Refuse a `trainer_args` key that is no TrainingArguments field (before any model is loaded)."""
    for key in args.trainer_args:
        if key not in TRAINER_FIELDS:
            close = difflib.get_close_matches(key, sorted(TRAINER_FIELDS), n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(f"trainer_args: '{key}' is not a transformers.TrainingArguments field.{hint}")


def training_arguments(args: SFTArgs, *, has_eval: bool) -> TrainingArguments:
    """The Trainer's arguments: SFTArgs fields by name < derived_settings < trainer_args."""
    check_trainer_args(args)
    values = {name: getattr(args, name) for name in PASSED_THROUGH}
    values.update(derived_settings(args, has_eval=has_eval, cuda=torch.cuda.is_available()))
    values.update(args.trainer_args)
    return TrainingArguments(**values)


def build_trainer(args: SFTArgs, *, model=None, processor=None, train_samples=None, eval_samples=None,
                  callbacks: Sequence[Any] = (), printer=print) -> OCRTrainer:
    """Assemble the trainer. Given model/processor/samples are used as they are (samples: lists of lib.data.Sample,
    already validated); otherwise they are loaded from `args`. The model is wrapped for LoRA unless it already is.
    `callbacks` (transformers TrainerCallbacks) are added after the step log."""
    check_trainer_args(args)
    set_seed(args.seed)
    if train_samples is None:
        train_samples, eval_samples, _ = prepare_samples(args, printer)
    eval_samples = list(eval_samples or [])
    if model is None or processor is None:
        model, processor = load_model_and_processor(args.model_name, dtype=args.dtype, load_in_4bit=args.load_in_4bit,
                                                    trust_remote_code=args.trust_remote_code, is_trainable=True)
    if args.min_pixels or args.max_pixels:
        set_pixel_limits(processor, args)
    if not hasattr(model, "peft_config"):
        model = apply_peft(model, args)
    if args.gradient_checkpointing:
        model.config.use_cache = False
    printer(describe_trainable(model, args))
    prompt = load_prompt(args.prompt_config, args.instruction)
    collator = OCRCollator(processor, prompt, pad_to_multiple_of=args.pad_to_multiple_of,
                           padding_side="right" if args.loss_impl == "chunked" else "left")
    train_samples, train_stats = filter_long(collator, train_samples, args.max_seq_length, "train", printer)
    if eval_samples:
        eval_samples, _ = filter_long(collator, eval_samples, args.max_seq_length, "val", printer)
    if not train_samples:
        raise TrainingDataError("every training sample is longer than max_seq_length; nothing to train on")
    gen_cer = GenerationCER(processor, prompt, eval_samples, n_samples=args.eval_cer_samples,
                            max_new_tokens=args.eval_max_new_tokens,
                            batch_size=args.per_device_eval_batch_size) if eval_samples else None
    cbs = [StepLogCallback(printer), *callbacks]
    if args.max_train_seconds:
        cbs.append(TimeLimitCallback(args.max_train_seconds, printer))
    trainer = OCRTrainer(model=model, args=training_arguments(args, has_eval=bool(eval_samples)),
                         train_dataset=ListDataset(train_samples),
                         eval_dataset=ListDataset(eval_samples) if eval_samples else None, data_collator=collator,
                         processing_class=processor, callbacks=cbs, generation_cer=gen_cer)
    trainer.remove_callback(PrinterCallback)  # StepLogCallback prints one dense line instead of raw dicts
    trainer.loss_impl = args.loss_impl
    trainer.vision_learning_rate = args.vision_learning_rate
    if args.group_by_length:  # answer length in characters: proportional to tokens, no processor call needed
        trainer.group_lengths = [len(s.text) for s in train_samples]
    apply_speed_options(trainer, args, printer)
    trainer.ocr_prompt = prompt
    trainer.ocr_train_stats = train_stats
    return trainer


def apply_speed_options(trainer: OCRTrainer, args: SFTArgs, printer=print) -> None:
    """SFTArgs speed switches (lib/train/speed.py, lib/train/internals.py); none changes what the model computes."""
    if args.vision_no_grad and internals.no_grad_frozen_vision(trainer.model):
        printer("vision tower + projector frozen: run without autograd (vision_no_grad)")
    internals.no_sync_placeholder_mask(trainer.model)
    if args.compile_layers:
        n = speed.compile_layers(trainer.model, memory_budget=args.compile_memory_budget)
        trainer.compile_loss = args.loss_impl == "chunked"
        printer(f"torch.compile: {n} layers{' + the chunked loss' if trainer.compile_loss else ''} (compile_layers, "
                f"activation memory budget {args.compile_memory_budget})")
