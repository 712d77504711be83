"""Layered settings of a process: defaults < config file < environment < command-line flags.

The server and the agent each declare their settings as a dataclass (the field defaults are the
defaults) and an environment prefix of their own; this module gives both the same rules:

- file (`--config FILE`): TOML when the name ends in `.toml` (`tomllib`, or `tomli` before
  Python 3.11: boards run 3.9), JSON otherwise; it must hold one table whose keys are field names.
- environment: `<prefix><NAME>`, e.g. `EDGESCORE_SERVER_METRICS_PORT`. An empty variable counts as
  unset, so `NAME=` in an env file or compose's `${VAR:-}` never clears a setting from the file.
  The unprefixed names of earlier releases (`EDGESCORE_METRICS_PORT`) are still read where the
  new one is unset, with a one-line warning naming the new one; they go in the next release.
- flags: `--name-with-dashes`; given flags win.
- secrets: a setting `<name>` with a `<name>_file` companion (the tokens) can be read from a file
  instead (`read_secret_files`), so it shows neither in `ps` nor in /proc/PID/cmdline.
- values become the type of the field's default. A float must be finite (`inf` and `nan` are
  refused), an int whole; null, a list or a table is refused for a scalar setting. A table-valued
  setting (the agent's tags) merges key by key across the layers, from a table or "k=v,k2=v2" text.

Standard library only, Python 3.9+: the agent imports it on boards.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

LEGACY_ENV_PREFIX = "EDGESCORE_"

T = TypeVar("T")

# Legacy variables already warned about in this process.
_warned: set[str] = set()


def env_name(prefix: str, name: str) -> str:
    """The environment variable of setting `name` under `prefix` (EDGESCORE_AGENT_ + tags)."""
    return prefix + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_pairs(text: str) -> dict[str, str]:
    """"k=v,k2=v2" → dict; ValueError on an item without '=' or with an empty key."""
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _default(f: Field) -> Any:
    return f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]


def add_setting_flags(parser: argparse.ArgumentParser, schema: type, env_prefix: str,
                      help_text: Mapping[str, str] | None = None,
                      shown_defaults: Mapping[str, str] | None = None,
                      skip: tuple[str, ...] = ()) -> None:
    """One `--flag` per field of `schema` (but those in `skip`), its help naming its variable."""
    help_text, shown_defaults = help_text or {}, shown_defaults or {}
    for f in fields(schema):
        if f.name in skip:
            continue
        default = shown_defaults.get(f.name, _default(f))
        text = f"(env {env_name(env_prefix, f.name)}; default {default!r})"
        parser.add_argument(flag_name(f.name), dest=f.name, default=None,
                            help=f"{help_text[f.name]} {text}" if help_text.get(f.name) else text)


def read_settings_file(path: str) -> dict[str, Any]:
    """The table of settings in a TOML or JSON file; OSError or ValueError if there is none."""
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".toml"):
        try:
            import tomllib as toml
        except ImportError:  # Python < 3.11: tomli is the same parser, if installed
            try:
                import tomli as toml  # type: ignore[no-redef]
            except ImportError:
                raise ValueError(
                    f"{path}: TOML needs Python 3.11+ or `pip install tomli`; use JSON"
                ) from None
        table = toml.loads(text)
    else:
        table = json.loads(text)
    if not isinstance(table, dict):
        raise ValueError(f"{path} must hold an object of settings, "
                         f"not a {type(table).__name__}")
    return table


def read_env(name: str, env_prefix: str) -> tuple[str, str] | None:
    """(variable, value) of setting `name` from the environment, or None when unset or empty.

    The new variable wins; the legacy one is read only in its absence, and warned about once."""
    new = env_name(env_prefix, name)
    if os.environ.get(new):
        return new, os.environ[new]
    old = env_name(LEGACY_ENV_PREFIX, name)
    if not os.environ.get(old):
        return None
    if old not in _warned:
        _warned.add(old)
        log.warning("%s is deprecated and will be ignored from the next release: set %s instead",
                    old, new)
    return old, os.environ[old]


def convert(kind: type, value: Any) -> Any:
    """`value` (text from the environment or a flag, or a file's value) as a `kind`."""
    if kind is dict:
        if isinstance(value, str):
            return parse_pairs(value)
        if not isinstance(value, dict):
            raise ValueError(f"expected a table or k=v,k2=v2, got {value!r}")
        return {str(k): str(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, dict, list)):
        raise ValueError(f"expected {'an' if kind is int else 'a'} {kind.__name__}, "
                         f"got {value!r}")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ValueError(f"expected a whole number, got {value!r}")
    try:
        converted = kind(value)
    except (ValueError, OverflowError):
        raise ValueError(f"expected {'an' if kind is int else 'a'} {kind.__name__}, "
                         f"got {value!r}") from None
    if kind is float and not math.isfinite(converted):
        raise ValueError(f"must be a finite number, got {value!r}")
    return converted


def _layers(parser: argparse.ArgumentParser, ns: argparse.Namespace, names: list[str],
            env_prefix: str) -> Iterator[tuple[str, Any, str]]:
    """(setting, raw value, where it came from), lowest layer first."""
    path = getattr(ns, "config", None)
    if path:
        try:
            table = read_settings_file(path)
        except (OSError, ValueError) as exc:
            parser.error(f"--config: {exc}")
        unknown = set(table) - set(names)
        if unknown:
            parser.error(f"unknown settings in {path}: {', '.join(sorted(unknown))}")
        for name, value in table.items():
            yield name, value, f"{name} in {path}"
    for name in names:
        found = read_env(name, env_prefix)
        if found is not None:
            yield name, found[1], found[0]
    for name in names:
        value = getattr(ns, name, None)
        if value is None:
            continue
        # An append flag gives one value per use.
        for part in value if isinstance(value, list) else [value]:
            yield name, part, flag_name(name)


def load_settings(schema: type[T], parser: argparse.ArgumentParser, env_prefix: str,
                  argv: list[str] | None = None) -> T:
    """Parse `argv` (None: sys.argv) and merge the layers into a `schema`; usage error (exit 2)
    naming the variable, flag or file key on a value that cannot be used."""
    ns = parser.parse_args(argv)
    kinds = {f.name: type(_default(f)) for f in fields(schema)}
    values: dict[str, Any] = {}
    for name, raw, source in _layers(parser, ns, list(kinds), env_prefix):
        try:
            value = convert(kinds[name], raw)
        except ValueError as exc:
            parser.error(f"{source}: {exc}")
        if kinds[name] is dict:  # merged key by key, later layers winning
            values[name] = {**values.get(name, {}), **value}
        else:
            values[name] = value
    return schema(**values)


def read_secret_files(parser: argparse.ArgumentParser, config: Any, env_prefix: str,
                      names: tuple[str, ...]) -> None:
    """For each setting in `names` whose `<name>_file` is set, read it (stripped) into `name`.
    Usage error (exit 2) when both are given, or the file is unreadable or empty."""
    for name in names:
        path = getattr(config, name + "_file")
        if not path:
            continue
        given, as_file = flag_name(name), flag_name(name + "_file")
        if getattr(config, name):
            parser.error(f"{given} ({env_name(env_prefix, name)}) and {as_file} "
                         f"({env_name(env_prefix, name + '_file')}): give one, not both")
        try:
            secret = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(f"{as_file}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
        if not secret:
            parser.error(f"{as_file}: {path} is empty")
        setattr(config, name, secret)
