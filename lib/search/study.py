"""Samplers, pruners and the study itself (created once, then opened by every worker and trial process).

Sampler names keep the original's `--search-mode bayesian|random|grid` and add `tpe` (= bayesian), `qmc` and
`cmaes` (needs `pip install cmaes`). Pruners are described by a small JSON object stored with the study, so the
trial processes rebuild the same pruner:

    {"type": "median", "n_startup_trials": 2, "n_warmup_steps": 0, "interval_steps": 1}
    {"type": "percentile", "percentile": 25.0, ...same keys as median}
    {"type": "hyperband", "min_resource": 1, "max_resource": "auto", "reduction_factor": 3}
    {"type": "successive_halving", "min_resource": "auto", "reduction_factor": 4}
    {"type": "threshold", "upper": 0.9}
    {"type": "none"}

Steps are the trainer's global steps at which the validation metric is reported (every `eval_steps`).

Not for: what a trial runs (lib/search/driver.py).
"""

from __future__ import annotations

import difflib
from typing import Any, Mapping

__all__ = ["SAMPLERS", "PRUNERS", "DEFAULT_PRUNER", "make_sampler", "make_pruner", "validate_pruner"]

SAMPLERS = ("bayesian", "tpe", "random", "grid", "qmc", "cmaes")
PRUNERS = {
    "median": {"n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"},
    "percentile": {"percentile", "n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"},
    "hyperband": {"min_resource", "max_resource", "reduction_factor", "bootstrap_count"},
    "successive_halving": {"min_resource", "reduction_factor", "min_early_stopping_rate", "bootstrap_count"},
    "threshold": {"lower", "upper", "n_warmup_steps", "interval_steps"},
    "none": set(),
}
# Two finished trials before anything is pruned: one lucky first trial must not set the bar alone.
DEFAULT_PRUNER = {"type": "median", "n_startup_trials": 2, "n_warmup_steps": 0, "interval_steps": 1}


def validate_pruner(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    spec = dict(DEFAULT_PRUNER if spec is None else spec)
    kind = spec.pop("type", "median")
    if kind not in PRUNERS:
        close = difflib.get_close_matches(str(kind), list(PRUNERS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"pruner type '{kind}' is unknown.{hint} Known: {', '.join(PRUNERS)}")
    extra = set(spec) - PRUNERS[kind]
    if extra:
        raise ValueError(f"pruner '{kind}': unknown keys {sorted(extra)}; allowed: {sorted(PRUNERS[kind])}")
    return {"type": kind, **spec}


def make_pruner(spec: Mapping[str, Any] | None):
    import optuna

    spec = validate_pruner(spec)
    kind = spec.pop("type")
    if kind == "median":
        return optuna.pruners.MedianPruner(**spec)
    if kind == "percentile":
        return optuna.pruners.PercentilePruner(**spec)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(**spec)
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(**spec)
    if kind == "threshold":
        return optuna.pruners.ThresholdPruner(**spec)
    return optuna.pruners.NopPruner()


def make_sampler(mode: str, *, seed: int | None, grid: Mapping[str, list] | None = None, multi_objective=False,
                 n_startup_trials: int = 5):
    import optuna

    if mode in ("bayesian", "tpe"):
        # Trials cost hours at 12B: model the space after 5 random trials (Optuna's default waits for 10).
        # constant_liar (Optuna's default) keeps parallel workers from sampling the same point.
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials, constant_liar=True)
    if mode == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if mode == "grid":
        if grid is None:
            raise ValueError("grid search needs the grid of the search space")
        return optuna.samplers.GridSampler(dict(grid), seed=seed)
    if mode == "qmc":
        try:
            import scipy  # noqa: F401
        except ImportError:
            raise ValueError("--search-mode qmc needs the 'scipy' package: pip install scipy") from None
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(seed=seed)
    if mode == "cmaes":
        if multi_objective:
            raise ValueError("--search-mode cmaes does not support multi-objective studies; use bayesian")
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise ValueError("--search-mode cmaes needs the 'cmaes' package: pip install cmaes") from None
        return optuna.samplers.CmaEsSampler(seed=seed)
    raise ValueError(f"--search-mode {mode!r} is unknown; choose one of {', '.join(SAMPLERS)}")
