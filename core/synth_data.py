"""Generate synthetic Taiwanese government documents (公文) with exact ground truth, for training and testing OCR.

    python core/synth_data.py --output_dir data/synth --n 1000 --seed 0                 # whole pages
    python core/synth_data.py --output_dir data/synth_el --n 2000 --granularity element  # element crops
    python core/synth_data.py --config configs/synth/clean.yaml --output_dir data/synth_clean --n 200
    python core/synth_data.py --script hans --output_dir data/synth_hans --n 200          # Simplified Chinese
    python core/synth_data.py --output_dir data/synth --n 8 --contact_sheet data/synth/sheet.png

Writes `OUTPUT_DIR/images/*.jpg`, `OUTPUT_DIR/data.json` (raw format: img_path, ocr_results, doc_id, element, font,
lang, layout, synth) and `OUTPUT_DIR/synth_config.json` (the resolved settings). Page ground truth is the page
text in reading order, one drawn line per line, tables as HTML; element crops (text | table | seal | signature |
footer) carry their own text. Same seed -> same files, whatever `--workers`. Every probability in
lib/synth/config.py is a flag and a config-file key.
"""

from __future__ import annotations

import dataclasses
import sys

from lib.config import field, format_config, parse_args
from lib.synth.config import SynthConfig


@dataclasses.dataclass
class SynthDataArgs(SynthConfig):
    output_dir: str = field("data/synth", help="folder for images/ and data.json")
    n: int = field(100, help="number of samples (pages, or element crops with --granularity element)")
    seed: int = field(0, help="run seed: document i is generated from (seed, i)")
    granularity: str = field("page", help="page = whole pages; element = crops of text/table/seal/signature/footer",
                             choices=["page", "element"])
    workers: int = field(0, help="worker processes (0 = one per CPU core)")
    progress: bool = field(True, help="show a progress bar")
    contact_sheet: str | None = field(None, help="also write a PNG contact sheet of the generated samples to this path")

    def __post_init__(self):
        super().__post_init__()
        if self.n <= 0:
            raise ValueError(f"--n must be positive, got {self.n}")


def main(args: SynthDataArgs) -> dict:
    import os
    from pathlib import Path

    from lib.config import save_resolved_config
    from lib.synth.generate import generate_dataset

    print(format_config(args))
    cfg = SynthConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SynthConfig)})
    summary = generate_dataset(args.output_dir, args.n, seed=args.seed, granularity=args.granularity, cfg=cfg,
                               workers=args.workers or os.cpu_count(), progress=args.progress)
    save_resolved_config(args, Path(args.output_dir) / "synth_config.json", extra={"summary": summary})
    print(f"wrote {summary['n_samples']} {args.granularity} samples from {summary['n_docs']} documents to "
          f"{summary['data_path']} in {summary['seconds']} s ({summary['samples_per_second']} samples/s, "
          f"{summary['workers']} workers, {cfg.page_size} {cfg.page_px[0]}x{cfg.page_px[1]} px at {cfg.dpi} dpi)")
    print(f"elements: {summary['elements']}")
    if args.contact_sheet:
        from lib.synth.sheet import make_contact_sheet

        summary["contact_sheet"] = str(make_contact_sheet([summary["data_path"]], args.contact_sheet))
        print(f"contact sheet: {summary['contact_sheet']}")
    return summary


if __name__ == "__main__":
    main(parse_args(SynthDataArgs, sys.argv[1:]))
