"""Watch a study live in optuna-dashboard: `python -m lib.search.dashboard STORAGE [--host H] [--port P]`.

STORAGE is what `--storage` of the search takes, opened the same way (`lib.search.storage.open_storage`):
`sqlite:///optuna_studies/<study>.db`, `postgresql://user:pw@host/db` (through psycopg 3, which plain
`optuna-dashboard postgresql://...` would not use: it wants psycopg2), or a journal file. The dashboard lists every
study in the storage with its trials (state, parameters, values), the intermediate CER curves the pruner judged,
and the pruned trials. It listens on 127.0.0.1 unless `--host` says otherwise: it has no login, and whoever reaches
it can edit the studies' notes. A storage that cannot be opened is one line on stderr, exit status 2.

Not for: running a search (core/gemma_hyperparameter_search.py).
"""

from __future__ import annotations

import argparse
import sys

from lib.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lib.search.dashboard", description=__doc__.splitlines()[0])
    p.add_argument("storage", help="the search's --storage: sqlite:///x.db, postgresql://..., or a journal file")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    a = p.parse_args(argv)
    try:
        import optuna_dashboard
    except ImportError:
        print('error: optuna-dashboard is not installed: pip install optuna-dashboard', file=sys.stderr)
        return 2
    from lib.search.storage import describe_storage, open_storage

    try:
        storage = open_storage(a.storage)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"optuna-dashboard on {describe_storage(a.storage)}: http://{a.host}:{a.port}/dashboard/", flush=True)
    try:
        optuna_dashboard.run_server(storage, host=a.host, port=a.port)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        print(f"error: cannot listen on {a.host}:{a.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
