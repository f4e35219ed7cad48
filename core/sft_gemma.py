"""Fine-tune a vision-language model for OCR (LoRA, QLoRA or full fine-tuning).

    python core/sft_gemma.py --config configs/hyperparm_configs/default.json --input_data data/train.json \
        --val_data data/val.json --output_dir models/gemma12b_ocr
    python core/sft_gemma.py --config configs/quickstart/train.json          # embedded tiny model, CPU

The original project's flags work unchanged (--model_name --input_data --instruction --output_dir --learning_rate
--num_train_epochs --gradient_accumulation_steps --per_device_train_batch_size --max_seq_length --load_in_4bit ...).
Any other transformers.TrainingArguments setting: --trainer_args '{"name": value}'.
Without --config, configs/hyperparm_configs/default.json is used (google/gemma-3-12b-it, 4-bit). Writes
output_dir/checkpoint-*, output_dir/lora (adapter + processor + chat template + prompt + training_config.json +
metadata.json). All flags: --help; details: docs/TRAINING.md.
"""

from __future__ import annotations

import logging
import sys

from lib.config import parse_args
from lib.train.args import LEGACY_KEYS, SFTArgs


def main(args: SFTArgs) -> dict:
    from lib.train import run_training

    return run_training(args)


if __name__ == "__main__":
    from lib.errors import cli_errors

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with cli_errors("sft_gemma.py"):  # a bad flag, config file or data file: one line, exit 2
            main(parse_args(SFTArgs, legacy_keys=LEGACY_KEYS, prog="sft_gemma.py"))
    except Exception as exc:  # readable one-line reason, non-zero exit
        from lib.train import TrainingDataError

        if isinstance(exc, TrainingDataError):
            print(f"sft_gemma.py: error: {exc}", file=sys.stderr)
            sys.exit(2)
        raise
