"""PP-OCRv6's line recogniser as the reader's vision tower: a pretrained eye for Gemma 3.

The reader (`Gemma3ForConditionalGeneration`) keeps its language model, its processor, its 256 image tokens and
its folded-line input (lib/reader/preprocess.py); only `vision_tower` changes. `PPOCRVisionModel`:

1. unfolds the 256 x 256 square (8 rows of 32 px) back into one 32 x 2,048 px line, turns it to BGR and resizes it
   to PP-OCRv6's 48 px line height (its own preprocessing: (x / 255 - 0.5) / 0.5, which is the Gemma 3
   processor's normalisation too);
2. runs PP-OCRv6's recogniser backbone (`PP-OCRv6_rec_small.onnx`, shipped inside the `rapidocr` wheel, converted
   to PyTorch by `onnx2torch`: trainable, 2.76 M parameters) and its CTC head (120 -> 18,710 classes) on it:
   one feature and one class distribution per 8 px column (384 steps);
3. collapses the CTC path the way CTC decoding does (a step is kept where its best class is not blank and differs
   from the step before), and packs the kept steps, in order, into the 256 image slots; unused slots hold a
   learned end vector;
4. each kept step becomes `sum_k p_k * E[c_k]` over its 4 most likely classes (E: one vector per PP-OCRv6 class,
   initialised from the reader's own token embedding of that character) plus a learned projection of the step's
   feature, so the language model gets the recogniser's reading and its doubts, one slot per character.

The language model's job becomes: read slot k as the k-th character of the answer, fix what the recogniser got
wrong from context (公文 wording), and stop at the first end slot. Everything stays differentiable except the
choice of which steps are kept (as in CTC decoding), so domain fine-tuning (core/sft_gemma.py, full FT or LoRA)
adapts the recogniser too.

The architecture of the backbone is built from rapidocr's ONNX file (no download; `rapidocr` is in
requirements.txt) every time the model is constructed; the weights then come from our checkpoint. This module is
the one place that touches ONNX graphs. `register()` makes `AutoConfig` / `AutoModel` (and so
`Gemma3ForConditionalGeneration.from_pretrained`) know the `ppocr_rec_vision` type; lib/modeling.py and the
reader's training code call it.

Not for: running PP-OCRv6 as a baseline (lib/evaluation/backends.py), line detection (lib/reader/preprocess.py).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling

__all__ = ["PPOCRVisionConfig", "PPOCRVisionModel", "register", "rec_model_path", "ppocr_characters",
           "new_reader_model", "load_reader_model", "build_ppocr_reader"]

HEAD_INPUT = "p2o.pd_op.transpose.8.0"   # the recogniser graph's tensor feeding its linear CTC head
HEAD_WEIGHT, HEAD_BIAS = "linear_8.w_0", "linear_8.b_0"


def rec_model_path(name: str = "PP-OCRv6_rec_small") -> Path:
    """rapidocr's recogniser ONNX file, or the file named by GEMMA_OCR_PPOCR_REC (a machine without rapidocr,
    e.g. the GPU machine, is sent the same graph)."""
    import os

    env = os.environ.get("GEMMA_OCR_PPOCR_REC")
    if env:
        if not Path(env).is_file():
            raise FileNotFoundError(f"GEMMA_OCR_PPOCR_REC={env}: no such file")
        return Path(env)
    try:
        import rapidocr
    except ImportError as exc:  # pragma: no cover - rapidocr is a requirement
        raise ImportError(f"the PP-OCRv6 vision tower needs rapidocr ({exc}); to fix: pip install rapidocr==3.10.0") from None
    p = Path(rapidocr.__file__).parent / "models" / f"{name}.onnx"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: rapidocr has no {name}.onnx (rapidocr 3.10 ships PP-OCRv6_rec_small)")
    return p


@functools.lru_cache(maxsize=2)
def _onnx(name: str):
    """The recogniser graph; float16 weights (a half-size copy made to travel) are widened to float32."""
    import numpy as np
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(rec_model_path(name)))
    for t in model.graph.initializer:
        if t.data_type == TensorProto.FLOAT16:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))
    return model


def half_copy(dst: str | Path, name: str = "PP-OCRv6_rec_small") -> Path:
    """rapidocr's recogniser with float16 weights (half the bytes: what travels to a machine without rapidocr;
    `_onnx` widens it back). Training starts from these rounded weights there; a checkpoint overrides them."""
    import numpy as np
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(rec_model_path(name)))
    for t in model.graph.initializer:
        if t.data_type == TensorProto.FLOAT:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    onnx.save(model, str(dst))
    return Path(dst)


def ppocr_characters(name: str = "PP-OCRv6_rec_small") -> list[str]:
    """The recogniser's classes: 'blank' (CTC blank, class 0), its dictionary, then ' ' (rapidocr's order)."""
    meta = {p.key: p.value for p in _onnx(name).metadata_props}
    return ["blank"] + meta["character"].splitlines() + [" "]


def _backbone(name: str) -> nn.Module:
    """A fresh copy of the recogniser up to its CTC head, on the CPU (also when transformers constructs the
    model on the meta device: the graph's constants must be real; the checkpoint's weights replace them)."""
    import copy

    with torch.device("cpu"):
        return copy.deepcopy(_converted(name))


# onnx2torch modules that import torchvision at import time, for ops the recogniser does not have
_TORCHVISION_CONVERTERS = ("onnx2torch.node_converters.nms", "onnx2torch.node_converters.roialign")


def _onnx2torch_convert():
    """`onnx2torch.convert`, importable without torchvision (the one place that touches onnx2torch's internals).
    onnx2torch 1.5.x declares torchvision and imports it in its NonMaxSuppression and RoiAlign converters; installing
    torchvision pulls a CUDA torch over the CPU one. Where torchvision is absent those two converter modules are
    registered empty, so a graph with those ops fails in `convert` with onnx2torch's own "not implemented" error."""
    import sys
    import types

    try:
        from onnx2torch import convert
        return convert
    except ModuleNotFoundError as err:
        if err.name == "onnx2torch":
            raise ModuleNotFoundError("onnx2torch is not installed: pip install --no-deps onnx2torch==1.5.15") from None
        if err.name != "torchvision" and not (err.name or "").startswith("torchvision."):
            raise
    for name in [m for m in sys.modules if m == "onnx2torch" or m.startswith("onnx2torch.")]:
        del sys.modules[name]  # the failed import left a half-initialised package behind
    for name in _TORCHVISION_CONVERTERS:
        sys.modules[name] = types.ModuleType(name, "stand-in: needs torchvision, not installed")
    from onnx2torch import convert
    return convert


@functools.lru_cache(maxsize=2)
def _converted(name: str) -> nn.Module:
    """The recogniser up to its CTC head, as a torch.fx module (onnx2torch). Two 2 x 2 stride-1 ops use
    SAME_UPPER auto-padding, which onnx2torch lacks: they get the explicit pads it stands for (0 before, 1 after)."""
    import onnx
    from onnx import helper

    convert = _onnx2torch_convert()
    model = onnx.utils.Extractor(_onnx(name)).extract_model(["x"], [HEAD_INPUT])
    for node in model.graph.node:
        auto = [a for a in node.attribute if a.name == "auto_pad"]
        if auto and auto[0].s == b"SAME_UPPER":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            k, s = list(attrs.get("kernel_shape", [])), list(attrs.get("strides", [1, 1]))
            if k != [2, 2] or s != [1, 1]:
                raise NotImplementedError(f"{name}: SAME_UPPER {node.op_type} with kernel {k}, strides {s}")
            node.attribute.remove(auto[0])
            node.attribute.append(helper.make_attribute("pads", [0, 0, 1, 1]))
    with torch.device("cpu"):
        return convert(model).eval()


def _head_weights(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    from onnx import numpy_helper

    init = {t.name: t for t in _onnx(name).graph.initializer if t.name in (HEAD_WEIGHT, HEAD_BIAS)}
    return (torch.from_numpy(numpy_helper.to_array(init[HEAD_WEIGHT]).copy()),
            torch.from_numpy(numpy_helper.to_array(init[HEAD_BIAS]).copy()))


class PPOCRVisionConfig(PretrainedConfig):
    model_type = "ppocr_rec_vision"

    def __init__(self, hidden_size: int = 256, image_size: int = 256, patch_size: int = 16, layer_norm_eps: float = 1e-6,
                 row_height: int = 32, rows: int = 8, rec_height: int = 48, rec_model: str = "PP-OCRv6_rec_small",
                 feature_dim: int = 120, n_classes: int = 18710, top_k: int = 4, ink_level: float = 0.5,
                 end_margin: int = 24, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size, self.image_size, self.patch_size = hidden_size, image_size, patch_size
        self.layer_norm_eps = layer_norm_eps
        self.row_height, self.rows, self.rec_height = row_height, rows, rec_height
        self.rec_model, self.feature_dim, self.n_classes, self.top_k = rec_model, feature_dim, n_classes, top_k
        self.ink_level, self.end_margin = ink_level, end_margin  # normalised pixel below which a column is inked
        self.num_hidden_layers = 0     # no transformer layers: FLOP formulas count its parameters only
        self.num_attention_heads = 1


class PPOCRVisionModel(PreTrainedModel):
    config_class = PPOCRVisionConfig
    main_input_name = "pixel_values"
    base_model_prefix = "ppocr_vision"
    _no_split_modules: list[str] = []
    _supports_sdpa = True

    def __init__(self, config: PPOCRVisionConfig):
        super().__init__(config)
        self.backbone = _backbone(config.rec_model)
        self.head = nn.Linear(config.feature_dim, config.n_classes)
        self.char_embed = nn.Parameter(torch.zeros(config.n_classes, config.hidden_size))
        self.feat_proj = nn.Linear(config.feature_dim, config.hidden_size)
        self.end = nn.Parameter(torch.zeros(config.hidden_size))
        self.post_init()

    @property
    def n_slots(self) -> int:
        return (self.config.image_size // self.config.patch_size) ** 2

    def _init_weights(self, module):
        # Nothing random: the backbone and head come from PP-OCRv6 (load_recogniser) or from a checkpoint.
        return

    def load_recogniser(self) -> None:
        """PP-OCRv6's own weights into the backbone and the CTC head (a fresh tower; a checkpoint overrides)."""
        fresh = _backbone(self.config.rec_model)
        self.backbone.load_state_dict(fresh.state_dict())
        w, b = _head_weights(self.config.rec_model)
        with torch.no_grad():
            self.head.weight.copy_(w.T)
            self.head.bias.copy_(b)
            self.feat_proj.weight.zero_()
            self.feat_proj.bias.zero_()

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.backbone.modules():   # batch statistics of folded lines (mostly paper) would drift them
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    def unfold(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, 3, rows*row_height, W] folded squares -> [B, 3, rec_height, ~] BGR lines at PP-OCRv6's height."""
        c = self.config
        B, C, H, W = pixel_values.shape
        R, h = c.rows, c.row_height
        if H != R * h:
            raise ValueError(f"PP-OCRv6 vision tower: expected {R} rows of {h} px ({R * h} px high), got {H} px")
        line = pixel_values.reshape(B, C, R, h, W).permute(0, 1, 3, 2, 4).reshape(B, C, h, R * W)
        line = line.flip(1)
        width = R * W * c.rec_height // h
        line = nn.functional.interpolate(line, size=(c.rec_height, width), mode="bilinear", align_corners=False)
        # The fold fills the rest of the square with paper; PP-OCRv6 reads a line padded with zeros (mid grey after
        # normalisation) to the batch's widest line, and a long white tail makes it drop characters. So: each line
        # ends a little after its last ink, the batch is as wide as its widest line (at least PP-OCRv6's 320 px),
        # and what lies beyond a line's end is zero.
        col = torch.arange(width, device=line.device)
        inked = (line.amin(dim=(1, 2)) < c.ink_level)                   # [B, width]: a column with dark ink
        last = torch.where(inked, col[None], torch.full_like(col[None], -1)).amax(1)
        ends = (last + 1 + c.end_margin).clamp(min=1, max=width)
        batch_w = min(width, max(320, -(-int(ends.max()) // 32) * 32))
        line = line[..., :batch_w]
        return line.masked_fill((col[None, :batch_w] >= ends[:, None])[:, None, None, :], 0.0)

    def forward(self, pixel_values: torch.Tensor, output_hidden_states=None, return_dict=True, **kwargs):
        dtype = self.head.weight.dtype
        feats = self.backbone(self.unfold(pixel_values.to(dtype)))          # [B, T, feature_dim]
        logits = self.head(feats)                                          # [B, T, n_classes]
        ids = logits.argmax(-1)
        prev = nn.functional.pad(ids, (1, 0), value=0)[:, :-1]
        keep = (ids != 0) & (ids != prev)
        top_logits, top = logits.float().topk(self.config.top_k, dim=-1)
        probs = torch.exp(top_logits - torch.logsumexp(logits.float(), -1, keepdim=True))
        tok = (probs.to(dtype)[..., None] * self.char_embed[top]).sum(-2) + self.feat_proj(feats)
        S = self.n_slots
        slot = torch.cumsum(keep.long(), 1) - 1
        slot = torch.where(keep & (slot < S), slot, torch.full_like(slot, S))  # slot S: the discarded steps
        B, T, D = tok.shape
        base = self.end.to(tok.dtype).expand(B, S + 1, D)
        out = base.scatter(1, slot[..., None].expand(B, T, D), tok)[:, :S]
        return BaseModelOutputWithPooling(last_hidden_state=out, pooler_output=None)


@functools.lru_cache(maxsize=1)
def register() -> None:
    """Teach AutoConfig / AutoModel the `ppocr_rec_vision` type (idempotent)."""
    from transformers import AutoConfig, AutoModel

    AutoConfig.register(PPOCRVisionConfig.model_type, PPOCRVisionConfig, exist_ok=True)
    AutoModel.register(PPOCRVisionConfig, PPOCRVisionModel, exist_ok=True)


def _gemma3_config(config: dict):
    """A Gemma3Config whose vision_config is the PP-OCRv6 tower's. Where transformers turns every Gemma 3
    vision_config dict into SigLIP's (5.17), the sub-config is set after construction, past its type check."""
    import copy

    from transformers import Gemma3Config

    register()
    d = copy.deepcopy(config)
    pv = PPOCRVisionConfig(**{k: v for k, v in d["vision_config"].items() if k != "model_type"})
    d["vision_config"] = pv.to_dict()
    cfg = Gemma3Config.from_dict(d)
    if not isinstance(cfg.vision_config, PPOCRVisionConfig):
        # 5.17's strict dataclass setter accepts only SigLIP here; the model and its saving read any config
        object.__setattr__(cfg, "vision_config", pv)
    return cfg


def new_reader_model(config: dict):
    """A Gemma3ForConditionalGeneration with the PP-OCRv6 tower from a config dict (fresh weights)."""
    from transformers import Gemma3ForConditionalGeneration

    return Gemma3ForConditionalGeneration(_gemma3_config(config))


def load_reader_model(path: str | Path, dtype=torch.float32):
    """`Gemma3ForConditionalGeneration.from_pretrained(path)` for any reader folder, on any transformers 5.x."""
    import json

    from transformers import Gemma3ForConditionalGeneration

    register()
    cfg = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    if cfg.get("vision_config", {}).get("model_type") != PPOCRVisionConfig.model_type:
        return Gemma3ForConditionalGeneration.from_pretrained(path, dtype=dtype)
    return Gemma3ForConditionalGeneration.from_pretrained(path, config=_gemma3_config(cfg), dtype=dtype)


def build_ppocr_reader(base: str | Path, out_dir: str | Path) -> dict:
    """A reader with PP-OCRv6's recogniser as its eye: `base`'s language model, tokenizer and processor, a new
    vision tower (PP-OCRv6 weights; class vectors from `base`'s token embeddings) and a projector that passes a
    slot's vector on at the scale of the text embeddings. Returns a summary."""
    from transformers import AutoProcessor, Gemma3ForConditionalGeneration

    from lib.models.embedded import resolve_model_path
    from lib.reader.preprocess import copy_reader_config

    register()
    base_dir = resolve_model_path(str(base))
    src = load_reader_model(base_dir, torch.float32)
    processor = AutoProcessor.from_pretrained(base_dir)
    tok = processor.tokenizer
    cfg = src.config.to_dict()
    H = cfg["text_config"]["hidden_size"]
    cfg["vision_config"] = PPOCRVisionConfig(hidden_size=H).to_dict()
    cfg["mm_tokens_per_image"] = 256
    model = new_reader_model(cfg)
    missing = model.load_state_dict({k: v for k, v in src.state_dict().items()
                                     if not k.startswith(("model.vision_tower.", "model.multi_modal_projector."))},
                                    strict=False)
    vt = model.model.vision_tower
    vt.load_recogniser()
    emb = src.get_input_embeddings().weight.detach()
    chars = ppocr_characters(vt.config.rec_model)
    ids = tok.convert_tokens_to_ids(chars)
    unk = tok.unk_token_id
    known = 0
    with torch.no_grad():
        vt.char_embed.zero_()
        for j, (ch, t) in enumerate(zip(chars, ids)):
            if j == 0 or t is None or t == unk:
                continue
            vt.char_embed[j] = emb[t]
            known += 1
        vt.end.copy_(emb[tok.convert_tokens_to_ids("<end_of_turn>")])
        proj = model.model.multi_modal_projector
        proj.mm_soft_emb_norm.weight.zero_()
        # RMS-normed slot vector x the text path's scale (sqrt(H) x the embeddings' RMS) = a text embedding's size
        scale = float(H ** 0.5 * emb.pow(2).mean(-1).sqrt().mean())
        proj.mm_input_projection_weight.copy_(torch.eye(H) * scale)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, max_shard_size="14MB")
    processor.save_pretrained(out)
    copy_reader_config(base_dir, out)
    n_vis = sum(p.numel() for p in vt.parameters())
    n_all = sum(p.numel() for p in model.parameters())
    return {"output_dir": str(out), "base": base_dir, "ppocr_classes": len(chars), "classes_in_vocab": known,
            "vision_params": n_vis, "params": n_all, "missing_keys": len(missing.missing_keys)}
