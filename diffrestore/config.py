"""Configuration: OmegaConf YAML files validated against dataclass schemas.

A YAML file may start with ``defaults: [other.yaml, ...]`` (paths relative to the file); those are
merged first, in order, then the file itself, then ``key.sub=value`` overrides from the command line.
Every merge goes through the schema, so an unknown key or a value of the wrong type is an error
that names the key.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

DEFAULTS_KEY = "defaults"


class ConfigError(ValueError):
    """A configuration file, override or value is invalid; the message names the key or file."""


def read_yaml_chain(path: Path, seen: tuple[Path, ...] = ()) -> list[DictConfig]:
    """The YAML files of a config, its `defaults` parents first, each read once (a circle is refused)."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: circular '{DEFAULTS_KEY}' chain")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        node = OmegaConf.load(path)
    except Exception as err:  # yaml errors come in many types
        raise ConfigError(f"{path}: cannot parse YAML: {err}") from err
    if not isinstance(node, DictConfig):
        raise ConfigError(f"{path}: top level must be a mapping")
    parents = node.pop(DEFAULTS_KEY, [])
    chain: list[DictConfig] = []
    for parent in parents:
        chain += read_yaml_chain(path.parent / str(parent), seen + (path,))
    return chain + [node]


def _describe(err: OmegaConfBaseException) -> str:
    key = getattr(err, "full_key", None)
    msg = getattr(err, "msg", None) or str(err).splitlines()[0]
    return f"config key '{key}': {msg}" if key else msg


def merge_config(schema: type | DictConfig, *layers: Any, source: str = "") -> DictConfig:
    """Merge ``layers`` (dicts, DictConfigs, dotlists) onto ``schema`` with strict checking."""
    base = schema if isinstance(schema, DictConfig) else OmegaConf.structured(schema)
    nodes = []
    for layer in layers:
        if isinstance(layer, (list, tuple)):
            bad = [item for item in layer if "=" not in item]
            if bad:
                raise ConfigError(f"override {bad[0]!r} is not of the form key=value")
            layer = OmegaConf.from_dotlist(list(layer))
        nodes.append(layer)
    try:
        cfg = OmegaConf.merge(base, *nodes)
        OmegaConf.to_container(cfg, throw_on_missing=True)
    except OmegaConfBaseException as err:
        prefix = f"{source}: " if source else ""
        raise ConfigError(prefix + _describe(err)) from err
    return cfg


def load_config(path: str | Path, schema: type, overrides: Sequence[str] = ()) -> DictConfig:
    """Load ``path`` (with its ``defaults`` chain) into ``schema`` and apply CLI ``overrides``."""
    return merge_config(schema, *read_yaml_chain(Path(path)), list(overrides), source=str(path))


def check_kwargs(target: Any, kwargs: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Return ``kwargs`` as a plain dict after checking each name is a parameter of ``target``.

    Model sections of a config are constructor arguments (of a ``diffusers`` model, say); a typo
    there would otherwise be dropped with a warning and silently change the architecture.
    """
    plain = OmegaConf.to_container(kwargs, resolve=True) if isinstance(kwargs, DictConfig) else dict(kwargs)
    params = inspect.signature(target).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for name in plain:
            if name not in params:
                raise ConfigError(
                    f"config key '{key}.{name}': not an argument of {getattr(target, '__name__', target)}"
                )
    return plain
