"""Which SDPA backend to train Gemma 3 with: forward+backward time per backend on the masks Gemma 3 training builds.

Gemma 3 training passes an explicit boolean mask (causal, or sliding-window causal, OR bidirectional inside each
image's 256 tokens), so PyTorch cannot use its flash backend and picks cuDNN (on Hopper) or memory-efficient
attention. cuDNN builds an execution plan per new shape; with sequence lengths changing every step that setup is
paid again and again. This prints, per backend and sequence length, the first call (plan build) and the median of
repeated calls with that length, for Gemma-3-4B's attention shape (8 query heads, 4 KV heads, head_dim 256).

    python -m core.benchmarks.bench_attention --lengths 1100 1313 1500 1777
"""

from __future__ import annotations

import dataclasses
import json

from lib.config import field, parse_args


@dataclasses.dataclass
class BenchAttentionArgs:
    lengths: list[int] = field(default_factory=lambda: [1100, 1313, 1500, 1777], help="sequence lengths to time")
    batch: int = field(1, help="sequences per call")
    heads: int = field(8, help="query heads")
    kv_heads: int = field(4, help="key/value heads (expanded before SDPA, as transformers does)")
    head_dim: int = field(256, help="head dimension")
    image_tokens: int = field(256, help="bidirectional image block length (starts at position 6)")
    window: int = field(1024, help="sliding window (0 = global layer)")
    repeats: int = field(20, help="timed calls per length and backend")


def build_mask(length: int, image_tokens: int, window: int, device) -> "torch.Tensor":
    import torch

    i = torch.arange(length, device=device)
    causal = i[None, :] <= i[:, None]
    if window:
        causal &= (i[:, None] - i[None, :]) < window
    img = (i >= 6) & (i < 6 + image_tokens)
    block = img[:, None] & img[None, :]
    return (causal | block)[None, None]


def main(args: BenchAttentionArgs) -> dict:
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if not torch.cuda.is_available():
        raise SystemExit("bench_attention needs a CUDA device")
    dev = torch.device("cuda")
    backends = {"cudnn": SDPBackend.CUDNN_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                "math": SDPBackend.MATH}
    rows = []
    for name, be in backends.items():
        for L in args.lengths:
            q = torch.randn(args.batch, args.heads, L, args.head_dim, device=dev, dtype=torch.bfloat16, requires_grad=True)
            k = torch.randn(args.batch, args.heads, L, args.head_dim, device=dev, dtype=torch.bfloat16, requires_grad=True)
            v = torch.randn_like(k, requires_grad=True)
            mask = build_mask(L, args.image_tokens, args.window, dev).expand(args.batch, 1, L, L)
            g = torch.randn(args.batch, args.heads, L, args.head_dim, device=dev, dtype=torch.bfloat16)
            times = []
            try:
                for r in range(args.repeats + 1):
                    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    torch.cuda.synchronize()
                    import time

                    t0 = time.perf_counter()
                    s.record()
                    with sdpa_kernel([be]):
                        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=args.head_dim ** -0.5)
                    out.backward(g)
                    e.record()
                    torch.cuda.synchronize()
                    times.append((time.perf_counter() - t0) * 1e3)
                row = {"backend": name, "length": L, "first_ms": times[0],
                       "median_ms": sorted(times[1:])[len(times[1:]) // 2]}
            except RuntimeError as exc:
                row = {"backend": name, "length": L, "error": str(exc).splitlines()[0][:120]}
            rows.append(row)
            print("result:", json.dumps(row), flush=True)
    print("backend | length | first call ms | median ms (fwd+bwd, wall)")
    for r in rows:
        if "error" in r:
            print(f"{r['backend']} | {r['length']} | error: {r['error']}")
        else:
            print(f"{r['backend']} | {r['length']} | {r['first_ms']:.2f} | {r['median_ms']:.2f}")
    return {"rows": rows}


if __name__ == "__main__":
    main(parse_args(BenchAttentionArgs))
