"""Evaluate an OCR model or engine on a labelled dataset and write a scored result file.

    # a served model (vLLM / SGLang / any OpenAI-compatible server)
    python core/evaluate.py --mode vllm --vllm-url http://localhost:8000 --data-file data/benchmark/ocr_test.json \
        --output-file results/gemma_eval.json --workers 16
    # in-process model, batched greedy generation
    python core/evaluate.py --mode hf --model-name models/merged --data-file data.json --output-file r.json \
        --max-new-tokens 512 --batch-size 8
    # baselines
    python core/evaluate.py --mode paddleocr --data-file ../shared/data/real/omnidocbench_zh/blocks.json --output-file r.json
    python core/evaluate.py --mode tesseract --tesseract-lang chi_sim --data-file ... --output-file r.json

Progress goes to a JSONL journal next to the output file (or --checkpoint-file) as each sample finishes; running
the same command again after any interruption (Ctrl-C, kill -9) continues where it stopped. Failed requests are
recorded as errors on their samples and excluded from the scores unless --errors-as-empty. See docs/EVALUATION.md.
"""

from __future__ import annotations

import dataclasses
import logging
import sys

from lib.config import field, parse_args
from lib.evaluation.args import BackendArgs

# Keys of the original project's configs that are spelled differently here.
LEGACY_KEYS = {"max_tokens": "max_new_tokens", "url": "vllm_url", "api_url": "vllm_url"}


@dataclasses.dataclass
class EvalArgs(BackendArgs):
    """Evaluate an OCR backend on a labelled dataset."""

    data_file: str = field("data/benchmark/ocr_test.json", help="dataset JSON/JSONL (img_path + ocr_results rows)")
    output_file: str = field("results/evaluation_results.json", help="result JSON (written atomically at the end)")
    top_k: int = field(0, help="evaluate only the first N samples (0 = all)")
    skip_flagged: list[str] = field(default_factory=list, help="leave out rows where any of these keys is true, "
                                                                "e.g. gt_noisy (rows with known-bad ground truth), "
                                                                "or flagged so in the review sidecar "
                                                                "<data>.review.json: gt_wrong model_wrong ambiguous")
    apply_corrections: bool = field(False, help="use the corrected ground truth saved in the review sidecar "
                                                "<data>.review.json (the evaluation viewer writes it)")
    score_empty_labels: bool = field(False, help="include samples whose label is empty in the aggregate scores "
                                                 "(default: per-sample scores only, counted as n_empty_labels)")
    save_interval: int = field(0, help="every N finished samples also fsync the journal and write "
                                       "<output>.partial.json (0 = only at the end)")
    checkpoint_file: str | None = field(None, help="journal path (default: <output-file>.journal.jsonl)")
    resume: bool = field(True, help="continue from an existing journal of the same run (refused if the model, "
                                    "prompt, data or decoding differ); --no-resume starts over, keeping the old "
                                    "journal as .bak")
    retry_errors: bool = field(False, help="on resume, evaluate again the samples whose journal record is an error")
    errors_as_empty: bool = field(False, help="score failed samples as empty predictions instead of excluding them")
    profiles: list[str] = field(default_factory=lambda: ["standard"],
                                help="normalization profiles to score (first = primary): seed standard lenient")
    n_bootstrap: int = field(1000, help="bootstrap resamples for confidence intervals")
    progress: bool = field(True, help="show a progress bar")
    log_level: str = field("INFO", help="logging level")

    def __post_init__(self):
        if self.workers < 1:
            raise ValueError("--workers must be >= 1")
        if self.batch_size < 1:
            raise ValueError("--batch-size must be >= 1")
        if self.max_new_tokens < 1:
            raise ValueError("--max-new-tokens must be >= 1")
        if self.top_k < 0:
            raise ValueError("--top-k must be >= 0 (0 = all samples)")
        if self.n_bootstrap < 0:
            raise ValueError("--n-bootstrap must be >= 0")
        if not self.profiles:
            raise ValueError("--profiles needs at least one of: seed, standard, lenient")
        from lib.metrics.normalization import ProfileError, check_profile

        for p in self.profiles:
            try:
                check_profile(p)
            except ProfileError as exc:
                raise ValueError(f"--profiles: {exc}") from None


def parse(argv=None) -> EvalArgs:
    return parse_args(EvalArgs, argv, legacy_keys=LEGACY_KEYS)


def main(args: EvalArgs) -> dict:
    from lib.config import format_config
    from lib.evaluation.pipeline import evaluate

    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger(__name__).info("%s", format_config(args))
    from lib.errors import cli_errors
    from lib.metrics.normalization import ProfileError
    from lib.prompt import PromptError

    with cli_errors("evaluate.py", extra=(PromptError, ProfileError)):  # bad data, config, journal: one line, exit 2
        result = evaluate(args)
    n, n_err = result.get("total_samples") or 0, result.get("n_errors") or 0
    if n and n_err == n:  # nothing was scored: not a result to build on
        reasons = "; ".join(f"{k} (x{v})" for k, v in list((result.get("errors") or {}).items())[:3])
        raise SystemExit(f"evaluate.py: error: all {n} samples failed ({reasons}); nothing was scored. Results with "
                         f"the errors: {args.output_file}")
    return result


if __name__ == "__main__":
    try:
        main(parse(sys.argv[1:]))
    except KeyboardInterrupt:
        # the journal is closed; exit now instead of waiting for requests still in flight (a resume redoes them)
        import os

        sys.stderr.flush()
        os._exit(130)
