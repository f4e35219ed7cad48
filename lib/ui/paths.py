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

from lib.errors import UserError

__all__ = ["UnsafePathError", "is_inside", "check_relative_name", "resolve_inside", "resolve_image",
           "list_files", "sanitize_prompt_name", "PROMPT_SUFFIXES", "ServedFiles", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")

PROMPT_SUFFIXES = (".yml", ".yaml")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_PROMPT_NAME = re.compile(r"^[\w\-. ]+$", re.UNICODE)  # letters (CJK included), digits, _ - . space


class UnsafePathError(UserError, ValueError):
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
                refused = _not_servable(real, roots)
                if refused:
                    return None, refused
                return Path(real), ""
        else:
            outside.append(_real(cand))
    if outside:
        return None, (f"image {outside[0]} is outside the folders this app may serve "
                      f"({', '.join(roots) or 'none'}); pass --data-root with the folder that holds it")
    return None, (f"image not found: {raw} (looked in {', '.join(roots + [str(b) for b in bases if b]) or 'nowhere'};"
                  f" pass --data-root with the folder relative image paths start from)")


def _not_servable(real: str, roots: Sequence[str]) -> str:
    """Why the file at `real` (inside one of `roots`) must not be served, or "" when it may: hidden files and
    anything in a hidden folder (.env, .ssh/...) never; only image files (by suffix, or by content for a file
    without a known image suffix)."""
    for r in roots:
        if is_inside(real, r):
            rel = os.path.relpath(real, r)
            if any(part.startswith(".") for part in rel.split(os.sep) if part not in ("", ".")):
                return f"not shown: {rel} is a hidden file or in a hidden folder"
    if real.lower().endswith(IMAGE_SUFFIXES):
        return ""
    from lib.evaluation.images import sniff_mime

    try:
        with open(real, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        return f"image not readable: {exc.strerror}"
    if sniff_mime(head).startswith("image/"):
        return ""
    return f"not shown: {os.path.basename(real)} is not an image file"


class ServedFiles(list):
    """The exact files an app lets the browser fetch (Gradio's `allowed_paths`, which it reads on every request):
    the images of the samples the app has resolved, each checked by `resolve_image` (inside an allowed folder,
    symlinks followed, not hidden, an image). Folders are never added, so nothing else in them is served."""

    def __init__(self, roots: Iterable[str | os.PathLike] = ()):
        super().__init__()
        self.roots = [_real(r) for r in roots if r]
        self._seen: set[str] = set()

    def add(self, path: str | os.PathLike | None) -> None:
        if path is None:
            return
        real = _real(path)
        if real in self._seen or not os.path.isfile(real) or not any(is_inside(real, r) for r in self.roots):
            return
        if _not_servable(real, self.roots):
            return
        self._seen.add(real)
        self.append(real)

    def resolve(self, raw: str | None, bases: Iterable[str | os.PathLike] = ()) -> tuple[Path | None, str]:
        """`resolve_image` within this app's folders, adding the image it finds to the served files."""
        path, reason = resolve_image(raw, self.roots, bases)
        self.add(path)
        return path, reason


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
