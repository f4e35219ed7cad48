"""Split an OCR dataset into train / val / test without leaking documents between splits.

    python core/split_dataset.py --input data/example.json --output_dir data/splits --seed 42
                                 --val_fraction 0.1 --test_fraction 0.2

Writes `train.json`, `val.json`, `test.json` (raw format, image paths relative to the output folder), the original
project's `ocr_non_test.json` (train + val) and `ocr_test.json` ({image_path, ocr_text}), and `split_summary.json`
(counts per split, seed, fractions, data hash, resolved config). Every page of one document (`doc_id`, else derived
from the image path) lands in one split.

`--test_ratio` keeps the original's meaning when it is >= 1 (test:non-test ratio, its default 1 meant 1:1); a value
below 1 is read as the test fraction (the original turned such values into an empty test set).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from lib.config import field, format_config, parse_args


@dataclasses.dataclass
class SplitArgs:
    input: str = field("data/raw_data/ocr.json", help="dataset JSON (raw {img_path, ocr_results} or split format)")
    output_dir: str = field("data/input", help="folder for the split files")
    seed: int = field(42, help="seed for the document shuffle")
    val_fraction: float = field(0.1, help="share of samples for validation (whole documents)", aliases=["val_ratio"])
    test_fraction: float = field(0.1, help="share of samples for test (whole documents)")
    test_ratio: float | None = field(None, help="original flag: test:non-test ratio when >= 1 (1 = half/half); "
                                                "a value < 1 is a test fraction. Overrides --test_fraction")
    check_images: bool = field(True, help="open every image to catch missing/corrupt files before training")
    skip_invalid: bool = field(False, help="drop rows that fail validation (reported) instead of refusing")
    skip_flagged: list[str] = field(default_factory=list, help="drop rows flagged with any of these in the review "
                                    "sidecar <input>.review.json (gt_wrong model_wrong ambiguous), or whose row has "
                                    "one of these keys set to true")
    apply_corrections: bool = field(False, help="write the corrected ground truth from the review sidecar "
                                                "<input>.review.json into the splits")

    def __post_init__(self):
        if self.test_ratio is not None:
            if self.test_ratio <= 0:
                raise ValueError(f"--test_ratio must be > 0, got {self.test_ratio}")
            self.test_fraction = self.test_ratio / (1 + self.test_ratio) if self.test_ratio >= 1 else self.test_ratio


def main(args: SplitArgs) -> dict:
    from lib.data import DataError, dataset_hash, load_samples, save_samples, validate_samples
    from lib.results import atomic_write_json
    from lib.split import split_by_document, split_summary
    from lib.config import resolved_config

    from lib.review import apply_corrections, flagged_rows, load_review

    print(format_config(args))
    try:
        samples = load_samples(args.input)
    except DataError as exc:
        raise SystemExit(f"split_dataset.py: error: {exc}")
    review = None
    if args.apply_corrections:
        review = load_review(args.input)
        print(f"applied {apply_corrections(samples, review)} corrected label(s) from {review.path}")
    flagged: set[int] = set()
    if args.skip_flagged:
        flagged = flagged_rows(args.input, samples, args.skip_flagged)
        flagged |= {s.index for s in samples if any(s.extra.get(k) is True for k in args.skip_flagged)}
        samples = [s for s in samples if s.index not in flagged]
        print(f"dropped {len(flagged)} row(s) flagged {' '.join(args.skip_flagged)}")
    report = validate_samples(samples, check_images=args.check_images)
    if not report.ok:
        print(report.format())
        if not args.skip_invalid:
            raise SystemExit(f"split_dataset.py: error: {len(report.bad_rows)} invalid row(s) in {args.input}; fix them or pass "
                             f"--skip_invalid to drop them")
        samples = [s for s in samples if s.index not in report.bad_rows]
        print(f"skipping {len(report.bad_rows)} invalid row(s)")
    if not samples:
        raise SystemExit(f"split_dataset.py: error: no usable rows in {args.input}")

    splits = split_by_document(samples, val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in ("train", "val", "test"):
        files[name] = str(save_samples(splits[name], out / f"{name}.json", fmt="raw"))
    files["ocr_non_test"] = str(save_samples(splits["train"] + splits["val"], out / "ocr_non_test.json", fmt="split"))
    files["ocr_test"] = str(save_samples(splits["test"], out / "ocr_test.json", fmt="split"))

    summary = {
        "input": str(args.input),
        "data_hash": dataset_hash(samples),
        "seed": args.seed,
        "val_fraction": args.val_fraction,
        "test_fraction": args.test_fraction,
        "skipped_rows": sorted(report.bad_rows) if args.skip_invalid else [],
        "skipped_flagged": sorted(flagged),
        "review": str(review.path) if review is not None else None,
        "splits": split_summary(splits),
        "files": files,
        "config": resolved_config(args),
    }
    atomic_write_json(summary, out / "split_summary.json")
    print(f"{'split':<6} {'samples':>8} {'docs':>6}  elements")
    for name, s in summary["splits"].items():
        print(f"{name:<6} {s['samples']:>8} {s['documents']:>6}  {s['elements']}")
    print(f"wrote {', '.join(Path(f).name for f in files.values())} and split_summary.json to {out}")
    return summary


if __name__ == "__main__":
    from lib.errors import cli_errors

    with cli_errors("split_dataset.py"):
        main(parse_args(SplitArgs, sys.argv[1:]))
