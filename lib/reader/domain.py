"""A labelled line-crop data set in one 公文 "domain" (fonts the pretrained reader never saw), for fine-tuning and
for the quickstart: rendered with the reader's own renderer on the CPU, written in the project's data format.

Each synthetic document (seeds from DOMAIN_DOC_SEED0: neither the pretraining documents nor its test documents)
gives its lines; a row is `{"image_path", "ocr_text", "doc_id", "element": "line", "font"}`, the image the line
as a detector would crop it (a 32 px-high strip, unfolded: the model folder's reader_config.json folds it when the
model reads). `core/split_dataset.py` keeps each document in one split.

Not for: pretraining (lib/reader/pretrain.py renders on the fly).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from lib.reader.glyphs import available_faces, build_atlas
from lib.reader.synth import Degrade, LineBatch, LineRenderer, unfold_square
from lib.reader.text import gongwen_lines

__all__ = ["DOMAIN_DOC_SEED0", "DOMAINS", "build_domain_dataset"]

DOMAIN_DOC_SEED0 = 2_000_000

# Scan conditions of a domain. "clean": print-quality copies. "fax": faxed small print — glyphs 15-19 px of the
# 32 px row (pretraining: 18-27.5), always downsampled 1.5-2.1x, blurred, JPEG'd: legible to a person, outside
# the pretraining mix (the quickstart's domain; the base reader's CER there is ~3x its CER on clean copies).
DOMAINS = {
    "clean": Degrade(p_seal=0.05, p_binary=0.03, p_faint=0.05),
    "fax": Degrade(glyph_height=(15.0, 19.0), p_lowres=1.0, lowres=(1.5, 2.1), p_binary=0.0, noise=(0.02, 0.05),
                   blur=(0.3, 0.7), p_faint=0.0, p_seal=0.0, p_jpeg=0.7, p_invert=0.0, p_colour=0.0, p_bleed=0.2,
                   p_thin=0.0),
}


def _windows(lines: Sequence[str], rng: random.Random, max_len: int) -> list[str]:
    out = []
    for ln in lines:
        ln = " ".join(ln.split())
        while ln:
            n = rng.randint(max(4, max_len // 3), max_len)
            out.append(ln[:n])
            ln = ln[n:]
    return [t for t in out if t.strip()]


def build_domain_dataset(out_dir: str | os.PathLike, *, faces: Sequence[str], n_docs: int, seed: int = 0,
                         max_len: int = 24, lines_per_doc: int = 12, degrade: Degrade | None = None) -> dict:
    """Render `lines_per_doc` lines of each of `n_docs` documents in the given faces. Returns a summary."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    found = available_faces(faces)
    if not found:
        raise FileNotFoundError(f"none of the fonts {list(faces)} is installed (apt-get install fonts-babelstone-han "
                                "fonts-lxgw-wenkai)")
    rng = random.Random(seed)
    texts, docs = [], []
    for d in range(n_docs):
        lines = _windows(gongwen_lines([DOMAIN_DOC_SEED0 + seed * 100_000 + d], simplified_share=0.0), rng, max_len)
        rng.shuffle(lines)
        for t in lines[:lines_per_doc]:
            texts.append(t)
            docs.append(f"domain-{seed}-{d:05d}")
    chars = sorted({c for t in texts for c in t} | {" "})
    atlas = build_atlas(chars, found, size=32, workers=1)
    index = {c: i for i, c in enumerate(atlas.chars)}
    renderer = LineRenderer(atlas, "cpu", degrade=degrade or DOMAINS["clean"])
    g = torch.Generator().manual_seed(seed)
    rows = []
    for start in range(0, len(texts), 64):
        chunk = texts[start:start + 64]
        fonts, kept = [], []
        for t in chunk:
            ok = [f for f in range(len(atlas.faces)) if all(atlas.covered[f, index[c]] for c in t)]
            fonts.append(rng.choice(ok) if ok else 0)
            kept.append(t if ok else "".join(c for c in t if atlas.covered[0, index[c]]))
        ids = np.full((len(kept), max_len), -1, np.int64)
        for i, t in enumerate(kept):
            ids[i, :len(t)] = [index[c] for c in t]
        squares = renderer.render(LineBatch(torch.from_numpy(ids), torch.tensor(fonts)), g)
        strips = unfold_square(squares)  # [n, 3, 32, 2048]
        for i, t in enumerate(kept):
            if not t.strip():
                continue
            k = start + i
            strip = strips[i]
            ink = (strip.mean(0) < 0.999).any(0).nonzero().flatten()
            end = int(ink.max()) + 6 if len(ink) else 64
            arr = (strip[:, :, :max(end, 16)].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            name = f"images/line_{k:05d}.png"
            Image.fromarray(arr).save(out / name)
            rows.append({"image_path": name, "ocr_text": t.strip(), "doc_id": docs[k], "element": "line",
                         "font": atlas.faces[fonts[i]]})
    (out / "data.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return {"rows": len(rows), "docs": n_docs, "faces": list(atlas.faces), "chars": len(chars),
            "data_file": str(out / "data.json")}
