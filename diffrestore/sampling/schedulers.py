"""Schedulers: the diffusers update rules the samplers step with, on a respaced chain.

Vocabulary. A *scheduler* is a ``diffusers`` scheduler: its class is the update rule (DDIM, DDPM,
DPM-Solver++, Euler) and its config the TRAINING noise schedule. A *sampler* (``diffrestore.sampling``)
is the algorithm that calls one: DifFace posterior sampling, the pure-noise prior check.

Timesteps. A chain of S steps over [0, N] is ``linspace(N, 0, S)`` rounded, strictly decreasing and
deduplicated (``respaced_timesteps``, the one place where ``steps`` and ``start_t`` are checked), so
the first denoising step is at exactly the timestep where the noise was added (DifFace's public code
noises at N but denoises first at a neighbouring step). Each step goes from one listed timestep to
the next and the last step (at t = 0 when S > 1) lands on the clean latent.

Respacing. Every supported scheduler (``SCHEDULERS``; set one with ``<Class>.from_config(scheduler.config)``)
runs unchanged on a *respaced* schedule (guided-diffusion's ``SpacedDiffusion``, which DifFace uses):
the kept timesteps t_0 < ... < t_{S-1} define a new S-step chain with ``abar'_i = abar[t_i]``, i.e.
betas ``1 - abar[t_i] / abar[t_{i-1}]``. The scheduler runs that chain with unit stride; the score
model is called with the ORIGINAL timestep t_i. ``DDIMScheduler`` has no custom-timestep option (its
previous step is always ``t - T // S``), so respacing is the one mechanism that serves all of them
without touching scheduler internals. Euler steps on ``z_t / sqrt(abar_t)`` (sigma space) instead of
the variance-preserving ``z_t`` (``state_scale``).
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Optional, Sequence

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import Tensor

logger = logging.getLogger(__name__)

SCHEDULERS = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler, "dpm++": DPMSolverMultistepScheduler,
              "euler": EulerDiscreteScheduler}
SIGMA_SPACE = (EulerDiscreteScheduler,)  # step on z_t / sqrt(abar_t) rather than on z_t


def check_scheduler(scheduler: SchedulerMixin) -> None:
    """Refuse a scheduler class that the samplers do not support."""
    supported = tuple(SCHEDULERS.values())
    if type(scheduler) not in supported:
        names = ", ".join(cls.__name__ for cls in supported)
        raise ValueError(f"scheduler {type(scheduler).__name__} is not supported; use one of {names} "
                         "(e.g. pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config))")


def chain_problems(start_t: int, steps: int, num_train_timesteps: Optional[int] = None) -> list[tuple[str, str]]:
    """(setting, what is wrong) for a chain of ``steps`` steps from ``start_t``; ``start_t`` is bounded
    by the model's ``num_train_timesteps`` where it is given."""
    problems = []
    if steps < 1:
        problems.append(("steps", "must be at least 1"))
    if start_t < 0:
        problems.append(("start_t", "must be >= 0"))
    elif num_train_timesteps is not None and start_t >= num_train_timesteps:
        problems.append(("start_t", f"must be in [0, {num_train_timesteps - 1}] "
                                    f"(the model has {num_train_timesteps} training timesteps)"))
    return problems


def respaced_timesteps(start_t: int, steps: int, num_train_timesteps: Optional[int] = None) -> list[int]:
    """``steps`` timesteps from ``start_t`` down to 0: ``linspace(start_t, 0, steps)`` rounded,
    strictly decreasing, duplicates removed (there are some only when ``steps > start_t + 1``)."""
    problems = chain_problems(start_t, steps, num_train_timesteps)
    if problems:
        key, problem = problems[0]
        raise ValueError(f"{key} {start_t if key == 'start_t' else steps}: {problem}")
    rounded = np.round(np.linspace(start_t, 0, steps)).astype(np.int64)
    timesteps = sorted({int(t) for t in rounded}, reverse=True)
    if len(timesteps) < steps and start_t > 0:  # start_t 0 is the backbone's estimate alone, asked for
        _warn_few_timesteps(steps, start_t, len(timesteps))
    return timesteps


@functools.lru_cache(maxsize=None)
def _warn_few_timesteps(steps: int, start_t: int, distinct: int) -> None:
    """Once per process and setting, not once per face."""
    logger.warning("%d steps requested over [0, %d]: only %d distinct timesteps exist, using those",
                   steps, start_t, distinct)


def build_respaced_scheduler(scheduler: SchedulerMixin, timesteps: Sequence[int]) -> SchedulerMixin:
    """A scheduler of ``scheduler``'s class running the chain through ``timesteps`` (decreasing) of
    its training schedule, with unit stride (see the module docstring). Its timestep ``i`` stands
    for the original timestep ``timesteps[len - 1 - i]``."""
    check_scheduler(scheduler)
    ascending = torch.as_tensor(list(timesteps)[::-1])
    if len(ascending) > 1 and not bool((ascending[1:] > ascending[:-1]).all()):
        raise ValueError(f"timesteps must be strictly decreasing, got {list(timesteps)}")
    alphas_cumprod = scheduler.alphas_cumprod.double()[ascending]
    previous = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
    betas = (1.0 - alphas_cumprod / previous).tolist()
    respaced = type(scheduler).from_config(
        scheduler.config, num_train_timesteps=len(betas), trained_betas=betas,
        timestep_spacing="trailing", steps_offset=0, rescale_betas_zero_snr=False,
    )
    respaced.set_timesteps(len(betas))
    expected = torch.arange(len(betas) - 1, -1, -1)
    if not torch.equal(respaced.timesteps.cpu().long(), expected):  # e.g. Karras sigmas in the config
        raise ValueError(f"{type(scheduler).__name__} with this config does not step through every respaced "
                         "timestep (options such as use_karras_sigmas are not supported)")
    return respaced


def noise_latent(train_scheduler: DDPMScheduler, z_start: Tensor, noise: Tensor, t: int) -> Tensor:
    """``z_t = sqrt(abar_t) z_start + sqrt(1 - abar_t) noise`` with the TRAINING schedule's abar."""
    alpha_bar = train_scheduler.alphas_cumprod[t].to(z_start.device, torch.float64)
    return (alpha_bar.sqrt() * z_start.double() + (1 - alpha_bar).sqrt() * noise.double()).to(z_start.dtype)


def clean_latent(train_scheduler: DDPMScheduler, z_t: Tensor, eps: Tensor, t: Tensor) -> Tensor:
    """The z0 that ``eps`` (predicted at per-sample timesteps ``t``) implies: ``(z_t - sqrt(1 - abar_t) eps) /
    sqrt(abar_t)``, float32, differentiable in ``eps``."""
    alpha_bar = train_scheduler.alphas_cumprod.to(z_t.device, torch.float32)[t].view(-1, 1, 1, 1)
    return (z_t.float() - (1 - alpha_bar).sqrt() * eps.float()) / alpha_bar.sqrt()


def step_kwargs(scheduler: SchedulerMixin, eta: float) -> dict:
    """The keyword arguments of ``scheduler.step`` for DDIM's ``eta``; refused for the other schedulers."""
    if "eta" in inspect.signature(scheduler.step).parameters:
        return {"eta": eta}
    if eta != 0.0:
        raise ValueError(f"eta applies to the ddim scheduler only (the scheduler is {type(scheduler).__name__}, eta={eta})")
    return {}


def state_scale(scheduler: SchedulerMixin, alpha_bar: float) -> float:
    """What the scheduler's sample is in units of z_t (1 for the variance-preserving ones)."""
    return alpha_bar ** -0.5 if isinstance(scheduler, SIGMA_SPACE) else 1.0
