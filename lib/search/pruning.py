"""Pruning inside a trial process: report the validation metric to Optuna and stop a trial that is losing.

The contract with training is the Trainer's callback interface and nothing else: the trial entry point
(`python -m lib.search.train_trial`, lib/search/train_trial.py) passes `OptunaPruningCallback` to
`lib.train.run_training(args, callbacks=[...])`. The training's CER callback puts `eval_cer` into the evaluation
metrics every `eval_steps`; nothing around `trainer.train()` catches `SystemExit`. At every evaluation the callback

1. takes the study's objective metric (`eval_cer`, the greedy generation CER logged by the training's CER callback,
   or `eval_loss`) from the evaluation metrics or the log,
2. `trial.report(value, global_step)`, and records it as the trial's `objective_value` user attribute (the driver
   reads the final value from there),
3. asks `trial.should_prune()` with the study's pruner (rebuilt from the study's stored settings). When it says
   prune: it records the step, the value and the median of the completed trials at that step, sets
   `control.should_training_stop` (and `should_save = False`), and at `on_train_end` exits the process with
   `PRUNED_EXIT_CODE`, so nothing after training (saving, final evaluation) runs and the GPU is freed at once.
   The driver marks the trial PRUNED.

It also forces an evaluation at the last step (so the objective is measured on the model that is saved), and exits
if its worker process dies (the trial must not keep a GPU for a study nobody is running).

Not for: deciding the search space or running trials (lib/search/driver.py).
"""

from __future__ import annotations

import logging
import math
import statistics
from typing import Any

import optuna
from optuna.trial import TrialState
from transformers import TrainerCallback

from lib.search.storage import open_storage
from lib.search.study import make_pruner
from lib.search.trial import PARENT_PID_ENV, PRUNED_EXIT_CODE, start_parent_watch

__all__ = ["OptunaPruningCallback", "PRUNED_EXIT_CODE", "PARENT_PID_ENV", "load_trial", "median_at_step"]

log = logging.getLogger(__name__)


def load_trial(storage_url: str, study_name: str, trial_number: int):
    """(study, trial, storage, trial_id) for a RUNNING trial owned by a search worker, with the study's own pruner.
    Only Optuna's public API: the storage's ids by name and number."""
    storage = open_storage(storage_url)
    summary = optuna.load_study(study_name=study_name, storage=storage)
    settings = summary.user_attrs.get("search", {})
    study = optuna.load_study(study_name=study_name, storage=storage,
                              pruner=make_pruner(settings.get("pruner")))
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study_name),
                                                               int(trial_number))
    return study, optuna.trial.Trial(study, trial_id), storage, trial_id


def median_at_step(study: Any, step: int) -> float | None:
    """Median intermediate value of the COMPLETE trials at `step` (what MedianPruner compares against)."""
    vals = [t.intermediate_values[step] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if step in t.intermediate_values and not math.isnan(t.intermediate_values[step])]
    return statistics.median(vals) if vals else None


class OptunaPruningCallback(TrainerCallback):
    """Report the objective metric of a search trial at each evaluation and stop the trial when pruned."""

    def __init__(self, storage: str, study_name: str, trial_number: int, metric: str | None = None,
                 watch_parent: bool = True):
        self.study, self.trial, self.storage, self.trial_id = load_trial(storage, study_name, trial_number)
        settings = self.study.user_attrs.get("search", {})
        self.metric = metric or settings.get("metric", "eval_cer")
        self.multi_objective = len(self.study.directions) > 1  # Optuna cannot prune multi-objective trials
        self.pruned = False
        self._last_step: int | None = None
        self._eval_steps_seen: set[int] = set()
        if watch_parent:
            start_parent_watch()

    # -- Trainer hooks -------------------------------------------------------------------------------------------
    def on_step_end(self, args, state, control, **kwargs):
        # Measure the objective on the model that is saved: evaluate at the last step even when eval_steps
        # does not divide max_steps.
        if state.max_steps and state.global_step >= state.max_steps and state.global_step not in self._eval_steps_seen:
            control.should_evaluate = True
        return control

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self._eval_steps_seen.add(state.global_step)
        self._take(metrics or {}, state, control)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        # The CER callback may log eval_cer after the evaluation hooks ran.
        if logs and self.metric in logs:
            self._take(logs, state, control)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self.pruned:
            log.warning("trial %d pruned at step %s: exiting with status %d", self.trial.number, self._last_step,
                        PRUNED_EXIT_CODE)
            raise SystemExit(PRUNED_EXIT_CODE)
        return control

    # -- internals -----------------------------------------------------------------------------------------------
    def _take(self, metrics: dict, state, control) -> None:
        if self.metric not in metrics or self.pruned:
            return
        value = float(metrics[self.metric])
        step = int(state.global_step)
        self._last_step = step
        self.trial.set_user_attr("objective_value", value)
        self.trial.set_user_attr("objective_step", step)
        if self.multi_objective:
            return
        if step not in self.storage.get_trial(self.trial_id).intermediate_values:
            self.trial.report(value, step)
        if self.trial.should_prune():
            median = median_at_step(self.study, step)
            self.trial.set_user_attr("pruned_at_step", step)
            self.trial.set_user_attr("pruned_value", value)
            self.trial.set_user_attr("median_at_pruned_step", median)
            log.warning("trial %d: %s=%.4f at step %d is worse than the median %s of completed trials: pruning",
                        self.trial.number, self.metric, value, step, median)
            self.pruned = True
            control.should_training_stop = True
            control.should_save = False
