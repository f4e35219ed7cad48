"""Seals (印章) and signatures drawn as ink masks, composited onto a page in their ink colour.

A seal mask is an `L` image (255 = ink). `draw_seal` also returns where each character was put, in reading order,
so a test can check that the label's order is the drawn order:
- square: characters in columns read right to left, each column top to bottom (the traditional seal order);
- circle / oval: characters along the upper arc, clockwise from the lower left, then the centre text left to right
  (a star in the centre is ornament, not text).
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw

from lib.render import load_font

SEAL_RED = [(200, 30, 35), (185, 20, 40), (215, 45, 45), (170, 25, 30)]


def _glyph(ch: str, font, box: int) -> Image.Image:
    img = Image.new("L", (box, box), 0)
    ImageDraw.Draw(img).text((box / 2, box / 2), ch, font=font, fill=255, anchor="mm")
    return img


def draw_seal(shape: str, text: str, centre: str, font_info, size: int, rng: random.Random):
    """Returns (mask, chars) where chars = [(ch, x, y)] glyph centres in reading order (mask coordinates)."""
    if shape == "square":
        return _square(text, font_info, size, rng)
    return _round(shape, text, centre, font_info, size, rng)


def _square(text: str, font_info, size: int, rng: random.Random):
    n = int(round(math.sqrt(len(text))))
    if n * n != len(text):
        raise ValueError(f"a square seal needs 4 or 9 characters, got {len(text)}: {text!r}")
    mask = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(mask)
    border = max(2, size // 14)
    d.rectangle([border // 2, border // 2, size - 1 - border // 2, size - 1 - border // 2], outline=255, width=border)
    inner = size - 4 * border
    cell = inner / n
    font = load_font(font_info, max(6, int(cell * 0.92)))
    chars = []
    for k, ch in enumerate(text):
        col, row = divmod(k, n)        # k-th character: column col (from the right), row row (from the top)
        cx = 2 * border + inner - (col + 0.5) * cell
        cy = 2 * border + (row + 0.5) * cell
        d.text((cx, cy), ch, font=font, fill=255, anchor="mm")
        chars.append((ch, cx, cy))
    return mask, chars


def _round(shape: str, text: str, centre: str, font_info, size: int, rng: random.Random):
    w = size if shape == "circle" else int(size * 1.45)
    h = size
    mask = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(mask)
    border = max(2, size // 22)
    d.ellipse([border, border, w - 1 - border, h - 1 - border], outline=255, width=border)
    a, b = w / 2, h / 2
    char_px = max(6, int(size * (0.17 if shape == "circle" else 0.19)))
    font = load_font(font_info, char_px)
    ra, rb = a - border * 2.5 - char_px * 0.6, b - border * 2.5 - char_px * 0.6
    n = len(text)
    # Degrees of arc used by the text, centred on 12 o'clock: about one character width per character, at most
    # 240 (circle) / 160 (oval) degrees, so a short name is not spread thin around the ring.
    per_char = math.degrees(char_px * 1.15 / ra) if ra > 0 else 30.0
    span = min(240.0 if shape == "circle" else 160.0, per_char * n)
    chars = []
    box = int(char_px * 1.5)
    for i, ch in enumerate(text):
        theta = -span / 2 + span * (i + 0.5) / n   # clockwise from 12 o'clock
        t = math.radians(theta)
        x, y = a + ra * math.sin(t), b - rb * math.cos(t)
        g = _glyph(ch, font, box).rotate(-theta, resample=Image.BILINEAR)
        mask.paste(255, (int(round(x - box / 2)), int(round(y - box / 2))), g)
        chars.append((ch, x, y))
    if centre:
        cfont = load_font(font_info, max(6, int(char_px * (1.0 if shape == "circle" else 0.9))))
        cw = cfont.getlength(centre)
        x0 = a - cw / 2
        d.text((a, b + char_px * 0.15), centre, font=cfont, fill=255, anchor="mm")
        # Approximate centres of the centre-text glyphs, left to right.
        acc = 0.0
        for ch in centre:
            adv = cfont.getlength(ch)
            chars.append((ch, x0 + acc + adv / 2, b))
            acc += adv
    else:
        r = char_px * 0.9
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else r * 0.42
            ang = math.radians(-90 + 36 * k)
            pts.append((a + rr * math.cos(ang), b + char_px * 0.2 + rr * math.sin(ang)))
        d.polygon(pts, fill=255)
    return mask, chars


def ink_texture(mask: Image.Image, rng: np.random.Generator, strength: float = 0.25) -> Image.Image:
    """Uneven ink: multiply the mask by smooth noise so seals look stamped, not printed."""
    w, h = mask.size
    coarse = rng.uniform(1 - strength, 1.0, size=(max(2, h // 12), max(2, w // 12))).astype(np.float32)
    field = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR), dtype=np.float32)
    out = np.asarray(mask, dtype=np.float32) * field / 255.0
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))


def composite(page: Image.Image, mask: Image.Image, xy: tuple[int, int], colour, opacity: float = 0.88) -> tuple[int, int, int, int]:
    """Multiply-blend ink of `colour` through `mask` onto `page` at xy (top-left); returns the clipped box."""
    x, y = int(xy[0]), int(xy[1])
    W, H = page.size
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + mask.width), min(H, y + mask.height)
    if x0 >= x1 or y0 >= y1:
        return (x0, y0, x0, y0)
    region = np.asarray(page.crop((x0, y0, x1, y1)), dtype=np.float32)
    a = np.asarray(mask.crop((x0 - x, y0 - y, x1 - x, y1 - y)), dtype=np.float32)[..., None] / 255.0 * opacity
    ink = np.array(colour, dtype=np.float32)[None, None, :]
    # Multiply blend: ink darkens what is under it (black text stays black, paper turns red).
    out = region * (1 - a) + region * (ink / 255.0) * a
    page.paste(Image.fromarray(out.clip(0, 255).astype(np.uint8)), (x0, y0))
    return (x0, y0, x1, y1)
