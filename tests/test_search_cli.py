"""The search script's command line: shipped configs, precedence (command line beats the file), the original's
interface, validation errors, --enqueue-default values. No training here (tests/test_search_study.py trains)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lib.config import ConfigError
from lib.search.report import best_training_config
from lib.search.space import grid_values, validate_space

from core import gemma_hyperparameter_search as ghs

REPO = Path(__file__).resolve().parents[1]

OPTUNA_DIR = REPO / "configs" / "hyperparm_configs" / "optuna"
SEARCH_CONFIGS = sorted(p for p in OPTUNA_DIR.glob("*.json") if p.name != "base_config.json")


def test_help_lists_the_original_flags():
    out = subprocess.run([sys.executable, str(REPO / "core" / "gemma_hyperparameter_search.py"), "--help"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    for flag in ("--study-name", "--search-mode", "--n-trials", "--config", "--model-name", "--input-data",
                 "--base-output-dir", "--timeout", "--storage", "--resume", "--trial-timeout", "--n-workers",
                 "--objective", "--keep-all"):
        assert flag in out.stdout, flag


def test_the_five_advertised_files_exist():
    names = {p.name for p in OPTUNA_DIR.glob("*.json")}
    assert {"default.json", "search_space_conservative.json", "search_space_aggressive.json",
            "grid_search_small.json", "base_config.json"} <= names
    assert (OPTUNA_DIR / "README.md").is_file()


@pytest.mark.parametrize("path", SEARCH_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_search_config_validates(path):
    args = ghs.parse(["--config", str(path)])
    space = validate_space(args.search_space)  # every name is a training argument, every range fits its type
    training = ghs._training_config(args)  # base_config + fixed keys parse as core/sft_gemma.py arguments
    assert not set(space) & {"output_dir", "optuna_storage"}
    if args.search_mode == "grid":
        grid = grid_values(space)
        n = 1
        for v in grid.values():
            n *= len(v)
        assert n == args.n_trials, "the small grid is meant to be run whole"
    if args.base_config:
        assert training, "base_config must contribute the fixed training settings"


def test_default_config_is_used_without_config_flag():
    args = ghs.parse([])
    assert args._config_path == ghs.SearchArgs.DEFAULT_CONFIG
    assert set(args.search_space) == {"learning_rate", "num_train_epochs"}


def test_command_line_beats_the_config_file(tmp_path):
    cfg = tmp_path / "s.json"
    cfg.write_text(json.dumps({"search_space": {"learning_rate": {"type": "loguniform", "low": 1e-5, "high": 1e-3}},
                               "n_trials": 9, "model_name": "from-file", "lora_r": 8, "max_steps": 5}))
    args = ghs.parse(["--config", str(cfg), "--n-trials", "2", "--model-name", "embedded/tiny-gemma3",
                      "--train-args", '{"max_steps": 7}'])
    assert args.n_trials == 2 and args._sources["n_trials"] == "cli"
    training = ghs._training_config(args)
    assert training == {"model_name": "embedded/tiny-gemma3", "lora_r": 8, "max_steps": 7}
    # a value typed on the command line that equals the default still wins (the original let the file win)
    assert ghs.parse(["--config", str(cfg), "--n-trials", "20"]).n_trials == 20


def test_original_config_format_and_legacy_keys(tmp_path):
    original = {"search_space": {"learning_rate": {"type": "loguniform", "low": 1e-5, "high": 5e-4},
                                 "num_train_epochs": {"type": "int", "low": 2, "high": 5}},
                "model_name": "/tmp2/share_data/google--gemma-3-12b-it", "input_data": "data/input/ocr_non_test.json",
                "instruction": "請給我 OCR 結果", "max_seq_length": 8192, "load_in_4bit": True, "lora_r": 16,
                "lora_alpha": 16, "gradient_accumulation_steps": 4, "per_device_train_batch_size": 1,
                "warmup_ratio": 0.1, "eval_steps": 100, "save_steps": 100, "base_output_dir": "models/hyperparam_search"}
    cfg = tmp_path / "orig.json"
    cfg.write_text(json.dumps(original, ensure_ascii=False))
    args = ghs.parse(["--config", str(cfg)])
    assert args.base_output_dir == "models/hyperparam_search" and args.instruction == "請給我 OCR 結果"
    training = ghs._training_config(args)
    assert training["model_name"] == original["model_name"] and training["lora_alpha"] == 16
    # keys the training no longer has are refused with what replaced them
    cfg.write_text(json.dumps({**original, "train_split": "train[:90%]"}))
    with pytest.raises(ConfigError, match="val_data"):
        ghs._training_config(ghs.parse(["--config", str(cfg)]))


def test_typo_in_a_training_key_is_an_error_with_a_suggestion(tmp_path):
    cfg = tmp_path / "s.json"
    cfg.write_text(json.dumps({"search_space": {"lora_r": {"type": "categorical", "choices": [8, 16]}},
                               "learning_rat": 1e-4}))
    with pytest.raises(ConfigError, match="learning_rate"):
        ghs._training_config(ghs.parse(["--config", str(cfg)]))


def test_search_sets_output_dir_itself(tmp_path):
    cfg = tmp_path / "s.json"
    cfg.write_text(json.dumps({"search_space": {"lora_r": {"type": "categorical", "choices": [8, 16]}},
                               "output_dir": "x"}))
    with pytest.raises(ConfigError, match="the search sets these per trial"):
        ghs._training_config(ghs.parse(["--config", str(cfg)]))
    assert best_training_config({"output_dir": "x", "lora_r": 8, "optuna_storage": "s"}, {"lora_r": 16}) == \
        {"lora_r": 16}


def test_enqueue_default_uses_the_fixed_config_then_the_training_defaults():
    space = validate_space({"learning_rate": {"type": "loguniform", "low": 1e-5, "high": 1e-3},
                            "lora_r": {"type": "categorical", "choices": [8, 16, 32]},
                            "lora_target_modules": {"type": "categorical", "choices": [["q_proj", "v_proj"],
                                                                                     ["q_proj", "k_proj"]]}})
    params = ghs._default_params(space, {"lora_r": 32})
    assert params["lora_r"] == 32  # from the fixed config
    assert params["learning_rate"] == 2e-4  # core/sft_gemma.py's default
    assert "lora_target_modules" not in params  # the default target list is not a choice: the sampler picks
