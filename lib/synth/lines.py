"""Text-line and paragraph crops for teaching a random-init VLM to read (the GPU learning run, core/benchmarks/learning_run.py).

A sample is one square image (`LineTask.image_size`) holding either a single line of 2-12 characters drawn large
(placed like a text detector's line crop letterboxed into the square), or a paragraph of up to `max_lines` lines
(the curriculum's second stage), and its text. Strings come from two
sources, mixed by `random_share`:

- `content`: windows of real 公文 text from `lib.synth.content` (headers, subjects, explanations, addresses, copies),
  the language a government-document OCR model must read;
- `random`: uniformly random characters of the same character set - no language prior can guess them, so a low
  CER on these proves the model reads the glyphs.

Held-out sets come from documents of a disjoint seed range and never repeat a training string
(`build_line_dataset(..., exclude=...)`). Rendering runs in a process pool (`workers`), fonts via `lib.render`
(set `GEMMA_OCR_FONT_DIRS` to use a carried font folder). Not for: full pages (lib/synth/page.py).
"""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path
from typing import Sequence

__all__ = ["LineTask", "content_pool", "task_charset", "make_strings", "render_sample", "build_line_dataset"]

@dataclasses.dataclass(frozen=True)
class LineTask:
    """What one stage of the curriculum draws."""

    image_size: int = 256
    min_font: int = 18  # glyph size in px (the em square)
    max_font: int = 26
    min_len: int = 2  # characters per line
    max_len: int = 12
    max_lines: int = 1  # 1 = single lines; > 1 = paragraphs of min_lines..max_lines lines
    min_lines: int = 2
    random_share: float = 0.5  # share of strings of uniformly random characters
    random_chars: str = "hanzi"  # what random strings draw from: hanzi | all (every character of the set: digits,
    # Latin letters and punctuation too, which otherwise occur only in the 公文 strings)
    max_ink: int = 90  # darkest ink grey level is 0, lightest max_ink
    min_paper: int = 215  # background grey level in [min_paper, 255]
    placement: str = "left"  # left: the block starts near the left edge, vertically centred +-10 % (a detector's
    # crop, letterboxed into the square); anywhere: a random place where it fits


def content_pool(seed: int, n_docs: int) -> list[str]:
    """Text lines of `n_docs` synthetic 公文 (documents seed*10**6 + i), without whitespace."""
    from lib.synth import content as C

    lines: list[str] = []
    for i in range(n_docs):
        doc = C.make_document(random.Random(seed * 10 ** 6 + i))
        parts = [doc.title, doc.receiver, *doc.address_lines, *doc.copies, *(k + "：" + v for k, v in doc.header_fields)]
        for head, items in doc.sections:
            parts += [head + "：" + items[0][1]] + [t for _, t in items[1:]]
        if doc.table is not None:
            parts += [t for *_, t in doc.table.cells if t]
        lines += ["".join(p.split()) for p in parts]
    return [ln for ln in lines if len(ln) >= 2]


def task_charset(fonts: Sequence, pool: Sequence[str]) -> str:
    """Characters of the pool that every font draws (sorted); random strings are drawn from its Hanzi."""
    from lib.render import font_covers

    chars = sorted({c for ln in pool for c in ln if not c.isspace()})
    return "".join(c for c in chars if all(font_covers(f, c) for f in fonts))


def _one_string(rng: random.Random, task: LineTask, pool: Sequence[str], charset: str, hanzi: str) -> str:
    n = rng.randint(task.min_len, task.max_len)
    if rng.random() < task.random_share:
        alphabet = hanzi if task.random_chars == "hanzi" else charset
        return "".join(rng.choice(alphabet) for _ in range(n))
    for _ in range(20):
        line = rng.choice(pool)
        if len(line) < task.min_len:
            continue
        n2 = min(n, len(line))
        start = rng.randint(0, len(line) - n2)
        s = line[start:start + n2]
        if all(c in charset for c in s) and s.strip():
            return s
    return "".join(rng.choice(hanzi) for _ in range(n))


def make_strings(rng: random.Random, task: LineTask, n: int, pool: Sequence[str], charset: str,
                 exclude: set[str] = frozenset()) -> list[str]:
    """`n` texts (lines joined by '\\n' for paragraphs), none of them in `exclude`."""
    if task.random_chars not in ("hanzi", "all"):
        raise ValueError(f"LineTask.random_chars must be 'hanzi' or 'all', got {task.random_chars!r}")
    charset = "".join(c for c in charset if not c.isspace())
    hanzi = "".join(c for c in charset if "\u4e00" <= c <= "\u9fff")
    if not hanzi:
        raise ValueError("the character set has no Hanzi the fonts can draw")
    out: list[str] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 50 * n + 1000:
            raise RuntimeError(f"could only make {len(out)} of {n} strings not in the excluded set; use a larger pool")
        k = rng.randint(min(task.min_lines, task.max_lines), task.max_lines) if task.max_lines > 1 else 1
        text = "\n".join(_one_string(rng, task, pool, charset, hanzi) for _ in range(k))
        if text not in exclude:
            out.append(text)
    return out


def render_sample(text: str, font, task: LineTask, rng: random.Random):
    """A `task.image_size` square, light paper, dark ink; the text block at a random place that fits."""
    from PIL import Image, ImageDraw, ImageFilter

    from lib.render import load_font

    size = task.image_size
    lines = text.split("\n")
    longest = max(len(ln) for ln in lines)
    fs = rng.randint(task.min_font, task.max_font)
    fs = max(12, min(fs, int(0.94 * size / max(longest, 1)), int(0.94 * size / (1.25 * len(lines)))))
    f = load_font(font, fs)
    paper = rng.randint(task.min_paper, 255)
    img = Image.new("L", (size, size), paper)
    draw = ImageDraw.Draw(img)
    line_h = int(fs * rng.uniform(1.15, 1.45))
    widths = [draw.textlength(ln, font=f) for ln in lines]
    block_w, block_h = max(widths), line_h * (len(lines) - 1) + fs
    if task.placement == "left":
        x0 = rng.uniform(0, min(8.0, max(0.0, size - block_w)))
        y0 = (size - block_h) / 2 + rng.uniform(-0.1, 0.1) * size
        y0 = min(max(0.0, y0), max(0.0, size - block_h))
    else:
        x0 = rng.uniform(0, max(0.0, size - block_w))
        y0 = rng.uniform(0, max(0.0, size - block_h))
    ink = rng.randint(0, task.max_ink)
    for i, ln in enumerate(lines):
        draw.text((x0, y0 + i * line_h), ln, font=f, fill=ink)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))
    return img.convert("RGB")


_WORKER: dict = {}


def _init(fonts, task, seed):
    _WORKER.update(fonts=fonts, task=task, seed=seed)


def _render_chunk(args):
    out_dir, start, texts, split = args
    fonts, task, seed = _WORKER["fonts"], _WORKER["task"], _WORKER["seed"]
    rows = []
    for k, text in enumerate(texts):
        i = start + k
        rng = random.Random(f"{seed}-{split}-{i}")
        font = fonts[i % len(fonts)]
        name = f"images/{split}_{i:07d}.png"
        render_sample(text, font, task, rng).save(Path(out_dir) / name, compress_level=1)
        rows.append({"img_path": name, "ocr_results": text, "doc_id": f"{split}_{i:07d}", "font": font.name})
    return rows


def build_line_dataset(out_dir: str | os.PathLike, splits: dict[str, list[str]], *, task: LineTask, fonts: Sequence,
                       seed: int = 0, workers: int = 0) -> dict[str, Path]:
    """Render `splits` ({name: texts}) into `out_dir/images/` and write `out_dir/<name>.json` (img_path relative to
    out_dir, the loader's format). `workers` processes (0 = all cores). Returns {name: json path}."""
    from concurrent.futures import ProcessPoolExecutor

    from lib.results import atomic_write_json

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    paths = {}
    with ProcessPoolExecutor(max_workers=workers, initializer=_init, initargs=(list(fonts), task, seed)) as ex:
        for split, texts in splits.items():
            chunk = max(1, min(2000, len(texts) // (4 * workers) + 1))
            jobs = [(str(out), s, texts[s:s + chunk], split) for s in range(0, len(texts), chunk)]
            rows = [r for part in ex.map(_render_chunk, jobs) for r in part]
            paths[split] = atomic_write_json(rows, out / f"{split}.json")
    atomic_write_json(dataclasses.asdict(task), out / "task.json")
    return paths
