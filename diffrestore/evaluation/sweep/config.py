"""Sweep configs: the schema, the points of a grid, every point's options validated before any work."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from omegaconf import MISSING, DictConfig, OmegaConf

from ..ablation import AblationOptions
from ...config import ConfigError, load_config, merge_config

TRAIN_PREFIX = "train."


@dataclass
class SweepData:
    lq: str = MISSING  # folder of aligned LQ faces
    gt: Optional[str] = None  # folder of the ground truth (paired by file name stem)
    limit: Optional[int] = None  # only N LQ files, evenly spaced by name (quick runs); the reference set stays whole
    # aligned: the faces are restored as `diffrestore --aligned` does (diffrestore-eval-restore's default: the
    # path users get), back at the set's size; a template name (e.g. ffhq_512): each face is warped into the
    # model's framing and pasted back; null = the faces are in the model's framing and size
    framing: Optional[str] = None


@dataclass
class SweepEval:
    metrics: Optional[List[str]] = None  # subset of diffrestore.evaluate.METRICS; null = all that apply
    identity: str = "sface"  # sface | facenet[:weights] | an IdentityNet folder (never the guidance network)
    color: str = "y"  # y (BT.601 luma) | rgb
    crop_border: int = 0
    reference: Optional[str] = None  # reference set of the distribution distances; null = data.gt
    groups: Optional[str] = None  # utkface: per-group summaries from file names
    vq_model: Optional[str] = None  # FD-VQ features: a pipeline/VQModel folder, or "model" = the point's VQGAN


@dataclass
class SweepTrain:
    config: Optional[str] = None  # a training config (configs/train/*.yaml); needed by train.* keys
    component: str = "unet"  # the exported component that replaces the pipeline's
    overrides: List[str] = field(default_factory=list)  # training overrides for every point
    command: List[str] = field(default_factory=lambda: [sys.executable, "train.py"])  # or [accelerate, launch, train.py]


@dataclass
class SweepConfig:
    name: str = MISSING
    description: str = ""
    base: str = "../sample/default.yaml"
    set: Dict[str, Any] = field(default_factory=dict)
    grid: Dict[str, List[Any]] = field(default_factory=dict)
    points: List[Dict[str, Any]] = field(default_factory=list)
    x: Optional[str] = None
    data: SweepData = field(default_factory=SweepData)
    eval: SweepEval = field(default_factory=SweepEval)
    train: SweepTrain = field(default_factory=SweepTrain)


@dataclass
class Point:
    values: Dict[str, Any]  # the swept keys of this point
    sample: DictConfig  # the full, validated AblationOptions
    train_overrides: List[str]
    slug: str

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={show_value(v)}" for k, v in self.values.items()) or "base"


def show_value(value: Any) -> str:
    """A value as YAML would write it (null, true, [0.0, 0.6])."""
    return json.dumps(value) if value is None or isinstance(value, (bool, list, dict)) else str(value)


def _slug(values: Dict[str, Any]) -> str:
    text = "__".join(f"{k}={show_value(v)}" for k, v in values.items()) or "base"
    text = re.sub(r"[^A-Za-z0-9._=-]+", "-", text).strip("-")
    if len(text) > 80:
        text = text[:64] + "-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return text


def load_sweep(path: str | Path, overrides: Sequence[str] = ()) -> tuple[DictConfig, list[Point]]:
    """Read a sweep config, validate it and every point's sampling config (before any work)."""
    path = Path(path)
    cfg = load_config(path, SweepConfig, overrides)
    base = Path(cfg.base)
    base = base if base.is_absolute() else path.parent / base
    base_sample = load_config(base, AblationOptions)
    grid = OmegaConf.to_container(cfg.grid, resolve=True)
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] if grid else []
    combos += OmegaConf.to_container(cfg.points, resolve=True)
    points, seen = [], {}
    for values in combos or [{}]:
        sample_keys = {k: v for k, v in values.items() if not k.startswith(TRAIN_PREFIX)}
        train_overrides = [f"{k[len(TRAIN_PREFIX):]}={json.dumps(v)}" for k, v in values.items()
                           if k.startswith(TRAIN_PREFIX)]
        if train_overrides and not cfg.train.config:
            raise ConfigError(f"{path}: keys {sorted(values)} start with 'train.' but train.config is not set")
        layers = [_dotted_layer(OmegaConf.to_container(cfg.set, resolve=True)), _dotted_layer(sample_keys)]
        sample = merge_config(base_sample, *layers, source=f"{path} point {values}")
        for key, value in sample_keys.items():
            if isinstance(value, bool) and isinstance(OmegaConf.select(sample, key), str):
                raise ConfigError(f"{path}: config key '{key}': YAML read {value} (a boolean) where a string is "
                                  "expected; quote words like 'off', 'on', 'no' and 'yes'")
        if train_overrides:
            _check_train_config(cfg.train, train_overrides, path)
        slug = _slug(values)
        if slug in seen:
            raise ConfigError(f"{path}: point {values} appears twice (as {seen[slug]})")
        seen[slug] = values
        points.append(Point(values, sample, train_overrides, slug))
    if cfg.x is not None and not any(cfg.x in p.values for p in points):
        raise ConfigError(f"{path}: config key 'x': {cfg.x!r} is not a swept key")
    return cfg, points


def _check_train_config(train: DictConfig, point_overrides: list[str], source: Path) -> None:
    """Validate a point's training config (keys, types) before any work is done."""
    from ...training.schema import TrainConfig

    if not Path(train.config).is_file():
        raise ConfigError(f"{source}: config key 'train.config': {train.config} not found")
    load_config(train.config, TrainConfig, list(train.overrides) + point_overrides + ["output_dir=sweep-point"])


def _dotted_layer(values: Dict[str, Any]) -> DictConfig:
    layer = OmegaConf.create({})
    for key, value in values.items():
        OmegaConf.update(layer, key, value, force_add=True)
    return layer
