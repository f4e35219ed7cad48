"""OCR fine-tuning: `SFTArgs` (the arguments of core/sft_gemma.py), `run_training(args) -> dict`,
`build_trainer(args, ...)` (the trainer run_training uses; benchmarks time it), the collator with answer-only labels.
Heavy imports (torch, transformers) happen when `run_training`/`build_trainer` are first used."""

from lib.train.args import LEGACY_KEYS, SFTArgs

__all__ = ["SFTArgs", "LEGACY_KEYS", "run_training", "build_trainer"]


def __getattr__(name):
    if name in ("run_training", "build_trainer", "OCRTrainer", "prepare_samples", "apply_peft"):
        from lib.train import trainer

        return getattr(trainer, name)
    raise AttributeError(name)
