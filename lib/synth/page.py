"""Lay out one synthetic 公文 onto pages and record exactly what was drawn where.

`compose_document(doc_index, seed, cfg)` returns the document's pages (`PageOut`): the clean page image, the page
ground truth in reading order, and the elements (text paragraphs, table, seals, signature, footer, vertical text)
with their boxes and their own ground truth. Degradation and file writing happen in lib/synth/generate.py.

Reading order of the page ground truth, one drawn line per text line:
title, address block, receiver, header fields, 主旨/說明/辦法 items, table (as one line of HTML), copies (正本/副本),
signature, seal texts (when `seal_text_in_page`), vertical margin text, footer.
"""

from __future__ import annotations

import dataclasses
import random
import re
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from lib import render
from lib.synth import content as C
from lib.synth.config import SynthConfig
from lib.synth.seal import SEAL_RED, composite, draw_seal, ink_texture

# A line may not start with these: they hang at the end of the previous line (行首禁則).
NO_LINE_START = set("，。、；：？！）」』】〉》,.;:?!)%")
_NUMBERING = re.compile(r"^(?:[一二三四五六七八九十]+、|（[一二三四五六七八九十]+）|\d+\.|\(\d+\))")


@dataclasses.dataclass
class Element:
    kind: str                      # text | table | seal | signature | footer
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 on the page
    text: str                      # ground truth of this element (HTML for tables)
    font: str
    tags: list[str] = dataclasses.field(default_factory=list)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class PageOut:
    image: Image.Image
    text: str
    elements: list[Element]
    page_no: int
    n_pages: int
    font: str
    tags: list[str]
    meta: dict[str, Any]


@dataclasses.dataclass
class TableGeometry:
    col_x: list[int]   # n_cols + 1 vertical boundaries (relative to the table's left)
    row_y: list[int]   # n_rows + 1 horizontal boundaries (relative to the table's top)
    font_px: int


def char_width(font, ch: str) -> float:
    return render.char_advance(font, ch)


def text_width(font, text: str) -> float:
    return render.line_width(font, text)


_TOKEN = re.compile(r"[A-Za-z0-9@._:/\-,%+#&=~]+|.", re.S)


def wrap(text: str, font, first_width: float, rest_width: float) -> list[str]:
    """Greedy wrap for CJK with Latin mixed in: CJK breaks between any two characters, a Latin/number run
    (an e-mail, a URL, 2,047,628) stays whole unless longer than a line; closing punctuation hangs at the end
    of a line instead of starting the next one."""
    lines, cur, cur_w, limit = [], "", 0.0, first_width
    for tok in _TOKEN.findall(text):
        w = text_width(font, tok)
        if cur and cur_w + w > limit and tok not in NO_LINE_START:
            if len(tok) > 1 and w > rest_width:  # a run longer than a line: break it by characters
                for ch in tok:
                    cw = char_width(font, ch)
                    if cur and cur_w + cw > limit:
                        lines.append(cur)
                        cur, cur_w, limit = "", 0.0, rest_width
                    cur += ch
                    cur_w += cw
                continue
            lines.append(cur)
            cur, cur_w, limit = "", 0.0, rest_width
        cur += tok
        cur_w += w
    if cur:
        lines.append(cur)
    return lines


def table_geometry(spec: C.TableSpec, font, pad: int) -> TableGeometry:
    size = font.size
    widths = [2.0 * size] * spec.n_cols
    for r, c, rs, cs, text in spec.cells:
        if cs == 1:
            widths[c] = max(widths[c], text_width(font, text) + 2 * pad)
    for r, c, rs, cs, text in spec.cells:
        if cs > 1:
            need = text_width(font, text) + 2 * pad - sum(widths[c:c + cs])
            if need > 0:
                widths[c + cs - 1] += need
    col_x = [0]
    for w in widths:
        col_x.append(col_x[-1] + int(round(w)))
    row_h = int(round(size * 1.3 + 2 * pad * 0.6))
    row_y = [i * row_h for i in range(spec.n_rows + 1)]
    return TableGeometry(col_x=col_x, row_y=row_y, font_px=size)


def draw_table(draw: ImageDraw.ImageDraw, spec: C.TableSpec, xy: tuple[int, int], font, geom: TableGeometry,
               line_width: int = 1, fill=(0, 0, 0), draw_text: bool = True) -> None:
    """Each cell is outlined on its own box, so merged cells have no inner lines: the drawing is the HTML's grid."""
    x, y = xy
    for r, c, rs, cs, text in spec.cells:
        x0, x1 = x + geom.col_x[c], x + geom.col_x[c + cs]
        y0, y1 = y + geom.row_y[r], y + geom.row_y[r + rs]
        draw.rectangle([x0, y0, x1, y1], outline=fill, width=line_width)
        if draw_text and text:
            tw = text_width(font, text)
            render.draw_text(draw, ((x0 + x1 - tw) / 2, (y0 + y1) / 2 - font.size * 0.62), text, font, fill=fill)


def pick_font(candidates: list[render.FontInfo], text: str, rng: random.Random) -> render.FontInfo | None:
    """A random font among those that cover every character of `text` (deterministic for a given rng state)."""
    order = list(candidates)
    rng.shuffle(order)
    for f in order:
        if render.font_covers(f, text):
            return f
    return None


class _Writer:
    """Draws flowing lines top to bottom, starting a new page when the next block does not fit."""

    def __init__(self, cfg: SynthConfig, body: render.FontInfo, rng: random.Random):
        self.cfg, self.body, self.rng = cfg, body, rng
        self.W, self.H = cfg.page_px
        self.ml = self.mr = int(0.85 * cfg.dpi)
        self.mt = int(0.6 * cfg.dpi)
        self.mb = int(0.85 * cfg.dpi)
        self.pages: list[dict] = []
        self.new_page()

    def new_page(self):
        img = Image.new("RGB", (self.W, self.H), (255, 255, 255))
        self.pages.append({"image": img, "draw": ImageDraw.Draw(img), "gt": [], "elements": [], "tags": set()})
        self.y = self.mt

    @property
    def page(self):
        return self.pages[-1]

    def fits(self, h: int) -> bool:
        return self.y + h <= self.H - self.mb

    def paragraph(self, text: str, size_px: int, x: int, *, hang: str = "", first_x: int | None = None,
                  spacing: float = 1.55, align: str = "left", tags=(), element: bool = True, max_x: int | None = None,
                  font_info: render.FontInfo | None = None):
        """Draw `text` wrapped between x and the right margin; the first line may start at `first_x`;
        continuation lines are indented by the width of `hang` (the numbering, e.g. "一、")."""
        font_info = font_info or self.body
        font = render.load_font(font_info, size_px)
        right = max_x if max_x is not None else self.W - self.mr
        fx = x if first_x is None else first_x
        indent = text_width(font, hang)
        lines = wrap(text, font, right - fx, right - x - indent)
        step = int(round(size_px * spacing))
        box = None
        for i, line in enumerate(lines):
            if not self.fits(int(size_px * 1.3)):
                if box is not None and element:
                    self._add_text_element(box, seg, tags, font_info)
                self.new_page()
                box = None
            lx = fx if i == 0 else x + indent
            if align == "center":
                lx = (self.W - text_width(font, line)) / 2
            render.draw_text(self.page["draw"], (lx, self.y), line, font)
            lw = text_width(font, line)
            # The ink box of a CJK line: glyphs reach from ~0.1 em to ~1.2 em below the line top.
            lb = (int(lx), int(self.y + size_px * 0.05), int(lx + lw) + 1, int(self.y + size_px * 1.25))
            if box is None:
                box, seg = lb, []
            else:
                box = (min(box[0], lb[0]), box[1], max(box[2], lb[2]), lb[3])
            seg.append(line)
            self.page["gt"].append(line)
            self.y += step
        if box is not None and element:
            self._add_text_element(box, seg, tags, font_info)
        return lines

    def _add_text_element(self, box, lines, tags, font_info):
        self.page["elements"].append(Element("text", box, "\n".join(lines), font_info.short, list(tags)))


def _paste_mask(page_img: Image.Image, mask: Image.Image, xy, colour, nrng, opacity=0.9):
    return composite(page_img, ink_texture(mask, nrng), xy, colour, opacity)


def compose_document(doc_index: int, seed: int, cfg: SynthConfig, fonts: dict[str, list[render.FontInfo]] | None = None
                     ) -> list[PageOut]:
    """Generate document `doc_index` of the run seeded `seed` (same arguments -> same pages, pixel for pixel)."""
    rng = random.Random(f"synth:{seed}:{doc_index}")
    nrng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(doc_index)])
    fonts = fonts or available_fonts(cfg)
    doc = C.make_document(rng, p_table=cfg.p_table, p_vertical=cfg.p_vertical)
    if cfg.script == "hans":
        doc = C.map_document(doc, C.to_simplified)
    # Body text in regular weights; a Bold face of the same family may set the title.
    body_candidates = ([f for f in fonts["body"] if f.kind in cfg.font_kinds and "Bold" not in f.name]
                       or [f for f in fonts["body"] if f.kind in cfg.font_kinds] or fonts["body"])
    needed = C.all_text(doc)
    body = pick_font(body_candidates, needed, rng)
    if body is None:
        raise render.FontCoverageError(f"no body font covers the text of document {doc_index}: missing "
                                       f"{render.missing_glyphs(body_candidates[0], needed)[:10]}")
    sign_font = pick_font(fonts["kai"], doc.signer_title + doc.signer_name, rng) or body
    seal_font = pick_font(fonts["seal"], doc.seal_agency + "之印關防收文章專用校對發0123456789.", rng) or body

    w = _Writer(cfg, body, rng)
    pt = cfg.pt
    # Sizes from a few whole points (not a continuum): real documents use whole sizes, and the glyph cache hits.
    body_px = pt(rng.choice([p for p in range(int(cfg.body_pt_min), int(cfg.body_pt_max) + 1)] or [cfg.body_pt_min]))
    small_px = pt(10)
    ml, W = w.ml, w.W
    avail = W - w.ml - w.mr

    # Title and address block.
    bold = [f for f in fonts["body"] if f.name == body.name + " Bold" and render.font_covers(f, doc.title)]
    title_font = bold[0] if bold and rng.random() < 0.6 else body
    w.paragraph(doc.title, pt(rng.choice([18, 20, 22])), ml, align="center", tags=["title"], font_info=title_font)
    w.y += int(body_px * 0.3)
    addr_x = ml + int(avail * 0.55)
    for line in doc.address_lines:
        w.paragraph(line, small_px, addr_x, spacing=1.35, tags=["address"])
    w.y += int(body_px * 0.5)
    w.paragraph(doc.receiver, pt(14), ml, tags=["receiver"])
    w.y += int(body_px * 0.4)
    for key, value in doc.header_fields:
        label = f"{key}：{value}"
        w.paragraph(label, small_px + 1, ml, hang=key + "：", spacing=1.45, tags=["header"])
    w.y += int(body_px * 0.6)

    # 主旨 / 說明 / 辦法 with numbered items.
    for heading, items in doc.sections:
        font = render.load_font(body, body_px)
        head = f"{heading}："
        head_w = int(text_width(font, head))
        if heading == "主旨":
            _, text = items[0]
            w.paragraph(head + text, body_px, ml, hang=head, tags=["subject"])
        else:
            w.paragraph(head, body_px, ml, tags=["heading"], element=False)
            for level, text in items:
                x = ml + head_w // 2 + level * body_px
                m = _NUMBERING.match(text)
                w.paragraph(text, body_px, x, hang=m.group(0) if m else "", tags=[f"item_level{level}"])
        w.y += int(body_px * 0.4)

    # Table (never split across pages; shrunk to fit the width or left out).
    table_drawn = False
    if doc.table is not None:
        size = body_px
        while size >= pt(8):
            tfont = render.load_font(body, size)
            geom = table_geometry(doc.table, tfont, pad=max(3, size // 3))
            if geom.col_x[-1] <= avail:
                break
            size -= 1
        else:
            geom = None
        if geom is not None:
            th = geom.row_y[-1] + 2
            if not w.fits(th + body_px):
                w.new_page()
            if w.fits(th):
                tx, ty = ml, w.y
                draw_table(w.page["draw"], doc.table, (tx, ty), tfont, geom, line_width=max(1, cfg.dpi // 100))
                html = doc.table.to_html()
                w.page["gt"].append(html)
                box = (tx, ty, tx + geom.col_x[-1] + 2, ty + geom.row_y[-1] + 2)
                spans = any(cs > 1 or rs > 1 for _, _, rs, cs, _ in doc.table.cells)
                w.page["elements"].append(Element("table", box, html, body.short, ["table"] + (["merged_cells"] if spans else []),
                                                  {"n_rows": doc.table.n_rows, "n_cols": doc.table.n_cols}))
                w.page["tags"].add("table")
                w.y += th + int(body_px * 0.8)
                table_drawn = True

    # Copies, kept on one page with the signature block below them (a closing page never holds a seal alone).
    sig_h = pt(30) * 2
    has_signature = rng.random() < cfg.p_signature
    has_seal = rng.random() < cfg.p_seal and bool(cfg.seal_shapes)
    copies_h = int(len(doc.copies) * (small_px + 1) * 1.45)
    if not w.fits(copies_h + (sig_h if has_signature or has_seal else 0)):
        w.new_page()
    for line in doc.copies:
        w.paragraph(line, small_px + 1, ml, hang=line.split("：")[0] + "：", spacing=1.45, tags=["copies"])

    # Signature block and seals on the last page.
    page = w.page
    sig_box = None
    if has_signature:
        s_px = pt(rng.choice([22, 24, 26, 28]))
        sfont = render.load_font(sign_font, s_px)
        title, name = doc.signer_title, doc.signer_name
        gap = s_px
        sw = int(text_width(sfont, title) + gap + text_width(sfont, name) + 6)
        sh = int(s_px * 1.4)
        smask = Image.new("L", (sw, sh), 0)
        render.draw_text(smask, (3, s_px * 0.05), title, sfont, fill=255)
        render.draw_text(smask, (3 + text_width(sfont, title) + gap, s_px * 0.05), name, sfont, fill=255)
        if rng.random() < 0.5:  # a heavier brush
            smask = smask.filter(ImageFilter.MaxFilter(3))
        angle = rng.uniform(-3, 3)
        smask = smask.rotate(angle, resample=Image.BILINEAR, expand=True)
        sx = int(ml + avail * rng.uniform(0.35, 0.55))
        sy = w.y + int(s_px * 0.4)
        colour = rng.choice([(20, 20, 25), (25, 35, 90), (10, 20, 60)])
        sig_box = composite(page["image"], smask, (sx, sy), colour, opacity=0.95)
        sig_text = f"{title} {name}"
        page["gt"].append(sig_text)
        page["elements"].append(Element("signature", sig_box, sig_text, sign_font.short, ["signature"],
                                         {"angle": round(angle, 2)}))
        page["tags"].add("signature")
        w.y = max(w.y, sig_box[3]) + int(body_px * 0.5)

    seal_texts: list[tuple[dict, str]] = []

    def stamp(target_page, shape: str, text: str, centre: str, size: int, cx: int, cy: int, over_text: bool):
        mask, chars = draw_seal(shape, text, centre, seal_font, size, rng)
        x0, y0 = int(cx - mask.width / 2), int(cy - mask.height / 2)
        box = _paste_mask(target_page["image"], mask, (x0, y0), rng.choice(SEAL_RED), nrng, opacity=rng.uniform(0.85, 0.97))
        gt = text + ("\n" + centre if centre else "")
        tags = ["seal", f"seal_{shape}"] + (["seal_over_text"] if over_text else [])
        target_page["elements"].append(Element("seal", box, gt, seal_font.short, tags,
                                               {"shape": shape, "chars": [(ch, round(x + x0, 1), round(y + y0, 1)) for ch, x, y in chars]}))
        target_page["tags"].update(tags)
        seal_texts.append((target_page, gt))

    if has_seal:
        shape = rng.choice(cfg.seal_shapes)
        stext, centre = C.seal_text(rng, doc.seal_agency, shape, doc.signer_name)
        if cfg.script == "hans":
            stext, centre = C.to_simplified(stext), C.to_simplified(centre)
        size = int(cfg.dpi * (rng.uniform(0.55, 0.7) if len(stext) == 4 else rng.uniform(0.95, 1.25)))
        if sig_box is not None:
            cx = (sig_box[0] + sig_box[2]) // 2 + int(rng.uniform(-0.2, 0.5) * size)
            cy = (sig_box[1] + sig_box[3]) // 2
        else:
            cx, cy = int(ml + avail * 0.7), int(min(w.y + size // 2, w.H - w.mb - size // 2))
        cy = max(cy, size // 2 + 2)
        stamp(page, shape, stext, centre, size, cx, cy, over_text=sig_box is not None)
        w.y = max(w.y, cy + size // 2)

    first = w.pages[0]
    if rng.random() < cfg.p_seal_over_text:
        shape = rng.choice([s for s in cfg.seal_shapes if s != "square"] or cfg.seal_shapes)
        stext, centre = C.seal_text(rng, C.agency(rng), shape, doc.signer_name)
        if cfg.script == "hans":
            stext, centre = C.to_simplified(stext), C.to_simplified(centre)
        if render.font_covers(seal_font, stext + centre):
            size = int(cfg.dpi * rng.uniform(0.95, 1.25))
            cx = int(ml + avail * rng.uniform(0.55, 0.85))
            cy = int(w.mt + cfg.dpi * rng.uniform(1.2, 2.4))
            stamp(first, shape, stext, centre, size, cx, cy, over_text=True)

    if cfg.seal_text_in_page:
        for target, gt in seal_texts:
            target["gt"].extend(gt.split("\n"))

    # Vertical text in the left margin of the first page.
    if doc.vertical:
        v_px = pt(11)
        vfont = render.load_font(body, v_px)
        vtext = doc.vertical.replace("　", "")
        vx = int(ml * 0.25)
        vy = int(w.H * rng.uniform(0.3, 0.45))
        render.draw_text(first["draw"], (vx, vy), vtext, vfont, vertical=True)
        vw, vh = render.text_size(vtext, vfont, vertical=True)
        first["gt"].append(vtext)
        first["elements"].append(Element("text", (vx, vy, vx + vw, vy + vh), vtext, body.short, ["vertical"]))
        first["tags"].add("vertical")

    # Footers once the page count is known.
    n_pages = min(len(w.pages), cfg.max_pages_per_doc)
    footer_style = rng.choice(["第{i}頁 共{n}頁", "第 {i} 頁，共 {n} 頁", "第{i}頁，共{n}頁"])
    with_footer = rng.random() < cfg.p_footer
    out = []
    for i, p in enumerate(w.pages[:n_pages], start=1):
        if with_footer:
            text = footer_style.format(i=i, n=n_pages)
            if cfg.script == "hans":
                text = C.to_simplified(text)
            f_px = pt(10)
            font = render.load_font(body, f_px)
            fx = int((w.W - text_width(font, text)) / 2)
            fy = w.H - int(w.mb * 0.6)
            render.draw_text(p["draw"], (fx, fy), text, font)
            p["gt"].append(text)
            p["elements"].append(Element("footer", (fx, fy, fx + int(text_width(font, text)) + 1, fy + int(f_px * 1.3)),
                                         text, body.short, ["footer"]))
            p["tags"].add("footer")
        tags = sorted(p["tags"])
        out.append(PageOut(image=p["image"], text="\n".join(p["gt"]), elements=p["elements"], page_no=i,
                           n_pages=n_pages, font=body.short, tags=tags,
                           meta={"fonts": sorted({body.short, title_font.short, sign_font.short, seal_font.short}),
                                 "body_px": body_px, "table": table_drawn}))
    return out


_FONT_CACHE: dict[str, dict[str, list[render.FontInfo]]] = {}


def available_fonts(cfg: SynthConfig) -> dict[str, list[render.FontInfo]]:
    """Fonts by role for the configured script: body (any kind), kai (signatures), seal (kai/ming/serif)."""
    if cfg.script not in _FONT_CACHE:
        all_fonts = render.find_cjk_fonts(cfg.script)
        kai = [f for f in all_fonts if f.kind == "kai"]
        seal = [f for f in all_fonts if f.kind in ("kai", "ming", "serif")] or all_fonts
        _FONT_CACHE[cfg.script] = {"body": all_fonts, "kai": kai or [f for f in all_fonts if f.kind in ("serif", "ming")] or all_fonts,
                                   "seal": seal}
    return _FONT_CACHE[cfg.script]
