"""core/benchmarks/bench_memory_budget.py on the tiny width: compiled layers at budgets below 1 keep fewer bytes for
the backward and recompute instead (more backward FLOPs), with the same LoRA gradients."""

from __future__ import annotations

import pytest

pytest.importorskip("peft")


@pytest.mark.slow
def test_budget_trades_saved_bytes_for_recomputed_flops(tmp_path):
    import torch._functorch.config as functorch_config

    from core.benchmarks.bench_memory_budget import BudgetArgs, main

    res = main(BudgetArgs(shape="tiny", seq_len=64, budgets=[1.0, 0.3], out_json=str(tmp_path / "b.json")))
    ref, low = res["rows"]
    assert ref["forward_flops"] > 0 and ref["backward_flops"] > 0
    assert low["forward_flops"] == ref["forward_flops"]  # the forward is the same work
    assert low["saved_bytes"] < ref["saved_bytes"] and low["backward_flops"] > ref["backward_flops"]
    assert 0 < low["recomputed_flops_share"] < 1
    assert low["lora_grad_max_rel_diff"] < 1e-5
    assert functorch_config.activation_memory_budget == 1.0  # the process-wide setting is restored
    assert (tmp_path / "b.json").is_file()


def test_budgets_must_start_with_the_reference():
    from core.benchmarks.bench_memory_budget import BudgetArgs, main

    with pytest.raises(SystemExit, match="start with 1.0"):
        main(BudgetArgs(shape="tiny", budgets=[0.5, 1.0]))
