"""Search spaces: the original's {type: ...} format, validation against the training arguments, grid, decoding."""

import json

import optuna
import pytest

from lib.search.space import SearchSpaceError, decode_params, grid_values, suggest, validate_space
from lib.search.study import make_pruner, make_sampler, validate_pruner

FIELDS = {"learning_rate": float, "num_train_epochs": int, "lora_r": int, "warmup_ratio": float,
          "lora_target_modules": list[str], "finetune_vision_layers": bool, "lr_scheduler_type": str,
          "max_steps": int, "output_dir": str}


def test_original_format_is_accepted_and_normalised():
    space = validate_space({"learning_rate": {"type": "loguniform", "low": 1e-5, "high": 5e-4},
                            "num_train_epochs": {"type": "int", "low": 2, "high": 5},
                            "warmup_ratio": {"type": "uniform", "low": 0.0, "high": 0.1},
                            "lora_r": {"type": "categorical", "choices": [8, 16, 32]}}, FIELDS)
    assert space["learning_rate"] == {"type": "loguniform", "low": 1e-5, "high": 5e-4}
    assert set(space) == {"learning_rate", "num_train_epochs", "warmup_ratio", "lora_r"}


@pytest.mark.parametrize("space,msg", [
    ({"learning_rat": {"type": "loguniform", "low": 1e-5, "high": 1e-3}}, "Did you mean 'learning_rate'"),
    ({"learning_rate": {"type": "logunifrom", "low": 1e-5, "high": 1e-3}}, "Did you mean 'loguniform'"),
    ({"learning_rate": {"type": "loguniform", "low": 0, "high": 1e-3}}, "log scale needs low > 0"),
    ({"learning_rate": {"type": "uniform", "low": 1, "high": 0.1}}, "greater than high"),
    ({"num_train_epochs": {"type": "uniform", "low": 1, "high": 3}}, "use 'int' or 'categorical'"),
    ({"lora_r": {"type": "categorical", "choices": ["8"]}}, "does not fit"),
    ({"finetune_vision_layers": {"type": "categorical", "choices": [0, 1]}}, "does not fit"),
    ({"lora_r": {"type": "categorical", "choices": []}}, "non-empty list"),
    ({"lora_r": {"type": "int", "low": 4, "high": 8, "stepp": 2}}, "unknown keys"),
    ({"output_dir": {"type": "categorical", "choices": ["a"]}}, "set by the search"),
])
def test_bad_entries_name_the_parameter_and_the_fix(space, msg):
    with pytest.raises(SearchSpaceError) as e:
        validate_space(space, FIELDS)
    assert msg in str(e.value) and list(space)[0] in str(e.value)


def test_list_choices_round_trip_through_the_study():
    space = validate_space({"lora_target_modules": {"type": "categorical",
                                                    "choices": [["q_proj", "v_proj"], ["all-linear"]]},
                            "finetune_vision_layers": {"type": "categorical", "choices": [False, True]}}, FIELDS)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        t = study.ask()
        params = suggest(t, space)
        assert params["lora_target_modules"] in (["q_proj", "v_proj"], ["all-linear"])
        assert isinstance(t.params["lora_target_modules"], str)  # stored as JSON text
        assert decode_params(space, t.params) == params
        seen.add(json.dumps(params["lora_target_modules"]))
        study.tell(t, 0.0)
    assert len(seen) == 2


def test_grid_covers_categorical_int_and_stepped_float():
    space = validate_space({"lora_r": {"type": "categorical", "choices": [8, 16]},
                            "num_train_epochs": {"type": "int", "low": 1, "high": 5, "step": 2},
                            "warmup_ratio": {"type": "float", "low": 0.0, "high": 0.1, "step": 0.05}}, FIELDS)
    grid = grid_values(space)
    assert grid == {"lora_r": [8, 16], "num_train_epochs": [1, 3, 5], "warmup_ratio": [0.0, 0.05, 0.1]}
    study = optuna.create_study(sampler=make_sampler("grid", seed=0, grid=grid))
    study.optimize(lambda t: sum(float(v) for v in suggest(t, space).values()), n_trials=100)
    assert len(study.trials) == 2 * 3 * 3  # the grid sampler stops the study when the grid is exhausted
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 18


def test_grid_refuses_a_continuous_range_with_advice():
    space = validate_space({"learning_rate": {"type": "loguniform", "low": 1e-5, "high": 1e-3}}, FIELDS)
    with pytest.raises(SearchSpaceError, match="add a 'step' or list the values"):
        grid_values(space)


def test_samplers_are_seeded_and_pruners_configurable():
    space = validate_space({"learning_rate": {"type": "loguniform", "low": 1e-5, "high": 1e-3}}, FIELDS)

    def draws(mode):
        s = optuna.create_study(sampler=make_sampler(mode, seed=7))
        return [suggest(s.ask(), space)["learning_rate"] for _ in range(3)]

    for mode in ("bayesian", "random"):
        assert draws(mode) == draws(mode)
    assert isinstance(make_pruner({"type": "hyperband", "min_resource": 1}), optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner(None), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner({"type": "none"}), optuna.pruners.NopPruner)
    with pytest.raises(ValueError, match="Did you mean 'median'"):
        validate_pruner({"type": "medain"})
    with pytest.raises(ValueError, match="unknown keys"):
        validate_pruner({"type": "median", "warmup": 3})
