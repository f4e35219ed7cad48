"""The shipped reader next to PP-OCRv6 on the real sets (`../shared/data/real`), in one harness.

    python -m core.benchmarks.bench_real_scans --output_dir results/real_scans            # Dev VM: ~10 min on 2 cores

Every row is a `core/evaluate.py` run (its result file is kept, with the journal: an interrupted run resumes) and
the table is `core/results_table.py`'s (micro CER with its document-bootstrap CI, bag-F1, exact match).
Sets: OmniDocBench pages, text blocks and tables; RapidOCR's test lines. Engines: `--mode hf` with the reader
(pages and blocks: PP-OCRv6's detector finds the lines, the reader reads them folded, the project's XY-cut orders
them), PP-OCRv6 (`--paddle-mode page`; the RapidOCR lines also `line`), optionally Tesseract.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from lib.config import field, parse_args
from lib.utils.run import run_logged

ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class RealScansArgs:
    """Score a reader and PP-OCRv6 on the real sets with core/evaluate.py."""

    model: str = field("embedded/gemma3-reader", help="the reader (shipped name or model folder)")
    real_dir: str = field(str(ROOT.parent / "shared" / "data" / "real"), help="the real sets")
    output_dir: str = field("results/real_scans", help="result files and the table go here")
    sets: list[str] = field(default_factory=lambda: ["blocks", "pages", "tables", "lines"],
                            choices=["blocks", "pages", "tables", "lines"], help="which sets")
    engines: list[str] = field(default_factory=lambda: ["reader", "paddleocr"],
                               choices=["reader", "paddleocr", "tesseract"], help="which engines")
    max_new_tokens: int = field(96, help="reader: tokens per folded line")


SETS = {"blocks": "omnidocbench_zh/blocks.json", "pages": "omnidocbench_zh/pages.json",
        "tables": "omnidocbench_zh/tables.json", "lines": "rapidocr_lines/lines.json"}


def runs(args: RealScansArgs) -> list[tuple[str, list[str]]]:
    out = []
    for name in args.sets:
        data = Path(args.real_dir) / SETS[name]
        if not data.is_file():
            raise FileNotFoundError(f"--real_dir: no {SETS[name]} under {args.real_dir}")
        base = ["--data-file", str(data), "--no-progress"]
        if "reader" in args.engines:
            out.append((f"{name}_reader", ["--mode", "hf", "--model-name", args.model, "--max-new-tokens",
                                           str(args.max_new_tokens), *base]))
        if "paddleocr" in args.engines:
            out.append((f"{name}_paddle_page", ["--mode", "paddleocr", "--paddle-mode", "page", *base]))
            if name == "lines":
                out.append((f"{name}_paddle_line", ["--mode", "paddleocr", "--paddle-mode", "line", *base]))
        if "tesseract" in args.engines:
            out.append((f"{name}_tesseract", ["--mode", "tesseract", "--tesseract-lang", "chi_sim+chi_tra", *base]))
    return out


def main(args: RealScansArgs) -> str:
    from lib.evaluation.results_table import format_markdown, table_rows

    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for name, argv in runs(args):
        f = out_dir / f"{name}.json"
        run_logged([sys.executable, "core/evaluate.py", *argv, "--output-file", str(f)], cwd=ROOT, printer=print)
        files.append(str(f))
    table = format_markdown(table_rows(files))
    (out_dir / "table.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    return table


if __name__ == "__main__":
    from lib.errors import cli_errors

    with cli_errors("bench_real_scans.py", extra=(FileNotFoundError,)):
        main(parse_args(RealScansArgs, prog="bench_real_scans.py"))
