"""Command-line + config-file arguments for every script, from one dataclass.

Precedence is **dataclass defaults < config file (JSON or YAML) < command line**: the file's values become the
parser's defaults, then the command line is parsed, so what the user typed always wins (TRL's `TrlParser` works
the same way). Unknown keys in a file are an error that lists the valid keys and suggests the closest one;
a file's value outside a field's `choices` is refused as on the command line (argparse checks only typed values).

Each dataclass field becomes `--name` and, where the name has underscores, `--name-with-dashes` too (the original
project mixed both spellings). Extra spellings go in `metadata={"aliases": [...]}`. Booleans accept `--flag`,
`--flag true|false` and `--no-flag`, so a flag that defaults to true can be turned off.

Retired keys of the original project's configs are listed per script in a `LEGACY_KEYS` mapping passed to
`parse_args`: a value is either the new field name (the key is renamed) or a message saying what replaced it
(the key is refused with that message).

Not for: validating values beyond their type (each script checks its own ranges in `__post_init__`).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence

from lib.errors import UserError

__all__ = ["ConfigError", "parse_args", "load_config_file", "resolved_config", "save_resolved_config", "field"]

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


class ConfigError(UserError, ValueError):
    """A config file or a command line that cannot be turned into arguments; the message says how to fix it."""


def field(default: Any = dataclasses.MISSING, *, help: str, aliases: Sequence[str] = (), choices: Sequence[Any] | None = None,
          default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with the metadata `parse_args` reads: help text, extra option spellings, choices."""
    metadata = {"help": help, "aliases": list(aliases)}
    if choices is not None:
        metadata["choices"] = list(choices)
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _str2bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {value!r}")


class _BoolAction(argparse.Action):
    """`--flag` -> True, `--flag false` -> False, `--no-flag` -> False."""

    def __init__(self, option_strings, dest, **kwargs):
        kwargs.setdefault("nargs", "?")
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string and option_string.startswith("--no-") or option_string and option_string.startswith("--no_"):
            setattr(namespace, self.dest, False)
            return
        try:
            setattr(namespace, self.dest, True if values is None else _str2bool(values))
        except argparse.ArgumentTypeError:  # raised here, outside argparse's type conversion: report it the same way
            parser.error(f"argument {option_string}: expected true or false (or {option_string} alone, or "
                         f"--no-{self.dest.replace('_', '-')}), got {values!r}")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _resolve_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(name: str, tp: Any, value: Any, source: str) -> Any:
    """Convert a config-file value to the field's type, with an error that names the key and the file."""
    base, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{source}: key '{name}' is null but must be {getattr(base, '__name__', base)}")
    origin = typing.get_origin(base)
    try:
        if base is bool:
            return _str2bool(value)
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if base is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
        if origin in (list, tuple, Sequence) or base in (list, tuple):
            (inner,) = typing.get_args(base)[:1] or (str,)
            items = value.split(",") if isinstance(value, str) else list(value)
            return [_coerce(name, inner, v, source) for v in items]
        if origin in (dict, Mapping) or base is dict:
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
        if typing.get_origin(base) is typing.Literal:
            if value not in typing.get_args(base):
                raise ValueError
            return value
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        raise ConfigError(f"{source}: key '{name}' has value {value!r}, which is not a valid "
                          f"{getattr(base, '__name__', str(base))}") from None
    return value


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON or YAML mapping; errors name the file and say what was wrong."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p} (pass an existing .json/.yaml file to --config)")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {p} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                          f"{exc.start}); save it as UTF-8") from None
    try:
        if p.suffix.lower() in (".yml", ".yaml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json.JSONDecodeError / yaml.YAMLError
        raise ConfigError(f"cannot parse config file {p}: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of key: value, got {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"config file {p}: keys must be names (text), got {bad[0]!r}")
    return data


def _option_strings(name: str, aliases: Sequence[str]) -> tuple[list[str], list[str]]:
    """(shown, hidden) option strings: `--name`, `--name-with-dashes` and the explicit aliases are shown in --help;
    the other `-`/`_` variants of the aliases are accepted but hidden, so the help stays readable."""
    shown = [f"--{name}", f"--{name.replace('_', '-')}"] + [a if a.startswith("-") else f"--{a}" for a in aliases]
    shown = list(dict.fromkeys(shown))
    hidden: list[str] = []
    for opt in shown:
        for spelling in (opt.replace("_", "-"), "--" + opt[2:].replace("-", "_")):
            if spelling not in shown and spelling not in hidden:
                hidden.append(spelling)
    return shown, hidden


def _description(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    if not doc or doc.startswith(cls.__name__ + "("):  # dataclass's auto-generated signature: not a description
        main_doc = getattr(sys.modules.get("__main__"), "__doc__", None) or ""
        doc = main_doc.strip()
    return doc.split("\n\n")[0].strip()


def build_parser(cls: type, description: str | None = None, prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description or _description(cls),
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", default=None,
                        help="JSON or YAML file of defaults (precedence: defaults < config file < command line)")
    hints = _resolve_types(cls)
    for f in dataclasses.fields(cls):
        if not f.init or f.name == "config":
            continue
        tp = hints[f.name]
        base, optional = _unwrap_optional(tp)
        meta = f.metadata or {}
        shown, hidden = _option_strings(f.name, meta.get("aliases", ()))
        kwargs: dict[str, Any] = {"dest": f.name, "help": meta.get("help", "")}
        if f.default is not dataclasses.MISSING:
            kwargs["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            kwargs["default"] = f.default_factory()  # type: ignore[misc]
        else:
            kwargs["default"] = None  # required: checked after parsing, so hidden spellings can satisfy it
            kwargs["help"] = (kwargs["help"] + " (required)").strip()
        if base is bool:
            negs = [f"--no-{f.name.replace('_', '-')}"]
            hidden += [o for o in (f"--no-{f.name}", f"--no_{f.name}") if o not in negs]
            parser.add_argument(*shown, *negs, action=_BoolAction, metavar="true|false", **kwargs)
            _add_hidden(parser, hidden, f.name, action=_BoolAction)
            continue
        origin = typing.get_origin(base)
        if origin is list or base is list:
            (inner,) = typing.get_args(base)[:1] or (str,)
            kwargs["nargs"] = "*"
            kwargs["type"] = inner if inner in (int, float, str) else str
        elif origin is dict or base is dict:
            kwargs["type"] = json.loads
            kwargs["metavar"] = "JSON"
        elif typing.get_origin(base) is typing.Literal:
            kwargs["choices"] = list(typing.get_args(base))
        elif base in (int, float, str):
            kwargs["type"] = base
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        parser.add_argument(*shown, **kwargs)
        extra = {k: kwargs[k] for k in ("nargs", "type", "choices") if k in kwargs}
        _add_hidden(parser, hidden, f.name, **extra)
    return parser


def _add_hidden(parser: argparse.ArgumentParser, options: list[str], dest: str, **kwargs) -> None:
    """Accept `options` for `dest` without listing them in --help; default SUPPRESS so they never reset the value."""
    options = [o for o in options if o not in parser._option_string_actions]
    if options:
        parser.add_argument(*options, dest=dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)


def _check_choice(name: str, meta: Mapping[str, Any], value: Any, source: str) -> None:
    """The `choices` check argparse applies to command-line values only (it never checks defaults, which is what
    config-file values become)."""
    choices = meta.get("choices")
    if choices is None:
        return
    for v in value if isinstance(value, list) else [value]:
        if v not in choices:
            close = difflib.get_close_matches(str(v), [str(c) for c in choices], n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{source}: key '{name}' has value {v!r}{hint}; choose one of "
                              f"{', '.join(repr(c) for c in choices)}")


def parse_args(cls: type, argv: Sequence[str] | None = None, *, legacy_keys: Mapping[str, str] | None = None,
               description: str | None = None, prog: str | None = None, config_data: Mapping[str, Any] | None = None,
               config_source: str | None = None):
    """Parse `argv` (default: sys.argv[1:]) into an instance of dataclass `cls`.

    `config_data` (with `config_source`, the name errors give it) supplies the config-file values directly, for a
    caller that has already read and split a file; `--config` in `argv` is then not read.
    Returns the dataclass instance. Its `_sources` attribute maps each field to where its value came from
    ("default", "config", "cli"), and `_config_path` is the config file used (or None).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    legacy_keys = dict(legacy_keys or {})
    parser = build_parser(cls, description=description, prog=prog)

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    config_path = known.config if config_data is None else config_source
    if config_path is None and config_data is None:
        default_config = getattr(cls, "DEFAULT_CONFIG", None)
        if default_config and Path(default_config).is_file():
            config_path = default_config

    names = [f.name for f in dataclasses.fields(cls) if f.init]
    metas = {f.name: f.metadata or {} for f in dataclasses.fields(cls) if f.init}
    hints = _resolve_types(cls)
    file_values: dict[str, Any] = {}
    if config_path or config_data is not None:
        raw = load_config_file(config_path) if config_data is None else dict(config_data)
        config_path = config_path or "config"
        for key, value in raw.items():
            norm = key.replace("-", "_")
            if norm in legacy_keys and norm not in names:
                target = legacy_keys[norm]
                if target in names:
                    norm = target
                else:
                    raise ConfigError(f"{config_path}: key '{key}' is no longer used: {target}")
            if norm not in names:
                close = difflib.get_close_matches(norm, names, n=3, cutoff=0.6)
                hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise ConfigError(f"{config_path}: unknown key '{key}'.{hint} Valid keys: {', '.join(sorted(names))}")
            file_values[norm] = _coerce(norm, hints[norm], value, str(config_path))
            _check_choice(norm, metas[norm], file_values[norm], str(config_path))
        parser.set_defaults(**file_values)

    ns = parser.parse_args(argv)
    values = {n: getattr(ns, n) for n in names if hasattr(ns, n)}
    missing = [f"--{f.name}" for f in dataclasses.fields(cls) if f.init and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING and values.get(f.name) is None]  # type: ignore[misc]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)} (on the command line or in --config)")
    try:
        instance = cls(**values)
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    cli_dests = _cli_dests(parser, argv)
    sources = {n: ("cli" if n in cli_dests else "config" if n in file_values else "default") for n in names}
    object.__setattr__(instance, "_sources", sources)
    object.__setattr__(instance, "_config_path", str(config_path) if config_path else None)
    return instance


def _cli_dests(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    by_opt = {}
    for action in parser._actions:
        for o in action.option_strings:
            by_opt[o] = action.dest
    dests = set()
    for tok in argv:
        if tok.startswith("--"):
            opt = tok.split("=", 1)[0]
            if opt in by_opt:
                dests.add(by_opt[opt])
            else:  # argparse accepts unambiguous prefixes
                matches = {d for o, d in by_opt.items() if o.startswith(opt)}
                if len(matches) == 1:
                    dests |= matches
    return dests


def resolved_config(args: Any) -> dict[str, Any]:
    """The arguments as a plain JSON-able dict (what was actually used)."""
    out = {}
    for f in dataclasses.fields(args):
        v = getattr(args, f.name)
        if isinstance(v, Path):
            v = str(v)
        out[f.name] = v
    return out


def save_resolved_config(args: Any, path: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> Path:
    """Write the resolved config (plus where each value came from) as JSON, atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    payload = {"config": resolved_config(args), "sources": getattr(args, "_sources", {}),
               "config_file": getattr(args, "_config_path", None), "argv": sys.argv}
    if extra:
        payload.update(extra)
    from lib.results import atomic_write_text  # a unique temp name: concurrent writers never share one

    return atomic_write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str), p)


def format_config(args: Any) -> str:
    """A readable block for the log: one `key = value  (source)` line per field."""
    sources = getattr(args, "_sources", {})
    cfg = resolved_config(args)
    width = max((len(k) for k in cfg), default=0)
    lines = [f"  {k:<{width}} = {v!r}" + (f"  ({sources[k]})" if sources.get(k, "default") != "default" else "")
             for k, v in cfg.items()]
    src = getattr(args, "_config_path", None)
    return (f"Resolved config (file: {src}):\n" if src else "Resolved config:\n") + "\n".join(lines)
