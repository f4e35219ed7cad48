"""Scan/photocopy degradations for synthetic pages and crops, each applied with its configured probability.

`degrade(img, cfg, rng)` returns the degraded image (an RGB uint8 array), the JPEG quality to save with, and the
list of what was applied (recorded in the dataset row, so results can be sliced by degradation). Only photometric
changes and a small rotation (the canvas grows, so every character stays inside) are used: the label stays exact.
OpenCV does the pixel work: its blur and warp are 10-20x faster than PIL's on a page.
"""

from __future__ import annotations

import cv2
import numpy as np

from lib.synth.config import SynthConfig


def degrade(img, cfg: SynthConfig, rng: np.random.Generator) -> tuple[np.ndarray, int, list[str]]:
    arr = np.array(img, dtype=np.uint8)  # a copy: the clean page stays untouched for element crops
    h, w = arr.shape[:2]
    applied: list[str] = []
    # Draw every decision up front so the random stream does not depend on which branches ran.
    u = rng.random(8)
    scale = None
    if u[0] < cfg.p_tint:
        scale = np.array([rng.uniform(0.93, 1.0), rng.uniform(0.9, 0.99), rng.uniform(0.8, 0.95)], dtype=np.float32)
        scale = np.broadcast_to(scale, (h, w, 3))
        applied.append("tint")
    if u[1] < cfg.p_lighting:
        # A smooth brightness field from a coarse random grid (brighter and darker regions, like a phone photo).
        coarse = rng.uniform(0.72, 1.05, size=(3, 3)).astype(np.float32)
        field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
        scale = field if scale is None else scale * field
        applied.append("lighting")
    noise = None
    if u[2] < cfg.p_noise:
        sigma = rng.uniform(2.0, cfg.noise_max_sigma)
        noise = rng.standard_normal((h, w, 1), dtype=np.float32) * np.float32(sigma)
        applied.append("noise")
    if u[3] < cfg.p_scan_lines:
        if scale is None:
            scale = np.ones((h, w, 1), dtype=np.float32)
        else:
            scale = np.array(scale, dtype=np.float32)
        for _ in range(int(rng.integers(1, 4))):
            x = int(rng.integers(0, w))
            scale[:, x:x + int(rng.integers(1, 3))] *= np.float32(rng.uniform(0.55, 0.85))
        applied.append("scan_lines")
    if scale is not None or noise is not None:
        f = arr.astype(np.float32)
        if scale is not None:
            f *= scale
        if noise is not None:
            f += noise
        arr = np.clip(f, 0, 255).astype(np.uint8)
    if u[4] < cfg.p_blur:
        arr = cv2.GaussianBlur(arr, (0, 0), float(rng.uniform(0.4, cfg.blur_max_radius)))
        applied.append("blur")
    if u[5] < cfg.p_rotate:
        angle = float(rng.uniform(-cfg.rotate_max_deg, cfg.rotate_max_deg))
        rad = np.deg2rad(abs(angle))
        nw = int(np.ceil(w * np.cos(rad) + h * np.sin(rad)))
        nh = int(np.ceil(h * np.cos(rad) + w * np.sin(rad)))
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        m[0, 2] += (nw - w) / 2
        m[1, 2] += (nh - h) / 2
        border = tuple(int(v) for v in arr[min(2, h - 1), min(2, w - 1)])  # the paper colour
        arr = cv2.warpAffine(arr, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
        applied.append("rotate")
    if u[6] < cfg.p_binarize:
        gray = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
        thr = float(rng.uniform(0.55, 0.7)) * 255
        arr = cv2.cvtColor(np.where(gray > thr, 255, 0).astype(np.uint8), cv2.COLOR_GRAY2RGB)
        applied.append("binarize")
    quality = 92
    if u[7] < cfg.p_jpeg:
        quality = int(rng.integers(35, 76))
        applied.append("jpeg")
    return arr, quality, applied


def encode_jpeg(arr: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()
