"""Configuration: OmegaConf YAML files validated against dataclass schemas.

A YAML file may start with ``defaults: [other.yaml, ...]`` (paths relative to the file); those are
merged first, in order, then the file itself, then ``key.sub=value`` overrides from the command line.
Every merge goes through the schema, so an unknown key or a value of the wrong type is an error
that names the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

DEFAULTS_KEY = "defaults"


class ConfigError(ValueError):
    """A configuration file, override or value is invalid; the message names the key or file."""


def yaml_problem(path: Path, err: Exception) -> str:
    """A YAML error as ``file:line:column: problem`` (yaml's own message spreads it over several lines)."""
    mark = getattr(err, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context, opened = getattr(err, "context", None), getattr(err, "context_mark", None)
    at = f" at {opened.line + 1}:{opened.column + 1}" if opened is not None else ""
    return f"{where}: cannot parse YAML: {problem}" + (f" ({context}{at})" if context else "")


def read_yaml_chain(path: Path, seen: tuple[Path, ...] = ()) -> list[DictConfig]:
    """The YAML files of a config, its `defaults` parents first, each read once (a circle is refused)."""
    return [node for _, node in read_yaml_files(path, seen)]


def read_yaml_files(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[Path, DictConfig]]:
    """(file, its mapping) of a config and its `defaults` chain, parents first."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: circular '{DEFAULTS_KEY}' chain")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        node = OmegaConf.load(path)
    except Exception as err:  # yaml errors come in many types
        raise ConfigError(yaml_problem(path, err)) from err
    if not isinstance(node, DictConfig):
        raise ConfigError(f"{path}: top level must be a mapping")
    parents = node.pop(DEFAULTS_KEY, [])
    chain: list[tuple[Path, DictConfig]] = []
    for parent in parents:
        chain += read_yaml_files(path.parent / str(parent), seen + (path,))
    return chain + [(path, node)]


def field_type(schema: Any, key: str) -> Any:
    """The declared type of ``key`` (dotted; ``[i]``: an element) in a dataclass schema, or None."""
    hint = schema
    for part in re.sub(r"\[\d+\]", "", key).split("."):
        if not dataclasses.is_dataclass(hint):
            return None
        try:
            hint = typing.get_type_hints(hint).get(part)
        except (NameError, TypeError):  # an annotation that does not resolve: say less, never fail here
            return None
    if key.endswith("]") and typing.get_origin(hint) in (list, tuple):
        return typing.get_args(hint)[0]
    return hint


KINDS = {int: ("an integer", "integers"), float: ("a number", "numbers"), bool: ("true or false", "booleans"),
         str: ("a string", "strings")}


def kind_of(hint: Any) -> str:
    """What a value of type ``hint`` must be, in words (e.g. "a list of numbers")."""
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if typing.get_origin(hint) is typing.Union and len(args) == 1:
        return f"{kind_of(args[0])} or null"
    if typing.get_origin(hint) in (list, tuple):
        return f"a list of {KINDS.get(args[0], ('', 'values'))[1]}" if args else "a list"
    if dataclasses.is_dataclass(hint):
        return "a group of settings (set its keys: key.sub=value)"
    return KINDS.get(hint, ("a value of type " + getattr(hint, "__name__", str(hint)), ""))[0]


def settings_near(schema: Any, key: str) -> str:
    """``; did you mean ...?`` for a key that is not a setting, from its parent's settings."""
    parent, _, name = key.rpartition(".")
    owner = field_type(schema, parent) if parent else schema
    if not dataclasses.is_dataclass(owner):
        return ""
    prefix = f"{parent}." if parent else ""
    close = [prefix + near for near in difflib.get_close_matches(name, [f.name for f in dataclasses.fields(owner)])]
    return f"; did you mean {' or '.join(close)}?" if close else ""


def plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value


def describe_error(err: OmegaConfBaseException, base: DictConfig) -> str:
    """OmegaConf's error in the user's terms: the key, the value given and what is accepted."""
    key = getattr(err, "full_key", None)
    first_line = (getattr(err, "msg", None) or str(err)).splitlines()[0]
    if not key:
        return first_line
    schema = OmegaConf.get_type(base)
    hint = field_type(schema, key)
    if isinstance(err, ConfigKeyError):
        owner = field_type(schema, key.rpartition(".")[0]) if "." in key else schema
        where = f" of {owner.__name__}" if dataclasses.is_dataclass(owner) else ""
        return f"config key '{key}': not a setting{where}{settings_near(schema, key)}"
    if hint is None:
        return f"config key '{key}': {first_line}"
    default = OmegaConf.select(base, re.sub(r"\[\d+\]$", "", key), default=None, throw_on_missing=False)
    example = f"; e.g. {plain(default)!r}" if default is not None and not key.endswith("]") else ""
    return f"config key '{key}': must be {kind_of(hint)} (got {plain(getattr(err, 'value', None))!r}{example})"


def blame(source: str) -> str:
    return f"{source}: " if source else ""


def merge_layers(base: DictConfig, layers: Sequence[Any], source: str) -> DictConfig:
    """``layers`` (dicts, DictConfigs, ``key=value`` lists) merged onto ``base``; errors blame ``source``."""
    nodes = []
    for layer in layers:
        if isinstance(layer, (list, tuple)):
            bad = [item for item in layer if "=" not in item]
            if bad:
                raise ConfigError(f"{blame(source)}override {bad[0]!r} is not of the form key=value")
            layer = OmegaConf.from_dotlist(list(layer))
        nodes.append(layer)
    try:
        return OmegaConf.merge(base, *nodes)
    except OmegaConfBaseException as err:
        raise ConfigError(blame(source) + describe_error(err, base)) from err


def complete(cfg: DictConfig, source: str) -> DictConfig:
    """``cfg`` with every required value set (else an error naming the first missing key)."""
    try:
        OmegaConf.to_container(cfg, throw_on_missing=True)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{blame(source)}config key '{err.full_key}': missing a value") from err
    return cfg


def merge_config(schema: type | DictConfig, *layers: Any, source: str = "") -> DictConfig:
    """Merge ``layers`` (dicts, DictConfigs, dotlists) onto ``schema`` with strict checking."""
    base = schema if isinstance(schema, DictConfig) else OmegaConf.structured(schema)
    return complete(merge_layers(base, layers, source), source)


def load_config(path: str | Path, schema: type, overrides: Sequence[str] = ()) -> DictConfig:
    """Load ``path`` (with its ``defaults`` chain) into ``schema`` and apply CLI ``overrides``: an error
    names the file it comes from, or the command line."""
    cfg = OmegaConf.structured(schema)
    for file, node in read_yaml_files(Path(path)):
        cfg = merge_layers(cfg, [node], str(file))
    cfg = merge_layers(cfg, [list(overrides)], "command line") if overrides else cfg
    return complete(cfg, str(path))


def plain_dict(section: Mapping[str, Any]) -> dict[str, Any]:
    """A config section (``DictConfig`` or mapping) as a plain dict of plain values."""
    return OmegaConf.to_container(section, resolve=True) if isinstance(section, DictConfig) else dict(section)


def check_kwargs(target: Any, kwargs: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Return ``kwargs`` as a plain dict after checking each name is a parameter of ``target``.

    Model sections of a config are constructor arguments (of a ``diffusers`` model, say); a typo
    there would otherwise be dropped with a warning and silently change the architecture.
    """
    plain = plain_dict(kwargs)
    params = inspect.signature(target).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for name in plain:
            if name not in params:
                raise ConfigError(
                    f"config key '{key}.{name}': not an argument of {getattr(target, '__name__', target)}"
                )
    return plain
