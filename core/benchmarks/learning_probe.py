"""Learning probe: which data and learning rate make the random-init reader learn to read, cheaply and in parallel.

The learning run (`learning_run.py`) pre-renders its data and trains through `core/sft_gemma.py` - the project's
path, one recipe per 10-minute command. To choose that recipe this probe trains the same architecture (the embedded
`gemma3-reader` spec, optionally resized) with a minimal loop instead: samples rendered on the fly by loader
workers (no data step), no prompt (`<bos><image tokens> text <eos>`), AdamW with linear warmup then a constant rate,
bf16 autocast on CUDA, and greedy CER on held-out single lines (`lib.synth.lines`, the learning run's test
geometry) every `--eval_every` seconds. Several probes share one GPU (the reader uses ~4 GB), e.g. four at once:

    python -m core.benchmarks.learning_probe --name line_lr5e-4 --lr 5e-4 --seconds 440 --out_dir $OUT &
    python -m core.benchmarks.learning_probe --name grid --aligned_share 1 --aligned_rows top --test aligned &

Sample kinds (mixed by `--aligned_share` / `--page_share`, the rest are single lines):
- line: 2-12 characters at 18-26 px near the left edge, vertically centred +-10 % (the learning run's line stage);
- aligned: one glyph per patch cell in one row (`--aligned_rows top`: always the first row, as the quickstart
  does; `any`: a random row) - reading order is the image-token order;
- page: as many lines of random characters as fit, 18-26 px.
Strings are uniformly random characters of the learning run's character set. Writes `probe_<name>.json` (the
settings, the eval curve and the training loss every 25 steps). Not the project's training path: results choose a
recipe; the learning run measures it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from pathlib import Path

from lib.config import field, parse_args


@dataclasses.dataclass
class ProbeArgs:
    name: str = field("probe", help="run name (output file probe_<name>.json)")
    lr: float = field(1.5e-3, help="peak learning rate (language model)")
    vision_lr: float | None = field(None, help="peak learning rate of the vision tower + projector (default: --lr)")
    warmup_steps: int = field(150, help="linear warmup steps, then constant")
    batch_size: int = field(64, help="samples per step")
    seconds: float = field(400.0, help="training wall-clock budget")
    max_steps: int = field(10 ** 9, help="stop after this many steps even if time is left")
    aligned_share: float = field(0.0, help="share of glyph-per-patch samples")
    aligned_rows: str = field("any", choices=["any", "top"], help="aligned samples in a random row | the first row")
    page_share: float = field(0.0, help="share of full-page samples")
    test: str = field("line", choices=["line", "aligned"], help="held-out set: single lines | aligned rows")
    n_test: int = field(256, help="held-out samples")
    eval_every: float = field(60.0, help="seconds between held-out CER evaluations")
    image_size: int = field(256, help="model image size (px)")
    patch_size: int = field(16, help="vision patch size (px)")
    mm_tokens: int = field(256, help="image tokens after pooling (a square number)")
    layers: int = field(4, help="vision and language layers (each)")
    workers: int = field(3, help="rendering loader workers")
    out_dir: str = field(".", help="where probe_<name>.json goes")
    seed: int = field(0, help="weights seed offset and data seed")

    def __post_init__(self):
        if not 0 <= self.aligned_share + self.page_share <= 1:
            raise ValueError("aligned_share + page_share must be in [0, 1]")
        if int(math.isqrt(self.mm_tokens)) ** 2 != self.mm_tokens:
            raise ValueError(f"mm_tokens must be a square number, got {self.mm_tokens}")


def _model(args: ProbeArgs):
    from transformers import AutoTokenizer, Gemma3ForConditionalGeneration

    from lib.models import embedded as E

    spec = dict(E.LEARNING_RUN_SPEC, image_size=args.image_size, patch_size=args.patch_size, mm_tokens=args.mm_tokens,
                vision_layers=args.layers, text_layers=args.layers, seed=E.LEARNING_RUN_SPEC["seed"] + args.seed)
    name = "embedded/probe-" + "-".join(str(spec[k]) for k in sorted(spec))
    E.EMBEDDED_MODELS.setdefault(name, spec)
    path = E.resolve_model_path(name)
    return AutoTokenizer.from_pretrained(path), Gemma3ForConditionalGeneration.from_pretrained(path), spec


class _Renderer:
    """The three sample kinds, on `size` px squares (grey paper, dark ink)."""

    def __init__(self, args: ProbeArgs, fonts, hanzi: str):
        from lib.synth.lines import LineTask

        self.a, self.fonts, self.hanzi = args, fonts, hanzi
        self.S, self.P = args.image_size, args.patch_size
        self.line_task = LineTask(image_size=self.S, min_font=18, max_font=26, min_len=2, max_len=12, max_lines=1,
                                  placement="left")
        self.max_len = min(12, self.S // self.P)

    def text(self, r: random.Random) -> str:
        return "".join(r.choice(self.hanzi) for _ in range(r.randint(2, self.max_len)))

    def line(self, text, r):
        from lib.synth.lines import render_sample

        return render_sample(text, self.fonts[r.randrange(len(self.fonts))], self.line_task, r)

    def aligned(self, text, r):
        from PIL import Image, ImageDraw

        from lib.render import load_font

        img = Image.new("L", (self.S, self.S), r.randint(215, 255))
        d = ImageDraw.Draw(img)
        f = load_font(self.fonts[r.randrange(len(self.fonts))], self.P - r.randint(1, 3))
        row = r.randrange(self.S // self.P) if self.a.aligned_rows == "any" else 0
        for i, c in enumerate(text):
            d.text((i * self.P + 1, row * self.P + 1), c, font=f, fill=r.randint(0, 90))
        return img.convert("RGB")

    def page(self, r):
        from PIL import Image, ImageDraw

        from lib.render import load_font

        S = self.S
        fs, sp = r.randint(18, 26), r.uniform(1.15, 1.4)
        f = load_font(self.fonts[r.randrange(len(self.fonts))], fs)
        per, nl = int((S - 6) // fs), max(1, int((S - 6 - fs) // (fs * sp)) + 1)
        nl = r.randint(max(1, nl // 2), nl) if r.random() < 0.5 else nl
        lines = ["".join(r.choice(self.hanzi) for _ in range(r.randint(max(1, per // 2), per))) for _ in range(nl)]
        img = Image.new("L", (S, S), r.randint(215, 255))
        d = ImageDraw.Draw(img)
        x0, y0 = r.uniform(0, S - per * fs - 1), r.uniform(0, max(0, S - fs - (nl - 1) * fs * sp - 1))
        ink = r.randint(0, 90)
        for i, ln in enumerate(lines):
            d.text((x0, y0 + i * fs * sp), ln, font=f, fill=ink)
        return img.convert("RGB"), "\n".join(lines)

    def sample(self, r):
        u = r.random()
        if u < self.a.page_share:
            return self.page(r)
        t = self.text(r)
        return (self.aligned(t, r) if u < self.a.page_share + self.a.aligned_share else self.line(t, r)), t


def _pixels(img):
    import numpy as np

    a = np.asarray(img, dtype=np.float32)[..., 0] / 127.5 - 1.0  # the reader's processor: mean 0.5, std 0.5
    return np.repeat(a[None], 3, 0)


def main(args: ProbeArgs) -> dict:
    import numpy as np
    import torch
    from rapidfuzz.distance import Levenshtein

    from core.benchmarks.learning_run import run_charset
    from lib.results import atomic_write_json
    from lib.train.model import is_vision_or_projector

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    tok, model, spec = _model(args)
    model.to(dev).train()
    fonts, charset, _, _ = run_charset()
    hanzi = "".join(c for c in charset if "\u4e00" <= c <= "\u9fff")
    rend = _Renderer(args, fonts, hanzi)
    ids = tok.convert_tokens_to_ids
    n_img = args.mm_tokens
    prefix = [ids("<bos>"), ids("<start_of_image>")] + [ids("<image_soft_token>")] * n_img + [ids("<end_of_image>")]
    eos, pad = ids("<eos>"), ids("<pad>")
    specials = set(tok.all_special_ids)

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            wi = torch.utils.data.get_worker_info()
            r = random.Random(f"{args.seed}-train-{wi.id if wi else 0}")
            while True:
                img, t = rend.sample(r)
                yield _pixels(img), t

    def collate(items):
        px = torch.tensor(np.stack([x for x, _ in items]))
        seqs = [prefix + tok.convert_tokens_to_ids(list(t)) + [eos] for _, t in items]
        L, bs = max(map(len, seqs)), len(seqs)
        inp = torch.full((bs, L), pad)
        lab = torch.full((bs, L), -100)
        am = torch.zeros((bs, L), dtype=torch.long)
        tt = torch.zeros((bs, L), dtype=torch.long)
        tt[:, 2:2 + n_img] = 1
        for i, s in enumerate(seqs):
            inp[i, :len(s)] = torch.tensor(s)
            am[i, :len(s)] = 1
            lab[i, len(prefix):len(s)] = inp[i, len(prefix):len(s)]
        return dict(input_ids=inp, attention_mask=am, token_type_ids=tt, pixel_values=px, labels=lab)

    rt = random.Random(f"{args.seed}-test")
    test = []
    for _ in range(args.n_test):
        t = rend.text(rt)
        test.append((_pixels(rend.line(t, rt) if args.test == "line" else rend.aligned(t, rt)), t))

    @torch.no_grad()
    def held_out_cer():
        model.eval()
        errs = total = 0
        examples = []
        for s in range(0, len(test), 128):
            chunk = test[s:s + 128]
            px = torch.tensor(np.stack([x for x, _ in chunk])).to(dev)
            inp = torch.tensor([prefix] * len(chunk), device=dev)
            tt = torch.zeros_like(inp)
            tt[:, 2:2 + n_img] = 1
            with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
                out = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), token_type_ids=tt,
                                     pixel_values=px, max_new_tokens=rend.max_len + 2, do_sample=False)
            for (_, t), o in zip(chunk, out[:, len(prefix):].tolist()):
                o = o[:o.index(eos)] if eos in o else o
                pred = "".join(tok.convert_ids_to_tokens([i for i in o if i not in specials]))
                errs += Levenshtein.distance(pred, t)
                total += len(t)
                if len(examples) < 3:
                    examples.append({"gt": t, "pred": pred})
        model.train()
        return errs / total, examples

    vision = [p for n, p in model.named_parameters() if is_vision_or_projector(n)]
    other = [p for n, p in model.named_parameters() if not is_vision_or_projector(n)]
    peaks = (args.vision_lr or args.lr, args.lr)
    opt = torch.optim.AdamW([{"params": vision, "lr": peaks[0]}, {"params": other, "lr": peaks[1]}],
                            weight_decay=0.01, fused=dev == "cuda")
    dl = torch.utils.data.DataLoader(Stream(), batch_size=args.batch_size, collate_fn=collate,
                                     num_workers=args.workers, prefetch_factor=4 if args.workers else None,
                                     persistent_workers=bool(args.workers))
    losses, curve = [], []
    t0, next_eval, step = time.time(), args.eval_every, 0
    for batch in dl:
        step += 1
        for g, peak in zip(opt.param_groups, peaks):
            g["lr"] = peak * min(1.0, step / max(1, args.warmup_steps))
        batch = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 25 == 0 or step == 1:
            losses.append((step, round(loss.item(), 4)))
        elapsed = time.time() - t0
        last = elapsed >= args.seconds or step >= args.max_steps
        if elapsed >= next_eval or last:
            cer, examples = held_out_cer()
            next_eval = time.time() - t0 + args.eval_every
            recent = [v for _, v in losses[-8:]]
            rec = {"step": step, "t": round(elapsed), "loss": round(sum(recent) / len(recent), 3), "cer": round(cer, 4),
                   "examples": examples}
            curve.append(rec)
            print(json.dumps({"name": args.name, **rec}, ensure_ascii=False), flush=True)
            if last:
                break
    summary = {"args": dataclasses.asdict(args), "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
               "charset": len(charset), "hanzi": len(hanzi), "uniform_nats": round(math.log(len(hanzi)), 3),
               "curve": curve, "loss": losses}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(summary, out / f"probe_{args.name}.json")
    return summary


if __name__ == "__main__":
    main(parse_args(ProbeArgs, prog="learning_probe.py"))
