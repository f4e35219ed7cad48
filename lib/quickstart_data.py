"""The quickstart's sample task: read random Traditional Chinese characters laid out on a grid, one glyph per cell.

Why this task: it is honest reading - strings are uniformly random characters (no language prior to guess from,
test strings never occur in training), drawn from >= 300 distinct Hanzi in >= 2 fonts - yet a tiny random-init
model can learn it on 2 CPU cores in minutes, because each grid cell is exactly one image patch of the embedded
model (`lib.models.embedded`: 96 px image, 24 px patches, no pooling), and the tokenizer has one token per Hanzi.
Reading order is row-major; strings are shorter than the grid, so the model must also see where the text ends.

Glyphs are drawn with `lib.render` (offline fonts). Not for: realistic documents (lib/synth/ makes those).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from pathlib import Path
from typing import Sequence

__all__ = ["COMMON_HANZI", "QuickstartTask", "pick_fonts", "pick_characters", "render_grid", "build_dataset",
           "blank_image"]

# Frequent Traditional Chinese characters (general text and government documents); de-duplicated in order.
COMMON_HANZI = "".join(dict.fromkeys(
    "的一是不了人我在有他這中大來上國個到說們為子和你地出道也時年得就那要下以生會自著去之過家學對可她裡後小麼心多天而能好都"
    "然沒日於起還發成事只作當想看文無開手十用主行方又如前所本見經頭面公同三已老從動兩長知民樣現分將外但身些與高意進把法此實"
    "回二理美點月明其種聲全工己話兒者向情部正名定女問力機給等幾很業最間新什打便位因重被走電四第門相次東政海口使教西再平真聽"
    "世氣信北少關並內加化由卻代軍產入先山五太水萬市眼體別處總才場師書比住員九笑性通目華報立馬命張活難神數件安表原車白應路期"
    "叫死常提感金何更反合放做系計或司利受光王果親界及今京務制解各任至清物臺象記邊共風戰干接它許八特覺望直服毛林題建南度統色"
    "字請交愛讓認算論百吃義科怎元社術結六功指思非流每青管夫連遠資隊跟帶花快條院變聯言權往展該領傳近留紅治決周保達辦運武半候"
    "七必城父強步完革深區即求品士轉量空甚眾技輕程告江語英基派滿式李息寫呢識極令黃德收臉錢黨倒未持音送爭朝議府局縣鄉鎮村里案"
    "費稅款項規申核准審查登證檢附料單首承紀錄知函覆依據擬施修草預補助畫估調研究境農貿易勞福醫療健康警消防外司監考試銓敘主計"
    "春夏秋冬左右藍綠黑樹木川河湖泊雨雪雲雷星辰鳥獸魚蟲牛羊豬狗貓雞鴨米麵茶酒飯菜肉蛋奶油鹽糖醋醬刀槍弓箭船橋窗牆屋床桌椅"
    "燈鐘錶筆墨紙硯琴棋詩歌舞戲劇"))


@dataclasses.dataclass(frozen=True)
class QuickstartTask:
    """Geometry of the task; must match the embedded model (image_size = grid * cell = the model's image size,
    cell = the model's patch size)."""

    grid: int = 4  # cells per side
    cell: int = 24  # pixels per cell = the model's patch size
    font_size: int = 20
    min_len: int = 4
    max_len: int = 12
    n_chars: int = 320  # distinct Hanzi used
    n_fonts: int = 2

    @property
    def image_size(self) -> int:
        return self.grid * self.cell


def pick_fonts(n: int = 2, script: str = "hant"):
    """`n` fonts of different visual kinds when the machine has them (e.g. Noto Sans TC from PyPI + a Ming or Kai
    system font), else distinct families; raises when fewer than `n` usable fonts exist."""
    from lib.render import find_cjk_fonts

    fonts = find_cjk_fonts(script)
    if script == "hant":  # Noto Sans SC (PyPI) also draws most Traditional characters: a second font everywhere
        try:
            fonts = fonts + [f for f in find_cjk_fonts("hans") if f.source == "pypi"]
        except FileNotFoundError:  # no Simplified font at all: the Traditional ones must do
            pass
    chosen, kinds, names = [], set(), set()
    for f in fonts:  # first pass: one per kind
        if f.kind not in kinds and "Bold" not in f.name:
            chosen.append(f)
            kinds.add(f.kind)
            names.add(f.name)
    for f in fonts:  # then distinct families
        if len(chosen) >= n:
            break
        if f.name not in names and "Bold" not in f.name:
            chosen.append(f)
            names.add(f.name)
    if len(chosen) < n:
        raise RuntimeError(f"the quickstart needs {n} CJK fonts, found {[f.name for f in fonts]}; install "
                           "justmytype-intl-cjk (requirements.txt) or fonts-noto-cjk / fonts-arphic-uming")
    return chosen[:n]


def pick_characters(fonts, n: int) -> str:
    """The first `n` characters of COMMON_HANZI that every font draws."""
    from lib.render import font_covers

    chars = [c for c in COMMON_HANZI if all(font_covers(f, c) for f in fonts)]
    if len(chars) < n:
        raise RuntimeError(f"only {len(chars)} of the quickstart characters are covered by all fonts "
                           f"{[f.name for f in fonts]}; need {n}")
    return "".join(chars[:n])


def render_grid(text: str, font, task: QuickstartTask):
    """A white `image_size` square with character i centred in cell (i // grid, i % grid)."""
    from PIL import Image, ImageDraw

    from lib.render import load_font

    if len(text) > task.grid * task.grid:
        raise ValueError(f"{len(text)} characters do not fit a {task.grid}x{task.grid} grid")
    img = Image.new("L", (task.image_size, task.image_size), 255)
    draw = ImageDraw.Draw(img)
    f = load_font(font, task.font_size)
    for i, ch in enumerate(text):
        row, col = divmod(i, task.grid)
        left, top, right, bottom = draw.textbbox((0, 0), ch, font=f)
        x = col * task.cell + (task.cell - (right - left)) / 2 - left
        y = row * task.cell + (task.cell - (bottom - top)) / 2 - top
        draw.text((x, y), ch, font=f, fill=0)
    return img.convert("RGB")


def blank_image(task: QuickstartTask):
    from PIL import Image

    return Image.new("RGB", (task.image_size, task.image_size), "white")


def build_dataset(out_dir: str | os.PathLike, n_samples: int, *, task: QuickstartTask = QuickstartTask(),
                  seed: int = 0, fonts: Sequence | None = None, chars: str | None = None,
                  file_name: str = "data.json") -> dict:
    """Render `n_samples` random strings into `out_dir/images/` and write `out_dir/<file_name>` in the raw format
    (`img_path` relative to the JSON, `ocr_results`, `doc_id`, `font`). Strings are unique. Returns a summary."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    fonts = list(fonts) if fonts else pick_fonts(task.n_fonts)
    chars = chars or pick_characters(fonts, task.n_chars)
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n_samples:
        n = rng.randint(task.min_len, task.max_len)
        text = "".join(rng.choice(chars) for _ in range(n))
        if text in seen:
            continue
        seen.add(text)
        font = fonts[len(rows) % len(fonts)]
        name = f"images/qs_{len(rows):05d}.png"
        render_grid(text, font, task).save(out / name, optimize=False, compress_level=1)
        rows.append({"img_path": name, "ocr_results": text, "doc_id": f"qs_{len(rows):05d}", "font": font.short,
                     "element": "text", "lang": "zh-Hant"})
    (out / file_name).write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return {"path": str(out / file_name), "n": len(rows), "n_chars": len(set("".join(r["ocr_results"] for r in rows))),
            "alphabet": len(chars), "fonts": [f.short for f in fonts], "seed": seed}
