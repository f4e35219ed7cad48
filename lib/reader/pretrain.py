"""Pretraining the reader: text lines rendered on the training device, one fused loop, checkpoints that travel.

Why a loop of its own and not the Trainer: the reader is small (14.6 M parameters) and its samples are made on the
fly, so what limits it is everything around the model - image decoding, collation, host-device copies, per-step
Python. Here the host only draws strings (DataLoader workers), the GPU renders them (`LineRenderer`), and every
sequence has one fixed prefix (the chat template with the image tokens, built once by the processor, so it is
token for token what `core/sft_gemma.py` and `core/evaluate.py` feed the model), so a step is one forward/backward
over fixed shapes with the loss on answer positions only (`logits_to_keep`). The model stays a plain
`Gemma3ForConditionalGeneration`: the checkpoint loads and fine-tunes through `core/sft_gemma.py` like any other.

Across calls: `init` may be a saved folder; the step count, samples seen and the learning curve continue from its
`pretrain_state.json` (AdamW's moments do not travel - 2x the weights in fp32 - so each call re-warms for
`warmup_steps`). The learning rate is constant after warm-up and decays linearly to `final_lr_frac` over the last
`anneal_frac` of the call's time budget, so every call ends on an annealed checkpoint.

Not for: fine-tuning on labelled data (core/sft_gemma.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from lib.reader.glyphs import PRETRAIN_HELD_OUT, Atlas, load_atlas
from lib.reader.synth import LineBatch, LineRenderer
from lib.reader.text import TEST_DOC_SEED0, LineSampler, gongwen_lines

log = logging.getLogger(__name__)

__all__ = ["PretrainConfig", "ReaderBatches", "SequenceBuilder", "pretrain", "make_eval_set", "greedy_read",
           "load_pool", "test_pool_seeds", "train_step"]


@dataclasses.dataclass
class PretrainConfig:
    init: str = "embedded/gemma3-reader-init"
    atlas: str = ".device_carry/atlas_pretrain.npz"
    output_dir: str = "runs/reader"
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.01
    vision_lr_scale: float = 1.0    # lr factor of the vision tower (a pretrained tower, e.g. PP-OCRv6's: < 1)
    freeze: tuple[str, ...] = ()    # parameters whose name contains one of these stay frozen (e.g. the PP-OCRv6
    #                                 tower's backbone and CTC head: its CTC path decides the slots, keep it PP's)
    warmup_steps: int = 300
    minutes: float = 7.0            # training time budget of this call
    max_steps: int = 0              # 0 = until the time budget
    anneal_frac: float = 0.25
    final_lr_frac: float = 0.05
    max_len: int = 48               # characters per line
    n_docs: int = 4000              # training 公文 documents (seeds 0..n_docs-1)
    pool: str | None = ".device_carry/gongwen_train.txt.gz"     # their lines, cached (see load_pool)
    test_pool: str | None = ".device_carry/gongwen_test.txt.gz"
    n_val: int = 512
    eval_every: int = 500
    workers: int = 6
    seed: int = 0
    compile: bool = False
    log_every: int = 50
    device: str = "cuda"
    export_parts: str | None = None  # also write the saved folder as PREFIX.part-000, -001 ... (<= 15 MB each)
    save_every_minutes: float = 0.0  # also save (and export) a checkpoint this often during the call


def _normalise(img: torch.Tensor) -> torch.Tensor:
    return (img - 0.5) / 0.5  # the Gemma 3 processor's rescale + normalise (mean 0.5, std 0.5)


class SequenceBuilder:
    """The fixed prefix (chat template + image tokens + prompt + model turn) and answer ids from atlas indices."""

    def __init__(self, processor, atlas_chars, device):
        from PIL import Image

        from lib.prompt import build_messages, load_prompt

        tok = processor.tokenizer
        msgs = build_messages(load_prompt(), image=Image.new("RGB", (256, 256), "white"))
        text = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        enc = processor(text=[text], images=[[msgs[-1]["content"][0]["image"]]], return_tensors="pt")
        self.prefix = enc["input_ids"][0].to(device)
        self.prefix_types = enc["token_type_ids"][0].to(device) if "token_type_ids" in enc else None
        self.P = int(self.prefix.numel())
        self.pad_id = tok.pad_token_id
        self.eot_id = tok.convert_tokens_to_ids("<end_of_turn>")
        ids = tok.convert_tokens_to_ids(list(atlas_chars))
        unk = [c for c, i in zip(atlas_chars, ids) if i is None or i == tok.unk_token_id]
        if unk:
            raise ValueError(f"tokenizer lacks {len(unk)} atlas characters, e.g. {''.join(unk[:10])!r}")
        self.lut = torch.tensor(ids, dtype=torch.long, device=device)

    def build(self, chars: torch.Tensor):
        """chars [B, N] (atlas indices, -1 pad) -> input_ids [B, P+N+1], token_type_ids, labels [B, N+1]."""
        B, N = chars.shape
        valid = chars >= 0
        n = valid.sum(1)
        ans = torch.where(valid, self.lut[chars.clamp_min(0)], torch.full_like(chars, self.pad_id))
        ans = torch.cat([ans, torch.full((B, 1), self.pad_id, device=chars.device, dtype=torch.long)], 1)
        ans[torch.arange(B, device=chars.device), n] = self.eot_id
        labels = ans.clone()
        pos = torch.arange(N + 1, device=chars.device)[None]
        labels[pos > n[:, None]] = -100
        input_ids = torch.cat([self.prefix[None].expand(B, -1), ans], 1)
        types = None
        if self.prefix_types is not None:
            types = torch.cat([self.prefix_types[None].expand(B, -1), torch.zeros_like(ans)], 1)
        return input_ids, types, labels


class _Stream(torch.utils.data.IterableDataset):
    def __init__(self, atlas_chars, covered, faces, pool, batch_size, max_len, seed):
        self.args = (atlas_chars, covered, faces, pool)
        self.batch_size, self.max_len, self.seed = batch_size, max_len, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        chars, covered, faces, pool = self.args
        s = LineSampler(chars, covered, faces, pool, seed=self.seed * 1000 + wid, max_len=self.max_len)
        while True:
            texts, fonts = s.sample(self.batch_size)
            yield torch.from_numpy(s.encode(texts, self.max_len)), torch.tensor(fonts)


class ReaderBatches:
    """Endless (chars, fonts) batches from DataLoader worker processes."""

    def __init__(self, atlas: Atlas, faces, pool, batch_size, max_len, seed, workers):
        ds = _Stream(atlas.chars, atlas.covered, faces, pool, batch_size, max_len, seed)
        self.loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, pin_memory=workers > 0,
                                                  prefetch_factor=4 if workers > 0 else None,
                                                  persistent_workers=workers > 0)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iter(self.loader)


def load_pool(path: str | None, seeds) -> list[str]:
    """公文 lines of these document seeds, from `path` (one line each, gzip) when it exists, else generated (and
    written there). The file lets a machine without OpenCC (the Simplified conversion) use the same text."""
    import gzip

    if path and Path(path).is_file():
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return [ln.rstrip("\n") for ln in fh if ln.strip()]
    lines = gongwen_lines(seeds)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
    return lines


def test_pool_seeds(seed: int = 0) -> range:
    return range(TEST_DOC_SEED0 + seed * 10_000, TEST_DOC_SEED0 + seed * 10_000 + 300)


def make_eval_set(atlas: Atlas, faces, n: int, seed: int, max_len: int = 48, pool_path: str | None = None,
                  exclude: list[str] | None = None):
    """Held-out lines: 公文 from test documents (seeds >= TEST_DOC_SEED0) + random strings, fixed by `seed`.
    With `exclude` (the training lines), a test string that occurs anywhere in them is drawn again, so no test
    string was ever a training string (公文 templates repeat across documents)."""
    pool = load_pool(pool_path, test_pool_seeds(seed))
    s = LineSampler(atlas.chars, atlas.covered, faces, pool, seed=10_000_019 + seed, max_len=max_len)
    seen = "\n".join(exclude) if exclude else ""
    texts, fonts = [], []
    while len(texts) < n:
        t, f = s.one()
        if seen and t in seen:
            continue
        texts.append(t)
        fonts.append(f)
    return texts, fonts, torch.from_numpy(s.encode(texts, max_len)), torch.tensor(fonts)


@torch.no_grad()
def greedy_read(model, seq: SequenceBuilder, pixel_values: torch.Tensor, max_new: int, tokenizer) -> list[str]:
    """Greedy decoding with the KV cache (HF generate), prefix = the fixed chat prefix."""
    B = pixel_values.shape[0]
    ids = seq.prefix[None].expand(B, -1)
    kw: dict[str, Any] = dict(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixel_values,
                              max_new_tokens=max_new, do_sample=False)
    if seq.prefix_types is not None:
        kw["token_type_ids"] = seq.prefix_types[None].expand(B, -1)
    out = model.generate(**kw)
    return [t.strip() for t in tokenizer.batch_decode(out[:, seq.P:], skip_special_tokens=True)]


def _flops_per_sample(model, P: int, A: int) -> float:
    """6 x parameters x tokens for each tower (+ attention), the head on answer positions only."""
    cfg = model.config
    vis = sum(p.numel() for p in model.model.vision_tower.parameters())
    txt = sum(p.numel() for n, p in model.model.language_model.named_parameters() if "embed_tokens" not in n)
    n_img = cfg.mm_tokens_per_image
    T = P + A
    tc, vc = cfg.text_config, cfg.vision_config
    attn = 12 * tc.num_hidden_layers * T * T * tc.num_attention_heads * tc.head_dim / 2
    attn += 12 * vc.num_hidden_layers * n_img * n_img * vc.hidden_size
    head = 6 * tc.vocab_size * tc.hidden_size * A
    return 6 * vis * n_img + 6 * txt * T + attn + head


def train_step(fwd, renderer, seq, opt, chars, fonts, g, autocast, A: int):
    """Render, forward (loss on the answer positions only), backward, AdamW step; returns the loss tensor."""
    images = _normalise(renderer.render(LineBatch(chars, fonts), g))
    input_ids, types, labels = seq.build(chars)
    with autocast:
        out = fwd(input_ids=input_ids, pixel_values=images, token_type_ids=types,
                  attention_mask=torch.ones_like(input_ids), logits_to_keep=A + 1, use_cache=False)
        logits = out.logits[:, :A].float()
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=-100)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for grp in opt.param_groups for p in grp["params"]], 1.0)
    opt.step()
    return loss


def _probe(renderer, seq, fwd, opt, batches, g, autocast, A, dev, n: int = 8) -> dict:
    """Synchronised timings of rendering alone and of a whole train step (lr 0: weights unchanged)."""
    it = iter(batches)
    chars, fonts = next(it)
    chars, fonts = chars.to(dev), fonts.to(dev)
    lrs = [grp["lr"] for grp in opt.param_groups]
    for grp in opt.param_groups:
        grp["lr"] = 0.0
    out = {}
    for name in ("render", "step"):
        for k in range(n + 2):
            if k == 2:
                torch.cuda.synchronize()
                t = time.perf_counter()
            if name == "step":
                train_step(fwd, renderer, seq, opt, chars, fonts, g, autocast, A)
            else:
                renderer.render(LineBatch(chars, fonts), g)
        torch.cuda.synchronize()
        out[f"{name}_ms"] = (time.perf_counter() - t) / n * 1000
    for grp, lr in zip(opt.param_groups, lrs):
        grp["lr"] = lr
    opt.zero_grad(set_to_none=True)
    return out


def export_parts(folder: Path, prefix: str, part_bytes: int = 15 * 1024 * 1024) -> list[str]:
    """`folder` as one tar split into PREFIX.part-000, -001, ... (a GPU machine sends back few, small files)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(folder, arcname=folder.name)
    data = buf.getvalue()
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(0, len(data), part_bytes):
        p = f"{prefix}.part-{k // part_bytes:03d}"
        Path(p).write_bytes(data[k:k + part_bytes])
        paths.append(p)
    for stale in Path(prefix).parent.glob(Path(prefix).name + ".part-*"):
        if str(stale) not in paths:
            stale.unlink()
    return paths


def _save(model, processor, out: Path, state: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    keep = tuple(state.get("config", {}).get("freeze", ()))   # frozen parts (PP-OCRv6's recogniser) stay float32
    for n, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_floating_point() and not any(pat in n for pat in keep):
            t.data = t.data.to(torch.bfloat16)
    model.save_pretrained(tmp, max_shard_size="14MB")
    model.to(torch.float32)
    processor.save_pretrained(tmp)
    for extra in ("reader_config.json", "embedded_spec.json"):
        src = Path(state["init_dir"]) / extra
        if src.is_file():
            (tmp / extra).write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp / "pretrain_state.json").write_text(json.dumps(state, indent=1, ensure_ascii=False), encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def pretrain(cfg: PretrainConfig) -> dict:
    from transformers import AutoProcessor, Gemma3ForConditionalGeneration

    from lib.models.embedded import resolve_model_path

    t_start = time.time()
    if not Path(cfg.atlas).is_file():
        raise FileNotFoundError(f"--atlas: no glyph atlas at {cfg.atlas}; build it with "
                                f"python core/pretrain_reader.py --build_atlas {cfg.atlas}")
    if not cfg.init.startswith("embedded/") and not (Path(cfg.init) / "config.json").is_file():
        raise FileNotFoundError(f"--init: {cfg.init} is neither an embedded model name nor a model folder with "
                                "config.json (a folder written by an earlier core/pretrain_reader.py run)")
    dev = torch.device(cfg.device if torch.cuda.is_available() or cfg.device == "cpu" else "cpu")
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    init_dir = resolve_model_path(cfg.init)
    state_path = Path(init_dir) / "pretrain_state.json"
    prev = json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else {}
    from lib.reader.ppocr_vision import load_reader_model

    model = load_reader_model(init_dir, torch.float32).to(dev)
    model.config.use_cache = False
    processor = AutoProcessor.from_pretrained(init_dir)
    tok = processor.tokenizer
    atlas = load_atlas(cfg.atlas)
    faces = [i for i, f in enumerate(atlas.faces) if f not in PRETRAIN_HELD_OUT]
    if not faces:
        raise ValueError(f"{cfg.atlas}: no pretraining face in the atlas (all held out)")
    renderer = LineRenderer(atlas, dev)
    seq = SequenceBuilder(processor, atlas.chars, dev)
    call = int(prev.get("calls", 0)) + 1
    pool = load_pool(cfg.pool, range(cfg.n_docs))
    batches = ReaderBatches(atlas, faces, pool, cfg.batch_size, cfg.max_len, cfg.seed + 7919 * call, cfg.workers)
    val_texts, val_fonts, val_chars, val_font_t = make_eval_set(atlas, faces, cfg.n_val, seed=0, max_len=cfg.max_len,
                                                                pool_path=cfg.test_pool, exclude=pool)
    g_val = torch.Generator(device=dev).manual_seed(1234)
    val_imgs = torch.cat([renderer.render(LineBatch(val_chars[i:i + 256], val_font_t[i:i + 256]), g_val)
                          for i in range(0, len(val_texts), 256)])
    groups: dict[tuple[bool, bool], list] = {}
    for n, p in model.named_parameters():
        if any(pat in n for pat in cfg.freeze):
            p.requires_grad_(False)
            continue
        nd = p.ndim < 2 or "norm" in n or "embed" in n
        groups.setdefault((nd, ".vision_tower." in f".{n}"), []).append(p)
    opt = torch.optim.AdamW([{"params": ps, "weight_decay": 0.0 if nd else cfg.weight_decay,
                              "lr_scale": cfg.vision_lr_scale if vis else 1.0}
                             for (nd, vis), ps in sorted(groups.items())], lr=cfg.lr, betas=(0.9, 0.98),
                            eps=1e-8, fused=dev.type == "cuda")
    fwd = torch.compile(model) if cfg.compile else model
    g = torch.Generator(device=dev).manual_seed(cfg.seed * 7 + call)
    A = cfg.max_len + 1
    flops = _flops_per_sample(model, seq.P, A)
    peak = 798e12 if dev.type == "cuda" else None  # measured H100 dense bf16 (docs/GPU.md)
    history = list(prev.get("history", []))
    step0 = int(prev.get("step", 0))
    samples0 = int(prev.get("samples", 0))
    budget = cfg.minutes * 60
    log.info("reader pretraining call %d: from %s (step %d, %d samples), batch %d, %.1f min, prefix %d tokens, "
             "%.2f GFLOP/sample, device %s", call, init_dir, step0, samples0, cfg.batch_size, cfg.minutes, seq.P,
             flops / 1e9, dev)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
    if dev.type == "cuda":
        probe = _probe(renderer, seq, fwd, opt, batches, g, autocast, A, dev)
        log.info("probe: render %.1f ms/batch, train step %.1f ms/batch (batch %d)", probe["render_ms"],
                 probe["step_ms"], cfg.batch_size)
    else:
        probe = {}
    t_loop = time.time()
    t_saved = t_loop
    t_last, s_last = t_loop, 0
    step = 0
    losses: list[float] = []
    timings = {"render": 0.0, "step": 0.0}
    it = iter(batches)
    model.train()
    while True:
        elapsed = time.time() - t_loop
        if (cfg.max_steps and step >= cfg.max_steps) or (not cfg.max_steps and elapsed >= budget):
            break
        frac = elapsed / budget if not cfg.max_steps else step / cfg.max_steps
        warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
        anneal = 1.0 if frac < 1 - cfg.anneal_frac else max(
            cfg.final_lr_frac, 1 - (frac - (1 - cfg.anneal_frac)) / cfg.anneal_frac * (1 - cfg.final_lr_frac))
        lr = cfg.lr * warm * anneal
        for grp in opt.param_groups:
            grp["lr"] = lr * grp.get("lr_scale", 1.0)
        chars, fonts = next(it)
        chars = chars.to(dev, non_blocking=True)
        fonts = fonts.to(dev, non_blocking=True)
        loss = train_step(fwd, renderer, seq, opt, chars, fonts, g, autocast, A)
        step += 1
        if step % cfg.log_every == 0:
            lv = float(loss.detach())
            losses.append(lv)
            now = time.time()
            sps = (step - s_last) * cfg.batch_size / (now - t_last)
            mfu = sps * flops / peak if peak else float("nan")
            rec = {"step": step0 + step, "samples": samples0 + step * cfg.batch_size, "loss": round(lv, 4),
                   "lr": lr, "samples_per_s": round(sps, 1), "mfu": round(mfu, 4) if peak else None,
                   "minutes": round((now - t_loop) / 60, 2), "call": call}
            history.append(rec)
            log.info("step %6d | loss %.4f | lr %.2e | %7.0f samples/s | mfu %s | %.1f min", rec["step"], lv, lr,
                     sps, f"{mfu:.1%}" if peak else "-", rec["minutes"])
            t_last, s_last = now, step
            if not math.isfinite(lv):
                raise FloatingPointError(f"loss is {lv} at step {step0 + step}")
        if cfg.save_every_minutes and time.time() - t_saved > cfg.save_every_minutes * 60:
            mid = {"init_dir": init_dir, "calls": call, "step": step0 + step, "samples": samples0 + step * cfg.batch_size,
                   "history": history, "atlas_faces": list(atlas.faces), "held_out_faces": list(PRETRAIN_HELD_OUT),
                   "config": dataclasses.asdict(cfg), "val": list(prev.get("val", [])), "partial": True}
            _save(model, processor, Path(cfg.output_dir), mid)
            if cfg.export_parts:
                export_parts(Path(cfg.output_dir), cfg.export_parts)
            t_saved = time.time()
            log.info("step %6d | checkpoint saved", step0 + step)
        if cfg.eval_every and step % cfg.eval_every == 0:
            model.eval()
            with autocast:
                preds = greedy_read(model, seq, _normalise(val_imgs[:128]), A, tok)
            model.train()
            summ = _cer_summary(preds, val_texts[:128])
            history.append({"step": step0 + step, "samples": samples0 + step * cfg.batch_size, "call": call,
                            "minutes": round((time.time() - t_loop) / 60, 2), "val128": summ})
            log.info("step %6d | val (128 held-out lines) micro CER %.4f, exact %.3f, loops %d", step0 + step,
                     summ["micro_cer"], summ["exact"], summ["loops"])
    train_s = time.time() - t_loop
    # held-out greedy CER (degraded validation lines from unseen documents)
    model.eval()
    preds: list[str] = []
    with autocast:
        for i in range(0, len(val_texts), 256):
            preds += greedy_read(model, seq, _normalise(val_imgs[i:i + 256]), A, tok)
    samples = samples0 + step * cfg.batch_size
    state = {"init_dir": init_dir, "calls": call, "step": step0 + step, "samples": samples,
             "history": history, "atlas_faces": list(atlas.faces), "held_out_faces": list(PRETRAIN_HELD_OUT),
             "config": dataclasses.asdict(cfg)}
    val = {"call": call, "step": step0 + step, "samples": samples, "n": len(val_texts),
           "examples": [{"gt": t, "pred": p} for t, p in list(zip(val_texts, preds))[:12]]}
    val.update(_cer_summary(preds, val_texts))
    state["val"] = list(prev.get("val", [])) + [val]
    out = Path(cfg.output_dir)
    _save(model, processor, out, state)
    if cfg.export_parts:
        export_parts(out, cfg.export_parts)
    result = {"output_dir": str(out), "call": call, "steps": step, "total_steps": step0 + step,
              "samples": samples, "train_seconds": round(train_s, 1), "wall_seconds": round(time.time() - t_start, 1),
              "samples_per_s": round(step * cfg.batch_size / max(train_s, 1e-9), 1),
              "gflop_per_sample": round(flops / 1e9, 3), "probe": probe, "val": {k: v for k, v in val.items() if k != "examples"},
              "examples": val["examples"][:6]}
    log.info("done: %s", json.dumps(result, ensure_ascii=False))
    return result


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _looping(pred: str, gt: str, repeats: int = 6) -> bool:
    """A run of one 1-3-character unit repeated `repeats`+ times that the reference does not have."""
    for n in (1, 2, 3):
        for i in range(0, max(0, len(pred) - n * repeats + 1)):
            unit = pred[i:i + n]
            if unit * repeats == pred[i:i + n * repeats] and unit * repeats not in gt:
                return True
    return False


def _cer_summary(preds: list[str], gts: list[str]) -> dict:
    """Raw (unnormalised) micro CER = total edit distance / total reference characters, over exact strings (the
    GPU machine has no rapidfuzz: a plain dynamic programme; the project's metrics score the real sets)."""
    dists = [_levenshtein(p, g) for p, g in zip(preds, gts)]
    total = sum(len(g) for g in gts)
    return {"micro_cer": round(sum(dists) / max(total, 1), 4),
            "mean_cer": round(float(np.mean([d / max(len(g), 1) for d, g in zip(dists, gts)])), 4),
            "exact": round(float(np.mean([p == g for p, g in zip(preds, gts)])), 4),
            "loops": sum(1 for p, g in zip(preds, gts) if _looping(p, g))}
