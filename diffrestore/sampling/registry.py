"""Samplers by name: every sampler has the one signature of ``Sampler`` (k-diffusion's shape).

``sampler(model, x, scheduler, timesteps, *, generator=None, callback=None, eta=0.0, guidance=None)``
runs the reverse chain through ``timesteps`` (``respaced_timesteps``) with ``scheduler``'s update rule
and returns z_0. ``callback(info)`` sees, after each step, ``{"i", "t", "x", "denoised"}``: the latents
the step produced and the model's x0 estimate at ``t``; a tensor it returns replaces ``x``.
A new sampler is one function decorated with ``@register_sampler("name")`` in a module imported by
``diffrestore.sampling``, plus its test.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol, Sequence

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import Tensor

from .eps_model import EpsModel

StepCallback = Callable[[dict], Optional[Tensor]]
"""``callback({"i": step, "t": timestep, "x": latents, "denoised": x0 estimate})``; a tensor it returns
replaces the latents."""


class Sampler(Protocol):
    def __call__(self, model: EpsModel, x: Tensor, scheduler: SchedulerMixin, timesteps: Sequence[int], *,
                 generator: Optional[torch.Generator | list[torch.Generator]] = None,
                 callback: Optional[StepCallback] = None, **extra) -> Tensor: ...


SAMPLERS: dict[str, Sampler] = {}


def register_sampler(name: str) -> Callable[[Sampler], Sampler]:
    """Register the decorated function as the sampler ``name``."""
    def register(sampler: Sampler) -> Sampler:
        if name in SAMPLERS:
            raise ValueError(f"sampler {name!r} is registered twice")
        SAMPLERS[name] = sampler
        return sampler

    return register
