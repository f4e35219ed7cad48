"""The OCR Trainer: `transformers.Trainer` with an answer-only loss, the generation CER in every evaluation, vision
parameter groups and cheap per-step module walks.

Why `Trainer` and not TRL's `SFTTrainer`: TRL 1.16 truncates at max_length=1024 by default (which cuts image tokens
of real pages), turns gradient checkpointing on by default, and refuses assistant-only loss with images on
transformers < 5.18. Our collator (lib/train/collator.py) already builds exactly the labels we want, so the plain
Trainer plus a loss that computes logits only where labels are is all we need.

Not for: assembling it from SFTArgs (lib/train/build.py) or the run around it (lib/train/run.py).
"""

from __future__ import annotations

import torch
from transformers import Trainer

from lib.train.callbacks import GenerationCER
from lib.train.collator import IGNORE_INDEX
from lib.train.internals import TrainerHooks, active_train_loader
from lib.train.model import is_vision_or_projector
from lib.train.sampler import ContinuousEpochs
from lib.train.speed import label_only_loss

__all__ = ["OCRTrainer"]


class _FastModuleWalks:
    """While the Trainer trains, make its per-step walks over the whole module tree cheap: `model.train()` (every
    `training_step`) returns at once when every module is already in training mode, and `model.zero_grad()` (every
    optimizer step) clears the gradients of the parameters that were trainable when training started - the frozen
    ones never get any (nothing in this project changes `requires_grad` during training). On a multi-billion
    parameter VLM each walk is milliseconds of Python per step that the GPU sees as idle time (docs/GPU.md).
    Instance attributes, removed on exit; same effect as the methods they shadow. Not used under FSDP or DeepSpeed
    (they replace or own the parameters: OCRTrainer.train)."""

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


class OCRTrainer(TrainerHooks, Trainer):
    """Trainer with (1) a loss on label positions only (the chunked loss of lib/train/speed.py, or the logits of the
    trailing positions of a left-padded batch: `logits_to_keep`), (2) the generation CER added to every evaluation
    as `eval_cer`, (3) optional own parameter groups for the vision tower (`vision_learning_rate`) and (4) cheap
    per-step module walks while it trains. The private Trainer methods it overrides (length-grouped sampler,
    streamed loader, clipping) come from lib/train/internals.py."""

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
            loader = active_train_loader(self)
            if isinstance(loader, ContinuousEpochs):
                loader.close()

    def floating_point_ops(self, inputs) -> int:
        """The Trainer's FLOP estimate (6 x tokens x parameters), with the parameter count computed once instead of
        at every step (a walk over all modules)."""
        main = getattr(self.model, "main_input_name", "input_ids")
        if main not in inputs or not hasattr(self.model, "num_parameters"):
            return 0
        if self._param_count is None or self._param_count[0] != id(self.model):
            self._param_count = (id(self.model), self.model.num_parameters(exclude_embeddings=True))
        return 6 * inputs[main].numel() * self._param_count[1]

    loss_impl = "logits"  # build_trainer sets it from SFTArgs.loss_impl
    compile_loss = False  # build_trainer sets it with SFTArgs.compile_layers: the chunked loss's softmax compiled too
    vision_learning_rate: float | None = None  # build_trainer sets it from SFTArgs.vision_learning_rate
    group_lengths: list[int] | None = None  # build_trainer sets it when SFTArgs.group_by_length (TrainerHooks)

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

