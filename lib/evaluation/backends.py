"""Evaluation backends behind one interface: a backend turns one sample (or, for in-process models, a batch) into
a `Prediction`, or raises an exception whose message becomes the sample's recorded error.

| mode | what it talks to |
|---|---|
| `vllm`, `openai` | any OpenAI-compatible chat-completions server (vLLM, SGLang, LMDeploy, …) |
| `vllm_stream` | the same with `stream: true` (SSE `data:` lines up to `[DONE]`) |
| `local_api` | an external OCR service taking a multipart upload and answering JSON |
| `hf` | an in-process Hugging Face model (`lib.modeling` + `lib.generation`), batched greedy decoding |
| `paddleocr` | PP-OCRv6 through `rapidocr` + `onnxruntime` (models ship in the wheel; works offline) |
| `tesseract` | Tesseract through `pytesseract` (Debian packages tesseract-ocr, tesseract-ocr-chi-tra/-chi-sim) |

Each backend's `identity()` is what makes two runs "the same run" for the journal (model, prompt, decoding, engine
settings); connection details such as URLs, timeouts and worker counts are deliberately left out of it.

Not for: concurrency, journaling, or scoring (runner.py and lib/utils/count_metric.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
import time
from typing import Any, Sequence

from lib.errors import UserError
from lib.evaluation.http import HttpClient, RequestFailed, RetryableError, RetryPolicy
from lib.evaluation.images import ImageError, load_rgb, read_image_bytes, sniff_mime, to_data_url
from lib.evaluation.reading_order import BAND_GAP, COLUMN_GAP, reading_order_text

__all__ = ["Prediction", "Backend", "OpenAIChatBackend", "LocalAPIBackend", "HFBackend", "PaddleOCRBackend",
           "TesseractBackend", "BackendError", "MODES", "normalize_chat_url", "fetch_model_names"]

log = logging.getLogger(__name__)

MODES = ("vllm", "openai", "vllm_stream", "local_api", "hf", "paddleocr", "tesseract")


class BackendError(UserError, RuntimeError):
    """A backend that cannot run at all (missing dependency, unreachable server); the message says how to fix it."""


@dataclasses.dataclass
class Prediction:
    text: str
    n_tokens: int | None = None
    attempts: int = 1
    finish_reason: str | None = None


class Backend:
    name = "base"
    # what "--postprocess auto" means for this backend (generative models: strip <think>, fences, preambles, JSON)
    default_postprocessors: tuple[str, ...] = ("strip_think", "strip_preamble", "strip_code_fences", "structured_to_text")
    batched = False  # True: the runner calls predict_batch with up to `batch_size` samples

    def identity(self) -> dict:
        raise NotImplementedError

    def predict(self, sample) -> Prediction:
        raise NotImplementedError

    def predict_batch(self, samples: Sequence) -> list[Prediction | BaseException]:
        out: list[Prediction | BaseException] = []
        for s in samples:
            try:
                out.append(self.predict(s))
            except Exception as exc:  # recorded per sample
                out.append(exc)
        return out

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------------------------
# OpenAI-compatible servers
# ---------------------------------------------------------------------------------------------------------------

def normalize_chat_url(url: str) -> tuple[str, str]:
    """(chat-completions URL, models URL) from a base URL, a `/v1` URL or a full chat-completions URL."""
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        base = url[: -len("/chat/completions")]
    elif url.endswith("/v1"):
        base = url
    else:
        base = url + "/v1"
    return base + "/chat/completions", base + "/models"


def fetch_model_names(models_url: str, client: HttpClient) -> list[str]:
    data = client.get_json(models_url)
    return [m.get("id") for m in (data.get("data") or []) if isinstance(m, dict) and m.get("id")]


class OpenAIChatBackend(Backend):
    """Chat completions with the image as a data URL (real MIME type) or a passed-through http(s) URL."""

    def __init__(self, url: str, model_name: str | None, prompt, *, max_tokens: int = 2048, temperature: float = 0.0,
                 top_p: float | None = None, seed: int | None = 0, stop: Sequence[str] = (),
                 repetition_penalty: float | None = None, extra_body: dict | None = None,
                 api_key_env: str = "OPENAI_API_KEY", policy: RetryPolicy | None = None, stream: bool = False,
                 show_stream: bool = False):
        self.chat_url, self.models_url = normalize_chat_url(url)
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env) if api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.client = HttpClient(policy, headers=headers)
        self.prompt = prompt
        self.stream = stream
        self.show_stream = show_stream
        self.name = "vllm_stream" if stream else "openai"
        self.decoding = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed, "stop": list(stop)}
        if top_p is not None:
            self.decoding["top_p"] = top_p
        if repetition_penalty is not None:
            self.decoding["repetition_penalty"] = repetition_penalty  # vLLM extension
        self.extra_body = dict(extra_body or {})
        self.model_name = model_name or self._discover_model()
        self._print_lock = threading.Lock()

    def _discover_model(self) -> str:
        try:
            names = fetch_model_names(self.models_url, self.client)
        except RequestFailed as exc:
            raise BackendError(f"--model-name not given and {self.models_url} could not be read ({exc.reason}); "
                               f"is the server running? Pass --model-name explicitly otherwise.") from None
        if not names:
            raise BackendError(f"{self.models_url} lists no models; pass --model-name")
        if len(names) > 1:
            log.warning("server serves %d models %s; using the first, %r (pass --model-name to choose)", len(names), names, names[0])
        return names[0]

    def identity(self) -> dict:
        return {"backend": "openai", "model": self.model_name, "prompt": self.prompt.to_dict() | {"source": None},
                "decoding": {**self.decoding, **self.extra_body}}

    def payload(self, image_path: str) -> dict:
        from lib.prompt import build_openai_messages

        url = to_data_url(image_path)  # ImageError for a missing file: recorded as the sample's error
        body = {"model": self.model_name, "messages": build_openai_messages(self.prompt, url), **self.decoding}
        if not body.get("stop"):
            body.pop("stop", None)
        if body.get("seed") is None:
            body.pop("seed", None)
        body.update(self.extra_body)
        if self.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def predict(self, sample) -> Prediction:
        body = self.payload(sample.image_path)
        if self.stream:
            (text, n_tok, finish), attempts = self.client.post_json(self.chat_url, body, self._read_stream, stream=True)
        else:
            (text, n_tok, finish), attempts = self.client.post_json(self.chat_url, body, self._read_json)
        return Prediction(text=text, n_tokens=n_tok, attempts=attempts, finish_reason=finish)

    @staticmethod
    def _read_json(resp, deadline):
        try:
            data = resp.json()
        except ValueError as exc:
            raise RetryableError(f"malformed JSON response ({exc})") from None
        if isinstance(data, dict) and data.get("error"):
            raise RetryableError(f"server error in body: {str(data['error'])[:200]}")
        try:
            choice = data["choices"][0]
            content = choice["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise RetryableError(f"response has no choices[0].message (keys: {list(data)[:8] if isinstance(data, dict) else type(data).__name__})") from None
        usage = data.get("usage") or {}
        return content or "", usage.get("completion_tokens"), choice.get("finish_reason")

    def _read_stream(self, resp, deadline):
        parts: list[str] = []
        n_tok = None
        finish = None
        done = False
        for raw in resp.iter_lines():
            if time.monotonic() > deadline:
                raise RetryableError(f"timeout: stream still running after {self.client.policy.timeout_s:g} s")
            if not raw:
                continue
            line = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
            if not line.startswith("data:"):
                continue  # comments (":"), event:/id: lines
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError:
                raise RetryableError(f"malformed SSE data line: {data[:120]!r}") from None
            if chunk.get("error"):
                raise RetryableError(f"server error in stream: {str(chunk['error'])[:200]}")
            if chunk.get("usage"):
                n_tok = chunk["usage"].get("completion_tokens", n_tok)
            for choice in chunk.get("choices") or []:
                delta = (choice.get("delta") or {}).get("content")
                if delta:
                    parts.append(delta)
                    if self.show_stream:
                        with self._print_lock:
                            sys.stderr.write(delta)
                            sys.stderr.flush()
                finish = choice.get("finish_reason") or finish
        if not done:
            raise RetryableError("stream ended before [DONE] (dropped mid-response)")
        if self.show_stream and parts:
            sys.stderr.write("\n")
        return "".join(parts), n_tok, finish


# ---------------------------------------------------------------------------------------------------------------
# External OCR services (multipart upload)
# ---------------------------------------------------------------------------------------------------------------

def json_path_get(data: Any, path: str) -> Any:
    """`a.b.0.c` into nested dicts/lists; raises KeyError naming the missing step."""
    cur = data
    for step in [p for p in path.split(".") if p]:
        if isinstance(cur, list):
            try:
                cur = cur[int(step)]
                continue
            except (ValueError, IndexError):
                raise KeyError(f"'{step}' (a list of {len(cur)} items)") from None
        if not isinstance(cur, dict) or step not in cur:
            keys = list(cur)[:10] if isinstance(cur, dict) else type(cur).__name__
            raise KeyError(f"'{step}' (available: {keys})")
        cur = cur[step]
    return cur


class LocalAPIBackend(Backend):
    """POST the image file as multipart form data; read the text from a JSON path of the answer. The filename
    and MIME type are the real ones (the original always claimed `image.jpg` / image/jpeg)."""

    name = "local_api"
    default_postprocessors = ()

    def __init__(self, url: str, *, field: str = "file", json_path: str = "text", form: dict | None = None,
                 model_name: str | None = None, policy: RetryPolicy | None = None):
        if not url.startswith(("http://", "https://")):
            url = "http://" + url
        self.url = url
        self.field = field
        self.json_path = json_path
        self.form = {k: str(v) for k, v in (form or {}).items()}
        self.model_name = model_name or url
        self.client = HttpClient(policy)

    def identity(self) -> dict:
        return {"backend": "local_api", "model": self.model_name, "field": self.field, "json_path": self.json_path,
                "form": self.form}

    def predict(self, sample) -> Prediction:
        data = read_image_bytes(sample.image_path)
        filename = os.path.basename(sample.image_path)
        mime = sniff_mime(data, filename)

        def handle(resp, deadline):
            try:
                body = resp.json()
            except ValueError:
                raise RetryableError("response is not JSON") from None
            try:
                value = json_path_get(body, self.json_path)
            except KeyError as exc:
                raise RequestFailed(f"response has no {exc.args[0]} for --local-api-json-path {self.json_path!r}",
                                    retryable=False) from None
            if isinstance(value, list):
                value = "\n".join(str(v) for v in value)
            return "" if value is None else str(value)

        text, attempts = self.client.request("POST", self.url, handle, files={self.field: (filename, data, mime)},
                                             data=self.form)
        return Prediction(text=text, attempts=attempts)


def weights_fingerprint(*paths: str | None) -> str | None:
    """A short hash of the weight files' names, sizes and modification times in local model/adapter folders, so a
    model retrained into the same folder is a different run for the journal (None for hub ids / embedded names)."""
    import hashlib
    from pathlib import Path

    h = hashlib.sha256()
    found = False
    for p in paths:
        if not p or not Path(p).is_dir():
            continue
        for f in sorted(Path(p).iterdir()):
            if f.suffix in (".safetensors", ".bin", ".pt", ".pth", ".gguf") and f.is_file():
                st = f.stat()
                h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
                found = True
    return h.hexdigest()[:16] if found else None


# ---------------------------------------------------------------------------------------------------------------
# In-process Hugging Face model
# ---------------------------------------------------------------------------------------------------------------

class HFBackend(Backend):
    """Batched greedy generation in this process through `lib.modeling` and `lib.generation`."""

    name = "hf"
    batched = True

    def __init__(self, model_name: str, prompt, *, max_new_tokens: int = 2048, batch_size: int = 8,
                 dtype: str = "auto", adapter_path: str | None = None, trust_remote_code: bool = False):
        from lib.generation import generate_batch
        from lib.modeling import load_model_and_processor

        self._generate_batch = generate_batch
        self.model_name = model_name
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.adapter_path = adapter_path
        self.model, self.processor = load_model_and_processor(model_name, dtype=dtype, adapter_path=adapter_path,
                                                              trust_remote_code=trust_remote_code)
        from lib.reader.preprocess import LineFinder, reader_input_of

        # a folded-line reader (lib/reader): pages and blocks are cut into lines by PP-OCRv6's detector, each line
        # is folded into the reader's square, and the line texts are joined in reading order
        self.reader_input = reader_input_of(self.processor)
        self.line_finder = LineFinder() if self.reader_input is not None else None

    def identity(self) -> dict:
        out = {"backend": "hf", "model": self.model_name, "adapter": self.adapter_path,
               "weights": weights_fingerprint(self.model_name, self.adapter_path),
               "prompt": self.prompt.to_dict() | {"source": None},
               "decoding": {"max_new_tokens": self.max_new_tokens, "do_sample": False}}
        if self.reader_input is not None:
            out["reader"] = {"input": "folded_line", "lines": "PP-OCRv6 detection (rapidocr), reading order xycut"}
        return out

    def predict(self, sample) -> Prediction:
        out = self.predict_batch([sample])[0]
        if isinstance(out, BaseException):
            raise out
        return out

    def predict_batch(self, samples):
        images, ok_pos = [], []
        results: list[Prediction | BaseException | None] = [None] * len(samples)
        for i, s in enumerate(samples):
            try:
                images.append(load_rgb(s.image_path))
                ok_pos.append(i)
            except ImageError as exc:
                results[i] = exc
        if images and self.reader_input is not None:
            return self._read_lines(samples, images, ok_pos, results)
        if images:
            outs = self._generate_batch(self.model, self.processor, self.prompt, images,
                                        max_new_tokens=self.max_new_tokens, batch_size=self.batch_size)
            for i, g in zip(ok_pos, outs):
                if getattr(g, "error", None):
                    results[i] = ImageError(g.error)
                else:
                    stopped = getattr(g, "stopped", True)
                    results[i] = Prediction(text=g.text, n_tokens=getattr(g, "n_tokens", None),
                                            finish_reason="stop" if stopped else "length")
        return results  # type: ignore[return-value]


    def _read_lines(self, samples, images, ok_pos, results):
        from lib.reader.preprocess import prepare_lines

        per_sample, squares = [], []
        for i, im in zip(ok_pos, images):
            sq, boxes, layout = prepare_lines(im, self.reader_input, self.line_finder,
                                              element=getattr(samples[i], "element", None))
            per_sample.append((i, len(squares), len(sq), boxes, layout))
            squares += sq
        outs = self._generate_batch(self.model, self.processor, self.prompt, squares,
                                    max_new_tokens=self.max_new_tokens, batch_size=self.batch_size)
        for i, start, n, boxes, layout in per_sample:
            part = outs[start:start + n]
            errs = [g.error for g in part if getattr(g, "error", None)]
            if errs:
                results[i] = ImageError(errs[0])
                continue
            text = join_lines(boxes, [g.text for g in part], layout)
            stopped = all(getattr(g, "stopped", True) for g in part)
            results[i] = Prediction(text=text, n_tokens=sum(getattr(g, "n_tokens", 0) or 0 for g in part),
                                    finish_reason="stop" if stopped else "length")
        return results


def join_lines(boxes: Sequence[tuple[np.ndarray, int]], texts: Sequence[str], layout: str) -> str:
    """Texts of the squares of one image -> the image's text (pieces of one long line joined, then reading order)."""
    per_box: dict[int, list[str]] = {}
    quads: dict[int, np.ndarray] = {}
    order: list[int] = []
    for (box, k), text in zip(boxes, texts):
        key = id(box)
        if key not in per_box:
            per_box[key], quads[key] = [], box
            order.append(key)
        per_box[key].append(text)
    merged = ["".join(per_box[k]) for k in order]
    if len(merged) == 1:
        return merged[0]
    if layout == "ordered":  # lines already in reading order (a seal's ring text, then its centre)
        return "\n".join(merged)
    return reading_order_text([quads[k] for k in order], merged, layout=layout)


# ---------------------------------------------------------------------------------------------------------------
# Local OCR engines (baselines)
# ---------------------------------------------------------------------------------------------------------------

class PaddleOCRBackend(Backend):
    """PP-OCRv6 via rapidocr. `page`: detection + (angle classification) + recognition, lines joined with newlines
    in reading order (lib/evaluation/reading_order.py: XY-cut into bands and columns, then rows; whole-image
    recognition when detection finds nothing); `line`: recognition only, for single-line crops.
    One engine per worker thread (the engine keeps per-call options as state)."""

    name = "paddleocr"
    default_postprocessors = ()

    def __init__(self, mode: str = "page", *, use_cls: bool = True, text_score: float = 0.5, threads: int = 0):
        try:
            import rapidocr  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise BackendError(f"paddleocr mode needs rapidocr and onnxruntime ({exc}); "
                               f"to fix: pip install 'rapidocr==3.10.0' onnxruntime") from None
        if mode not in ("page", "line"):
            raise BackendError(f"--paddle-mode must be 'page' or 'line', got {mode!r}")
        self.mode = mode
        self.use_cls = use_cls
        self.text_score = text_score
        self.threads = threads
        self._local = threading.local()
        from importlib.metadata import version

        self.version = version("rapidocr")

    def identity(self) -> dict:
        return {"backend": "paddleocr", "model": f"PP-OCRv6 {self.mode} (rapidocr {self.version})", "mode": self.mode,
                "use_cls": self.use_cls, "text_score": self.text_score,
                "reading_order": f"xycut band {BAND_GAP} column {COLUMN_GAP}; tables as an HTML grid" if self.mode == "page" else None}

    def _engine(self):
        eng = getattr(self._local, "engine", None)
        if eng is None:
            from rapidocr import RapidOCR

            params = {"Global.log_level": "error", "Global.text_score": self.text_score}  # "nothing detected" is handled
            if self.threads:
                params["EngineConfig.onnxruntime.intra_op_num_threads"] = self.threads
            eng = RapidOCR(params=params)
            self._local.engine = eng
        return eng

    def predict(self, sample) -> Prediction:
        import numpy as np

        img = np.asarray(load_rgb(sample.image_path))[:, :, ::-1].copy()  # RGB -> BGR, as rapidocr expects for arrays
        eng = self._engine()
        # options persist inside the engine between calls: pass every one of them on every call
        if self.mode == "page":
            res = eng(img, use_det=True, use_cls=self.use_cls, use_rec=True)
            txts = getattr(res, "txts", None) or ()
            boxes = getattr(res, "boxes", None)
            if txts and boxes is not None and len(boxes) == len(txts):
                layout = "table" if (getattr(sample, "element", None) or "").lower() == "table" else "auto"
                return Prediction(text=reading_order_text(boxes, txts, layout=layout))
            if txts:
                return Prediction(text="\n".join(t for t in txts if t.strip()))
            # detection found nothing (a tight crop of one line): recognise the whole image instead
        res = eng(img, use_det=False, use_cls=False, use_rec=True)
        txts = getattr(res, "txts", None) or ()
        return Prediction(text="\n".join(t for t in txts if t.strip()))



TESSERACT_FIX = ("install Tesseract with: apt-get install -y tesseract-ocr tesseract-ocr-chi-tra tesseract-ocr-chi-sim "
                 "(Debian/Ubuntu), then pip install pytesseract")


class TesseractBackend(Backend):
    """Tesseract LSTM through pytesseract. `lang` like `chi_tra` or `chi_tra+eng`; `psm` 6 = a uniform block of
    text, 7 = one line, 3 = automatic page segmentation."""

    name = "tesseract"
    default_postprocessors = ("collapse_cjk_spaces",)

    def __init__(self, lang: str = "chi_tra", psm: int = 6, oem: int = 1, extra_config: str = ""):
        try:
            import pytesseract
        except ImportError:
            raise BackendError(f"tesseract mode needs pytesseract; {TESSERACT_FIX}") from None
        try:
            self.version = str(pytesseract.get_tesseract_version())
            available = set(pytesseract.get_languages(config=""))
        except Exception as exc:  # TesseractNotFoundError and friends
            raise BackendError(f"the tesseract program is not installed or not on PATH ({type(exc).__name__}); "
                               f"{TESSERACT_FIX}") from None
        missing = [l for l in lang.split("+") if l not in available]
        if missing:
            pkgs = " ".join("tesseract-ocr-" + l.replace("_", "-") for l in missing)
            raise BackendError(f"Tesseract language data {missing} not installed (have: {sorted(available)}); "
                               f"to fix: apt-get install -y {pkgs}")
        self._pyt = pytesseract
        self.lang, self.psm, self.oem, self.extra_config = lang, psm, oem, extra_config

    def identity(self) -> dict:
        return {"backend": "tesseract", "model": f"tesseract {self.version} {self.lang}", "lang": self.lang,
                "psm": self.psm, "oem": self.oem, "extra_config": self.extra_config}

    def predict(self, sample) -> Prediction:
        img = load_rgb(sample.image_path)
        config = f"--oem {self.oem} --psm {self.psm} {self.extra_config}".strip()
        text = self._pyt.image_to_string(img, lang=self.lang, config=config)
        return Prediction(text=text.strip())
