"""core/evaluate.py against a real OpenAI-compatible HTTP server on 127.0.0.1 (lib/evaluation/stub_server.py),
JSON and SSE, with injected faults: 500/503/429, answers delayed past the timeout, responses dropped mid-body."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from lib.evaluation.journal import JournalMismatch
from lib.evaluation.stub_server import FAULT_KINDS, FaultPlan, StubServer, image_key, table_responder
from lib.evaluation.testing import label_table, make_png_dataset

ROOT = Path(__file__).resolve().parents[1]


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"core_{name}", ROOT / "core" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look the module up while the class is built
    spec.loader.exec_module(mod)
    return mod


ev = load_script("evaluate")

FAST = ["--backoff-base", "0.01", "--backoff-max", "0.05", "--no-progress", "--n-bootstrap", "50"]


def run_eval(data, out, url, *extra):
    args = ev.parse(["--vllm-url", url, "--data-file", str(data), "--output-file", str(out), *FAST, *extra])
    return ev.main(args)


def journal_lines(path):
    return [json.loads(l) for l in Path(path).read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("mode", ["vllm", "vllm_stream"])
def test_faults_are_retried_and_every_sample_is_evaluated_once(tmp_path, mode):
    data = make_png_dataset(tmp_path, 40, jpg_named_png=2)
    faults = FaultPlan(rate=0.3, delay_s=1.2, seed=3)
    with StubServer(table_responder(label_table(data)), faults=faults) as srv:
        out = tmp_path / "r.json"
        res = run_eval(data, out, srv.base_url, "--mode", mode, "--workers", "6", "--timeout", "0.6",
                       "--max-retries", "12")
        injected = {k: srv.stats[f"fault_{k}"] for k in FAULT_KINDS}
    assert sum(injected.values()) >= 8 and all(v > 0 for v in injected.values()), injected
    labels = [r["ocr_results"] for r in json.loads(data.read_text())]
    assert [s["prediction"] for s in res["samples"]] == labels  # dataset order, nothing lost
    assert res["n_errors"] == 0 and all(s["error"] is None for s in res["samples"])
    assert any(s.get("attempts", 1) > 1 for s in res["samples"])
    recs = [r for r in journal_lines(res["journal"]) if r["type"] == "sample"]
    assert sorted(r["index"] for r in recs) == list(range(40))  # once each, no duplicates
    on_disk = json.loads(out.read_text())
    assert on_disk["schema_version"] >= 1 and on_disk["total_samples"] == 40
    assert on_disk["config"]["mode"] == mode and on_disk["decoding"]["temperature"] == 0.0
    assert on_disk["timings"]["latency_p95_s"] is not None


def test_request_contents(tmp_path, monkeypatch):
    """Greedy decoding, max_tokens, seed, stop, the prompt file's messages, the real MIME type, the API key, and
    the model name discovered from /v1/models."""
    data = make_png_dataset(tmp_path, 3, jpg_named_png=1)
    prompt = tmp_path / "p.yml"
    prompt.write_text("prompt_text: 請給我 OCR 結果\nimage_position: text_first\n", encoding="utf-8")
    monkeypatch.setenv("MY_KEY", "sekrit")
    with StubServer(model_id="served-gemma", require_api_key="sekrit") as srv:
        res = run_eval(data, tmp_path / "r.json", srv.base_url + "/v1", "--prompt-config", str(prompt),
                       "--max-new-tokens", "77", "--stop", "<end_of_turn>", "--api-key-env", "MY_KEY")
        reqs = list(srv.requests)
    assert res["model_name"] == "served-gemma" and res["n_errors"] == 0
    body = reqs[0]["body"]
    assert body["model"] == "served-gemma" and body["temperature"] == 0.0 and body["max_tokens"] == 77
    assert body["seed"] == 0 and body["stop"] == ["<end_of_turn>"]
    content = body["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "請給我 OCR 結果"} and content[1]["type"] == "image_url"
    assert {r["body"]["messages"][0]["content"][1]["image_url"]["mime"] for r in reqs} == {"image/png"}  # .jpg holding PNG
    assert res["prompt"]["prompt_text"] == "請給我 OCR 結果"


def test_exhausted_retries_are_errors_not_empty_predictions(tmp_path):
    data = make_png_dataset(tmp_path, 10)
    table = label_table(data)
    rows = json.loads(data.read_text())
    doomed = {image_key((tmp_path / rows[i]["img_path"]).read_bytes()) for i in (1, 4, 7)}
    with StubServer(table_responder(table), faults=FaultPlan(always_fail=frozenset(doomed))) as srv:
        res = run_eval(data, tmp_path / "r.json", srv.base_url, "--max-retries", "2", "--workers", "3")
        assert srv.stats["fault_503"] == 3 * 3  # first attempt + 2 retries each
    bad = [s for s in res["samples"] if s["error"]]
    assert [s["index"] for s in bad] == [1, 4, 7]
    for s in bad:
        assert s["prediction"] is None and "HTTP 503" in s["error"] and "gave up after 3 attempts" in s["error"]
    assert res["n_errors"] == 3 and sum(res["errors"].values()) == 3
    sc = res["scores"]["standard"]  # the 3 failures are excluded, not scored as empty
    assert sc["n"] == 7 and sc["n_errors"] == 3 and res["overall_cer"] == pytest.approx(0.0)


def test_errors_as_empty_scores_failures_as_empty(tmp_path):
    data = make_png_dataset(tmp_path, 6)
    rows = json.loads(data.read_text())
    doomed = {image_key((tmp_path / rows[0]["img_path"]).read_bytes())}
    with StubServer(table_responder(label_table(data)), faults=FaultPlan(always_fail=frozenset(doomed))) as srv:
        res = run_eval(data, tmp_path / "r.json", srv.base_url, "--max-retries", "0", "--errors-as-empty")
    assert res["errors_as_empty"] is True and res["samples"][0]["prediction"] is None
    assert res["overall_cer"] > 0  # the failed sample counts with all its characters deleted


def test_bad_samples_are_recorded_and_the_run_continues(tmp_path):
    data = make_png_dataset(tmp_path, 4)
    rows = json.loads(data.read_text())
    (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    rows.insert(1, {"img_path": "images/missing.png", "ocr_results": "不見了"})
    rows.insert(3, {"img_path": "images/broken.png", "ocr_results": "壞掉了"})
    data.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    with StubServer(table_responder(label_table(data))) as srv:
        res = run_eval(data, tmp_path / "r.json", srv.base_url)
        assert srv.stats["requests"] == 4  # the two bad rows never reach the server
    errs = {s["index"]: s["error"] for s in res["samples"] if s["error"]}
    assert set(errs) == {1, 3}
    assert "image not found" in errs[1] and "missing.png" in errs[1]
    assert "corrupt or unreadable image" in errs[3]
    assert [s["prediction"] for s in res["samples"] if not s["error"]] == [r["ocr_results"] for i, r in enumerate(rows) if i not in (1, 3)]


def test_resume_refuses_a_different_run(tmp_path):
    data = make_png_dataset(tmp_path, 4)
    out = tmp_path / "r.json"
    with StubServer() as srv:
        run_eval(data, out, srv.base_url)
        with pytest.raises(SystemExit) as exc:
            run_eval(data, out, srv.base_url, "--instruction", "另一個提示", "--max-new-tokens", "99")
        assert exc.value.code == 2
        # the mismatch names what differs
        from lib.evaluation.journal import Journal
        from lib.evaluation.pipeline import journal_path_for

        header = journal_lines(journal_path_for(str(out), None))[0]
        ident = dict(header["run"])
        ident["decoding"] = {**ident["decoding"], "max_tokens": 99}
        with pytest.raises(JournalMismatch, match="decoding.max_tokens: journal has 2048, this run has 99"):
            Journal(journal_path_for(str(out), None), ident).open(resume=True)
        # --no-resume starts over and keeps the old journal
        res = run_eval(data, out, srv.base_url, "--instruction", "另一個提示", "--no-resume")
    assert res["n_errors"] == 0 and list(tmp_path.glob("r.json.journal.jsonl.*.bak"))


def test_same_command_again_reuses_the_journal(tmp_path):
    data = make_png_dataset(tmp_path, 5)
    out = tmp_path / "r.json"
    with StubServer() as srv:
        first = run_eval(data, out, srv.base_url)
        n_req = srv.stats["requests"]
        again = run_eval(data, out, srv.base_url)
        assert srv.stats["requests"] == n_req  # nothing evaluated twice
    assert [s["prediction"] for s in again["samples"]] == [s["prediction"] for s in first["samples"]]
    assert again["timings"]["samples_resumed"] == 5


def test_truncated_last_journal_line_is_dropped(tmp_path):
    data = make_png_dataset(tmp_path, 5)
    out = tmp_path / "r.json"
    with StubServer() as srv:
        res = run_eval(data, out, srv.base_url, "--top-k", "3")
        jp = Path(res["journal"])
        with open(jp, "a", encoding="utf-8") as fh:
            fh.write('{"type": "sample", "index": 3, "raw_pred')  # what kill -9 mid-write leaves
        res = run_eval(data, out, srv.base_url)
    recs = [r for r in journal_lines(jp) if r["type"] == "sample"]
    assert sorted(r["index"] for r in recs) == [0, 1, 2, 3, 4]
    assert res["timings"]["samples_resumed"] == 3 and res["n_errors"] == 0


def test_local_api_sends_real_filename_and_mime(tmp_path):
    data = make_png_dataset(tmp_path, 3, jpg_named_png=1)
    with StubServer(table_responder(label_table(data))) as srv:
        res = run_eval(data, tmp_path / "r.json", srv.base_url + "/ocr", "--mode", "local_api",
                       "--local-api-field", "image", "--local-api-json-path", "result.lines.0")
        parts = [r["multipart"][0] for r in srv.requests]
    assert {p["name"] for p in parts} == {"image"}
    assert sorted(p["filename"] for p in parts) == ["doc0_p0.jpg", "doc0_p1.png", "doc0_p2.png"]
    assert {p["content_type"] for p in parts} == {"image/png"}
    assert [s["prediction"] for s in res["samples"]] == [r["ocr_results"] for r in json.loads(data.read_text())]


def test_local_api_missing_json_path_is_an_error(tmp_path):
    data = make_png_dataset(tmp_path, 2)
    with StubServer() as srv, pytest.raises(SystemExit, match="all 2 samples failed") as exc:
        run_eval(data, tmp_path / "r.json", srv.base_url + "/ocr", "--mode", "local_api",
                 "--local-api-json-path", "data.text")
    assert exc.value.code not in (0, None)  # a run where every sample failed is a failed run
    res = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))  # written, with the reasons
    assert res["n_errors"] == 2
    assert "response has no 'data'" in res["samples"][0]["error"] and "available" in res["samples"][0]["error"]


def test_unreachable_server_without_model_name_says_how_to_fix(tmp_path):
    data = make_png_dataset(tmp_path, 1)
    with pytest.raises(SystemExit) as exc:
        run_eval(data, tmp_path / "r.json", "http://127.0.0.1:9", "--max-retries", "0", "--timeout", "1")
    assert exc.value.code == 2


def test_postprocessors_are_applied_and_recorded(tmp_path):
    data = make_png_dataset(tmp_path, 2)
    rows = json.loads(data.read_text())

    def chatty(body, image):
        label = label_table(data)[image_key(image)]
        return f"<think>看圖</think>Here's the text from the image:\n```text\n{label}\n```"

    with StubServer(chatty) as srv:
        res = run_eval(data, tmp_path / "r.json", srv.base_url)
    assert [s["prediction"] for s in res["samples"]] == [r["ocr_results"] for r in rows]
    assert res["samples"][0]["raw_prediction"].startswith("<think>")
    assert res["postprocessors"] == ["strip_think", "strip_preamble", "strip_code_fences", "structured_to_text"]


def test_save_interval_writes_a_partial_result_while_running(tmp_path):
    data = make_png_dataset(tmp_path, 6)
    out = tmp_path / "r.json"
    partial = tmp_path / "r.partial.json"
    seen = []

    def responder(body, image):
        seen.append(len(json.loads(partial.read_text())["samples"]) if partial.exists() else 0)
        return "文字"

    with StubServer(responder) as srv:
        res = run_eval(data, out, srv.base_url, "--workers", "1", "--save-interval", "2")
    assert seen == [0, 0, 2, 2, 4, 4]  # a snapshot every 2 finished samples, in dataset order
    assert not partial.exists() and res["total_samples"] == 6  # the final file replaces it


def test_skip_flagged_rows_and_top_k(tmp_path):
    data = make_png_dataset(tmp_path, 6)
    rows = json.loads(data.read_text())
    rows[1]["gt_noisy"] = True
    data.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    with StubServer() as srv:
        res = run_eval(data, tmp_path / "r.json", srv.base_url, "--skip-flagged", "gt_noisy", "--top-k", "3")
    assert [s["index"] for s in res["samples"]] == [0, 2, 3]
    assert res["data"]["skipped_flagged"] == 1 and res["data"]["n_in_file"] == 6


def test_retry_errors_reruns_only_the_failed_samples(tmp_path):
    data = make_png_dataset(tmp_path, 6)
    rows = json.loads(data.read_text())
    doomed = {image_key((tmp_path / rows[i]["img_path"]).read_bytes()) for i in (2, 5)}
    out = tmp_path / "r.json"
    with StubServer(table_responder(label_table(data)), faults=FaultPlan(always_fail=frozenset(doomed))) as srv:
        first = run_eval(data, out, srv.base_url, "--max-retries", "0")
    assert first["n_errors"] == 2
    with StubServer(table_responder(label_table(data))) as srv:  # the server is healthy again
        again = run_eval(data, out, srv.base_url, "--retry-errors")
        assert srv.stats["requests"] == 2  # only the two failures are asked again
    assert again["n_errors"] == 0 and [s["prediction"] for s in again["samples"]] == [r["ocr_results"] for r in rows]
    assert again["overall_cer"] == 0.0
