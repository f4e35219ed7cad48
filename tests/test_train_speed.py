"""The training speed pieces (lib/train/speed.py) compute exactly what the plain path computes.

- chunked label-only cross-entropy == full-logits cross-entropy (value and gradients; with Gemma softcapping too),
- `label_only_loss` on a tiny Gemma 3 VLM with LoRA == the model's own loss, same LoRA gradients,
- the frozen vision tower runs without autograd (no graph through it) and the loss/gradients do not change, nor
  do they with the sync-free image-token mask,
- the length-grouped sampler and pad-to-multiple collation keep every sample exactly once per epoch.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lib.train.internals import no_grad_frozen_vision, no_sync_placeholder_mask  # noqa: E402
from lib.train.speed import chunked_label_ce, label_only_loss  # noqa: E402


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("softcap", [None, 30.0])
def test_chunked_ce_matches_full_logits(softcap, compiled):
    """Eager, and through torch.compile (inductor, C++ on this CPU; Triton on the GPU: `compile_loss`)."""
    g = torch.Generator().manual_seed(0)
    B, T, H, V = 2, 37, 16, 101
    h = torch.randn(B, T, H, dtype=torch.float64, generator=g, requires_grad=True)
    w = (torch.randn(V, H, dtype=torch.float64, generator=g) * 0.5).requires_grad_()
    y = torch.randint(0, V, (B, T), generator=g)
    y[:, :10] = -100
    y[1, 30:] = -100
    # several chunks, a ragged last one
    total, n = chunked_label_ce(h, y, w, softcap=softcap, chunk=7, compiled=compiled)
    (total / n).backward()
    gh, gw = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    logits = h[:, :-1] @ w.t()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y[:, 1:].reshape(-1), ignore_index=-100)
    ref.backward()
    assert int(n) == int((y[:, 1:] != -100).sum())
    assert abs(float(total / n) - float(ref)) < 1e-6 * abs(float(ref))
    assert torch.allclose(gh, h.grad, atol=1e-7, rtol=1e-5)
    assert torch.allclose(gw, w.grad, atol=1e-7, rtol=1e-5)
    # no label at all: a differentiable zero, not NaN
    total0, n0 = chunked_label_ce(h, torch.full_like(y, -100), w, compiled=compiled)
    assert int(n0) == 0 and float(total0) == 0.0


def _tiny_lora_batch():
    from PIL import Image
    from peft import LoraConfig, get_peft_model

    from lib.perf import bench_processor, build_gemma3_vlm

    torch.manual_seed(0)
    proc = bench_processor("tiny")
    model = build_gemma3_vlm("tiny", proc, dtype=torch.float32)
    for p in model.parameters():
        p.requires_grad_(False)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=r".*language_model.*\.(q_proj|v_proj|gate_proj|down_proj)$"))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    msgs = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "OCR"}]},
             {"role": "assistant", "content": [{"type": "text", "text": "你好世界" * k}]}] for k in (3, 9)]
    images = [[Image.new("RGB", (64, 64), (40 * i, 90, 0))] for i in range(2)]
    texts = [proc.apply_chat_template(m, tokenize=False) for m in msgs]
    batch = proc(text=texts, images=images, return_tensors="pt", padding=True, padding_side="right")
    labels = batch["input_ids"].clone()
    labels[batch["attention_mask"] == 0] = -100
    labels[:, :30] = -100
    inputs = dict(batch)
    inputs["labels"] = labels
    return model, inputs


def _grads(model):
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


def test_label_only_loss_and_frozen_vision_match_model_loss():
    model, inputs = _tiny_lora_batch()
    model.train()
    ref = model(**inputs).loss
    ref.backward()
    g_ref = _grads(model)
    assert g_ref, "LoRA got no gradient"

    got = label_only_loss(model, inputs, chunk=5)
    got.backward()
    g = _grads(model)
    assert abs(float(got) - float(ref)) < 1e-5
    assert g.keys() == g_ref.keys()
    for k in g_ref:
        assert torch.allclose(g[k], g_ref[k], atol=1e-6, rtol=1e-4), k

    assert no_grad_frozen_vision(model) is True
    base = model.get_base_model()
    feats = base.model.get_image_features(inputs["pixel_values"]).pooler_output
    assert not feats.requires_grad  # no graph through the vision tower
    assert no_sync_placeholder_mask(model) is True  # image-token mask without host-side checks: same numbers
    got2 = label_only_loss(model, inputs)
    got2.backward()
    g2 = _grads(model)
    assert abs(float(got2) - float(ref)) < 1e-5
    for k in g_ref:
        assert torch.allclose(g2[k], g_ref[k], atol=1e-6, rtol=1e-4), k


def test_no_grad_vision_refused_when_vision_trains():
    model, _ = _tiny_lora_batch()
    base = model.get_base_model()
    next(base.model.vision_tower.parameters()).requires_grad_(True)
    assert no_grad_frozen_vision(model) is False


@pytest.mark.parametrize("side", ["right", "left"])
def test_padded_batch_mask_and_loss_equal_single_samples(side, tmp_path):
    """A padded batch of two different-length samples gives the same summed loss as each sample alone, the image
    tokens attend to each other both ways inside their image, and with right padding (what the chunked loss uses)
    no query row is fully masked - left padding leaves pad queries with no key at all."""
    from lib.data import load_samples
    from lib.perf import bench_processor, build_gemma3_vlm, write_ocr_workload
    from lib.prompt import load_prompt
    from lib.train.args import SFTArgs
    from lib.train.collator import OCRCollator
    from lib.train.model import apply_peft

    torch.manual_seed(0)
    proc = bench_processor("tiny")
    model = apply_peft(build_gemma3_vlm("tiny", proc, dtype=torch.float32), SFTArgs(model_name="x", lora_r=4, lora_alpha=8))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    samples = load_samples(write_ocr_workload(tmp_path, 2, min_tokens=10, max_tokens=50, image_size=64, seed=3))
    collator = OCRCollator(proc, load_prompt(), padding_side=side, pad_to_multiple_of=16)
    batch = collator(samples)
    assert batch["input_ids"].shape[1] % 16 == 0
    pad = batch["attention_mask"] == 0
    assert pad.any(), "the two samples should need padding"
    assert bool(pad[:, -1].any()) == (side == "right")

    masks = []
    layer0 = model.get_base_model().model.language_model.layers[0]
    hook = layer0.register_forward_pre_hook(lambda m, a, kw: masks.append(kw["attention_mask"]), with_kwargs=True)
    model.eval()
    with torch.no_grad():
        total = label_only_loss(model, dict(batch), num_items_in_batch=1)
        singles = [label_only_loss(model, dict(collator([s])), num_items_in_batch=1) for s in samples]
    hook.remove()
    assert abs(float(total) - float(sum(singles))) < 1e-4 * abs(float(total))

    mask = masks[0]
    assert mask.dtype == torch.bool and mask.dim() == 4
    fully_masked = ~mask[:, 0].any(-1)  # [B, T]: query rows that may attend to nothing
    if side == "right":
        assert not fully_masked.any()
    else:
        assert fully_masked[pad].all() and not fully_masked[~pad].any()
    tt = batch["token_type_ids"]
    for b in range(tt.shape[0]):
        img = (tt[b] == 1).nonzero().squeeze(1)
        assert len(img) == 16
        first, last = int(img[0]), int(img[-1])
        assert mask[b, 0, first, last], "image tokens must see later image tokens (bidirectional block)"
        assert not mask[b, 0, first - 1, first], "text before the image must not see the image"


def test_group_by_length_sampler_keeps_every_sample_and_cuts_padding(tmp_path):
    from lib.data import load_samples
    from lib.perf import bench_processor, build_gemma3_vlm, write_ocr_workload
    from lib.train.args import SFTArgs
    from lib.train import build_trainer

    proc = bench_processor("tiny")
    samples = load_samples(write_ocr_workload(tmp_path / "d", 160, min_tokens=5, max_tokens=200, image_size=32, seed=1))
    args = SFTArgs(model_name="x", output_dir=str(tmp_path / "o"), per_device_train_batch_size=4,
                   gradient_accumulation_steps=1, group_by_length=True, max_steps=1, seed=5)
    trainer = build_trainer(args, model=build_gemma3_vlm("tiny", proc, dtype=torch.float32), processor=proc,
                            train_samples=samples, eval_samples=[], printer=lambda *a: None)

    def padding(order):
        lens = [len(samples[i].text) for i in order]
        return sum(max(lens[i:i + 4]) * len(lens[i:i + 4]) - sum(lens[i:i + 4]) for i in range(0, len(lens), 4))

    grouped = list(trainer._get_train_sampler())
    assert sorted(grouped) == list(range(len(samples)))  # every sample exactly once per epoch
    # in one process the loader streams through the epochs (set_epoch names the epoch its next iter() gives); when
    # resuming, the Trainer's plain loader, whose set_epoch reaches the sampler (exact data order on resume); both
    # give epoch 2 the same batches
    stream = trainer.get_train_dataloader()
    stream.set_epoch(2)
    streamed = [b["input_ids"] for b in stream]
    stream.close()
    trainer._resuming = True
    loader = trainer.get_train_dataloader()
    loader.set_epoch(2)
    assert loader.batch_sampler.sampler.epoch == 2
    plain = [b["input_ids"] for b in loader]
    assert len(streamed) == len(plain) == 40 and all(torch.equal(x, y) for x, y in zip(streamed, plain))
    shuffled = torch.randperm(len(samples), generator=torch.Generator().manual_seed(0)).tolist()
    assert padding(grouped) < 0.5 * padding(shuffled)


def test_continuous_epochs_train_what_the_plain_loader_trains(tmp_path):
    """group_by_length in one process: one DataLoader iterator (2 worker processes) runs through all 3 epochs, and
    training meets the same batches in the same order - same per-step batch shapes, losses and final weights - as
    with the Trainer's plain loader, which starts a new iterator (workers reset) every epoch."""
    from transformers import Trainer

    from lib.data import load_samples
    from lib.perf import bench_processor, build_gemma3_vlm, write_ocr_workload
    from lib.train.args import SFTArgs
    from lib.train import build_trainer
    from lib.train.sampler import ContinuousEpochs

    proc = bench_processor("tiny")
    samples = load_samples(write_ocr_workload(tmp_path / "d", 7, min_tokens=5, max_tokens=60, image_size=32, seed=3))

    def run(plain: bool, out: str):
        args = SFTArgs(model_name="x", output_dir=str(tmp_path / out), per_device_train_batch_size=3,
                       num_train_epochs=3, group_by_length=True, dataloader_num_workers=2, learning_rate=1e-2,
                       logging_steps=1, seed=6, save_steps=10 ** 6)
        trainer = build_trainer(args, model=build_gemma3_vlm("tiny", proc, dtype=torch.float32, seed=7),
                                processor=proc, train_samples=samples, eval_samples=[], printer=lambda *a: None)
        if plain:
            trainer.get_train_dataloader = lambda: Trainer.get_train_dataloader(trainer)
        shapes, iters = [], []
        step, base_iter = trainer.training_step, torch.utils.data.DataLoader.__iter__

        def training_step(model, inputs, *a, **kw):
            shapes.append(tuple(inputs["input_ids"].shape))
            return step(model, inputs, *a, **kw)

        def counting_iter(self):
            iters.append(1)
            return base_iter(self)

        trainer.training_step = training_step
        try:
            torch.utils.data.DataLoader.__iter__ = counting_iter
            trainer.train()
        finally:
            torch.utils.data.DataLoader.__iter__ = base_iter
        loader = trainer.callback_handler.train_dataloader
        assert isinstance(loader, ContinuousEpochs) is not plain
        if not plain:
            assert loader._it is None  # closed when train() returned
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        weights = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
        return shapes, len(iters), losses, weights

    shapes_c, iters_c, losses_c, w_c = run(False, "continuous")
    shapes_p, iters_p, losses_p, w_p = run(True, "plain")
    assert len(shapes_c) == 9 and shapes_c == shapes_p  # 3 epochs x 3 batches (3, 3, 1), same order
    assert (iters_c, iters_p) == (1, 3)
    assert losses_c == pytest.approx(losses_p, rel=1e-5)
    for k in w_p:
        torch.testing.assert_close(w_c[k], w_p[k], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("loss_impl", ["chunked", "logits"])
def test_compile_layers_compiles_the_chunked_loss_and_workers_persist(tmp_path, loss_impl):
    """--compile_layers also routes the chunked loss through torch.compile (compile_loss); data loader workers are
    kept across epochs whenever there are any."""
    from lib.data import load_samples
    from lib.perf import bench_processor, build_gemma3_vlm, write_ocr_workload
    from lib.train.args import SFTArgs
    from lib.train import build_trainer

    proc = bench_processor("tiny")
    samples = load_samples(write_ocr_workload(tmp_path / "d", 4, min_tokens=5, max_tokens=20, image_size=32, seed=1))
    args = SFTArgs(model_name="x", output_dir=str(tmp_path / "o"), compile_layers=True, loss_impl=loss_impl,
                   dataloader_num_workers=2, max_steps=1)
    try:
        trainer = build_trainer(args, model=build_gemma3_vlm("tiny", proc, dtype=torch.float32), processor=proc,
                                train_samples=samples, eval_samples=[], printer=lambda *a: None)
    finally:
        torch._dynamo.reset()
    assert trainer.compile_loss is (loss_impl == "chunked")
    assert trainer.args.dataloader_persistent_workers is True
    args0 = SFTArgs(model_name="x", output_dir=str(tmp_path / "o0"), dataloader_num_workers=0, max_steps=1)
    trainer0 = build_trainer(args0, model=build_gemma3_vlm("tiny", proc, dtype=torch.float32), processor=proc,
                             train_samples=samples, eval_samples=[], printer=lambda *a: None)
    assert trainer0.compile_loss is False and trainer0.args.dataloader_persistent_workers is False


@pytest.mark.slow
def test_compiled_layers_with_a_memory_budget_match_eager():
    """compile_layers (regional, dynamic, activation memory budget 0.3) computes the eager loss and LoRA gradients
    of the tiny VLM. The `aot_eager_decomp_partition` backend runs the AOT autograd partitioner inductor uses without
    generating C++ (the GPU runs inductor, docs/GPU.md). What the budget trades (fewer saved bytes, more recomputed
    FLOPs): tests/test_bench_memory_budget.py."""
    import torch._functorch.config as functorch_config

    from lib.train.speed import compile_layers

    model, inputs = _tiny_lora_batch()
    model.train()
    no_grad_frozen_vision(model)
    ref = label_only_loss(model, inputs)
    ref.backward()
    g_ref = _grads(model)
    from torch._dynamo.utils import counters

    graphs_before = counters["stats"]["unique_graphs"]
    try:
        torch._dynamo.reset()  # the budget is read when a graph compiles
        assert compile_layers(model, memory_budget=0.3, backend="aot_eager_decomp_partition") > 0
        assert functorch_config.activation_memory_budget == 0.3
        got = label_only_loss(model, inputs)
        got.backward()
        g = _grads(model)
        assert counters["stats"]["unique_graphs"] > graphs_before, "no layer compiled: eager was compared with eager"
    finally:  # process-wide settings: leave none behind for later tests
        functorch_config.activation_memory_budget = 1.0
        torch._dynamo.reset()
    assert abs(float(got) - float(ref)) < 1e-5
    assert g.keys() == g_ref.keys()
    for k in g_ref:
        assert torch.allclose(g[k], g_ref[k], atol=1e-6, rtol=1e-4), k


def test_qlora_preparation_keeps_frozen_weights_in_their_dtype():
    """apply_peft on a 4-bit model freezes the base and adds fp32 LoRA weights, but does not copy the frozen
    embedding / vision tower / norms to fp32 the way peft's prepare_model_for_kbit_training does (29.4 -> 19.6 GiB
    peak on the 4B shape, docs/GPU.md). Runs on CPU: the 4-bit flag is what apply_peft looks at; quantized layers themselves need CUDA."""
    from lib.perf import bench_processor, build_gemma3_vlm
    from lib.train.args import SFTArgs
    from lib.train.model import apply_peft

    model = build_gemma3_vlm("tiny", bench_processor("tiny"), dtype=torch.bfloat16)
    model.is_loaded_in_4bit = True
    model = apply_peft(model, SFTArgs(model_name="x", load_in_4bit=True, lora_r=4, lora_alpha=8))
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p for n, p in model.named_parameters() if not p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert all(p.dtype == torch.float32 for p in trainable.values())
    assert {p.dtype for p in frozen.values()} == {torch.bfloat16}, "a frozen weight was upcast"
    assert any("vision_tower" in n for n in frozen) and any("embed_tokens" in n for n in frozen)


@pytest.mark.parametrize("kwargs,match", [({"compile_memory_budget": 0.5}, "compile_layers"),
                                          ({"compile_memory_budget": 0.0, "compile_layers": True}, r"\(0, 1\]"),
                                          ({"compile_memory_budget": 1.5, "compile_layers": True}, r"\(0, 1\]")])
def test_memory_budget_refused_where_it_would_do_nothing_or_is_out_of_range(kwargs, match):
    from lib.train.args import SFTArgs

    with pytest.raises(ValueError, match=match):
        SFTArgs(model_name="x", **kwargs)
    assert SFTArgs(model_name="x", compile_layers=True, compile_memory_budget=0.5).compile_memory_budget == 0.5


def test_fast_module_walks_train_the_same_weights(tmp_path):
    """OCRTrainer's cheap per-step module walks (model.train() / zero_grad / clip over trainable parameters / cached
    FLOP parameter count) train exactly the weights plain Trainer methods do, and leave nothing patched behind."""
    from transformers import Trainer, TrainerCallback

    from lib.data import load_samples
    from lib.perf import bench_processor, build_gemma3_vlm, write_ocr_workload
    from lib.train.args import SFTArgs
    from lib.train import OCRTrainer, build_trainer

    proc = bench_processor("tiny")
    samples = load_samples(write_ocr_workload(tmp_path / "d", 6, min_tokens=5, max_tokens=30, image_size=32, seed=2))

    def run(plain: bool, out: str, fsdp: bool = False):
        args = SFTArgs(model_name="x", output_dir=str(tmp_path / out), per_device_train_batch_size=2, max_steps=3,
                       learning_rate=5e-2, max_grad_norm=1e-3, logging_steps=1, seed=3, save_steps=10 ** 6)
        trainer = build_trainer(args, model=build_gemma3_vlm("tiny", proc, dtype=torch.float32, seed=4),
                                processor=proc, train_samples=samples, eval_samples=[], printer=lambda *a: None)
        seen = []

        class Spy(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                seen.append(sorted(k for k in ("train", "zero_grad") if k in trainer.model.__dict__))

        trainer.add_callback(Spy())
        if fsdp:  # FSDP2 swaps in sharded parameters during train(): the cached lists would be stale, so no patches
            assert trainer._plain_walks() is False
            trainer._plain_walks = lambda: True  # what is_fsdp_enabled / is_deepspeed_enabled make it return
            trainer.train()
            return seen
        if plain:  # the Trainer's own per-step walks
            trainer.train = lambda *a, **kw: Trainer.train(trainer, *a, **kw)
            trainer.floating_point_ops = lambda inputs: Trainer.floating_point_ops(trainer, inputs)
            trainer._clip_grad_norm = lambda model: Trainer._clip_grad_norm(trainer, model)
        trainer.train()
        assert seen == [[] if plain else ["train", "zero_grad"]] * 3  # the fast walks were in place while training
        assert "train" not in trainer.model.__dict__ and "zero_grad" not in trainer.model.__dict__
        weights = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
        norms = [h["grad_norm"] for h in trainer.state.log_history if "grad_norm" in h]
        return trainer, weights, norms, trainer.state.total_flos

    fast, w_fast, n_fast, flos_fast = run(False, "fast")
    _, w_plain, n_plain, flos_plain = run(True, "plain")
    assert isinstance(fast, OCRTrainer) and len(n_fast) == 3
    assert n_fast == pytest.approx(n_plain, rel=1e-6) and min(n_fast) > 1e-3  # clipping was active
    assert flos_fast == flos_plain > 0
    for k in w_plain:
        assert torch.equal(w_fast[k], w_plain[k]), k
    assert all(p.grad is None for p in fast.model.parameters())  # zero_grad cleared after the last step
    assert run(False, "fsdp", fsdp=True) == [[]] * 3


def test_fast_train_mode_still_switches_a_module_left_in_eval():
    from lib.perf import bench_processor, build_gemma3_vlm
    from lib.train.trainer import _FastModuleWalks

    model = build_gemma3_vlm("tiny", bench_processor("tiny"), dtype=torch.float32)
    model.train()
    with _FastModuleWalks(model):
        model.model.vision_tower.eval()
        assert model.train() is model
        assert all(m.training for m in model.modules())
        model.eval()
        assert not any(m.training for m in model.modules())
    assert "train" not in model.__dict__


def test_freeze_modules_keeps_named_parameters_frozen_in_full_fine_tuning():
    """Full fine-tuning with freeze_modules: the named parameters get no gradient (and no backward runs through a
    frozen tower fed by frozen inputs), every other parameter trains; a pattern that matches nothing is refused."""
    from lib.perf import bench_processor, build_gemma3_vlm
    from lib.train.args import SFTArgs
    from lib.train.model import apply_peft

    proc = bench_processor("tiny")
    model = apply_peft(build_gemma3_vlm("tiny", proc, dtype=torch.float32),
                       SFTArgs(model_name="x", finetune="full", freeze_modules=["vision_tower"]))
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all("vision_tower" in n for n in frozen)
    assert all(p.requires_grad for n, p in model.named_parameters() if "vision_tower" not in n)
    with pytest.raises(ValueError, match="freeze_modules: \\['no_such_module'\\] match no parameter"):
        apply_peft(build_gemma3_vlm("tiny", proc, dtype=torch.float32),
                   SFTArgs(model_name="x", finetune="full", freeze_modules=["no_such_module"]))
