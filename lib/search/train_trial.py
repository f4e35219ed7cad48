"""One search trial's training: `python -m lib.search.train_trial --config trial_config.json --output_dir DIR
--optuna_storage URL --optuna_study_name NAME --optuna_trial_number N` (the search driver starts it; under several
GPUs `accelerate launch -m lib.search.train_trial ...` through the search's --trial-command).

Every other flag is an argument of core/sft_gemma.py (`lib.train.SFTArgs`, parsed the same way). The training is
`lib.train.run_training` itself, with `OptunaPruningCallback` passed in as a callback: it reports the validation
metric at each evaluation and ends a pruned trial with exit status `PRUNED_EXIT_CODE`. Bad training data exits 2.

Not for: users (run core/gemma_hyperparameter_search.py, or core/sft_gemma.py to train once).
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> dict:
    from lib.config import parse_args
    from lib.search.pruning import OptunaPruningCallback
    from lib.train import LEGACY_KEYS, SFTArgs, run_training

    trial = argparse.ArgumentParser(add_help=False)
    trial.add_argument("--optuna_storage", help="storage URL of the study")
    trial.add_argument("--optuna_study_name", help="the study")
    trial.add_argument("--optuna_trial_number", type=int, help="the RUNNING trial this process trains")
    known, rest = trial.parse_known_args(sys.argv[1:] if argv is None else argv)
    prog = "python -m lib.search.train_trial --optuna_storage URL --optuna_study_name NAME --optuna_trial_number N"
    args = parse_args(SFTArgs, rest, legacy_keys=LEGACY_KEYS, prog=prog)  # --help: the training flags
    if not (known.optuna_storage and known.optuna_study_name and known.optuna_trial_number is not None):
        trial.error("--optuna_storage, --optuna_study_name and --optuna_trial_number are required (the search "
                    "driver passes them)")
    pruning = OptunaPruningCallback(known.optuna_storage, known.optuna_study_name, known.optuna_trial_number)
    return run_training(args, callbacks=[pruning])


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        main()
    except Exception as exc:  # readable one-line reason, non-zero exit
        from lib.train import TrainingDataError

        if isinstance(exc, TrainingDataError):
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        raise
