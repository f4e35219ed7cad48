"""Training-speed measurement: model shapes, synthetic OCR workloads, the FLOP formula and a step timer.

Used by `core/benchmarks/bench_train.py` (and its tests) to time *the project's own* training path and plain TRL on
the same samples. Nothing here trains; it builds inputs and counts.

- `GEMMA3_SHAPES`: Gemma-3-4B / 12B-shaped configs (the published sizes; weights random - speed does not depend on
  them) and a tiny shape for CPU checks.
- `bench_processor(shape)`: a `Gemma3Processor` with the shape's image size and image-token count, on the embedded
  character-level tokenizer (no hub). Its special-token ids are the ones `build_gemma3_vlm` puts in the config.
- `write_ocr_workload(...)`: one image + a 500-2000-token answer per row, written as PNG + a raw-format JSON that
  `lib.data.load_samples` reads - the same data path training uses.
- `train_flops(...)`: useful FLOPs of one training sequence (the formula is stated in `train_flops`).
- `StepTimer`: a `transformers.TrainerCallback` that times steps after a warm-up with device syncs and records peak
  memory; `StepProfiler`: one that runs `torch.profiler` over a few later steps (device busy share, top operators).

Not for: training (lib/train) or evaluation.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re
import time
from pathlib import Path
from typing import Any, Sequence

__all__ = ["GEMMA3_SHAPES", "H100_BF16_PEAK_FLOPS", "bench_processor", "gemma3_text_config", "build_gemma3_vlm",
           "write_ocr_workload",
           "ModelCounts", "model_counts", "train_flops", "attention_pairs", "StepTimer", "StepProfiler", "BatchRecorder"]

# Dense bf16 matrix-product rate measured on the lent H100 (KINDS.md: 8192^3 bf16 matmul, 798 TFLOP/s).
H100_BF16_PEAK_FLOPS = 798e12

# Published Gemma 3 sizes (google/gemma-3-{4b,12b}-it config.json). Vision: SigLIP so400m/14 at 896 px -> 4096 patches,
# average-pooled to 256 image tokens.
_SIGLIP_896 = dict(vision_hidden=1152, vision_intermediate=4304, vision_layers=27, vision_heads=16, image_size=896,
                   patch_size=14, mm_tokens=256)
GEMMA3_SHAPES: dict[str, dict[str, Any]] = {
    "4b": dict(text_hidden=2560, text_intermediate=10240, text_layers=34, text_heads=8, text_kv_heads=4, head_dim=256,
               vocab_size=262_208, sliding_window=1024, sliding_pattern=6, **_SIGLIP_896),
    "12b": dict(text_hidden=3840, text_intermediate=15360, text_layers=48, text_heads=16, text_kv_heads=8,
                head_dim=256, vocab_size=262_208, sliding_window=1024, sliding_pattern=6, **_SIGLIP_896),
    # CPU check shape: every mechanism of the big ones (sliding + global layers, pooling 4x4 -> 4, big-ish vocab).
    "tiny": dict(text_hidden=64, text_intermediate=128, text_layers=3, text_heads=2, text_kv_heads=1, head_dim=32,
                 vocab_size=32_000, sliding_window=64, sliding_pattern=3, vision_hidden=32, vision_intermediate=64,
                 vision_layers=2, vision_heads=2, image_size=64, patch_size=8, mm_tokens=16),
}


def bench_processor(shape: str):
    """A Gemma3Processor for `shape`: the embedded character-level tokenizer (one Hanzi = one token), the shape's
    image size and `mm_tokens` image tokens per image."""
    from transformers import AutoProcessor, Gemma3ImageProcessorPil, Gemma3Processor

    from lib.models.embedded import resolve_model_path

    s = GEMMA3_SHAPES[shape]
    base = AutoProcessor.from_pretrained(resolve_model_path("embedded/tiny-gemma3"))
    tok = base.tokenizer
    image_processor = Gemma3ImageProcessorPil(size={"height": s["image_size"], "width": s["image_size"]},
                                              do_pan_and_scan=False, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return Gemma3Processor(image_processor=image_processor, tokenizer=tok, chat_template=base.chat_template,
                           image_seq_length=s["mm_tokens"])


def gemma3_text_config(shape: str, *, num_layers: int | None = None, vocab_size: int | None = None,
                       layer_types: list[str] | None = None, **token_ids):
    """The `Gemma3TextConfig` of `shape`'s language model: its widths, Gemma 3's 5 sliding-window layers per global
    one, and its rope settings. `num_layers` / `vocab_size` / `layer_types` override the shape's (a few layers of
    the real width for per-layer measurements); `token_ids` are pad/bos/eos ids."""
    from transformers import Gemma3TextConfig

    if shape not in GEMMA3_SHAPES:
        raise ValueError(f"unknown shape {shape!r}; known: {sorted(GEMMA3_SHAPES)}")
    s = GEMMA3_SHAPES[shape]
    n = num_layers or s["text_layers"]
    layer_types = layer_types or ["full_attention" if (i + 1) % s["sliding_pattern"] == 0 else "sliding_attention"
                                  for i in range(n)]
    return Gemma3TextConfig(
        vocab_size=vocab_size or s["vocab_size"], hidden_size=s["text_hidden"],
        intermediate_size=s["text_intermediate"], num_hidden_layers=n, num_attention_heads=s["text_heads"],
        num_key_value_heads=s["text_kv_heads"], head_dim=s["head_dim"], query_pre_attn_scalar=s["head_dim"],
        sliding_window=s["sliding_window"], layer_types=layer_types, max_position_embeddings=131_072,
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0}},
        **token_ids)


def build_gemma3_vlm(shape: str, processor, *, dtype=None, device=None, attn_implementation: str = "sdpa", seed: int = 0):
    """A random-init `Gemma3ForConditionalGeneration` of `shape`, built directly on `device` in `dtype`. The
    token ids of the image/turn markers are the processor's; the vocabulary is the shape's (262,208 for 4B/12B,
    so the output head costs what the real one does)."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, SiglipVisionConfig

    s = GEMMA3_SHAPES[shape]
    tok = processor.tokenizer
    if len(tok) > s["vocab_size"]:
        raise ValueError(f"tokenizer has {len(tok)} tokens, more than shape {shape}'s vocab_size {s['vocab_size']}")
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<pad>", "<bos>", "<eos>", "<end_of_turn>", "<start_of_image>",
                                                      "<end_of_image>", "<image_soft_token>")}
    text = gemma3_text_config(shape, pad_token_id=ids["<pad>"], bos_token_id=ids["<bos>"],
                              eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]])
    vision = SiglipVisionConfig(hidden_size=s["vision_hidden"], intermediate_size=s["vision_intermediate"],
                                num_hidden_layers=s["vision_layers"], num_attention_heads=s["vision_heads"],
                                image_size=s["image_size"], patch_size=s["patch_size"], vision_use_head=False)
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=s["mm_tokens"],
                          boi_token_index=ids["<start_of_image>"], eoi_token_index=ids["<end_of_image>"],
                          image_token_index=ids["<image_soft_token>"])
    config.architectures = ["Gemma3ForConditionalGeneration"]
    config._attn_implementation = attn_implementation
    dtype = dtype or torch.bfloat16
    torch.manual_seed(seed)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device or "cpu"):
            model = Gemma3ForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(prev)
    # The projector starts at zeros in transformers; give it values so image features reach the LM (and the
    # loss/gradient comparison sees the vision path).
    with torch.no_grad():
        w = model.model.multi_modal_projector.mm_input_projection_weight
        w.normal_(0.0, 1.0 / math.sqrt(w.shape[0]))
    model.config.use_cache = False
    return model


def quantize_language_model_4bit(model, compute_dtype=None) -> int:
    """QLoRA's base: replace every `nn.Linear` of the language model's decoder layers by a bitsandbytes NF4
    `Linear4bit` (double quantization, bf16 compute), as `from_pretrained(..., load_in_4bit=True)` with
    `lib.modeling.NOT_QUANTIZED_MODULES` does; vision tower, projector, embeddings and lm_head stay as they are.
    Quantizes on the model's CUDA device. Returns the number of layers replaced."""
    import bitsandbytes as bnb
    import torch

    compute_dtype = compute_dtype or torch.bfloat16
    lm = model.model.language_model
    n = 0
    for parent in list(lm.modules()):
        for cname, child in list(parent.named_children()):
            if type(child) is not torch.nn.Linear:
                continue
            dev = child.weight.device
            q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                  compute_dtype=compute_dtype, compress_statistics=True, quant_type="nf4",
                                  device="meta")
            q.weight = bnb.nn.Params4bit(child.weight.data, requires_grad=False, compress_statistics=True,
                                         quant_type="nf4")
            if child.bias is not None:
                q.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
            q = q.to(dev)  # quantizes
            setattr(parent, cname, q)
            n += 1
    model.is_loaded_in_4bit = True  # what peft / TRL look for to run prepare_model_for_kbit_training
    model.config.quantization_config = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "quant_method": "bitsandbytes",
                                        "bnb_4bit_use_double_quant": True, "bnb_4bit_compute_dtype": "bfloat16"}
    torch.cuda.empty_cache()
    return n


# ---------------------------------------------------------------------------------------------------------------
# Workload

_HANZI = [chr(c) for c in range(0x4E00, 0x4E00 + 6000)]
_PUNCT = list("，。、；：「」（）")


def _ocr_image(size: int, n_lines: int, rng: random.Random):
    """White page with dark text-line-like strokes (compresses like a scan; content is irrelevant to speed)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    line_h = max(2, size // max(n_lines + 2, 3))
    y = line_h
    for _ in range(n_lines):
        x = line_h
        while x < size - line_h:
            w = rng.randint(max(1, line_h // 2), max(2, line_h))
            draw.rectangle([x, y, x + w - 1, y + max(1, int(line_h * 0.7))], fill=(rng.randint(0, 60),) * 3)
            x += w + max(1, line_h // 4)
        y += line_h
        if y > size - line_h:
            break
    return img


def write_ocr_workload(out_dir: str | Path, n: int, *, min_tokens: int, max_tokens: int, image_size: int,
                       seed: int = 0) -> Path:
    """Write `n` rows {img_path, ocr_results} + PNGs under `out_dir`; answer lengths uniform in [min, max] characters
    (one token each with the character-level tokenizer), with a newline every ~40 characters like paragraph OCR.
    Returns the JSON path."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        length = rng.randint(min_tokens, max_tokens)
        chars = []
        for j in range(length):
            if j and j % 40 == 0:
                chars.append("\n")
            elif rng.random() < 0.06:
                chars.append(rng.choice(_PUNCT))
            else:
                chars.append(rng.choice(_HANZI))
        name = f"images/ocr_{i:04d}.png"
        _ocr_image(image_size, n_lines=max(1, length // 40), rng=rng).save(out / name)
        rows.append({"img_path": name, "ocr_results": "".join(chars), "doc_id": f"bench{i:04d}", "element": "text"})
    path = out / "workload.json"
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------------------
# FLOPs

@dataclasses.dataclass
class ModelCounts:
    lm_linear: int  # parameters of the language model's nn.Linear layers (no embedding, no head)
    vision_linear: int  # vision tower linears + patch-embedding conv + projector matmul
    vocab: int
    hidden: int
    n_heads: int
    head_dim: int
    layer_windows: list  # per LM layer: None (global) or the sliding window
    vision_tokens: int  # patches per image
    vision_layers: int
    vision_width: int  # heads * head_dim in the vision tower
    trainable: int  # parameters with requires_grad (LoRA adapters, or everything for full fine-tuning)
    full_ft: bool


def model_counts(model) -> ModelCounts:
    """Count what the FLOP formula needs from a (possibly PEFT-wrapped) Gemma 3 VLM."""
    import torch

    base = model
    while hasattr(base, "get_base_model") and base is not base.get_base_model():
        base = base.get_base_model()
    cfg = base.config
    tc, vc = cfg.text_config, cfg.vision_config
    lm = base.model.language_model
    vt = base.model.vision_tower

    def linear_params(mod) -> int:
        total = 0
        for name, m in mod.named_modules():
            if isinstance(m, torch.nn.Linear) and "lora_" not in name:
                total += m.in_features * m.out_features
        return total

    vis = linear_params(vt)
    vis += sum(m.weight.numel() for m in vt.modules() if isinstance(m, torch.nn.Conv2d))
    vis += base.model.multi_modal_projector.mm_input_projection_weight.numel() * cfg.mm_tokens_per_image / (
        (vc.image_size // vc.patch_size) ** 2)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lm_total = sum(p.numel() for n, p in base.named_parameters() if "lora_" not in n)
    windows = [tc.sliding_window if t == "sliding_attention" else None for t in tc.layer_types]
    return ModelCounts(lm_linear=linear_params(lm), vision_linear=int(vis), vocab=tc.vocab_size, hidden=tc.hidden_size,
                       n_heads=tc.num_attention_heads, head_dim=tc.head_dim, layer_windows=windows,
                       vision_tokens=(vc.image_size // vc.patch_size) ** 2, vision_layers=vc.num_hidden_layers,
                       vision_width=vc.hidden_size, trainable=trainable, full_ft=trainable > 0.5 * lm_total)


def attention_pairs(length: int, window: int | None) -> int:
    """(query, key) pairs a causal layer computes for one sequence: sum over i of min(i + 1, window)."""
    if window is None or window >= length:
        return length * (length + 1) // 2
    return window * (window + 1) // 2 + (length - window) * window


def train_flops(c: ModelCounts, seq_len: int, loss_tokens: int, n_images: int) -> float:
    """Useful FLOPs of one training sequence (checkpoint recompute not counted):

    - LM linears: LoRA 4*N*T (forward + input-gradient backward, weights frozen) + 6*N_lora*T; full 6*N*T.
    - LM attention: 3 x (2 matmuls x 2 FLOPs x pairs x heads x head_dim) per layer, pairs per `attention_pairs`
      (sliding window on local layers).
    - output head on loss tokens only: 4*V*H*L (LoRA, tied/frozen head) or 6*V*H*L (full).
    - vision tower forward (frozen): 2*N_vision*patches + 4*patches^2*width per layer, per image.
    """
    lin = (6 if c.full_ft else 4) * c.lm_linear * seq_len + (0 if c.full_ft else 6 * c.trainable * seq_len)
    attn = sum(3 * 4 * attention_pairs(seq_len, w) * c.n_heads * c.head_dim for w in c.layer_windows)
    head = (6 if c.full_ft else 4) * c.vocab * c.hidden * loss_tokens
    vision = n_images * (2 * c.vision_linear * c.vision_tokens + c.vision_layers * 4 * c.vision_tokens ** 2 * c.vision_width)
    return float(lin + attn + head + vision)


# ---------------------------------------------------------------------------------------------------------------
# Timing

class BatchRecorder:
    """Wraps a Trainer's `training_step` to record, per micro-batch, the real sequence lengths, loss tokens and
    images (device reductions kept as tensors: no host sync inside the timed loop; resolved in `summary`)."""

    def __init__(self, trainer):
        self.records: list[tuple[Any, Any, int]] = []
        self.marks: list[int] = []
        orig = trainer.training_step

        def training_step(model, inputs, *args, **kwargs):
            self.records.append(self._reduce(inputs))
            return orig(model, inputs, *args, **kwargs)

        trainer.training_step = training_step

    @staticmethod
    def _reduce(inputs):
        import torch

        ids = inputs["input_ids"]
        labels = inputs.get("labels")
        if "cu_seq_lens_q" in inputs:
            lens = inputs["cu_seq_lens_q"].diff()
        elif inputs.get("seq_lens") is not None:
            lens = inputs["seq_lens"]
        elif isinstance(inputs.get("attention_mask"), torch.Tensor) and inputs["attention_mask"].dim() == 2:
            lens = inputs["attention_mask"].sum(-1)
        else:
            lens = torch.full((ids.shape[0],), ids.shape[1], device=ids.device)
        n_loss = (labels[..., 1:] != -100).sum() if labels is not None else ids.new_zeros(())
        pv = inputs.get("pixel_values")
        n_img = 0 if pv is None else int(pv.shape[0])
        return lens.detach(), n_loss.detach(), n_img

    def mark(self):
        self.marks.append(len(self.records))

    def summary(self, counts: ModelCounts, start: int, end: int) -> dict:
        """Totals over micro-batches [start, end): sequences, tokens, loss tokens, images, useful FLOPs."""
        seqs = toks = loss = imgs = 0
        flops = 0.0
        for lens, n_loss, n_img in self.records[start:end]:
            lens = [int(x) for x in lens.cpu().tolist()]
            n_loss = int(n_loss.cpu())
            seqs += len(lens)
            toks += sum(lens)
            loss += n_loss
            imgs += n_img
            # loss tokens and images are spread over the sequences in proportion; head/vision terms are linear.
            for i, L in enumerate(lens):
                flops += train_flops(counts, L, 0, 0)
            flops += train_flops(counts, 0, n_loss, n_img)
        return {"sequences": seqs, "tokens": toks, "loss_tokens": loss, "images": imgs, "flops": flops}


def _sync():
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
    except ImportError:  # pragma: no cover
        pass


def StepTimer(warmup_steps: int, recorder: BatchRecorder | None = None, last_step: int | None = None):
    """A TrainerCallback timing optimizer steps after `warmup_steps` up to `last_step` (default: the end; later steps,
    e.g. profiled ones, are not timed), synchronising the device at both ends, and reading peak allocated GPU memory
    over the whole run (weights + optimizer + activations)."""
    from transformers import TrainerCallback

    class _StepTimer(TrainerCallback):
        def __init__(self):
            self.t0 = self.t1 = None
            self.steps_timed = 0
            self.step_times: list[float] = []
            self._last = None
            self.first_record = self.last_record = 0

        def on_train_begin(self, args, state, control, **kw):
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()

        def on_step_end(self, args, state, control, **kw):
            if state.global_step == warmup_steps:
                _sync()
                self.t0 = self._last = time.perf_counter()
                if recorder is not None:
                    self.first_record = len(recorder.records)
            elif state.global_step > warmup_steps and (last_step is None or state.global_step <= last_step):
                _sync()
                now = time.perf_counter()
                self.step_times.append(now - self._last)
                self._last = self.t1 = now
                self.steps_timed = state.global_step - warmup_steps
                if recorder is not None:
                    self.last_record = len(recorder.records)

        def peak_gib(self) -> float:
            import torch

            return torch.cuda.max_memory_allocated() / 2 ** 30 if torch.cuda.is_available() else float("nan")

        def seconds(self) -> float:
            return (self.t1 - self.t0) if self.t0 is not None and self.t1 is not None else float("nan")

    return _StepTimer()


def StepProfiler(first_step: int, n_steps: int, top: int = 12, trace_path: str = ""):
    """A TrainerCallback that runs `torch.profiler` over optimizer steps first_step+1 .. first_step+n_steps and keeps,
    per profiled step: wall seconds, kernel time on the device (sum of the kernels' own time; less than the wall time
    by what the device sat idle, waiting for the host), the device time by kind of kernel (`kernel_classes`), and the
    operators that took the most device and host time. With `trace_path` (ending in .json.gz) the Chrome trace is
    written there too. `summary()` is None until the profiled steps ran."""
    from transformers import TrainerCallback

    class _StepProfiler(TrainerCallback):
        def __init__(self):
            self.prof = None
            self.t0 = None
            self.result: dict | None = None

        def on_step_end(self, args, state, control, **kw):
            import torch

            if state.global_step == first_step and n_steps > 0:
                _sync()
                acts = [torch.profiler.ProfilerActivity.CPU]
                if torch.cuda.is_available():
                    acts.append(torch.profiler.ProfilerActivity.CUDA)
                self.prof = torch.profiler.profile(activities=acts)
                self.prof.__enter__()
                self.t0 = time.perf_counter()
            elif self.prof is not None and state.global_step == first_step + n_steps:
                _sync()
                wall = time.perf_counter() - self.t0
                self.prof.__exit__(None, None, None)
                self.result = _profile_summary(self.prof, n_steps, wall, top)
                if trace_path:
                    _write_trace(self.prof, trace_path)
                    self.result["trace"] = trace_path
                self.prof = None

        def summary(self) -> dict | None:
            return self.result

    return _StepProfiler()


def _write_trace(prof, path: str) -> None:
    import gzip
    import os
    import shutil
    import tempfile

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(tmp)
        with open(tmp, "rb") as src, gzip.open(path, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst)
    finally:
        os.unlink(tmp)


# Kernel name patterns -> kind, first match wins (cuBLAS/CUTLASS GEMMs, attention kernels of cuDNN/flash/efficient
# SDPA, inductor's Triton kernels, copies). Everything else is "other" (eager elementwise, reductions, optimizer).
KERNEL_CLASSES = (
    ("attention", re.compile(r"fmha|flash|cudnn|attention|sdpa|_attn|efficient_attention", re.I)),
    ("matmul", re.compile(r"gemm|cutlass|xmma|sm90_|sm80_|nvjet|matmul|splitk", re.I)),
    ("triton (compiled)", re.compile(r"^triton_|triton", re.I)),
    ("copy/fill", re.compile(r"memcpy|memset|copy_|fill|cat", re.I)),
)


def kernel_class(name: str) -> str:
    for kind, pat in KERNEL_CLASSES:
        if pat.search(name):
            return kind
    return "other"


def _profile_summary(prof, n_steps: int, wall: float, top: int) -> dict:
    events = prof.key_averages()

    def dev(e) -> float:  # microseconds of the op's own device time (the attribute's name moved across torch versions)
        return float(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0)) or 0.0)

    def row(e) -> dict:
        return {"name": e.key[:90], "calls_per_step": e.count / n_steps,
                "self_device_ms_per_step": dev(e) / 1e3 / n_steps,
                "self_cpu_ms_per_step": float(e.self_cpu_time_total) / 1e3 / n_steps}

    kernels = [e for e in events if getattr(e, "device_type", None) is not None and str(e.device_type).endswith("CUDA")]
    device_ms = sum(dev(e) for e in kernels) / 1e3 / n_steps
    classes: dict[str, float] = {}
    for e in kernels:
        k = kernel_class(e.key)
        classes[k] = classes.get(k, 0.0) + dev(e) / 1e3 / n_steps
    by_dev = sorted((e for e in events if dev(e) > 0), key=dev, reverse=True)[:top]
    by_cpu = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {"steps": n_steps, "wall_ms_per_step": 1e3 * wall / n_steps, "device_kernel_ms_per_step": device_ms,
            "device_busy_share": device_ms / (1e3 * wall / n_steps) if wall > 0 else float("nan"),
            "kernel_classes_ms_per_step": dict(sorted(classes.items(), key=lambda kv: -kv[1])),
            "top_device": [row(e) for e in by_dev], "top_cpu": [row(e) for e in by_cpu]}
