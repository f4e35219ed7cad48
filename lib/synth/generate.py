"""Generate a synthetic dataset: documents in parallel worker processes, images and one raw-format JSON file.

`generate_dataset(output_dir, n, seed, granularity, cfg, workers)` writes
  output_dir/images/<doc_id>_p<page>.jpg                      (granularity "page")
  output_dir/images/<doc_id>_p<page>_<k>_<element>.jpg        (granularity "element")
  output_dir/data.json   [{"img_path", "ocr_results", "doc_id", "element", "font", "lang", "layout", "synth"}, ...]
and returns a summary. Document i of a run always comes from seed (seed, i), and workers return their results in
document order, so the output is the same for a seed whatever the number of workers.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from lib.results import atomic_write_text
from lib.synth.config import SynthConfig
from lib.synth.degrade import degrade, encode_jpeg
from lib.synth.page import PageOut, available_fonts, compose_document

log = logging.getLogger(__name__)

GRANULARITIES = ("page", "element")
_CFG: SynthConfig | None = None
_SEED = 0
_GRAN = "page"


def _init_worker(cfg: SynthConfig, seed: int, granularity: str) -> None:
    global _CFG, _SEED, _GRAN
    _CFG, _SEED, _GRAN = cfg, seed, granularity
    try:
        os.nice(5)  # generation is background work on shared machines
    except OSError:
        pass


def doc_id_for(seed: int, doc_index: int) -> str:
    return f"synth-s{seed}-d{doc_index:06d}"


def _page_record(cfg: SynthConfig, seed: int, doc_index: int, page: PageOut) -> list[tuple[str, bytes, dict]]:
    nrng = np.random.default_rng([seed & 0xFFFFFFFF, doc_index, page.page_no, 0])
    img, quality, applied = degrade(page.image, cfg, nrng)
    did = doc_id_for(seed, doc_index)
    name = f"images/{did}_p{page.page_no}.jpg"
    row = {"img_path": name, "ocr_results": page.text, "doc_id": did, "element": "page", "font": page.font,
           "lang": "zh-Hant" if cfg.script == "hant" else "zh-Hans", "layout": page.tags,
           "synth": {"seed": seed, "doc_index": doc_index, "page": page.page_no, "n_pages": page.n_pages,
                     "degradations": applied, "jpeg_quality": quality, "fonts": page.meta["fonts"],
                     "elements": dict(Counter(e.kind for e in page.elements)),
                     "size": [int(img.shape[1]), int(img.shape[0])], "dpi": cfg.dpi}}
    return [(name, encode_jpeg(img, quality), row)]


def _element_records(cfg: SynthConfig, seed: int, doc_index: int, page: PageOut) -> list[tuple[str, bytes, dict]]:
    import random

    rng = random.Random(f"crops:{seed}:{doc_index}:{page.page_no}")
    texts = [e for e in page.elements if e.kind == "text" and "vertical" not in e.tags]
    chosen_text = set(id(e) for e in rng.sample(texts, min(cfg.text_crops_per_page, len(texts))))
    out = []
    did = doc_id_for(seed, doc_index)
    W, H = page.image.size
    for k, e in enumerate(page.elements):
        if e.kind == "text" and "vertical" not in e.tags and id(e) not in chosen_text:
            continue
        pad = rng.randint(3, 10)
        x0, y0, x1, y1 = max(0, e.box[0] - pad), max(0, e.box[1] - pad), min(W, e.box[2] + pad), min(H, e.box[3] + pad)
        if e.kind != "seal":
            # Keep neighbouring lines out of the crop (their text is not in this label); seals overlap on purpose.
            for o in page.elements:
                if o is e or o.kind == "seal" or o.box[2] <= x0 or o.box[0] >= x1:
                    continue
                if o.box[3] <= e.box[1]:
                    y0 = max(y0, o.box[3] + 1)
                elif o.box[1] >= e.box[3]:
                    y1 = min(y1, o.box[1] - 1)
        box = (x0, y0, x1, y1)
        if box[2] - box[0] < 4 or box[3] - box[1] < 4:
            continue
        crop = page.image.crop(box)
        nrng = np.random.default_rng([seed & 0xFFFFFFFF, doc_index, page.page_no, k + 1])
        img, quality, applied = degrade(crop, cfg, nrng)
        name = f"images/{did}_p{page.page_no}_{k:02d}_{e.kind}.jpg"
        meta = {"seed": seed, "doc_index": doc_index, "page": page.page_no, "box": list(box),
                "degradations": applied, "jpeg_quality": quality}
        if e.meta:
            meta.update({k2: v for k2, v in e.meta.items()})
            if "chars" in meta:  # glyph centres in crop coordinates (the seal text order test uses them)
                meta["chars"] = [(ch, round(x - box[0], 1), round(y - box[1], 1)) for ch, x, y in meta["chars"]]
        row = {"img_path": name, "ocr_results": e.text, "doc_id": did, "element": e.kind, "font": e.font,
               "lang": "zh-Hant" if cfg.script == "hant" else "zh-Hans", "layout": e.tags, "synth": meta}
        out.append((name, encode_jpeg(img, quality), row))
    return out


def make_records(doc_index: int, cfg: SynthConfig | None = None, seed: int | None = None,
                 granularity: str | None = None) -> list[tuple[str, bytes, dict]]:
    """All (relative path, JPEG bytes, row) of one document."""
    cfg = cfg or _CFG
    seed = _SEED if seed is None else seed
    granularity = granularity or _GRAN
    pages = compose_document(doc_index, seed, cfg)
    out = []
    for page in pages:
        out += (_page_record if granularity == "page" else _element_records)(cfg, seed, doc_index, page)
    return out


def generate_dataset(output_dir: str | os.PathLike, n: int, seed: int = 0, granularity: str = "page",
                     cfg: SynthConfig | None = None, workers: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Write `n` samples (pages or element crops) and data.json; returns counts, timing and the file path."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    cfg = cfg or SynthConfig()
    out = Path(output_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    available_fonts(cfg)  # scan fonts once in the parent: forked workers inherit the list
    workers = max(1, workers or os.cpu_count() or 1)
    rows: list[dict] = []
    t0 = time.perf_counter()
    batch = max(8, 4 * workers)
    pool = None
    if workers > 1:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        pool = ctx.Pool(workers, initializer=_init_worker, initargs=(cfg, seed, granularity))
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=n, unit=granularity, desc="synth")
        except ImportError:
            bar = None
    try:
        doc = 0
        while len(rows) < n:
            indices = range(doc, doc + batch)
            doc += batch
            results = (pool.imap(make_records, indices) if pool is not None
                       else (make_records(i, cfg, seed, granularity) for i in indices))
            for records in results:
                for name, data, row in records[:n - len(rows)]:
                    (out / name).write_bytes(data)
                    rows.append(row)
                    if bar is not None:
                        bar.update(1)
                if len(rows) >= n:
                    break
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - t0
    data_path = out / "data.json"
    atomic_write_text(json.dumps(rows, ensure_ascii=False, indent=1), data_path)
    return {"data_path": str(data_path), "n_samples": len(rows), "n_docs": len({r["doc_id"] for r in rows}),
            "elements": dict(Counter(r["element"] for r in rows)), "seconds": round(elapsed, 3),
            "samples_per_second": round(len(rows) / elapsed, 2) if elapsed > 0 else None, "workers": workers,
            "page_px": list(cfg.page_px), "dpi": cfg.dpi}
