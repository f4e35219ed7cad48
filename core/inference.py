"""OCR a folder of images and/or PDFs (no labels needed) with any backend; text and JSON per page.

    python core/inference.py --image-dir scans/ --output-dir results/ocr_scans --mode vllm_stream \
        --vllm-url http://localhost:8000 --dpi 200
    python core/inference.py --image-dir report.pdf --output-dir out/ --mode paddleocr
    python core/inference.py --image-dir scans/ --output-dir out/ --mode hf --model-name models/merged

PDF pages are rasterised at --dpi with pypdfium2 (cached under <output-dir>/_pages). Each page gives
<output-dir>/<name>[_pNNNN].txt and .json; --output-file collects everything (the original's list of
{image_path, image_name, ocr_result}, plus page, source, error). Rerunning continues an interrupted run.
"""

from __future__ import annotations

import dataclasses
import logging
import sys

from lib.config import field, parse_args
from lib.evaluation.args import BackendArgs


@dataclasses.dataclass
class InferenceArgs(BackendArgs):
    """OCR a folder of images/PDFs with any backend."""

    mode: str = field("vllm_stream", help="backend (see core/evaluate.py --help)",
                      choices=["vllm", "openai", "vllm_stream", "local_api", "hf", "paddleocr", "tesseract"])
    input: str = field("data/benchmark/mistral_benchmark", help="folder of images/PDFs, or one file",
                       aliases=["image_dir", "input_dir"])
    output_dir: str = field("results/inference", help="where per-page .txt/.json files go")
    output_file: str | None = field("results/batch_ocr_results.json", help="combined JSON of all pages (null = none)")
    dpi: int = field(200, help="PDF rasterisation resolution (200 is plenty for body text; 300 for small print)")
    recursive: bool = field(False, help="also read sub-folders")
    formats: list[str] = field(default_factory=lambda: ["txt", "json"], help="per-page outputs: txt json")
    resume: bool = field(True, help="continue an interrupted run from <output-dir>/inference.journal.jsonl")
    progress: bool = field(True, help="show a progress bar")
    log_level: str = field("INFO", help="logging level")

    def __post_init__(self):
        if self.dpi < 36 or self.dpi > 1200:
            raise ValueError("--dpi must be between 36 and 1200")
        bad = set(self.formats) - {"txt", "json"}
        if bad:
            raise ValueError(f"--formats: unknown {sorted(bad)}; use txt and/or json")


def main(args: InferenceArgs) -> dict:
    from lib.evaluation.backends import BackendError
    from lib.evaluation.inference import run_inference
    from lib.evaluation.journal import JournalMismatch

    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run_inference(args)
    except (BackendError, JournalMismatch, FileNotFoundError) as exc:
        logging.getLogger(__name__).error("%s", exc)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main(parse_args(InferenceArgs, sys.argv[1:]))
