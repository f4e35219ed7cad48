"""lib/train/internals.py: the one door to private transformers/accelerate API.

- the installed versions are ones it was checked against (this pin fails when CI's versions move, so that the fast
  path's equivalence tests - test_train_speed.py, test_sampler.py, test_train.py, test_multigpu.py - keep testing
  the fast path and not the fallback);
- with the switch off (an unchecked version), training takes the libraries' own code paths, says so in one line,
  and trains the same weights;
- no other lib/ module names those private attributes (nor Optuna's outside lib/search/storage.py).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import torch

from lib.train import internals

ROOT = Path(__file__).resolve().parents[1]


def test_installed_versions_are_the_checked_ones():
    installed = internals.installed_versions()
    assert internals._checked(installed), (
        f"installed {installed}; lib/train/internals.py was checked against {internals.CHECKED}. Read each private "
        "use it lists against the new release, run the equivalence tests, then add the version to CHECKED")
    assert internals.FAST_PATH or internals.os.environ.get("GEMMA_OCR_PRIVATE_API") == "0"


def test_an_unchecked_version_turns_the_fast_path_off():
    assert not internals._checked({"transformers": "5.99.0", "accelerate": "1.16.0"})
    assert not internals._checked({"transformers": "5.25.0", "accelerate": "2.0.0"})
    assert internals._checked({"transformers": f"{internals.CHECKED['transformers'][0]}.1",
                               "accelerate": f"{internals.CHECKED['accelerate'][-1]}.0"})


def _train(tmp_path, name, **kw):
    from lib.data import load_samples
    from lib.perf import bench_processor, build_gemma3_vlm, write_ocr_workload
    from lib.train import SFTArgs, build_trainer

    proc = bench_processor("tiny")
    samples = load_samples(write_ocr_workload(tmp_path / "d", 6, min_tokens=5, max_tokens=30, image_size=32, seed=2))
    args = SFTArgs(model_name="x", output_dir=str(tmp_path / name), per_device_train_batch_size=2, max_steps=3,
                   learning_rate=5e-2, max_grad_norm=1e-3, logging_steps=1, seed=3, save_steps=10 ** 6, **kw)
    trainer = build_trainer(args, model=build_gemma3_vlm("tiny", proc, dtype=torch.float32, seed=4), processor=proc,
                            train_samples=samples, eval_samples=[], printer=lambda *a: None)
    trainer.train()
    weights = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    return trainer, weights, [h["loss"] for h in trainer.state.log_history if "loss" in h]


def test_off_the_fast_path_the_libraries_own_code_trains_the_same_weights(tmp_path, monkeypatch, caplog):
    fast, w_fast, loss_fast = _train(tmp_path, "fast")
    inner = fast.model.get_base_model().model
    assert "get_image_features" in inner.__dict__ and "get_placeholder_mask" in inner.__dict__

    monkeypatch.setattr(internals, "FAST_PATH", False)
    monkeypatch.setattr(internals, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="lib.train.internals"):
        plain, w_plain, loss_plain = _train(tmp_path, "plain")
        grouped = _train(tmp_path, "grouped", group_by_length=True)[0]
    inner = plain.model.get_base_model().model
    assert "get_image_features" not in inner.__dict__ and "get_placeholder_mask" not in inner.__dict__
    warnings = [r for r in caplog.records if "fast path off" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()
    # group_by_length off the fast path: the Trainer's own sampler and loader
    assert type(grouped._get_train_sampler()).__name__ == "RandomSampler"
    assert type(grouped.get_train_dataloader()).__name__ != "ContinuousEpochs"
    assert loss_fast == pytest.approx(loss_plain, rel=1e-6)
    for k in w_plain:
        torch.testing.assert_close(w_fast[k], w_plain[k], rtol=1e-6, atol=1e-8)


TRANSFORMERS_PRIVATE = (r"\._get_train_sampler\b", r"\b_clip_grad_norm\b", r"_get_collator_with_removed_columns",
                        r"_has_mixed_mesh_grads", r"callback_handler\.train_dataloader", r"\bseed_worker\b",
                        r"get_placeholder_mask\s*=", r"get_image_features\s*=", r"\.num_processes\s*,\s*\w+\.process_index\s*=")
OPTUNA_PRIVATE = (r"\._storage\b", r"\._trial_id\b", r"\._study_id\b")


@pytest.mark.parametrize("patterns,allowed", [(TRANSFORMERS_PRIVATE, {"lib/train/internals.py"}),
                                              (OPTUNA_PRIVATE, {"lib/search/storage.py"})],
                         ids=["transformers+accelerate", "optuna"])
def test_private_api_is_named_in_one_module(patterns, allowed):
    found = set()
    for path in (ROOT / "lib").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if any(re.search(p, text) for p in patterns):
            found.add(str(path.relative_to(ROOT)))
    assert found <= allowed, sorted(found - allowed)
