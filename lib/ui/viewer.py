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
           "position_text", "jump_target", "register_images", "result_choices", "review_for", "view_query",
           "parse_view_query", "parse_confusion", "QUERY_KEYS"]


@dataclasses.dataclass
class Loaded:
    name: str  # as picked (relative to eval_dir)
    path: Path
    result: dict  # as read
    scored: dict  # result, or a scored copy when the file lacked scores
    recomputed: bool
    rows: list[Row]
    review: Any = None  # lib.review.Review of the file's dataset (set by the app)
    data_file: Path | None = None  # the dataset the review sidecar belongs to (None: sidecar beside the result)
    confusions: Any = None  # row position -> {(gt char, pred char): count}


def result_names(eval_dir: str | os.PathLike) -> list[str]:
    return list_files(eval_dir, (".json",), recursive=True)


_SUMMARY_CACHE: dict[str, tuple[tuple[int, int], str | None]] = {}


def _summary(path: Path) -> str | None:
    """"model · CER 0.1234" of a result file (None: not a result file), cached by modification time and size."""
    st = path.stat()
    key = (st.st_mtime_ns, st.st_size)
    hit = _SUMMARY_CACHE.get(str(path))
    if hit and hit[0] == key:
        return hit[1]
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        data = None
    text = None
    if isinstance(data, dict) and isinstance(data.get("samples"), list):
        cer = data.get("overall_cer")
        text = " · ".join([str(data.get("model_name") or "(unnamed model)"),
                           f"CER {cer:.4f}" if isinstance(cer, (int, float)) and not isinstance(cer, bool)
                           else "not scored"])
    _SUMMARY_CACHE[str(path)] = (key, text)
    return text


def result_choices(eval_dir: str | os.PathLike) -> list[tuple[str, str]]:
    """(label, name) of every result file in `eval_dir`, newest first; the label shows the model and the micro CER
    so a file can be found without opening it. JSON files that are not result files are left out."""
    from datetime import datetime

    root = Path(eval_dir)
    entries = []
    for name in result_names(eval_dir):
        path = root / name
        try:
            summary = _summary(path)
            mtime = path.stat().st_mtime
        except OSError:
            continue
        if summary is None:
            continue
        when = datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M")
        entries.append((mtime, f"{name} · {summary} · {when}", name))
    entries.sort(key=lambda e: (-e[0], e[2]))
    return [(label, name) for _, label, name in entries]


def review_for(loaded: "Loaded", allowed_roots: Sequence[str]):
    """The review sidecar of the file's dataset: `<dataset>.review.json` next to the dataset file the result records,
    when that folder is one the app works in (an allowed folder); else `<result>.review.json` next to the result
    file. Returns (lib.review.Review — empty when no sidecar exists yet —, the dataset file or None)."""
    from lib.review import load_review, sidecar_path
    from lib.ui.paths import is_inside

    data = loaded.result.get("data") if isinstance(loaded.result.get("data"), dict) else {}
    raw = data.get("path") if isinstance(data.get("path"), str) else None
    roots = list(getattr(allowed_roots, "roots", allowed_roots))
    candidates = []
    if raw:
        p = Path(raw)
        candidates = [p] if p.is_absolute() else [Path.cwd() / p, loaded.path.parent / p, *(Path(r) / p for r in roots)]
    for cand in candidates:
        if cand.is_file() and any(is_inside(cand.parent, r) for r in roots):
            return load_review(cand), cand
    return load_review(loaded.path, sidecar_path(loaded.path)), None


QUERY_KEYS = ("file", "sample", "element", "layout", "show", "review", "q", "sort", "desc", "confusion")


def view_query(name: str | None, pos: int | None, *, elements=(), layouts=(), errors="all", review="all",
               search="", sort_key="position", descending=False, confusion: tuple[str, str] | None = None) -> str:
    """The query string (without '?') that reopens this view: file, sample and the filters that differ from their
    defaults."""
    from urllib.parse import urlencode

    q: list[tuple[str, str]] = []
    if name:
        q.append(("file", name))
    if pos is not None:
        q.append(("sample", str(pos)))
    if elements:
        q.append(("element", ",".join(elements)))
    if layouts:
        q.append(("layout", ",".join(layouts)))
    if errors and errors != "all":
        q.append(("show", errors))
    if review and review != "all":
        q.append(("review", review))
    if search:
        q.append(("q", search))
    if sort_key and sort_key != "position":
        q.append(("sort", sort_key))
    if descending:
        q.append(("desc", "1"))
    if confusion:
        q.append(("confusion", confusion[0] + confusion[1]))
    return urlencode(q)


def parse_view_query(params: Any) -> dict[str, Any]:
    """The view a query string (a mapping such as Starlette's QueryParams) asks for; unknown or malformed values are
    dropped, never an error: a link is only a hint."""
    from lib.ui.samples import ERROR_FILTERS, REVIEW_FILTERS, SORT_KEYS

    def get(k):
        v = params.get(k) if params is not None else None
        return v if isinstance(v, str) else None

    out: dict[str, Any] = {}
    if get("file"):
        out["file"] = get("file")
    s = get("sample")
    if s is not None and s.strip().isdigit():
        out["sample"] = int(s)
    for k in ("element", "layout"):
        if get(k):
            out[k] = [x for x in get(k).split(",") if x]
    if get("show") in ERROR_FILTERS:
        out["show"] = get("show")
    if get("review") in REVIEW_FILTERS:
        out["review"] = get("review")
    if get("q"):
        out["q"] = get("q")
    if get("sort") in SORT_KEYS:
        out["sort"] = get("sort")
    if get("desc") in ("1", "true"):
        out["desc"] = True
    c = get("confusion")
    if c and len(c) == 2:
        out["confusion"] = (c[0], c[1])
    return out


def parse_confusion(text: str | None) -> tuple[str, str] | None:
    """"臺→台" (as the confusion table shows it) -> ("臺", "台"); None for anything else."""
    if not text:
        return None
    parts = text.strip().split("→")
    if len(parts) == 2 and len(parts[0].strip()) == 1 and len(parts[1].strip()) == 1:
        return parts[0].strip(), parts[1].strip()
    return None


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

