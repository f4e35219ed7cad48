"""Where the default config files are: `configs/` of a checkout (an editable install reads them there), or the copy
a non-editable install ships inside the package as `lib/configs/` (setup.py maps `configs/` to it).

Not for: user config files (they are paths given on the command line).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["config_file"]

_LIB = Path(__file__).resolve().parent
_ROOTS = (_LIB.parent / "configs", _LIB / "configs")  # checkout first, then the installed package data


def config_file(relative: str) -> Path:
    """The shipped config `relative` (e.g. "ocr_prompt/default.yml"); the checkout's path when neither copy has it,
    so an error message names the file a developer would look for."""
    for root in _ROOTS:
        if (root / relative).is_file():
            return root / relative
    return _ROOTS[0] / relative
