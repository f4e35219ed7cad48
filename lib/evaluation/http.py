"""HTTP with retries for served backends: exponential backoff with full jitter on connection errors, timeouts,
responses dropped mid-body, 429 and 5xx (honouring `Retry-After`). A request that still fails raises
`RequestFailed` with the reason, which the runner records as the sample's error — never as an empty prediction.

Not for: building payloads or parsing model outputs (backends.py does that).
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import random
import threading
import time
from typing import Any, Callable

__all__ = ["RetryPolicy", "RequestFailed", "RetryableError", "HttpClient"]

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class RequestFailed(RuntimeError):
    """Gave up on a request; `reason` is a short human-readable cause, `attempts` how many were made."""

    def __init__(self, reason: str, attempts: int = 1, retryable: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts
        self.retryable = retryable


class RetryableError(RuntimeError):
    """Raised by a response handler for a broken but retryable answer (e.g. an SSE stream cut before [DONE])."""


@dataclasses.dataclass
class RetryPolicy:
    max_retries: int = 5  # retries after the first attempt
    backoff_base_s: float = 0.5  # first retry waits up to this long (full jitter), doubling each time
    backoff_max_s: float = 30.0  # cap for one wait (also caps Retry-After)
    timeout_s: float = 120.0  # per attempt: connect + whole response
    seed: int | None = None

    def backoff(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Wait before retry number `attempt` (1-based): uniform in [0, base*2^(attempt-1)] capped at max;
        a server's Retry-After is a floor."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2 ** (attempt - 1)))
        wait = rng.uniform(0, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.backoff_max_s))
        return wait


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or unparseable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class HttpClient:
    """A thread-safe client (one `requests.Session` per thread) that retries per `RetryPolicy`."""

    def __init__(self, policy: RetryPolicy | None = None, headers: dict[str, str] | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.policy = policy or RetryPolicy()
        self.headers = dict(headers or {})
        self._local = threading.local()
        self._rng = random.Random(self.policy.seed)
        self._rng_lock = threading.Lock()
        self._sleep = sleep
        self.stats = {"requests": 0, "retries": 0}
        self._stats_lock = threading.Lock()

    def _session(self):
        s = getattr(self._local, "session", None)
        if s is None:
            import requests
            from requests.adapters import HTTPAdapter

            s = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=4, max_retries=0)
            s.mount("http://", adapter)
            s.mount("https://", adapter)
            s.headers.update(self.headers)
            self._local.session = s
        return s

    def request(self, method: str, url: str, handle: Callable[[Any, float], Any], *, stream: bool = False,
                **kwargs) -> tuple[Any, int]:
        """Send until `handle(response, deadline)` returns without a retryable error. Returns (result, attempts).

        `handle` gets a response with a 2xx status and the monotonic deadline of this attempt; it may raise
        RetryableError (retried) or any other exception (a non-retryable failure)."""
        import requests

        policy = self.policy
        last_reason = "no attempt made"
        for attempt in range(1, policy.max_retries + 2):
            retry_after = None
            with self._stats_lock:
                self.stats["requests"] += 1
                if attempt > 1:
                    self.stats["retries"] += 1
            deadline = time.monotonic() + policy.timeout_s
            try:
                resp = self._session().request(method, url, stream=stream, timeout=(min(10.0, policy.timeout_s), policy.timeout_s),
                                               **kwargs)
                try:
                    if resp.status_code >= 400:
                        body = _short_body(resp)
                        reason = f"HTTP {resp.status_code}" + (f": {body}" if body else "")
                        if resp.status_code in RETRY_STATUS:
                            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                            raise RetryableError(reason)
                        raise RequestFailed(reason, attempt, retryable=False)
                    return handle(resp, deadline), attempt
                finally:
                    resp.close()
            except RequestFailed:
                raise
            except RetryableError as exc:
                last_reason = str(exc)
            except requests.exceptions.Timeout:
                last_reason = f"timeout after {policy.timeout_s:g} s"
            except requests.exceptions.ConnectionError as exc:
                last_reason = f"connection error ({_short_exc(exc)})"
            except requests.exceptions.ChunkedEncodingError as exc:
                last_reason = f"response dropped mid-body ({_short_exc(exc)})"
            except (requests.exceptions.ContentDecodingError, json.JSONDecodeError) as exc:
                last_reason = f"malformed response ({_short_exc(exc)})"
            except requests.exceptions.RequestException as exc:
                raise RequestFailed(f"request error ({_short_exc(exc)})", attempt, retryable=False) from None
            if attempt > policy.max_retries:
                break
            with self._rng_lock:
                wait = policy.backoff(attempt, self._rng, retry_after)
            log.debug("attempt %d on %s failed (%s); retrying in %.2f s", attempt, url, last_reason, wait)
            self._sleep(wait)
        raise RequestFailed(f"{last_reason} (gave up after {policy.max_retries + 1} attempts)", policy.max_retries + 1)

    def post_json(self, url: str, payload: dict, handle: Callable[[Any, float], Any], stream: bool = False):
        return self.request("POST", url, handle, stream=stream, json=payload)

    def get_json(self, url: str) -> Any:
        def handle(resp, deadline):
            return resp.json()

        return self.request("GET", url, handle)[0]


def _short_body(resp, limit: int = 200) -> str:
    try:
        text = resp.text
    except Exception:
        return ""
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


def _short_exc(exc: BaseException, limit: int = 160) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:limit] + ("…" if len(text) > limit else "")
