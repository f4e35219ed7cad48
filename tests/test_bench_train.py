"""core/benchmarks/bench_train.py on the tiny shape (CPU): TRL and our trainer side by side in one process, the
loss/gradient check on an identical batch, and `--profile_steps` (profiled steps come after the timed ones and are
not timed)."""

from __future__ import annotations

import gzip
import json

import pytest

pytest.importorskip("trl")


def test_bench_train_tiny_side_by_side_with_profile(tmp_path):
    from core.benchmarks.bench_train import BenchTrainArgs, main

    out = tmp_path / "bench.json"
    res = main(BenchTrainArgs(shapes=["tiny"], configs=["trl:bs=2:gc=0", "ours:bs=2"], n_samples=6,
                              min_answer_tokens=20, max_answer_tokens=60, warmup_steps=1, steps=2, profile_steps=1,
                              profile_trace_dir=str(tmp_path / "traces"), work_dir=str(tmp_path / "w"),
                              out_json=str(out)))
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
        # the Chrome trace of the profiled step is written, gzipped, and names the host operators
        with gzip.open(p["trace"], "rt", encoding="utf-8") as f:
            trace = json.load(f)
        assert any(str(ev.get("name", "")).startswith("aten::") for ev in trace["traceEvents"])
    assert json.loads(out.read_text(encoding="utf-8"))["rows"][1]["config"] == "ours:bs=2"


def test_kernel_class_names_real_kernel_kinds():
    from lib.perf import kernel_class

    assert kernel_class("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64") == "matmul"
    assert kernel_class("nvjet_tst_128x256_64x4_2x1_v_bz_coopB_TNN") == "matmul"
    assert kernel_class("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3") == "attention"
    assert kernel_class("pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<256, 64>>") == "attention"
    assert kernel_class("triton_per_fused__to_copy_add_mean_mul_pow_rsqrt_0") == "triton (compiled)"
    assert kernel_class("Memcpy HtoD (Pinned -> Device)") == "copy/fill"
    assert kernel_class("void at::native::vectorized_elementwise_kernel<4, at::native::AUnaryFunctor>") == "other"


def test_inductor_knob_is_set_for_one_configuration_only(monkeypatch):
    import torch._inductor.config as inductor_config

    import core.benchmarks.bench_train as bt

    seen = {}

    def fake(shape, spec, *a):
        seen[spec] = inductor_config.cpp_wrapper
        return {"shape": shape, "config": spec}, None

    monkeypatch.setattr(bt, "_run_config", fake)
    before = inductor_config.cpp_wrapper
    bt.run_config("tiny", "ours:bs=2:inductor.cpp_wrapper=1", None, None, None, None, None, None)
    bt.run_config("tiny", "ours:bs=2", None, None, None, None, None, None)
    assert seen == {"ours:bs=2:inductor.cpp_wrapper=1": True, "ours:bs=2": before} and before is False
    assert inductor_config.cpp_wrapper is before
    with pytest.raises(SystemExit, match="no 'not_an_option'"):
        bt.run_config("tiny", "ours:inductor.not_an_option=1", None, None, None, None, None, None)
