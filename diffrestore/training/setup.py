"""The models of a stage around training: warm-started from saved ones, sped up (memory layout, compile),
their EMA weights put in for a while."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import torch
from diffusers.training_utils import EMAModel
from torch import nn

from ..config import ConfigError


def warm_start(models: dict[str, nn.Module], init: Mapping[str, str], stage: str) -> None:
    """Load the weights of the saved models ``init`` (name -> folder) into ``models`` before training."""
    for name, folder in init.items():
        if name not in models:
            raise ConfigError(f"config key 'init.{name}': not a trainable model of the {stage} stage "
                              f"({', '.join(models)})")
        if not (Path(folder) / "config.json").is_file():
            raise ConfigError(f"config key 'init.{name}': {folder}: not a saved model folder (no config.json)")
        saved = type(models[name]).from_pretrained(folder, torch_dtype=torch.float32)
        try:
            models[name].load_state_dict(saved.state_dict())
        except RuntimeError as err:
            raise ConfigError(f"config key 'init.{name}': {folder} does not fit the model config: {err}") from None
        if "scaling_factor" in saved.config:  # a latent scale belongs to the weights it was measured on
            models[name].register_to_config(scaling_factor=saved.config.scaling_factor)


def speed_up(models: dict[str, nn.Module], frozen: dict[str, nn.Module], channels_last: bool,
             compile: bool) -> None:
    """``channels_last`` and ``compile``: models in place, before DDP wraps them. A frozen model is
    compiled piecewise (its children), since stages call its methods (``encode``), not ``forward``."""
    if channels_last:
        for m in (*models.values(), *frozen.values()):
            m.to(memory_format=torch.channels_last)
    if compile:
        import torch._dynamo
        torch._dynamo.config.suppress_errors = True  # fall back to eager for what does not compile
        for m in models.values():
            m.compile()
        for m in frozen.values():
            for child in m.children():
                child.compile()


@contextmanager
def ema_applied(emas: dict[str, EMAModel], params: dict[str, list[nn.Parameter]]) -> Iterator[None]:
    """Temporarily put the EMA weights into the parameters ``params`` of the models named in ``emas``."""
    for name, ema in emas.items():
        ema.store(params[name])
        ema.copy_to(params[name])
    try:
        yield
    finally:
        for name, ema in emas.items():
            ema.restore(params[name])
