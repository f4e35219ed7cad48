"""Every use of a private transformers or accelerate API in lib/train, behind one switch.

Training speed needs a few things the libraries offer only privately. All of them are here, each with what it
touches, so the rest of lib/train never names a private attribute:

- `TrainerHooks._get_train_sampler` (`Trainer._get_train_sampler`): `LengthBucketSampler` for `group_by_length`.
- `TrainerHooks.get_train_dataloader`: the training DataLoader over `EpochStreamBatchSampler`, one iterator through
  all epochs (lib/train/sampler.py), built with the parameters `Trainer._get_dataloader` gives a training loader
  (`Trainer._get_collator_with_removed_columns`, `transformers.trainer_utils.seed_worker`); under DDP accelerate's
  `BatchSamplerShard` is set to pass the stream's per-rank batches through (`num_processes`, `process_index`).
- `TrainerHooks._clip_grad_norm` (`Trainer._clip_grad_norm`, `Trainer._has_mixed_mesh_grads`): clipping over the
  trainable parameters only, from the list `OCRTrainer.train` took at its start.
- `TrainerHooks._load_best_model`, `TrainerHooks._load_from_checkpoint` (same names on `Trainer`): a full model's
  best checkpoint and resumed checkpoint loaded through `from_pretrained`, which maps transformers 5's saved key
  layout back (the Trainer's plain `load_state_dict` matches no key). Not behind the switch: a correctness fix.
- `active_train_loader`: the loader the Trainer iterates (`trainer.callback_handler.train_dataloader`).
- `no_grad_frozen_vision`, `no_sync_placeholder_mask`: replace the model's `get_image_features` and, on
  `Gemma3Model` (found by class name), `get_placeholder_mask` - which the models' `forward` call internally.

`FAST_PATH` is true when the installed transformers and accelerate are versions these were checked against
(`CHECKED`; tests/test_train_internals.py pins them, so CI says when an upgrade needs a new check) and
`GEMMA_OCR_PRIVATE_API` is not `0`. Otherwise every piece takes the library's own code path and one warning line
says so: same losses and weights, only slower - except that `group_by_length` then gets the Trainer's random order.

Not for: speed pieces that use public API only (lib/train/speed.py), or anything that changes what is computed.
"""

from __future__ import annotations

import functools
import logging
import os
from functools import partial
from importlib.metadata import version

import torch
from accelerate.data_loader import BatchSamplerShard
from torch.utils.data import DataLoader
from transformers.trainer_utils import seed_worker

from lib.train.sampler import ContinuousEpochs, EpochStreamBatchSampler, LengthBucketSampler
from lib.train.speed import base_model_of

__all__ = ["CHECKED", "FAST_PATH", "fast_path", "installed_versions", "TrainerHooks", "active_train_loader",
           "no_grad_frozen_vision", "no_sync_placeholder_mask"]

log = logging.getLogger(__name__)

# major.minor releases every piece above was read against and the equivalence tests passed on
# (5.23 / 1.15: the GPU machine's image; 5.25 / 1.16: CPU CI)
CHECKED = {"transformers": ("5.23", "5.25"), "accelerate": ("1.15", "1.16")}


def installed_versions() -> dict[str, str]:
    return {name: version(name) for name in CHECKED}


def _checked(installed: dict[str, str]) -> bool:
    return all(".".join(v.split(".")[:2]) in CHECKED[name] for name, v in installed.items())


FAST_PATH = os.environ.get("GEMMA_OCR_PRIVATE_API", "1") != "0" and _checked(installed_versions())
_warned = False


def fast_path() -> bool:
    """Whether to use the private API (the switch); the first call that says no logs why, once per process."""
    global _warned
    if not FAST_PATH and not _warned:
        _warned = True
        installed = ", ".join(f"{k} {v}" for k, v in installed_versions().items())
        checked = ", ".join(f"{k} {'/'.join(v)}" for k, v in CHECKED.items())
        why = ("GEMMA_OCR_PRIVATE_API=0" if os.environ.get("GEMMA_OCR_PRIVATE_API", "1") == "0" else
               f"{installed} not among the checked {checked}")
        log.warning("lib/train fast path off (%s): training takes the libraries' own, slower code paths", why)
    return FAST_PATH


class TrainerHooks:
    """Mixin for a `transformers.Trainer` subclass: the private Trainer methods training overrides. The subclass
    sets `group_lengths` (None: no length grouping), `_resuming` and `_walks` (an object with `trainable`, or None)."""

    group_lengths: list[int] | None = None

    def _get_train_sampler(self, train_dataset=None):
        if self.group_lengths is None or not fast_path():
            return super()._get_train_sampler(train_dataset)
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        # batches of the micro-batch size: padding is per forward pass
        return LengthBucketSampler(self.args.train_batch_size, self.group_lengths, seed=seed)

    def get_train_dataloader(self):
        """With `group_by_length` (and not resuming): the loader runs through the epochs without stopping
        (`ContinuousEpochs`), under DDP with each rank's share of every epoch as accelerate would cut it; otherwise
        (and where accelerate would not give whole batches per rank: split or dispatched batches, uneven batches)
        the Trainer's own. Same batches either way."""
        dataset, acc = self.train_dataset, self.accelerator
        if (self.group_lengths is None or self._resuming or dataset is None or not fast_path()
                or isinstance(dataset, torch.utils.data.IterableDataset)
                or (acc.num_processes > 1 and (acc.split_batches or acc.dispatch_batches or not acc.even_batches))):
            return super().get_train_dataloader()
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

    def _clip_grad_norm(self, model):
        """Clip over the trainable parameters only (the frozen ones have no gradient, so the norm is the same),
        without listing every parameter tensor of the model each step."""
        walks = getattr(self, "_walks", None)
        if (walks is None or not fast_path() or getattr(self.args, "fp16", False)
                or self._has_mixed_mesh_grads(model)):
            return super()._clip_grad_norm(model)
        # the list taken at train() start: the same parameter objects under a DDP wrapper
        return self.accelerator.clip_grad_norm_(walks.trainable, self.args.max_grad_norm)

    def _load_best_model(self):
        """`load_best_model_at_end` for a full (not PEFT) model: `_load_saved_model`; otherwise the Trainer's own."""
        if not self._load_saved_model(self.state.best_model_checkpoint):
            super()._load_best_model()

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Resuming a full (not PEFT) model: `_load_saved_model`; otherwise the Trainer's own."""
        if (model is not None and model is not self.model) or not self._load_saved_model(resume_from_checkpoint):
            super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_saved_model(self, folder) -> bool:
        """Load the weights of a full model that `save_pretrained` wrote into `folder` back into the model being
        trained; False where the Trainer's own loading applies (PEFT adapters, FSDP, DeepSpeed, no config.json).

        transformers 5 writes checkpoints in the original key layout (`save_pretrained(save_original_format=True)`:
        `language_model.model.layers...` for Gemma 3), which the Trainer's `model.load_state_dict(state_dict, False)`
        cannot map back to the live one (`model.language_model.layers...`): every key comes back missing or
        unexpected, one warning line is logged, and the best checkpoint or a resumed run silently keeps the weights
        it had. `from_pretrained` applies the model's conversion mapping; the weights are then copied in strictly."""
        from transformers import PreTrainedModel

        model = self.accelerator.unwrap_model(self.model)
        if (self.is_deepspeed_enabled or self.is_fsdp_enabled or not isinstance(model, PreTrainedModel)
                or getattr(model, "_hf_peft_config_loaded", False)
                or not os.path.isfile(os.path.join(folder, "config.json"))):
            return False
        saved = type(model).from_pretrained(folder, dtype="auto")
        result = model.load_state_dict(saved.state_dict(), strict=False)
        del saved
        if result.missing_keys or result.unexpected_keys:
            raise RuntimeError(f"{folder}: the saved weights do not match the model being trained (missing "
                               f"{result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})")
        log.info("loaded the weights of %s", folder)
        return True


def active_train_loader(trainer):
    """The training loader the Trainer iterates (None when not known, or off the fast path, which never streams)."""
    return getattr(trainer.callback_handler, "train_dataloader", None) if FAST_PATH else None


def no_grad_frozen_vision(model) -> bool:
    """If nothing in the vision tower or projector trains, run `get_image_features` under no_grad: no activations
    kept, no backward through them. Returns whether it did. (Reentrant gradient checkpointing must then not rely on
    input grads: use use_reentrant=False.)"""
    base = base_model_of(model)
    inner = getattr(base, "model", base)
    parts = [getattr(inner, n, None) for n in ("vision_tower", "visual", "multi_modal_projector")]
    parts = [p for p in parts if p is not None]
    if not parts or any(p.requires_grad for part in parts for p in part.parameters()) or not fast_path():
        return False
    orig = inner.get_image_features
    if getattr(orig, "_no_grad_wrapped", False):
        return True

    @functools.wraps(orig)
    def get_image_features(*args, **kwargs):
        with torch.no_grad():
            return orig(*args, **kwargs)

    get_image_features._no_grad_wrapped = True
    inner.get_image_features = get_image_features
    return True


def no_sync_placeholder_mask(model) -> bool:
    """Replace a Gemma 3 model's `get_placeholder_mask` with one that does not read a GPU value on the host.

    transformers' version formats an error message holding a GPU tensor and checks the image-token count with a
    host-side assert on every forward: two device syncs per step that stop the CPU from queueing work ahead of the
    GPU. The processor already expands each image placeholder to exactly the model's image-token count, so the mask
    alone is enough. Returns whether it replaced it."""
    base = base_model_of(model)
    inner = getattr(base, "model", base)
    if not hasattr(inner, "get_placeholder_mask") or type(inner).__name__ != "Gemma3Model" or not fast_path():
        return False
    image_token_id = base.config.image_token_id

    def get_placeholder_mask(input_ids, inputs_embeds, image_features=None, **_):
        if input_ids is None:  # embeddings given: fall back to the original (comparison with the image embedding)
            return type(inner).get_placeholder_mask(inner, input_ids, inputs_embeds=inputs_embeds,
                                                    image_features=image_features)
        return (input_ids == image_token_id).unsqueeze(-1).to(inputs_embeds.device)

    inner.get_placeholder_mask = get_placeholder_mask
    return True
