"""A search worker process: `python -m lib.search.worker <run_spec.json> --n-trials N [--worker-index I] [--gpu G]`.

Started by the driver for `--n-workers` > 1; runs trials of the study described by the run spec until it has done
its share. Not for: users (run core/gemma_hyperparameter_search.py).
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    from lib.config import ConfigError
    from lib.search.driver import RunSpec, run_worker

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("spec")
    p.add_argument("--n-trials", type=int, default=None)
    p.add_argument("--worker-index", type=int, default=1)
    p.add_argument("--gpu", default=None)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s worker{a.worker_index} %(levelname)s %(message)s")
    try:
        run_worker(RunSpec.load(a.spec), n_trials=a.n_trials, worker_index=a.worker_index, gpu=a.gpu)
    except ConfigError as exc:  # e.g. the study database cannot be reached: one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
