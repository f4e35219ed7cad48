"""The evaluation run behind core/evaluate.py: load and check the data, open (or resume) the journal, run the
backend, then write the result file (original keys + schema version, resolved config, prompt, decoding,
post-processors, profiles, timings) atomically in dataset order, scored by the metrics core.

Not for: argument parsing (core/evaluate.py) or the metrics (lib/utils/count_metric.py).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from lib.evaluation.journal import Journal
from lib.evaluation.postprocess import resolve_postprocessors
from lib.evaluation.runner import build_samples, error_summary, latency_summary, run_samples

__all__ = ["evaluate", "journal_path_for", "score"]

log = logging.getLogger(__name__)


def journal_path_for(output_file: str, checkpoint_file: str | None) -> Path:
    if checkpoint_file:
        return Path(checkpoint_file)
    out = Path(output_file)
    return out.with_name(out.name + ".journal.jsonl")


def score(result: dict, profiles, n_bootstrap: int, errors_as_empty: bool, score_empty_labels: bool = False) -> dict:
    from lib.metrics import score_result_file

    return score_result_file(result, profiles=tuple(profiles), n_bootstrap=n_bootstrap, seed=0,
                             errors_as_empty=errors_as_empty, score_empty_labels=score_empty_labels)


URL_MODES = ("vllm", "openai", "vllm_stream")  # backends that pass an http(s) image URL on to the server


def drop_duplicates(samples: list) -> tuple[list, list[int]]:
    """(samples without exact repeats, dataset rows dropped): a row with the same image and label as an earlier
    row would be scored twice."""
    seen: set[tuple[str, str]] = set()
    kept, dropped = [], []
    for s in samples:
        key = (s.image_path, s.text)
        if key in seen:
            dropped.append(s.index)
        else:
            seen.add(key)
            kept.append(s)
    return kept, dropped


def reject_urls(samples, mode: str, data_file) -> None:
    """A URL image with a backend that reads local files fails up front, naming the rows, before any model loads."""
    from lib.data import URL_FIX, DataError
    from lib.evaluation.images import is_url

    if mode in URL_MODES:
        return
    rows = [s.index for s in samples if is_url(s.image_path) and not s.image_path.startswith("data:")]
    if rows:
        shown = ", ".join(str(r) for r in rows[:10]) + (" ..." if len(rows) > 10 else "")
        raise DataError(f"{data_file}: {len(rows)} row(s) have an http(s) image URL (rows {shown}), which --mode "
                        f"{mode} cannot read: {URL_FIX}")


def skipped_flagged(samples, data_file, keys) -> set[int]:
    """Dataset rows to leave out for `--skip-flagged KEY ...`: rows where a KEY field is true in the data file, or
    rows flagged KEY (e.g. gt_wrong) in the review sidecar next to it (lib/review.py)."""
    if not keys:
        return set()
    from lib.review import flagged_rows

    out = {s.index for s in samples if any(s.extra.get(k) for k in keys)}
    return out | flagged_rows(data_file, samples, keys)


def evaluate(args: Any) -> dict:
    from lib.config import resolved_config
    from lib.data import DataError, dataset_hash, read_samples, validate_samples
    from lib.evaluation.args import load_eval_prompt, make_backend
    from lib.results import SCHEMA_VERSION, git_commit, write_results

    t_start = time.perf_counter()
    all_samples, bad_rows = read_samples(args.data_file)
    for problem in bad_rows[:20]:  # reported per row; the other rows are evaluated
        log.warning("%s: skipping %s", args.data_file, problem)
    if len(bad_rows) > 20:
        log.warning("... and %d more malformed rows skipped", len(bad_rows) - 20)
    if not all_samples:
        raise DataError(f"{args.data_file}: no usable rows ({len(bad_rows)} malformed)")
    n_corrected = 0
    if getattr(args, "apply_corrections", False):
        from lib.review import apply_corrections, load_review

        review = load_review(args.data_file)
        n_corrected = apply_corrections(all_samples, review)
        log.info("using %d corrected label(s) from %s", n_corrected, review.path)
    flagged = skipped_flagged(all_samples, args.data_file, args.skip_flagged or [])
    kept = [s for s in all_samples if s.index not in flagged]
    if flagged:
        log.info("skipping %d row(s) flagged %s", len(flagged), args.skip_flagged)
    kept, duplicates = drop_duplicates(kept)
    if duplicates:
        log.warning("skipping %d duplicate row(s) (same image and label as an earlier row): rows %s", len(duplicates),
                    ", ".join(str(d) for d in duplicates[:20]) + (" ..." if len(duplicates) > 20 else ""))
    samples = kept[: args.top_k] if args.top_k and args.top_k > 0 else kept
    reject_urls(samples, args.mode, args.data_file)
    report = validate_samples(samples, check_images=False, allow_empty_labels=True, allow_urls=True)
    if not report.ok:
        log.warning("%s", report.format(limit=10))
    n_empty = sum(1 for s in samples if not s.text.strip())  # the scorer warns and keeps them out of the aggregates
    log.info("evaluating %d of %d samples from %s", len(samples), len(all_samples), args.data_file)

    prompt, meta = load_eval_prompt(args)
    backend = make_backend(args, prompt)
    postprocessors = resolve_postprocessors(args.postprocess, backend.default_postprocessors)
    identity = {**backend.identity(), "data_hash": dataset_hash(all_samples)}
    jpath = journal_path_for(args.output_file, args.checkpoint_file)
    journal = Journal(jpath, identity).open(resume=args.resume)
    if journal.n_lines_dropped:
        log.warning("journal %s: dropped %d incomplete line(s) left by an interruption", jpath, journal.n_lines_dropped)

    model_name = getattr(backend, "model_name", None) or identity.get("model") or args.mode
    if args.model_name and args.mode in ("paddleocr", "tesseract"):
        model_name = args.model_name  # a display name for the results table

    def partial_snapshot():
        snap = {"schema_version": SCHEMA_VERSION, "model_name": model_name, "partial": True,
                "timestamp": datetime.now().isoformat(timespec="seconds"),
                "samples": [s for s in build_samples(samples, journal, postprocessors)
                            if not (s.get("error") or "").startswith("not evaluated")]}
        write_results(snap, Path(args.output_file).with_suffix(".partial.json"))

    try:
        stats = run_samples(samples, backend, journal, workers=args.workers, batch_size=args.batch_size,
                            retry_errors=args.retry_errors, progress=args.progress, save_interval=args.save_interval,
                            on_checkpoint=partial_snapshot, desc=f"OCR ({args.mode})")
    except KeyboardInterrupt:
        journal.close()
        log.error("interrupted: %d samples are safe in %s; run the same command again to continue", len(journal.records), jpath)
        raise
    finally:
        backend.close()
    journal.close()

    sample_results = build_samples(samples, journal, postprocessors)
    lat = latency_summary(sample_results)
    timed = [s["latency_s"] for s in sample_results if s.get("latency_s") is not None and not s.get("error")]
    for s in sample_results:  # the original's per-sample key
        s["inference_time"] = s.get("latency_s")
    decoding = identity.get("decoding")
    cfg = resolved_config(args)
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "model_name": model_name,
        "backend": args.mode,
        "timestamp": datetime.now().isoformat(timespec="seconds"),
        "total_samples": len(sample_results),
        "overall_cer": None,
        "overall_f1": None,
        "average_inference_time": (sum(timed) / len(timed)) if timed else None,
        "total_inference_time": sum(timed) if timed else None,
        "min_inference_time": min(timed) if timed else None,
        "max_inference_time": max(timed) if timed else None,
        "n_errors": sum(1 for s in sample_results if s.get("error")),
        "errors_as_empty": bool(args.errors_as_empty),
        "errors": error_summary(sample_results),
        "prompt": prompt.to_dict(),
        "decoding": decoding,
        "run_identity": identity,
        "postprocessors": postprocessors,
        "data": {"path": str(args.data_file), "hash": identity["data_hash"], "n": len(samples),
                 "n_in_file": len(all_samples) + len(bad_rows), "skipped_flagged": len(flagged),
                 "skip_flagged": list(args.skip_flagged or []), "malformed_rows": bad_rows,
                 "skipped_duplicates": duplicates, "n_empty_labels": n_empty, "corrected_labels": n_corrected},
        "journal": str(jpath),
        "git_commit": git_commit(),
        "config": cfg,
        "timings": {"wall_s": round(time.perf_counter() - t_start, 3), "run_wall_s": round(stats.wall_s, 3),
                    "samples_run": stats.n_run, "samples_resumed": stats.n_skipped,
                    "samples_per_s": round(stats.samples_per_s, 3), **lat},
        "samples": sample_results,
    }
    if meta:
        result["model_meta"] = meta
    result = score(result, args.profiles, args.n_bootstrap, args.errors_as_empty,
                   score_empty_labels=getattr(args, "score_empty_labels", False))
    write_results(result, args.output_file)
    partial = Path(args.output_file).with_suffix(".partial.json")
    if partial.exists():
        partial.unlink()
    log.info("%s", format_summary(result))
    log.info("results written to %s (journal: %s)", args.output_file, jpath)
    return result


def _fmt(v, pct=False):
    if v is None:
        return "n/a"
    return f"{v * 100:.2f}%" if pct else f"{v:.4f}"


def format_summary(result: dict) -> str:
    t = result.get("timings", {})
    lines = ["=" * 60, f"model {result.get('model_name')}  backend {result.get('backend')}  "
             f"samples {result.get('total_samples')}  errors {result.get('n_errors')}"]
    for prof, sc in (result.get("scores") or {}).items():
        if isinstance(sc, dict):
            ci = (sc.get("ci95") or {}).get("cer_micro")
            ci_s = f" (95% CI {ci[0] * 100:.2f}-{ci[1] * 100:.2f})" if isinstance(ci, (list, tuple)) and None not in ci else ""
            lines.append(f"profile {prof}: CER {_fmt(sc.get('cer_micro'), True)}{ci_s}  F1 {_fmt(sc.get('bag_f1_macro'), True)}"
                         f"  exact {_fmt(sc.get('exact_match'), True)}  n {sc.get('n')}")
    lines.append(f"overall CER {_fmt(result.get('overall_cer'), True)}  overall F1 {_fmt(result.get('overall_f1'), True)}")
    for reason, n in (result.get("errors") or {}).items():
        lines.append(f"  error x{n}: {reason}")
    p50, p95 = t.get("latency_p50_s"), t.get("latency_p95_s")
    lines.append(f"latency p50 {_fmt(p50)} s  p95 {_fmt(p95)} s  throughput {t.get('samples_per_s')} samples/s "
                 f"({t.get('samples_run')} run, {t.get('samples_resumed')} resumed)")
    lines.append("=" * 60)
    return "\n".join(lines)
