"""Hyperparameter search (Optuna) for the training in lib/train: search spaces, studies, pruning, reports.

Entry point: core/gemma_hyperparameter_search.py. Inside a trial, lib.search.pruning.OptunaPruningCallback.
"""
