"""Speed and memory for training vision-language models, with public API only. Each piece is switched by an SFTArgs
field (`loss_impl`, `compile_layers`); measured in docs/GPU.md. The pieces that need private library API
(`vision_no_grad`, the streamed loader, cheaper clipping) are in lib/train/internals.py.

- `chunked_label_ce`: cross-entropy on the label positions only, from the final hidden states, in chunks, without
  ever materialising (tokens x vocabulary) logits for the whole batch; the gradient is computed in the forward pass
  chunk by chunk (so the head runs 2 matmuls per chunk, not 3) and Gemma's final-logit softcapping is honoured.
- `label_only_loss`: the model's backbone + `chunked_label_ce`, the loss `compute_loss` returns (mean over label
  tokens, like transformers' and TRL's).
- `compile_layers`: regional `torch.compile` of every decoder/encoder layer (dynamic sequence length) - fuses the
  elementwise work (RMSNorm, rotary, GeLU, LoRA scale/add) and removes most of the per-op Python overhead that
  makes eager training of these models CPU-bound on an H100.

Not for: choosing hyperparameters, or anything that changes what the model computes (tests check equality).
"""

from __future__ import annotations

import functools
from typing import Any

import torch

__all__ = ["chunked_label_ce", "loss_index_of", "label_only_loss", "compile_layers", "base_model_of"]


def _ce_chunk(hs: torch.Tensor, w: torch.Tensor, ys: torch.Tensor, softcap: float | None, want_grad: bool):
    """One chunk: (sum of CE(hs @ w^T, ys), d(sum)/d(logits) in hs's dtype or None). The logits are rounded to the
    matmul's dtype, then fp32 for the log-softmax - what the model's own head + cross-entropy compute. Written so
    torch.compile can fuse everything after the matmul into two passes over the logits (`compile_loss`)."""
    logits = (hs @ w.t()).float()
    if softcap:
        t = torch.tanh(logits / softcap)
        logits = t * softcap
    lse = torch.logsumexp(logits, dim=-1)
    total = (lse - logits.gather(1, ys[:, None]).squeeze(1)).sum()
    if not want_grad:
        return total, None
    g = torch.exp(logits - lse[:, None])
    cols = torch.arange(logits.shape[1], device=logits.device)
    g = torch.where(cols[None, :] == ys[:, None], g - 1.0, g)
    if softcap:
        g = g * (1.0 - t * t)
    return total, g.to(hs.dtype)


@functools.lru_cache(maxsize=1)
def _compiled_ce_chunk():
    # dynamic: the last chunk of every batch has a different number of rows
    return torch.compile(_ce_chunk, dynamic=True)


class _ChunkedCE(torch.autograd.Function):
    """sum_i CE(h_i @ W^T, y_i) over rows of h, chunked; grads for h (and W if it trains) computed in forward."""

    @staticmethod
    def forward(ctx, h, w, y, chunk: int, softcap: float | None, need_w: bool, compiled: bool = False):
        n = h.shape[0]
        need_h = bool(getattr(ctx, "needs_input_grad", (False,))[0])
        need_w = need_w and bool(getattr(ctx, "needs_input_grad", (False, False))[1])
        total = torch.zeros((), device=h.device, dtype=torch.float32)
        grad_h = torch.empty_like(h) if need_h else None
        grad_w = torch.zeros_like(w, dtype=torch.float32) if need_w else None
        fn = _compiled_ce_chunk() if compiled else _ce_chunk
        for s in range(0, n, chunk):
            hs = h[s:s + chunk]
            part, g = fn(hs, w, y[s:s + chunk], softcap, grad_h is not None or grad_w is not None)
            total += part
            if g is not None:
                if grad_h is not None:
                    grad_h[s:s + chunk] = g @ w
                if grad_w is not None:
                    grad_w += (g.t() @ hs).float()
            del g
        ctx.save_for_backward(grad_h if grad_h is not None else torch.empty(0),
                              grad_w if grad_w is not None else torch.empty(0))
        ctx.has_h, ctx.has_w = grad_h is not None, grad_w is not None
        ctx.w_dtype = w.dtype
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        gh = grad_h * grad_out.to(grad_h.dtype) if ctx.has_h else None
        gw = (grad_w * grad_out).to(ctx.w_dtype) if ctx.has_w else None
        return gh, gw, None, None, None, None, None


def chunked_label_ce(hidden: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, *, softcap: float | None = None,
                     chunk: int = 1024, shift: bool = True, loss_index: torch.Tensor | None = None,
                     compiled: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of token cross-entropies, number of label tokens) for next-token prediction: position t's hidden state
    predicts labels[t + 1] (shift=True); positions whose label is -100 are never projected to the vocabulary.

    `loss_index` (optional): the flat indices of the label positions in `labels[..., 1:]`, computed on the host by
    the collator (`loss_index_of`). With it nothing here waits for the GPU; without it a boolean mask is used, whose
    size the host must read back (one device sync).

    `compiled`: run each chunk's log-softmax and its gradient through torch.compile (fused: two passes over the
    chunk's logits instead of ~seven eager kernels; same values up to float rounding order)."""
    if shift:
        hidden = hidden[..., :-1, :]
        labels = labels[..., 1:]
    if loss_index is not None:
        loss_index = loss_index.to(hidden.device, non_blocking=True)
        h = hidden.reshape(-1, hidden.shape[-1]).index_select(0, loss_index)
        y = labels.reshape(-1).index_select(0, loss_index.to(labels.device))
        n = int(loss_index.numel())  # a host int: no device round trip
    else:
        mask = labels != -100
        h = hidden[mask]
        y = labels[mask]
        n = mask.sum()
    if h.shape[0] == 0:
        return hidden.sum() * 0.0, n
    need_w = weight.requires_grad and torch.is_grad_enabled()
    if not torch.is_grad_enabled():
        with torch.no_grad():
            return _ChunkedCE.forward(_NoCtx(), h, weight, y, chunk, softcap, False, compiled), n
    return _ChunkedCE.apply(h, weight, y, chunk, softcap, need_w, compiled), n


class _NoCtx:
    def save_for_backward(self, *a):
        pass


def loss_index_of(labels: torch.Tensor) -> torch.Tensor:
    """Flat indices of the positions of `labels[..., 1:]` that are not -100 (host-side, for `chunked_label_ce`)."""
    return (labels[..., 1:].reshape(-1) != -100).nonzero().squeeze(1)


def base_model_of(model):
    """The transformers model under PEFT / DDP wrappers."""
    m = getattr(model, "module", model)
    while hasattr(m, "get_base_model"):
        b = m.get_base_model()
        if b is m:
            break
        m = b
    return m


def label_only_loss(model, inputs: dict[str, Any], *, chunk: int = 1024, num_items_in_batch=None,
                    compiled: bool = False) -> torch.Tensor:
    """Mean next-token cross-entropy over label tokens, computed from the backbone's last hidden state without the
    full logits. Works for `*ForConditionalGeneration` VLMs (Gemma 3, Qwen2.5-VL): backbone = `.model`, head =
    `get_output_embeddings()`, softcapping from the text config.

    The forward goes through `model` itself (so DDP/FSDP wrappers see it and synchronise gradients) with
    `logits_to_keep=1` (the head projects one position per row); the backbone's full last hidden state is taken by a
    forward hook."""
    base = base_model_of(model)
    labels = inputs["labels"]
    loss_index = inputs.get("loss_index")
    kwargs = {k: v for k, v in inputs.items() if k not in ("labels", "num_items_in_batch", "loss_index")}
    kwargs["use_cache"] = False
    captured: dict[str, torch.Tensor] = {}

    def grab(_module, _args, out):
        captured["h"] = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]

    handle = base.model.register_forward_hook(grab)
    try:
        model(**kwargs, logits_to_keep=1)
    finally:
        handle.remove()
    head = base.get_output_embeddings()
    weight = head.weight
    if hasattr(weight, "full_tensor"):  # FSDP2 DTensor shard -> the whole head
        weight = weight.full_tensor()
    text_cfg = base.config.get_text_config()
    softcap = getattr(text_cfg, "final_logit_softcapping", None)
    total, n = chunked_label_ce(captured["h"], labels, weight, softcap=softcap, chunk=chunk, loss_index=loss_index,
                                compiled=compiled)
    denom = num_items_in_batch if num_items_in_batch is not None else (max(n, 1) if isinstance(n, int) else n.clamp(min=1))
    return total / denom


def compile_layers(model, *, dynamic: bool = True, memory_budget: float = 1.0, backend="inductor") -> int:
    """Regional torch.compile: compile each decoder layer of the language model and each encoder layer of the vision
    tower in place (`nn.Module.compile`). Returns the number of layers compiled.

    `memory_budget` < 1 sets torch's `activation_memory_budget`: the partitioner of each compiled layer then keeps at
    most that share of its activations for the backward and recomputes the rest (cheapest first) inside the compiled
    backward. It is a process-wide setting read when a graph compiles (the first steps), so it is set here, before
    any layer runs, and holds for every layer compiled afterwards in this process."""
    # imported here: the compiler stack loads in seconds, and only compiled runs need it
    import torch._dynamo
    import torch._functorch.config as functorch_config

    functorch_config.activation_memory_budget = float(memory_budget)

    # Every layer shares one code object; train/eval, batch size 1 vs >1 and sliding/global layers each add a
    # compiled variant. Past the default limit of 8, dynamo silently runs the layer eagerly (docs/GPU.md).
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    if hasattr(torch._dynamo.config, "accumulated_cache_size_limit"):
        torch._dynamo.config.accumulated_cache_size_limit = max(torch._dynamo.config.accumulated_cache_size_limit, 512)
    base = base_model_of(model)
    n = 0
    for mod in base.modules():
        cls = type(mod).__name__
        if cls.endswith("DecoderLayer") or cls.endswith("EncoderLayer") or cls.endswith("VisionBlock"):
            mod.compile(dynamic=dynamic, backend=backend)
            n += 1
    return n
