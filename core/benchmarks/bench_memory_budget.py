"""What `--compile_memory_budget` trades, per decoder layer, measured on the CPU: activation bytes kept for the
backward pass vs FLOPs recomputed in it.

Builds a Gemma 3 text decoder of the chosen shape's width (4B / 12B: the published sizes, random weights) with
`--layers` layers (one sliding-window + one global by default), LoRA r16 on q,k,v,o,gate,up,down as the benchmark
and `core/sft_gemma.py` use, compiles the layers with `lib.train.speed.compile_layers` at each budget, and runs one
forward + backward on a `--seq_len`-token sequence, counting

- bytes of activations autograd saved for the backward (`torch.autograd.graph.saved_tensors_hooks`; weights,
  which are saved too but cost no extra memory, not counted),
- FLOPs of the forward and of the backward (`torch.utils.flop_counter.FlopCounterMode`; the backward's extra FLOPs
  at a budget < 1 are the recomputation),

and prints them per layer with the ratios to budget 1.0. The backend is `aot_eager_decomp_partition`: the same AOT
autograd min-cut partitioner (and activation-memory-budget knapsack) inductor uses, without generating kernels, so
it runs here; on the GPU inductor additionally fuses the pointwise work, so the bytes are indicative, not the GPU's
exact figures. Speed is not measured here (see bench_train.py on a GPU).

    python -m core.benchmarks.bench_memory_budget --shape 4b --seq_len 1024 --budgets 1.0 0.5 0.33 0.25
    python -m core.benchmarks.bench_memory_budget --shape tiny --seq_len 64          # seconds; what the test runs
"""

from __future__ import annotations

import dataclasses
import time

from lib.config import field, parse_args


@dataclasses.dataclass
class BudgetArgs:
    shape: str = field("4b", help="widths from lib.perf.GEMMA3_SHAPES (4b, 12b, tiny)")
    layers: int = field(2, help="decoder layers built (the pattern alternates sliding-window and global attention)")
    seq_len: int = field(1024, help="tokens in the one sequence run forward + backward")
    budgets: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.33, 0.25],
                                 help="activation memory budgets to compare (1.0 first: the reference)")
    lora_r: int = field(16, help="LoRA rank")
    out_json: str = field("", help="also write the results here (JSON)")
    seed: int = field(0, help="weights and input seed")


def build_decoder(shape: str, layers: int, lora_r: int, seed: int):
    """A Gemma3TextModel with the shape's widths and `layers` layers (small vocabulary: the embedding plays no part),
    wrapped with LoRA on the language model's linear layers; fp32 on the CPU."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Gemma3TextModel

    from lib.perf import gemma3_text_config

    # alternate sliding-window and global layers (the shape's 5:1 pattern would give only sliding ones for 2 layers)
    types = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)]
    try:
        cfg = gemma3_text_config(shape, num_layers=layers, vocab_size=256, layer_types=types, pad_token_id=0)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    model = Gemma3TextModel(cfg)
    for p in model.parameters():
        p.requires_grad_(False)
    lora = LoraConfig(r=lora_r, lora_alpha=lora_r,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(model, lora)
    with torch.no_grad():  # non-zero B so the LoRA path carries gradient like a trained adapter
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.01)
    return model


def counting_backend(flops: dict):
    """A torch.compile backend = `aot_eager_decomp_partition` (inductor's decompositions and min-cut partitioner, no
    code generation) whose forward and backward graphs add the FLOPs they run to flops["forward"] /
    flops["backward"]. Counting inside the compiled graphs, not around the compiled call: a dispatch mode around it
    would keep dynamo from compiling."""
    import functools
    from importlib import import_module

    import torch
    import torch._functorch.config as functorch_config
    from functorch.compile import min_cut_rematerialization_partition
    from torch._dynamo.backends.common import aot_autograd
    from torch.utils.flop_counter import FlopCounterMode

    def counting(kind: str):
        def compiler(gm, example_inputs):
            def run(args):
                with FlopCounterMode(display=False) as mode:
                    out = torch.fx.Interpreter(gm).boxed_run(args)
                flops[kind] += mode.get_total_flops()
                return out

            run._boxed_call = True
            return run

        return compiler

    def backend(gm, example_inputs, **_):
        with functorch_config.patch({"unlift_effect_tokens": True}):
            return aot_autograd(
                fw_compiler=counting("forward"), bw_compiler=counting("backward"),
                decompositions=lambda: import_module("torch._inductor.compile_fx").select_decomp_table(),
                partition_fn=functools.partial(min_cut_rematerialization_partition, compiler="inductor"),
            )(gm, example_inputs)

    return backend


def measure(model, inputs_embeds, budget: float) -> dict:
    """One compiled forward + backward at `budget`: bytes saved for the backward, FLOPs the compiled layers ran
    forward and backward, the LoRA gradients (for the equality check), seconds."""
    import torch
    import torch._dynamo

    from lib.train.speed import compile_layers

    torch._dynamo.reset()  # the budget is read when a layer's graph compiles
    flops = {"forward": 0, "backward": 0}
    compile_layers(model, memory_budget=budget, backend=counting_backend(flops))
    saved = [0]
    weights = {p.data_ptr() for p in model.parameters()}

    def pack(t):  # activations only: a weight saved for the backward is not extra memory
        if t.data_ptr() not in weights:
            saved[0] += t.numel() * t.element_size()
        return t

    t0 = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(inputs_embeds=inputs_embeds).last_hidden_state
        loss = out.float().pow(2).mean()
    loss.backward()
    secs = time.perf_counter() - t0
    if flops["forward"] == 0:
        raise RuntimeError("the compiled layers did not run (no FLOPs counted): nothing was measured")
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return {"budget": budget, "saved_bytes": saved[0], "forward_flops": flops["forward"],
            "backward_flops": flops["backward"], "loss": float(loss.detach()), "seconds": secs, "_grads": grads}


def main(args: BudgetArgs) -> dict:
    import torch
    import torch._functorch.config as functorch_config

    if not args.budgets or args.budgets[0] != 1.0:
        raise SystemExit("--budgets must start with 1.0 (the reference the others are compared with)")
    model = build_decoder(args.shape, args.layers, args.lora_r, args.seed)
    model.train()
    hidden = model.get_base_model().config.hidden_size
    g = torch.Generator().manual_seed(args.seed)
    x = torch.randn(1, args.seq_len, hidden, generator=g)
    rows = []
    try:
        for b in args.budgets:
            rows.append(measure(model, x, b))
    finally:
        functorch_config.activation_memory_budget = 1.0
        torch._dynamo.reset()
    ref = rows[0]
    for r in rows:
        grads = r.pop("_grads")
        if r is ref:
            ref_grads = grads
        diff = max(float((grads[k] - ref_grads[k]).abs().max() / ref_grads[k].abs().max().clamp(min=1e-30))
                   for k in ref_grads)
        r.update({"saved_ratio": r["saved_bytes"] / ref["saved_bytes"],
                  "total_flops_ratio": (r["forward_flops"] + r["backward_flops"])
                  / (ref["forward_flops"] + ref["backward_flops"]),
                  "recomputed_flops_share": (r["backward_flops"] - ref["backward_flops"])
                  / (ref["forward_flops"] + ref["backward_flops"]),
                  "lora_grad_max_rel_diff": diff})
    n = args.layers
    lines = [f"{args.shape}-wide decoder, {n} layers, {args.seq_len} tokens, LoRA r{args.lora_r} (CPU, fp32; "
             f"partitioner of aot_eager_decomp_partition)",
             "budget | activations kept, MiB/layer | x budget 1.0 | fwd+bwd GFLOP/layer | x budget 1.0 | recomputed share | "
             "LoRA grad max rel diff",
             "--- | --- | --- | --- | --- | --- | ---"]
    for r in rows:
        lines.append(f"{r['budget']:.2f} | {r['saved_bytes'] / n / 2 ** 20:.1f} | {r['saved_ratio']:.2f} | "
                     f"{(r['forward_flops'] + r['backward_flops']) / n / 1e9:.1f} | {r['total_flops_ratio']:.3f} | "
                     f"{100 * r['recomputed_flops_share']:.1f} % | {r['lora_grad_max_rel_diff']:.1e}")
    table = "\n".join(lines)
    print(table, flush=True)
    result = {"args": dataclasses.asdict(args), "torch": torch.__version__, "rows": rows, "table": table}
    if args.out_json:
        from lib.results import atomic_write_json

        atomic_write_json(result, args.out_json)
    return result


if __name__ == "__main__":
    main(parse_args(BudgetArgs, description=__doc__.split("\n\n")[0]))
