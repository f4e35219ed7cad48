"""Evaluation throughput against a local OpenAI-compatible server with a fixed latency: W workers should sustain
at least 0.9 x W / latency requests per second (the whole path: payload building, base64 images, HTTP, SSE or
JSON parsing, journal appends). The server runs in its own process (lib/evaluation/stub_server.py).

    python -m core.benchmarks.bench_eval_server                      # W = 1, 4, 16 at 200 ms, JSON
    python -m core.benchmarks.bench_eval_server --workers 1 4 16 32 --stream true --requests-per-worker 20
"""

from __future__ import annotations

import dataclasses
import sys

from lib.config import field, parse_args


@dataclasses.dataclass
class BenchArgs:
    """Throughput of the evaluation runner against a fixed-latency local server."""

    workers: list[int] = field(default_factory=lambda: [1, 4, 16], help="worker counts to measure")
    latency: float = field(0.2, help="server latency per request, seconds")
    requests_per_worker: int = field(15, help="requests per worker in each measurement")
    stream: bool = field(False, help="use SSE streaming (vllm_stream) instead of JSON")
    required_ratio: float = field(0.9, help="pass if achieved >= this x (W / latency)")


def main(args: BenchArgs) -> dict:
    import os
    import subprocess
    import tempfile
    import time
    from pathlib import Path

    from lib.data import load_samples
    from lib.evaluation.backends import OpenAIChatBackend
    from lib.evaluation.http import RetryPolicy
    from lib.evaluation.journal import Journal
    from lib.evaluation.runner import percentile, run_samples
    from lib.evaluation.testing import make_png_dataset
    from lib.prompt import load_prompt

    server = subprocess.Popen([sys.executable, "-m", "lib.evaluation.stub_server", "--latency", str(args.latency)],
                              stdout=subprocess.PIPE, text=True)
    url = server.stdout.readline().strip()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            n_max = max(args.workers) * args.requests_per_worker
            data = make_png_dataset(Path(tmp), n_max)
            all_samples = load_samples(data)
            backend = OpenAIChatBackend(url, None, load_prompt(), stream=args.stream,
                                        policy=RetryPolicy(max_retries=0, timeout_s=30))
            # warm-up: connections and imports
            run_samples(all_samples[:2], backend, Journal(Path(tmp) / "warm.jsonl", {"w": 1}).open(), workers=2, progress=False)
            print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
            print(f"server {url}  latency {args.latency * 1000:.0f} ms  {'SSE' if args.stream else 'JSON'}  "
                  f"requests per measurement = {args.requests_per_worker} x W")
            print(f"{'W':>4} {'requests':>9} {'wall s':>8} {'req/s':>8} {'ideal':>8} {'needed':>8} {'ratio':>6} "
                  f"{'p50 ms':>7} {'p95 ms':>7} {'cpu ms/req':>10}  result")
            for w in args.workers:
                n = w * args.requests_per_worker
                journal = Journal(Path(tmp) / f"w{w}.jsonl", {"w": w}).open(resume=False)
                t0, c0 = time.perf_counter(), time.process_time()
                stats = run_samples(all_samples[:n], backend, journal, workers=w, progress=False)
                wall = time.perf_counter() - t0
                cpu_ms = (time.process_time() - c0) * 1000 / n
                journal.close()
                lat = [r["latency_s"] for r in journal.records.values()]
                errors = sum(1 for r in journal.records.values() if r.get("error"))
                rps = n / wall
                ideal = w / args.latency
                ok = rps >= args.required_ratio * ideal and errors == 0
                rows.append({"workers": w, "requests": n, "wall_s": wall, "rps": rps, "ideal_rps": ideal,
                             "ratio": rps / ideal, "errors": errors, "p50_s": percentile(lat, 50),
                             "p95_s": percentile(lat, 95), "client_cpu_ms_per_request": cpu_ms, "pass": ok})
                print(f"{w:>4} {n:>9} {wall:>8.2f} {rps:>8.2f} {ideal:>8.2f} {args.required_ratio * ideal:>8.2f} "
                      f"{rps / ideal:>6.3f} {percentile(lat, 50) * 1000:>7.1f} {percentile(lat, 95) * 1000:>7.1f} {cpu_ms:>10.2f}  "
                      f"{'PASS' if ok else 'FAIL'}{f' ({errors} errors)' if errors else ''}")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return {"rows": rows, "all_pass": all(r["pass"] for r in rows)}


if __name__ == "__main__":
    out = main(parse_args(BenchArgs, sys.argv[1:]))
    sys.exit(0 if out["all_pass"] else 1)
