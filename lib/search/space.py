"""Search spaces: the original project's `search_space` JSON format, validated against the training dataclass.

A search space maps a training argument (a field of `lib.train.SFTArgs`, i.e. a flag of `core/sft_gemma.py`) to a
distribution:

    {"learning_rate": {"type": "loguniform", "low": 1e-5, "high": 5e-4},
     "num_train_epochs": {"type": "int", "low": 2, "high": 5, "step": 1},
     "warmup_ratio": {"type": "uniform", "low": 0.0, "high": 0.1},
     "lora_dropout": {"type": "float", "low": 0.0, "high": 0.1, "step": 0.05},
     "lora_r": {"type": "categorical", "choices": [8, 16, 32]},
     "lora_target_modules": {"type": "categorical", "choices": [["q_proj", "v_proj"], "all-linear"]}}

Types: `loguniform`, `uniform` (the original's), `float` (optional `step`, `log`), `int` (optional `step`, `log`),
`categorical` (`choices`; a choice may be a list or an object — it is stored in the study as its JSON text and
decoded back before training). Grid search takes `categorical`, `int` and `float` with a `step`.

Not for: running trials (lib/search/driver.py).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import typing
from typing import Any, Mapping

from lib.errors import UserError

__all__ = ["SearchSpaceError", "TYPES", "validate_space", "suggest", "grid_values", "decode_params",
           "training_fields"]

TYPES = ("loguniform", "uniform", "float", "int", "categorical")
_KEYS = {"loguniform": {"low", "high"}, "uniform": {"low", "high"}, "float": {"low", "high", "step", "log"},
         "int": {"low", "high", "step", "log"}, "categorical": {"choices"}}


class SearchSpaceError(UserError, ValueError):
    """A search space entry that cannot be searched; the message names the parameter and the fix."""


def training_fields() -> dict[str, Any]:
    """name -> type of every field of the training dataclass (`lib.train.SFTArgs`)."""
    try:
        from lib.train import SFTArgs
    except ImportError as exc:  # the training package is what trials run: without it nothing can be searched
        raise SearchSpaceError(f"cannot import lib.train.SFTArgs ({exc}); the search validates parameter names "
                               "against the training arguments of core/sft_gemma.py") from None
    hints = typing.get_type_hints(SFTArgs)
    return {f.name: hints[f.name] for f in dataclasses.fields(SFTArgs) if f.init}


def _base(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _base(args[0])
    return tp


def _is_encoded(choice: Any) -> bool:
    return isinstance(choice, (list, dict, tuple))


def _check_value(name: str, tp: Any, value: Any, what: str) -> None:
    base = _base(tp)
    ok = True
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif base is str:
        ok = isinstance(value, str) or value is None and tp is not base
    elif typing.get_origin(base) in (list, tuple) or base in (list, tuple):
        ok = isinstance(value, (list, tuple, str))
    if not ok:
        raise SearchSpaceError(f"search_space['{name}']: {what} {value!r} does not fit the training argument's "
                               f"type {getattr(base, '__name__', base)}")


def validate_space(space: Mapping[str, Any], fields: Mapping[str, Any] | None = None) -> dict[str, dict]:
    """Check every entry (name is a training argument, type known, bounds sane, values fit the field's type).

    Returns a normalised copy. `fields` defaults to `training_fields()`.
    """
    if not isinstance(space, Mapping) or not space:
        raise SearchSpaceError("search_space must be a non-empty mapping of training argument -> {type: ...}")
    fields = training_fields() if fields is None else fields
    out: dict[str, dict] = {}
    for name, spec in space.items():
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise SearchSpaceError(f"search_space: '{name}' is not a training argument of core/sft_gemma.py.{hint} "
                                   f"Searchable: {', '.join(sorted(fields))}")
        if name.startswith("optuna_") or name in ("output_dir", "config"):
            raise SearchSpaceError(f"search_space: '{name}' is set by the search itself and cannot be searched")
        if not isinstance(spec, Mapping) or "type" not in spec:
            raise SearchSpaceError(f"search_space['{name}'] must be an object with a 'type' "
                                   f"(one of {', '.join(TYPES)}), got {spec!r}")
        kind = spec["type"]
        if kind not in TYPES:
            close = difflib.get_close_matches(str(kind), TYPES, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise SearchSpaceError(f"search_space['{name}']: unknown type '{kind}'.{hint} Known: {', '.join(TYPES)}")
        extra = set(spec) - _KEYS[kind] - {"type"}
        if extra:
            raise SearchSpaceError(f"search_space['{name}'] ({kind}): unknown keys {sorted(extra)}; "
                                   f"allowed: {sorted(_KEYS[kind])}")
        tp = fields[name]
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise SearchSpaceError(f"search_space['{name}']: categorical needs a non-empty list 'choices'")
            for c in choices:
                _check_value(name, tp, c, "choice")
            if len({json.dumps(c, sort_keys=True) for c in choices}) != len(choices):
                raise SearchSpaceError(f"search_space['{name}']: choices contain duplicates: {choices}")
            out[name] = {"type": kind, "choices": list(choices)}
            continue
        missing = {"low", "high"} - set(spec)
        if missing:
            raise SearchSpaceError(f"search_space['{name}'] ({kind}) needs {sorted(missing)}")
        low, high = spec["low"], spec["high"]
        for v, what in ((low, "low"), (high, "high")):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise SearchSpaceError(f"search_space['{name}']: '{what}' must be a number, got {v!r}")
        if low > high:
            raise SearchSpaceError(f"search_space['{name}']: low {low} is greater than high {high}")
        log = kind == "loguniform" or bool(spec.get("log", False))
        if log and low <= 0:
            raise SearchSpaceError(f"search_space['{name}']: a log scale needs low > 0, got {low}")
        step = spec.get("step")
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0):
            raise SearchSpaceError(f"search_space['{name}']: step must be a positive number, got {step!r}")
        if log and step is not None and kind == "float":
            raise SearchSpaceError(f"search_space['{name}']: 'step' and 'log' cannot be combined for floats")
        if kind == "int":
            if not all(isinstance(v, int) for v in (low, high)) or (step is not None and not isinstance(step, int)):
                raise SearchSpaceError(f"search_space['{name}']: int needs integer low/high/step")
            if _base(tp) is not int and _base(tp) is not float:
                raise SearchSpaceError(f"search_space['{name}']: an int range does not fit the training argument's "
                                       f"type {getattr(_base(tp), '__name__', tp)}")
        else:
            if _base(tp) is not float:
                raise SearchSpaceError(f"search_space['{name}']: a float range ({kind}) needs a float training "
                                       f"argument; '{name}' is {getattr(_base(tp), '__name__', tp)} — use 'int' or "
                                       "'categorical'")
        norm = {"type": kind, "low": low, "high": high}
        if step is not None:
            norm["step"] = step
        if kind in ("float", "int") and spec.get("log"):
            norm["log"] = True
        out[name] = norm
    return out


def suggest(trial: Any, space: Mapping[str, dict]) -> dict[str, Any]:
    """Ask `trial` for one value per parameter; returns decoded values (lists/objects restored)."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        kind = spec["type"]
        if kind == "loguniform":
            params[name] = trial.suggest_float(name, spec["low"], spec["high"], log=True)
        elif kind == "uniform":
            params[name] = trial.suggest_float(name, spec["low"], spec["high"], step=spec.get("step"))
        elif kind == "float":
            params[name] = trial.suggest_float(name, spec["low"], spec["high"], step=spec.get("step"),
                                               log=bool(spec.get("log")))
        elif kind == "int":
            params[name] = trial.suggest_int(name, spec["low"], spec["high"], step=spec.get("step", 1),
                                             log=bool(spec.get("log")))
        else:
            params[name] = trial.suggest_categorical(name, _optuna_choices(spec["choices"]))
    return decode_params(space, params)


def _optuna_choices(choices: list) -> list:
    """Optuna stores only None/bool/int/float/str: lists and objects travel as their JSON text."""
    return [json.dumps(c, ensure_ascii=False) if _is_encoded(c) else c for c in choices]


def decode_params(space: Mapping[str, dict], params: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna's stored params -> training values (JSON text of list/object choices is decoded)."""
    out = dict(params)
    for name, value in params.items():
        spec = space.get(name)
        if spec and spec["type"] == "categorical" and isinstance(value, str) and any(
                _is_encoded(c) for c in spec["choices"]):
            encoded = dict(zip(_optuna_choices(spec["choices"]), spec["choices"]))
            out[name] = encoded.get(value, value)
    return out


def grid_values(space: Mapping[str, dict]) -> dict[str, list]:
    """The grid of a space (for `GridSampler`): categorical choices, int ranges, float ranges with a step."""
    grid: dict[str, list] = {}
    for name, spec in space.items():
        kind = spec["type"]
        if kind == "categorical":
            grid[name] = _optuna_choices(spec["choices"])
        elif kind == "int":
            grid[name] = list(range(spec["low"], spec["high"] + 1, spec.get("step", 1)))
        elif spec.get("step") is not None:
            n = int(math.floor((spec["high"] - spec["low"]) / spec["step"] + 1e-9)) + 1
            grid[name] = [round(spec["low"] + i * spec["step"], 12) for i in range(n)]
        else:
            raise SearchSpaceError(f"search_space['{name}']: grid search needs 'categorical', 'int' or a float with "
                                   f"'step'; '{kind}' from {spec['low']} to {spec['high']} has no grid — add a 'step' "
                                   "or list the values as categorical choices")
    return grid
