"""OCR fine-tuning. Where each part lives:

- `args.py` - `SFTArgs`, the arguments of core/sft_gemma.py (only ours; Trainer fields pass through by name)
- `samples.py` - data preparation: load, validate, split off validation, skip over-long samples
- `collator.py` - samples -> batches with labels on the answer only
- `model.py` - model preparation: LoRA targets, PEFT wrapping, pixel limits
- `trainer.py` - `OCRTrainer`: answer-only loss, generation CER, vision parameter groups
- `sampler.py` - the fast loader: length-grouped batches streamed through the epochs
- `speed.py` - chunked label-only loss, regional compilation (public API only)
- `internals.py` - every private transformers/accelerate API training uses, behind one switch
- `callbacks.py` - generation CER, the step log line, the time limit
- `build.py` - `build_trainer(args, ...)`: SFTArgs -> TrainingArguments -> a ready OCRTrainer
- `run.py` - `run_training(args, callbacks=...)`: train, evaluate, save, metadata.json

The names below are importable from `lib.train`; torch and transformers load when one of the training names is
first used, so `core/sft_gemma.py --help` stays instant.
"""

from lib.train.args import LEGACY_KEYS, SFTArgs

__all__ = ["SFTArgs", "LEGACY_KEYS", "run_training", "build_trainer", "OCRTrainer", "prepare_samples", "apply_peft",
           "TrainingDataError"]

_LAZY = {"run_training": "lib.train.run", "build_trainer": "lib.train.build", "OCRTrainer": "lib.train.trainer",
         "prepare_samples": "lib.train.samples", "TrainingDataError": "lib.train.samples",
         "apply_peft": "lib.train.model"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lib.train' has no attribute {name!r}")
