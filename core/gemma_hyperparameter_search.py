#!/usr/bin/env python3
"""Hyperparameter search for OCR fine-tuning (Optuna): minimise validation CER (or loss), prune losing trials.

Each trial runs the training of core/sft_gemma.py (`python -m lib.search.train_trial`) in its own process with a
time limit; the study is stored in SQLite by default (`optuna_studies/<study>.db`), or any RDB URL / journal file
given by --storage.

    # Bayesian (TPE) search, 20 trials, search space + fixed settings from a config file
    python core/gemma_hyperparameter_search.py --study-name gemma-ocr --n-trials 20 \
        --config configs/hyperparm_configs/optuna/default.json

    # 2 worker processes on one machine (one GPU each), journal storage, resume later
    python core/gemma_hyperparameter_search.py --study-name s --n-trials 16 --n-workers 2 --gpus 0,1 \
        --storage optuna_studies/s.journal.log
    python core/gemma_hyperparameter_search.py --study-name s --storage optuna_studies/s.journal.log --resume --n-trials 8

    # grid search; random search; watch it live
    python core/gemma_hyperparameter_search.py --search-mode grid --config configs/hyperparm_configs/optuna/grid_search_small.json
    optuna-dashboard sqlite:///optuna_studies/gemma-ocr.db

Outputs in <base_output_dir>/<study>/: trials.csv, trials.md, *.png plots, best_config.json (takes
`core/sft_gemma.py --config` unchanged), summary.json, trial_NNNN/ (config, log; the best trial's adapter);
in optuna_studies/: <study>_best_config.json, <study>_best_params.json. See docs/SEARCH.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from lib.config import ConfigError, field, format_config, load_config_file, parse_args

REPO = Path(__file__).resolve().parents[1]
OBJECTIVES = ("eval_cer", "eval_loss", "eval_cer+wall_time")
SEARCH_MODES = ("bayesian", "tpe", "random", "grid", "qmc", "cmaes")


@dataclasses.dataclass
class SearchArgs:
    """Hyperparameter search for OCR fine-tuning (Optuna)."""

    DEFAULT_CONFIG: ClassVar[str] = str(REPO / "configs" / "hyperparm_configs" / "optuna" / "default.json")

    study_name: str | None = field(None, help="Optuna study name (default: ocr_search_<date>_<time>)")
    search_mode: str = field("bayesian", choices=SEARCH_MODES,
                             help="sampler: bayesian (=tpe, seeded), random, grid, qmc, cmaes (needs pip install cmaes)")
    n_trials: int | None = field(20, help="trials to run in this invocation (split over --n-workers); added to "
                                          "the study's existing trials with --resume")
    timeout: int | None = field(None, help="stop starting new trials after this many seconds (whole search)")
    trial_timeout: int | None = field(4 * 3600, help="wall-clock limit of ONE trial in seconds: a trial still "
                                                     "running then is killed and marked failed (0 = no limit)")
    resume: bool = field(False, help="continue an existing study of the same name (or create it): trials are added")
    storage: str | None = field(None, help="sqlite:///path.db (default optuna_studies/<study>.db), any RDB URL "
                                           "(postgresql://... for workers on several machines), or a journal file "
                                           "(journal:path or *.log) for parallel processes on one machine")
    objective: str = field("eval_cer", choices=OBJECTIVES,
                           help="eval_cer: greedy generation CER on the validation split; eval_loss; "
                                "eval_cer+wall_time: two objectives (no pruning)")
    search_space: dict | None = field(None, help="JSON {name: {type: loguniform|uniform|float|int|categorical, ...}}; "
                                                 "names are arguments of core/sft_gemma.py")
    pruner: dict | None = field(None, help='JSON, e.g. {"type": "median", "n_startup_trials": 2, "n_warmup_steps": 0}'
                                           ' or {"type": "hyperband"} or {"type": "none"}')
    base_config: str | None = field(None, help="JSON of fixed training settings every trial starts from (a path "
                                               "relative to the config file is found); the config file's other "
                                               "training keys and the flags below override it")
    model_name: str | None = field(None, help="base model (overrides the configs)")
    input_data: str | None = field(None, help="training data file (overrides the configs)")
    instruction: str | None = field(None, help="OCR instruction text (overrides the configs)")
    train_args: dict | None = field(None, help='JSON of more training arguments that override the configs, '
                                               'e.g. {"max_steps": 200, "eval_steps": 50}')
    base_output_dir: str = field("models/hyperparam_search", help="trial folders go to <this>/<study>/trial_NNNN")
    studies_dir: str = field("optuna_studies", help="folder of the default SQLite file and <study>_best_*.json")
    n_workers: int = field(1, help="worker processes on this machine sharing the study")
    gpus: str | None = field(None, help="comma-separated GPU ids; worker i gets CUDA_VISIBLE_DEVICES=gpus[i %% n]")
    seed: int | None = field(3407, help="sampler seed of the study: trial N draws with a seed derived from (seed, "
                                        "N), so no worker, machine or --resume repeats another trial's draws")
    tpe_startup_trials: int = field(5, help="random trials before TPE starts modelling")
    enqueue_default: bool = field(False, help="run the fixed training config's own values of the searched "
                                              "parameters as the first trial (a baseline inside the study)")
    enqueue: str | None = field(None, help="JSON file with a list of {param: value} trials to run first")
    keep_all: bool = field(False, help="keep every trial's checkpoints and adapter (default: only the best trial's "
                                       "final adapter is kept)")
    heartbeat_interval: int | None = field(60, help="RDB storages: seconds between trial heartbeats; a trial whose "
                                                    "worker stops beating is marked failed (0 = off)")
    grace_period: int | None = field(None, help="seconds without heartbeat before a trial is failed (default 2x interval)")
    trial_command: str | None = field(None, help="command that trains one trial (default: this python -m "
                                                 "lib.search.train_trial); e.g. 'accelerate launch -m "
                                                 "lib.search.train_trial'")

    def __post_init__(self):
        if self.n_trials is not None and self.n_trials < 0:
            raise ValueError("--n-trials must be >= 0")
        if self.n_workers < 1:
            raise ValueError("--n-workers must be >= 1")
        if self.trial_timeout is not None and self.trial_timeout < 0:
            raise ValueError("--trial-timeout must be >= 0 seconds (0 = no limit)")


def parse(argv: list[str] | None = None) -> SearchArgs:
    """Parse the command line. The --config file may mix search settings (fields of SearchArgs: search_space,
    pruner, n_trials, ...) with fixed training arguments (the original's format): the training keys are kept
    aside for the trials; what the user types on the command line always wins over the file."""
    argv = list(sys.argv[1:] if argv is None else argv)
    config_path, rest = None, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--config" and i + 1 < len(argv):
            config_path = argv[i + 1]
            i += 2
            continue
        if a.startswith("--config="):
            config_path = a.split("=", 1)[1]
        else:
            rest.append(a)
        i += 1
    if config_path is None and Path(SearchArgs.DEFAULT_CONFIG).is_file() and "--help" not in argv and "-h" not in argv:
        config_path = SearchArgs.DEFAULT_CONFIG
    names = {f.name for f in dataclasses.fields(SearchArgs)}
    search_keys: dict[str, Any] = {}
    training_keys: dict[str, Any] = {}
    if config_path:
        training_names = _training_key_names()
        for k, v in load_config_file(config_path).items():
            norm = k.replace("-", "_")
            if norm in names:
                search_keys[k] = v
            elif norm in training_names:
                training_keys[k] = v
            else:  # neither a search setting nor a training argument: a typo (n_trails), not a training key
                import difflib

                close = difflib.get_close_matches(norm, sorted(names | training_names), n=3, cutoff=0.6)
                hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise ConfigError(f"{config_path}: unknown key '{k}': neither a search setting nor a training "
                                  f"argument of core/sft_gemma.py.{hint} Search settings: {', '.join(sorted(names))}")
    old = SearchArgs.DEFAULT_CONFIG
    try:
        SearchArgs.DEFAULT_CONFIG = ""  # the file (if any) was split above
        args = parse_args(SearchArgs, rest, prog="gemma_hyperparameter_search.py",
                          config_data=search_keys if config_path else None, config_source=config_path)
    finally:
        SearchArgs.DEFAULT_CONFIG = old
    object.__setattr__(args, "_config_path", str(config_path) if config_path else None)
    object.__setattr__(args, "_file_training_config", training_keys)
    return args


def _training_key_names() -> set[str]:
    """Keys a training config may hold: the arguments of core/sft_gemma.py and the original's retired keys (renamed
    or refused with what replaced them by the training parser)."""
    from lib.train.args import LEGACY_KEYS, SFTArgs

    return {f.name for f in dataclasses.fields(SFTArgs)} | set(LEGACY_KEYS)


def _find_relative(path: str, config_path: str | None) -> Path:
    p = Path(path)
    if p.is_file() or p.is_absolute() or not config_path:
        return p
    beside = Path(config_path).parent / p
    return beside if beside.is_file() else p


def _training_config(args: SearchArgs) -> dict[str, Any]:
    """Fixed training arguments: base_config < the config file's training keys < flags < --train-args,
    validated (and legacy keys renamed) by the training script's own parser."""
    import lib.train as train

    cfg: dict[str, Any] = {}
    if args.base_config:
        cfg.update(load_config_file(_find_relative(args.base_config, getattr(args, "_config_path", None))))
    cfg.update(getattr(args, "_file_training_config", {}))
    for k in ("model_name", "input_data", "instruction"):
        if getattr(args, k) is not None:
            cfg[k] = getattr(args, k)
    cfg.update(args.train_args or {})
    reserved = [k for k in cfg if k in ("output_dir", "optuna_storage", "optuna_study_name", "optuna_trial_number")]
    if reserved:
        raise ConfigError(f"training config sets {reserved}: the search sets these per trial; remove them")
    files = [f for f in (args.base_config, getattr(args, "_config_path", None)) if f]
    source = "training settings from " + " + ".join(files + ["the flags"])
    try:
        resolved = parse_args(train.SFTArgs, [], legacy_keys=getattr(train, "LEGACY_KEYS", None), config_data=cfg,
                              config_source=source, prog="core/sft_gemma.py")
    except SystemExit as exc:  # argparse refused a value (its message is on stderr)
        raise ConfigError(f"{source} does not parse as core/sft_gemma.py arguments (see the message above)") from exc
    return {k: getattr(resolved, k) for k, src in resolved._sources.items() if src == "config"}


def _default_params(space: dict, training_config: dict) -> dict[str, Any]:
    """The fixed config's value of each searched parameter, in the study's representation (for --enqueue-default)."""
    import lib.train as train

    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())  # type: ignore[misc]
                for f in dataclasses.fields(train.SFTArgs)
                if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}  # type: ignore[misc]
    out = {}
    for name, spec in space.items():
        value = training_config.get(name, defaults.get(name))
        if spec["type"] == "categorical":
            enc = {json.dumps(c, sort_keys=True): (json.dumps(c, ensure_ascii=False) if isinstance(c, (list, dict)) else c)
                   for c in spec["choices"]}
            key = json.dumps(value, sort_keys=True)
            if key not in enc:
                logging.getLogger("search").warning("--enqueue-default: %s=%r is not among the choices %s; the "
                                                    "sampler picks it", name, value, spec["choices"])
                continue
            out[name] = enc[key]
        else:
            out[name] = value
    return out


def main(args: SearchArgs) -> dict:
    from lib.search.driver import RunSpec, default_trial_command, run_search
    from lib.search.space import validate_space
    from lib.search.storage import default_storage_url
    from lib.search.study import DEFAULT_PRUNER, validate_pruner

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    study_name = args.study_name or f"ocr_search_{datetime.now().strftime('%Y%m%d_%H%M%S')}"
    if not args.search_space:
        raise ConfigError("no search_space: give a --config file with a 'search_space' (see "
                          "configs/hyperparm_configs/optuna/) or --search_space JSON")
    space = validate_space(args.search_space)
    training_config = _training_config(args)
    pruner = validate_pruner(args.pruner if args.pruner is not None else DEFAULT_PRUNER)
    storage = args.storage or default_storage_url(study_name, args.studies_dir)
    command = (default_trial_command() if not args.trial_command else
               [sys.executable if t == "python" else t for t in __import__("shlex").split(args.trial_command)])
    spec = RunSpec(study_name=study_name, storage=storage, search_mode=args.search_mode, objective=args.objective,
                   search_space=space, pruner=pruner, training_config=training_config,
                   base_output_dir=str(Path(args.base_output_dir).resolve()),
                   studies_dir=str(Path(args.studies_dir).resolve()), seed=args.seed,
                   trial_timeout=args.trial_timeout or None, timeout=args.timeout, trial_command=command,
                   heartbeat_interval=args.heartbeat_interval or None, grace_period=args.grace_period,
                   keep_all=args.keep_all, tpe_startup_trials=args.tpe_startup_trials)
    logging.getLogger("search").info("%s\nfixed training config: %s", format_config(args),
                                      json.dumps(training_config, ensure_ascii=False))
    enqueue: list[dict] = []
    baseline = _default_params(space, training_config) if args.enqueue_default else None
    if args.enqueue:
        items = json.loads(Path(args.enqueue).read_text(encoding="utf-8"))
        if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
            raise ConfigError(f"--enqueue {args.enqueue}: expected a JSON list of {{param: value}} objects")
        enqueue.extend(items)
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else None
    summary = run_search(spec, n_trials=args.n_trials, n_workers=args.n_workers, resume=args.resume, gpus=gpus,
                         enqueue=enqueue, baseline=baseline)
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


if __name__ == "__main__":
    from lib.errors import cli_errors

    with cli_errors("gemma_hyperparameter_search.py"):
        sys.exit(0 if main(parse()) is not None else 1)
