"""Run a backend over samples with a journal: concurrency (`workers` threads, or batches for in-process models),
per-sample error capture, a progress bar with throughput and ETA, then the result file in dataset order.

Every finished sample is appended to the journal before anything else happens, by one writer thread, so an
interruption at any point loses at most the samples in flight, and a resumed run skips exactly the samples already
in the journal: none is lost, none is evaluated twice.

Not for: the metrics themselves (lib/utils/count_metric.py) or the command line (core/evaluate.py).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any, Callable, Sequence

from lib.evaluation.backends import Backend, Prediction
from lib.evaluation.http import RequestFailed
from lib.evaluation.images import check_image
from lib.evaluation.journal import Journal
from lib.evaluation.postprocess import apply_postprocessors

__all__ = ["RunStats", "run_samples", "build_samples", "latency_summary", "error_summary", "percentile"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunStats:
    n_total: int = 0
    n_skipped: int = 0  # already in the journal
    n_run: int = 0  # finished in this session
    n_errors: int = 0  # errors in this session
    wall_s: float = 0.0

    @property
    def samples_per_s(self) -> float:
        return self.n_run / self.wall_s if self.wall_s > 0 else 0.0


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, RequestFailed):
        return exc.reason
    text = str(exc) or type(exc).__name__
    return text if len(text) < 500 else text[:500] + "…"


def _record(sample, pred: Prediction | None, error: str | None, latency: float) -> dict:
    rec = {"index": sample.index, "image_path": sample.raw_image_path or sample.image_path,
           "raw_prediction": None if pred is None else pred.text, "error": error, "latency_s": round(latency, 4)}
    if pred is not None:
        if pred.n_tokens is not None:
            rec["n_output_tokens"] = pred.n_tokens
        if pred.attempts != 1:
            rec["attempts"] = pred.attempts
        if pred.finish_reason:
            rec["finish_reason"] = pred.finish_reason
    return rec


def _timed_predict(backend: Backend, sample) -> dict:
    t0 = time.perf_counter()
    bad = check_image(sample.image_path)
    if bad:
        return _record(sample, None, bad, 0.0)
    try:
        pred = backend.predict(sample)
        return _record(sample, pred, None, time.perf_counter() - t0)
    except Exception as exc:  # any failure is this sample's recorded error; the run goes on
        return _record(sample, None, _error_text(exc), time.perf_counter() - t0)


def run_samples(samples: Sequence, backend: Backend, journal: Journal, *, workers: int = 1, batch_size: int = 8,
                retry_errors: bool = False, progress: bool = True, save_interval: int = 0,
                on_checkpoint: Callable[[], Any] | None = None, desc: str = "OCR") -> RunStats:
    """Evaluate the samples not yet in the journal. Returns this session's counts."""
    done = journal.done_indices(retry_errors=retry_errors)
    todo = [s for s in samples if s.index not in done]
    stats = RunStats(n_total=len(samples), n_skipped=len(samples) - len(todo))
    if stats.n_skipped:
        log.info("resuming: %d of %d samples already in %s, %d to go", stats.n_skipped, len(samples), journal.path, len(todo))
    bar = _progress(len(samples), stats.n_skipped, desc, progress)
    t0 = time.perf_counter()
    err_counter = 0

    def finish(rec: dict) -> None:
        nonlocal err_counter
        journal.append(rec)
        stats.n_run += 1
        if rec.get("error"):
            stats.n_errors += 1
            err_counter += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"errors={stats.n_errors}", refresh=False)
        if save_interval and on_checkpoint and stats.n_run % save_interval == 0:
            journal.sync()
            on_checkpoint()

    try:
        if backend.batched:
            for start in range(0, len(todo), batch_size):
                chunk = todo[start:start + batch_size]
                ready, t_b = [], time.perf_counter()
                for s in chunk:
                    bad = check_image(s.image_path)
                    if bad:
                        finish(_record(s, None, bad, 0.0))
                    else:
                        ready.append(s)
                if not ready:
                    continue
                try:
                    outs = backend.predict_batch(ready)
                except Exception as exc:  # the whole batch failed: record each sample's error
                    outs = [exc] * len(ready)
                per = (time.perf_counter() - t_b) / len(ready)
                for s, out in zip(ready, outs):
                    if isinstance(out, BaseException):
                        finish(_record(s, None, _error_text(out), per))
                    else:
                        finish(_record(s, out, None, per))
        elif workers <= 1:
            for s in todo:
                finish(_timed_predict(backend, s))
        else:
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eval")
            pending: set = set()
            try:
                for s in todo:  # keep at most 2x workers in flight: memory stays flat on big sets
                    pending.add(pool.submit(_timed_predict, backend, s))
                    if len(pending) >= 2 * workers:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for f in finished:
                            finish(f.result())
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in finished:
                        finish(f.result())
                pool.shutdown(wait=True)
            except BaseException:
                # Ctrl-C or a crash: do not wait for requests in flight (they are not in the journal, so a resumed
                # run does them again); everything finished so far is already on disk
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    finally:
        stats.wall_s = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        journal.sync()
    return stats


def _progress(total: int, initial: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="sample", dynamic_ncols=True, smoothing=0.1)


def build_samples(samples: Sequence, journal: Journal, postprocessors: Sequence[str]) -> list[dict]:
    """Per-sample results in dataset order from the journal, with post-processors applied to raw predictions."""
    out = []
    for s in samples:
        rec = journal.records.get(s.index)
        item: dict[str, Any] = {"image_path": s.raw_image_path or s.image_path, "label": s.text, "index": s.index,
                                "doc_id": s.doc_id, "element": s.element}
        if getattr(s, "doc_id_derived", False):
            item["doc_id_derived"] = True  # guessed from the path: confidence intervals resample samples instead
        if s.layout is not None:
            item["layout"] = s.layout
        if rec is None:
            item.update(prediction=None, error="not evaluated (run interrupted; resume to finish)")
        elif rec.get("error"):
            item.update(prediction=None, error=rec["error"])
        else:
            raw = rec.get("raw_prediction") or ""
            pred = apply_postprocessors(raw, postprocessors)
            item.update(prediction=pred, error=None)
            if pred != raw:
                item["raw_prediction"] = raw
        for key in ("latency_s", "n_output_tokens", "attempts", "finish_reason"):
            if rec and rec.get(key) is not None:
                item[key] = rec[key]
        item.setdefault("cer_score", None)
        item.setdefault("f1_score", None)
        out.append(item)
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in [0, 100]); None for no values."""
    vals = sorted(values)
    if not vals:
        return None
    pos = (len(vals) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


def latency_summary(sample_results: Sequence[dict]) -> dict:
    lat = [s["latency_s"] for s in sample_results if s.get("error") is None and s.get("latency_s") is not None]
    return {"latency_p50_s": percentile(lat, 50), "latency_p95_s": percentile(lat, 95),
            "latency_mean_s": sum(lat) / len(lat) if lat else None, "n_timed": len(lat)}


def error_summary(sample_results: Sequence[dict], limit: int = 10) -> dict[str, int]:
    """Error reasons grouped (numbers and paths blurred so that 'HTTP 503' from 40 samples is one line)."""
    import re

    c = Counter()
    for s in sample_results:
        if s.get("error"):
            reason = re.sub(r"(/[^\s:()]+)+", "<path>", s["error"])
            c[reason[:160]] += 1
    return dict(c.most_common(limit))
