"""The reader's own workload, ours vs plain TRL, side by side in one run: samples/s, MFU, peak memory.

    python -m core.benchmarks.bench_reader --steps 30 --batch_size 512 --trl_batch_size 64       # GPU
    python -m core.benchmarks.bench_reader --device cpu --steps 2 --batch_size 4 --trl_batch_size 4 \
        --n_samples 8 --atlas <npz>                                                             # CPU check

- `trl`: plain TRL `SFTTrainer` (full fine-tuning of the reader, prompt-completion conversational data, TRL's
  collator and loss, `max_length=None`) on images pre-rendered by the same renderer (PIL images in a dataset, as a
  user with a rendered data set would run it), batch `--trl_batch_size`.
- `ours`: `lib/reader/pretrain.py`'s step: strings from DataLoader workers, images rendered on the device, the
  fixed chat prefix, loss on the answer positions only, bf16 autocast, fused AdamW, batch `--batch_size`.
- `ours_compile`: the same step with the model under `torch.compile` (what `core/pretrain_reader.py --compile`
  runs); compilation happens in the untimed warm-up steps.
Both train the same model (`--init`) on the same kind of lines; each configuration runs `--warmup_steps` untimed
steps, then `--steps` timed ones (synchronised wall clock). FLOPs per sample: `lib.reader.pretrain._flops_per_sample`
(6 x parameters x tokens per tower + attention + the head on answer positions) for both; MFU against 798 TFLOP/s
(the H100's measured dense bf16 rate, docs/GPU.md).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from pathlib import Path

from lib.config import field, parse_args


@dataclasses.dataclass
class BenchReaderArgs:
    """Reader training throughput: ours vs plain TRL on the same model and lines."""

    init: str = field("embedded/gemma3-reader-init", help="model")
    atlas: str = field(".device_carry/atlas_pretrain.npz", help="glyph atlas")
    pool: str | None = field(".device_carry/gongwen_train.txt.gz", help="公文 training lines (the pretraining "
                             "cache; generated there when absent, which needs OpenCC)")
    device: str = field("cuda", help="cuda | cpu")
    batch_size: int = field(512, help="our batch")
    trl_batch_size: int = field(64, help="TRL's batch")
    steps: int = field(30, help="timed steps per configuration")
    warmup_steps: int = field(5, help="untimed steps first")
    n_samples: int = field(2048, help="pre-rendered samples for TRL (cycled)")
    max_len: int = field(48, help="characters per line")
    configs: list[str] = field(default_factory=lambda: ["trl", "ours"], help="which to run, in order")
    output_file: str | None = field(None, help="JSON with every row")
    workers: int = field(6, help="our DataLoader workers")


CONFIGS = ("trl", "ours", "ours_compile")


def _sync(dev):
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


def _peak(dev):
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if dev.type == "cuda" else None


def run_trl(args, dev, texts, images, model_dir):
    import torch
    from datasets import Dataset
    from transformers import AutoProcessor, Gemma3ForConditionalGeneration, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from lib.prompt import build_messages, load_prompt

    prompt = load_prompt()
    rows = []
    for t, im in zip(texts, images):
        msgs = build_messages(prompt, image=None, answer=t)
        rows.append({"prompt": msgs[:-1], "completion": msgs[-1:], "images": [im]})
    ds = Dataset.from_list(rows)
    model = Gemma3ForConditionalGeneration.from_pretrained(model_dir, torch_dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(model_dir)
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            _sync(dev)
            self.t = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            _sync(dev)
            times.append(time.perf_counter() - self.t)

    cuda = dev.type == "cuda"
    with tempfile.TemporaryDirectory() as out:
        cfg = SFTConfig(output_dir=out, per_device_train_batch_size=args.trl_batch_size, gradient_checkpointing=False,
                        max_length=None, max_steps=args.warmup_steps + args.steps, learning_rate=1e-3,
                        logging_steps=10 ** 6, save_strategy="no", report_to=[], bf16=cuda, use_cpu=not cuda,
                        dataloader_num_workers=args.workers if cuda else 0, seed=0)
        trainer = SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=processor, callbacks=[Clock()])
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
    timed = times[args.warmup_steps:]
    return {"config": f"trl bs={args.trl_batch_size}", "s_per_step": sum(timed) / len(timed),
            "samples_per_s": args.trl_batch_size * len(timed) / sum(timed), "peak_gib": _peak(dev)}


def run_ours(args, dev, model_dir, atlas, faces, pool, compile: bool = False):
    import torch
    from transformers import AutoProcessor, Gemma3ForConditionalGeneration

    from lib.reader.pretrain import ReaderBatches, SequenceBuilder, train_step
    from lib.reader.synth import LineRenderer

    model = Gemma3ForConditionalGeneration.from_pretrained(model_dir, torch_dtype=torch.float32).to(dev)
    processor = AutoProcessor.from_pretrained(model_dir)
    renderer = LineRenderer(atlas, dev)
    seq = SequenceBuilder(processor, atlas.chars, dev)
    batches = iter(ReaderBatches(atlas, faces, pool, args.batch_size, args.max_len, 0,
                                 args.workers if dev.type == "cuda" else 0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=dev.type == "cuda")
    fwd = torch.compile(model) if compile else model
    A = args.max_len + 1
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
    g = torch.Generator(device=dev).manual_seed(0)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for k in range(args.warmup_steps + args.steps):
        _sync(dev)
        t = time.perf_counter()
        chars, fonts = next(batches)
        chars, fonts = chars.to(dev, non_blocking=True), fonts.to(dev, non_blocking=True)
        loss = train_step(fwd, renderer, seq, opt, chars, fonts, g, autocast, A)
        _sync(dev)
        times.append(time.perf_counter() - t)
    timed = times[args.warmup_steps:]
    return {"config": f"ours{'+compile' if compile else ''} bs={args.batch_size}", "s_per_step": sum(timed) / len(timed),
            "samples_per_s": args.batch_size * len(timed) / sum(timed), "peak_gib": _peak(dev),
            "final_loss": float(loss.detach())}


def main(args: BenchReaderArgs) -> dict:
    import torch
    from PIL import Image
    from transformers import Gemma3ForConditionalGeneration

    from lib.models.embedded import resolve_model_path
    from lib.reader.glyphs import PRETRAIN_HELD_OUT, load_atlas
    from lib.reader.pretrain import SequenceBuilder, _flops_per_sample, load_pool
    from lib.reader.synth import LineBatch, LineRenderer
    from lib.reader.text import LineSampler

    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        raise ValueError(f"--configs: unknown configuration(s) {unknown}; choose from: {' '.join(CONFIGS)}")
    if not Path(args.atlas).is_file():
        raise FileNotFoundError(f"--atlas: no glyph atlas at {args.atlas}; build it with "
                                f"python core/pretrain_reader.py --build_atlas {args.atlas}")
    dev = torch.device(args.device if args.device == "cpu" or torch.cuda.is_available() else "cpu")
    model_dir = resolve_model_path(args.init)
    atlas = load_atlas(args.atlas)
    faces = [i for i, f in enumerate(atlas.faces) if f not in PRETRAIN_HELD_OUT] or [0]
    pool = load_pool(args.pool, range(200))  # the file holds what it holds; 200 documents when generated
    rows, flops = [], None
    for name in args.configs:
        if name == "trl":
            s = LineSampler(atlas.chars, atlas.covered, faces, pool, seed=1, max_len=args.max_len)
            texts, fonts = s.sample(args.n_samples)
            r = LineRenderer(atlas, dev)
            g = torch.Generator(device=dev).manual_seed(1)
            images = []
            for i in range(0, len(texts), 256):
                sq = r.render(LineBatch(torch.from_numpy(s.encode(texts[i:i + 256], args.max_len)),
                                        torch.tensor(fonts[i:i + 256])), g)
                images += [Image.fromarray((x.permute(1, 2, 0).cpu().numpy() * 255).round().astype("uint8")) for x in sq]
            rows.append(run_trl(args, dev, texts, images, model_dir))
        else:
            rows.append(run_ours(args, dev, model_dir, atlas, faces, pool, compile=name == "ours_compile"))
    if flops is None:
        from transformers import AutoProcessor

        model = Gemma3ForConditionalGeneration.from_pretrained(model_dir)
        P = SequenceBuilder(AutoProcessor.from_pretrained(model_dir), atlas.chars, "cpu").P
        flops = _flops_per_sample(model, P, args.max_len + 1)
    base = next((r["samples_per_s"] for r in rows if r["config"].startswith("trl")), None)
    print(f"\n{'configuration':<24} {'s/step':>8} {'samples/s':>10} {'MFU':>7} {'peak GiB':>9} {'x TRL':>7}")
    for r in rows:
        r["mfu"] = r["samples_per_s"] * flops / 798e12 if dev.type == "cuda" else None
        r["x_trl"] = r["samples_per_s"] / base if base else None
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        x = f"{r['x_trl']:.2f}" if r["x_trl"] else "-"
        print(f"{r['config']:<24} {r['s_per_step']:>8.3f} {r['samples_per_s']:>10.1f} {mfu:>7} "
              f"{str(r['peak_gib']):>9} {x:>7}")
    out = {"device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "gflop_per_sample": flops / 1e9,
           "rows": rows, "args": dataclasses.asdict(args)}
    if args.output_file:
        Path(args.output_file).write_text(json.dumps(out, indent=1), encoding="utf-8")
    return out


if __name__ == "__main__":
    from lib.errors import cli_errors

    with cli_errors("bench_reader.py", extra=(FileNotFoundError, ValueError)):  # one line, exit 2
        main(parse_args(BenchReaderArgs))
