"""A contact sheet: thumbnails of generated pages and element crops with their labels, so a reader sees what the
generator makes (docs/img/synth_contact_sheet.png is one)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw

from lib import render
from lib.data import load_samples


def make_contact_sheet(data_paths: Sequence[str | os.PathLike], out_path: str | os.PathLike, *, n_pages: int = 4,
                       n_crops: int = 12, width: int = 1400) -> Path:
    samples = [s for p in data_paths for s in load_samples(p)]
    pages = [s for s in samples if s.element == "page"][:n_pages]
    crops, seen = [], {}
    for s in samples:  # a balanced pick: round-robin over element kinds
        if s.element != "page":
            seen.setdefault(s.element, []).append(s)
    while len(crops) < n_crops and any(seen.values()):
        for kind in sorted(seen):
            if seen[kind] and len(crops) < n_crops:
                crops.append(seen[kind].pop(0))
    font_info = render.find_cjk_fonts("hant")[0]
    cap = render.load_font(font_info, 14)
    gap = 12
    tiles: list[tuple[Image.Image, str]] = []
    thumb_w = (width - gap * (max(len(pages), 1) + 1)) // max(len(pages), 1)
    page_tiles = []
    for s in pages:
        im = Image.open(s.image_path).convert("RGB")
        im.thumbnail((thumb_w, thumb_w * 2))
        tags = ",".join(t for t in (s.layout or []) if t in ("table", "seal", "signature", "vertical", "seal_over_text"))
        page_tiles.append((im, f"page {s.doc_id[-4:]} [{tags}]"))
    crop_w = (width - gap * 5) // 4
    for s in crops:
        im = Image.open(s.image_path).convert("RGB")
        im.thumbnail((crop_w, 170))
        label = s.text.replace("\n", "⏎")
        if s.element == "table":
            label = label[:34] + "…"
        tiles.append((im, f"{s.element}: {label[:30]}"))
    row_h_pages = max((im.height for im, _ in page_tiles), default=0) + 30
    crop_rows = [tiles[i:i + 4] for i in range(0, len(tiles), 4)]
    crop_row_h = [max(im.height for im, _ in row) + 30 for row in crop_rows]
    sheet = Image.new("RGB", (width, gap + row_h_pages + sum(h + gap for h in crop_row_h) + gap), (236, 236, 236))
    draw = ImageDraw.Draw(sheet)
    x, y = gap, gap
    for im, caption in page_tiles:
        sheet.paste(im, (x, y))
        _caption(sheet, (x, y + im.height + 4), caption, cap)
        x += thumb_w + gap
    y += row_h_pages + gap
    for row, h in zip(crop_rows, crop_row_h):
        x = gap
        for im, caption in row:
            sheet.paste(im, (x, y))
            _caption(sheet, (x, y + im.height + 4), caption, cap)
            x += crop_w + gap
        y += h + gap
    del draw
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    return out


def _caption(sheet, xy, text, font):
    # Characters the caption font lacks (rare) are dropped from the caption only, never from a label.
    missing = set(render.missing_glyphs(render.find_cjk_fonts("hant")[0], text))
    render.draw_text(sheet, xy, "".join(ch for ch in text if ch not in missing), font, fill=(20, 20, 20))
