"""Benchmark the synthetic document generator: page-level samples per second, by worker count.

    python -m core.benchmarks.bench_synth --n 600 --workers 1 2
    taskset -c 0,1 python -m core.benchmarks.bench_synth --n 1000 --workers 1 2    # pinned to 2 cores

Each configuration runs `core/synth_data.py` in a fresh process (so each starts with a cold glyph cache, as a user's
run does) and reads the timing it records in synth_config.json (generation + writing images and data.json; the
one-off font scan before it is reported separately as startup). Prints a table with the speed-up over 1 worker,
the page size and dpi, the CPU count the process may use, the fonts found and the load average.
"""

from __future__ import annotations

import dataclasses
import sys

from lib.config import field, format_config, parse_args


@dataclasses.dataclass
class BenchSynthArgs:
    n: int = field(600, help="page samples per configuration")
    workers: list[int] = field(default_factory=lambda: [1, 2], help="worker counts to compare")
    dpi: int = field(100, help="page resolution (A4 = 827 x 1169 px at 100 dpi)")
    granularity: str = field("page", help="page or element", choices=["page", "element"])
    seed: int = field(0, help="run seed")
    output_dir: str = field("/tmp/bench_synth", help="scratch folder (overwritten)")


def main(args: BenchSynthArgs) -> dict:
    import json
    import os
    import platform
    import shutil
    import subprocess
    import time
    from pathlib import Path

    from lib import render

    print(format_config(args))
    root = Path(__file__).resolve().parents[2]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    fonts = render.find_cjk_fonts("hant")
    model = platform.processor() or platform.machine()
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"machine: {model}, {cpus} usable CPU(s) of {os.cpu_count()}, "
          f"python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}")
    print(f"fonts ({len(fonts)}): {', '.join(f.short for f in fonts)}")
    rows = []
    for w in args.workers:
        out = Path(args.output_dir) / f"w{w}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, str(root / "core" / "synth_data.py"), "--output_dir", str(out), "--n", str(args.n),
               "--seed", str(args.seed), "--workers", str(w), "--dpi", str(args.dpi), "--granularity",
               args.granularity, "--no-progress"]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise SystemExit(f"synth_data.py failed with workers={w}:\n{r.stderr[-3000:]}")
        summary = json.loads((out / "synth_config.json").read_text(encoding="utf-8"))["summary"]
        rows.append({"workers": w, "n": summary["n_samples"], "docs": summary["n_docs"], "seconds": summary["seconds"],
                     "per_s": summary["samples_per_second"], "wall_s": round(wall, 2), "page_px": summary["page_px"],
                     "dpi": summary["dpi"], "load": round(os.getloadavg()[0], 2)})
    base = rows[0]["per_s"]
    print(f"\n{'workers':>7} {'samples':>7} {'docs':>5} {'gen s':>7} {'samples/s':>9} {'x vs first':>10} "
          f"{'wall s':>7} {'page px':>10} {'dpi':>4} {'load':>5}")
    for r in rows:
        print(f"{r['workers']:>7} {r['n']:>7} {r['docs']:>5} {r['seconds']:>7.2f} {r['per_s']:>9.2f} "
              f"{r['per_s'] / base:>10.2f} {r['wall_s']:>7.2f} {r['page_px'][0]}x{r['page_px'][1]:>5} {r['dpi']:>4} "
              f"{r['load']:>5}")
    print("(gen s = generation incl. writing files; wall s adds interpreter start-up and the font scan)")
    return {"rows": rows, "cpus": cpus, "fonts": [f.short for f in fonts]}


if __name__ == "__main__":
    main(parse_args(BenchSynthArgs, sys.argv[1:]))
