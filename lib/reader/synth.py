"""Text-line images composed on the GPU (or CPU) from a glyph atlas, with scan degradations, folded into the
reader's square input.

The reader sees a text line as a strip 32 px high (glyphs ~20-30 px), cut into 256 px pieces stacked top to bottom
in a 256 x 256 square (`fold_strip`): a 2,048 px line, ~60 Hanzi, keeps every glyph at a legible size, however
long the line is, and the square is what Gemma 3's SigLIP tower takes. `lib/reader/preprocess.py` folds real crops
the same way.

`LineRenderer.render(batch)` turns character ids + per-sample random draws into images in one pass of tensor ops:
glyph cells scattered into a canvas (letter spacing, baseline jitter), an affine warp (size, aspect, rotation,
shear), low-resolution resampling (100-300 dpi), ink bleed or thinning, paper and ink colours, uneven lighting,
red seal ink over the text, table rules, blur, noise, binarisation, and JPEG-like 8 x 8 DCT quantisation. Every
draw comes from a `torch.Generator`, so a seed gives the same images on one device.

Not for: text sampling (lib/reader/text.py) or the model (lib/reader/model.py).
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from lib.reader.glyphs import Atlas
from lib.reader.preprocess import ReaderInput

__all__ = ["FoldSpec", "FOLD", "LineBatch", "LineRenderer", "fold_strip", "unfold_square"]


# the reader's input geometry: one definition, shared with the real-image side (lib/reader/preprocess.py)
FoldSpec = ReaderInput
FOLD = FoldSpec()


def fold_strip(strip: torch.Tensor, spec: FoldSpec = FOLD) -> torch.Tensor:
    """[..., C, row_height, capacity] -> [..., C, rows*row_height, width] (piece k of the strip is row k)."""
    *lead, c, h, w = strip.shape
    assert h == spec.row_height and w == spec.capacity, (h, w)
    x = strip.reshape(*lead, c, h, spec.rows, spec.width)
    x = x.movedim(-2, -3)  # [..., C, rows, h, width]
    return x.reshape(*lead, c, spec.rows * h, spec.width)


def unfold_square(square: torch.Tensor, spec: FoldSpec = FOLD) -> torch.Tensor:
    *lead, c, _, _ = square.shape
    x = square.reshape(*lead, c, spec.rows, spec.row_height, spec.width).movedim(-3, -2)
    return x.reshape(*lead, c, spec.row_height, spec.capacity)


@dataclasses.dataclass
class LineBatch:
    """`chars` long [B, N]: atlas character indices, -1 = padding; `font` long [B]: atlas face index."""

    chars: torch.Tensor
    font: torch.Tensor


@dataclasses.dataclass
class Degrade:
    """Probabilities and ranges of the scan degradations (the defaults are the pretraining mix)."""

    glyph_height: tuple[float, float] = (18.0, 27.5)   # px of the 32 px row that the em box takes
    aspect: tuple[float, float] = (0.8, 1.15)
    p_spaced: float = 0.3                               # share of lines set with letter spacing
    spacing: tuple[float, float] = (0.02, 0.3)          # letter spacing, in em, where set
    tracking: tuple[float, float] = (-0.8, 0.8)         # px added per glyph (all lines)
    rotate_deg: float = 0.4                             # detector crops are de-skewed: a residual tilt
    shear: float = 0.12
    p_lowres: float = 0.5
    lowres: tuple[float, float] = (1.0, 2.6)            # downsample factor (300 dpi -> ~110 dpi)
    p_bleed: float = 0.15
    p_thin: float = 0.15
    p_faint: float = 0.12
    p_seal: float = 0.12
    p_rules: float = 0.2
    p_binary: float = 0.08
    p_jpeg: float = 0.35
    p_invert: float = 0.07                              # light text on a dark band (headers, slides)
    p_colour: float = 0.12                              # coloured paper / highlighter backgrounds
    blur: tuple[float, float] = (0.0, 1.1)
    noise: tuple[float, float] = (0.0, 0.07)


def _u(g, shape, lo, hi, device):
    return torch.rand(shape, generator=g, device=device) * (hi - lo) + lo


def _b(g, shape, p, device):
    return torch.rand(shape, generator=g, device=device) < p


_DCT = None


def _dct_matrix(device, dtype):
    n = 8
    k = torch.arange(n, dtype=torch.float64)
    m = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m.to(device=device, dtype=dtype)


class LineRenderer:
    """Renders `LineBatch`es into folded reader inputs. Construct once per device; `render` is batched."""

    def __init__(self, atlas: Atlas, device: str | torch.device = "cpu", spec: FoldSpec = FOLD,
                 degrade: Degrade | None = None):
        self.device = torch.device(device)
        self.spec = spec
        self.deg = degrade or Degrade()
        self.S = atlas.size
        self.baseline = atlas.baseline
        # glyph cells as float16 in [0, 1] on the device: 20 faces x 9k chars x 32 x 32 = 0.37 GB
        self.cells = torch.from_numpy(atlas.cells).to(self.device)
        self.advance = torch.from_numpy(atlas.advance).to(self.device)
        self.space_idx = atlas.chars.index(" ") if " " in atlas.chars else -1
        self.dct = _dct_matrix(self.device, torch.float32)
        # JPEG luminance table (quality 50), scaled per sample by the quality draw
        self.qtable = torch.tensor([
            16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
            14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
            49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=torch.float32,
            device=self.device).view(8, 8) / 255.0

    # ---- composition -------------------------------------------------------------------------------------------
    def _compose(self, batch: LineBatch, g: torch.Generator):
        """Ink canvas [B, H0, W0] in [0, 1] at atlas resolution, and each line's ink extent in px."""
        d, dev, S = self.deg, self.device, self.S
        chars, font = batch.chars.to(dev), batch.font.to(dev)
        B, N = chars.shape
        valid = chars >= 0
        c = chars.clamp_min(0)
        adv = self.advance[font[:, None], c] * valid  # [B, N]
        spaced = _b(g, (B, 1), d.p_spaced, dev)
        extra = torch.where(spaced, _u(g, (B, 1), *d.spacing, dev) * S, torch.zeros(B, 1, device=dev))
        tracking = _u(g, (B, 1), *d.tracking, dev)
        step = torch.where(valid, adv + extra + tracking, torch.zeros_like(adv)).clamp_min(0)
        margin = _u(g, (B, 1), 2.0, 14.0, dev)
        x0 = margin + torch.cumsum(step, 1) - step  # left edge of each glyph
        width = (x0[:, -1:] + step[:, -1:]).squeeze(1)
        width = torch.where(valid.any(1), (x0 + step).masked_fill(~valid, 0).amax(1), margin.squeeze(1))
        vpad = 6
        H0 = S + 2 * vpad
        W0 = int(math.ceil(float(width.max()) + 16 + S))
        jitter = torch.randint(-1, 2, (B, N), generator=g, device=dev)
        xs = x0.round().long()
        rows = torch.arange(S, device=dev)
        cols = torch.arange(S, device=dev)
        yy = (vpad + jitter)[..., None, None] + rows[:, None]          # [B, N, S, 1]
        xx = xs[..., None, None] + cols[None, :]                       # [B, N, 1, S]
        flat = (torch.arange(B, device=dev)[:, None, None, None] * (H0 * W0) + yy * W0 + xx)  # [B,N,S,S]
        vals = self.cells[font[:, None], c]                            # uint8 [B, N, S, S]
        vals = vals * valid[..., None, None]
        canvas = torch.zeros(B * H0 * W0, device=dev, dtype=torch.float32)
        canvas.scatter_reduce_(0, flat.reshape(-1), vals.reshape(-1).float() / 255.0, reduce="amax")
        return canvas.view(B, H0, W0), width + margin.squeeze(1), vpad

    # ---- the whole pipeline ------------------------------------------------------------------------------------
    @torch.no_grad()
    def render(self, batch: LineBatch, g: torch.Generator, clean: bool = False) -> torch.Tensor:
        """Folded RGB inputs [B, 3, 256, 256] in [0, 1] (white = 1). `clean`: geometry only, no degradations."""
        d, dev, spec = self.deg, self.device, self.spec
        ink, width, vpad = self._compose(batch, g)
        B, H0, W0 = ink.shape
        Hr, L = spec.row_height, spec.capacity
        # -- ink shape: bleed (dilate) or thin (erode) at atlas resolution
        if not clean:
            bleed = _b(g, (B, 1, 1), d.p_bleed, dev)
            thin = _b(g, (B, 1, 1), d.p_thin, dev) & ~bleed
            dil = F.max_pool2d(ink[:, None], 3, 1, 1)[:, 0]
            ero = -F.max_pool2d(-ink[:, None], 3, 1, 1)[:, 0]
            ink = torch.where(bleed, 0.5 * (ink + dil), torch.where(thin, 0.5 * (ink + ero), ink))
        # -- geometry: output strip pixel (u, v) -> source (x, y) in the canvas
        em = _u(g, (B,), *d.glyph_height, dev)            # em box height in output px
        k = em / self.S                                   # output px per source px (vertical)
        a = _u(g, (B,), *d.aspect, dev)
        kx = k * a
        # never cut text: shrink horizontally if the line would not fit the strip
        kx = torch.minimum(kx, (L - 4) / width.clamp_min(1))
        rot = (_u(g, (B,), -d.rotate_deg, d.rotate_deg, dev) * math.pi / 180) if not clean else torch.zeros(B, device=dev)
        shear = _u(g, (B,), -d.shear, d.shear, dev) if not clean else torch.zeros(B, device=dev)
        # vertical placement: the em box's centre in the row, with a little jitter
        cy_src = vpad + self.S * 0.5
        cy_out = Hr * 0.5 + (_u(g, (B,), -1.5, 1.5, dev) if not clean else torch.zeros(B, device=dev))
        u = torch.arange(L, device=dev, dtype=torch.float32) + 0.5
        v = torch.arange(Hr, device=dev, dtype=torch.float32) + 0.5
        V, U = torch.meshgrid(v, u, indexing="ij")                    # [Hr, L]
        du = U[None] / kx[:, None, None]                               # source x before rotation
        dv = (V[None] - cy_out[:, None, None]) / k[:, None, None]
        cos, sin = torch.cos(rot)[:, None, None], torch.sin(rot)[:, None, None]
        xs = cos * du - sin * dv + shear[:, None, None] * dv
        ys = sin * du + cos * dv + cy_src
        grid = torch.stack([xs / W0 * 2 - 1, ys / H0 * 2 - 1], -1)
        strip = F.grid_sample(ink[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
        line_end = (width * kx).clamp(max=L)                          # px of strip the line (with margins) covers
        inside = (U[None] < line_end[:, None, None]).float()          # [B, Hr, L]
        if clean:
            img = 1 - strip
            img = img * inside + (1 - inside)
            return fold_strip(img[:, None].expand(B, 3, Hr, L).contiguous(), spec)
        # -- low resolution: down and up again (antialiased both ways)
        lowres = _b(g, (B,), d.p_lowres, dev)
        if bool(lowres.any()):
            f = float(_u(g, (1,), *d.lowres, dev))
            small = F.interpolate(strip[:, None], scale_factor=1 / f, mode="area")
            back = F.interpolate(small, size=(Hr, L), mode="bilinear", align_corners=False)[:, 0]
            strip = torch.where(lowres[:, None, None], back, strip)
        # -- faint photocopy: weaker ink
        strength = torch.where(_b(g, (B,), d.p_faint, dev), _u(g, (B,), 0.35, 0.7, dev), _u(g, (B,), 0.85, 1.0, dev))
        strip = strip * strength[:, None, None]
        # -- colours: paper (white to yellowed / grey), ink (black, dark blue, dark grey)
        paper = _u(g, (B, 1, 1, 1), 0.78, 1.0, dev)
        tint = torch.stack([torch.ones(B, device=dev), _u(g, (B,), 0.96, 1.0, dev), _u(g, (B,), 0.88, 1.0, dev)], 1)
        paper = (paper * tint[:, :, None, None]).clamp(0, 1)
        inkc = _u(g, (B, 1, 1, 1), 0.0, 0.3, dev).expand(B, 3, 1, 1).clone()
        blue = _b(g, (B,), 0.1, dev)
        inkc[blue, 2] += 0.25
        colour = _b(g, (B, 1, 1, 1), d.p_colour, dev)
        paper = torch.where(colour, (paper * _u(g, (B, 3, 1, 1), 0.6, 1.0, dev)).clamp(0, 1), paper)
        invert = _b(g, (B, 1, 1, 1), d.p_invert, dev)
        dark = _u(g, (B, 3, 1, 1), 0.0, 0.45, dev)
        light_ink = _u(g, (B, 1, 1, 1), 0.75, 1.0, dev).expand(B, 3, 1, 1)
        paper = torch.where(invert, dark, paper)
        inkc = torch.where(invert, light_ink, inkc)
        # uneven lighting: a smooth field from a 2 x 8 grid of random gains
        field = F.interpolate(_u(g, (B, 1, 2, 8), 0.85, 1.05, dev), size=(Hr, L), mode="bicubic", align_corners=False)
        light = torch.where(_b(g, (B, 1, 1, 1), 0.4, dev), field, torch.ones_like(field))
        alpha = strip[:, None]
        img = paper * light * (1 - alpha) + inkc * alpha                # [B, 3, Hr, L]
        # -- table rules / underlines at the crop's edges (detector crops of table cells keep them)
        rules = _b(g, (B,), d.p_rules, dev)
        if bool(rules.any()):
            top = torch.randint(0, 4, (B,), generator=g, device=dev)
            bot = Hr - 1 - torch.randint(0, 4, (B,), generator=g, device=dev)
            rowsel = (torch.arange(Hr, device=dev)[None] == top[:, None]) | (torch.arange(Hr, device=dev)[None] == bot[:, None])
            which = torch.randint(0, 3, (B,), generator=g, device=dev)  # 0 top, 1 bottom, 2 both
            rowsel = torch.where((which == 0)[:, None], torch.arange(Hr, device=dev)[None] == top[:, None],
                                 torch.where((which == 1)[:, None], torch.arange(Hr, device=dev)[None] == bot[:, None], rowsel))
            m = (rowsel[:, :, None] & rules[:, None, None]).float()[:, None] * _u(g, (B, 1, 1, 1), 0.5, 1.0, dev)
            img = img * (1 - m) + inkc * m
        # -- red seal ink over the text: a ring arc and a blob of stamp texture
        seal = _b(g, (B,), d.p_seal, dev)
        if bool(seal.any()):
            cx = _u(g, (B, 1, 1), 0, 1, dev) * line_end[:, None, None]
            cy = _u(g, (B, 1, 1), -20, Hr + 20, dev)
            r = _u(g, (B, 1, 1), 18, 60, dev)
            t = _u(g, (B, 1, 1), 1.5, 4.0, dev)
            dist = torch.sqrt((U[None] - cx) ** 2 + (V[None] - cy) ** 2)
            ring = (1 - ((dist - r).abs() / t).clamp(0, 1))
            tex = F.interpolate(_u(g, (B, 1, Hr // 4, L // 16), 0, 1, dev), size=(Hr, L), mode="bilinear",
                                align_corners=False)[:, 0]
            fill = ((dist < r * 0.8).float() * (tex > 0.6).float() * 0.6)
            m = ((ring + fill).clamp(0, 1) * seal[:, None, None] * _u(g, (B, 1, 1), 0.45, 0.85, dev))[:, None]
            red = torch.tensor([0.85, 0.12, 0.12], device=dev)[None, :, None, None]
            img = img * (1 - m) + (img * red) * m
        # -- blur (per-sample gaussian, separable)
        sig = _u(g, (B,), *d.blur, dev)
        ks = 5
        xk = torch.arange(ks, device=dev, dtype=torch.float32) - ks // 2
        ker = torch.exp(-(xk[None] ** 2) / (2 * sig[:, None].clamp_min(1e-3) ** 2))
        ker = ker / ker.sum(1, keepdim=True)                             # [B, ks]
        x = img.reshape(1, B * 3, Hr, L)
        kh = ker.repeat_interleave(3, 0)[:, None, None, :]
        kv = ker.repeat_interleave(3, 0)[:, None, :, None]
        x = F.conv2d(F.pad(x, (ks // 2, ks // 2, 0, 0), mode="replicate"), kh, groups=B * 3)
        x = F.conv2d(F.pad(x, (0, 0, ks // 2, ks // 2), mode="replicate"), kv, groups=B * 3)
        img = x.view(B, 3, Hr, L)
        # -- sensor noise
        nz = _u(g, (B, 1, 1, 1), *d.noise, dev)
        img = img + torch.randn(img.shape, generator=g, device=dev) * nz
        # -- binarisation (fax / bitonal scans)
        binar = _b(g, (B, 1, 1, 1), d.p_binary, dev)
        gray = img.mean(1, keepdim=True)
        thr = _u(g, (B, 1, 1, 1), 0.45, 0.7, dev)
        img = torch.where(binar, (gray > thr).float().expand_as(img), img)
        img = img.clamp(0, 1)
        # -- JPEG-like: 8 x 8 DCT of the luminance, quantised with a quality-scaled table
        jpeg = _b(g, (B,), d.p_jpeg, dev)
        if bool(jpeg.any()):
            img = torch.where(jpeg[:, None, None, None], self._jpeg(img, g), img)
        # -- outside the line: plain white (what preprocess.fold_line pads real crops with)
        inside = inside[:, None]
        img = img * inside + (1 - inside)
        return fold_strip(img, spec)

    def _jpeg(self, img: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        B, _, H, W = img.shape
        y = img.mean(1, keepdim=True)
        chroma = img - y
        blocks = y.unfold(2, 8, 8).unfold(3, 8, 8)                      # [B,1,H/8,W/8,8,8]
        D = self.dct
        coef = D @ (blocks - 0.5) @ D.T
        scale = _u(g, (B, 1, 1, 1, 1, 1), 0.5, 3.0, self.device)         # quality ~ 85 .. 20
        q = self.qtable * scale
        coef = torch.round(coef / q) * q
        rec = D.T @ coef @ D + 0.5
        y2 = rec.permute(0, 1, 2, 4, 3, 5).reshape(B, 1, H, W)
        return (y2 + chroma).clamp(0, 1)
