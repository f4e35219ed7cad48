"""Check a dataset file before spending GPU time on it: every row's image exists and decodes, labels are non-empty,
no duplicate rows. Prints one report naming every bad row and field; exits 1 when there are problems.

    python core/validate_data.py --input data/example.json [--report bad_rows.json]
"""

from __future__ import annotations

import dataclasses
import sys

from lib.config import field, parse_args


@dataclasses.dataclass
class ValidateArgs:
    input: str = field(help="dataset JSON/JSONL (raw {img_path, ocr_results} or split {image_path, ocr_text})",
                       aliases=["input_data", "data_file"])
    check_images: bool = field(True, help="open and decode every image")
    allow_empty_labels: bool = field(False, help="accept empty labels (e.g. blank pages)")
    allow_urls: bool = field(False, help="accept http(s) image URLs (only served backends can use them; they are "
                                         "not fetched or checked)")
    report: str | None = field(None, help="also write the problems as JSON to this path")


def main(args: ValidateArgs) -> dict:
    from lib.data import DataError, load_samples, validate_samples
    from lib.results import atomic_write_json

    try:
        samples = load_samples(args.input)
    except DataError as exc:
        print(f"validate_data.py: error: {exc}", file=sys.stderr)
        return {"ok": False, "n_rows": None, "problems": [{"problem": str(exc)}]}
    report = validate_samples(samples, check_images=args.check_images, allow_empty_labels=args.allow_empty_labels,
                              allow_urls=args.allow_urls)
    print(report.format())
    out = {"ok": report.ok, "n_rows": report.n_rows, "bad_rows": sorted(report.bad_rows), "problems": report.problems}
    if args.report:
        atomic_write_json(out, args.report)
    return out


if __name__ == "__main__":
    from lib.errors import cli_errors

    with cli_errors("validate_data.py"):
        sys.exit(0 if main(parse_args(ValidateArgs, sys.argv[1:]))["ok"] else 1)
