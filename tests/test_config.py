"""Config precedence: defaults < config file < command line; unknown keys; booleans that can be turned off."""

import dataclasses
import json

import pytest

from lib.config import ConfigError, field, parse_args, save_resolved_config


@dataclasses.dataclass
class Args:
    model_name: str = field("base", help="model")
    learning_rate: float = field(2e-4, help="lr")
    num_train_epochs: int = field(3, help="epochs")
    load_in_4bit: bool = field(True, help="4-bit")
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"], help="targets")
    vllm_url: str | None = field(None, help="url", aliases=["server-url"])


def write(tmp_path, data, name="c.json"):
    p = tmp_path / name
    p.write_text(json.dumps(data) if name.endswith(".json") else data)
    return str(p)


def test_defaults_then_file_then_cli(tmp_path):
    cfg = write(tmp_path, {"learning_rate": 1e-3, "num_train_epochs": 7})
    a = parse_args(Args, ["--config", cfg, "--num_train_epochs", "2"])
    assert a.learning_rate == 1e-3 and a.num_train_epochs == 2 and a.model_name == "base"
    assert a._sources == {"model_name": "default", "learning_rate": "config", "num_train_epochs": "cli",
                          "load_in_4bit": "default", "lora_target_modules": "default", "vllm_url": "default"}


def test_cli_value_equal_to_default_still_beats_file(tmp_path):
    # the original compared against the default and let the file win when the user typed the default value
    cfg = write(tmp_path, {"num_train_epochs": 7})
    assert parse_args(Args, ["--config", cfg, "--num_train_epochs", "3"]).num_train_epochs == 3


def test_yaml_and_dash_spelling(tmp_path):
    cfg = write(tmp_path, "learning-rate: 0.01\nload_in_4bit: false\n", name="c.yaml")
    a = parse_args(Args, ["--config", cfg, "--model-name", "m", "--server-url", "http://x"])
    assert a.learning_rate == 0.01 and a.load_in_4bit is False and a.model_name == "m" and a.vllm_url == "http://x"


@pytest.mark.parametrize("argv,expected", [([], True), (["--load_in_4bit"], True), (["--load_in_4bit", "false"], False),
                                           (["--no-load_in_4bit"], False), (["--no-load-in-4bit"], False)])
def test_bool_can_be_turned_off(argv, expected):
    assert parse_args(Args, argv).load_in_4bit is expected


def test_file_true_cli_off(tmp_path):
    cfg = write(tmp_path, {"load_in_4bit": True})
    assert parse_args(Args, ["--config", cfg, "--no-load_in_4bit"]).load_in_4bit is False


def test_unknown_key_lists_valid_keys_and_suggests(tmp_path):
    cfg = write(tmp_path, {"learning_rat": 1.0})
    with pytest.raises(ConfigError) as e:
        parse_args(Args, ["--config", cfg])
    msg = str(e.value)
    assert "unknown key 'learning_rat'" in msg and "Did you mean 'learning_rate'" in msg and "num_train_epochs" in msg


def test_wrong_type_names_key(tmp_path):
    cfg = write(tmp_path, {"num_train_epochs": "many"})
    with pytest.raises(ConfigError, match="num_train_epochs"):
        parse_args(Args, ["--config", cfg])


def test_legacy_keys_renamed_or_refused(tmp_path):
    cfg = write(tmp_path, {"lr": 0.5})
    assert parse_args(Args, ["--config", cfg], legacy_keys={"lr": "learning_rate"}).learning_rate == 0.5
    cfg = write(tmp_path, {"report_to_wandb": True})
    with pytest.raises(ConfigError, match="use --report_to wandb"):
        parse_args(Args, ["--config", cfg], legacy_keys={"report_to_wandb": "use --report_to wandb"})


def test_list_field_and_saved_config(tmp_path):
    a = parse_args(Args, ["--lora_target_modules", "q_proj", "k_proj"])
    assert a.lora_target_modules == ["q_proj", "k_proj"]
    out = save_resolved_config(a, tmp_path / "resolved.json")
    saved = json.loads(out.read_text())
    assert saved["config"]["lora_target_modules"] == ["q_proj", "k_proj"] and saved["sources"]["lora_target_modules"] == "cli"


@dataclasses.dataclass
class Req:
    data_file: str = field(help="data", aliases=["input"])
    check: bool = field(True, help="check")


def test_required_field_satisfied_by_any_spelling_or_file(tmp_path):
    assert parse_args(Req, ["--data-file", "x"]).data_file == "x"
    assert parse_args(Req, ["--input", "y", "--no_check"]).check is False
    assert parse_args(Req, ["--config", write(tmp_path, {"data_file": "z"})]).data_file == "z"
    with pytest.raises(SystemExit) as e:
        parse_args(Req, [])
    assert e.value.code == 2


def test_help_lists_canonical_spellings_only(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(Args, ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--load_in_4bit" in out and "--no-load-in-4bit" in out and "--server-url" in out
    assert "--no_load_in_4bit" not in out and "--learning-rate" in out and "--server_url" not in out


def test_resolved_config_survives_concurrent_writers(tmp_path):
    """Two processes (e.g. DDP ranks) writing the same training_config.json must not trip over one shared temp
    file: each write goes through its own temp name, and the file is always whole JSON."""
    import json
    import threading

    from lib.config import save_resolved_config

    @dataclasses.dataclass
    class A:
        x: int = 1

    target = tmp_path / "training_config.json"
    errors = []

    def write(i):
        try:
            for _ in range(30):
                save_resolved_config(A(x=i), target)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert json.loads(target.read_text(encoding="utf-8"))["config"]["x"] in range(6)
    assert [p.name for p in tmp_path.iterdir()] == ["training_config.json"]  # no temp file left behind
