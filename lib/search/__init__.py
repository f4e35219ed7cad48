"""Hyperparameter search (Optuna) for the training in lib/train: search spaces, studies, pruning, reports.

Entry point: core/gemma_hyperparameter_search.py. Worker processes: `python -m lib.search.worker`; each trial:
`python -m lib.search.train_trial` (the training, with lib.search.pruning.OptunaPruningCallback passed in).
"""
