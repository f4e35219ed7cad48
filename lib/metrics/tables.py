"""Table metrics: TEDS, TEDS-S (structure only) and the cell text of a table.

Input: an HTML table (a bare ``<table>…</table>`` is fine, it is wrapped in ``<html><body>`` before parsing) or a
Markdown pipe table (GFM, converted to HTML by markdown-it-py; ``\\|`` is an escaped pipe inside a cell).

Tree (one per table): ``table`` → ``tr`` → ``td`` nodes, built like PubTabNet's TEDS with these rules:
``thead``/``tbody``/``tfoot`` are unwrapped (their rows become children of ``table``); ``th`` ≡ ``td``; every attribute
other than ``colspan``/``rowspan`` is dropped (a missing span is 1); a cell's content is its text (all descendant text,
inline tags such as ``<b>`` dropped) normalized with the scoring profile; ``caption``/``colgroup`` are ignored.

TEDS(a, b) = 1 − TED(a, b) / max(|a|, |b|), |x| = number of nodes, TED = tree edit distance (APTED) with insert and
delete cost 1 and rename cost: 1 if the tags differ; for two cells 1 if colspan or rowspan differ, else the
normalized Levenshtein distance of their contents (``Levenshtein.normalized_distance``) for TEDS and 0 for TEDS-S.

Invalid input (no ``<table>`` with at least one row after lenient lxml parsing, or a Markdown table that does not
parse) raises ``TableParseError``; scoring counts such tables (``n_invalid_pred``/``n_invalid_gt``) instead of hiding
them as 0.0: an invalid prediction scores TEDS 0 and is counted, an invalid ground truth is excluded and counted.
A per-table time limit (``time_limit_s``, default 30 s, for each of TEDS and TEDS-S) is checked inside the
edit-distance loop. It counts CPU seconds of the scoring thread (``time.thread_time``), so the same table times out
whether or not the machine is busy; a table that
exceeds it raises ``TableTimeout`` and is counted (``n_timeouts``), excluded from the TEDS mean.

Cell text (``table_cell_text``): every table in a text is replaced by its cells' text, cells joined in row order, one
line per row, so a table can be scored with CER against plain-text OCR output.

Not for: text CER (text.py).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from rapidfuzz.distance import Levenshtein

from lib.metrics.normalization import normalize

__all__ = ["TableParseError", "TableTimeout", "table_cell_texts", "parse_table", "looks_like_table", "has_table", "teds", "teds_s",
           "table_cell_text", "TableNode", "DEFAULT_TIME_LIMIT_S"]

DEFAULT_TIME_LIMIT_S = 30.0  # CPU seconds; a 600-cell table takes ~7 s in APTED (pure Python)
_MAX_CELL_PAIRS = 25_000_000  # |a|·|b| above this is not attempted (APTED needs O(|a|·|b|) memory)


class TableParseError(ValueError):
    pass


class TableTimeout(TimeoutError):
    pass


@dataclass
class TableNode:
    tag: str
    colspan: int = 1
    rowspan: int = 1
    content: str = ""
    children: list["TableNode"] = field(default_factory=list)
    index: int = -1  # position among the table's cells (set by tree_edit_distance)

    def size(self) -> int:
        return 1 + sum(c.size() for c in self.children)


_HTML_TABLE_RE = re.compile(r"<table\b.*?</table\s*>", re.S | re.I)
_TABLE_OPEN_RE = re.compile(r"<table\b", re.I)
_MD_DELIM_RE = re.compile(r"^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$")


def _md_table_blocks(text: str) -> list[tuple[int, int]]:
    """(start_line, end_line) of every GFM pipe table: a header row with '|', a delimiter row, then rows with '|'."""
    lines = text.split("\n")
    blocks = []
    i = 0
    while i + 1 < len(lines):
        if "|" in lines[i] and _MD_DELIM_RE.match(lines[i + 1]) and "-" in lines[i + 1] and (
                "|" in lines[i + 1] or lines[i].count("|") >= 1):
            j = i + 2
            while j < len(lines) and "|" in lines[j] and lines[j].strip():
                j += 1
            blocks.append((i, j))
            i = j
        else:
            i += 1
    return blocks


def has_table(text: str | None) -> bool:
    """True when `text` contains an HTML table or a Markdown pipe table."""
    if not text:
        return False
    if "<" in text and _TABLE_OPEN_RE.search(text):
        return True
    return "|" in text and "-" in text and bool(_md_table_blocks(text))


def looks_like_table(text: str | None) -> bool:
    """True when `text`, stripped, is one table and nothing else (used when a sample has no `element`)."""
    if not text:
        return False
    t = text.strip()
    if t[:6].lower() == "<table" and t[-8:].lower() == "</table>":
        return True
    if "|" not in t or "-" not in t:
        return False
    blocks = _md_table_blocks(t)
    return len(blocks) == 1 and blocks[0] == (0, t.count("\n") + 1)


def _markdown_to_html(text: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table").render(text)


def _cell_text(el) -> str:
    return "".join(el.itertext())


def _span(el, name: str) -> int:
    v = el.get(name)
    try:
        return max(1, int(str(v).strip())) if v is not None else 1
    except ValueError:
        return 1


def _html_table_element(text: str):
    import lxml.etree
    import lxml.html

    try:
        doc = lxml.html.document_fromstring(f"<html><body>{text}</body></html>")
    except (lxml.etree.ParserError, ValueError) as exc:
        raise TableParseError(f"HTML could not be parsed: {exc}") from None
    tables = doc.xpath("//table")
    if not tables:
        raise TableParseError("no <table> element found")
    return tables[0]


def _table_element(text: str | None):
    if text is None or not str(text).strip():
        raise TableParseError("empty text")
    text = str(text)
    if "<table" in text.lower():
        return _html_table_element(text)
    blocks = _md_table_blocks(text)
    if not blocks:
        raise TableParseError("neither an HTML <table> nor a Markdown pipe table")
    lines = text.split("\n")
    s, e = blocks[0]
    html = _markdown_to_html("\n".join(lines[s:e]))
    return _html_table_element(html)


def table_cell_texts(text: str | None) -> list[str]:
    """The non-empty cell texts of an HTML or Markdown table, row by row (whitespace runs collapsed); raises
    TableParseError when `text` holds no table."""
    import re

    cells = []
    for tr in _table_element(text).iter("tr"):
        for td in tr:
            if isinstance(td.tag, str) and td.tag.lower() in ("td", "th"):
                t = re.sub(r"\s+", " ", "".join(td.itertext())).strip()
                if t:
                    cells.append(t)
    return cells


def _rows(table_el):
    """<tr> elements of a table in document order, thead/tbody/tfoot unwrapped, nested tables not descended."""
    rows = []
    for child in table_el:
        tag = child.tag.lower() if isinstance(child.tag, str) else ""
        if tag == "tr":
            rows.append(child)
        elif tag in ("thead", "tbody", "tfoot"):
            rows.extend(c for c in child if isinstance(c.tag, str) and c.tag.lower() == "tr")
    return rows


def parse_table(text: str | None, profile: str | None = "standard") -> TableNode:
    """Parse an HTML or Markdown table into the TEDS tree. Raises TableParseError when there is no table with rows."""
    table_el = _table_element(text)
    root = TableNode("table")
    for tr in _rows(table_el):
        row = TableNode("tr")
        for cell in tr:
            tag = cell.tag.lower() if isinstance(cell.tag, str) else ""
            if tag not in ("td", "th"):
                continue
            content = _cell_text(cell)
            content = normalize(content, profile) if profile is not None else content
            row.children.append(TableNode("td", _span(cell, "colspan"), _span(cell, "rowspan"), content))
        root.children.append(row)
    if not root.children:
        raise TableParseError("the table has no <tr> rows")
    return root


class _Config:
    """APTED cost model (see module docstring) with a cooperative time limit. Rename costs are looked up in a matrix
    computed up front (rapidfuzz ``cdist`` over all cell pairs): APTED asks for the same pair several times."""

    def __init__(self, structure_only: bool, deadline: float, cost: list[list[float]] | None):
        self.structure_only = structure_only
        self.deadline = deadline
        self.cost = cost
        self.calls = 0

    def delete(self, node):
        return 1.0

    def insert(self, node):
        return 1.0

    def rename(self, a: TableNode, b: TableNode) -> float:
        self.calls += 1
        if not self.calls & 1023 and time.thread_time() > self.deadline:
            raise TableTimeout("table edit distance exceeded its time limit")
        if a.tag != b.tag:
            return 1.0
        if a.tag == "td":
            if a.colspan != b.colspan or a.rowspan != b.rowspan:
                return 1.0
            if self.structure_only:
                return 0.0
            return self.cost[a.index][b.index]
        return 0.0

    def children(self, node: TableNode):
        return node.children


def _apted_config(structure_only: bool, deadline: float, cost):
    from apted import Config

    class Cfg(_Config, Config):
        valuecls = float

    return Cfg(structure_only, deadline, cost)


def _cells(node: TableNode) -> list[TableNode]:
    return [c for row in node.children for c in row.children]


def tree_edit_distance(a: TableNode, b: TableNode, structure_only: bool = False,
                       time_limit_s: float | None = DEFAULT_TIME_LIMIT_S) -> float:
    from apted import APTED
    from rapidfuzz import process

    na, nb = a.size(), b.size()
    if na * nb > _MAX_CELL_PAIRS:
        raise TableTimeout(f"tables too large for TEDS ({na} × {nb} nodes)")
    deadline = time.thread_time() + (time_limit_s if time_limit_s else float("inf"))
    cost = None
    if not structure_only:
        cells_a, cells_b = _cells(a), _cells(b)
        for i, c in enumerate(cells_a):
            c.index = i
        for j, c in enumerate(cells_b):
            c.index = j
        if cells_a and cells_b:
            cost = process.cdist([c.content for c in cells_a], [c.content for c in cells_b],
                                 scorer=Levenshtein.normalized_distance, workers=1).tolist()
    return float(APTED(a, b, _apted_config(structure_only, deadline, cost)).compute_edit_distance())


def _teds(pred, gt, structure_only: bool, profile, time_limit_s) -> float:
    a = pred if isinstance(pred, TableNode) else parse_table(pred, profile)
    b = gt if isinstance(gt, TableNode) else parse_table(gt, profile)
    n = max(a.size(), b.size())
    return 1.0 - tree_edit_distance(a, b, structure_only, time_limit_s) / n


def teds(pred_html: str, gt_html: str, structure_only: bool = False, profile: str | None = "standard",
         time_limit_s: float | None = DEFAULT_TIME_LIMIT_S) -> float:
    """TEDS = 1 − TED(pred, gt) / max(|pred|, |gt|) over table→tr→td trees (APTED; insert/delete 1; rename 1 if tags
    or colspan/rowspan differ, else normalized Levenshtein of the cell texts normalized with `profile`); th ≡ td,
    thead/tbody/tfoot unwrapped, other attributes dropped, Markdown converted to HTML. Raises TableParseError for
    input without a table and TableTimeout past the CPU-time limit; scoring turns those into counts."""
    return _teds(pred_html, gt_html, structure_only, profile, time_limit_s)


def teds_s(pred_html: str, gt_html: str, profile: str | None = "standard",
           time_limit_s: float | None = DEFAULT_TIME_LIMIT_S) -> float:
    """TEDS-S = TEDS with rename cost 0 between two cells of equal colspan/rowspan (structure only)."""
    return _teds(pred_html, gt_html, True, profile, time_limit_s)


def _cells_of(table_el) -> str:
    lines = []
    for tr in _rows(table_el):
        lines.append("".join(_cell_text(c) for c in tr if isinstance(c.tag, str) and c.tag.lower() in ("td", "th")))
    return "\n".join(lines)


def table_cell_text(text: str | None) -> str:
    """Replace every HTML or Markdown table in `text` by its cell text (cells joined row by row, one line per row);
    text outside tables is kept. A table that cannot be parsed is left as it is."""
    if not text:
        return "" if text is None else text
    if "<" in text and _TABLE_OPEN_RE.search(text):
        def repl(m):
            try:
                return "\n" + _cells_of(_html_table_element(m.group(0))) + "\n"
            except TableParseError:
                return m.group(0)

        text = _HTML_TABLE_RE.sub(repl, text)
    if "|" in text and "-" in text:
        blocks = _md_table_blocks(text)
        if blocks:
            lines = text.split("\n")
            out, last = [], 0
            for s, e in blocks:
                out.extend(lines[last:s])
                try:
                    out.append(_cells_of(_html_table_element(_markdown_to_html("\n".join(lines[s:e])))))
                except TableParseError:
                    out.extend(lines[s:e])
                last = e
            out.extend(lines[last:])
            text = "\n".join(out)
    return text
