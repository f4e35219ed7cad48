"""Safe path handling for the Gradio apps: every name that comes from a browser (a result file picked in a
dropdown, a prompt file name typed by a user, an image path written in a result file) is resolved here, and only
a path whose *real* location (symlinks followed) lies inside one of the allowed folders is ever opened.

Rules, in order:
- empty names, NUL bytes, control characters, absolute paths (``/x``, ``C:\\x``, ``\\\\server``), backslashes and
  ``..`` components are refused (a name is a path *relative to* the folder);
- percent-encoded names are decoded (repeatedly) and the decoded form must pass the same checks, so ``%2e%2e%2f``
  cannot smuggle a traversal past a later decoding step;
- after joining, ``os.path.realpath`` must stay inside ``os.path.realpath(root)``: a symlink in the folder that
  points outside is refused.

Not for: deciding which folders are allowed (each app takes them from its flags).
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Iterable, Sequence
from urllib.parse import unquote

__all__ = ["UnsafePathError", "is_inside", "check_relative_name", "resolve_inside", "resolve_image",
           "list_files", "sanitize_prompt_name", "PROMPT_SUFFIXES"]

PROMPT_SUFFIXES = (".yml", ".yaml")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_PROMPT_NAME = re.compile(r"^[\w\-. ]+$", re.UNICODE)  # letters (CJK included), digits, _ - . space


class UnsafePathError(ValueError):
    """A name that would leave its folder (or is not a valid name); the message says what was wrong."""


def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def is_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """True when the real location of `path` (symlinks resolved) is `root` or below it."""
    p, r = _real(path), _real(root)
    try:
        return os.path.commonpath([p, r]) == r
    except ValueError:  # different drives (Windows)
        return False


def _decoded_forms(name: str) -> list[str]:
    forms = [name]
    for _ in range(3):  # %252e%252e -> %2e%2e -> ..
        nxt = unquote(forms[-1])
        if nxt == forms[-1]:
            break
        forms.append(nxt)
    return forms


def check_relative_name(name: str) -> str:
    """Refuse a name that is not a plain relative path (see the module docstring). Returns the name unchanged."""
    if not isinstance(name, str) or not name.strip():
        raise UnsafePathError("empty name")
    for form in _decoded_forms(name):
        if "\x00" in form or any(unicodedata.category(c) == "Cc" for c in form):
            raise UnsafePathError(f"{name!r}: control characters are not allowed in a name")
        if "\\" in form:
            raise UnsafePathError(f"{name!r}: backslashes are not allowed (use '/' between folders)")
        if form.startswith(("/", "~")) or _WINDOWS_DRIVE.match(form) or os.path.isabs(form):
            raise UnsafePathError(f"{name!r}: absolute paths are not allowed; give a name inside the folder")
        if any(part == ".." for part in form.split("/")):
            raise UnsafePathError(f"{name!r}: '..' is not allowed (the name must stay inside its folder)")
    if name != _decoded_forms(name)[-1]:
        raise UnsafePathError(f"{name!r}: percent-encoded names are not allowed; type the plain name")
    return name


def resolve_inside(root: str | os.PathLike, name: str, *, must_exist: bool = False,
                   suffixes: Sequence[str] | None = None) -> Path:
    """`root/name` as a real path, guaranteed inside `root` (symlinks followed). Raises UnsafePathError."""
    check_relative_name(name)
    if suffixes and not name.lower().endswith(tuple(suffixes)):
        raise UnsafePathError(f"{name!r}: expected a file ending in {' or '.join(suffixes)}")
    root_real = _real(root)
    target = os.path.join(root_real, name)
    if not is_inside(target, root_real):
        raise UnsafePathError(f"{name!r} resolves outside {root_real} (a symlink pointing out of the folder?)")
    if must_exist and not os.path.isfile(target):
        raise UnsafePathError(f"{name!r}: no such file in {root_real}")
    return Path(_real(target))


def list_files(root: str | os.PathLike, suffixes: Sequence[str], recursive: bool = True) -> list[str]:
    """Names (relative to `root`, '/'-separated, sorted) of regular files with one of `suffixes` whose real
    location is inside `root`. Hidden files and folders (leading '.') are skipped."""
    root_real = _real(root)
    if not os.path.isdir(root_real):
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(root_real, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in filenames:
            if fn.startswith(".") or not fn.lower().endswith(tuple(suffixes)):
                continue
            full = os.path.join(dirpath, fn)
            if os.path.isfile(full) and is_inside(full, root_real):
                out.append(os.path.relpath(full, root_real).replace(os.sep, "/"))
        if not recursive:
            break
    return sorted(out)


def resolve_image(raw: str | None, allowed_roots: Iterable[str | os.PathLike],
                  bases: Iterable[str | os.PathLike] = ()) -> tuple[Path | None, str]:
    """Find the image a result file names, but only inside `allowed_roots`.

    A relative `raw` is tried against each allowed root, then each of `bases` (the dataset file's folder, the
    result file's folder, the working directory); an absolute one as it is. Returns (path, "") for the first
    candidate that exists and is inside an allowed root, else (None, reason) with a reason a person can act on.
    """
    roots = [_real(r) for r in allowed_roots if r]
    if not raw:
        return None, "this sample has no image_path"
    if raw.startswith(("http://", "https://", "data:")):
        return None, f"remote image not shown: {raw[:80]}"
    if "\x00" in raw:
        return None, "image_path contains a NUL byte"
    candidates = [raw] if os.path.isabs(raw) else [os.path.join(b, raw) for b in [*roots, *bases] if b]
    outside = []
    for cand in candidates:
        if not os.path.exists(cand):
            continue
        if any(is_inside(cand, r) for r in roots):
            real = _real(cand)
            if os.path.isfile(real):
                return Path(real), ""
        else:
            outside.append(_real(cand))
    if outside:
        return None, (f"image {outside[0]} is outside the folders this app may serve "
                      f"({', '.join(roots) or 'none'}); pass --data-root with the folder that holds it")
    return None, (f"image not found: {raw} (looked in {', '.join(roots + [str(b) for b in bases if b]) or 'nowhere'};"
                  f" pass --data-root with the folder relative image paths start from)")


def sanitize_prompt_name(name: str) -> str:
    """A prompt file name typed by a user -> a safe file name ending in .yml/.yaml (".yml" is added when there is
    no suffix). Only letters (CJK included), digits, '_', '-', '.', and spaces inside the name are accepted: no
    folders, no leading dot, at most 100 characters. Raises UnsafePathError saying which rule was broken."""
    if not isinstance(name, str):
        raise UnsafePathError("the name must be text")
    name = unicodedata.normalize("NFC", name.strip())
    check_relative_name(name)
    if "/" in name:
        raise UnsafePathError(f"{name!r}: prompt names cannot contain '/' (files live directly in the config folder)")
    if name.startswith("."):
        raise UnsafePathError(f"{name!r}: names starting with '.' are not allowed")
    if not _PROMPT_NAME.match(name):
        bad = sorted({c for c in name if not re.match(r"[\w\-. ]", c)})
        raise UnsafePathError(f"{name!r}: character(s) {''.join(bad)!r} not allowed; use letters, digits, _ - .")
    if not name.lower().endswith(PROMPT_SUFFIXES):
        name += ".yml"
    if len(name) > 100:
        raise UnsafePathError(f"{name[:20]!r}...: name longer than 100 characters")
    return name
