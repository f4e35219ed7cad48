"""core/benchmarks/bench_train.py on the tiny shape (CPU): TRL and our trainer side by side in one process, the
loss/gradient check on an identical batch, and `--profile_steps` (profiled steps come after the timed ones and are
not timed)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("trl")


def test_bench_train_tiny_side_by_side_with_profile(tmp_path):
    from core.benchmarks.bench_train import BenchTrainArgs, main

    out = tmp_path / "bench.json"
    res = main(BenchTrainArgs(shapes=["tiny"], configs=["trl:bs=2:gc=0", "ours:bs=2"], n_samples=6,
                              min_answer_tokens=20, max_answer_tokens=60, warmup_steps=1, steps=2, profile_steps=1,
                              work_dir=str(tmp_path / "w"), out_json=str(out)))
    rows = {r["config"]: r for r in res["rows"]}
    assert set(rows) == {"trl:bs=2:gc=0", "ours:bs=2"} and not any("error" in r for r in rows.values())
    ours = rows["ours:bs=2"]
    # fp32 on CPU: our loss/gradients are TRL's up to rounding
    assert ours["vs_trl"]["loss_rel_diff"] < 1e-5 and ours["vs_trl"]["grad_rel_l2"] < 1e-4
    for r in rows.values():
        assert r["steps_timed"] == 2 and r["samples_per_s"] > 0 and r["nonfinite_trainable_tensors"] == 0
        p = r["profile"]
        assert p["steps"] == 1 and p["wall_ms_per_step"] > 0 and p["top_cpu"]
        assert any(op["name"].startswith("aten::") for op in p["top_cpu"])
    assert json.loads(out.read_text(encoding="utf-8"))["rows"][1]["config"] == "ours:bs=2"
