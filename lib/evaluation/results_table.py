"""The README's results table, built from result files: one row per file with model, backend, data set, CER (micro,
with its 95 % bootstrap CI), bag-of-characters F1, exact match, n, errors and the normalization profile.
Files scored without the requested profile (or the original project's files) are scored here with the metrics core.

Not for: comparing two models statistically (lib.utils.count_metric.paired_comparison / core/count_score.py).
"""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Sequence

__all__ = ["table_rows", "format_markdown", "format_csv", "insert_between_markers", "MARK_START", "MARK_END"]

MARK_START = "<!-- results-table:start -->"
MARK_END = "<!-- results-table:end -->"


def _expand(paths: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        matches = sorted(glob.glob(p)) if any(c in p for c in "*?[") else [p]
        if not matches:
            raise FileNotFoundError(f"no result files match {p}")
        out += [Path(m) for m in matches]
    return list(dict.fromkeys(out))


def table_rows(paths: Sequence[str], profile: str = "standard", n_bootstrap: int = 1000) -> list[dict]:
    from lib.results import load_results
    from lib.metrics import score_result_file

    rows = []
    for path in _expand(paths):
        res = load_results(path)
        sc = (res.get("scores") or {}).get(profile)
        if not isinstance(sc, dict) or "cer_micro" not in sc:
            res = score_result_file(res, profiles=(profile,), n_bootstrap=n_bootstrap, seed=0,
                                    errors_as_empty=bool(res.get("errors_as_empty")))
            sc = res["scores"][profile]
        ci = (sc.get("ci95") or {}).get("cer_micro") or [None, None]
        data = res.get("data") or {}
        rows.append({
            "file": str(path), "model": res.get("model_name") or Path(path).stem,
            "backend": res.get("backend") or (res.get("config") or {}).get("mode") or "",
            "data": (Path(data.get("path", "")).name if data.get("path") else "")
                    + (f" without {'/'.join(data['skip_flagged'])}" if data.get("skipped_flagged") else ""),
            "data_dir": Path(data["path"]).parent.name if data.get("path") else "",
            "cer": sc.get("cer_micro"), "cer_lo": ci[0], "cer_hi": ci[1], "f1": sc.get("bag_f1_macro"),
            "exact": sc.get("exact_match"), "n": sc.get("n"), "n_errors": res.get("n_errors", 0) or 0,
            "profile": profile, "samples_per_s": (res.get("timings") or {}).get("samples_per_s"),
        })
    return rows


def _pct(v) -> str:
    return "–" if v is None else f"{v * 100:.2f}"


def format_markdown(rows: list[dict], sort_by: str = "cer") -> str:
    rows = sorted(rows, key=lambda r: (r["data_dir"], r["data"], r[sort_by] if r[sort_by] is not None else float("inf")))
    lines = ["| model | backend | data | CER % (95% CI) | F1 % | exact % | n | errors | profile |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = f" ({_pct(r['cer_lo'])}–{_pct(r['cer_hi'])})" if r["cer_lo"] is not None else ""
        data = f"{r['data_dir']}/{r['data']}" if r["data_dir"] else r["data"]
        name = re.sub(r"\|", "\\|", str(r["model"]))
        lines.append(f"| {name} | {r['backend']} | {data} | {_pct(r['cer'])}{ci} | {_pct(r['f1'])} | "
                     f"{_pct(r['exact'])} | {r['n']} | {r['n_errors']} | {r['profile']} |")
    return "\n".join(lines) + "\n"


def format_csv(rows: list[dict]) -> str:
    import csv
    import io

    buf = io.StringIO()
    keys = ["model", "backend", "data_dir", "data", "cer", "cer_lo", "cer_hi", "f1", "exact", "n", "n_errors", "profile", "file"]
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def insert_between_markers(doc: str, table: str) -> str:
    """Replace what lies between the results-table markers (they must both be present, in order)."""
    start, end = doc.find(MARK_START), doc.find(MARK_END)
    if start < 0 or end < start:
        raise ValueError(f"markers not found: put {MARK_START} and {MARK_END} where the table goes")
    return doc[: start + len(MARK_START)] + "\n" + table + doc[end:]
