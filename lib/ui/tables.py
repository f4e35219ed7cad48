"""Render table ground truth / predictions (HTML ``<table>`` or Markdown pipe tables) as real tables, side by side.

Model output is untrusted: it is parsed with lxml and rebuilt from a whitelist of table tags
(``table thead tbody tfoot tr th td caption colgroup col br b i u sub sup span p``) with only ``colspan`` /
``rowspan`` attributes, so a prediction containing ``<script>`` or ``onerror=`` is shown as text, never run.

Not for: scoring tables (TEDS lives in the metrics module).
"""

from __future__ import annotations

import html
import re

__all__ = ["looks_like_table", "table_to_safe_html", "side_by_side_html", "mark_cell_differences", "TABLE_CSS"]

_ALLOWED_TAGS = {"table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "colgroup", "col", "br", "b", "i",
                 "u", "sub", "sup", "span", "p", "strong", "em"}
_ALLOWED_ATTRS = {"colspan", "rowspan"}
_MD_TABLE = re.compile(r"^\s*\|.*\|\s*$\n^\s*\|?\s*:?-{2,}", re.M)

TABLE_CSS = """
.ocr-tables { display: flex; gap: 12px; align-items: flex-start; }
.ocr-tables > div { flex: 1 1 0; min-width: 0; overflow: auto; max-height: 520px; }
.ocr-tables h4 { margin: 0 0 4px 0; }
.ocr-tables table { border-collapse: collapse; font-size: 0.9rem; }
.ocr-tables td, .ocr-tables th { border: 1px solid #999; padding: 2px 6px; vertical-align: top; }
.ocr-tables td.cell-diff, .ocr-tables th.cell-diff { background: #fff3c4; outline: 2px solid #e0a000; }
.ocr-tables td.cell-extra, .ocr-tables th.cell-extra { background: #dfd; }
"""


def looks_like_table(text: str | None) -> bool:
    if not text:
        return False
    return "<table" in text.lower() or bool(_MD_TABLE.search(text))


def _markdown_to_html(text: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def _clean(el) -> str:
    """Rebuild an lxml element tree keeping only whitelisted tags and attributes; everything else becomes text."""
    tag = el.tag if isinstance(el.tag, str) else None
    inner = html.escape(el.text or "")
    for child in el:
        inner += _clean(child)
        inner += html.escape(child.tail or "")
    if tag is None or tag.lower() not in _ALLOWED_TAGS:
        return inner  # unknown tag (script, img, style ...): drop the tag; script/style bodies are dropped too
    tag = tag.lower()
    attrs = "".join(f' {k}="{html.escape(str(v))}"' for k, v in el.attrib.items()
                    if k.lower() in _ALLOWED_ATTRS and str(v).isdigit())
    if tag in ("br", "col"):
        return f"<{tag}{attrs}>"
    return f"<{tag}{attrs}>{inner}</{tag}>"


def table_to_safe_html(text: str | None) -> str:
    """The table(s) in `text` as sanitised HTML; text that holds no table is returned escaped in a <pre>."""
    if not text:
        return "<i>(empty)</i>"
    if not looks_like_table(text):
        return f"<pre>{html.escape(text)}</pre>"
    from lxml import html as lhtml
    from lxml import etree

    source = text if "<table" in text.lower() else _markdown_to_html(text)
    try:
        root = lhtml.fragment_fromstring(source, create_parent="div")
    except (etree.ParserError, ValueError):
        return f"<pre>{html.escape(text)}</pre>"
    for bad in root.xpath("//script|//style"):
        bad.drop_tree()  # keeps the text after it
    return _clean(root)


def _grid(fragment: str) -> list[list[str]]:
    """Cell texts row by row of the first table in sanitised HTML (whitespace collapsed)."""
    from lxml import html as lhtml

    try:
        root = lhtml.fragment_fromstring(fragment, create_parent="div")
    except Exception:  # noqa: BLE001 - nothing to compare
        return []
    tables = root.xpath(".//table")
    if not tables:
        return []
    return [[" ".join(c.text_content().split()) for c in tr.xpath("./th|./td")] for tr in tables[0].xpath(".//tr")]


def mark_cell_differences(pred_html: str, gt_html: str) -> str:
    """`pred_html` with each cell whose text differs from the ground-truth cell at the same row and column marked
    `cell-diff`, and cells the ground truth does not have marked `cell-extra` (both already sanitised)."""
    gt = _grid(gt_html)
    if not gt:
        return pred_html
    from lxml import html as lhtml

    try:
        root = lhtml.fragment_fromstring(pred_html, create_parent="div")
    except Exception:  # noqa: BLE001
        return pred_html
    tables = root.xpath(".//table")
    if not tables:
        return pred_html
    for r, tr in enumerate(tables[0].xpath(".//tr")):
        for c, cell in enumerate(tr.xpath("./th|./td")):
            text = " ".join(cell.text_content().split())
            if r >= len(gt) or c >= len(gt[r]):
                cell.set("class", "cell-extra")
            elif text != gt[r][c]:
                cell.set("class", "cell-diff")
    return html.escape(root.text or "") + "".join(lhtml.tostring(child, encoding="unicode") for child in root)


def side_by_side_html(gt: str | None, pred: str | None, titles: tuple[str, ...] = ("Ground truth", "Prediction"),
                      extra: tuple[str | None, ...] = ()) -> str:
    """Ground truth and prediction(s) rendered as tables next to each other; in each prediction, the cells that
    differ from the ground truth's cell at the same position are highlighted."""
    cols = [gt, pred, *extra]
    rendered = [table_to_safe_html(c) for c in cols]
    rendered = rendered[:1] + [mark_cell_differences(h, rendered[0]) if looks_like_table(c) else h
                               for h, c in zip(rendered[1:], cols[1:])]
    cells = "".join(f"<div><h4>{html.escape(t)}</h4>{h}</div>" for t, h in zip(titles, rendered))
    return f'<div class="ocr-tables">{cells}</div>'
