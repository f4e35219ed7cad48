"""Training throughput and memory: the project's trainer vs plain TRL `SFTTrainer`, side by side in one run.

Builds Gemma-3-4B / 12B-shaped VLMs from config with random weights (bf16, sdpa; speed does not depend on weights),
writes OCR-like samples (one 896x896 image + a 500-1500-token answer each; `--max-answer-tokens 2000` for longer),
and for each configuration runs `--warmup-steps` + `--steps` optimizer steps, printing samples/s, tokens/s, peak GPU
memory and MFU (useful FLOPs per `lib.perf.train_flops` over time x 798 TFLOP/s, the H100's measured bf16 peak).

"ours" is the code `core/sft_gemma.py` runs: `lib.train.build_trainer(SFTArgs(...), model=..., processor=...)`
with the same collator, loss and Trainer subclass - no separate fast path. Before timing, each configuration's
loss and LoRA gradients on the same fixed batch are compared with TRL's (deterministic, identical adapters).

    python -m core.benchmarks.bench_train --shapes 4b --configs trl:bs=1:gc=1 trl:bs=4:gc=0 ours
    python -m core.benchmarks.bench_train --shapes tiny --steps 2 --warmup-steps 1 --n-samples 8   # CPU check

A configuration is `trl` or `ours`, then `:key=value` overrides: `bs` (per-device batch), `gc` (gradient
checkpointing 0/1), `ga` (gradient accumulation), `cudnn=0` (keep SDPA off cuDNN for that run), `q4=1` (QLoRA: the
language model's linear layers quantized to NF4 with bitsandbytes, vision tower unquantized; CUDA only); for `ours`
any `SFTArgs` field too (e.g. `ours:bs=4:gc=0`); `inductor.<name>=<value>` sets that `torch._inductor.config` option
for the one configuration (a probe knob, e.g. `inductor.cpp_wrapper=1`). A configuration that fails (e.g. out of memory) is reported as a row
with its error and the next one runs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from lib.config import field, parse_args


@dataclasses.dataclass
class BenchTrainArgs:
    shapes: list[str] = field(default_factory=lambda: ["4b"], help="model shapes from lib.perf.GEMMA3_SHAPES (4b, 12b, tiny)")
    configs: list[str] = field(default_factory=lambda: ["trl:bs=1:gc=1", "trl:bs=4:gc=0", "ours"],
                               help="configurations to run, in order (see the module docstring)")
    n_samples: int = field(64, help="synthetic samples (the dataloader cycles over them)")
    min_answer_tokens: int = field(500, help="shortest answer (tokens)")
    max_answer_tokens: int = field(1500, help="longest answer (tokens); docs/GPU.md's TRL table used 500-1500")
    warmup_steps: int = field(3, help="optimizer steps run before timing starts")
    steps: int = field(25, help="timed optimizer steps")
    lora_r: int = field(16, help="LoRA rank (both trainers)")
    lora_alpha: int = field(16, help="LoRA alpha (both trainers)")
    profile_steps: int = field(0, help="after the timed steps, run this many more under torch.profiler (not timed) "
                               "and print where each step's time goes: device busy share, top operators by device "
                               "and by host time")
    profile_trace_dir: str = field("", help="with --profile_steps: also write each configuration's Chrome trace of "
                                   "the profiled steps here (<shape>_<config>.json.gz; open in Perfetto)")
    profile_top: int = field(15, help="with --profile_steps: how many top operators to print")
    check_grads: bool = field(True, help="compare loss and LoRA gradients with TRL on one fixed batch first")
    check_batch: int = field(2, help="samples in the fixed comparison batch")
    work_dir: str = field("runs/bench_train", help="where the synthetic samples and trainer outputs go")
    out_json: str = field("", help="also write the results table here (JSON)")
    seed: int = field(0, help="seed for data, weights and adapters")


def _parse_config(text: str) -> tuple[str, dict]:
    kind, *rest = text.split(":")
    if kind not in ("trl", "ours"):
        raise SystemExit(f"configuration {text!r}: must start with 'trl' or 'ours'")
    opts = {}
    for item in rest:
        if "=" not in item:
            raise SystemExit(f"configuration {text!r}: '{item}' is not key=value")
        k, v = item.split("=", 1)
        opts[k] = v
    return kind, opts


def _lora_targets() -> str:
    # The language model's projections only; the vision tower stays frozen and un-adapted.
    return r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"


def _set_deterministic_lora(model, seed: int) -> int:
    """Give every LoRA weight a value derived from its name, so two trainers' adapters are identical (and B != 0,
    which makes the loss depend on the adapters and every adapter gradient non-trivial)."""
    import zlib

    import torch

    n = 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                key = name.split("lora_", 1)[1] + "|" + name.split(".lora_", 1)[0].split("model.", 1)[-1]
                g = torch.Generator().manual_seed(zlib.crc32(key.encode()) + seed)
                p.copy_((torch.randn(p.shape, generator=g) * 0.02).to(p.dtype))
                n += 1
    return n


def _lora_grads(model) -> dict:
    out = {}
    for name, p in model.named_parameters():
        if "lora_" in name and p.grad is not None:
            key = name.split("lora_", 1)[1] + "|" + name.split(".lora_", 1)[0].split("model.", 1)[-1]
            out[key] = p.grad.detach().float().cpu().clone()
    return out


def _loss_and_grads(trainer, idx: list[int], end_of_turn_id: int | None = None) -> tuple[float, dict, int]:
    """One forward/backward of the trainer's own collator + compute_loss on dataset items `idx` (eval mode: no
    dropout; identical for both trainers)."""
    import torch

    model = trainer.model
    batch = trainer.data_collator([trainer.train_dataset[i] for i in idx])
    if end_of_turn_id is not None:  # TRL also trains the "\n" the Gemma template writes after <end_of_turn>
        prev = batch["input_ids"][:, :-1]
        batch["labels"][:, 1:][prev == end_of_turn_id] = -100
    inputs = trainer._prepare_inputs(batch)
    n_label = int((inputs["labels"][..., 1:] != -100).sum()) if "labels" in inputs else -1
    model.eval()
    model.zero_grad(set_to_none=True)
    with trainer.compute_loss_context_manager():
        loss = trainer.compute_loss(model, inputs)
    loss.backward()
    grads = _lora_grads(model)
    model.zero_grad(set_to_none=True)
    model.train()
    return float(loss.detach().float().cpu()), grads, n_label


def _compare(ref: tuple, got: tuple) -> dict:
    import torch

    l_ref, g_ref, n_ref = ref
    l_got, g_got, n_got = got
    common = sorted(set(g_ref) & set(g_got))
    out = {"loss_ref": l_ref, "loss": l_got, "loss_rel_diff": abs(l_got - l_ref) / max(abs(l_ref), 1e-12),
           "label_tokens_ref": n_ref, "label_tokens": n_got, "lora_tensors_ref": len(g_ref), "lora_tensors": len(g_got),
           "lora_tensors_common": len(common)}
    if common:
        a = torch.cat([g_ref[k].flatten() for k in common]).double()
        b = torch.cat([g_got[k].flatten() for k in common]).double()
        out["grad_rel_l2"] = float((a - b).norm() / a.norm().clamp(min=1e-30))
        out["grad_cosine"] = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
    return out


def _trl_trainer(model, processor, samples, prompt, opts: dict, args: BenchTrainArgs, out_dir: Path, max_steps: int):
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from PIL import Image
    from trl import SFTConfig, SFTTrainer

    from lib.prompt import build_messages

    rows = []
    for s in samples:
        msgs = build_messages(prompt, image=None, answer=s.text)
        rows.append({"prompt": msgs[:-1], "completion": msgs[-1:], "images": [Image.open(s.image_path).convert("RGB")]})
    ds = Dataset.from_list(rows)
    cuda = torch.cuda.is_available()
    cfg = SFTConfig(
        output_dir=str(out_dir), per_device_train_batch_size=int(opts.get("bs", 1)),
        gradient_accumulation_steps=int(opts.get("ga", 1)),
        gradient_checkpointing=bool(int(opts.get("gc", 1))),  # TRL's default is on
        max_length=None,  # TRL's default 1024 would cut the answers (and change the work)
        max_steps=max_steps, learning_rate=2e-4, logging_steps=10 ** 6, save_strategy="no", report_to=[],
        bf16=cuda, use_cpu=not cuda, seed=args.seed, dataset_num_proc=None,
    )
    lora = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=0.0, target_modules=_lora_targets(),
                      task_type="CAUSAL_LM")
    return SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=processor, peft_config=lora)


def _ours_trainer(model, processor, samples, opts: dict, args: BenchTrainArgs, out_dir: Path, max_steps: int):
    from lib.train import SFTArgs, build_trainer

    names = {f.name for f in dataclasses.fields(SFTArgs)}
    aliases = {"bs": "per_device_train_batch_size", "gc": "gradient_checkpointing", "ga": "gradient_accumulation_steps",
               "nw": "dataloader_num_workers"}
    values = dict(model_name="bench-in-memory", output_dir=str(out_dir), max_steps=max_steps, lora_r=args.lora_r,
                  lora_alpha=args.lora_alpha, lora_dropout=0.0, seed=args.seed, learning_rate=2e-4,
                  gradient_accumulation_steps=1, logging_steps=10 ** 6, save_steps=10 ** 6, eval_steps=10 ** 6,
                  report_to="none")
    for k, v in opts.items():
        values[aliases.get(k, k)] = v
    unknown = sorted(set(values) - names)
    if unknown:
        raise SystemExit(f"SFTArgs has no field(s) {unknown}; known: {sorted(names)}")
    sft_args = SFTArgs(**{k: _coerce_like(SFTArgs, k, v) for k, v in values.items()})
    return build_trainer(sft_args, model=model, processor=processor, train_samples=list(samples), eval_samples=[],
                         printer=lambda *a: print("[ours]", *a, flush=True))


def _coerce_like(cls, name: str, value):
    import typing

    hint = typing.get_type_hints(cls).get(name)
    if isinstance(value, str):
        if hint is bool or hint == "bool":
            return value.lower() in ("1", "true", "yes", "on")
        if hint is int:
            return int(value)
        if hint is float:
            return float(value)
    return value


def _free():
    import gc

    import torch

    gc.collect()
    torch._dynamo.reset()  # each configuration compiles its own layers (and drops the last model's graphs)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def run_config(shape: str, spec: str, processor, samples, data_path: Path, prompt, args: BenchTrainArgs,
               ref_check: tuple | None) -> tuple[dict, tuple | None]:
    """One configuration; `inductor.<name>=<value>` keys set torch._inductor.config for this configuration only."""
    _, opts = _parse_config(spec)
    inductor = {k.split(".", 1)[1]: v for k, v in opts.items() if k.startswith("inductor.")}
    if not inductor:
        return _run_config(shape, spec, processor, samples, data_path, prompt, args, ref_check)
    import torch._inductor.config as inductor_config

    patch = {}
    for name, text in inductor.items():
        if not hasattr(inductor_config, name):
            raise SystemExit(f"configuration {spec!r}: torch._inductor.config has no {name!r}")
        cur = getattr(inductor_config, name)
        patch[name] = (text.lower() in ("1", "true", "yes", "on") if isinstance(cur, bool) else
                       type(cur)(text) if isinstance(cur, (int, float)) else text)
    with inductor_config.patch(patch):
        return _run_config(shape, spec, processor, samples, data_path, prompt, args, ref_check)


def _run_config(shape: str, spec: str, processor, samples, data_path: Path, prompt, args: BenchTrainArgs,
                ref_check: tuple | None) -> tuple[dict, tuple | None]:
    import torch

    from lib.perf import (H100_BF16_PEAK_FLOPS, BatchRecorder, StepProfiler, StepTimer, build_gemma3_vlm,
                          model_counts)

    kind, opts = _parse_config(spec)
    opts = {k: v for k, v in opts.items() if not k.startswith("inductor.")}
    # Probe knob for any configuration: cudnn=0 keeps PyTorch's SDPA off the cuDNN backend for this run.
    cudnn = opts.pop("cudnn", None)
    q4 = bool(int(opts.pop("q4", 0)))
    prev_cudnn = torch.backends.cuda.cudnn_sdp_enabled()
    if cudnn is not None:
        torch.backends.cuda.enable_cudnn_sdp(bool(int(cudnn)))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    _free()
    model = build_gemma3_vlm(shape, processor, dtype=dtype, device=device, seed=args.seed)
    if q4:
        from lib.perf import quantize_language_model_4bit

        print(f"[{spec}] quantized {quantize_language_model_4bit(model)} language-model linear layers to NF4", flush=True)
        if kind == "ours":
            opts["load_in_4bit"] = "1"
    out_dir = Path(args.work_dir) / f"{shape}_{spec.replace(':', '_').replace('=', '')}"
    max_steps = args.warmup_steps + args.steps + args.profile_steps
    if kind == "trl":
        trainer = _trl_trainer(model, processor, samples, prompt, opts, args, out_dir, max_steps)
    else:
        trainer = _ours_trainer(model, processor, samples, opts, args, out_dir, max_steps)
    counts = model_counts(trainer.model)
    row: dict = {"shape": shape, "config": spec, "trainable_params": counts.trainable}

    check = None
    if args.check_grads:
        _set_deterministic_lora(trainer.model, args.seed)
        eot = processor.tokenizer.convert_tokens_to_ids("<end_of_turn>") if kind == "trl" else None
        check = _loss_and_grads(trainer, list(range(args.check_batch)), eot)
        if ref_check is not None and not q4:  # a 4-bit base computes a different function: nothing to compare
            row["vs_trl"] = _compare(ref_check, check)
        # fresh adapters for the timed run (values do not affect speed)
        _set_deterministic_lora(trainer.model, args.seed + 1)

    recorder = BatchRecorder(trainer)
    timer = StepTimer(args.warmup_steps, recorder, last_step=args.warmup_steps + args.steps)
    trainer.add_callback(timer)
    trace = (str(Path(args.profile_trace_dir) / f"{shape}_{spec.replace(':', '_').replace('=', '')}.json.gz")
             if args.profile_trace_dir else "")
    profiler = StepProfiler(args.warmup_steps + args.steps, args.profile_steps, top=args.profile_top, trace_path=trace)
    trainer.add_callback(profiler)
    out = trainer.train()
    secs = timer.seconds()
    # training health: did any trainable weight become NaN/inf? (checked once, after timing)
    nonfinite = sum(int(not bool(p.detach().isfinite().all())) for p in trainer.model.parameters() if p.requires_grad)
    tot = recorder.summary(counts, timer.first_record, timer.last_record)
    if profiler.summary() is not None:
        row["profile"] = profiler.summary()
        print(_fmt_profile(spec, row["profile"]), flush=True)
    row.update({
        "steps_timed": timer.steps_timed, "seconds": secs, "s_per_step": secs / max(timer.steps_timed, 1),
        "samples_per_s": tot["sequences"] / secs, "tokens_per_s": tot["tokens"] / secs,
        "loss_tokens_per_s": tot["loss_tokens"] / secs, "mean_tokens_per_sample": tot["tokens"] / max(tot["sequences"], 1),
        "tflop_per_sample": tot["flops"] / max(tot["sequences"], 1) / 1e12,
        "mfu": tot["flops"] / secs / H100_BF16_PEAK_FLOPS, "peak_gib": timer.peak_gib(),
        "train_loss": float(out.training_loss), "nonfinite_trainable_tensors": nonfinite, "step_time_median": sorted(timer.step_times)[len(timer.step_times) // 2]
        if timer.step_times else float("nan"), "step_times": [round(t, 4) for t in timer.step_times],
    })
    del trainer, model, recorder, timer, profiler
    torch.backends.cuda.enable_cudnn_sdp(prev_cudnn)
    _free()
    return row, check


def _fmt_profile(spec: str, p: dict) -> str:
    lines = [f"[{spec}] profile of {p['steps']} step(s): {p['wall_ms_per_step']:.1f} ms/step wall, "
             f"{p['device_kernel_ms_per_step']:.1f} ms/step of device kernels "
             f"(device busy {100 * p['device_busy_share']:.0f} %)"]
    if p.get("kernel_classes_ms_per_step"):
        lines.append("  device time by kind of kernel (ms/step): " + ", ".join(
            f"{k} {v:.1f}" for k, v in p["kernel_classes_ms_per_step"].items()))
    for title, key, rows in (("device", "self_device_ms_per_step", p["top_device"]),
                             ("host", "self_cpu_ms_per_step", p["top_cpu"])):
        lines.append(f"  top operators by {title} time (ms/step, calls/step):")
        lines += [f"    {r[key]:9.2f}  {r['calls_per_step']:7.1f}  {r['name']}" for r in rows] or ["    (none: no GPU)"]
    return "\n".join(lines)


def _fmt_table(rows: list[dict]) -> str:
    hdr = ["shape", "config", "s/step", "samples/s", "tokens/s", "MFU", "peak GiB", "vs TRL: loss rel", "grad rel L2"]
    lines = [" | ".join(hdr), " | ".join("---" for _ in hdr)]
    for r in rows:
        if "error" in r:
            lines.append(" | ".join([r["shape"], r["config"], "failed: " + r["error"][:120]] + ["-"] * (len(hdr) - 3)))
            continue
        v = r.get("vs_trl") or {}
        lines.append(" | ".join([
            r["shape"], r["config"], f"{r['s_per_step']:.3f}", f"{r['samples_per_s']:.2f}", f"{r['tokens_per_s']:.0f}",
            f"{100 * r['mfu']:.1f} %", f"{r['peak_gib']:.1f}",
            f"{v['loss_rel_diff']:.2e}" if "loss_rel_diff" in v else "-",
            f"{v['grad_rel_l2']:.2e}" if "grad_rel_l2" in v else "-"]))
    return "\n".join(lines)


def main(args: BenchTrainArgs) -> dict:
    import platform

    import torch

    from lib.data import load_samples
    from lib.perf import GEMMA3_SHAPES, bench_processor, write_ocr_workload
    from lib.prompt import load_prompt

    for s in args.shapes:
        if s not in GEMMA3_SHAPES:
            raise SystemExit(f"unknown shape {s!r}; known: {sorted(GEMMA3_SHAPES)}")
    for c in args.configs:
        _parse_config(c)
    env = {"torch": torch.__version__, "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "python": platform.python_version()}
    for mod in ("transformers", "trl", "peft", "accelerate"):
        env[mod] = __import__(mod).__version__
    print("env:", json.dumps(env), flush=True)
    prompt = load_prompt()
    rows = []
    for shape in args.shapes:
        processor = bench_processor(shape)
        size = GEMMA3_SHAPES[shape]["image_size"]
        data_path = write_ocr_workload(Path(args.work_dir) / f"data_{shape}", args.n_samples,
                                       min_tokens=args.min_answer_tokens, max_tokens=args.max_answer_tokens,
                                       image_size=size, seed=args.seed)
        samples = load_samples(data_path)
        ref = None
        for spec in args.configs:
            try:
                row, check = run_config(shape, spec, processor, samples, data_path, prompt, args, ref)
            except Exception as exc:  # one failing configuration (e.g. OOM) must not lose the others' rows
                import traceback

                traceback.print_exc()
                row, check = {"shape": shape, "config": spec, "error": f"{type(exc).__name__}: {exc}"[:500]}, None
                _free()
            if ref is None and spec.startswith("trl") and check is not None and "q4=1" not in spec:
                ref = check
            rows.append(row)
            print("result:", json.dumps(row), flush=True)
    table = _fmt_table(rows)
    print(table, flush=True)
    result = {"env": env, "args": dataclasses.asdict(args), "rows": rows, "table": table}
    if args.out_json:
        from lib.results import atomic_write_json

        atomic_write_json(result, args.out_json)
    return result


if __name__ == "__main__":
    main(parse_args(BenchTrainArgs))
