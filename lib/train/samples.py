"""Data preparation for training: load the training and validation files, validate them (refuse, or skip bad rows
with --skip_invalid), split off a validation set by document when none is given, and skip samples longer than
max_seq_length (reported, never truncated).

Not for: reading or validating one file (lib/data.py), or turning samples into batches (lib/train/collator.py).
"""

from __future__ import annotations

from typing import Any

import torch

from lib.data import Sample, dataset_hash, load_samples, validate_samples
from lib.split import split_by_document
from lib.train.args import SFTArgs
from lib.train.collator import OCRCollator, measure_samples

__all__ = ["TrainingDataError", "ListDataset", "prepare_samples", "filter_long"]


class TrainingDataError(ValueError):
    """The training data failed validation (the message is the full report) or nothing is left to train on."""


class ListDataset(torch.utils.data.Dataset):
    """The samples as the Trainer's dataset (the collator turns them into tensors)."""

    def __init__(self, samples):
        self.samples = list(samples)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


def _validate(samples, name: str, skip_invalid: bool, printer=print):
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


def prepare_samples(args: SFTArgs, printer=print) -> tuple[list[Sample], list[Sample], dict[str, Any]]:
    """(train, val, info): loaded, validated (refuse or skip), val split off by document when no --val_data."""
    train = load_samples(args.input_data)
    train, skipped_train = _validate(train, args.input_data, args.skip_invalid, printer)
    if args.val_data:
        val = load_samples(args.val_data)
        val, skipped_val = _validate(val, args.val_data, args.skip_invalid, printer)
    elif args.val_ratio > 0 and len(train) > 1:
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


def filter_long(collator: OCRCollator, samples, max_len: int, name: str, printer=print):
    """(samples of at most `max_len` tokens, token/pixel statistics); each one skipped is reported with its size."""
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
