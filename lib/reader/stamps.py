"""Seals (印章) for the reader: separate stamp ink from the text under it, and turn a stamp into lines it can read.

The reader is a line reader (lib/reader/preprocess.py), and a seal is not a line: its text runs around a ring
(round and oval seals) or down columns read right to left (square seals), in red ink over black text. A seal crop
is turned into ordinary horizontal lines before it is read:

- **Stamp ink**: a pixel is stamp ink by its redness, r - max(g, b); an image whose colour is gone (a binarised
  or grey scan) keeps its dark ink instead (`seal_ink`).
- **Shape**: the ink's extent (1st-99th percentile of its pixels, so specks do not count) is the stamp's box; a
  square seal's border runs through the box's corners, an ellipse's does not (`seal_shape`).
- **Round / oval**: the ring is unwrapped into a strip (polar remap around the box centre, angle left to right
  from 6 o'clock clockwise, radius top to bottom from the rim inwards) so glyphs whose tops point outwards stand
  upright; the rim's rows (ink across most of the strip) are blanked and the band of rows holding the most ink is
  the ring text. The centre (a date, 收文章, or a star that is ornament) is read from the middle of the stamp by
  its densest band of rows; a blob about as wide as tall there (a star) is not text.
- **Square**: the cells inside the border (2 x 2 or 3 x 3, chosen by where the ink's column and row profiles
  have their valleys) are laid out as one line, columns right to left, each top to bottom.

`drop_stamps` is the other direction, for every element that is not a seal: stamp-sized red ink (a connected
component at least `min_px` in both directions; red characters of a heading are smaller) is painted out before
the lines are found, so a seal stamped over a signature or a paragraph does not garble it.

Not for: drawing seals (lib/synth/seal.py), scoring them (`seal_ned` in lib/metrics/text.py).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

__all__ = ["redness", "seal_ink", "seal_shape", "unwrap_ring", "seal_lines", "drop_stamps"]

RED_MIN = 40        # r - max(g, b) above which a pixel is stamp ink
ON = 0.25           # ink strength that counts as ink (a seal's thin glyph strokes are far fainter than its rim)
COLOUR_MIN_FRACTION = 0.01  # below this share of red pixels the image has no usable colour: use dark ink


def redness(rgb: np.ndarray) -> np.ndarray:
    a = rgb.astype(np.int16)
    return np.clip(a[..., 0] - np.maximum(a[..., 1], a[..., 2]), 0, 255).astype(np.uint8)


def seal_ink(rgb: np.ndarray) -> np.ndarray:
    """Ink strength 0..1 of the stamp: redness, or darkness where the image has no colour."""
    red = redness(rgb).astype(np.float32)
    if (red > RED_MIN).mean() >= COLOUR_MIN_FRACTION:
        v = red
    else:
        v = 255.0 - rgb.astype(np.float32).mean(axis=2)
    # Scaled by the stamp's own ink level (a faint stamp is as readable as a fresh one): 1 at the 90th percentile
    # of the clearly inked pixels, 0 at a quarter of it.
    ref = float(np.percentile(v[v > max(RED_MIN, float(np.percentile(v, 50)) + 20)], 90)) if (v > RED_MIN).any() else 255.0
    return np.clip((v - 0.25 * ref) / (0.75 * ref), 0, 1)


def _extent(ink: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(ink > ON)
    if len(xs) < 30:
        return None
    x0, x1 = np.percentile(xs, [0.5, 99.5])
    y0, y1 = np.percentile(ys, [0.5, 99.5])
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    return int(x0), int(y0), int(x1) + 1, int(y1) + 1


def seal_shape(ink: np.ndarray, box: tuple[int, int, int, int]) -> str:
    """'square' when the border passes through the box's corners, else 'round'."""
    x0, y0, x1, y1 = box
    k = max(2, int(0.07 * min(x1 - x0, y1 - y0)))
    corners = [ink[y0:y0 + k, x0:x0 + k], ink[y0:y0 + k, x1 - k:x1], ink[y1 - k:y1, x0:x0 + k], ink[y1 - k:y1, x1 - k:x1]]
    return "square" if float(np.mean([c.mean() for c in corners])) > 0.12 else "round"


def _to_image(ink: np.ndarray) -> Image.Image:
    """Ink strength -> black ink on white paper, RGB (what the reader was trained on)."""
    grey = (255 - np.clip(ink / 0.6, 0, 1) * 235).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def _trim(ink: np.ndarray, pad: int = 4) -> np.ndarray | None:
    cols = np.nonzero(ink.max(axis=0) > ON)[0]
    rows = np.nonzero(ink.max(axis=1) > ON)[0]
    if len(cols) == 0 or len(rows) == 0:
        return None
    y0, y1 = max(0, rows[0] - pad), min(ink.shape[0], rows[-1] + 1 + pad)
    x0, x1 = max(0, cols[0] - pad), min(ink.shape[1], cols[-1] + 1 + pad)
    return ink[y0:y1, x0:x1]


def unwrap_ring(ink: np.ndarray, box: tuple[int, int, int, int], depth: float = 0.78) -> np.ndarray:
    """Polar unwrap of the stamp in `box`: columns = angle clockwise from 6 o'clock, rows = inset from the rim
    (top) inwards to `depth` x the smaller half-size. Row d samples the ellipse with half-sizes (a - d, b - d):
    a seal's text runs at a constant inset from its rim, round or oval, so it comes out as a straight band."""
    import cv2

    x0, y0, x1, y1 = box
    cx, cy, a, b = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    m = min(a, b)
    height = max(12, int(m * depth))
    d_text = 0.45 * m
    width = max(32, int(2 * math.pi * math.sqrt(((a - d_text) ** 2 + (b - d_text) ** 2) / 2)))
    t = np.linspace(-math.pi, math.pi, width, endpoint=False, dtype=np.float32)[None, :]
    d = np.linspace(-0.02 * m, m * depth, height, dtype=np.float32)[:, None]
    map_x = (cx + (a - d) * np.sin(t)).astype(np.float32)
    map_y = (cy - (b - d) * np.cos(t)).astype(np.float32)
    return cv2.remap(ink.astype(np.float32), map_x, map_y, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def _runs(on: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """[start, end) runs of True, joining runs separated by at most `gap` False entries."""
    runs: list[list[int]] = []
    for i in np.nonzero(on)[0]:
        if runs and i - runs[-1][1] <= gap:
            runs[-1][1] = i + 1
        else:
            runs.append([int(i), int(i) + 1])
    return [(s, e) for s, e in runs]


def _ring_text(strip: np.ndarray) -> np.ndarray | None:
    """The ring's text in the unwrapped strip: the rim blanked; then the run of columns (glyphs a small gap apart)
    holding the most ink, which leaves out pieces of the centre text reaching into the strip's lower corners;
    then, in those columns, the band of rows around the densest row."""
    strip = strip.copy()
    H = strip.shape[0]
    cover = (strip > ON).mean(axis=1)
    top = max(2, int(H * 0.35))
    k = int(np.argmax(cover[:top]))
    rim = 0
    if cover[k] > 0.5:                  # the rim: a full ring is inked across the whole strip
        rim = k
        while rim + 1 < top and cover[rim + 1] > 0.2:
            rim += 1
        strip[:rim + 1] = 0.0
    def band(cols: np.ndarray) -> tuple[int, int]:
        prof = np.convolve((cols > ON).mean(axis=1), np.ones(3) / 3, mode="same")
        peak = int(np.argmax(prof[:int(H * 0.8)]))
        s, e = peak, peak + 1
        while s > 0 and prof[s - 1] > 0.1 * prof[peak]:
            s -= 1
        while e < H and prof[e] > 0.1 * prof[peak]:
            e += 1
        return s, e

    if not (strip > ON).any():
        return None
    W = strip.shape[1]
    s, e = band(strip[:, W // 4:W - W // 4])   # first guess of the text rows, round 12 o'clock: the glyph size
    c0, c1 = 0, strip.shape[1]
    for _ in range(2):
        inked = (strip[s:e] > ON).sum(axis=0) > 0
        runs = _runs(inked, gap=max(3, int(1.2 * (e - s))))
        if not runs:
            return None
        # A seal's text is centred on 12 o'clock, the middle of the strip: the run there, else the inkiest.
        mid = strip.shape[1] // 2
        at_mid = [r for r in runs if r[0] - (e - s) <= mid < r[1] + (e - s)]
        c0, c1 = max(at_mid or runs, key=lambda r: float(strip[s:e, r[0]:r[1]].sum()))
        s, e = band(strip[:, c0:c1])
    if e - s < max(4, H // 8):
        return None
    cols = strip[:, c0:c1]
    return _trim(cols[max(0, s - 1):e + 1])


def _square_line(ink: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray | None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    m = 0.1
    inner = ink[y0 + int(h * m):y1 - int(h * m), x0 + int(w * m):x1 - int(w * m)]
    if inner.size == 0:
        return None
    col, row = inner.mean(axis=0), inner.mean(axis=1)

    def valley(profile: np.ndarray, n: int) -> float:
        L = len(profile)
        return float(np.mean([profile[max(0, int(L * k / n) - 1):int(L * k / n) + 2].mean() for k in range(1, n)]))

    n = min((2, 3), key=lambda n: valley(col, n) + valley(row, n))
    H, W = inner.shape
    cells = []
    for c in range(n - 1, -1, -1):           # columns right to left
        for r_ in range(n):                  # each top to bottom
            cell = inner[int(H * r_ / n):int(H * (r_ + 1) / n), int(W * c / n):int(W * (c + 1) / n)]
            cells.append(cell)
    side = max(c.shape[0] for c in cells)
    line = np.zeros((side, sum(c.shape[1] for c in cells) + 4 * len(cells)), np.float32)
    x = 0
    for c in cells:
        line[:c.shape[0], x:x + c.shape[1]] = c
        x += c.shape[1] + 4
    return _trim(line)


def seal_lines(img: Image.Image) -> list[tuple[Image.Image, np.ndarray]]:
    """Line images (black on white) of one seal crop in reading order, each with a box in crop coordinates:
    the ring or grid text first, then the centre text. Empty when no stamp is found."""
    rgb = np.asarray(img.convert("RGB"))
    ink = seal_ink(rgb)
    box = _extent(ink)
    if box is None:
        return []
    x0, y0, x1, y1 = box
    quad = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
    out: list[tuple[Image.Image, np.ndarray]] = []
    if seal_shape(ink, box) == "square":
        line = _square_line(ink, box)
        return [(_to_image(line), quad)] if line is not None else []
    ring = _ring_text(unwrap_ring(ink, box))
    if ring is not None:
        out.append((_to_image(ring), quad))
    # The centre: the band of rows around the densest row in the middle of the stamp. A star (ornament, no text)
    # is a blob about as wide as tall; a centre text (收文章, a date) is a line, much wider than tall.
    a, b = (x1 - x0) / 2, (y1 - y0) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    cx0, cx1 = max(0, int(cx - 0.62 * a)), int(cx + 0.62 * a)
    cy0, cy1 = max(0, int(cy - 0.32 * b)), int(cy + 0.4 * b)
    centre = ink[cy0:cy1, cx0:cx1]
    if centre.size and (centre > ON).mean() > 0.01:
        prof = np.convolve((centre > ON).mean(axis=1), np.ones(3) / 3, mode="same")
        peak = int(np.argmax(prof))
        s, e = peak, peak + 1
        while s > 0 and prof[s - 1] > 0.15 * prof[peak]:
            s -= 1
        while e < len(prof) and prof[e] > 0.15 * prof[peak]:
            e += 1
        band = centre[s:e]
        runs = _runs((band > ON).sum(axis=0) > 0, gap=max(3, int(0.8 * (e - s))))
        if runs:
            mid = band.shape[1] / 2
            c0, c1 = min(runs, key=lambda r: abs((r[0] + r[1]) / 2 - mid))
            piece = _trim(band[:, c0:c1], pad=3)
            if piece is not None and piece.shape[1] >= 1.6 * piece.shape[0]:
                cq = np.array([[cx0, cy0 + 1], [cx1, cy0 + 1], [cx1, cy1], [cx0, cy1]], np.float32)
                out.append((_to_image(piece), cq))
    return out


def drop_stamps(img: Image.Image, min_px: int = 40, all_red: bool = False) -> Image.Image:
    """`img` with stamp-sized red ink painted out (to the colour of the paper under it); unchanged when there is
    none. Red strokes smaller than `min_px` in either direction (a red heading's characters) are kept, unless
    `all_red` (a signature: signed in black or blue, so any red on it is a stamp, often cut by the crop)."""
    import cv2

    rgb = np.asarray(img.convert("RGB"))
    red = redness(rgb) > RED_MIN
    if red.mean() < 0.002:
        return img
    if all_red:
        sel = redness(rgb) > 15           # the faint edges of the strokes too
    else:
        mask = cv2.dilate(red.astype(np.uint8), np.ones((3, 3), np.uint8))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        big = [k for k in range(1, n) if stats[k, cv2.CC_STAT_WIDTH] >= min_px and stats[k, cv2.CC_STAT_HEIGHT] >= min_px]
        if not big:
            return img
        keep = np.zeros(red.shape, bool)
        for k in big:
            x, y, w, h = stats[k, :4]
            keep[y:y + h, x:x + w] = True  # everything red inside a stamp's box (its characters are separate components)
        sel = keep & red
    # Red ink multiplied over black text is dark, not red, and stays. Stamp ink over paper becomes paper: the
    # red channel is what the paper there reflected, through an ink that passes ~80 % of red.
    out = rgb.copy()
    r = np.clip(rgb[..., 0][sel].astype(np.float32) * 1.25, 0, 255).astype(np.uint8)
    out[sel] = np.stack([r] * 3, axis=1)
    return Image.fromarray(out)
