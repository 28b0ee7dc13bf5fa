"""Schema of a training config (``configs/train/*.yaml``), validated by :func:`diffrestore.config.load_config`."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from ..config import ConfigError
from ..models.builders import ModelConfig
from ..data.degradations import DegradationConfig


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 500
    lr_schedule: str = "cosine"  # any name of diffusers.optimization.get_scheduler
    max_grad_norm: float = 1.0  # <= 0 disables clipping
    # {trainable model name: factor on lr}, e.g. {discriminator: 4.0}: a critic that starts fresh beside a
    # warm-started generator must learn faster than it to judge it
    lr_scale: Dict[str, float] = field(default_factory=dict)


@dataclass
class DataConfig:
    hq_dir: str = MISSING
    val_dir: Optional[str] = None
    flip: bool = True
    num_workers: int = 4
    resident: bool = False  # decode the training set once into device memory; batches are made there
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    teacher_embeddings: Optional[str] = None


@dataclass
class PretrainedConfig:
    """Exported component folders (``save_pretrained``) a stage uses frozen."""

    vqgan: Optional[str] = None
    backbone: Optional[str] = None
    identity: Optional[str] = None
    irn: Optional[str] = None
    unet: Optional[str] = None


@dataclass
class TrainConfig:
    stage: str = MISSING
    output_dir: str = MISSING
    seed: int = 0
    max_steps: int = 10000
    time_limit_minutes: float = 0.0  # stop early (checkpoint + export) after this long; 0 = no limit
    batch_size: int = 32  # per process
    mixed_precision: str = "no"  # no | fp16 | bf16
    compile: bool = False  # torch.compile every model in place (falls back to eager where it fails)
    channels_last: bool = False  # models and image batches in channels-last memory format
    gradient_accumulation_steps: int = 1
    ema_decay: float = 0.999
    checkpoint_every: int = 1000
    keep_last: int = 3
    sample_every: int = 1000
    log_every: int = 50
    # none: <output_dir>/log.jsonl only (always written); tensorboard: also <output_dir>/tb, with the train extra
    log_with: str = "none"
    resume: Optional[str] = None  # "latest" or a checkpoint directory
    debug_record_indices: bool = False  # write the sample indices each rank consumes (tests, audits)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrained: PretrainedConfig = field(default_factory=PretrainedConfig)
    # Warm start: {trainable model name: exported folder} loaded before training (a fresh optimizer);
    # a checkpoint resumed from replaces them.
    init: Dict[str, str] = field(default_factory=dict)
    loss: Dict[str, Any] = field(default_factory=dict)  # stage-specific, validated by the stage


MIXED_PRECISION = ("no", "fp16", "bf16")
LOG_WITH = ("tensorboard", "none")


def check_config(cfg: TrainConfig) -> None:
    """Refuse a value no stage can train with, naming its key (``mixed_precision=no`` on a command line is YAML's false)."""
    if str(cfg.mixed_precision).lower() == "false":  # `mixed_precision=no` on a command line: YAML's false
        cfg.mixed_precision = "no"
    if cfg.mixed_precision not in MIXED_PRECISION:
        raise ConfigError(f"config key 'mixed_precision': {cfg.mixed_precision!r} is not one of {MIXED_PRECISION}")
    if cfg.log_with not in LOG_WITH:
        raise ConfigError(f"config key 'log_with': {cfg.log_with!r} is not one of {LOG_WITH}")
    if cfg.log_with == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("config key 'log_with': tensorboard is not installed (pip install -e \".[train]\"); "
                          "log_with=none still writes <output_dir>/log.jsonl")
    for key in ("max_steps", "batch_size", "gradient_accumulation_steps", "checkpoint_every", "sample_every",
                "log_every"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"config key '{key}': must be >= 1, got {getattr(cfg, key)}")
    for name, factor in cfg.optim.lr_scale.items():
        if not factor > 0:
            raise ConfigError(f"config key 'optim.lr_scale.{name}': must be > 0, got {factor}")
    if not 0.0 <= cfg.ema_decay <= 1.0:
        raise ConfigError(f"config key 'ema_decay': must be in [0, 1], got {cfg.ema_decay}")
