"""Batched vs one-at-a-time `hf` generation throughput (`lib.generation.generate_batch`, the evaluation `hf` path).

Builds a Gemma-3-4B-shaped VLM with random weights (bf16, sdpa, on the GPU), renders `--n-images` page-like images,
and generates `--max-new-tokens` tokens for each with `batch_size=1` and with `batch_size=--batch-size` (greedy, KV
cache, left padding, length-sorted batches: see lib/generation.py). Random weights almost never emit the stop token,
so every image gets the same number of new tokens and the two runs do the same work; the script prints images/s,
new tokens/s and the ratio, and checks that the batched texts equal the one-at-a-time texts (greedy decoding must not
depend on the batch; bf16 rounding can flip a near-tie, so the match rate is reported, not asserted).

    python -m core.benchmarks.bench_generate --shape 4b --n-images 16 --batch-size 16 --max-new-tokens 128
    python -m core.benchmarks.bench_generate --shape tiny --n-images 4 --batch-size 4 --max-new-tokens 8   # CPU check
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from lib.config import field, parse_args


@dataclasses.dataclass
class BenchGenerateArgs:
    shape: str = field("4b", help="model shape from lib.perf.GEMMA3_SHAPES (4b, 12b, tiny)")
    n_images: int = field(16, help="images to transcribe")
    batch_size: int = field(16, help="batch size of the batched run")
    max_new_tokens: int = field(128, help="new tokens per image")
    work_dir: str = field("runs/bench_generate", help="where the synthetic images go")
    out_json: str = field("", help="also write the results here (JSON)")
    seed: int = field(0, help="seed for images and weights")


def main(args: BenchGenerateArgs) -> dict:
    import torch
    from PIL import Image

    from lib.data import load_samples
    from lib.generation import generate_batch
    from lib.perf import GEMMA3_SHAPES, bench_processor, build_gemma3_vlm, write_ocr_workload
    from lib.prompt import load_prompt

    cuda = torch.cuda.is_available()
    processor = bench_processor(args.shape)
    model = build_gemma3_vlm(args.shape, processor, dtype=torch.bfloat16 if cuda else torch.float32,
                             device="cuda" if cuda else "cpu", seed=args.seed)
    model.eval()
    model.config.use_cache = True
    # Never stop early: the benchmark wants a fixed amount of decoding work per image.
    model.generation_config.eos_token_id = None
    path = write_ocr_workload(Path(args.work_dir) / f"data_{args.shape}", args.n_images, min_tokens=40, max_tokens=400,
                              image_size=GEMMA3_SHAPES[args.shape]["image_size"], seed=args.seed)
    images = [Image.open(s.image_path).convert("RGB") for s in load_samples(path)]
    prompt = load_prompt()

    def timed(bs: int):
        generate_batch(model, processor, prompt, images[:min(bs, 2)], max_new_tokens=4, batch_size=bs)  # warm-up
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        outs = generate_batch(model, processor, prompt, images, max_new_tokens=args.max_new_tokens, batch_size=bs)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0, outs

    t1, one = timed(1)
    tb, batched = timed(args.batch_size)
    new1 = sum(o.n_tokens for o in one)
    newb = sum(o.n_tokens for o in batched)
    same = sum(a.text == b.text for a, b in zip(one, batched))
    rows = [
        {"batch_size": 1, "seconds": t1, "images_per_s": len(images) / t1, "new_tokens_per_s": new1 / t1, "new_tokens": new1},
        {"batch_size": args.batch_size, "seconds": tb, "images_per_s": len(images) / tb, "new_tokens_per_s": newb / tb,
         "new_tokens": newb},
    ]
    result = {"shape": args.shape, "device": torch.cuda.get_device_name(0) if cuda else "cpu", "rows": rows,
              "speedup": t1 / tb, "texts_equal": f"{same}/{len(images)}", "args": dataclasses.asdict(args)}
    print("result:", json.dumps(result), flush=True)
    print("batch | seconds | images/s | new tokens/s")
    for r in rows:
        print(f"{r['batch_size']} | {r['seconds']:.2f} | {r['images_per_s']:.2f} | {r['new_tokens_per_s']:.0f}")
    print(f"batched / one-at-a-time: {t1 / tb:.2f}x   identical texts: {same}/{len(images)}")
    if args.out_json:
        from lib.results import atomic_write_json

        atomic_write_json(result, args.out_json)
    return result


if __name__ == "__main__":
    main(parse_args(BenchGenerateArgs))
