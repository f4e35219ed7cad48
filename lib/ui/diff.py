"""Character-level diff of a prediction against its ground truth, as HTML for the viewers.

The alignment is a minimal Levenshtein alignment (rapidfuzz ``Levenshtein.opcodes``), the same edit distance CER
counts, so the number of marks equals the edit distance of the two strings shown: ``n_sub + n_del + n_ins``.

Marks (classes styled by ``DIFF_CSS``):
- ``d-sub``: a ground-truth character the model replaced (struck through) followed by what it wrote instead;
- ``d-del``: a ground-truth character the model left out (struck through, red);
- ``d-ins``: a character the model added (green, underlined).

Every character is HTML-escaped; newlines are kept (the container uses ``white-space: pre-wrap``) and spaces or
line breaks that are part of an edit are shown as visible symbols (``␣``, ``⏎``) so a missing line break can be seen.

Not for: scoring (lib.utils.count_metric computes the numbers; this only draws).
"""

from __future__ import annotations

import dataclasses
import html

__all__ = ["DiffOp", "DiffStats", "char_diff", "diff_stats", "diff_html", "DIFF_CSS", "legend_html"]

DIFF_CSS = """
.ocr-diff { white-space: pre-wrap; word-break: break-all; font-size: 1.05rem; line-height: 1.7;
  font-family: var(--ocr-cjk-font);
  padding: 8px 10px; border: 1px solid var(--border-color-primary); border-radius: 6px; background: var(--background-fill-secondary);
  max-height: 420px; overflow: auto; }
.ocr-diff .d-del { background: #fdd; color: #a00; text-decoration: line-through; }
.ocr-diff .d-ins { background: #dfd; color: #060; text-decoration: underline; }
.ocr-diff .d-sub { border-bottom: 2px solid #e0a000; }
.ocr-diff .d-sub .d-old { background: #fdd; color: #a00; text-decoration: line-through; }
.ocr-diff .d-sub .d-new { background: #fff3c4; color: #7a4d00; }
.ocr-diff.ocr-diff-legend { word-break: normal; font-size: 0.85rem; line-height: 1.5; }
.ocr-diff-legend span { margin-right: 10px; padding: 0 3px; }
"""


@dataclasses.dataclass(frozen=True)
class DiffOp:
    tag: str  # "equal" | "replace" | "delete" | "insert"
    gt: str  # the ground-truth span
    pred: str  # the prediction span


@dataclasses.dataclass(frozen=True)
class DiffStats:
    n_equal: int
    n_sub: int
    n_del: int
    n_ins: int

    @property
    def n_edits(self) -> int:
        return self.n_sub + self.n_del + self.n_ins


def char_diff(gt: str, pred: str) -> list[DiffOp]:
    """A minimal edit alignment of `pred` against `gt` as a list of spans (adjacent equal tags merged)."""
    from rapidfuzz.distance import Levenshtein

    gt, pred = gt or "", pred or ""
    ops: list[DiffOp] = []
    for op in Levenshtein.opcodes(gt, pred):
        ops.append(DiffOp(op.tag, gt[op.src_start:op.src_end], pred[op.dest_start:op.dest_end]))
    return ops


def diff_stats(ops: list[DiffOp]) -> DiffStats:
    eq = sub = dele = ins = 0
    for op in ops:
        if op.tag == "equal":
            eq += len(op.gt)
        elif op.tag == "replace":  # Levenshtein replace spans have equal length on both sides
            sub += len(op.gt)
        elif op.tag == "delete":
            dele += len(op.gt)
        elif op.tag == "insert":
            ins += len(op.pred)
    return DiffStats(eq, sub, dele, ins)


def _visible(text: str) -> str:
    """Escape, and make whitespace that is part of an edit visible."""
    out = []
    for ch in text:
        if ch == " ":
            out.append("␣")
        elif ch == "\n":
            out.append("⏎\n")
        elif ch == "\t":
            out.append("⇥")
        else:
            out.append(html.escape(ch))
    return "".join(out)


def diff_html(gt: str, pred: str | None, *, max_chars: int = 20000) -> str:
    """The diff of `pred` against `gt` as a `<div class="ocr-diff">` with the marks described above.
    `pred=None` (a sample whose prediction failed) shows the ground truth with a note."""
    if pred is None:
        return f'<div class="ocr-diff"><i>no prediction (error)</i>\n{html.escape(gt or "")}</div>'
    gt, pred = (gt or "")[:max_chars], pred[:max_chars]
    parts = []
    for op in char_diff(gt, pred):
        if op.tag == "equal":
            parts.append(html.escape(op.gt))
        elif op.tag == "delete":
            parts.append(f'<del class="d-del" title="missing">{_visible(op.gt)}</del>')
        elif op.tag == "insert":
            parts.append(f'<ins class="d-ins" title="extra">{_visible(op.pred)}</ins>')
        else:
            parts.append(f'<span class="d-sub" title="substituted"><del class="d-old">{_visible(op.gt)}</del>'
                         f'<ins class="d-new">{_visible(op.pred)}</ins></span>')
    return '<div class="ocr-diff">' + "".join(parts) + "</div>"


def legend_html(stats: DiffStats | None = None) -> str:
    counts = (f" — {stats.n_sub} substituted, {stats.n_del} missing, {stats.n_ins} extra, {stats.n_equal} correct"
              if stats else "")
    return ('<div class="ocr-diff ocr-diff-legend" style="max-height:none;padding:4px 8px">'
            '<span class="d-sub"><del class="d-old">gt</del><ins class="d-new">pred</ins></span>'
            '<span class="d-del">missing</span><span class="d-ins">extra</span>'
            f'<span>{html.escape(counts)}</span></div>')
