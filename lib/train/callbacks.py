"""Training callbacks and the generation-based validation CER.

`GenerationCER` decodes a fixed, capped validation subset greedily (lib.generation, the evaluation path) and
scores it with the registry's `cer` (lib.metrics: micro CER, standard profile - the same code evaluation scores with). `OCRTrainer.evaluation_loop` adds its value as
`eval_cer` to the evaluation metrics, so it is logged every `eval_steps`, seen by every callback's `on_evaluate`
(the Optuna pruning callback prunes on it) and used to pick the best checkpoint. No logits are kept: generation
returns token ids only. In a data-parallel (DDP) run the subset is split across ranks and the edit counts summed.

`StepLogCallback` prints one dense line per logging step: step | loss | lr | s/step | eta.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import torch
from accelerate.utils import DistributedType, gather_object
from transformers import TrainerCallback

from lib.generation import generate_batch
from lib.reader.preprocess import fold_for_training, reader_input_of
from lib.metrics import get_metric

__all__ = ["GenerationCER", "StepLogCallback", "TimeLimitCallback", "micro_cer"]

log = logging.getLogger(__name__)


def micro_cer(predictions: Sequence[str], labels: Sequence[str], profile: str = "standard") -> float:
    """The registry's micro CER: sum of edit distances / sum of reference lengths after `normalize(profile)`."""
    errs, tot = get_metric("cer").counts(predictions, labels, profile)
    return errs / tot if tot else 0.0


def _shards_generation(accelerator) -> bool:
    """Data-parallel runs (DDP) can split generation across ranks: each rank's model is whole. FSDP and DeepSpeed
    (ZeRO-3 gathers parameters collectively in every forward) need every rank in every forward, so there each rank
    decodes the whole subset."""
    if accelerator is None or accelerator.num_processes <= 1:
        return False
    data_parallel = {getattr(DistributedType, n) for n in ("MULTI_GPU", "MULTI_CPU", "MULTI_XPU", "MULTI_NPU",
                                                           "MULTI_MLU", "MULTI_MUSA", "MULTI_HPU")
                     if hasattr(DistributedType, n)}
    return accelerator.distributed_type in data_parallel


class GenerationCER:
    """Greedy generation on the first `n_samples` validation samples; returns micro CER (standard profile)."""

    def __init__(self, processor, prompt, samples: Sequence[Any], *, n_samples: int = 32, max_new_tokens: int = 512,
                 batch_size: int = 8):
        self.processor = processor
        self.prompt = prompt
        self.samples = list(samples)[:n_samples] if n_samples and n_samples > 0 else list(samples)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.last_predictions: list[str] = []

    def __call__(self, model, accelerator=None) -> dict[str, float]:
        """Micro CER of greedy generation on the subset. With an `accelerate` Accelerator of a data-parallel run, rank
        r decodes samples r, r + world, ... and the edit counts are summed over ranks (every rank returns the same
        CER; `cer_n_local` is this rank's share); otherwise this process decodes all of them."""
        if not self.samples:
            return {}
        t0 = time.perf_counter()
        sharded = _shards_generation(accelerator)
        rank, world = (accelerator.process_index, accelerator.num_processes) if sharded else (0, 1)
        local = self.samples[rank::world]
        images = [s.image_path for s in local]
        spec = reader_input_of(self.processor)
        if spec is not None:  # a folded-line reader reads its labelled line crops folded, as the collator feeds them
            from PIL import Image

            images = [fold_for_training(Image.open(p).convert("RGB"), spec) for p in images]
        preds = [o.text for o in generate_batch(model, self.processor, self.prompt, images,
                                                max_new_tokens=self.max_new_tokens, batch_size=self.batch_size)] \
            if local else []
        errs, tot = get_metric("cer").counts(preds, [s.text for s in local], "standard")
        if sharded:
            counts = accelerator.reduce(torch.tensor([errs, tot], dtype=torch.float64, device=accelerator.device),
                                        reduction="sum")
            errs, tot = (int(round(float(x))) for x in counts.cpu())
            pieces = gather_object([(rank + world * i, text) for i, text in enumerate(preds)])
            preds = [text for _, text in sorted(pieces)]
        self.last_predictions = preds
        return {"cer": errs / tot if tot else 0.0, "cer_n": float(len(self.samples)), "cer_n_local": float(len(local)),
                "cer_runtime": time.perf_counter() - t0}


class StepLogCallback(TrainerCallback):
    """One line per log: `step 40/300 | loss 2.113 | lr 2.0e-03 | 0.41 s/step | eta 1m46s` (+ eval metrics)."""

    def __init__(self, printer=print):
        self.printer = printer
        self.t0 = None
        self.step0 = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.t0 = time.perf_counter()
        self.step0 = state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or self.t0 is None:
            return
        done = max(1, state.global_step - self.step0)
        dt = (time.perf_counter() - self.t0) / done
        eta = dt * max(0, state.max_steps - state.global_step)
        parts = [f"step {state.global_step}/{state.max_steps}"]
        if "loss" in logs:
            parts.append(f"loss {logs['loss']:.4f}")
        if "learning_rate" in logs:
            parts.append(f"lr {logs['learning_rate']:.2e}")
        for k in ("eval_loss", "eval_cer"):
            if k in logs:
                parts.append(f"{k} {logs[k]:.4f}")
        parts.append(f"{dt:.2f} s/step")
        parts.append(f"eta {int(eta // 60)}m{int(eta % 60):02d}s")
        if "loss" in logs or "eval_loss" in logs or "eval_cer" in logs:
            self.printer(" | ".join(parts))


class TimeLimitCallback(TrainerCallback):
    """Stop training once `seconds` have passed since it began (`SFTArgs.max_train_seconds`): the step in progress
    finishes, then the Trainer evaluates (when it has an eval set), saves a checkpoint and ends as at `max_steps`
    (the learning-rate schedule is not shortened). Evaluating the last step makes it a candidate for the best
    checkpoint; otherwise `load_best_model_at_end` could discard the steps after the last scheduled evaluation.
    `stopped_at_step` records where."""

    def __init__(self, seconds: float, printer=print):
        self.seconds = float(seconds)
        self.printer = printer
        self.t0: float | None = None
        self.stopped_at_step: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.t0 is not None and self.stopped_at_step is None and time.perf_counter() - self.t0 >= self.seconds:
            self.stopped_at_step = state.global_step
            self.printer(f"max_train_seconds={self.seconds:g} reached at step {state.global_step}/{state.max_steps}: "
                         "stopping (checkpoint + final evaluation follow)")
            control.should_training_stop = True
            control.should_save = True
            if args.eval_strategy != "no":  # IntervalStrategy is a str enum
                control.should_evaluate = True
        return control
