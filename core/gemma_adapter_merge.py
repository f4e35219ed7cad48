"""Merge a LoRA adapter into its base model (bf16/fp32, never 4-bit) and save the full VLM for vLLM / evaluate.py.

    python core/gemma_adapter_merge.py --lora_dir models/gemma12b_ocr/lora --output_dir models/gemma12b_ocr_merged \
        --verify --verify_data data/split/val.json

The base model is read from the adapter (metadata.json / adapter_config.json) unless --base_model is given. Saves
config (architectures = the full vision-language class), weights, processor, chat template, the training prompt
(ocr_prompt.yml), training_config.json and training_metadata.json. --verify compares merged vs adapter outputs
(max logit difference, identical greedy text) and merged vs base (must differ) and exits 1 if a check fails.
Disk space is checked on the filesystem of --output_dir.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from lib.config import field, parse_args


@dataclasses.dataclass
class MergeArgs:
    """Merge a LoRA adapter into its base model and save the full model."""

    lora_dir: str = field("models/vision_sft/lora", help="adapter folder (output_dir/lora of sft_gemma.py)",
                          aliases=["adapter_path", "adapter_dir"])
    output_dir: str = field("models/merged", help="where the merged model is written")
    base_model: str | None = field(None, help="base model (default: the one the adapter was trained on)")
    dtype: str = field("bfloat16", choices=["bfloat16", "float16", "float32", "auto"],
                       help="dtype of the merged weights (4-bit is refused: merge into bf16 and quantize later)")
    verify: bool = field(False, help="check merged vs adapter (≈ logits, same greedy text) and merged vs base (differ)")
    verify_data: str | None = field(None, help="data file whose first images are used by --verify (default: the "
                                    "training run's val_data, else data/example.json)")
    verify_samples: int = field(4, help="samples used by --verify")
    verify_dtype: str = field("float32", choices=["float32", "bfloat16"], help="dtype the three models run in for "
                              "--verify (fp32 makes the logit comparison tight)")
    verify_tolerance: float | None = field(None, help="max |logit diff| merged vs adapter (default 1e-3 fp32, 0.15 "
                                           "bf16, 0.5 for QLoRA adapters)")
    max_new_tokens: int = field(64, help="greedy tokens compared by --verify")
    trust_remote_code: bool = field(False, help="allow model code from the checkpoint")


def _verify_inputs(args: MergeArgs) -> tuple[list[str], list[str]]:
    from lib.data import load_samples

    data = args.verify_data
    if not data:
        cfg = Path(args.lora_dir) / "training_config.json"
        if cfg.is_file():
            c = json.loads(cfg.read_text(encoding="utf-8")).get("config", {})
            data = c.get("val_data") or c.get("input_data")
    if not data or not Path(data).is_file():
        data = str(Path(__file__).resolve().parents[1] / "data" / "example.json")
    samples = load_samples(data)[: args.verify_samples]
    return [s.image_path for s in samples], [s.text for s in samples]


def main(args: MergeArgs) -> dict:
    from lib.config import format_config
    from lib.merge import merge_adapter, verify_merge

    print(format_config(args))
    summary = merge_adapter(args.lora_dir, args.output_dir, base_model=args.base_model, dtype=args.dtype,
                            trust_remote_code=args.trust_remote_code)
    if args.verify:
        images, answers = _verify_inputs(args)
        report = verify_merge(args.lora_dir, args.output_dir, images, answers, base_model=args.base_model,
                              dtype=args.verify_dtype, max_new_tokens=args.max_new_tokens,
                              tolerance=args.verify_tolerance)
        summary["verify"] = report.to_dict()
        (Path(args.output_dir) / "merge_info.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False),
                                                               encoding="utf-8")
        if not report.ok:
            print("verify FAILED:\n  " + "\n  ".join(report.messages), file=sys.stderr)
    return summary


if __name__ == "__main__":
    result = main(parse_args(MergeArgs, prog="gemma_adapter_merge.py"))
    if result.get("verify") and not result["verify"]["ok"]:
        sys.exit(1)
