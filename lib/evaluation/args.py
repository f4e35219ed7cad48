"""The backend options shared by core/evaluate.py and core/inference.py (one dataclass, inherited by both), and
`make_backend`, which turns them into a Backend.

Not for: dataset, output or scoring options (each script declares its own).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from lib.config import field
from lib.evaluation.backends import (MODES, Backend, HFBackend, LocalAPIBackend, OpenAIChatBackend, PaddleOCRBackend,
                                     TesseractBackend)
from lib.evaluation.http import RetryPolicy

__all__ = ["BackendArgs", "make_backend", "load_eval_prompt"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class BackendArgs:
    mode: str = field("vllm", help="backend: vllm/openai (chat completions), vllm_stream (SSE), local_api (multipart "
                                   "OCR service), hf (in-process model), paddleocr (PP-OCRv6 via rapidocr), tesseract",
                      choices=MODES)
    vllm_url: str = field("http://localhost:8000/v1/chat/completions",
                          help="server URL: base (http://host:port), /v1, or the full chat-completions URL; for "
                               "local_api the OCR endpoint", aliases=["url", "api_url"])
    model_name: str | None = field(None, help="served model name (default: the first of the server's /v1/models), "
                                              "or the model path/id for --mode hf")
    prompt_config: str | None = field(None, help="prompt YAML (default: the prompt saved with the model for hf, "
                                                 "else configs/ocr_prompt/default.yml)")
    instruction: str | None = field(None, help="replace the prompt file's prompt_text")
    workers: int = field(4, help="concurrent requests (served backends and local OCR engines)")
    max_new_tokens: int = field(2048, help="generation limit (max_tokens for servers)", aliases=["max_tokens"])
    temperature: float = field(0.0, help="sampling temperature; 0 = greedy, the right choice for OCR")
    top_p: float | None = field(None, help="nucleus sampling (servers); unset = server default")
    seed: int | None = field(0, help="sampling seed sent to servers (null to omit)")
    stop: list[str] = field(default_factory=list, help="stop sequences sent to servers")
    repetition_penalty: float | None = field(None, help="vLLM repetition_penalty (the original used 1.1); unset = off")
    extra_body: dict = field(default_factory=dict, help="extra JSON merged into every chat-completions request")
    api_key_env: str = field("OPENAI_API_KEY", help="environment variable holding the API key (sent as Bearer)")
    timeout: float = field(120.0, help="seconds per request attempt (connect + whole response)")
    max_retries: int = field(5, help="retries per request on connection errors, timeouts, 429 and 5xx")
    backoff_base: float = field(0.5, help="first retry waits up to this many seconds (exponential, full jitter)")
    backoff_max: float = field(30.0, help="longest wait between retries (also caps Retry-After)")
    show_stream: bool = field(False, help="vllm_stream: print the text live as it arrives (stderr)")
    local_api_field: str = field("file", help="local_api: multipart field name of the image")
    local_api_json_path: str = field("text", help="local_api: where the text is in the JSON answer (dots, e.g. result.text)")
    batch_size: int = field(8, help="hf: images per generate() call")
    dtype: str = field("auto", help="hf: torch dtype (auto, bfloat16, float16, float32)")
    adapter_path: str | None = field(None, help="hf: a LoRA adapter to apply on --model-name")
    trust_remote_code: bool = field(False, help="hf: allow model code from the model folder")
    paddle_mode: str = field("page", help="paddleocr: page (detect + recognise lines) or line (recognise only)",
                             choices=["page", "line"])
    tesseract_lang: str = field("chi_tra", help="tesseract: languages, e.g. chi_tra, chi_sim, chi_tra+eng")
    tesseract_psm: int = field(6, help="tesseract: page segmentation mode (3 auto, 6 block, 7 one line)")
    postprocess: list[str] = field(default_factory=lambda: ["auto"],
                                   help="output post-processors in order (auto = backend defaults; none = off): "
                                        "strip_think strip_preamble strip_code_fences structured_to_text "
                                        "strip_headers_footers strip_markdown_images collapse_cjk_spaces")


def load_eval_prompt(args: Any):
    """The prompt for this run and the training metadata it was checked against (warnings logged)."""
    from lib.evaluation.model_meta import compare_with_meta, read_model_meta
    from lib.prompt import load_prompt, parse_prompt

    meta = read_model_meta(args.model_name) if args.mode == "hf" else None
    if args.prompt_config is None and meta and meta.get("prompt"):
        saved = {k: meta["prompt"].get(k) for k in ("prompt_text", "image_position", "system_prompt")}
        prompt = parse_prompt(saved, source=f"{args.model_name} (saved with the model)")
        if args.instruction:
            prompt = dataclasses.replace(prompt, prompt_text=args.instruction)
    else:
        prompt = load_prompt(args.prompt_config, instruction=args.instruction)
    for w in compare_with_meta(meta, prompt=prompt):
        log.warning("%s", w)
    return prompt, meta


def make_backend(args: Any, prompt) -> Backend:
    policy = RetryPolicy(max_retries=args.max_retries, backoff_base_s=args.backoff_base, backoff_max_s=args.backoff_max,
                         timeout_s=args.timeout)
    mode = args.mode
    if mode in ("vllm", "openai", "vllm_stream"):
        return OpenAIChatBackend(args.vllm_url, args.model_name, prompt, max_tokens=args.max_new_tokens,
                                 temperature=args.temperature, top_p=args.top_p, seed=args.seed, stop=args.stop,
                                 repetition_penalty=args.repetition_penalty, extra_body=args.extra_body,
                                 api_key_env=args.api_key_env, policy=policy, stream=(mode == "vllm_stream"),
                                 show_stream=args.show_stream)
    if mode == "local_api":
        return LocalAPIBackend(args.vllm_url, field=args.local_api_field, json_path=args.local_api_json_path,
                               model_name=args.model_name, policy=policy)
    if mode == "hf":
        if not args.model_name:
            raise ValueError("--mode hf needs --model-name (a model folder, a hub id, or embedded/tiny-gemma3)")
        backend = HFBackend(args.model_name, prompt, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                            dtype=args.dtype, adapter_path=args.adapter_path, trust_remote_code=args.trust_remote_code)
        from lib.evaluation.model_meta import compare_with_meta, read_model_meta

        for w in compare_with_meta(read_model_meta(args.model_name), processor=backend.processor):
            log.warning("%s", w)
        return backend
    if mode == "paddleocr":
        return PaddleOCRBackend(args.paddle_mode)
    if mode == "tesseract":
        return TesseractBackend(args.tesseract_lang, args.tesseract_psm)
    raise ValueError(f"unknown --mode {mode!r}; choose one of {', '.join(MODES)}")
