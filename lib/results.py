"""The file schemas, each key listed once: the evaluation result file (written by core/evaluate.py and
core/count_score.py, read by the UIs and the analysis scripts) and a training run's metadata.json (`TrainingMetadata`,
written by lib/train/run.py, read by the search, merging and model loading through `read_training_metadata`).

It is a superset of the original project's result files (`overall_cer`, `overall_f1`, `total_samples`,
`timestamp`, `model_name`, `samples[{image_path, label, prediction, cer_score, f1_score}]`), which `load_results`
reads unchanged (they get `schema_version` 0).

Not for: computing scores (lib/metrics does that).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from lib.errors import UserError

SCHEMA_VERSION = 1

__all__ = ["SCHEMA_VERSION", "SampleResult", "ResultFile", "SampleScores", "ProfileScores", "Anatomy", "TableScores",
           "load_results", "write_results", "atomic_write_json", "ResultsError", "TrainingMetadata",
           "TRAINING_METADATA_VERSION", "read_training_metadata", "write_training_metadata"]


class ResultsError(UserError, ValueError):
    pass


class SampleScores(TypedDict):
    """`samples[i].scores[<profile>]`, filled by lib/metrics/scoring.py (definitions: docs/METRICS.md)."""
    cer: float  # lev/|gt| on normalized text, unclipped (empty gt: 0.0 if pred empty else 1.0)
    cer_clipped: float  # min(cer, 1)
    ned: float  # lev / max(|pred|, |gt|)
    exact: float  # 1.0 when the normalized strings are equal
    bag_f1: float  # bag-of-characters F1 (the original's f1_score)
    lcs_f1: float  # 2·LCS / (|pred| + |gt|)
    len_pred: int  # normalized lengths and edit count: micro CER = Σ edits / Σ len_gt
    len_gt: int
    edits: int
    substitutions: NotRequired[int]
    deletions: NotRequired[int]  # ground-truth characters missing from the prediction
    insertions: NotRequired[int]  # extra predicted characters
    repetition_loop: NotRequired[dict[str, Any]]  # {unit, repeats, count_pred, count_gt}
    teds: NotRequired[float]  # table samples
    teds_s: NotRequired[float]
    table_cell_cer: NotRequired[float]
    table_error: NotRequired[str]  # invalid table or timeout (counted in ProfileScores.tables)
    seal_ned: NotRequired[float]  # seal samples: min NED over cyclic shifts of the prediction


class Anatomy(TypedDict):
    substitutions: int
    deletions: int
    insertions: int
    substitution_rate: float  # per ground-truth character
    deletion_rate: float
    insertion_rate: float
    top_confusions: list[list[Any]]  # [gt_char, pred_char, count, is_S/T_variant]
    st_confusions: int
    st_confusion_rate: float  # S/T-variant substitutions / all edits
    n_empty_predictions: int
    empty_prediction_rate: float
    n_repetition_loops: int
    repetition_loop_rate: float
    repetition_loops: list[dict[str, Any]]  # {sample, image_path, unit, repeats, count_pred, count_gt}
    by_class: dict[str, dict[str, Any]]  # hanzi|digit|latin|other -> {chars, sub_del, rate} (ground-truth characters)


class TableScores(TypedDict):
    n: int
    n_scored: int
    teds_macro: float | None
    teds_s_macro: float | None
    table_cell_cer_micro: float | None
    n_invalid_pred: int
    n_invalid_gt: int
    n_timeouts: int
    invalid_examples: list[dict[str, Any]]
    headline_cer_uses: str  # "cell text" (standard/lenient) or "raw text (seed profile)"
    ci95: dict[str, list[float] | None]  # teds_macro, teds_s_macro -> [low, high] (document bootstrap)


class ProfileScores(TypedDict):
    """`scores[<profile>]` at the top level: aggregates over the scored samples (errors excluded unless
    errors_as_empty). Every slice under `slices[key][value]` has the same headline keys, n and ci95."""
    n: int
    n_docs: int
    cer_micro: float | None  # Σ edits / Σ |gt| — the original's overall CER
    cer_macro: float | None
    cer_clipped_macro: float | None
    ned_macro: float | None
    bag_f1_macro: float | None  # the original's overall F1
    lcs_f1_macro: float | None
    exact_match: float | None
    chars_gt: NotRequired[int]
    edits: NotRequired[int]
    ci95: dict[str, list[float] | None]  # metric -> [low, high], bootstrap over doc_id
    anatomy: NotRequired[Anatomy]
    tables: NotRequired[TableScores]
    seals: NotRequired[dict[str, Any]]  # {n, seal_ned_macro, ci95: {seal_ned_macro: [low, high]}}
    slices: NotRequired[dict[str, dict[str, dict[str, Any]]]]  # "element"/"lang" -> value -> headline keys
    n_errors: NotRequired[int]
    n_errors_scored_as_empty: NotRequired[int]
    n_empty_labels: NotRequired[int]  # samples with an empty label: scored per sample, left out of these aggregates


class SampleResult(TypedDict):
    image_path: str  # as written in the dataset file (relative paths stay relative to it)
    label: str  # ground truth
    prediction: str | None  # None when the sample has an error
    cer_score: float | None  # primary profile, unclipped; None when excluded (error)
    f1_score: float | None  # primary profile, bag-of-characters F1
    index: NotRequired[int]  # row in the dataset file
    doc_id: NotRequired[str]
    doc_id_derived: NotRequired[bool]  # doc_id guessed from the image path: CIs treat the sample as its own unit
    element: NotRequired[str | None]  # text | table | seal | signature | footer | ...
    layout: NotRequired[Any]  # the original's focus_layout, or add_layout.py's attributes
    error: NotRequired[str | None]  # why no prediction could be obtained (timeout, HTTP 503, corrupt image, ...)
    raw_prediction: NotRequired[str]  # before post-processors
    latency_s: NotRequired[float]
    inference_time: NotRequired[float]  # the original's key (= latency_s)
    attempts: NotRequired[int]  # requests made for this sample (retries included)
    finish_reason: NotRequired[str | None]  # stop | length | ... as the backend reported it
    n_output_tokens: NotRequired[int]
    scores: NotRequired[dict[str, SampleScores | None]]  # profile -> per-sample metrics (None: excluded, error)


class ResultFile(TypedDict):
    schema_version: int
    model_name: str
    timestamp: str  # ISO 8601
    total_samples: int
    overall_cer: float | None  # micro CER of the first profile
    overall_f1: float | None  # macro bag-of-characters F1 of the first profile
    samples: list[SampleResult]
    profiles: NotRequired[list[str]]  # normalization profiles, first = primary
    scores: NotRequired[dict[str, ProfileScores]]  # profile -> aggregate metrics (with CIs)
    scoring: NotRequired[dict[str, Any]]  # n_bootstrap, seed, confidence, bootstrap_unit, table_time_limit_s
    rescored: NotRequired[list[dict[str, Any]]]  # history of core/count_score.py runs (previous overall_* values)
    n_errors: NotRequired[int]
    errors_as_empty: NotRequired[bool]
    config: NotRequired[dict[str, Any]]  # resolved config of the run that produced it
    prompt: NotRequired[dict[str, Any]]
    decoding: NotRequired[dict[str, Any]]
    postprocessors: NotRequired[list[str]]
    timings: NotRequired[dict[str, Any]]  # wall_s, samples_per_s, latency_p50_s, latency_p95_s
    data: NotRequired[dict[str, Any]]  # path, hash, n
    git_commit: NotRequired[str | None]
    backend: NotRequired[str]
    run_identity: NotRequired[dict[str, Any]]  # journal identity: backend, model, prompt, decoding, data_hash
    errors: NotRequired[dict[str, int]]  # error reason -> count
    journal: NotRequired[str]  # path of the JSONL journal the run resumed from / wrote
    model_meta: NotRequired[dict[str, Any]]  # gemma_ocr_meta.json of the model, when present
    average_inference_time: NotRequired[float]  # the original's timing keys (seconds per sample)
    total_inference_time: NotRequired[float]
    min_inference_time: NotRequired[float]
    max_inference_time: NotRequired[float]


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask can only be read by setting it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _remove_stale_temps(p: Path) -> None:
    """Delete temp files of earlier writes to `p` whose writing process is gone (killed mid-write); a live
    writer's temp file is left alone."""
    prefix = f".{p.name}."
    try:
        names = [n for n in os.listdir(p.parent) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        pid_part = name[len(prefix):].split(".", 1)[0]
        if not pid_part.isdigit() or int(pid_part) == os.getpid():
            continue
        try:
            os.kill(int(pid_part), 0)
            continue  # still running: its write may be in progress
        except ProcessLookupError:
            pass
        except (PermissionError, OSError):
            continue  # alive under another user, or cannot tell
        try:
            os.unlink(p.parent / name)
        except OSError:
            pass


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write text to a temp file in the same folder and rename it over `path`: readers never see half a file.
    The file gets the mode a plain `open(path, "w")` would give it (an existing file's mode, else 0666 minus the
    umask), not the temp file's 0600; a failed write removes its temp file, and temp files left by writers that
    were killed are removed by the next write to the same path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(p)
    try:
        mode = os.stat(p).st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.{os.getpid()}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return p


def atomic_write_json(obj: Any, path: str | os.PathLike, indent: int | None = 2) -> Path:
    """`atomic_write_text` of the object as JSON (UTF-8, not ASCII-escaped)."""
    return atomic_write_text(json.dumps(obj, ensure_ascii=False, indent=indent, default=str), path)


def load_results(path: str | os.PathLike) -> ResultFile:
    """Read a result file (ours or the original project's). Raises ResultsError naming the file and the problem."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"result file not found: {p}") from None
    except IsADirectoryError:
        raise ResultsError(f"{p} is a folder, not a result file") from None
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{p}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                           f"result files are UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
        raise ResultsError(f"{p}: not a result file (expected an object with a 'samples' list)")
    data.setdefault("schema_version", 0)
    for i, s in enumerate(data["samples"]):
        if not isinstance(s, dict):
            raise ResultsError(f"{p}: samples[{i}] is not an object")
        for key in ("label", "prediction"):
            if key not in s:
                raise ResultsError(f"{p}: samples[{i}] has no '{key}' field")
        if s["label"] is not None and not isinstance(s["label"], str):
            raise ResultsError(f"{p}: samples[{i}].label must be a string, got {type(s['label']).__name__}")
        if s["prediction"] is not None and not isinstance(s["prediction"], str):
            raise ResultsError(f"{p}: samples[{i}].prediction must be a string or null, got "
                               f"{type(s['prediction']).__name__}")
        s.setdefault("image_path", s.get("img_path", ""))
        if "focus_layout" in s and "layout" not in s:
            s["layout"] = s["focus_layout"]
    return data  # type: ignore[return-value]


def write_results(results: ResultFile, path: str | os.PathLike) -> Path:
    results.setdefault("schema_version", SCHEMA_VERSION)  # type: ignore[typeddict-item]
    return atomic_write_json(results, path)


def git_commit(repo_dir: str | os.PathLike | None = None) -> str | None:
    """The current git commit of the project (with '-dirty' when the tree has changes), or None outside git."""
    import subprocess

    cwd = str(repo_dir or Path(__file__).resolve().parent.parent)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True,
                               text=True, timeout=5).stdout.strip()
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


TRAINING_METADATA_VERSION = 1


class TrainingMetadata(TypedDict):
    """`metadata.json` of a training run, in `output_dir` and beside the saved adapter/model (`final_dir`)."""
    schema_version: NotRequired[int]  # TRAINING_METADATA_VERSION; files written before it existed have none
    base_model: str  # as given (an embedded id stays an id, so the adapter loads on another machine)
    finetune: str  # lora | full
    load_in_4bit: bool
    final_dir: str  # output_dir/lora or output_dir/model
    global_step: int
    best_checkpoint: str | None
    best_metric: float | None
    metric_for_best_model: str | None  # None without a validation set
    train_loss: float
    final_val_loss: NotRequired[float | None]  # with a validation set: the saved model's loss on all of it
    final_val_cer: NotRequired[float | None]  # greedy generation micro CER (standard profile) of the saved model
    final_val_cer_n: NotRequired[int]  # validation samples decoded for it
    train_wall_s: float
    total_wall_s: float
    resumed_from: str | None
    hardware: dict[str, Any]  # platform, cpu_count, processor, gpus, gpu_memory_gb, load_average_1_5_15
    versions: dict[str, str]  # python, torch, transformers, peft, accelerate, bitsandbytes, trl
    peak_memory: dict[str, float]  # gpu_peak_allocated_gb, gpu_peak_reserved_gb, cpu_peak_rss_gb
    git_commit: str | None
    data: dict[str, Any]  # train/val files, counts, hashes, skipped rows, token and pixel statistics
    prompt: dict[str, Any]  # the prompt trained with (also ocr_prompt.yml)
    log_history: list[dict[str, Any]]  # the Trainer's log: loss, learning_rate, eval_loss, eval_cer per step
    finished_at: str  # ISO 8601


def write_training_metadata(meta: TrainingMetadata, path: str | os.PathLike) -> Path:
    """Write `meta` as `<path>/metadata.json` (a folder) or to `path` (a .json file), atomically."""
    p = Path(path)
    p = p if p.suffix == ".json" else p / "metadata.json"
    meta.setdefault("schema_version", TRAINING_METADATA_VERSION)  # type: ignore[typeddict-item]
    return atomic_write_json(meta, p)


def read_training_metadata(path: str | os.PathLike) -> TrainingMetadata | None:
    """The metadata of a training run: `<path>/metadata.json` (an output_dir or final_dir) or the file `path`.
    None when there is none (a model not trained here) or it is not a JSON object (a half-written or foreign file)."""
    p = Path(path)
    p = p if p.suffix == ".json" else p / "metadata.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None  # type: ignore[return-value]
