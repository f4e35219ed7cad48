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

Seeding: every trial of a study draws from its own random stream, seeded by (`--seed`, trial number)
(`TrialSeededSampler`). Trial numbers are handed out by the storage, so they are unique across the workers of one
machine, the machines of one database and every `--resume`: no two trials replay the same draws, and a study run
again with the same seed makes the same draws. (Seeding each worker once, `seed + worker index`, replayed the same
parameters on every resume and on every machine that ran the same command.) The grid and QMC samplers are the
exception: their order (grid shuffle, QMC scramble) must be the same in every worker, so they get the study seed
itself, and they keep their trials apart through the storage (the grid ids and the QMC sample index in it).

Not for: what a trial runs (lib/search/driver.py).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
from typing import Any, Callable, Mapping

__all__ = ["SAMPLERS", "PRUNERS", "DEFAULT_PRUNER", "make_sampler", "make_pruner", "validate_pruner",
           "trial_seed", "TrialSeededSampler"]

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


def trial_seed(seed: int, number: int) -> int:
    """The seed of trial `number`'s draws in a study seeded with `seed` (a hash: neighbouring trials and seeds
    get unrelated streams; numpy takes 32 bits)."""
    digest = hashlib.sha256(f"gemma-ocr-search:{int(seed)}:{int(number)}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@functools.lru_cache(maxsize=None)
def _trial_seeded_sampler_class():
    import optuna

    class TrialSeededSampler(optuna.samplers.BaseSampler):
        """A sampler rebuilt for each trial with the seed `trial_seed(seed, trial.number)`.

        The samplers wrapped here (TPE, random, CMA-ES) keep their state in the study, not in the object: what a
        rebuilt one knows is what the storage holds, and its random stream belongs to the trial, not the worker.
        """

        def __init__(self, factory: Callable[[int | None], Any], seed: int):
            self._factory = factory
            self._seed = int(seed)
            self._inner = factory(self._seed)

        @property
        def inner(self):
            return self._inner

        def before_trial(self, study, trial):
            self._inner = self._factory(trial_seed(self._seed, trial.number))
            self._inner.before_trial(study, trial)

        def infer_relative_search_space(self, study, trial):
            return self._inner.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self._inner.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self._inner.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values):
            self._inner.after_trial(study, trial, state, values)

        def reseed_rng(self):
            self._inner.reseed_rng()

    return TrialSeededSampler


def __getattr__(name: str):  # TrialSeededSampler without importing optuna at module import
    if name == "TrialSeededSampler":
        return _trial_seeded_sampler_class()
    raise AttributeError(name)


def make_sampler(mode: str, *, seed: int | None, grid: Mapping[str, list] | None = None, multi_objective=False,
                 n_startup_trials: int = 5):
    """The sampler for `--search-mode`; with a seed, TPE/random/CMA-ES draw per trial (see the module docstring)."""
    base = _base_sampler_factory(mode, grid=grid, multi_objective=multi_objective, n_startup_trials=n_startup_trials)
    if seed is None or mode in ("grid", "qmc"):
        return base(seed)  # grid/QMC: the same seed in every worker; their storage keeps trials apart
    return _trial_seeded_sampler_class()(base, seed)


def _base_sampler_factory(mode: str, *, grid: Mapping[str, list] | None, multi_objective: bool,
                          n_startup_trials: int) -> Callable[[int | None], Any]:
    import optuna

    if mode in ("bayesian", "tpe"):
        # Trials cost hours at 12B: model the space after 5 random trials (Optuna's default waits for 10).
        # constant_liar (Optuna's default) keeps parallel workers from sampling the same point.
        return lambda seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials,
                                                       constant_liar=True)
    if mode == "random":
        return lambda seed: optuna.samplers.RandomSampler(seed=seed)
    if mode == "grid":
        if grid is None:
            raise ValueError("grid search needs the grid of the search space")
        return lambda seed: optuna.samplers.GridSampler(dict(grid), seed=seed)
    if mode == "qmc":
        try:
            import scipy  # noqa: F401
        except ImportError:
            raise ValueError("--search-mode qmc needs the 'scipy' package: pip install scipy") from None
        import warnings

        def qmc(seed):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.samplers.QMCSampler(seed=seed)

        return qmc
    if mode == "cmaes":
        if multi_objective:
            raise ValueError("--search-mode cmaes does not support multi-objective studies; use bayesian")
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise ValueError("--search-mode cmaes needs the 'cmaes' package: pip install cmaes") from None
        return lambda seed: optuna.samplers.CmaEsSampler(seed=seed)
    raise ValueError(f"--search-mode {mode!r} is unknown; choose one of {', '.join(SAMPLERS)}")
