"""The shipped vLLM compose recipe: valid YAML, every setting a variable with a default (only MODEL_DIR required),
no serialising flags, and the in-container command expands to the argv vLLM expects (checked with a real sh)."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = sorted((ROOT / "configs").glob("docker-compose-*.yml"))


def interpolate(value: str, env: dict) -> str:
    """docker compose's ${VAR:-default} / ${VAR:?msg} for the plain cases the recipe uses."""
    def sub(m):
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if op == ":?" and not env.get(name):
            raise KeyError(f"{name}: {arg}")
        return env.get(name) or (arg if op == ":-" else "")

    return re.sub(r"(?<!\$)\$\{(\w+)(:-|:\?)?([^}]*)\}", sub, value)


def test_compose_files_exist():
    assert any(p.name == "docker-compose-vllm.yml" for p in COMPOSE)


@pytest.mark.parametrize("path", COMPOSE, ids=lambda p: p.name)
def test_compose_command_expands_to_vllm_argv(path):
    svc = yaml.safe_load(path.read_text())["services"]["vllm"]
    user_env = {"MODEL_DIR": "/srv/models/merged", "MM_PROCESSOR_KWARGS": '{"do_pan_and_scan": true}',
                "TENSOR_PARALLEL_SIZE": "2"}
    env = {k: interpolate(str(v), user_env) for k, v in svc["environment"].items()}
    with pytest.raises(KeyError, match="MODEL_DIR"):
        interpolate(svc["volumes"][0], {})
    assert interpolate(svc["volumes"][0], user_env).startswith("/srv/models/merged:/models/served")
    script = svc["command"][0].replace("$$", "$")
    script = script.replace("exec python3 -m vllm.entrypoints.openai.api_server", "printf '%s\\n'")
    argv = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    opts = dict(zip(argv[::2], argv[1::2]))
    assert opts["--model"] == "/models/served" and opts["--served-model-name"] == "gemma-ocr"
    assert opts["--tensor-parallel-size"] == "2" and int(opts["--max-num-seqs"]) >= 16
    assert opts["--limit-mm-per-prompt"] == '{"image": 1}'
    assert opts["--mm-processor-kwargs"] == '{"do_pan_and_scan": true}'
    assert "--enforce-eager" not in argv
    # without processor kwargs the flag is left out entirely (vLLM then uses the folder's preprocessor_config)
    env["MM_PROCESSOR_KWARGS"] = ""
    argv = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, check=True).stdout.split()
    assert "--mm-processor-kwargs" not in argv


def test_model_meta_gives_the_compose_processor_kwargs(tmp_path):
    import json
    import sys

    from lib.evaluation.model_meta import write_model_meta
    from lib.prompt import load_prompt

    write_model_meta(tmp_path, prompt=load_prompt(), processor={"do_pan_and_scan": True, "max_pixels": 1003520},
                     base_model="google/gemma-3-4b-it")
    out = subprocess.run([sys.executable, "-m", "lib.evaluation.model_meta", str(tmp_path), "--kwargs-only"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert json.loads(out) == {"do_pan_and_scan": True, "max_pixels": 1003520}


def test_model_meta_from_training_outputs(tmp_path):
    """A folder saved by training/merging (ocr_prompt.yml + training_config.json) without gemma_ocr_meta.json."""
    import json

    from lib.evaluation.model_meta import compare_with_meta, read_model_meta
    from lib.prompt import load_prompt

    (tmp_path / "ocr_prompt.yml").write_text("prompt_text: 請給我 OCR 結果\nimage_position: image_first\n"
                                             "system_prompt: null\n", encoding="utf-8")
    (tmp_path / "training_config.json").write_text(json.dumps({"config": {"max_pixels": 1003520, "min_pixels": None,
                                                                          "learning_rate": 2e-4}}), encoding="utf-8")
    meta = read_model_meta(tmp_path)
    assert meta["prompt"]["prompt_text"] == "請給我 OCR 結果" and meta["processor"] == {"max_pixels": 1003520}
    warnings = compare_with_meta(meta, prompt=load_prompt(), processor={"max_pixels": 200704})
    assert any("prompt_text differs" in w for w in warnings) and any("max_pixels differs" in w for w in warnings)
    assert read_model_meta(tmp_path / "nothing-here") is None and read_model_meta("google/gemma-3-4b-it") is None
