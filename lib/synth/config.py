"""Settings of the synthetic document generator: page geometry, element probabilities, degradation probabilities.

`SynthConfig` is a plain dataclass so `core/synth_data.py` can expose every field as a flag and read a YAML file
(configs/synth/*.yaml) through lib.config. Probabilities are per page (per element crop for degradations in
element mode) and independent of each other.
"""

from __future__ import annotations

import dataclasses

from lib.config import field


@dataclasses.dataclass
class SynthConfig:
    script: str = field("hant", help="hant = Traditional Chinese (default), hans = Simplified (OpenCC t2s)",
                        choices=["hant", "hans"])
    dpi: int = field(100, help="page resolution; an A4 page is 8.27 x 11.69 in, i.e. 827 x 1169 px at 100 dpi")
    page_size: str = field("A4", help="A4 or B4 (the two 公文 paper sizes)", choices=["A4", "B4"])
    font_kinds: list[str] = field(default_factory=lambda: ["sans", "serif", "ming", "kai"],
                                  help="font families allowed for body text (signatures always use kai when present)")
    body_pt_min: float = field(11.0, help="smallest body font size in points")
    body_pt_max: float = field(14.0, help="largest body font size in points")
    p_table: float = field(0.5, help="probability that a document has a table (HTML ground truth)")
    p_vertical: float = field(0.2, help="probability of a vertical text column in the left margin")
    p_signature: float = field(0.9, help="probability of a signature block (title + name in kai) on the last page")
    p_seal: float = field(0.85, help="probability of an agency/personal seal on the last page")
    p_seal_over_text: float = field(0.35, help="probability of an extra seal (received/date stamp) over body text")
    seal_shapes: list[str] = field(default_factory=lambda: ["square", "circle", "oval"],
                                   help="seal shapes to draw (square 2x2/3x3, circle and oval with arc text)")
    seal_text_in_page: bool = field(True, help="include seal text (in reading order, after the signature) in page ground truth")
    p_footer: float = field(0.9, help="probability of a page footer (第1頁 共3頁)")
    max_pages_per_doc: int = field(3, help="longer documents are cut after this many pages")
    text_crops_per_page: int = field(4, help="element mode: text paragraphs cropped per page (randomly chosen)")
    # Degradations: each applied independently with its probability; strength drawn from the range.
    p_rotate: float = field(0.4, help="probability of a small rotation")
    rotate_max_deg: float = field(1.5, help="largest rotation in degrees")
    p_blur: float = field(0.3, help="probability of Gaussian blur")
    blur_max_radius: float = field(1.0, help="largest blur radius in pixels")
    p_jpeg: float = field(0.4, help="probability of strong JPEG compression (quality 35-75 instead of 92)")
    p_noise: float = field(0.3, help="probability of Gaussian pixel noise")
    noise_max_sigma: float = field(8.0, help="largest noise standard deviation (0-255 scale)")
    p_lighting: float = field(0.3, help="probability of uneven lighting (smooth brightness gradient)")
    p_tint: float = field(0.4, help="probability of a paper tint (yellowish/greyish paper)")
    p_scan_lines: float = field(0.15, help="probability of scanner streaks")
    p_binarize: float = field(0.08, help="probability of binarization (fax/photocopy look); drawn last")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if f.name.startswith("p_"):
                v = getattr(self, f.name)
                if not 0.0 <= float(v) <= 1.0:
                    raise ValueError(f"{f.name} is a probability and must be in [0, 1], got {v}")
        if self.dpi < 50 or self.dpi > 400:
            raise ValueError(f"dpi must be between 50 and 400, got {self.dpi}")
        if self.body_pt_min > self.body_pt_max:
            raise ValueError("body_pt_min must be <= body_pt_max")
        bad = set(self.seal_shapes) - {"square", "circle", "oval"}
        if bad:
            raise ValueError(f"unknown seal_shapes {sorted(bad)}; use square, circle, oval")

    @property
    def page_px(self) -> tuple[int, int]:
        w_in, h_in = (8.27, 11.69) if self.page_size == "A4" else (9.84, 13.90)
        return int(round(w_in * self.dpi)), int(round(h_in * self.dpi))

    def pt(self, points: float) -> int:
        """Points to pixels at this dpi."""
        return max(6, int(round(points * self.dpi / 72.0)))
