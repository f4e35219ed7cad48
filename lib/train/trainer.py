"""Supervised OCR fine-tuning on `transformers.Trainer`: LoRA / QLoRA / full, answer-only loss, generation CER.

Why `Trainer` and not TRL's `SFTTrainer`: TRL 1.16 truncates at max_length=1024 by default (which cuts image tokens
of real pages), turns gradient checkpointing on by default, and refuses assistant-only loss with images on
transformers < 5.18 (the GPU image has 5.17). Our collator (lib/train/collator.py) already builds exactly the
labels we want, so the plain Trainer plus a loss that computes logits only where labels are is all we need.

`build_trainer(args, model=..., processor=..., train_samples=..., eval_samples=...)` assembles everything;
`run_training(args)` = load data + validate, build_trainer, train (or resume), save adapter + processor + chat
template + prompt + resolved config + metadata.json, final generation CER on the validation set.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers import Trainer

from lib.train.args import SFTArgs
from lib.train.callbacks import GenerationCER, StepLogCallback, TimeLimitCallback, micro_cer
from lib.train.collator import IGNORE_INDEX, OCRCollator, measure_samples

__all__ = ["OCRTrainer", "build_trainer", "run_training", "apply_peft", "TrainingDataError", "lora_target_names",
           "prepare_samples", "is_vision_or_projector"]

log = logging.getLogger(__name__)

VISION_PREFIXES = ("vision_tower", "visual", "vision_model")
PROJECTOR_NAMES = ("multi_modal_projector", "merger", "mm_projector")


def is_vision_or_projector(name: str) -> bool:
    """True for a parameter/module name inside the vision tower or the multimodal projector."""
    return any(part in VISION_PREFIXES or part in PROJECTOR_NAMES for part in name.split("."))


class TrainingDataError(ValueError):
    """The training data failed validation (the message is the full report) or nothing is left to train on."""


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, samples):
        self.samples = list(samples)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


class _FastModuleWalks:
    """While the Trainer trains, make its per-step walks over the whole module tree cheap: `model.train()` (every
    `training_step`) returns at once when every module is already in training mode, and `model.zero_grad()` (every
    optimizer step) clears the gradients of the parameters that were trainable when training started - the frozen
    ones never get any (nothing in this project changes `requires_grad` during training). On a 4B VLM
    (6,600 modules, 1,360 parameter tensors) each walk is 7-11 ms of Python per step that a GPU waiting at the end of
    the backward pass sees as idle time (docs/GPU.md). Instance attributes, removed on exit; same effect as the
    methods they shadow. Not used under FSDP or DeepSpeed (they replace or own the parameters: OCRTrainer.train)."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        model = self.model
        modules = list(model.modules())
        self.trainable = trainable = [p for p in model.parameters() if p.requires_grad]
        cls = type(model)

        def train(mode: bool = True):
            if mode and all(m.training for m in modules):
                return model
            return cls.train(model, mode)

        def zero_grad(set_to_none: bool = True):
            if not set_to_none:
                return cls.zero_grad(model, set_to_none)
            for p in trainable:
                p.grad = None

        self.patched = {"train": train, "zero_grad": zero_grad}
        model.__dict__.update(self.patched)
        return self

    def __exit__(self, *exc):
        for k in self.patched:
            self.model.__dict__.pop(k, None)
        return False


class ContinuousEpochs:
    """The prepared training DataLoader over an `EpochStreamBatchSampler`, cut back into epochs for the Trainer:
    `len()` is one epoch, `set_epoch(e)` names the epoch the next `iter()` gives, and each `iter()` yields that
    epoch's batches from one long-lived iterator - so the data loader's workers never stop at an epoch boundary
    (the plain loader resets its workers at every `iter()`, and the GPU waits for the new epoch's first batch). If
    the Trainer asks for an epoch other than the one the stream stands at the start of (first use, an epoch left
    early), the stream restarts there; the batches are those of `LengthBucketSampler.batches(epoch)` either way.
    Everything else (dataset, batch_size, ...) is the prepared loader's."""

    def __init__(self, loader, stream):
        self.loader = loader
        self.stream = stream
        self._epoch: int | None = None  # from set_epoch
        self._it = None
        self._pos: tuple[int, int] | None = None  # (epoch, batches of it already given) where the stream stands

    def __len__(self) -> int:
        return len(self.stream)

    def __getattr__(self, name):
        if name in ("loader", "stream"):  # not yet set (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)

    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)

    def __iter__(self):
        epoch = self._epoch if self._epoch is not None else (self._pos[0] if self._pos else 0)
        if self._it is None or self._pos != (epoch, 0):
            self.close()
            self.stream.start_epoch = epoch
            self._it = iter(self.loader)
            self._pos = (epoch, 0)
        self._epoch = None
        return self._take(epoch, len(self))

    def _take(self, epoch: int, n: int):
        for k in range(n):
            batch = next(self._it)
            self._pos = (epoch, k + 1) if k + 1 < n else (epoch + 1, 0)
            yield batch

    def close(self) -> None:
        """End the long-lived iterator (the loader leaves accelerate's list of active loaders, as at a normal end)."""
        if self._it is not None:
            stop = getattr(self._it, "close", None)  # accelerate's loaders iterate in a generator
            if callable(stop):
                stop()
            self._it = None
            end = getattr(self.loader, "end", None)
            if callable(end):
                end()


class OCRTrainer(Trainer):
    """Trainer with (1) a loss on label positions only, computing logits for the trailing positions of the
    left-padded batch (`logits_to_keep`), and (2) the generation CER added to every evaluation as `eval_cer`."""

    def __init__(self, *a, generation_cer: GenerationCER | None = None, **kw):
        super().__init__(*a, **kw)
        self.generation_cer = generation_cer
        self._param_count: tuple[int, int] | None = None  # (id(model), parameters without embeddings)
        self._walks: _FastModuleWalks | None = None  # while train() runs with the cheap walks
        self._resuming = False  # set by train(): a resumed run keeps the Trainer's own training loader

    def _plain_walks(self) -> bool:
        # FSDP2 replaces the parameters with sharded ones inside train() (and accelerate's FSDP clipping looks for the
        # model's full parameter list); DeepSpeed owns zero_grad and clipping: keep the Trainer's own walks there
        return bool(self.is_fsdp_enabled or self.is_deepspeed_enabled)

    def train(self, *a, **kw):
        # a resumed run skips the trained part of its epoch with accelerate's skip_first_batches, which needs the
        # plain prepared loader: it gets that (same batches, LengthBucketSampler's order is a function of the epoch)
        self._resuming = bool(a[0] if a else kw.get("resume_from_checkpoint"))
        try:
            if self._plain_walks():
                return super().train(*a, **kw)
            with _FastModuleWalks(self.model) as walks:
                self._walks = walks
                try:
                    return super().train(*a, **kw)
                finally:
                    self._walks = None
        finally:
            loader = getattr(self.callback_handler, "train_dataloader", None)
            if isinstance(loader, ContinuousEpochs):
                loader.close()

    def get_train_dataloader(self):
        """With `group_by_length` (and not resuming): the loader runs through the epochs without stopping
        (`ContinuousEpochs`), under DDP with each rank's share of every epoch as accelerate would cut it; otherwise
        (and where accelerate would not give whole batches per rank: split or dispatched batches, uneven batches)
        the Trainer's own. Same batches either way."""
        dataset, acc = self.train_dataset, self.accelerator
        if (self.group_lengths is None or self._resuming or dataset is None
                or isinstance(dataset, torch.utils.data.IterableDataset)
                or (acc.num_processes > 1 and (acc.split_batches or acc.dispatch_batches or not acc.even_batches))):
            return super().get_train_dataloader()
        from functools import partial

        from accelerate.data_loader import BatchSamplerShard
        from torch.utils.data import DataLoader
        from transformers.trainer_utils import seed_worker

        from lib.train.sampler import EpochStreamBatchSampler

        a = self.args
        stream = EpochStreamBatchSampler(self._get_train_sampler(dataset), drop_last=a.dataloader_drop_last,
                                         num_processes=acc.num_processes, process_index=acc.process_index)
        # the parameters Trainer._get_dataloader gives a training loader, with the stream as its batch sampler
        params = {"batch_sampler": stream, "num_workers": a.dataloader_num_workers,
                  "collate_fn": self._get_collator_with_removed_columns(self.data_collator, description="Training"),
                  "pin_memory": a.dataloader_pin_memory, "persistent_workers": a.dataloader_persistent_workers,
                  "worker_init_fn": partial(seed_worker, num_workers=a.dataloader_num_workers, rank=a.process_index)}
        if hasattr(a, "dataloader_in_order"):  # transformers >= 5.x passes it to every loader
            params["in_order"] = a.dataloader_in_order
        if a.dataloader_num_workers > 0:
            params.update(prefetch_factor=a.dataloader_prefetch_factor,
                          multiprocessing_context=a.dataloader_multiprocessing_context)
        loader = acc.prepare(DataLoader(dataset, **params))
        if acc.num_processes > 1:
            shard = getattr(loader, "batch_sampler", None)
            if not (isinstance(shard, BatchSamplerShard) and shard.batch_sampler is stream):
                return super().get_train_dataloader()
            # the stream holds this rank's share already (whole batches): accelerate's wrapper passes them through
            shard.num_processes, shard.process_index = 1, 0
        return ContinuousEpochs(loader, stream)

    def floating_point_ops(self, inputs) -> int:
        """The Trainer's FLOP estimate (6 x tokens x parameters), with the parameter count computed once instead of
        at every step (a walk over all modules: ~10 ms of Python per step on a 4B VLM)."""
        main = getattr(self.model, "main_input_name", "input_ids")
        if main not in inputs or not hasattr(self.model, "num_parameters"):
            return 0
        if self._param_count is None or self._param_count[0] != id(self.model):
            self._param_count = (id(self.model), self.model.num_parameters(exclude_embeddings=True))
        return 6 * inputs[main].numel() * self._param_count[1]

    def _clip_grad_norm(self, model):
        """Clip over the trainable parameters only (the frozen ones have no gradient, so the norm is the same) -
        without listing all 1,360 parameter tensors of a 4B VLM every step."""
        if self._walks is None or getattr(self.args, "fp16", False) or self._has_mixed_mesh_grads(model):
            return super()._clip_grad_norm(model)
        # the list _FastModuleWalks took at train() start: the same parameter objects under a DDP wrapper
        return self.accelerator.clip_grad_norm_(self._walks.trainable, self.args.max_grad_norm)

    loss_impl = "logits"  # build_trainer sets it from SFTArgs.loss_impl
    compile_loss = False  # build_trainer sets it with SFTArgs.compile_layers: the chunked loss's softmax compiled too
    vision_learning_rate: float | None = None  # build_trainer sets it from SFTArgs.vision_learning_rate
    group_lengths: list[int] | None = None  # build_trainer sets it when SFTArgs.group_by_length

    def _get_train_sampler(self, train_dataset=None):
        if self.group_lengths is None:
            return super()._get_train_sampler(train_dataset)
        from lib.train.sampler import LengthBucketSampler

        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        # batches of the micro-batch size: padding is per forward pass
        return LengthBucketSampler(self.args.train_batch_size, self.group_lengths, seed=seed)

    def create_optimizer(self, model=None):
        """The Trainer's optimizer; with `vision_learning_rate`, vision-tower and projector parameters get their own
        parameter groups at that peak rate (the scheduler scales every group's rate by the same factor)."""
        if self.vision_learning_rate is None or self.optimizer is not None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        groups: dict[tuple[bool, bool], list] = {}
        for name, p in opt_model.named_parameters():
            if p.requires_grad:
                vision = is_vision_or_projector(name)
                groups.setdefault((vision, name in decay), []).append(p)
        param_groups = [{"params": ps, "weight_decay": self.args.weight_decay if dec else 0.0,
                         **({"lr": self.vision_learning_rate} if vision else {})}
                        for (vision, dec), ps in sorted(groups.items())]
        cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        kwargs.pop("params", None)
        self.optimizer = cls(param_groups, **kwargs)
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # DeepSpeed ZeRO keeps the head's weight partitioned outside its own forward: use the logits path there
        if self.loss_impl == "chunked" and not return_outputs and not self.is_deepspeed_enabled:
            from lib.train.speed import label_only_loss

            with self.accelerator.autocast():
                loss = label_only_loss(model, inputs, num_items_in_batch=num_items_in_batch,
                                       compiled=self.compile_loss)
            if num_items_in_batch is not None and self.args.average_tokens_across_devices \
                    and self.accelerator.num_processes > 1:
                loss = loss * self.accelerator.num_processes
            return loss
        inputs.pop("loss_index", None)
        labels = inputs.pop("labels")
        seq = labels.shape[1]
        has_label = (labels != IGNORE_INDEX).any(dim=0)
        first = int(has_label.nonzero()[0]) if has_label.any() else seq - 1
        keep = seq - first + 1  # the logit at position t predicts the token at t + 1
        if first == 0:
            keep = seq
        outputs = model(**inputs, logits_to_keep=keep)
        logits = outputs.logits[:, :-1, :].float()
        targets = labels[:, seq - keep + 1:].to(logits.device)
        loss_sum = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                     ignore_index=IGNORE_INDEX, reduction="sum")
        if num_items_in_batch is not None:
            loss = loss_sum / num_items_in_batch
            if self.args.average_tokens_across_devices and self.accelerator.num_processes > 1:
                loss = loss * self.accelerator.num_processes
        else:
            loss = loss_sum / (targets != IGNORE_INDEX).sum().clamp(min=1)
        return (loss, outputs) if return_outputs else loss

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        output = super().evaluation_loop(dataloader, description, prediction_loss_only=True, ignore_keys=ignore_keys,
                                         metric_key_prefix=metric_key_prefix)
        if self.generation_cer is not None and metric_key_prefix == "eval":
            for k, v in self.generation_cer(self.model, self.accelerator).items():
                output.metrics[f"{metric_key_prefix}_{k}"] = v
        return output


# -- model preparation -------------------------------------------------------------------------------------------

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
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    if args.load_in_4bit:
        # Not peft's prepare_model_for_kbit_training: it casts every non-quantized parameter to fp32 - for Gemma 3
        # the 262k x 2560 embedding and the whole frozen vision tower (docs/GPU.md: QLoRA peak 29.4 -> 19.6 GiB on
        # the 4B shape). Frozen weights need no fp32 copy (Gemma's norms compute in fp32 anyway); peft creates LoRA
        # weights in fp32; checkpointing is non-reentrant, so no input-grad hook either.
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


# -- data --------------------------------------------------------------------------------------------------------

def _validate(samples, name: str, skip_invalid: bool, printer=print):
    from lib.data import validate_samples

    report = validate_samples(samples)
    if report.ok:
        return list(samples), []
    text = report.format()
    if not skip_invalid:
        raise TrainingDataError(f"{name}: validation failed; nothing was trained.\n{text}\n"
                                "Fix the rows above, or pass --skip_invalid to train without them.")
    bad = report.bad_rows
    printer(f"{name}: skipping {len(bad)} invalid row(s) (--skip_invalid):\n{text}")
    return [s for s in samples if s.index not in bad], sorted(bad)


def prepare_samples(args: SFTArgs, printer=print):
    """(train, val, info): loaded, validated (refuse or skip), val split off by document when no --val_data."""
    from lib.data import dataset_hash, load_samples

    train = load_samples(args.input_data)
    train, skipped_train = _validate(train, args.input_data, args.skip_invalid, printer)
    if args.val_data:
        val = load_samples(args.val_data)
        val, skipped_val = _validate(val, args.val_data, args.skip_invalid, printer)
    elif args.val_ratio > 0 and len(train) > 1:
        from lib.split import split_by_document

        parts = split_by_document(train, val_fraction=args.val_ratio, test_fraction=0.0, seed=args.seed)
        train, val, skipped_val = parts["train"], parts["val"], []
    else:
        val, skipped_val = [], []
    if not train:
        raise TrainingDataError(f"{args.input_data}: no training samples left")
    info = {"train_file": args.input_data, "val_file": args.val_data, "n_train": len(train), "n_val": len(val),
            "train_hash": dataset_hash(train), "val_hash": dataset_hash(val) if val else None,
            "skipped_invalid": {"train": skipped_train, "val": skipped_val}}
    return train, val, info


def _filter_long(collator, samples, max_len: int, name: str, printer=print):
    lengths = measure_samples(collator, samples)
    keep, dropped = [], []
    for s, ln in zip(samples, lengths):
        (keep if ln.n_tokens <= max_len else dropped).append((s, ln))
    for s, ln in dropped:
        printer(f"{name} row {s.index}: {ln.n_tokens} tokens ({ln.n_image_tokens} image tokens, "
                f"{ln.pixels[0]}x{ln.pixels[1]} px) > max_seq_length {max_len}: skipped (never truncated; raise "
                f"--max_seq_length or lower --max_pixels)")
    stats = {}
    if lengths:
        toks = sorted(ln.n_tokens for ln in lengths)
        img = sorted(ln.n_image_tokens for ln in lengths)
        px = sorted({ln.pixels for ln in lengths})
        stats = {"tokens_min": toks[0], "tokens_median": toks[len(toks) // 2], "tokens_max": toks[-1],
                 "image_tokens_min": img[0], "image_tokens_max": img[-1],
                 "pixels": [f"{w}x{h}" for w, h in px[:5]] + (["..."] if len(px) > 5 else []),
                 "skipped_too_long": [s.index for s, _ in dropped]}
        printer(f"{name}: {len(samples)} samples, image {', '.join(stats['pixels'])} px -> "
                f"{img[0]}-{img[-1]} image tokens/sample; sequence {toks[0]}-{toks[-1]} tokens "
                f"(median {toks[len(toks) // 2]}); {len(dropped)} over max_seq_length skipped")
    return [s for s, _ in keep], stats


# -- trainer -----------------------------------------------------------------------------------------------------

def _training_arguments(args: SFTArgs, has_eval: bool):
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported() and args.dtype in ("auto", "bfloat16", "bf16")
    save_steps = args.save_steps
    if has_eval and save_steps % args.eval_steps:
        save_steps = args.eval_steps  # best-checkpoint selection needs a checkpoint at every evaluation
    report = [] if args.report_to == "none" else [args.report_to]
    return TrainingArguments(
        output_dir=args.output_dir, per_device_train_batch_size=args.per_device_train_batch_size,
        per_device_eval_batch_size=args.per_device_eval_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps, num_train_epochs=args.num_train_epochs,
        max_steps=args.max_steps, learning_rate=args.learning_rate, warmup_steps=args.warmup_ratio,
        lr_scheduler_type=args.lr_scheduler_type, weight_decay=args.weight_decay, optim=args.optim,
        max_grad_norm=args.max_grad_norm, logging_steps=args.logging_steps,
        eval_strategy="steps" if has_eval else "no", eval_steps=args.eval_steps if has_eval else None,
        save_strategy="steps", save_steps=save_steps, save_total_limit=args.save_total_limit,
        load_best_model_at_end=has_eval, metric_for_best_model=args.metric_for_best_model if has_eval else None,
        greater_is_better=False, seed=args.seed, data_seed=args.seed, report_to=report, run_name=args.run_name,
        bf16=bf16, fp16=False, use_cpu=not cuda, gradient_checkpointing=args.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if args.gradient_checkpointing else None,
        remove_unused_columns=False, prediction_loss_only=True, dataloader_num_workers=args.dataloader_num_workers,
        # workers outlive an epoch: no worker processes re-created at every epoch start
        dataloader_persistent_workers=args.dataloader_num_workers > 0,
        disable_tqdm=True, save_only_model=False, tf32=True if (args.tf32 and cuda) else None,
        # no per-step host<->device syncs (docs/GPU.md): a NaN/inf check of every loss and blocking batch copies
        # would make the CPU wait for the GPU each step instead of queueing the next one
        logging_nan_inf_filter=False, accelerator_config={"non_blocking": True},
    )


def build_trainer(args: SFTArgs, *, model=None, processor=None, train_samples=None, eval_samples=None,
                  callbacks: Sequence[Any] = (), printer=print) -> OCRTrainer:
    """Assemble the trainer. Given model/processor/samples are used as they are (samples: lists of lib.data.Sample,
    already validated); otherwise they are loaded from `args`. The model is wrapped for LoRA unless it already is."""
    from transformers import set_seed

    from lib.modeling import load_model_and_processor
    from lib.prompt import load_prompt

    set_seed(args.seed)
    if train_samples is None:
        train_samples, eval_samples, _ = prepare_samples(args, printer)
    eval_samples = list(eval_samples or [])
    if model is None or processor is None:
        model, processor = load_model_and_processor(args.model_name, dtype=args.dtype, load_in_4bit=args.load_in_4bit,
                                                    trust_remote_code=args.trust_remote_code, is_trainable=True)
    if args.min_pixels or args.max_pixels:
        ip = processor.image_processor
        for key in ("min_pixels", "max_pixels"):
            if getattr(args, key):
                setattr(ip, key, getattr(args, key))
                if isinstance(getattr(ip, "size", None), dict):
                    ip.size[{"min_pixels": "shortest_edge", "max_pixels": "longest_edge"}[key]] = getattr(args, key)
    if not hasattr(model, "peft_config"):
        model = apply_peft(model, args)
    if args.gradient_checkpointing:
        model.config.use_cache = False
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    printer(f"model {args.model_name}: {args.finetune}{' (4-bit QLoRA)' if args.load_in_4bit else ''}, "
            f"trainable {trainable:,} / {total:,} parameters ({100 * trainable / max(total, 1):.2f}%)")
    prompt = load_prompt(args.prompt_config, args.instruction)
    collator = OCRCollator(processor, prompt, pad_to_multiple_of=args.pad_to_multiple_of,
                           padding_side="right" if args.loss_impl == "chunked" else "left")
    train_samples, train_stats = _filter_long(collator, train_samples, args.max_seq_length, "train", printer)
    if eval_samples:
        eval_samples, _ = _filter_long(collator, eval_samples, args.max_seq_length, "val", printer)
    if not train_samples:
        raise TrainingDataError("every training sample is longer than max_seq_length; nothing to train on")
    gen_cer = GenerationCER(processor, prompt, eval_samples, n_samples=args.eval_cer_samples,
                            max_new_tokens=args.eval_max_new_tokens,
                            batch_size=args.per_device_eval_batch_size) if eval_samples else None
    cbs = [StepLogCallback(printer), *callbacks]
    if args.max_train_seconds:
        cbs.append(TimeLimitCallback(args.max_train_seconds, printer))
    try:
        from lib.search.pruning import OptunaPruningCallback
    except ImportError:  # search module absent: only a problem when a trial asks for it
        OptunaPruningCallback = None
    if args.optuna_storage and args.optuna_study_name and args.optuna_trial_number is not None:
        if OptunaPruningCallback is None:
            raise ImportError("optuna_* arguments given but lib.search.pruning is not importable")
        cbs.append(OptunaPruningCallback.from_args(args))
    trainer = OCRTrainer(model=model, args=_training_arguments(args, bool(eval_samples)),
                         train_dataset=_ListDataset(train_samples),
                         eval_dataset=_ListDataset(eval_samples) if eval_samples else None, data_collator=collator,
                         processing_class=processor, callbacks=cbs, generation_cer=gen_cer)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # StepLogCallback prints one dense line instead of raw dicts
    trainer.loss_impl = args.loss_impl
    trainer.vision_learning_rate = args.vision_learning_rate
    if args.group_by_length:  # answer length in characters: proportional to tokens, no processor call needed
        trainer.group_lengths = [len(s.text) for s in train_samples]
    _apply_speed_options(trainer, args, printer)
    trainer.ocr_prompt = prompt
    trainer.ocr_train_stats = train_stats
    return trainer


def _apply_speed_options(trainer: OCRTrainer, args: SFTArgs, printer=print) -> None:
    """SFTArgs speed switches (lib/train/speed.py); each leaves what the model computes unchanged."""
    from lib.train import speed

    if args.vision_no_grad and speed.no_grad_frozen_vision(trainer.model):
        printer("vision tower + projector frozen: run without autograd (vision_no_grad)")
    speed.no_sync_placeholder_mask(trainer.model)
    if args.compile_layers:
        n = speed.compile_layers(trainer.model, memory_budget=args.compile_memory_budget)
        trainer.compile_loss = args.loss_impl == "chunked"
        printer(f"torch.compile: {n} layers{' + the chunked loss' if trainer.compile_loss else ''} (compile_layers, "
                f"activation memory budget {args.compile_memory_budget})")


# -- the whole run -----------------------------------------------------------------------------------------------

def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for mod in ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "trl"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # not installed
            pass
    return out


def _hardware() -> dict[str, Any]:
    hw: dict[str, Any] = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "processor": platform.processor()}
    if torch.cuda.is_available():
        hw["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        hw["gpu_memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / 2 ** 30, 1)
    try:
        load = os.getloadavg()
        hw["load_average_1_5_15"] = [round(x, 2) for x in load]
    except OSError:
        pass
    return hw


def _peak_memory() -> dict[str, float]:
    out = {}
    if torch.cuda.is_available():
        out["gpu_peak_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 3)
        out["gpu_peak_reserved_gb"] = round(torch.cuda.max_memory_reserved() / 2 ** 30, 3)
    try:
        import resource

        out["cpu_peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 3)
    except (ImportError, OSError):
        pass
    return out


def _latest_checkpoint(output_dir: str) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None


def save_final(trainer: OCRTrainer, args: SFTArgs, final_dir: Path, metadata: dict) -> None:
    """Adapter (or full model) + processor + chat template + prompt + resolved config + metadata.json."""
    from lib.config import save_resolved_config
    from lib.results import atomic_write_json

    final_dir.mkdir(parents=True, exist_ok=True)
    trainer.model.save_pretrained(final_dir)
    trainer.processing_class.save_pretrained(final_dir)
    prompt = trainer.ocr_prompt
    import yaml

    (final_dir / "ocr_prompt.yml").write_text(yaml.safe_dump(
        {"prompt_text": prompt.prompt_text, "image_position": prompt.image_position,
         "system_prompt": prompt.system_prompt}, allow_unicode=True, sort_keys=False), encoding="utf-8")
    save_resolved_config(args, final_dir / "training_config.json")
    save_resolved_config(args, Path(args.output_dir) / "training_config.json")
    atomic_write_json(metadata, final_dir / "metadata.json")
    atomic_write_json(metadata, Path(args.output_dir) / "metadata.json")


def run_training(args: SFTArgs, printer=print) -> dict:
    """Validate data, train (or resume), save, and report. Returns the metadata dict (also in metadata.json)."""
    from lib.config import format_config
    from lib.results import git_commit

    t_start = time.time()
    printer(format_config(args))
    random.seed(args.seed)
    train, val, data_info = prepare_samples(args, printer)
    printer(f"data: {data_info['n_train']} train / {data_info['n_val']} val samples "
            f"(train hash {data_info['train_hash']})")
    trainer = build_trainer(args, train_samples=train, eval_samples=val, printer=printer)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    resume = args.resume_from_checkpoint
    if resume == "latest":
        resume = _latest_checkpoint(args.output_dir)
        if resume is None:
            printer(f"resume_from_checkpoint=latest: no checkpoint in {args.output_dir}; starting from scratch")
    if resume:
        printer(f"resuming from {resume}")
    if args.is_debug and val:
        printer(f"[debug] before training: {val[0].text!r} -> {_predict_one(trainer, val[0])!r}")
    t_train = time.time()
    train_out = trainer.train(resume_from_checkpoint=resume or None)
    train_wall = time.time() - t_train
    final = {}
    if val:
        metrics = trainer.evaluate()
        final["final_val_loss"] = metrics.get("eval_loss")
        gen = GenerationCER(trainer.processing_class, trainer.ocr_prompt, val, n_samples=args.final_eval_samples,
                            max_new_tokens=args.eval_max_new_tokens, batch_size=args.per_device_eval_batch_size)
        res = gen(trainer.model, trainer.accelerator)
        final["final_val_cer"] = res.get("cer")
        final["final_val_cer_n"] = int(res.get("cer_n", 0))
        local = int(res.get("cer_n_local", final["final_val_cer_n"]))
        printer(f"final validation: loss {final['final_val_loss']:.4f} | generation CER (micro, standard, greedy, "
                f"n={final['final_val_cer_n']}{f', {local} decoded on this rank' if local != final['final_val_cer_n'] else ''}) "
                f"{final['final_val_cer']:.4f}")
    if args.is_debug and val:
        printer(f"[debug] after training: {val[0].text!r} -> {_predict_one(trainer, val[0])!r}")
    final_dir = Path(args.output_dir) / ("lora" if args.finetune == "lora" else "model")
    metadata = {
        "base_model": args.model_name, "finetune": args.finetune, "load_in_4bit": args.load_in_4bit,
        "final_dir": str(final_dir), "global_step": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint, "best_metric": trainer.state.best_metric,
        "metric_for_best_model": args.metric_for_best_model if val else None,
        "train_loss": train_out.training_loss, **final,
        "train_wall_s": round(train_wall, 2), "total_wall_s": round(time.time() - t_start, 2),
        "resumed_from": resume or None, "hardware": _hardware(), "versions": _versions(),
        "peak_memory": _peak_memory(), "git_commit": git_commit(), "data": {**data_info, **trainer.ocr_train_stats},
        "prompt": trainer.ocr_prompt.to_dict(), "log_history": trainer.state.log_history,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if trainer.is_world_process_zero():  # one writer under accelerate launch; every rank holds the same weights
        save_final(trainer, args, final_dir, metadata)
        printer(f"saved {'adapter' if args.finetune == 'lora' else 'model'} + processor + metadata to {final_dir} "
                f"({trainer.state.global_step} steps, {train_wall:.0f} s)")
    trainer.accelerator.wait_for_everyone()
    return metadata


def _predict_one(trainer, sample) -> str:
    from lib.generation import generate_batch

    return generate_batch(trainer.model, trainer.processing_class, trainer.ocr_prompt, [sample.image_path],
                          max_new_tokens=64, batch_size=1)[0].text
