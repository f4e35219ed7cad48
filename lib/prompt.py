"""The OCR prompt, and the one function that builds chat messages for training, in-process evaluation and served
evaluation. The original trained with 「請給我 OCR 結果」 (text, then image) and evaluated with 「執行 OCR 任務：」
(image, then text); here both sides call `build_messages`, so they are identical by construction.

A prompt file is YAML: `prompt_text` (required), `image_position` (`image_first` | `text_first`, default
image_first), `system_prompt` (optional). Not for: tokenization (the processor's chat template does that).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from lib.shipped import config_file

__all__ = ["Prompt", "PromptError", "load_prompt", "build_messages", "build_openai_messages", "DEFAULT_PROMPT_PATH"]

DEFAULT_PROMPT_PATH = config_file("ocr_prompt/default.yml")
_POSITIONS = ("image_first", "text_first")


class PromptError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Prompt:
    prompt_text: str
    image_position: str = "image_first"
    system_prompt: str | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"prompt_text": self.prompt_text, "image_position": self.image_position,
                "system_prompt": self.system_prompt, "source": self.source}


def parse_prompt(data: Any, source: str = "<prompt>") -> Prompt:
    if not isinstance(data, dict):
        raise PromptError(f"{source}: a prompt file must be a YAML mapping with a 'prompt_text' key")
    unknown = set(data) - {"prompt_text", "image_position", "system_prompt", "description"}
    if unknown:
        raise PromptError(f"{source}: unknown key(s) {sorted(unknown)}; valid: prompt_text, image_position, system_prompt, description")
    text = data.get("prompt_text")
    if not isinstance(text, str) or not text.strip():
        raise PromptError(f"{source}: 'prompt_text' must be a non-empty string")
    pos = data.get("image_position") or "image_first"
    if pos not in _POSITIONS:
        raise PromptError(f"{source}: image_position must be one of {_POSITIONS}, got {pos!r}")
    system = data.get("system_prompt")
    if system is not None and not isinstance(system, str):
        raise PromptError(f"{source}: 'system_prompt' must be a string or null")
    return Prompt(prompt_text=text, image_position=pos, system_prompt=system or None, source=source)


def load_prompt(path: str | os.PathLike | None = None, instruction: str | None = None) -> Prompt:
    """Load a prompt YAML (default: configs/ocr_prompt/default.yml). `instruction`, when given, replaces the
    file's prompt_text (the original's `--instruction` flag)."""
    import yaml

    p = Path(path) if path else DEFAULT_PROMPT_PATH
    if not p.is_file():
        raise PromptError(f"prompt config not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PromptError(f"{p}: invalid YAML: {exc}") from None
    prompt = parse_prompt(data, str(p))
    if instruction:
        prompt = dataclasses.replace(prompt, prompt_text=instruction)
    return prompt


def build_messages(prompt: Prompt, image: Any = None, answer: str | None = None) -> list[dict]:
    """Chat messages in the Hugging Face processor format. `image` is a PIL image or a path/URL (placed as
    {"type": "image", "image": image}); `answer` adds the assistant turn (training)."""
    image_part = {"type": "image"} if image is None else {"type": "image", "image": image}
    text_part = {"type": "text", "text": prompt.prompt_text}
    content = [image_part, text_part] if prompt.image_position == "image_first" else [text_part, image_part]
    messages: list[dict] = []
    if prompt.system_prompt:
        messages.append({"role": "system", "content": [{"type": "text", "text": prompt.system_prompt}]})
    messages.append({"role": "user", "content": content})
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


def build_openai_messages(prompt: Prompt, image_url: str) -> list[dict]:
    """The same messages for an OpenAI-compatible chat-completions server (image as a URL or base64 data URL)."""
    out = []
    for m in build_messages(prompt, image=None):
        content = []
        for part in m["content"]:
            if part["type"] == "image":
                content.append({"type": "image_url", "image_url": {"url": image_url}})
            else:
                content.append(part)
        out.append({"role": m["role"], "content": content})
    return out
