"""Offline CJK text rendering: find fonts, check glyph coverage, draw text lines and blocks deterministically.

Used by the quickstart data builder and by the synthetic document generator (`lib/synth/`), so every rendered
label is exactly what was drawn: `render_text_line` refuses text the font has no glyph for (instead of silently
drawing a tofu box that the label would still claim is a character).

Fonts come from two places, both offline:
- the PyPI package `justmytype-intl-cjk` (Noto Sans TC / SC, variable weight; installed by requirements.txt);
- system fonts (Debian `fonts-noto-cjk` Sans/Serif CJK, `fonts-arphic-ukai` Kai, `fonts-arphic-uming` Ming), and any
  folder listed in the environment variable `GEMMA_OCR_FONT_DIRS` (os.pathsep-separated).
A `.ttc` collection holds several faces; a `FontInfo` names the face by `index`.

Not for: page layout (lib/synth/ does that) or image degradations (lib/synth/degrade.py).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import unicodedata
from pathlib import Path
from typing import Iterable, Sequence, Union

__all__ = ["FontInfo", "FontCoverageError", "find_cjk_fonts", "font_covers", "missing_glyphs", "load_font",
           "render_text_line", "draw_text", "glyph", "line_width", "text_size", "pypi_font_dir",
           "SCRIPTS"]

SCRIPTS = ("hant", "hans")
# Characters every usable font for the script must have; a face lacking any of them is not offered.
SCRIPT_PROBES = {"hant": "臺灣國體發文號壹貳參",
                 "hans": "台湾国体发文号壹贰叁"}
_SYSTEM_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts",
                "/Library/Fonts", "/System/Library/Fonts", "C:/Windows/Fonts")
_FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
DEFAULT_WEIGHT = 400  # the PyPI Noto fonts are variable; their default instance is Thin (100), too light for print


class FontCoverageError(ValueError):
    """The font lacks a glyph for some character of the text (the message lists them and names the font)."""


@dataclasses.dataclass(frozen=True)
class FontInfo:
    """One font face. `kind` is the visual family: sans | serif | kai | ming; `scripts` the scripts it serves."""

    path: str
    name: str
    kind: str
    index: int = 0           # face index inside a .ttc/.otc collection
    scripts: tuple[str, ...] = ()
    source: str = "system"   # "pypi" | "system" | "env"
    weight: int | None = None  # for variable fonts: the wght axis value used

    @property
    def short(self) -> str:
        """A stable, readable id recorded in dataset rows (`font` key)."""
        return self.name + (f" wght{self.weight}" if self.weight and self.weight != DEFAULT_WEIGHT else "")


FontLike = Union[str, os.PathLike, FontInfo]


def _path_index(font: FontLike, index: int | None) -> tuple[str, int]:
    if isinstance(font, FontInfo):
        return font.path, font.index if index is None else index
    return str(font), 0 if index is None else index


def pypi_font_dir() -> Path | None:
    """Where the `justmytype-intl-cjk` package keeps its font files (None if it is not installed)."""
    try:
        import justmytype_intl_cjk  # noqa: F401  (only to find its folder)
    except ImportError:
        return None
    d = Path(justmytype_intl_cjk.__file__).parent / "fonts"
    return d if d.is_dir() else None


@functools.lru_cache(maxsize=64)
def _cmap(path: str, index: int) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    if not os.path.isfile(path):
        raise FileNotFoundError(f"font file not found: {path}")
    kwargs = {"fontNumber": index} if path.lower().endswith((".ttc", ".otc")) else {}
    with TTFont(path, lazy=True, **kwargs) as f:
        cmap = f.getBestCmap() or {}
    return frozenset(cmap)


def _needs_glyph(ch: str) -> bool:
    # Whitespace and control/format characters are not drawn as glyphs, so they need no coverage.
    return not (ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf"))


def missing_glyphs(font: FontLike, text: str, index: int | None = None) -> list[str]:
    """The distinct characters of `text` the font has no glyph for, in order of first appearance."""
    path, idx = _path_index(font, index)
    cmap = _cmap(path, idx)
    return list(dict.fromkeys(ch for ch in text if _needs_glyph(ch) and ord(ch) not in cmap))


def font_covers(font: FontLike, text: str, index: int | None = None) -> bool:
    """True if the font (face `index` of a collection) has a glyph for every drawn character of `text`."""
    return not missing_glyphs(font, text, index)


@functools.lru_cache(maxsize=512)
def _load_font_cached(path: str, size: int, index: int, weight: int | None):
    from PIL import ImageFont

    if not os.path.isfile(path):
        raise FileNotFoundError(f"font file not found: {path} (see lib.render.find_cjk_fonts for available fonts)")
    font = ImageFont.truetype(path, size=size, index=index)
    if weight is not None:
        try:
            axes = font.get_variation_axes()
        except OSError:  # not a variable font
            axes = []
        if axes:
            names = [a.get("name", b"") for a in axes]
            names = [n.decode("latin-1") if isinstance(n, bytes) else str(n) for n in names]
            values = [max(a["minimum"], min(a["maximum"], weight)) if n.lower() == "weight" else a["default"]
                      for a, n in zip(axes, names)]
            font.set_variation_by_axes(values)
    font._render_key = (path, index, size, weight)  # identifies the font in the glyph cache
    return font


def load_font(font: FontLike, size: int, index: int | None = None, weight: int | None = None):
    """A cached `PIL.ImageFont.FreeTypeFont`; variable fonts get `weight` (FontInfo.weight or DEFAULT_WEIGHT)."""
    path, idx = _path_index(font, index)
    if weight is None:
        weight = font.weight if isinstance(font, FontInfo) and font.weight else DEFAULT_WEIGHT
    return _load_font_cached(path, int(size), idx, int(weight))


def _classify(family: str) -> str | None:
    f = family.lower()
    if "kai" in f or "楷" in family:
        return "kai"
    if "ming" in f or "明" in family or "song" in f:
        return "ming"
    if "serif" in f:
        return "serif"
    if "sans" in f or "hei" in f or "黑" in family or "gothic" in f:
        return "sans"
    return None


def _region_scripts(family: str) -> set[str] | None:
    """Scripts implied by a regional tag in the family name (None when the name has no tag)."""
    tokens = family.replace("-", " ").split()
    tags = {t.upper() for t in tokens}
    if tags & {"TC", "TW", "HK", "MO"}:
        return {"hant"}
    if tags & {"SC", "CN"}:
        return {"hans"}
    if tags & {"JP", "KR", "JA", "KO"}:
        return set()
    return None


def _faces(path: str) -> list[tuple[int, str, bool]]:
    """(face index, name, is a variable font) of each face in a font file; [] if unreadable."""
    from fontTools.ttLib import TTCollection, TTFont

    try:
        if path.lower().endswith((".ttc", ".otc")):
            coll = TTCollection(path, lazy=True)
            out = [(i, _face_name(f), "fvar" in f) for i, f in enumerate(coll.fonts)]
            coll.close()
        else:
            with TTFont(path, lazy=True) as f:
                out = [(0, _face_name(f), "fvar" in f)]
    except Exception:  # unreadable/unsupported font files are skipped, not fatal
        return []
    # A collection with a TW/TC face and an HK face: keep the Taiwan one (this project's documents are Taiwanese).
    if any(_has_tag(n, {"TW", "TC"}) for _, n, _ in out):
        out = [(i, n, v) for i, n, v in out if not _has_tag(n, {"HK"})]
    # A variable font's default instance may be Thin; it is drawn at DEFAULT_WEIGHT, so drop that style name.
    return [(i, n.replace(" Thin", "") if v else n, v) for i, n, v in out]


def _has_tag(name: str, tags: set[str]) -> bool:
    return bool({t.upper() for t in name.replace("-", " ").split()} & tags)


def _face_name(ttfont) -> str:
    """Family plus style ("Noto Sans CJK TC Bold"), dropping the neutral styles."""
    family = ttfont["name"].getDebugName(1) or ""
    style = ttfont["name"].getDebugName(2) or ""
    if style and style.lower() not in ("regular", "book", "light", "normal", "medium"):
        return f"{family} {style}"
    return family


_INDEX_VERSION = 1


def _index_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gemma_ocr" / f"font_index_v{_INDEX_VERSION}.json"


def _load_index() -> dict:
    import json

    try:
        return json.loads(_index_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _save_index(index: dict) -> None:
    import json
    import tempfile

    p = _index_path()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(index, fh)
        os.replace(tmp, p)
    except OSError:  # a read-only home only costs the rescan next time
        pass


def _file_faces(p: Path, index: dict) -> list[dict]:
    """The usable CJK faces of one font file, from the on-disk index when the file is unchanged (size, mtime):
    reading names and cmaps of every system font takes seconds, a lookup microseconds."""
    st = p.stat()
    key = str(p)
    stamp = [st.st_size, st.st_mtime_ns]
    hit = index.get(key)
    if hit and hit.get("stamp") == stamp:
        return hit["faces"]
    faces = []
    for idx, family, variable in _faces(key):
        kind = _classify(family)
        if kind is None or "mono" in family.lower() or "mbe" in family.lower():
            continue  # Mono / MBE variants duplicate the main faces
        region = _region_scripts(family)
        scripts = [s for s in SCRIPTS if (region is None or s in region) and font_covers(key, SCRIPT_PROBES[s], idx)]
        if scripts:
            faces.append({"index": idx, "name": family, "kind": kind, "scripts": scripts, "variable": variable})
    index[key] = {"stamp": stamp, "faces": faces}
    index["_dirty"] = True
    return faces


def _scan_dirs(dirs: Iterable[str], source: str, index: dict | None = None) -> list[FontInfo]:
    index = {} if index is None else index
    found: list[FontInfo] = []
    for d in dirs:
        root = Path(os.path.expanduser(d))
        if not root.is_dir():
            continue
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() not in _FONT_SUFFIXES or not p.is_file():
                continue
            for f in _file_faces(p, index):
                found.append(FontInfo(path=str(p), name=f["name"], kind=f["kind"], index=f["index"],
                                      scripts=tuple(f["scripts"]), source=source,
                                      weight=DEFAULT_WEIGHT if f["variable"] else None))
    return found


@functools.lru_cache(maxsize=None)
def _all_fonts() -> tuple[FontInfo, ...]:
    index = _load_index()
    index.pop("_dirty", None)
    fonts: list[FontInfo] = []
    pdir = pypi_font_dir()
    if pdir is not None:
        fonts += _scan_dirs([str(pdir)], "pypi", index)
    extra = [d for d in os.environ.get("GEMMA_OCR_FONT_DIRS", "").split(os.pathsep) if d]
    fonts += _scan_dirs(extra, "env", index)
    fonts += _scan_dirs(_SYSTEM_DIRS, "system", index)
    if index.pop("_dirty", False):
        _save_index(index)
    seen, unique = set(), []
    for f in fonts:
        key = (os.path.realpath(f.path), f.index)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return tuple(unique)


def find_cjk_fonts(script: str = "hant", kinds: Sequence[str] | None = None) -> list[FontInfo]:
    """Fonts (faces) that can draw `script` ("hant" Traditional or "hans" Simplified), optionally of given kinds.

    Order is deterministic: PyPI fonts first, then GEMMA_OCR_FONT_DIRS, then system fonts by path and face index.
    Raises FileNotFoundError with install instructions when none is found.
    """
    if script not in SCRIPTS:
        raise ValueError(f"script must be one of {SCRIPTS}, got {script!r}")
    fonts = [f for f in _all_fonts() if script in f.scripts and (kinds is None or f.kind in kinds)]
    if not fonts and kinds is None:
        raise FileNotFoundError(
            f"no CJK font for script {script!r} found. Fix: pip install justmytype-intl-cjk (Noto Sans TC/SC), or "
            "apt-get install fonts-noto-cjk fonts-arphic-ukai fonts-arphic-uming, or set GEMMA_OCR_FONT_DIRS")
    return fonts


def _check(font: FontLike, text: str, index: int | None) -> None:
    missing = missing_glyphs(font, text, index)
    if missing:
        name = font.name if isinstance(font, FontInfo) else str(font)
        raise FontCoverageError(f"font {name} has no glyph for {len(missing)} character(s) of the text: "
                                f"{''.join(missing[:20])!r}; pick another font (lib.render.find_cjk_fonts) or drop them")


def text_size(text: str, font_obj, vertical: bool = False, line_spacing: float = 1.0) -> tuple[int, int]:
    """(width, height) in pixels of one line drawn with `render_text_line`'s layout (without padding)."""
    size = font_obj.size
    if vertical:
        return int(round(size * 1.1)), int(round(len(text) * size * line_spacing))
    return max(1, int(round(line_width(font_obj, text)))), int(round(size * 1.25))


def _color(c):
    return tuple(c) if isinstance(c, (list, tuple)) else c


def render_text_line(text: str, font_path: FontLike, font_size: int = 32, padding: int = 8,
                     fg=(0, 0, 0), bg=(255, 255, 255), *, index: int | None = None, weight: int | None = None,
                     vertical: bool = False, char_spacing: float = 1.0, check_coverage: bool = True, mode: str = "RGB"):
    """Draw one line of text on a plain background and return a `PIL.Image` (same input -> same pixels).

    `vertical=True` stacks characters top to bottom (traditional vertical writing), `char_spacing` scales the
    advance in that direction. With `check_coverage` (default) a character the font cannot draw raises
    `FontCoverageError` naming it, so the label never claims text that is not in the image.
    """
    from PIL import Image

    if check_coverage:
        _check(font_path, text, index)
    font = load_font(font_path, font_size, index=index, weight=weight)
    w, h = text_size(text, font, vertical=vertical, line_spacing=char_spacing)
    img = Image.new(mode, (w + 2 * padding, h + 2 * padding), _color(bg))
    draw_text(img, (padding, padding), text, font, fill=_color(fg), vertical=vertical, char_spacing=char_spacing)
    return img


_GLYPHS: dict[tuple, tuple] = {}
_GLYPH_CACHE_LIMIT = 200_000  # glyphs; a CJK glyph at body size is ~0.5 KB, so this bounds memory to ~100 MB


def _font_key(font_obj) -> tuple:
    key = getattr(font_obj, "_render_key", None)
    return key if key is not None else (getattr(font_obj, "path", None), getattr(font_obj, "index", 0), font_obj.size, id(font_obj))


def glyph(font_obj, ch: str):
    """(mask, dx, dy, advance) of one character: `mask` is the glyph's `L` ImagingCore, to be pasted with its
    top-left at (pen_x + dx, baseline + dy).

    Rasterizing a CJK outline costs ~0.5 ms, and a page draws ~800 characters from a few hundred distinct ones, so
    each (font, size, character) is rasterized once per process and pasted afterwards.
    """
    key = (_font_key(font_obj), ch)
    g = _GLYPHS.get(key)
    if g is None:
        mask, (dx, dy) = font_obj.getmask2(ch, mode="L", anchor="ls")
        g = (mask, dx, dy, font_obj.getlength(ch))
        if len(_GLYPHS) >= _GLYPH_CACHE_LIMIT:
            _GLYPHS.clear()
        _GLYPHS[key] = g
    return g


def char_advance(font_obj, ch: str) -> float:
    return glyph(font_obj, ch)[3]


def line_width(font_obj, text: str) -> float:
    """Width of `text` as `draw_text` lays it out (sum of advances)."""
    return sum(glyph(font_obj, ch)[3] for ch in text)


def draw_text(target, xy: tuple[float, float], text: str, font_obj, fill=(0, 0, 0), vertical: bool = False,
              char_spacing: float = 1.0) -> tuple[int, int]:
    """Draw text at `xy` (top-left of the line box) on a PIL Image (or an ImageDraw's image); returns (w, h).

    Horizontal lines put the baseline 1.0 em below the top of a 1.25 em box, so lines of one size align whatever
    characters they hold; characters advance by their own width (no kerning: CJK has none, and the wrap in
    lib/synth measures the same way). Vertical lines centre each character in a 1-em cell, top to bottom.
    """
    img = getattr(target, "_image", target)
    img.load()
    core = img.im  # paste through the core: the Python-level Image.paste checks cost more than the copy itself
    if isinstance(fill, int) and img.mode == "RGB":
        fill = (fill, fill, fill)
    x, y = xy
    size = font_obj.size
    if not vertical:
        pen, base = x, y + size
        for ch in text:
            mask, dx, dy, adv = glyph(font_obj, ch)
            w, h = mask.size
            if w and h:
                px, py = int(round(pen + dx)), int(round(base + dy))
                core.paste(fill, (px, py, px + w, py + h), mask)
            pen += adv
        return max(1, int(round(pen - x))), int(round(size * 1.25))
    step = size * char_spacing
    cx = x + size * 0.55
    for i, ch in enumerate(text):
        mask, dx, dy, adv = glyph(font_obj, ch)
        w, h = mask.size
        if w and h:
            cy = y + (i + 0.5) * step
            px, py = int(round(cx - w / 2)), int(round(cy - h / 2))  # the glyph's ink box centred in its cell
            core.paste(fill, (px, py, px + w, py + h), mask)
    return text_size(text, font_obj, vertical=True, line_spacing=char_spacing)
