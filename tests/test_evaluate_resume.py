"""Kill core/evaluate.py with SIGKILL at random points, several times, then let it finish: the final sample set is
the dataset, no sample is in the journal twice, and the scores equal those of an uninterrupted run."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lib.evaluation.stub_server import StubServer, table_responder
from lib.evaluation.testing import label_table, make_png_dataset

ROOT = Path(__file__).resolve().parents[1]
N = 80


def cmd(url, data, out):
    return [sys.executable, str(ROOT / "core" / "evaluate.py"), "--vllm-url", url, "--data-file", str(data),
            "--output-file", str(out), "--workers", "4", "--no-progress", "--n-bootstrap", "200",
            "--log-level", "WARNING"]


def n_journal_samples(path: Path) -> int:
    try:
        return path.read_bytes().count(b'"type": "sample"')
    except FileNotFoundError:
        return 0


def test_sigkill_at_random_points_then_resume_matches_uninterrupted_run(tmp_path):
    data = make_png_dataset(tmp_path, N, seed=7)
    # predictions with real errors (every third label loses its last character) so the scores are not trivial
    table = label_table(data, transform=lambda t: t[:-1] if len(t) % 3 == 0 else t)
    rng = random.Random(1234)
    with StubServer(table_responder(table), latency_s=0.04) as srv:
        ref_out = tmp_path / "reference.json"
        subprocess.run(cmd(srv.base_url, data, ref_out), check=True, timeout=120, cwd=ROOT)
        out = tmp_path / "killed.json"
        journal = Path(str(out) + ".journal.jsonl")
        kills = 0
        for _ in range(4):
            before = n_journal_samples(journal)
            if before >= N - 8:
                break
            target = rng.randint(before + 2, min(N - 4, before + 25))
            proc = subprocess.Popen(cmd(srv.base_url, data, out), cwd=ROOT, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while n_journal_samples(journal) < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.03))  # land anywhere: between samples, mid-request, mid-write
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
            assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
            assert not out.exists()  # no final result from a killed run
        assert kills >= 3
        done = subprocess.run(cmd(srv.base_url, data, out), timeout=120, cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]

    ref, res = json.loads(ref_out.read_text()), json.loads(out.read_text())
    assert [s["index"] for s in res["samples"]] == list(range(N))  # the dataset, in order
    lines = [json.loads(l) for l in journal.read_text(encoding="utf-8").splitlines()]
    idx = [r["index"] for r in lines if r["type"] == "sample"]
    assert len(idx) == len(set(idx)) == N  # nothing evaluated twice, nothing lost
    assert res["n_errors"] == 0 and res["timings"]["samples_resumed"] > 0
    assert [s["prediction"] for s in res["samples"]] == [s["prediction"] for s in ref["samples"]]
    assert res["overall_cer"] == ref["overall_cer"] > 0
    assert res["overall_f1"] == ref["overall_f1"]
    assert res["scores"] == ref["scores"]


def test_ctrl_c_exits_promptly_and_says_how_to_continue(tmp_path):
    """Ctrl-C does not sit out the requests in flight: the server holds them until the process has exited, so a
    run that waited for them could not exit at all (the behaviour is asserted, not a number of seconds)."""
    import threading

    data = make_png_dataset(tmp_path, 30)
    out = tmp_path / "r.json"
    journal = Path(str(out) + ".journal.jsonl")
    table = label_table(data)
    rows = json.loads(data.read_text(encoding="utf-8"))
    from lib.evaluation.stub_server import image_key

    quick = {image_key((tmp_path / r["img_path"]).read_bytes()) for r in rows[:5]}
    release = threading.Event()

    def hold(key):
        if key not in quick:
            release.wait(120)  # held: answered only after the interrupted process is gone

    with StubServer(table_responder(table), hold=hold) as srv:
        proc = subprocess.Popen(cmd(srv.base_url, data, out)[:-2] + ["--log-level", "INFO"], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while (n_journal_samples(journal) < 5 or srv.stats["requests"] < 9) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert n_journal_samples(journal) == 5, "the first five answers did not arrive"
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=90)  # would never return if it waited for the held requests
            answered_before_exit = sum(srv.completed.values())
        finally:
            release.set()
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130 and "run the same command again to continue" in err
        assert answered_before_exit == 5  # it exited with the other requests still unanswered
        done = subprocess.run(cmd(srv.base_url, data, out), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    res = json.loads(out.read_text())
    assert res["total_samples"] == 30 and res["n_errors"] == 0 and res["timings"]["samples_resumed"] == 5
