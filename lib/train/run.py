"""One training run: load and validate the data, build the trainer, train (or resume), evaluate the saved model
on the whole validation set, save adapter + processor + chat template + prompt + resolved config + metadata.json,
and record where and how it ran (hardware, versions, peak memory, git commit).

Search and other callers hook in through `callbacks` (transformers TrainerCallbacks); training knows nothing of
who listens. Not for: assembling the trainer (lib/train/build.py).
"""

from __future__ import annotations

import os
import platform
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml
from transformers.trainer_utils import get_last_checkpoint

from lib.config import format_config, save_resolved_config
from lib.generation import generate_batch
from lib.results import TrainingMetadata, git_commit, write_training_metadata
from lib.train.args import SFTArgs
from lib.train.build import build_trainer
from lib.train.callbacks import GenerationCER
from lib.train.samples import prepare_samples
from lib.train.trainer import OCRTrainer

__all__ = ["run_training", "save_final"]


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
        out["cpu_peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 3)
    except OSError:
        pass
    return out


def _latest_checkpoint(output_dir: str) -> str | None:
    return get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None


def save_final(trainer: OCRTrainer, args: SFTArgs, final_dir: Path, metadata: TrainingMetadata) -> None:
    """Adapter (or full model) + processor + chat template + prompt + resolved config + metadata.json."""
    final_dir.mkdir(parents=True, exist_ok=True)
    trainer.model.save_pretrained(final_dir)
    trainer.processing_class.save_pretrained(final_dir)
    prompt = trainer.ocr_prompt
    (final_dir / "ocr_prompt.yml").write_text(yaml.safe_dump(
        {"prompt_text": prompt.prompt_text, "image_position": prompt.image_position,
         "system_prompt": prompt.system_prompt}, allow_unicode=True, sort_keys=False), encoding="utf-8")
    save_resolved_config(args, final_dir / "training_config.json")
    save_resolved_config(args, Path(args.output_dir) / "training_config.json")
    write_training_metadata(metadata, final_dir)
    write_training_metadata(metadata, args.output_dir)
    if args.finetune == "full":  # a fully fine-tuned folded-line reader stays one (an adapter: lib/merge.py)
        from lib.reader.preprocess import copy_reader_config

        copy_reader_config(args.model_name, final_dir)


def run_training(args: SFTArgs, callbacks: Sequence[Any] = (), printer=print) -> TrainingMetadata:
    """Validate data, train (or resume), save, and report. `callbacks` are added to the trainer's. Returns the
    metadata (also written as metadata.json)."""
    t_start = time.time()
    printer(format_config(args))
    random.seed(args.seed)
    train, val, data_info = prepare_samples(args, printer)
    printer(f"data: {data_info['n_train']} train / {data_info['n_val']} val samples "
            f"(train hash {data_info['train_hash']})")
    trainer = build_trainer(args, train_samples=train, eval_samples=val, callbacks=callbacks, printer=printer)
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
    metadata: TrainingMetadata = {
        "base_model": args.model_name, "finetune": args.finetune, "load_in_4bit": args.load_in_4bit,
        "final_dir": str(final_dir), "global_step": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint, "best_metric": trainer.state.best_metric,
        "metric_for_best_model": args.metric_for_best_model if val else None,
        "train_loss": train_out.training_loss, **final,  # type: ignore[typeddict-item]
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
    return generate_batch(trainer.model, trainer.processing_class, trainer.ocr_prompt, [sample.image_path],
                          max_new_tokens=64, batch_size=1)[0].text
