"""Study outputs without training: trial table, best config files, plots, checkpoint cleanup (real Optuna study,
trials told by hand with the user attributes the driver and the pruning callback record)."""

from __future__ import annotations

import csv
import json

import optuna
from optuna.trial import TrialState

from lib.search.report import cleanup_checkpoints, write_best_outputs, write_plots, write_trial_table
from lib.search.storage import FAIL_REASON_ATTR


def _study(tmp_path):
    study = optuna.create_study(study_name="r", storage=f"sqlite:///{tmp_path}/r.db")
    study.set_user_attr("search", {"metric": "eval_cer", "objective": "eval_cer",
                                   "base_training_config": {"model_name": "m", "max_steps": 10}})
    specs = [(3e-4, [0.9, 0.5], TrialState.COMPLETE), (1e-3, [0.8, 0.3], TrialState.COMPLETE),
             (1e-6, [1.2], TrialState.PRUNED), (1e-2, [], TrialState.FAIL)]
    for lr, values, state in specs:
        t = study.ask()
        t.suggest_float("learning_rate", 1e-6, 1e-1, log=True)
        d = tmp_path / f"trial_{t.number}"
        (d / "lora").mkdir(parents=True)
        (d / "checkpoint-5").mkdir()
        (d / "lora" / "adapter_model.safetensors").write_bytes(b"w" * 1000)
        (d / "checkpoint-5" / "adapter_model.safetensors").write_bytes(b"w" * 1000)
        (d / "train.log").write_text("log")
        for step, v in zip((5, 10), values):
            t.report(v, step)
        t.set_user_attr("output_dir", str(d))
        t.set_user_attr("training_config", {"model_name": "m", "max_steps": 10, "learning_rate": lr})
        t.set_user_attr("duration_s", 12.5)
        if state == TrialState.PRUNED:
            t.set_user_attr("pruned_at_step", 5)
            t.set_user_attr("median_at_pruned_step", 0.85)
            study.tell(t, state=state)
        elif state == TrialState.FAIL:
            t.set_user_attr(FAIL_REASON_ATTR, "killed after the trial time limit of 20 s (--trial-timeout)")
            study.tell(t, state=state)
        else:
            study.tell(t, values[-1])
    return study


def test_table_best_files_plots_and_cleanup(tmp_path):
    study = _study(tmp_path)
    csv_path, md_path = write_trial_table(study, tmp_path / "out")
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL"]
    assert rows[2]["pruned_at_step"] == "5" and rows[2]["median_at_pruned_step"] == "0.85"
    assert rows[3]["fail_reason"].startswith("killed after the trial time limit")
    md = md_path.read_text()
    assert "Best trial: **1**" in md and "COMPLETE: 2" in md and "PRUNED: 1" in md
    best = write_best_outputs(study, out_dir=tmp_path / "out", studies_dir=tmp_path / "studies")
    assert best["best_trial"] == 1
    assert json.loads((tmp_path / "out" / "best_config.json").read_text()) == \
        {"model_name": "m", "max_steps": 10, "learning_rate": 1e-3}
    assert json.loads((tmp_path / "studies" / "r_best_config.json").read_text())["learning_rate"] == 1e-3
    params = json.loads((tmp_path / "studies" / "r_best_params.json").read_text())
    assert params["best_value"] == 0.3 and params["n_pruned"] == 1 and params["n_failed"] == 1
    plots = {p.name for p in write_plots(study, tmp_path / "out")}
    assert {"optimization_history.png", "param_importances.png", "intermediate_values.png"} <= plots
    freed = cleanup_checkpoints(study, root=tmp_path)
    assert freed["kept"] == 1 and freed["freed_bytes"] == 7000  # 3 other trials x 2 files + best's checkpoint
    assert (tmp_path / "trial_1" / "lora" / "adapter_model.safetensors").is_file()  # the best adapter stays
    assert not (tmp_path / "trial_1" / "checkpoint-5").exists()
    assert not list((tmp_path / "trial_0").rglob("*.safetensors")) and (tmp_path / "trial_0" / "train.log").is_file()


def test_keep_all_keeps_everything(tmp_path):
    study = _study(tmp_path)
    assert cleanup_checkpoints(study, keep_all=True, root=tmp_path)["freed_bytes"] == 0
    assert len(list(tmp_path.rglob("*.safetensors"))) == 8
