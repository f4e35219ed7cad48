"""`--mode hf` with the tiny embedded Gemma 3 (built from config, random weights), run the way the quickstart
driver calls it, and the same model's real predictions served over HTTP by a local OpenAI-compatible server."""

import importlib
import io
import json
import logging
import shutil
from pathlib import Path

import pytest

import lib.generation  # noqa: F401 - the project's own modules: an import error must fail, never skip
import lib.modeling  # noqa: F401
from lib.evaluation.stub_server import FaultPlan, StubServer
from lib.evaluation.testing import make_png_dataset

ROOT = Path(__file__).resolve().parents[1]
MODEL = "embedded/tiny-gemma3"


ev = importlib.import_module("core.evaluate")


def run(*argv):
    return ev.main(ev.parse([*argv, "--no-progress", "--n-bootstrap", "50", "--log-level", "WARNING"]))


@pytest.fixture(scope="module")
def model_and_processor():
    from lib.modeling import load_model_and_processor

    return load_model_and_processor(MODEL, dtype="float32")


def test_hf_mode_as_the_quickstart_calls_it(tmp_path, model_and_processor):
    from lib.generation import generate_batch
    from lib.prompt import load_prompt

    data = make_png_dataset(tmp_path, 4)
    rows = json.loads(data.read_text())
    rows.insert(2, {"img_path": "images/missing.png", "ocr_results": "不見了"})
    data.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "res.json"
    res = run("--mode", "hf", "--model-name", MODEL, "--data-file", str(data), "--output-file", str(out),
              "--max-new-tokens", "4", "--batch-size", "3", "--prompt-config", str(ROOT / "configs/ocr_prompt/default.yml"))
    on_disk = json.loads(out.read_text(encoding="utf-8"))
    for key in ("overall_cer", "overall_f1", "total_samples", "timestamp", "model_name", "samples", "schema_version",
                "config", "profiles", "timings", "scores", "postprocessors"):
        assert key in on_disk, key
    assert on_disk["config"]["max_new_tokens"] == 4 and on_disk["config"]["batch_size"] == 3
    assert [s["index"] for s in res["samples"]] == list(range(5))  # dataset order
    assert res["samples"][2]["error"].startswith("image not found") and res["n_errors"] == 1
    # the same predictions as calling lib.generation directly, sample by sample in dataset order
    model, proc = model_and_processor
    ok = [s for s in res["samples"] if not s["error"]]
    direct = generate_batch(model, proc, load_prompt(), [str(tmp_path / s["image_path"]) for s in ok],
                            max_new_tokens=4, batch_size=2)
    assert [s.get("raw_prediction", s["prediction"]) for s in ok] == [g.text for g in direct]
    assert all(s["n_output_tokens"] <= 4 and s["finish_reason"] in ("stop", "length") for s in ok)


def test_served_tiny_model_matches_in_process_predictions(tmp_path, model_and_processor):
    from PIL import Image

    from lib.generation import generate_batch
    from lib.prompt import load_prompt

    model, proc = model_and_processor
    prompt = load_prompt()

    def serve_model(body, image):
        im = Image.open(io.BytesIO(image)).convert("RGB")
        max_tokens = body.get("max_tokens", 16)
        return generate_batch(model, proc, prompt, [im], max_new_tokens=max_tokens, batch_size=1)[0].text

    data = make_png_dataset(tmp_path, 8)
    # generous timeout: the model answers one request at a time and CI machines are slow; "delay" faults exceed it
    with StubServer(serve_model, model_id="tiny-gemma3", faults=FaultPlan(rate=0.3, delay_s=5.0, seed=4)) as srv:
        served = run("--mode", "vllm_stream", "--vllm-url", srv.base_url, "--data-file", str(data),
                     "--output-file", str(tmp_path / "served.json"), "--max-new-tokens", "6", "--workers", "2",
                     "--timeout", "4.0", "--max-retries", "10", "--backoff-base", "0.01")
        n_faults = sum(v for k, v in srv.stats.items() if k.startswith("fault_"))
    assert n_faults >= 3, srv.stats  # the served run went through injected failures (seed 4: 4 of the first 8)
    local = run("--mode", "hf", "--model-name", MODEL, "--data-file", str(data), "--output-file",
                str(tmp_path / "local.json"), "--max-new-tokens", "6", "--batch-size", "4")
    assert served["n_errors"] == 0 and served["model_name"] == "tiny-gemma3"
    assert [s["prediction"] for s in served["samples"]] == [s["prediction"] for s in local["samples"]]
    assert all(s["prediction"] for s in local["samples"])


def test_saved_training_settings_are_used_and_mismatches_warn(tmp_path, caplog):
    from lib.evaluation.model_meta import write_model_meta
    from lib.models.embedded import resolve_model_path
    from lib.prompt import Prompt

    model_dir = tmp_path / "merged"
    shutil.copytree(resolve_model_path(MODEL), model_dir)
    write_model_meta(model_dir, prompt=Prompt("請給我 OCR 結果", "text_first"),
                     processor={"do_pan_and_scan": True, "max_pixels": 123})
    data = make_png_dataset(tmp_path, 2)
    with caplog.at_level(logging.WARNING):
        res = run("--mode", "hf", "--model-name", str(model_dir), "--data-file", str(data), "--output-file",
                  str(tmp_path / "a.json"), "--max-new-tokens", "3")
    assert res["prompt"]["prompt_text"] == "請給我 OCR 結果" and res["prompt"]["image_position"] == "text_first"
    assert any("do_pan_and_scan differs from training" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        run("--mode", "hf", "--model-name", str(model_dir), "--data-file", str(data), "--output-file",
            str(tmp_path / "b.json"), "--max-new-tokens", "3", "--prompt-config", str(ROOT / "configs/ocr_prompt/default.yml"))
    assert any("prompt prompt_text differs from training" in r.getMessage() for r in caplog.records)


def test_retrained_weights_in_the_same_folder_are_not_resumed(tmp_path):
    """Same command, same folder, new weights: the journal refuses to mix them (instead of reusing stale output)."""
    import os

    from lib.models.embedded import resolve_model_path

    model_dir = tmp_path / "model"
    shutil.copytree(resolve_model_path(MODEL), model_dir)
    data = make_png_dataset(tmp_path, 2)
    argv = ["--mode", "hf", "--model-name", str(model_dir), "--data-file", str(data), "--output-file",
            str(tmp_path / "r.json"), "--max-new-tokens", "2"]
    run(*argv)
    weights = next(model_dir.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10 ** 9))  # "retrained"
    with pytest.raises(SystemExit) as exc:  # the journal belongs to the old weights: refused, status 2
        run(*argv)
    assert exc.value.code == 2
    assert run(*argv, "--no-resume")["n_errors"] == 0
