"""Reading page images for evaluation backends: real MIME type from the file's bytes, data URLs for servers,
and RGB pixels for local OCR engines (transparent images flattened onto a background that contrasts with the ink).

Not for: resizing or model preprocessing (the model's processor does that; servers get the original bytes).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

__all__ = ["ImageError", "sniff_mime", "read_image_bytes", "to_data_url", "load_rgb", "check_image", "is_url"]

_SIGNATURES = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"%PDF", "application/pdf"),
]
_EXT_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
             ".bmp": "image/bmp", ".webp": "image/webp", ".tif": "image/tiff", ".tiff": "image/tiff"}


class ImageError(ValueError):
    """A sample image that cannot be used; the message says which file and why."""


def is_url(path: str) -> bool:
    return path.startswith(("http://", "https://", "data:"))


def sniff_mime(data: bytes, filename: str = "") -> str:
    """MIME type from the leading bytes (a .jpg that is really a PNG is sent as image/png); extension as fallback."""
    for sig, mime in _SIGNATURES:
        if data.startswith(sig):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return _EXT_MIME.get(Path(filename).suffix.lower(), "application/octet-stream")


def read_image_bytes(path: str) -> bytes:
    if not os.path.isfile(path):
        raise ImageError(f"image not found: {path}")
    data = Path(path).read_bytes()
    if not data:
        raise ImageError(f"image file is empty: {path}")
    return data


def to_data_url(path: str) -> str:
    """`data:<mime>;base64,...` for a local file; http(s) and data URLs are passed through unchanged."""
    if is_url(path):
        return path
    if path.startswith("file://"):
        path = path[len("file://"):]
    data = read_image_bytes(path)
    return f"data:{sniff_mime(data, path)};base64,{base64.b64encode(data).decode('ascii')}"


def check_image(path: str) -> str | None:
    """None if the image exists and its structure is sound, else the reason (recorded as the sample's error).
    URLs are not fetched."""
    if is_url(path):
        return None
    if not os.path.isfile(path):
        return f"image not found: {path}"
    try:
        from PIL import Image

        with Image.open(path) as im:  # header + structure check (PNG chunk CRCs); no full decode: pages are big
            if im.width < 1 or im.height < 1:
                return f"image has no pixels: {path}"
            im.verify()
    except Exception as exc:  # PIL raises many exception types for corrupt files
        return f"corrupt or unreadable image {path} ({type(exc).__name__}: {exc})"
    return None


def load_rgb(path_or_image):
    """A PIL RGB image. Transparent images are composited onto white when the visible ink is dark and onto black
    when it is light: dropping alpha naively turns black-on-transparent text into a black box."""
    from PIL import Image

    if isinstance(path_or_image, Image.Image):
        im = path_or_image
    else:
        if not os.path.isfile(path_or_image):
            raise ImageError(f"image not found: {path_or_image}")
        try:
            im = Image.open(path_or_image)
            im.load()
        except Exception as exc:
            raise ImageError(f"corrupt or unreadable image {path_or_image} ({type(exc).__name__}: {exc})") from None
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        alpha = rgba.getchannel("A")
        gray = rgba.convert("L")
        import numpy as np

        a = np.asarray(alpha)
        g = np.asarray(gray)
        visible = g[a > 0]
        dark_ink = visible.size == 0 or float(visible.mean()) < 128
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255) if dark_ink else (0, 0, 0, 255))
        bg.alpha_composite(rgba)
        return bg.convert("RGB")
    return im.convert("RGB")
