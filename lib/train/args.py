"""The arguments of `core/sft_gemma.py` (one dataclass; precedence defaults < config file < command line).

Keeps the original project's flag names (`--model_name --input_data --instruction --output_dir --learning_rate
--num_train_epochs --gradient_accumulation_steps --per_device_train_batch_size --max_seq_length --load_in_4bit
--lora_r --lora_alpha --close_report_to_wandb --is_debug`), both `-` and `_` spellings. The original's config keys
that no longer exist are in `LEGACY_KEYS`: renamed, or refused with a message saying what replaced them.

Fields named like a `transformers.TrainingArguments` field pass to it unchanged (lib/train/build.py
`training_arguments`, by name); `trainer_args` passes any other Trainer setting. Only the fields that are ours, or
whose default differs from the Trainer's, are declared here - each says why.

Not for: building the Trainer's arguments (lib/train/build.py), so `--help` needs no torch or transformers import.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from lib.config import field
from lib.shipped import config_file

__all__ = ["SFTArgs", "LEGACY_KEYS", "DEFAULT_TRAIN_CONFIG"]

DEFAULT_TRAIN_CONFIG = str(config_file("hyperparm_configs/default.json"))

_SEARCH_ONLY = ("a search trial's setting: the search runs each trial as `python -m lib.search.train_trial`, which "
                "takes it; a training config does not")
LEGACY_KEYS = {
    "train_split": "the original's HF split strings ('train[:90%]') are replaced by --val_data (a val file written by "
                   "core/split_dataset.py) or --val_ratio (document-grouped split of --input_data)",
    "val_split": "replaced by --val_data (a val file written by core/split_dataset.py) or --val_ratio",
    "report_to_wandb": "replaced by report_to: wandb | tensorboard | none",
    "base_output_dir": "replaced by output_dir (the search driver gives each trial its own output_dir)",
    "search_space": "belongs to the search config (core/gemma_hyperparameter_search.py), not to a training config",
    "optuna_storage": _SEARCH_ONLY,
    "optuna_study_name": _SEARCH_ONLY,
    "optuna_trial_number": _SEARCH_ONLY,
    "lora_dir": "adapter_path",
    "train_file": "input_data",
    "eval_file": "val_data",
    "lr": "learning_rate",
    "epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size",
}


@dataclasses.dataclass
class SFTArgs:
    """Fine-tune an image-text-to-text model (Gemma 3, Qwen2.5-VL, ...) for OCR with LoRA, QLoRA or full fine-tuning."""

    DEFAULT_CONFIG: ClassVar[str] = DEFAULT_TRAIN_CONFIG

    # -- model ----------------------------------------------------------------------------------------------------
    model_name: str = field("embedded/tiny-gemma3", help="hub id, local folder, or embedded/tiny-gemma3 | "
                            "embedded/tiny-qwen2.5-vl (built from config, no download)")
    trust_remote_code: bool = field(False, help="allow model code from the checkpoint (only for models that need it)")
    dtype: str = field("auto", help="auto (bf16 on GPUs that support it, fp32 on CPU) | bfloat16 | float16 | float32")
    load_in_4bit: bool = field(False, help="QLoRA: language model in 4-bit NF4 via bitsandbytes (CUDA only); vision "
                               "tower and projector stay unquantized. --no-load_in_4bit turns it off")
    finetune: str = field("lora", choices=["lora", "full"], help="lora (QLoRA with --load_in_4bit) or full fine-tuning")
    # -- LoRA -----------------------------------------------------------------------------------------------------
    lora_r: int = field(16, help="LoRA rank")
    lora_alpha: int = field(16, help="LoRA alpha (scale = alpha / r)")
    lora_dropout: float = field(0.0, help="LoRA dropout")
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj",
                                                                    "gate_proj", "up_proj", "down_proj"],
                                           help="language-model linear layers that get LoRA (name suffixes)")
    finetune_language_layers: bool = field(True, help="LoRA on the language model's layers")
    finetune_vision_layers: bool = field(False, help="LoRA on every linear layer of the vision tower too")
    freeze_modules: list[str] = field(default_factory=list, help="full fine-tuning: parameters whose name contains "
                                      "one of these stay frozen (e.g. vision_tower.backbone: the reader's pretrained "
                                      "PP-OCRv6 recogniser kept as it is, and no backward through it)")
    modules_to_save: list[str] = field(default_factory=list, help="modules trained in full and saved with the adapter "
                                       "(e.g. multi_modal_projector vision_tower)")
    # -- data -----------------------------------------------------------------------------------------------------
    input_data: str = field("data/example.json", help="training data: JSON list of {img_path, ocr_results} (or the "
                            "original split format {image_path, ocr_text})", aliases=["train_data"])
    val_data: str | None = field(None, help="validation file (e.g. val.json from core/split_dataset.py); without it "
                                 "--val_ratio of --input_data's documents is held out")
    val_ratio: float = field(0.1, help="share of --input_data held out for validation when --val_data is not given "
                             "(split by document, seeded)")
    skip_invalid: bool = field(False, help="skip rows that fail validation (reported) instead of refusing to train")
    instruction: str | None = field(None, help="prompt text; overrides prompt_text of --prompt_config")
    prompt_config: str | None = field(None, help="prompt YAML (default configs/ocr_prompt/default.yml)",
                                      aliases=["prompt-config"])
    max_seq_length: int = field(8192, help="longest sequence (image tokens included); longer samples are reported "
                                "and skipped, never truncated")
    min_pixels: int | None = field(None, help="processor min_pixels (Qwen-style dynamic resolution)")
    max_pixels: int | None = field(None, help="processor max_pixels (Qwen-style dynamic resolution)")
    # -- optimisation (Trainer fields: passed through by name; defaults that differ from the Trainer's say why) --------
    output_dir: str = field("models/vision_sft", help="checkpoints, final adapter (output_dir/lora) and metadata")
    # the original project's 2e-4, 5 epochs, batch 1 x 4 accumulation (configs/hyperparm_configs/default.json);
    # LoRA adapters train at ~10x a full fine-tune's rate (Trainer: 5e-5, 3 epochs, no accumulation)
    learning_rate: float = field(2e-4, help="peak learning rate")
    num_train_epochs: float = field(5.0, help="epochs (ignored when max_steps > 0)")
    max_steps: int = field(-1, help="optimizer steps; > 0 overrides num_train_epochs")
    per_device_train_batch_size: int = field(1, help="batch size per device")
    # evaluation also decodes with generate(), whose KV cache for a page grows with the batch (Trainer: 8)
    per_device_eval_batch_size: int = field(4, help="eval batch size (loss and generation)")
    gradient_accumulation_steps: int = field(4, help="gradient accumulation steps")
    # a ratio, as the original's configs give it; transformers 5 takes it as warmup_steps < 1
    warmup_ratio: float = field(0.0, help="share of steps for linear warmup")
    lr_scheduler_type: str = field("cosine", help="transformers scheduler name (cosine, linear, constant, ...)")
    weight_decay: float = field(0.001, help="AdamW weight decay")
    # unfused AdamW: what the speed and equivalence benchmarks measured (Trainer: adamw_torch_fused)
    optim: str = field("adamw_torch", help="transformers optimizer name (adamw_torch; adamw_8bit needs bitsandbytes)")
    max_grad_norm: float = field(1.0, help="gradient clipping")
    gradient_checkpointing: bool = field(False, help="recompute activations to save memory (slower)")
    vision_learning_rate: float | None = field(None, help="peak learning rate for trainable vision-tower and projector "
                                               "parameters (default: --learning_rate); a new or random-init vision "
                                               "tower often needs a higher one than the language model")
    max_train_seconds: float = field(0.0, help="stop training after this many seconds (0 = no limit): the step in "
                                     "progress finishes, a checkpoint is saved and the final evaluation runs")
    tf32: bool = field(False, help="allow TF32 matrix products on Ampere or newer GPUs (for --dtype float32 runs)")
    # -- speed (lib/train/speed.py; measured in docs/GPU.md); none changes what the model computes -------------------
    loss_impl: str = field("chunked", choices=["chunked", "logits"], help="chunked: cross-entropy from the final "
                           "hidden states on label positions only, in chunks, its gradient computed in the forward "
                           "(no logits tensor is kept); logits: the model's logits over the answer window")
    vision_no_grad: bool = field(True, help="run a frozen vision tower + projector without autograd (no activations "
                                 "kept, no backward through it); ignored when any of their parameters trains")
    compile_layers: bool = field(False, help="torch.compile each decoder/encoder layer (dynamic shapes): fuses the "
                                 "elementwise work and removes most per-op overhead; the first steps pay the compile")
    compile_memory_budget: float = field(1.0, help="with compile_layers: share of the activation memory the compiled "
                                         "layers may keep for the backward pass (torch's activation_memory_budget); "
                                         "below 1 they recompute the cheapest activations in the backward instead of "
                                         "storing them - a larger batch in the same memory, no extra kernel launches")
    pad_to_multiple_of: int = field(0, help="pad each batch's length up to a multiple of this (64 on GPUs: cuDNN "
                                    "attention builds one plan per length and reuses it); 0 = no extra padding")
    group_by_length: bool = field(False, help="batch samples of similar answer length together (sorted within "
                                  "megabatches of up to 50 batches with 5%% length jitter, batches shuffled: less "
                                  "padding, docs/GPU.md); the data loader then also runs through the epochs without "
                                  "stopping at their starts")
    # the project's seed since its first version (Trainer: 42); also the data order seed (data_seed)
    seed: int = field(3407, help="seed for init of new weights (LoRA) and data order")
    # -- evaluation, checkpoints, logging -------------------------------------------------------------------------
    # OCR fine-tunes are hundreds of steps, not tens of thousands (Trainer: 500, 500, every checkpoint kept, 500):
    # validation every 100 steps, a checkpoint at each (best-checkpoint selection needs one per evaluation), the last
    # two kept (each holds the optimizer state), one dense log line per step
    eval_steps: int = field(100, help="validation loss + generation CER every N steps")
    save_steps: int = field(100, help="checkpoint every N steps (a multiple of eval_steps, for best-model selection)")
    save_total_limit: int | None = field(2, help="checkpoints kept (the best one is always kept)")
    logging_steps: int = field(1, help="log every N steps")
    eval_cer_samples: int = field(32, help="validation samples used for the generation CER every eval_steps "
                                  "(fixed subset, first N)")
    final_eval_samples: int = field(0, help="validation samples for the final generation CER (0 = all)")
    eval_max_new_tokens: int = field(512, help="max new tokens for generation-based validation")
    # what OCR is judged by: the greedy generation CER, not the teacher-forced loss
    metric_for_best_model: str = field("eval_cer", help="best checkpoint by this metric (eval_cer or eval_loss)")
    report_to: str = field("none", choices=["none", "tensorboard", "wandb"], help="experiment tracker")
    close_report_to_wandb: bool = field(False, help="(original flag) same as --report_to none")
    run_name: str | None = field(None, help="run name for the tracker")
    resume_from_checkpoint: str | None = field(None, help="checkpoint folder, or 'latest' for the newest in output_dir")
    is_debug: bool = field(False, help="print one prediction before and after training")
    dataloader_num_workers: int = field(0, help="data loader worker processes")
    # -- any other Trainer setting ----------------------------------------------------------------------------------
    trainer_args: dict[str, Any] = field(default_factory=dict, help="more transformers.TrainingArguments fields by "
                                         "name, passed through as given, e.g. '{\"dataloader_prefetch_factor\": 4}'; "
                                         "they override what training derives (precision, evaluation plan, ...)")

    def __post_init__(self):
        if self.close_report_to_wandb:
            self.report_to = "none"
        for name in ("learning_rate", "per_device_train_batch_size", "per_device_eval_batch_size",
                     "gradient_accumulation_steps", "lora_r"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise ValueError(f"num_train_epochs must be > 0 (or max_steps > 0), got {self.num_train_epochs}")
        if self.finetune == "full" and self.load_in_4bit:
            raise ValueError("finetune=full cannot train a 4-bit model; use --no-load_in_4bit or --finetune lora")
        if not 0.0 <= self.val_ratio < 1.0:
            raise ValueError(f"val_ratio must be in [0, 1), got {self.val_ratio}")
        if self.vision_learning_rate is not None and self.vision_learning_rate <= 0:
            raise ValueError(f"vision_learning_rate must be > 0, got {self.vision_learning_rate}")
        if self.max_train_seconds < 0:
            raise ValueError(f"max_train_seconds must be >= 0, got {self.max_train_seconds}")
        if not 0.0 < self.compile_memory_budget <= 1.0:
            raise ValueError(f"compile_memory_budget must be in (0, 1], got {self.compile_memory_budget}")
        if self.compile_memory_budget < 1.0 and not self.compile_layers:
            raise ValueError(f"compile_memory_budget={self.compile_memory_budget} acts on compiled layers only: add "
                             "--compile_layers true, or leave the budget at 1.0")
        if self.eval_steps <= 0 or self.save_steps <= 0:
            raise ValueError("eval_steps and save_steps must be > 0")
        if self.metric_for_best_model not in ("eval_cer", "eval_loss"):
            raise ValueError("metric_for_best_model must be eval_cer or eval_loss")
        if self.finetune == "lora" and not (self.finetune_language_layers or self.finetune_vision_layers
                                            or self.modules_to_save):
            raise ValueError("LoRA with nothing to train: enable finetune_language_layers or finetune_vision_layers")
        ours = sorted(set(self.trainer_args) & {f.name for f in dataclasses.fields(self)})
        if ours:
            raise ValueError(f"trainer_args sets {ours}: these are training arguments of their own; pass "
                             f"{' '.join('--' + k for k in ours)} instead")
