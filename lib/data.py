"""The one dataset loader every script uses, and the validation that runs before any GPU time is spent.

Accepted row formats (a JSON list of objects, or JSONL with one object per line):
- the original project's raw format: `{"img_path": ..., "ocr_results": ...}`
- the original project's split format: `{"image_path": ..., "ocr_text": ...}`
- optional fields: `element` (text|table|seal|signature|footer|...), `doc_id`, `lang`, `layout` (or the original's
  `focus_layout`), `font`, plus anything else, kept in `extra`.

Image paths are resolved relative to the JSON file's folder (absolute paths and http(s)/data URLs are kept as
they are). `doc_id` defaults to the source document derived from the image path: the PDF name in names like
`report.pdf_12.png` / `report_page3.png`, else the image's parent folder when it is not the dataset root, else
the file stem. Splitting by it keeps pages of one document in one split.

Not for: decoding images for a model (that is the processor's job) or writing results (lib/results.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

from lib.errors import UserError

__all__ = ["Sample", "DataError", "load_samples", "read_samples", "save_samples", "derive_doc_id", "validate_samples",
           "ValidationReport", "dataset_hash", "resolve_image_path"]

IMAGE_KEYS = ("img_path", "image_path", "image")
TEXT_KEYS = ("ocr_results", "ocr_text", "text", "label")


class DataError(UserError, ValueError):
    """A dataset that cannot be used; the message names the file, the row and the field, and says what to do."""


@dataclasses.dataclass
class Sample:
    image_path: str  # resolved: absolute path, or a URL
    text: str  # the ground truth (may be empty only if the caller allows it)
    index: int  # row number in the source file (0-based)
    doc_id: str
    element: str | None = None
    lang: str | None = None
    layout: Any = None
    raw_image_path: str = ""  # as written in the file
    extra: dict = dataclasses.field(default_factory=dict)
    doc_id_derived: bool = False  # True: doc_id guessed from the image path (the row has none)

    def to_row(self, relative_to: str | os.PathLike | None = None, fmt: str = "raw") -> dict:
        """Back to a JSON row. `fmt="raw"` writes {img_path, ocr_results}; `"split"` writes {image_path, ocr_text}."""
        path = self.image_path
        if relative_to is not None and not _is_url(path):
            try:
                path = os.path.relpath(path, relative_to)
            except ValueError:
                pass
        img_key, text_key = ("img_path", "ocr_results") if fmt == "raw" else ("image_path", "ocr_text")
        row = {img_key: path, text_key: self.text, "doc_id": self.doc_id}
        if self.doc_id_derived:
            row["doc_id_derived"] = True
        for key in ("element", "lang", "layout"):
            value = getattr(self, key)
            if value is not None:
                row[key] = value
        row.update(self.extra)
        return row


def _is_url(path: str) -> bool:
    return path.startswith(("http://", "https://", "data:"))


_PDF_PAGE = re.compile(r"^(?P<doc>.+?\.pdf)(?:[_\-.]+(?:p|page)?\d+.*)?$", re.IGNORECASE)
_PAGE_SUFFIX = re.compile(r"^(?P<doc>.+?)[_\-.](?:p|page|pg)?\d{1,4}(?:__.*)?$", re.IGNORECASE)


def derive_doc_id(raw_path: str, dataset_root: str | os.PathLike | None = None) -> str:
    """The source document of an image: PDF name in the file name, else the parent folder, else the stem."""
    name = raw_path.rstrip("/").split("/")[-1]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    m = _PDF_PAGE.match(name)
    if m and ".pdf" in name.lower():
        return m.group("doc")
    parent = os.path.dirname(raw_path.rstrip("/"))
    if parent and not _is_url(raw_path):
        root = os.path.abspath(dataset_root) if dataset_root else None
        abs_parent = os.path.abspath(parent) if os.path.isabs(parent) or root is None else os.path.abspath(os.path.join(root, parent))
        generic = {"images", "image", "imgs", "img", "pages", "data", "crops", "block_crops", "table_crops", "lines"}
        if abs_parent != root and os.path.basename(abs_parent).lower() not in generic:
            return os.path.basename(abs_parent)
    m = _PAGE_SUFFIX.match(stem)
    return m.group("doc") if m else stem


def resolve_image_path(raw: str, base_dir: str | os.PathLike) -> str:
    if _is_url(raw) or os.path.isabs(raw):
        return raw
    return os.path.normpath(os.path.join(str(base_dir), raw))


def _pick(row: dict, keys: Sequence[str]) -> tuple[str | None, Any]:
    for k in keys:
        if k in row:
            return k, row[k]
    return None, None


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        guess = ""
        for enc, name in (("big5", "Big5"), ("gb18030", "GB18030"), ("utf-16", "UTF-16")):
            try:
                data.decode(enc)
            except UnicodeDecodeError:
                continue
            guess = f"; it decodes as {name}: convert it with `iconv -f {enc.upper()} -t UTF-8 {path} > fixed.json`"
            break
        line = data[:exc.start].count(b"\n") + 1
        raise DataError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}){guess}") from None


def _read_rows(path: Path) -> list[Any]:
    text = _decode(path)
    if path.suffix.lower() == ".jsonl":
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}: line {lineno} is not valid JSON ({exc.msg}); fix or delete that line") from None
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from None
    if isinstance(data, dict):
        for key in ("samples", "data", "rows"):
            if isinstance(data.get(key), list):
                return data[key]
        raise DataError(f"{path}: expected a JSON list of rows (or an object with a 'samples' list), got an object "
                        f"with keys {sorted(data)[:10]}")
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of rows, got {type(data).__name__}")
    return data


def load_samples(path: str | os.PathLike, *, image_root: str | os.PathLike | None = None) -> list[Sample]:
    """Load a dataset file into Samples. Structural problems (not a list, a row without an image or a label key)
    raise DataError naming every bad row; content problems (missing image, empty label) are for validate_samples."""
    p = Path(path)
    samples, problems = read_samples(p, image_root=image_root)
    if problems:
        shown = "\n  ".join(problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise DataError(f"{p}: {len(problems)} malformed row(s):\n  {shown}{more}")
    return samples


def read_samples(path: str | os.PathLike, *, image_root: str | os.PathLike | None = None
                 ) -> tuple[list[Sample], list[str]]:
    """(samples, problems): like `load_samples`, but a malformed row is left out and described in `problems`
    ("row 3 (img.png): no label ...") instead of failing the whole file. A file that cannot be read at all (missing,
    not UTF-8, not JSON, not a list) still raises DataError."""
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p} is a folder; pass the dataset JSON/JSONL file inside it")
    if not p.is_file():
        raise DataError(f"dataset file not found: {p} (check the path; relative paths start from the working "
                        f"directory {os.getcwd()})")
    base = Path(image_root) if image_root else p.parent
    rows = _read_rows(p)
    samples: list[Sample] = []
    problems: list[str] = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            problems.append(f"row {i}: expected an object, got {type(row).__name__}")
            continue
        img_key, raw_img = _pick(row, IMAGE_KEYS)
        text_key, text = _pick(row, TEXT_KEYS)
        if img_key is None or not isinstance(raw_img, str) or not raw_img.strip():
            problems.append(f"row {i}: no image path (expected one of the keys {', '.join(IMAGE_KEYS)})")
            continue
        if text_key is None:
            problems.append(f"row {i} ({raw_img}): no label (expected one of the keys {', '.join(TEXT_KEYS)})")
            continue
        if text is None:
            text = ""
        if not isinstance(text, str):
            problems.append(f"row {i} ({raw_img}): field '{text_key}' must be a string, got {type(text).__name__}")
            continue
        known = set(IMAGE_KEYS) | set(TEXT_KEYS) | {"element", "doc_id", "doc_id_derived", "lang", "layout",
                                                    "focus_layout"}
        layout = row.get("layout", row.get("focus_layout"))
        doc_id = row.get("doc_id")
        derived = doc_id in (None, "") or row.get("doc_id_derived") is True
        samples.append(Sample(
            image_path=resolve_image_path(raw_img, base),
            text=text,
            index=i,
            doc_id=str(doc_id) if doc_id not in (None, "") else derive_doc_id(raw_img, base),
            element=row.get("element"),
            lang=row.get("lang"),
            layout=layout,
            raw_image_path=raw_img,
            extra={k: v for k, v in row.items() if k not in known},
            doc_id_derived=derived,
        ))
    return samples, problems


def save_samples(samples: Iterable[Sample], path: str | os.PathLike, fmt: str = "raw") -> Path:
    """Write samples as a JSON list, image paths relative to the output file's folder, atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    rows = [s.to_row(relative_to=p.parent.resolve(), fmt=fmt) for s in samples]
    from lib.results import atomic_write_text

    return atomic_write_text(json.dumps(rows, ensure_ascii=False, indent=1), p)


@dataclasses.dataclass
class ValidationReport:
    n_rows: int
    problems: list[dict]  # {"row": i, "image": path, "field": ..., "problem": ..., "fix": ...}

    @property
    def bad_rows(self) -> set[int]:
        return {p["row"] for p in self.problems}

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self, limit: int = 100) -> str:
        if self.ok:
            return f"dataset OK: {self.n_rows} rows checked"
        lines = [f"{len(self.bad_rows)} of {self.n_rows} rows have problems:"]
        for p in self.problems[:limit]:
            lines.append(f"  row {p['row']} [{p['field']}] {p['problem']} ({p['image']}) -> {p['fix']}")
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more")
        return "\n".join(lines)


def _image_problem(path: str) -> tuple[str, str] | None:
    """(problem, fix) for an image file that is missing, corrupt or degenerate; None when it decodes."""
    if not os.path.isfile(path):
        return "file not found", "fix the path (relative paths are resolved against the JSON file's folder)"
    try:
        from PIL import Image

        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            im.load()
            if im.width < 2 or im.height < 2:
                return f"image is {im.width}x{im.height} pixels", "replace it with the real page image"
    except Exception as exc:  # PIL raises many types for corrupt files
        return f"unreadable or corrupt image ({type(exc).__name__}: {exc})", "re-export the image"
    return None


URL_FIX = ("download the image and give its local path: training and the local backends (hf, paddleocr, tesseract, "
           "local_api) read local files only; only --mode vllm/openai/vllm_stream pass a URL on to the server")


def validate_samples(samples: Sequence[Sample], *, check_images: bool = True, allow_empty_labels: bool = False,
                     allow_urls: bool = False, workers: int | None = None) -> ValidationReport:
    """Check every row: image file exists and decodes (a URL is a problem unless `allow_urls`: nothing here fetches
    it), label non-empty, no duplicate rows, no image with two different labels. Never raises.
    Images are decoded by a thread pool (`workers`, default min(16, CPUs); Pillow decodes without the GIL)."""
    problems: list[dict] = []
    seen: dict[tuple[str, str], int] = {}
    label_of: dict[str, tuple[int, str]] = {}

    def add(s: Sample, fld: str, problem: str, fix: str):
        problems.append({"row": s.index, "image": s.raw_image_path or s.image_path, "field": fld, "problem": problem, "fix": fix})

    image_problems: dict[str, tuple[str, str] | None] = {}
    if check_images:
        paths = list(dict.fromkeys(s.image_path for s in samples if not _is_url(s.image_path)))
        n = workers or min(16, os.cpu_count() or 1)
        if n > 1 and len(paths) > 64:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=n) as ex:
                image_problems = dict(zip(paths, ex.map(_image_problem, paths, chunksize=64)))
        else:
            image_problems = {p: _image_problem(p) for p in paths}
    for s in samples:
        if not allow_empty_labels and not s.text.strip():
            add(s, "label", "empty or whitespace-only label", "write the page's text, or remove the row")
        key = (s.image_path, s.text)
        if key in seen:
            add(s, "row", f"duplicate of row {seen[key]} (same image and label)", "remove the duplicate row")
        else:
            seen[key] = s.index
            first = label_of.setdefault(s.image_path, (s.index, s.text))
            if first[0] != s.index:
                add(s, "label", f"same image as row {first[0]} with a different label", "keep the right label "
                    "and remove the other row")
        if _is_url(s.image_path) and not allow_urls:
            add(s, "image", "image is a URL (not fetched)", URL_FIX)
        found = image_problems.get(s.image_path)
        if found is not None:
            add(s, "image", *found)
    return ValidationReport(n_rows=len(samples), problems=problems)


def dataset_hash(samples: Sequence[Sample]) -> str:
    """A short content hash of (image path, label) pairs, recorded in metadata and results to trace a number to its data."""
    h = hashlib.sha256()
    for s in samples:
        h.update(s.raw_image_path.encode("utf-8") or s.image_path.encode("utf-8"))
        h.update(b"\0")
        h.update(s.text.encode("utf-8"))
        h.update(b"\1")
    return h.hexdigest()[:16]


def element_counts(samples: Sequence[Sample]) -> dict[str, int]:
    return dict(Counter(s.element or "unknown" for s in samples))
