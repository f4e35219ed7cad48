"""What a study leaves behind: the trial table (CSV + Markdown), plots, the best configuration, and disk cleanup.

- `trials.csv` / `trials.md`: one row per trial — number, state, objective value, duration, parameters, the step
  a pruned trial stopped at with its value and the completed trials' median there, and why a failed trial failed.
- `optimization_history.png`, `param_importances.png`, `intermediate_values.png` (optuna.visualization.matplotlib);
  an `.html` twin of each when plotly is installed.
- `best_config.json`: the full training configuration of the best trial — `core/sft_gemma.py --config` takes it
  unchanged (only training arguments; no output_dir, no optuna_* keys).
- `{study}_best_config.json` / `{study}_best_params.json` (the original's names) in the studies folder.

Not for: running the study (lib/search/driver.py).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from lib.results import atomic_write_json
from lib.search.storage import fail_reason

__all__ = ["trial_rows", "write_trial_table", "write_plots", "best_training_config", "write_best_outputs",
           "cleanup_checkpoints", "WEIGHT_PATTERNS"]

log = logging.getLogger(__name__)
# Files that hold weights (what costs disk at 12B); logs, configs and metrics of every trial are kept.
WEIGHT_PATTERNS = ("checkpoint-*", "*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf")
_TRAIN_ONLY_KEYS = ("output_dir", "optuna_storage", "optuna_study_name", "optuna_trial_number", "config")


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list) and all(isinstance(x, float) for x in v):
        return "[" + ", ".join(f"{x:.6g}" for x in v) + "]"
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def trial_rows(study: Any) -> list[dict[str, Any]]:
    rows = []
    param_names = sorted({k for t in study.get_trials(deepcopy=False) for k in t.params})
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        reason = fail_reason(study, t)
        if t.values is not None and len(t.values) > 1:
            value: Any = list(t.values)
        else:
            value = t.value
        duration = ua.get("duration_s")
        if duration is None and t.datetime_complete and t.datetime_start:
            duration = (t.datetime_complete - t.datetime_start).total_seconds()
        row = {"number": t.number, "state": t.state.name, "value": value,
               "duration_s": round(duration, 1) if isinstance(duration, (int, float)) else None}
        for p in param_names:
            row[f"params_{p}"] = t.params.get(p)
        row.update({"pruned_at_step": ua.get("pruned_at_step"), "median_at_pruned_step": ua.get("median_at_pruned_step"),
                    "fail_reason": reason.splitlines()[0][:200] if reason else None,
                    "output_dir": ua.get("output_dir")})
        rows.append(row)
    return rows


def write_trial_table(study: Any, out_dir: str | Path) -> tuple[Path, Path]:
    """trials.csv and trials.md in `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = trial_rows(study)
    cols = list(rows[0]) if rows else ["number", "state", "value", "duration_s"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(r.get(k)) for k in cols})
    csv_path = out_dir / "trials.csv"
    csv_path.write_text(buf.getvalue(), encoding="utf-8")
    md_cols = [c for c in cols if c != "output_dir"]
    settings = study.user_attrs.get("search", {})
    metric = settings.get("objective") or settings.get("metric", "value")
    lines = [f"# Study `{study.study_name}` — objective: {metric}", ""]
    try:
        best = study.best_trial
        lines += [f"Best trial: **{best.number}**, value {best.value:.6g}, params `{json.dumps(best.params)}`", ""]
    except (ValueError, RuntimeError):  # no completed trial or multi-objective
        pass
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    lines += [", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no trials", ""]
    lines += ["| " + " | ".join(c.replace("params_", "") for c in md_cols) + " |",
              "|" + "---|" * len(md_cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)).replace("|", "\\|") for c in md_cols) + " |")
    md_path = out_dir / "trials.md"
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return csv_path, md_path


def write_plots(study: Any, out_dir: str | Path) -> list[Path]:
    """Optimization history, parameter importances, intermediate values (PNG; HTML too when plotly is present)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.trial import TrialState

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    n_complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    multi = len(study.directions) > 1
    plots = [("optimization_history", "plot_optimization_history", 1),
             ("param_importances", "plot_param_importances", 2),
             ("intermediate_values", "plot_intermediate_values", 1)]
    for name, fn, min_complete in plots:
        if n_complete < min_complete or (multi and name != "param_importances"):
            continue
        kwargs = {"target": (lambda t: t.values[0]), "target_name": "objective 0"} if multi else {}
        if name == "intermediate_values":
            kwargs = {}
            if multi or not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
                continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = getattr(optuna.visualization.matplotlib, fn)(study, **kwargs)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).get_figure()
            fig.set_size_inches(9, 5.5)
            fig.tight_layout()
            p = out_dir / f"{name}.png"
            fig.savefig(p, dpi=110)
            plt.close(fig)
            written.append(p)
        except Exception as exc:  # a plot must never lose the study's other outputs
            log.warning("plot %s skipped: %s", name, exc)
            continue
        try:
            import plotly  # noqa: F401

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                figure = getattr(optuna.visualization, fn)(study, **kwargs)
            h = out_dir / f"{name}.html"
            figure.write_html(str(h))
            written.append(h)
        except Exception:  # plotly is optional
            pass
    return written


def best_training_config(base_config: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The training configuration of a trial, as `core/sft_gemma.py --config` takes it."""
    cfg = {k: v for k, v in dict(base_config).items() if k not in _TRAIN_ONLY_KEYS}
    cfg.update({k: v for k, v in params.items() if k not in _TRAIN_ONLY_KEYS})
    return cfg


def write_best_outputs(study: Any, *, out_dir: str | Path, studies_dir: str | Path) -> dict[str, Any]:
    """best_config.json (+ the original's `{study}_best_config.json`/`{study}_best_params.json`). {} if no best."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return {}
    if len(study.directions) > 1:
        best = min(study.best_trials, key=lambda t: t.values[0])  # Pareto front: lowest first objective
    else:
        best = study.best_trial
    cfg = best.user_attrs.get("training_config")
    if not isinstance(cfg, dict):  # trials from before this version stored only params
        cfg = best_training_config(study.user_attrs.get("search", {}).get("base_training_config", {}),
                                   best.user_attrs.get("decoded_params", best.params))
    out_dir, studies_dir = Path(out_dir), Path(studies_dir)
    paths = {"best_config": atomic_write_json(cfg, out_dir / "best_config.json"),
             "study_best_config": atomic_write_json(cfg, studies_dir / f"{study.study_name}_best_config.json")}
    meta = {"study_name": study.study_name, "best_trial": best.number,
            "best_value": best.value if len(study.directions) == 1 else list(best.values),
            "metric": study.user_attrs.get("search", {}).get("metric"),
            "best_params": best.user_attrs.get("decoded_params", best.params),
            "best_adapter_dir": best.user_attrs.get("output_dir"),
            "n_trials": len(study.trials), "n_complete": len(complete),
            "n_pruned": len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))),
            "n_failed": len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))),
            "timestamp": datetime.now(timezone.utc).isoformat()}
    paths["study_best_params"] = atomic_write_json(meta, studies_dir / f"{study.study_name}_best_params.json")
    atomic_write_json(meta, out_dir / "best_params.json")
    return {"best_trial": best.number, "best_value": meta["best_value"], "best_params": meta["best_params"],
            "best_adapter_dir": meta["best_adapter_dir"], **{k: str(v) for k, v in paths.items()}}


def _remove_weights(trial_dir: Path) -> int:
    """Delete checkpoints and weight files under a trial folder; return bytes freed."""
    freed = 0
    if not trial_dir.is_dir():
        return 0
    for pattern in WEIGHT_PATTERNS:
        for p in trial_dir.rglob(pattern):
            try:
                if p.is_dir():
                    freed += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
                    shutil.rmtree(p, ignore_errors=True)
                elif p.is_file():
                    freed += p.stat().st_size
                    p.unlink()
            except OSError:
                continue
    return freed


def cleanup_checkpoints(study: Any, *, keep_all: bool = False, root: str | Path | None = None) -> dict[str, Any]:
    """Keep the best trial's final adapter; delete intermediate checkpoints everywhere and the weights of every
    other finished trial (running trials are not touched). With `keep_all` nothing is deleted.

    Only folders under `root` (the study's output folder) are touched.
    """
    from optuna.trial import TrialState

    if keep_all:
        return {"freed_bytes": 0, "cleaned": []}
    try:
        best_number = study.best_trial.number if len(study.directions) == 1 else min(
            study.best_trials, key=lambda t: t.values[0]).number
    except (ValueError, RuntimeError):
        best_number = None
    root = Path(root).resolve() if root else None
    freed, cleaned = 0, []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.RUNNING or t.state == TrialState.WAITING:
            continue
        d = t.user_attrs.get("output_dir")
        if not d:
            continue
        d = Path(d).resolve()
        if root and root not in d.parents:
            continue
        if t.number == best_number:
            for c in d.glob("checkpoint-*"):
                if c.is_dir():
                    freed += sum(f.stat().st_size for f in c.rglob("*") if f.is_file())
                    shutil.rmtree(c, ignore_errors=True)
            continue
        f = _remove_weights(d)
        if f:
            freed += f
            cleaned.append(t.number)
    return {"freed_bytes": freed, "cleaned": cleaned, "kept": best_number}
