"""Build the results table (model, backend, data, CER with 95% CI, F1, exact match, n, errors, profile) from
result files written by core/evaluate.py or core/count_score.py (the original project's files work too).

    python core/results_table.py --results 'results/*.json' --profile standard
    python core/results_table.py --results a.json b.json --output docs/results_table.md
    python core/results_table.py --results 'results/*.json' --insert-into README.md   # between the markers
        <!-- results-table:start --> and <!-- results-table:end -->
"""

from __future__ import annotations

import dataclasses
import sys

from lib.config import field, parse_args


@dataclasses.dataclass
class TableArgs:
    """Build the README results table from result files."""

    results: list[str] = field(default_factory=list, help="result JSON files or glob patterns")
    profile: str = field("standard", help="normalization profile: seed standard lenient")
    format: str = field("markdown", help="markdown or csv", choices=["markdown", "csv"])
    output: str | None = field(None, help="write the table to this file (default: print it)")
    insert_into: str | None = field(None, help="replace the table between the results-table markers in this file")
    sort_by: str = field("cer", help="sort rows within a data set by this column", choices=["cer", "f1", "model"])
    n_bootstrap: int = field(1000, help="bootstrap resamples when a file must be scored here")

    def __post_init__(self):
        if not self.results:
            raise ValueError("--results: give at least one result file or glob")


def main(args: TableArgs) -> dict:
    from pathlib import Path

    from lib.evaluation.results_table import format_csv, format_markdown, insert_between_markers, table_rows

    rows = table_rows(args.results, profile=args.profile, n_bootstrap=args.n_bootstrap)
    text = format_markdown(rows, args.sort_by) if args.format == "markdown" else format_csv(rows)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    if args.insert_into:
        p = Path(args.insert_into)
        p.write_text(insert_between_markers(p.read_text(encoding="utf-8"), text), encoding="utf-8")
    if not args.output and not args.insert_into:
        print(text, end="")
    return {"rows": rows, "text": text}


if __name__ == "__main__":
    main(parse_args(TableArgs, sys.argv[1:]))
