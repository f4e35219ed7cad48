"""User errors, and the one way every script reports them: a single line naming the file, row or flag and the fix,
exit status 2 — never a traceback for a mistake in the input.

`UserError` is the base of the exceptions whose message is written for the person who ran the command
(`lib.config.ConfigError`, `lib.data.DataError`, `lib.results.ResultsError`, the apps' `UnsafePathError`, ...).
`cli_errors(prog)` wraps a script's `main(parse())`; anything that is not a `UserError` (a bug) still raises with
its traceback.

Not for: deciding what is an error (each module raises its own, with its own message).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

__all__ = ["UserError", "cli_errors", "EXIT_USER_ERROR"]

EXIT_USER_ERROR = 2  # argparse's status for a bad command line, used for every user error


class UserError(Exception):
    """A mistake in the input (command line, config file, data or result file); the message says how to fix it."""


@contextlib.contextmanager
def cli_errors(prog: str, extra: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """`with cli_errors("evaluate.py"): main(parse())` prints `evaluate.py: error: <message>` for a UserError (or one
    of `extra`) and exits 2; SystemExit, KeyboardInterrupt and other exceptions pass through unchanged."""
    try:
        yield
    except (UserError, *extra) as exc:
        sys.stderr.flush()
        print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_USER_ERROR) from None
