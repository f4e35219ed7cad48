"""The evaluation viewer's state and per-sample rendering, free of Gradio so it can be tested directly.

`open_result(eval_dir, name)` resolves a name picked in the browser strictly inside `eval_dir`, reads it with
`lib.results.load_results`, fills missing scores (`ensure_scored`) and builds the rows. `render_sample` turns one
row into the HTML/text the page shows. `step` implements prev/next over the filtered, sorted order.

Not for: widgets and callbacks (ui/evaluate_viewer.py).
"""

from __future__ import annotations

import dataclasses
import html
import os
from pathlib import Path
from typing import Any, Sequence

from lib.ui.app import image_html
from lib.ui.diff import char_diff, diff_html, diff_stats, legend_html
from lib.ui.paths import ServedFiles, list_files, resolve_image, resolve_inside
from lib.ui.samples import Row, count_metric, ensure_scored, fmt_score, rows_from_result
from lib.ui.tables import looks_like_table, side_by_side_html

__all__ = ["Loaded", "open_result", "render_sample", "step", "image_bases", "result_names", "SampleView",
           "position_text", "jump_target", "register_images"]


@dataclasses.dataclass
class Loaded:
    name: str  # as picked (relative to eval_dir)
    path: Path
    result: dict  # as read
    scored: dict  # result, or a scored copy when the file lacked scores
    recomputed: bool
    rows: list[Row]


def result_names(eval_dir: str | os.PathLike) -> list[str]:
    return list_files(eval_dir, (".json",), recursive=True)


def open_result(eval_dir: str | os.PathLike, name: str) -> Loaded:
    """Load `name` (relative to eval_dir). Raises UnsafePathError for anything outside eval_dir, ResultsError for a
    file that is not a result file."""
    from lib.results import load_results

    path = resolve_inside(eval_dir, name, must_exist=True, suffixes=(".json",))
    result = load_results(path)
    scored, recomputed = ensure_scored(result)
    rows = rows_from_result(scored, original=result if recomputed else None)
    return Loaded(name, path, result, scored, recomputed, rows)


def image_bases(loaded: Loaded) -> list[str]:
    """Folders a relative image path may start from: the dataset file's folder (as recorded), the result file's
    folder, the working directory. Candidates are still accepted only inside the allowed roots."""
    bases = []
    data = loaded.result.get("data") or {}
    dpath = data.get("path") if isinstance(data, dict) else None
    if isinstance(dpath, str) and dpath:
        bases.append(os.path.dirname(os.path.abspath(dpath)))
    bases += [str(loaded.path.parent), os.getcwd()]
    return bases


@dataclasses.dataclass
class SampleView:
    image: str  # HTML
    info: str  # Markdown
    diff: str  # HTML
    legend: str  # HTML
    label: str
    prediction: str
    tables: str  # HTML ("" when the sample holds no table)


def render_sample(loaded: Loaded, row: Row, allowed_roots: Sequence[str], zoom: int = 100,
                  where: str = "", diff_profile: str | None = None) -> SampleView:
    """Everything shown for one sample. `diff_profile` (e.g. "standard") diffs the normalized texts the score was
    computed on instead of the raw texts."""
    img, reason = _resolve(row.image_path, allowed_roots, image_bases(loaded))
    gt, pred = row.label, row.prediction
    if diff_profile and pred is not None:
        cm = count_metric()
        if cm is not None and hasattr(cm, "normalize"):
            gt, pred = cm.normalize(gt, diff_profile), cm.normalize(pred, diff_profile)
    stats = diff_stats(char_diff(gt, pred)) if pred is not None else None
    meta = [f"**Sample #{row.pos}**" + (f" (dataset row {row.index})" if row.index is not None else "") + where,
            f"`{html.escape(row.image_path)}`"]
    facts = [f"element **{row.element}**" if row.element else None, f"layout {row.layout}" if row.layout else None,
             f"doc {row.doc_id}" if row.doc_id else None, f"{row.length} GT chars"]
    meta.append(" · ".join(f for f in facts if f))
    if row.is_error:
        meta.append(f"⚠ **error**: {html.escape(row.error or 'no prediction')}")
    else:
        meta.append(f"CER **{fmt_score(row.cer)}** · F1 **{fmt_score(row.f1)}** · NED **{fmt_score(row.ned)}**")
    tables = ""
    if looks_like_table(row.label) or looks_like_table(row.prediction):
        tables = side_by_side_html(row.label, row.prediction)
    return SampleView(image=image_html(img, reason, zoom, alt=row.image_path), info="\n\n".join(meta),
                      diff=diff_html(gt, pred), legend=legend_html(stats), label=row.label,
                      prediction=row.prediction if row.prediction is not None else f"(error: {row.error})",
                      tables=tables)


def _resolve(raw: str, allowed: Sequence[str], bases: Sequence[str]):
    """A ServedFiles (what a running app passes) also records the image as one the app may serve."""
    if isinstance(allowed, ServedFiles):
        return allowed.resolve(raw, bases)
    return resolve_image(raw, allowed, bases)


def register_images(loaded: Loaded, served: ServedFiles) -> int:
    """Add every image the result file names (and that may be served) to `served`; returns how many were found."""
    n = 0
    bases = image_bases(loaded)
    for row in loaded.rows:
        n += served.resolve(row.image_path, bases)[0] is not None
    return n


def step(order: Sequence[int], current: int | None, delta: int) -> int | None:
    """The sample position `delta` steps from `current` in `order` (wrapping). A `current` outside the order
    (jumped to a filtered-out sample) moves to the first / last element."""
    if not order:
        return None
    if current not in order:
        return order[0] if delta >= 0 else order[-1]
    i = list(order).index(current)
    return order[(i + delta) % len(order)]


def position_text(order: Sequence[int], current: int | None, total: int) -> str:
    if current is None:
        return "no sample matches the filters"
    if current in order:
        return f"**{list(order).index(current) + 1} / {len(order)}** shown (of {total})"
    return f"sample #{current} (outside the current filters; {len(order)} of {total} shown)"



def jump_target(loaded: Loaded, value: Any) -> int:
    """Validate a "jump to sample" number (0-based position in the file)."""
    try:
        pos = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a sample number: {value!r}") from None
    if not 0 <= pos < len(loaded.rows):
        raise ValueError(f"sample #{pos} does not exist (the file has samples 0–{len(loaded.rows) - 1})")
    return pos

