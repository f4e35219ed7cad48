"""Output post-processors: turn what a model printed into the page text that is scored. Each is a pure
`str -> str` function registered by name; the names applied are recorded in the result file, and the raw output is
kept beside the processed one (`raw_prediction`), so a score can always be traced back.

- `strip_think`: drop `<think>…</think>` blocks (and an unterminated leading one) of reasoning models.
- `strip_code_fences`: unwrap a reply wrapped in one ```lang … ``` fence.
- `strip_preamble`: drop one leading chatty line such as "Here's the text from the image:" / 「以下是圖片中的文字：」.
- `structured_to_text`: a JSON layout (dots.ocr-style list of {bbox, category, text}, or {"text": ...}, or
  {"blocks"/"layout"/"elements": [...]}) becomes its text elements joined by newlines in the given order; pictures
  and (optionally) page headers/footers are skipped. Output that is not such JSON is left unchanged.
- `strip_markdown_images`: drop `![...](...)` image links.
- `collapse_cjk_spaces`: drop spaces between CJK characters (Tesseract's default for chi_tra/chi_sim).

Not for: normalization before scoring (the metric profiles do that, in lib/utils/count_metric.py).
"""

from __future__ import annotations

import json
import re
from typing import Callable, Sequence

__all__ = ["POSTPROCESSORS", "apply_postprocessors", "resolve_postprocessors", "DEFAULT_MODEL_POSTPROCESSORS"]

POSTPROCESSORS: dict[str, Callable[[str], str]] = {}
# Applied to generative models ("auto"); each is a no-op on plain OCR text.
DEFAULT_MODEL_POSTPROCESSORS = ["strip_think", "strip_preamble", "strip_code_fences", "structured_to_text"]


def register(name: str):
    def deco(fn):
        POSTPROCESSORS[name] = fn
        return fn

    return deco


_THINK = re.compile(r"<think>.*?</think>\s*", re.DOTALL | re.IGNORECASE)
_THINK_UNCLOSED_HEAD = re.compile(r"^\s*<think>.*$", re.DOTALL | re.IGNORECASE)
_THINK_ORPHAN_CLOSE = re.compile(r"^.*?</think>\s*", re.DOTALL | re.IGNORECASE)


@register("strip_think")
def strip_think(text: str) -> str:
    out = _THINK.sub("", text)
    if re.search(r"</think>", out, re.IGNORECASE):  # templates that put <think> in the prompt: only the close shows
        out = _THINK_ORPHAN_CLOSE.sub("", out)
    if _THINK_UNCLOSED_HEAD.match(out):  # generation stopped inside the reasoning: no answer was given
        out = ""
    return out.strip("\n")


_FENCE = re.compile(r"^\s*```[\w+\-.]*[ \t]*\n(?P<body>.*?)\n?```\s*$", re.DOTALL)


@register("strip_code_fences")
def strip_code_fences(text: str) -> str:
    m = _FENCE.match(text)
    if m:
        return m.group("body")
    stripped = text.strip()
    if stripped.startswith("```") and stripped.count("```") == 1:  # cut off before the closing fence
        first_nl = stripped.find("\n")
        return stripped[first_nl + 1:] if first_nl >= 0 else ""
    return text


_PREAMBLE = re.compile(
    r"^\s*(?:"
    r"(?:sure|certainly|of course|okay|ok)[,!.]?\s*(?:here(?:'s| is| are)\b[^\n]*)?"
    r"|here(?:'s| is| are)\b[^\n]{0,80}?\b(?:text|content|transcription|ocr|result)s?\b[^\n]*"
    r"|(?:the )?(?:extracted|recognized|transcribed|ocr)[^\n]{0,40}?(?:text|result|content)s?\b[^\n]*"
    r"|以下是[^\n]{0,30}?(?:文字|內容|内容|結果|结果|文本|識別|识别)[^\n]*"
    r"|(?:圖片|图片|影像|圖像|图像)中的(?:文字|內容|内容)(?:如下|是|為|为)[^\n]*"
    r")[:：]\s*\n",
    re.IGNORECASE,
)


@register("strip_preamble")
def strip_preamble(text: str) -> str:
    """Remove one leading line that introduces the answer and ends with a colon (the colon is required, so real
    text that merely starts with similar words is kept)."""
    return _PREAMBLE.sub("", text, count=1)


_SKIP_CATEGORIES = {"picture", "figure", "image"}
_TEXT_KEYS = ("text", "content", "ocr_text", "transcription")
_LIST_KEYS = ("blocks", "layout", "elements", "layout_dets", "regions", "items", "lines")


def _elements_to_text(items: list, skip: set[str]) -> str | None:
    parts: list[str] = []
    for item in items:
        if isinstance(item, str):
            parts.append(item)
            continue
        if not isinstance(item, dict):
            return None
        cat = str(item.get("category") or item.get("type") or item.get("label") or "").lower()
        if cat in skip:
            continue
        for key in _TEXT_KEYS:
            if isinstance(item.get(key), str):
                parts.append(item[key])
                break
        else:
            if "bbox" not in item and not cat:
                return None  # not a layout element
    return "\n".join(p for p in parts if p.strip())


@register("structured_to_text")
def structured_to_text(text: str, skip_categories: Sequence[str] = tuple(_SKIP_CATEGORIES)) -> str:
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return text
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError:
        return text
    skip = {c.lower() for c in skip_categories}
    if isinstance(data, dict):
        for key in _LIST_KEYS:
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            for key in _TEXT_KEYS:
                if isinstance(data.get(key), str):
                    return data[key]
            return text
    if isinstance(data, list):
        out = _elements_to_text(data, skip)
        return text if out is None else out
    return text


@register("strip_headers_footers")
def strip_headers_footers(text: str) -> str:
    """`structured_to_text` that also drops page headers, footers and page numbers (for page-level GT without them)."""
    return structured_to_text(text, skip_categories=tuple(_SKIP_CATEGORIES | {"page-header", "page-footer",
                                                                             "page_header", "page_footer",
                                                                             "header", "footer", "page_number"}))


_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)\s*")


@register("strip_markdown_images")
def strip_markdown_images(text: str) -> str:
    return _MD_IMAGE.sub("", text)


_CJK = r"[\u2e80-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]"
_CJK_SPACE = re.compile(rf"(?<={_CJK})[ \t]+(?={_CJK})")


@register("collapse_cjk_spaces")
def collapse_cjk_spaces(text: str) -> str:
    """Remove spaces between two CJK characters (Tesseract's chi_* models put one between most characters)."""
    return _CJK_SPACE.sub("", text)


def resolve_postprocessors(names: Sequence[str] | None, auto: Sequence[str]) -> list[str]:
    """`None`/`["auto"]` -> the backend's defaults `auto`; `["none"]` -> []; names are checked."""
    names = list(names or ["auto"])
    out: list[str] = []
    for n in names:
        if n == "auto":
            out.extend(auto)
        elif n == "none":
            continue
        elif n not in POSTPROCESSORS:
            import difflib

            close = difflib.get_close_matches(n, POSTPROCESSORS, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"unknown post-processor '{n}'.{hint} Known: {', '.join(sorted(POSTPROCESSORS))}, auto, none")
        else:
            out.append(n)
    return list(dict.fromkeys(out))


def apply_postprocessors(text: str | None, names: Sequence[str]) -> str | None:
    if text is None:
        return None
    for n in names:
        text = POSTPROCESSORS[n](text)
    return text
