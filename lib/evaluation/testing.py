"""Helpers for tests and benchmarks of the evaluation harness: a small dataset of distinct real PNG files with
labels, and the answer table a `StubServer` needs to serve the labels back (or a corrupted version of them).

Not for: building training data (lib/synth does that).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from lib.evaluation.stub_server import image_key

__all__ = ["make_png_dataset", "label_table"]

_CHARS = "政府公文報告會議紀錄中華民國年月日第一二三四五六七八九十條款規定辦理事項單位"


def make_png_dataset(folder: str | Path, n: int, *, seed: int = 0, name: str = "data.json",
                     jpg_named_png: int = 0) -> Path:
    """`n` distinct small PNG images (coloured blocks; content differs per row) with random Chinese labels.
    The first `jpg_named_png` images are PNG bytes saved under a .jpg name (to test MIME sniffing)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        im = Image.new("RGB", (48 + (i % 7) * 4, 24), (255, 255, 255))
        d = ImageDraw.Draw(im)
        for j in range(4):
            x = rng.randrange(0, im.width - 6)
            d.rectangle([x, 4 + j * 4, x + 5, 6 + j * 4], fill=(rng.randrange(256), rng.randrange(256), i % 256))
        ext = ".jpg" if i < jpg_named_png else ".png"
        path = folder / "images" / f"doc{i // 4}_p{i % 4}{ext}"
        im.save(path, format="PNG")
        label = "".join(rng.choice(_CHARS) for _ in range(rng.randint(4, 12)))
        rows.append({"img_path": f"images/{path.name}", "ocr_results": label})
    out = folder / name
    out.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return out


def label_table(data_file: str | Path, transform=None) -> dict[str, str]:
    """image content hash -> label (optionally transformed), for `stub_server.table_responder`."""
    from lib.data import load_samples

    table = {}
    for s in load_samples(data_file):
        try:
            data = Path(s.image_path).read_bytes()
        except OSError:
            continue
        table[image_key(data)] = transform(s.text) if transform else s.text
    return table
