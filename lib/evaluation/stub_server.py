"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks: `GET /v1/models`,
`POST /v1/chat/completions` (JSON, and SSE when `stream: true`), and `POST /ocr` (a multipart OCR service for the
`local_api` backend). What it answers comes from a `responder(request_json, image_bytes) -> text` function — a
lookup table, a deterministic function of the image, or a real model's predictions.

Fault injection (`FaultPlan`): a seeded fraction of requests (kinds taken in turn) is answered 500 / 503 / 429 (with Retry-After),
delayed past the client's timeout, or dropped mid-response (JSON cut short / SSE stream closed before [DONE]);
images listed in `always_fail` fail every time. `stats` counts requests and completed answers per image.

Not for: production serving (use vLLM/SGLang; see configs/docker-compose-vllm.yml).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

__all__ = ["StubServer", "FaultPlan", "image_key", "table_responder"]

FAULT_KINDS = ("500", "503", "429", "delay", "drop")


def image_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def table_responder(table: dict[str, str], default: str = "") -> Callable[[dict, bytes | None], str]:
    """Answer the text stored for the image's content hash (see `image_key`)."""

    def respond(body: dict, image: bytes | None) -> str:
        return table.get(image_key(image or b""), default)

    return respond


def _digest_responder(body: dict, image: bytes | None) -> str:
    return "文字" + image_key(image or b"")[:6]


@dataclasses.dataclass
class FaultPlan:
    rate: float = 0.0  # fraction of requests that get a fault
    kinds: tuple[str, ...] = FAULT_KINDS
    delay_s: float = 2.0  # for "delay": longer than the client's timeout
    retry_after: str = "0"  # header value sent with 429
    seed: int = 0
    always_fail: frozenset[str] = frozenset()  # image keys answered 503 every time


class StubServer:
    def __init__(self, responder: Callable[[dict, bytes | None], str] | None = None, *, model_id: str = "stub-ocr",
                 latency_s: float = 0.0, faults: FaultPlan | None = None, chunk_chars: int = 3,
                 require_api_key: str | None = None, hold: Callable[[str | None], None] | None = None):
        self.responder = responder or _digest_responder
        self.hold = hold  # called with the image key before answering, outside any lock (tests hold requests)
        self.model_id = model_id
        self.latency_s = latency_s
        self.faults = faults or FaultPlan()
        self.chunk_chars = chunk_chars
        self.require_api_key = require_api_key
        self._rng = random.Random(self.faults.seed)
        self._n_faults = 0
        self._lock = threading.Lock()
        self.stats = Counter()
        self.completed = Counter()  # image key -> answers fully sent
        self.requests: list[dict] = []  # request bodies with image data replaced by its key
        self.responder_lock = threading.Lock()  # a model behind the responder is not thread-safe
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> "StubServer":
        server = self

        class Handler(_Handler):
            stub = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def chat_url(self) -> str:
        return self.base_url + "/v1/chat/completions"

    # -- decisions -------------------------------------------------------------------------------------------
    def pick_fault(self, key: str | None) -> str | None:
        if key is not None and key in self.faults.always_fail:
            return "503"
        with self._lock:
            if self.faults.rate and self._rng.random() < self.faults.rate:
                kind = self.faults.kinds[self._n_faults % len(self.faults.kinds)]  # round robin: every kind occurs
                self._n_faults += 1
                return kind
        return None

    def answer(self, body: dict, image: bytes | None) -> str:
        with self.responder_lock:
            return self.responder(body, image)


_DATA_URL = re.compile(r"^data:(?P<mime>[\w/+.-]+);base64,(?P<data>.*)$", re.DOTALL)


def _extract_image(body: dict) -> tuple[bytes | None, str | None]:
    for m in body.get("messages") or []:
        content = m.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                url = (part.get("image_url") or {}).get("url", "")
                mm = _DATA_URL.match(url)
                if mm:
                    return base64.b64decode(mm.group("data")), mm.group("mime")
                return url.encode(), None
    return None, None


def _redact(body: dict, key: str | None, mime: str | None) -> dict:
    out = json.loads(json.dumps(body))
    for m in out.get("messages") or []:
        for part in m.get("content") or [] if isinstance(m.get("content"), list) else []:
            if part.get("type") == "image_url":
                part["image_url"] = {"key": key, "mime": mime}
    return out


class _Handler(BaseHTTPRequestHandler):
    stub: StubServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: without this, delayed ACKs add 40 ms

    def log_message(self, fmt, *args):  # keep test output clean
        pass

    # -- helpers ---------------------------------------------------------------------------------------------
    def _send_json(self, status: int, obj: dict, headers: dict | None = None, cut: bool = False) -> None:
        data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if cut:
            self.send_header("Connection", "close")
        self.end_headers()
        if cut:  # promise the whole body, send half, hang up
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)

    def _fault(self, kind: str, stream: bool, text_for_drop: str = "") -> bool:
        """Apply a fault; True if the request has been answered (or abandoned) by it."""
        stub = self.stub
        stub.stats[f"fault_{kind}"] += 1
        if kind in ("500", "503"):
            self._send_json(int(kind), {"error": {"message": f"injected {kind}", "type": "server_error"}})
            return True
        if kind == "429":
            self._send_json(429, {"error": {"message": "rate limited", "type": "rate_limit"}},
                            headers={"Retry-After": stub.faults.retry_after})
            return True
        if kind == "delay":
            time.sleep(stub.faults.delay_s)
            self.close_connection = True
            return True  # the client has given up by now; answer nothing
        if kind == "drop":
            if stream:
                self._start_sse()
                self._sse({"choices": [{"index": 0, "delta": {"content": text_for_drop[:2] or "x"}}]})
                self.close_connection = True
                return True
            self._send_json(200, _completion(stub.model_id, text_for_drop or "x"), cut=True)
            return True
        return False

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _sse(self, obj) -> None:
        payload = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
        self.wfile.write(f"data: {payload}\n\n".encode("utf-8"))
        self.wfile.flush()

    # -- routes ----------------------------------------------------------------------------------------------
    def do_GET(self):
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": [{"id": self.stub.model_id, "object": "model"}]})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):
        stub = self.stub
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if stub.require_api_key and self.headers.get("Authorization") != f"Bearer {stub.require_api_key}":
            self._send_json(401, {"error": {"message": "invalid API key"}})
            return
        if self.path.startswith("/ocr"):
            self._ocr(raw)
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            self._send_json(400, {"error": {"message": "body is not JSON"}})
            return
        image, mime = _extract_image(body)
        key = image_key(image) if image is not None else None
        with stub._lock:
            stub.stats["requests"] += 1
            stub.requests.append({"body": _redact(body, key, mime), "headers": dict(self.headers)})
        stream = bool(body.get("stream"))
        if stub.latency_s:
            time.sleep(stub.latency_s)
        if stub.hold is not None:
            stub.hold(key)
        fault = stub.pick_fault(key)
        text = stub.answer(body, image)
        if fault and self._fault(fault, stream, text):
            return
        if stream:
            self._start_sse()
            step = max(1, stub.chunk_chars)
            self._sse({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
            for i in range(0, len(text), step):
                self._sse({"choices": [{"index": 0, "delta": {"content": text[i:i + step]}, "finish_reason": None}]})
            self._sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            self._sse({"choices": [], "usage": {"completion_tokens": len(text)}})
            self._sse("[DONE]")
        else:
            self._send_json(200, _completion(stub.model_id, text))
        with stub._lock:
            stub.completed[key] += 1
            stub.stats["ok"] += 1

    def _ocr(self, raw: bytes) -> None:
        stub = self.stub
        ctype = self.headers.get("Content-Type", "")
        parts = _parse_multipart(raw, ctype)
        filepart = next((p for p in parts if p.get("filename") is not None), None)
        with stub._lock:
            stub.stats["requests"] += 1
            stub.requests.append({"multipart": [{k: v for k, v in p.items() if k != "data"} for p in parts]})
        if filepart is None:
            self._send_json(400, {"error": "no file part"})
            return
        key = image_key(filepart["data"])
        fault = stub.pick_fault(key)
        text = stub.answer({}, filepart["data"])
        if fault and self._fault(fault, False, text):
            return
        self._send_json(200, {"text": text, "result": {"lines": [text]}})
        with stub._lock:
            stub.completed[key] += 1
            stub.stats["ok"] += 1


def _completion(model: str, text: str) -> dict:
    return {"id": "chatcmpl-stub", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": len(text), "total_tokens": len(text) + 1}}


def _parse_multipart(raw: bytes, ctype: str) -> list[dict]:
    """Minimal multipart/form-data parser (the stdlib `cgi` module is gone in 3.13)."""
    m = re.search(r'boundary="?([^";]+)"?', ctype)
    if not m:
        return []
    boundary = b"--" + m.group(1).encode()
    parts = []
    for chunk in raw.split(boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
        headers = head.decode("utf-8", errors="replace")
        name = re.search(r'name="([^"]*)"', headers)
        filename = re.search(r'filename="([^"]*)"', headers)
        ctype_m = re.search(r"Content-Type:\s*([^\r\n]+)", headers, re.IGNORECASE)
        parts.append({"name": name.group(1) if name else None, "filename": filename.group(1) if filename else None,
                      "content_type": ctype_m.group(1).strip() if ctype_m else None,
                      "data": data[:-2] if data.endswith(b"\r\n") else data})
    return parts


def _main(argv=None) -> None:
    """`python -m lib.evaluation.stub_server --latency 0.2`: serve (deterministic answers) until killed; prints the
    base URL on the first line of stdout. Used by the benchmark to keep the server out of the client's process."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(description=_main.__doc__)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--model-id", default="stub-ocr")
    a = ap.parse_args(argv)
    srv = StubServer(latency_s=a.latency, faults=FaultPlan(rate=a.fault_rate), model_id=a.model_id).start()
    print(srv.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
        sys.exit(0)


if __name__ == "__main__":
    _main()
