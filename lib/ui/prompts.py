"""Prompt YAML files in one config folder: list, read, add, update, delete — every name sanitised and resolved
inside the folder (lib.ui.paths), every file validated with the same parser training and evaluation use
(`yaml.safe_load` + `lib.prompt.parse_prompt`), writes atomic, no overwrite without confirmation.

Safety details:
- a new file is created with O_CREAT | O_EXCL (never replaces an existing file or follows a symlink there);
- an update writes a temporary file in the folder and renames it over the name (a symlink at that name is
  replaced, its target is never written);
- listing and reading skip anything whose real location is outside the folder (a symlink pointing out).

Not for: building chat messages (lib.prompt).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from pathlib import Path
from typing import Any

from lib.results import atomic_write_text
from lib.ui.paths import PROMPT_SUFFIXES, UnsafePathError, is_inside, list_files, sanitize_prompt_name

__all__ = ["PromptStore", "PromptStoreError", "PromptEntry", "render_prompt_yaml", "validate_prompt_yaml"]


class PromptStoreError(ValueError):
    """An action that was refused; the message says why and what to do."""


@dataclasses.dataclass
class PromptEntry:
    name: str
    prompt_text: str | None
    image_position: str | None
    system_prompt: str | None
    error: str | None  # why the file is not a valid prompt


def validate_prompt_yaml(text: str, source: str = "<prompt>"):
    """Parse YAML text as a prompt file; returns lib.prompt.Prompt or raises PromptStoreError with the reason."""
    import yaml

    from lib.prompt import PromptError, parse_prompt

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PromptStoreError(f"{source}: invalid YAML: {exc}") from None
    try:
        return parse_prompt(data, source)
    except PromptError as exc:
        raise PromptStoreError(str(exc)) from None


def render_prompt_yaml(prompt_text: str, image_position: str = "image_first", system_prompt: str | None = None,
                       description: str | None = None) -> str:
    """A prompt file in lib.prompt's format, with a comment header."""
    import yaml

    data: dict[str, Any] = {"prompt_text": prompt_text, "image_position": image_position or "image_first",
                            "system_prompt": system_prompt or None}
    if description:
        data["description"] = description
    body = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, default_flow_style=False)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"# OCR prompt (lib/prompt.py format), written by ui/prompt_manager.py at {stamp}\n{body}"


class PromptStore:
    def __init__(self, config_dir: str | os.PathLike, create: bool = True):
        self.root = Path(os.path.realpath(os.path.abspath(os.fspath(config_dir))))
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        if not self.root.is_dir():
            raise PromptStoreError(f"config folder not found: {self.root}")

    # ------------------------------------------------------------------ helpers
    def _path(self, name: str) -> tuple[str, Path]:
        try:
            clean = sanitize_prompt_name(name)
        except UnsafePathError as exc:
            raise PromptStoreError(f"invalid name: {exc}") from None
        p = self.root / clean
        if not is_inside(p, self.root):  # a symlink at that name pointing out of the folder
            raise PromptStoreError(f"{clean!r} points outside {self.root}; refusing to touch it")
        return clean, p

    def names(self) -> list[str]:
        return list_files(self.root, PROMPT_SUFFIXES, recursive=False)

    # ------------------------------------------------------------------ read
    def read_text(self, name: str) -> str:
        clean, p = self._path(name)
        if not p.is_file():
            raise PromptStoreError(f"no prompt file {clean!r} in {self.root}")
        return p.read_text(encoding="utf-8")

    def entry(self, name: str) -> PromptEntry:
        text = self.read_text(name)
        try:
            pr = validate_prompt_yaml(text, name)
            return PromptEntry(name, pr.prompt_text, pr.image_position, pr.system_prompt, None)
        except PromptStoreError as exc:
            return PromptEntry(name, None, None, None, str(exc))

    def entries(self) -> list[PromptEntry]:
        return [self.entry(n) for n in self.names()]

    # ------------------------------------------------------------------ write
    def add(self, name: str, yaml_text: str) -> str:
        """Create a new file; refuses when the name exists. Returns the file name written."""
        clean, p = self._path(name)
        validate_prompt_yaml(yaml_text, clean)
        if os.path.lexists(p):
            raise PromptStoreError(f"{clean!r} already exists; to change it, open it under 'View / edit / delete', "
                                   f"tick 'confirm overwrite' and press Save")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(p, flags, 0o644)
        except FileExistsError:
            raise PromptStoreError(f"{clean!r} already exists") from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(yaml_text)
        return clean

    def update(self, name: str, yaml_text: str, confirm_overwrite: bool = False) -> str:
        """Replace an existing file's content; needs `confirm_overwrite=True`."""
        clean, p = self._path(name)
        validate_prompt_yaml(yaml_text, clean)
        if not p.is_file():
            raise PromptStoreError(f"no prompt file {clean!r} to update; use Add to create it")
        if not confirm_overwrite:
            raise PromptStoreError(f"{clean!r} exists: tick 'confirm overwrite' to replace it")
        atomic_write_text(yaml_text, p)
        return clean

    def delete(self, name: str, confirm: bool = False) -> str:
        clean, p = self._path(name)
        if not os.path.lexists(p):
            raise PromptStoreError(f"no prompt file {clean!r} in {self.root}")
        if not confirm:
            raise PromptStoreError(f"tick 'confirm delete' to delete {clean!r}")
        os.unlink(p)  # a symlink is removed itself, never its target
        return clean
