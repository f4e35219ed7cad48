#!/usr/bin/env python3
"""Benchmark the metric core: score N synthetic samples of ~L Chinese characters, without and with bootstrap.

    nice python -m core.benchmarks.bench_metrics                       # 10,000 × ~2,000 chars, 1,000 resamples
    python -m core.benchmarks.bench_metrics --n_samples 2000 --profiles standard lenient

Predictions are the ground truth with ~3 % character substitutions (a quarter of them Traditional→Simplified
variants), ~1 % deletions and insertions, 1 % empty predictions and 1 % repetition loops, so every code path of
the scorer (banded distances, exact recomputation, editops anatomy, loop detector) is exercised. Prints the
measured times next to the targets of the issue (≤ 10 s for scoring, ≤ 10 s more for 1,000 bootstrap resamples).
This prints figures; it is not a test.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time

from lib.config import field, parse_args


@dataclasses.dataclass
class BenchMetricsArgs:
    n_samples: int = field(10_000, help="number of samples")
    length: int = field(2_000, help="mean ground-truth length in characters (uniform within ±10 percent)")
    n_bootstrap: int = field(1_000, help="bootstrap resamples for the second timing")
    docs: int = field(0, help="group samples into this many doc_ids (0 = one group per sample, the worst case)")
    profiles: list[str] = field(default_factory=lambda: ["standard"], help="profiles to time")
    workers: int = field(0, help="scoring workers (0 = all cores this process may use)")
    teds_tables: list[str] = field(default_factory=lambda: ["10x10", "20x15"],
                                   help="ROWSxCOLS tables to time TEDS and TEDS-S on (every cell differs by one char)")
    seed: int = field(0, help="random seed of the synthetic data")
    components: int = field(0, help="also time the per-sample components (normalization, editops anatomy, Indel) on "
                                     "this many samples in one process (0 = skip)")
    repeats: int = field(1, help="time each configuration this many times (alternating) and report the fastest run: "
                                 "on a shared machine the minimum is the least disturbed measurement")


# Common Traditional characters with a distinct Simplified form (t2s maps the first to the second).
_ST_PAIRS = list(zip("國們會說這個時來對說發現學與為裡無點經過還後開關問題間當機構實際華書長電話",
                     "国们会说这个时来对说发现学与为里无点经过还后开关问题间当机构实际华书长电话"))


def _cpu() -> float:
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn, *a, **kw):
    """(wall seconds, CPU seconds of this process and its finished children, result). On a shared machine the CPU
    figure is the one that does not depend on the other tenants."""
    w0, c0 = time.perf_counter(), _cpu()
    out = fn(*a, **kw)
    return time.perf_counter() - w0, _cpu() - c0, out


def _components(samples: list[dict], profile: str) -> None:
    """CPU per sample of each stage of text scoring, in one process (fastest of 3 repetitions)."""
    import timeit
    from collections import Counter

    from rapidfuzz.distance import Indel

    from lib.metrics.normalization import normalize
    from lib.metrics.text import _anatomy_one

    raw = [(s["prediction"], s["label"]) for s in samples]
    P = [normalize(p, profile) for p, _ in raw]
    G = [normalize(g, profile) for _, g in raw]
    anat = [_anatomy_one(p, g, Counter()) for p, g in zip(P, G)]

    def cpu_ms(fn) -> float:
        return min(timeit.repeat(fn, number=1, repeat=3, timer=time.process_time)) / len(raw) * 1e3

    stages = {
        "normalize both sides": lambda: [(normalize(p, profile), normalize(g, profile)) for p, g in raw],
        "editops anatomy (distance, S/D/I, pairs, overlap)": lambda: [_anatomy_one(p, g, Counter())
                                                                       for p, g in zip(P, G)],
        "Indel for LCS-F1 (cutoff lev + S)": lambda: [Indel.distance(p, g, score_cutoff=a[0] + a[1])
                                                      for p, g, a in zip(P, G, anat) if a[0]],
    }
    for name, fn in stages.items():
        print(f"[components/{profile}] {name:<52} {cpu_ms(fn):.3f} ms CPU per sample ({len(raw)} samples)")


def make_corpus(n: int, length: int, seed: int, docs: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(seed)
    # A Zipf-like distribution over 4,000 CJK ideographs plus some punctuation and digits.
    alphabet = np.array([ord(c) for c in "，。、；：「」（）0123456789"] + list(range(0x4E00, 0x4E00 + 4000))
                        + [ord(t) for t, _ in _ST_PAIRS], dtype=np.uint32)
    weights = 1.0 / np.arange(1, alphabet.size + 1) ** 0.8
    weights /= weights.sum()
    st_map = {ord(t): ord(s) for t, s in _ST_PAIRS}
    st_keys = np.array(list(st_map), dtype=np.uint32)
    samples = []
    for i in range(n):
        m = int(length * rng.uniform(0.9, 1.1))
        g = rng.choice(alphabet, size=m, p=weights)
        kind = rng.random()
        if kind < 0.01:
            p = np.zeros(0, dtype=np.uint32)
        else:
            p = g.copy()
            sub = rng.random(m) < 0.03
            p[sub] = rng.choice(alphabet, size=int(sub.sum()), p=weights)
            st_pos = np.nonzero(np.isin(g, st_keys) & (rng.random(m) < 0.25))[0]
            p[st_pos] = [st_map[int(c)] for c in g[st_pos]]
            keep = rng.random(m) >= 0.01
            p = p[keep]
            ins_at = np.nonzero(rng.random(p.size) < 0.01)[0]
            p = np.insert(p, ins_at, rng.choice(alphabet, size=ins_at.size, p=weights))
            if kind > 0.99:
                unit = p[:7]
                p = np.concatenate([p[: p.size // 2], np.tile(unit, 60)])
        samples.append({"image_path": f"img_{i:05d}.png", "label": g.tobytes().decode("utf-32-le"),
                        "prediction": p.tobytes().decode("utf-32-le"),
                        **({"doc_id": f"doc_{i % docs}"} if docs else {})})
    return {"model_name": "synthetic", "samples": samples}


def main(args: BenchMetricsArgs) -> dict:
    import copy

    import numpy as np

    from lib.metrics import stats
    from lib.metrics.scoring import score_result_file
    from lib.metrics.text import default_workers

    workers = args.workers or default_workers()
    t0 = time.perf_counter()
    corpus = make_corpus(args.n_samples, args.length, args.seed, args.docs)
    t_gen = time.perf_counter() - t0
    chars = sum(len(s["label"]) for s in corpus["samples"])
    print(f"machine: {platform.node()} | {platform.processor() or platform.machine()} | "
          f"{len(os.sched_getaffinity(0))} usable cores | load avg {os.getloadavg()[0]:.2f} | workers {workers}")
    print(f"corpus: {args.n_samples} samples, {chars:,} ground-truth chars (mean {chars / args.n_samples:.0f}), "
          f"groups: {'doc_id × ' + str(args.docs) if args.docs else 'one per sample'} (generated in {t_gen:.1f} s)")
    figures = {}
    for profile in args.profiles:
        plain_runs, boot_runs = [], []
        for _ in range(max(1, args.repeats)):
            data = copy.deepcopy(corpus)
            plain_runs.append(_timed(score_result_file, data, profiles=(profile,), n_bootstrap=0, workers=workers))
            data = copy.deepcopy(corpus)
            boot_runs.append(_timed(score_result_file, data, profiles=(profile,), n_bootstrap=args.n_bootstrap,
                                    workers=workers))
        t_plain, cpu_plain, _ = min(plain_runs, key=lambda r: r[0])
        t_boot, cpu_boot, out = min(boot_runs, key=lambda r: r[0])
        if args.repeats > 1:
            print(f"[{profile}] all runs (wall s): no bootstrap {[round(r[0], 2) for r in plain_runs]}, "
                  f"with bootstrap {[round(r[0], 2) for r in boot_runs]}")
        s = out["scores"][profile]
        codes = stats.group_codes([x.get("doc_id") for x in out["samples"]])
        ones = np.ones(len(codes))
        lev = np.array([x["scores"][profile]["edits"] for x in out["samples"]], dtype=float)
        lg = np.array([x["scores"][profile]["len_gt"] for x in out["samples"]], dtype=float)
        ratios = {"cer_micro": (lev, lg), **{k: (ones, ones) for k in ("cer_macro", "cer_clipped_macro", "ned_macro",
                                                                         "bag_f1_macro", "lcs_f1_macro", "exact")}}
        t_bs, cpu_bs, _ = _timed(stats.bootstrap_ratios, codes, ratios, n_bootstrap=args.n_bootstrap, seed=0)
        figures[profile] = {"score_s": t_plain, "score_cpu_s": cpu_plain, "score_plus_bootstrap_s": t_boot,
                            "score_plus_bootstrap_cpu_s": cpu_boot, "bootstrap_alone_s": t_bs,
                            "bootstrap_alone_cpu_s": cpu_bs}
        print(f"[{profile}] CER micro {s['cer_micro']:.4f} {s['ci95']['cer_micro']} | bag-F1 {s['bag_f1_macro']:.4f} "
              f"| LCS-F1 {s['lcs_f1_macro']:.4f} | S/D/I {s['anatomy']['substitutions']}/"
              f"{s['anatomy']['deletions']}/{s['anatomy']['insertions']} | S/T rate "
              f"{s['anatomy']['st_confusion_rate']:.3f} | loops {s['anatomy']['n_repetition_loops']} | "
              f"empty {s['anatomy']['n_empty_predictions']}")
        print(f"[{profile}] {'':<44} {'wall':>8} {'CPU':>8}   target (wall)")
        print(f"[{profile}] {'scoring, no bootstrap':<44} {t_plain:7.2f}s {cpu_plain:7.2f}s   ≤ 10 s  "
              f"({args.n_samples / t_plain:,.0f} samples/s, {chars / t_plain / 1e6:.2f} M chars/s wall)")
        print(f"[{profile}] {'scoring + ' + str(args.n_bootstrap) + ' bootstrap resamples (all CIs)':<44} "
              f"{t_boot:7.2f}s {cpu_boot:7.2f}s   difference ≤ 10 s: {t_boot - t_plain:+.2f}s wall, "
              f"{cpu_boot - cpu_plain:+.2f}s CPU")
        print(f"[{profile}] {str(args.n_bootstrap) + ' resamples of the 7 headline ratios alone':<44} "
              f"{t_bs:7.2f}s {cpu_bs:7.2f}s   ≤ 10 s")
    if args.components:
        _components(corpus["samples"][: args.components], args.profiles[0])
    from lib.metrics.tables import parse_table, teds

    for spec in args.teds_tables:
        rows, cols = (int(x) for x in spec.lower().split("x"))
        gt = "<table>" + "".join("<tr>" + "".join(f"<td>{r}{c}</td>" for c in range(cols)) + "</tr>"
                                 for r in range(rows)) + "</table>"
        pred = gt.replace("</td>", "x</td>")
        t_full, cpu_full, v_full = _timed(teds, pred, gt, time_limit_s=None)
        t_struct, cpu_struct, v_struct = _timed(teds, pred, gt, structure_only=True, time_limit_s=None)
        figures[f"teds_{spec}"] = {"teds_s": t_full, "teds_struct_s": t_struct}
        print(f"[TEDS] {spec} table ({parse_table(gt).size()} nodes): TEDS {v_full:.4f} in {t_full:.2f}s wall "
              f"({cpu_full:.2f}s CPU), TEDS-S {v_struct:.4f} in {t_struct:.2f}s wall ({cpu_struct:.2f}s CPU)")
    return figures


if __name__ == "__main__":
    main(parse_args(BenchMetricsArgs))
