"""Bad input gets one clear line and a non-zero exit, never a traceback: a table of mistakes run through the scripts
the way a user runs them, plus hypothesis fuzz of the data loader, the config loader and the command-line parser
(each either succeeds or raises its own error type, whose message names the file / row / key)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib.config import ConfigError, load_config_file, parse_args
from lib.data import DataError, load_samples, read_samples

ROOT = Path(__file__).resolve().parents[1]
BIG5 = json.dumps([{"img_path": "a.png", "ocr_results": "臺北市政府公告"}], ensure_ascii=False).encode("big5")


def _files(tmp: Path) -> dict[str, Path]:
    """The bad inputs the table refers to, by name."""
    out = {}

    def put(name, content):
        p = tmp / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        out[name] = p

    put("big5.json", BIG5)
    put("qlora.json", json.dumps({"finetune": "qlora"}))
    put("mlflow.json", json.dumps({"report_to": "mlflow"}))
    put("neg_lr.json", json.dumps({"learning_rate": -1e-4}))
    put("objective.json", json.dumps({"objective": "eval_ce",
                                      "search_space": {"lora_r": {"type": "categorical", "choices": [8]}}}))
    put("n_trails.json", json.dumps({"n_trails": 3,
                                     "search_space": {"lora_r": {"type": "categorical", "choices": [8]}}}))
    put("not_results.json", json.dumps({"rows": [1, 2]}))
    put("cfg_big5.json", b'{"model_name": "' + "模型".encode("big5") + b'"}')
    return out


PY = sys.executable
CASES = [  # (id, argv with {file} placeholders, words the one-line error must contain)
    ("finetune-qlora-in-config", ["core/sft_gemma.py", "--config", "{qlora.json}"], ["finetune", "'qlora'", "lora"]),
    ("report_to-mlflow-in-config", ["core/sft_gemma.py", "--config", "{mlflow.json}"], ["report_to", "mlflow"]),
    ("negative-lr-in-config", ["core/sft_gemma.py", "--config", "{neg_lr.json}"], ["learning_rate must be > 0"]),
    ("batch-size-0", ["core/sft_gemma.py", "--per_device_train_batch_size", "0"],
     ["per_device_train_batch_size must be > 0"]),
    ("bad-boolean", ["core/sft_gemma.py", "--load_in_4bit", "maybe"], ["--load_in_4bit", "true or false", "maybe"]),
    ("config-not-utf8", ["core/sft_gemma.py", "--config", "{cfg_big5.json}"], ["not UTF-8", "cfg_big5.json"]),
    ("missing-config", ["core/sft_gemma.py", "--config", "{tmp}/nope.json"], ["config file not found", "nope.json"]),
    ("data-big5", ["core/evaluate.py", "--mode", "tesseract", "--data-file", "{big5.json}", "--output-file",
                   "{tmp}/r.json"], ["big5.json", "not UTF-8", "Big5", "iconv"]),
    ("data-missing", ["core/evaluate.py", "--mode", "tesseract", "--data-file", "{tmp}/none.json",
                      "--output-file", "{tmp}/r.json"], ["dataset file not found", "none.json"]),
    ("bad-profile", ["core/evaluate.py", "--profiles", "standrad"], ["standard"]),
    ("search-bad-objective", ["core/gemma_hyperparameter_search.py", "--config", "{objective.json}"],
     ["objective.json", "objective", "eval_cer"]),
    ("search-typo-n_trails", ["core/gemma_hyperparameter_search.py", "--config", "{n_trails.json}"],
     ["n_trails.json", "n_trails", "n_trials"]),
    ("count_score-big5", ["core/count_score.py", "--input", "{big5.json}", "--output", "{tmp}/o.json"],
     ["big5.json", "not UTF-8"]),
    ("validate-big5", ["core/validate_data.py", "--input", "{big5.json}"], ["big5.json", "Big5"]),
    ("split-missing", ["core/split_dataset.py", "--input", "{tmp}/gone.json", "--output_dir", "{tmp}/s"],
     ["dataset file not found", "gone.json"]),
    ("compare-malformed-model1", ["ui/compare_finetune.py", "--model1", "{not_results.json}", "--model2",
                                  "{not_results.json}", "--server_port", "0"], ["--model1", "not a result file"]),
]


@pytest.mark.parametrize("case_id,argv,words", CASES, ids=[c[0] for c in CASES])
def test_user_error_is_one_line_without_traceback(tmp_path, case_id, argv, words):
    files = _files(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    args = [str(files[a[1:-1]]) if a.startswith("{") and a[1:-1] in files else a for a in args]
    r = subprocess.run([PY, *args], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode != 0, r.stdout[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert errors, r.stderr[-2000:]
    for w in words:
        assert w in errors[-1], (w, errors[-1])


def test_port_in_use_is_one_line(tmp_path):
    (tmp_path / "res").mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([PY, "ui/evaluate_viewer.py", "--eval_dir", str(tmp_path / "res"), "--server_port",
                            str(port)], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert f"port {port}" in r.stderr and "in use" in r.stderr and "--server_port" in r.stderr


# ------------------------------------------------------------------------------------- in-process, table-driven
def test_config_file_values_get_the_choices_check(tmp_path):
    from lib.train.args import SFTArgs

    p = tmp_path / "c.json"
    for data, word in [({"finetune": "qlora"}, "finetune"), ({"report_to": "mlflow"}, "report_to"),
                       ({"loss_impl": "fast"}, "loss_impl")]:
        p.write_text(json.dumps(data))
        with pytest.raises(ConfigError, match=word) as e:
            parse_args(SFTArgs, ["--config", str(p)])
        assert str(p) in str(e.value)
    p.write_text(json.dumps({"finetune": "full", "report_to": "tensorboard"}))
    a = parse_args(SFTArgs, ["--config", str(p)])
    assert (a.finetune, a.report_to) == ("full", "tensorboard")


@pytest.mark.parametrize("key,value", [("learning_rate", 0), ("learning_rate", -1e-4),
                                       ("per_device_train_batch_size", 0), ("gradient_accumulation_steps", 0),
                                       ("per_device_eval_batch_size", -2), ("lora_r", 0)])
def test_out_of_range_training_values_fail_at_parse_time(tmp_path, key, value, capsys):
    from lib.train.args import SFTArgs

    p = tmp_path / "c.json"
    p.write_text(json.dumps({key: value}))
    with pytest.raises(SystemExit) as e:
        parse_args(SFTArgs, ["--config", str(p)])
    assert e.value.code == 2 and f"{key} must be > 0" in capsys.readouterr().err


def test_search_config_errors_name_the_real_file(tmp_path):
    sys.path.insert(0, str(ROOT / "core"))
    import gemma_hyperparameter_search as ghs

    space = {"lora_r": {"type": "categorical", "choices": [8, 16]}}
    p = tmp_path / "search.json"
    p.write_text(json.dumps({"search_space": space, "objective": "eval_ce"}))
    with pytest.raises(ConfigError, match="eval_cer") as e:
        ghs.parse(["--config", str(p)])
    assert str(p) in str(e.value)
    p.write_text(json.dumps({"search_space": space, "n_trails": 3}))
    with pytest.raises(ConfigError, match="n_trials") as e:
        ghs.parse(["--config", str(p)])
    assert str(p) in str(e.value) and "tmp" not in str(e.value).replace(str(tmp_path), "")
    p.write_text(json.dumps({"search_space": space, "n_trials": 3, "lora_alpha": 32}))  # training keys still route
    args = ghs.parse(["--config", str(p)])
    assert args.n_trials == 3 and ghs._training_config(args)["lora_alpha"] == 32


@pytest.mark.parametrize("rows,problem", [
    ([{"img_path": "a.png"}], "no label"),
    ([{"ocr_results": "x"}], "no image path"),
    ([{"img_path": "a.png", "ocr_results": 3}], "must be a string"),
    (["a.png"], "expected an object"),
    ([{"img_path": "", "ocr_results": "x"}], "no image path"),
])
def test_malformed_rows_are_named(tmp_path, rows, problem):
    p = tmp_path / "d.json"
    p.write_text(json.dumps(rows + [{"img_path": "ok.png", "ocr_results": "好"}]), encoding="utf-8")
    with pytest.raises(DataError, match=f"row 0.*{problem}"):
        load_samples(p)
    samples, problems = read_samples(p)  # the lenient reader keeps the good row and names the bad one
    assert [s.raw_image_path for s in samples] == ["ok.png"] and len(problems) == 1 and problem in problems[0]


# ------------------------------------------------------------------------------------------------ fuzz
_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
_json_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                                st.sampled_from(["img_path", "image_path", "ocr_results", "ocr_text", "text",
                                                 "doc_id", "element", "layout", "x"]), inner, max_size=4),
                            max_leaves=12)


@given(content=st.one_of(_json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=64),
                         st.text(max_size=40).map(lambda t: t.encode("utf-8"))),
       suffix=st.sampled_from([".json", ".jsonl"]))
@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_data_loader_fuzz(tmp_path, content, suffix):
    p = tmp_path / f"fuzz{suffix}"
    p.write_bytes(content)
    try:
        samples = load_samples(p)
    except DataError as exc:
        assert str(p) in str(exc)
        return
    assert all(isinstance(s.text, str) and s.image_path for s in samples)


@given(content=st.one_of(_json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=64)),
       suffix=st.sampled_from([".json", ".yaml"]))
@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_config_loader_fuzz(tmp_path, content, suffix):
    from lib.train.args import SFTArgs

    p = tmp_path / f"c{suffix}"
    p.write_bytes(content)
    try:
        data = load_config_file(p)
    except ConfigError as exc:
        assert str(p) in str(exc)
        return
    assert isinstance(data, dict)
    try:
        parse_args(SFTArgs, ["--config", str(p)])
    except ConfigError as exc:
        assert str(p) in str(exc)
    except SystemExit as exc:  # a value __post_init__ refuses: argparse's one-line error
        assert exc.code == 2


_TOKENS = ["--mode", "hf", "tesseract", "--workers", "0", "-1", "abc", "--profiles", "standard", "seed", "nope",
           "--progress", "maybe", "--no-progress", "--resume", "false", "--extra-body", "{", "{}", "--top-k", "3",
           "--temperature", "nan", "--stop", "--seed", "--max-new-tokens", "--batch-size"]


@given(st.lists(st.sampled_from(_TOKENS), max_size=8))
@settings(max_examples=200, deadline=None, derandomize=True)
def test_cli_parser_fuzz(argv):
    sys.path.insert(0, str(ROOT / "core"))
    import evaluate as ev

    try:
        ev.parse(argv)
    except SystemExit as exc:  # argparse (or __post_init__ through parser.error): usage + one line, status 2
        assert exc.code == 2
