"""Training on the embedded tiny Gemma 3: answer-only labels, validation before training, over-long samples
skipped, what a run saves, resume from a checkpoint, the original's config keys, the generation CER in the logs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lib.config import ConfigError, parse_args
from lib.train.args import LEGACY_KEYS, SFTArgs

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "data" / "example.json"


def _args(tmp: Path, **kw) -> SFTArgs:
    base = dict(model_name="embedded/tiny-gemma3", input_data=str(EXAMPLE), val_ratio=0.25, output_dir=str(tmp),
                load_in_4bit=False, max_steps=4, per_device_train_batch_size=2, gradient_accumulation_steps=1,
                eval_steps=2, save_steps=2, eval_max_new_tokens=6, eval_cer_samples=2, learning_rate=1e-3,
                max_seq_length=512, seed=1)
    base.update(kw)
    return SFTArgs(**base)


@pytest.fixture(scope="module")
def gemma():
    from lib.modeling import load_model_and_processor

    return load_model_and_processor("embedded/tiny-gemma3")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from lib.train import run_training

    out = tmp_path_factory.mktemp("run")
    meta = run_training(_args(out), printer=lambda *a: None)
    return out, meta


def test_labels_are_exactly_the_answer_and_end_of_turn(gemma):
    from lib.data import load_samples
    from lib.prompt import load_prompt
    from lib.train.collator import IGNORE_INDEX, OCRCollator

    _, processor = gemma
    tok = processor.tokenizer
    samples = load_samples(EXAMPLE)[:3]  # different lengths -> left padding in the batch
    batch = OCRCollator(processor, load_prompt())(samples)
    image_id = tok.convert_tokens_to_ids("<image_soft_token>")
    assert (batch["input_ids"] == image_id).sum(dim=1).tolist() == [16, 16, 16]
    for row, s in enumerate(samples):
        ids, labels = batch["input_ids"][row].tolist(), batch["labels"][row].tolist()
        kept = [t for t in labels if t != IGNORE_INDEX]
        assert tok.convert_ids_to_tokens(kept) == list(s.text) + ["<end_of_turn>"]
        # contiguous, at the end of the row's answer, and never over image/prompt/padding tokens
        positions = [i for i, t in enumerate(labels) if t != IGNORE_INDEX]
        assert positions == list(range(positions[0], positions[0] + len(kept)))
        assert all(labels[i] == IGNORE_INDEX for i, t in enumerate(ids) if t in (image_id, tok.pad_token_id))
        assert [ids[i] for i in positions] == kept
    assert batch["attention_mask"][:, -1].all(), "batches are left-padded"


def test_loss_uses_only_label_positions(gemma):
    """The logits_to_keep loss equals a plain shifted cross-entropy over the full logits."""
    import torch

    from lib.data import load_samples
    from lib.prompt import load_prompt
    from lib.train.collator import OCRCollator
    from lib.train.trainer import OCRTrainer

    model, processor = gemma
    batch = OCRCollator(processor, load_prompt())(load_samples(EXAMPLE)[:3])
    labels = batch["labels"].clone()
    with torch.no_grad():
        full = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        ref = torch.nn.functional.cross_entropy(full[:, :-1].reshape(-1, full.shape[-1]), labels[:, 1:].reshape(-1),
                                                ignore_index=-100)
        fake = type("T", (), {"args": None, "loss_impl": "logits"})()
        ours = OCRTrainer.compute_loss(fake, model, dict(batch))
    assert torch.allclose(ours, ref, atol=1e-5)


def test_run_saves_adapter_processor_config_and_metadata(trained):
    out, meta = trained
    lora = out / "lora"
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "ocr_prompt.yml",
                 "training_config.json", "metadata.json"):
        assert (lora / name).is_file(), name
    assert (lora / "chat_template.jinja").is_file() or "chat_template" in (lora / "processor_config.json").read_text()
    saved = json.loads((lora / "metadata.json").read_text())
    for key in ("hardware", "versions", "train_wall_s", "peak_memory", "final_val_loss", "final_val_cer",
                "git_commit", "data", "base_model"):
        assert key in saved, key
    assert saved["data"]["train_hash"] and saved["data"]["n_train"] == 6 and saved["data"]["n_val"] == 2
    assert saved["base_model"] == "embedded/tiny-gemma3"
    cfg = json.loads((lora / "training_config.json").read_text())
    assert cfg["config"]["learning_rate"] == 1e-3
    # generation CER was computed at every evaluation and the best checkpoint was chosen by it
    evals = [h for h in meta["log_history"] if "eval_cer" in h]
    assert [h["step"] for h in evals][:2] == [2, 4]
    assert meta["metric_for_best_model"] == "eval_cer" and meta["best_checkpoint"]
    assert 0.0 <= saved["final_val_cer"]


def test_resume_continues_from_saved_step(trained, tmp_path):
    from lib.train import run_training

    out, _ = trained
    ckpt = out / "checkpoint-2"
    assert ckpt.is_dir()
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(ckpt, resumed_dir / "checkpoint-2")
    meta = run_training(_args(resumed_dir, resume_from_checkpoint="latest", max_steps=4), printer=lambda *a: None)
    losses = [h for h in meta["log_history"] if "loss" in h]
    before = [h for h in state["log_history"] if "loss" in h]
    assert meta["global_step"] == 4
    assert meta["resumed_from"].endswith("checkpoint-2")
    # the history up to step 2 is the checkpoint's (restored, not re-run); steps 3 and 4 are new
    assert [h["step"] for h in losses] == [1, 2, 3, 4]
    assert losses[:2] == before


def test_invalid_rows_refuse_training_or_are_skipped(tmp_path):
    from lib.train import TrainingDataError, run_training

    rows = json.loads(EXAMPLE.read_text())
    for r in rows:
        r["img_path"] = str((EXAMPLE.parent / r["img_path"]).resolve())
    rows[1]["ocr_results"] = "   "
    rows[2]["img_path"] = str(tmp_path / "missing.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    rows[3]["img_path"] = str(tmp_path / "broken.png")
    data = tmp_path / "bad.json"
    data.write_text(json.dumps(rows, ensure_ascii=False))
    with pytest.raises(TrainingDataError) as err:
        run_training(_args(tmp_path / "o1", input_data=str(data)), printer=lambda *a: None)
    msg = str(err.value)
    assert "row 1" in msg and "row 2" in msg and "row 3" in msg and "--skip_invalid" in msg
    assert not (tmp_path / "o1" / "lora").exists()
    meta = run_training(_args(tmp_path / "o2", input_data=str(data), skip_invalid=True, max_steps=1, val_ratio=0.0),
                        printer=lambda *a: None)
    assert meta["data"]["skipped_invalid"]["train"] == [1, 2, 3]
    assert meta["data"]["n_train"] == 5


def test_over_long_samples_are_reported_and_skipped(gemma, capsys):
    from lib.data import load_samples
    from lib.prompt import load_prompt
    from lib.train.collator import OCRCollator, measure_samples
    from lib.train.samples import filter_long

    _, processor = gemma
    collator = OCRCollator(processor, load_prompt())
    samples = load_samples(EXAMPLE)
    lengths = measure_samples(collator, samples)
    assert all(ln.n_image_tokens == 16 and ln.pixels == (96, 96) for ln in lengths)
    limit = sorted(ln.n_tokens for ln in lengths)[len(lengths) // 2]
    lines = []
    kept, stats = filter_long(collator, samples, limit, "train", printer=lines.append)
    too_long = [ln.index for ln in lengths if ln.n_tokens > limit]
    assert too_long and stats["skipped_too_long"] == too_long
    assert [s.index for s in kept] == [ln.index for ln in lengths if ln.n_tokens <= limit]
    assert any("skipped (never truncated" in line for line in lines)


def test_original_config_keys_are_mapped_or_refused(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"model_name": "embedded/tiny-gemma3", "train_split": "train[:90%]"}))
    with pytest.raises(ConfigError, match="val_data"):
        parse_args(SFTArgs, ["--config", str(cfg)], legacy_keys=LEGACY_KEYS)
    cfg.write_text(json.dumps({"report_to_wandb": True}))
    with pytest.raises(ConfigError, match="report_to"):
        parse_args(SFTArgs, ["--config", str(cfg)], legacy_keys=LEGACY_KEYS)
    cfg.write_text(json.dumps({"train_file": "x.json", "eval_steps": 7, "load_in_4bit": True}))
    args = parse_args(SFTArgs, ["--config", str(cfg), "--no-load_in_4bit", "--learning-rate", "0.01"],
                      legacy_keys=LEGACY_KEYS)
    assert args.input_data == "x.json" and args.eval_steps == 7 and args.load_in_4bit is False
    assert args.learning_rate == 0.01


def test_default_config_keeps_the_original_keys():
    args = parse_args(SFTArgs, [], legacy_keys=LEGACY_KEYS)
    assert args.model_name == "google/gemma-3-12b-it" and args.load_in_4bit is True
    assert (args.learning_rate, args.num_train_epochs, args.gradient_accumulation_steps,
            args.per_device_train_batch_size, args.lora_r, args.lora_alpha, args.max_seq_length) == \
        (2e-4, 5, 4, 1, 16, 16, 8192)
    args = parse_args(SFTArgs, ["--close_report_to_wandb", "--report_to", "wandb"], legacy_keys=LEGACY_KEYS)
    assert args.report_to == "none"


def test_full_model_checkpoint_loads_back_into_the_trainer(tmp_path):
    """A full fine-tune's checkpoint (written by save_pretrained in transformers 5's original key layout) is loaded
    back by `load_best_model_at_end` and by resuming: every weight equals the checkpoint's again, not the weights the
    model had (the Trainer's own load matched no key and kept them)."""
    import torch

    from lib.train import build_trainer

    trainer = build_trainer(_args(tmp_path, finetune="full", val_ratio=0.0), printer=lambda *a: None)
    ckpt = tmp_path / "checkpoint-7"
    trainer.save_model(str(ckpt))
    saved = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(1.0)
    trainer.state.best_model_checkpoint = str(ckpt)
    trainer._load_best_model()
    now = trainer.model.state_dict()
    assert all(torch.equal(now[k], v) for k, v in saved.items())
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.mul_(0.5)
    trainer._load_from_checkpoint(str(ckpt))
    now = trainer.model.state_dict()
    assert all(torch.equal(now[k], v) for k, v in saved.items())
