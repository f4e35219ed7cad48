#!/usr/bin/env python3
"""Distributed search on PostgreSQL: trials per hour with 1, 2, 3 workers, and the database cost of one report.

    python core/benchmarks/bench_search_distributed.py --work_dir outputs/bench_search_distributed

1. Throughput. For each worker count N (`--workers 1,2,3`) a fresh database gets one study, and N search commands
   (`core/gemma_hyperparameter_search.py --resume --storage postgresql://...`, each with its own node name, as N
   machines would run them) start together, each running `--trials_per_worker` trials of the quickstart task
   (`configs/hyperparm_configs/optuna/quickstart_search.json`: the embedded tiny Gemma 3, its LoRA setup and search
   space) at a small step budget (`--max_steps`, evaluations every `--eval_steps`), pruning off so every trial
   does the same work. Trials/hour = trials / wall time from the first start to the last exit. Each command gets
   `cpu_count // N` torch threads: on one machine the workers share its cores, so expect saturation past the core
   count — on N real machines the rate would grow with N; here it shows what the database and the coordination
   cost on top.
2. Database overhead per reported step. What the pruning callback does inside a trial at each evaluation
   (`OptunaPruningCallback._take`: record the value, read the trial, `trial.report`, `trial.should_prune` with the
   median pruner reading every trial) is timed on PostgreSQL, SQLite and the journal file, with `--history`
   finished trials of `--history_steps` reports each in the study; printed next to the measured seconds per
   training step of the throughput runs.

The PostgreSQL server is a throwaway local cluster (tests/fixtures/postgres.py: initdb + pg_ctl, 127.0.0.1, a free
port) unless `--storage_server postgresql://user:pw@host:port` names one (a database per run is created there).
The data: `--n_samples` images of the quickstart task (lib/quickstart_data.py), 64 of them for validation.
Writes `<work_dir>/bench_search_distributed.json` (and `--json_out` if given).
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from lib.config import field, parse_args

ROOT = Path(__file__).resolve().parents[2]
SEARCH = ROOT / "core" / "gemma_hyperparameter_search.py"
CONFIG = ROOT / "configs" / "hyperparm_configs" / "optuna" / "quickstart_search.json"


@dataclasses.dataclass
class BenchDistributedArgs:
    """Trials/hour with 1, 2, 3 search workers on one PostgreSQL study; database cost per reported step."""

    work_dir: str = field("outputs/bench_search_distributed", help="data, studies, trial folders, results")
    workers: str = field("1,2,3", help="worker counts to measure, comma-separated")
    trials_per_worker: int = field(3, help="trials each worker runs")
    max_steps: int = field(30, help="training steps per trial")
    eval_steps: int = field(15, help="validation CER every this many steps (reported to the study)")
    eval_samples: int = field(32, help="validation images per evaluation")
    n_samples: int = field(600, help="quickstart images rendered (64 for validation, the rest for training)")
    search_config: str = field(str(CONFIG), help="search config (search_space + fixed training settings)")
    storage_server: str | None = field(None, help="postgresql://user:pw@host:port of a server to use (a database "
                                                  "per run is created); default: a throwaway local cluster")
    history: int = field(20, help="finished trials in the study for the per-report timing")
    history_steps: int = field(10, help="reports per finished trial for the per-report timing")
    reports: int = field(50, help="timed reports per storage")
    json_out: str | None = field(None, help="also write the results here (e.g. docs/bench/...json)")


def make_data(root: Path, n: int) -> tuple[Path, Path]:
    from lib.quickstart_data import QuickstartTask, build_dataset

    root.mkdir(parents=True, exist_ok=True)
    if not (root / "all.json").is_file():
        build_dataset(root, n, task=QuickstartTask(), seed=0, file_name="all.json")
    rows = json.loads((root / "all.json").read_text(encoding="utf-8"))
    (root / "val.json").write_text(json.dumps(rows[:64], ensure_ascii=False), encoding="utf-8")
    (root / "train.json").write_text(json.dumps(rows[64:], ensure_ascii=False), encoding="utf-8")
    return root / "train.json", root / "val.json"


@dataclasses.dataclass
class Server:
    base_url: str  # postgresql://user:pw@host:port

    def database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.base_url + "/postgres", autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{self.base_url}/{name}"


def throughput(args: BenchDistributedArgs, server: Server, n: int, data: tuple[Path, Path], work: Path) -> dict:
    import optuna
    from optuna.trial import TrialState

    from lib.search.storage import NODE_ENV, open_storage

    url = server.database(f"bench_w{n}")
    run = work / f"workers_{n}"
    train_args = {"input_data": str(data[0]), "val_data": str(data[1]), "max_steps": args.max_steps,
                  "eval_steps": args.eval_steps, "save_steps": args.max_steps, "eval_cer_samples": args.eval_samples,
                  "final_eval_samples": args.eval_samples, "logging_steps": max(1, args.eval_steps)}
    threads = max(1, (os.cpu_count() or 1) // n)
    run.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()[0]  # other jobs on the machine slow the trials down: recorded with the result
    procs = []
    t0 = time.time()
    for i in range(n):
        env = {**os.environ, NODE_ENV: f"bench-machine-{i}", "OMP_NUM_THREADS": str(threads)}
        cmd = [sys.executable, str(SEARCH), "--study-name", "bench", "--storage", url, "--resume",
               "--config", args.search_config, "--train-args", json.dumps(train_args), "--pruner", '{"type": "none"}',
               "--n-trials", str(args.trials_per_worker), "--base-output-dir", str(run / f"machine{i}"),
               "--studies-dir", str(run / f"machine{i}" / "studies"), "--trial-timeout", "3600"]
        log = open(run / f"machine{i}.log", "w")
        procs.append((subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    try:
        for p, _ in procs:
            p.wait()
    finally:  # stopped early: the search commands (and through them their trials) go too
        for p, log in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=60)
            log.close()
    wall = time.time() - t0
    bad = [p.returncode for p, _ in procs if p.returncode != 0]
    if bad:
        raise SystemExit(f"{n} workers: a search command failed ({bad}); see {run}/machine*.log")
    study = optuna.load_study(study_name="bench", storage=open_storage(url))
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    durations = [t.user_attrs.get("duration_s", 0.0) for t in done]
    step_s = []
    for t in done:
        try:
            meta = json.loads((Path(t.user_attrs["output_dir"]) / "metadata.json").read_text())
            step_s.append(meta["train_wall_s"] / max(1, meta["global_step"]))
        except (OSError, KeyError, ValueError):
            pass
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    return {"workers": n, "threads_per_worker": threads, "load_average_before_after": [load0, os.getloadavg()[0]],
            "trials": len(study.trials), "complete": len(done),
            "unique_param_sets": len(set(params)), "wall_s": round(wall, 1),
            "trials_per_hour": round(len(done) / wall * 3600, 1),
            "mean_trial_s": round(statistics.mean(durations), 1) if durations else None,
            "mean_train_s_per_step": round(statistics.mean(step_s), 3) if step_s else None,
            "reports_per_trial": len(done[0].intermediate_values) if done else None}


def report_overhead(url: str, args: BenchDistributedArgs) -> dict:
    """Seconds one pruning-callback report costs on `url`, with a study of `history` finished trials."""
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from lib.search.pruning import OptunaPruningCallback
    from lib.search.storage import open_storage

    storage = open_storage(url)
    study = optuna.create_study(study_name="overhead", storage=storage, direction="minimize")
    study.set_user_attr("search", {"metric": "eval_cer", "pruner": {"type": "median", "n_startup_trials": 2,
                                                                     "n_warmup_steps": 0}})
    dist = {"learning_rate": FloatDistribution(1e-5, 1e-2, log=True)}
    for i in range(args.history):
        study.add_trial(create_trial(params={"learning_rate": 1e-4 * (1 + i)}, distributions=dist, value=0.9,
                                     intermediate_values={s: 0.95 for s in range(1, args.history_steps + 1)},
                                     state=TrialState.COMPLETE))
    trial = study.ask()
    cb = OptunaPruningCallback(url, "overhead", trial.number, watch_parent=False)
    times = []
    for step in range(1, args.reports + 1):
        state = SimpleNamespace(global_step=step, max_steps=args.reports + 1)
        control = SimpleNamespace(should_training_stop=False, should_save=True)
        t = time.perf_counter()
        cb._take({"eval_cer": 0.5}, state, control)  # better than the median: never pruned
        times.append(time.perf_counter() - t)
        assert not cb.pruned
    times.sort()
    return {"median_ms": round(1000 * statistics.median(times), 2),
            "p90_ms": round(1000 * times[int(0.9 * (len(times) - 1))], 2), "reports": len(times),
            "history_trials": args.history, "history_steps": args.history_steps}


def main(args: BenchDistributedArgs) -> dict:
    import contextlib
    import signal

    # a SIGTERM (timeout, kill) unwinds like Ctrl-C: the throwaway PostgreSQL server is stopped and deleted
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = make_data(work / "data", args.n_samples)
    with contextlib.ExitStack() as stack:
        if args.storage_server:
            server = Server(args.storage_server.rstrip("/"))
        else:
            sys.path.insert(0, str(ROOT / "tests"))
            from fixtures.postgres import throwaway_postgres

            pg = stack.enter_context(throwaway_postgres())
            server = Server(f"postgresql://{pg.user}:{pg.password}@{pg.host}:{pg.port}")
        overhead = {"postgresql": report_overhead(server.database("bench_overhead"), args),
                    "sqlite": report_overhead(f"sqlite:///{work}/overhead.db", args),
                    "journal": report_overhead(f"journal:{work}/overhead.journal.log", args)}
        for f in (work / "overhead.db", work / "overhead.journal.log"):
            f.unlink(missing_ok=True)
        runs = []
        for n in [int(x) for x in args.workers.split(",") if x.strip()]:
            r = throughput(args, server, n, data, work)
            runs.append(r)
            print(f"{n} worker(s): {r['complete']} trials in {r['wall_s']} s = {r['trials_per_hour']} trials/hour "
                  f"(mean trial {r['mean_trial_s']} s, {r['mean_train_s_per_step']} s/step, "
                  f"{r['threads_per_worker']} thread(s) each)", flush=True)
    import platform

    step_s = next((r["mean_train_s_per_step"] for r in runs if r["mean_train_s_per_step"]), None)
    result = {"args": dataclasses.asdict(args) | {"storage_server": bool(args.storage_server)},
              "cpu_count": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg(),
              "throughput": runs, "report_overhead": overhead, "train_s_per_step_1_worker": step_s}
    print("\nworkers | trials | wall s | trials/hour | mean trial s | s/step | threads each")
    for r in runs:
        print(f"{r['workers']:>7} | {r['complete']:>6} | {r['wall_s']:>6} | {r['trials_per_hour']:>11} | "
              f"{r['mean_trial_s']:>12} | {r['mean_train_s_per_step']:>6} | {r['threads_per_worker']}")
    print(f"\ndatabase cost of one reported step (study with {args.history} finished trials x {args.history_steps} "
          f"reports; median / p90 of {args.reports}):")
    for name, o in overhead.items():
        rel = f" = {100 * o['median_ms'] / 1000 / step_s:.2f} % of one training step" if step_s else ""
        print(f"  {name:<10} {o['median_ms']:>7} ms / {o['p90_ms']} ms{rel}")
    out = work / "bench_search_distributed.json"
    out.write_text(json.dumps(result, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n-> {out}")
    return result


if __name__ == "__main__":
    main(parse_args(BenchDistributedArgs, prog="bench_search_distributed.py"))
