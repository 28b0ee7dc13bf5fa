"""DifFace posterior sampling with an (optionally conditional) latent score model.

DifFace (Yue & Loy, arXiv 2212.06512) does not start the reverse process from pure noise at T: it
diffuses the backbone's estimate ``z_start`` to an intermediate step N with the forward marginal
``q(z_N | z_start) = N(sqrt(abar_N) z_start, (1 - abar_N) I)`` and runs S reverse steps over [0, N].

Timesteps. The S steps are ``linspace(N, 0, S)`` rounded, strictly decreasing and deduplicated, so
the first denoising step is at exactly the timestep where the noise was added (DifFace's public code
noises at N but denoises first at a neighbouring step). Each step goes from one listed timestep to
the next and the last step (at t = 0 when S > 1) lands on the clean latent.

Schedulers. The scheduler passed in is the sampler: its config holds the TRAINING noise schedule and
its class the update rule. ``DDIMScheduler`` (with ``eta``), ``DDPMScheduler`` (ancestral),
``DPMSolverMultistepScheduler`` (DPM-Solver++) and ``EulerDiscreteScheduler`` are supported
(``SAMPLERS``; set one with ``<Class>.from_config(scheduler.config)``); any other is refused. Each
runs unchanged on a *respaced* schedule (guided-diffusion's ``SpacedDiffusion``, which DifFace uses):
the kept timesteps t_0 < ... < t_{S-1} define a new S-step chain with ``abar'_i = abar[t_i]``, i.e.
betas ``1 - abar[t_i] / abar[t_{i-1}]``. The scheduler runs that chain with unit stride; the score
model is called with the ORIGINAL timestep t_i. ``DDIMScheduler`` has no custom-timestep option (its
previous step is always ``t - T // S``), so respacing is the one mechanism that serves all of them
without touching scheduler internals. Euler steps on ``z_t / sqrt(abar_t)`` (sigma space) instead of
the variance-preserving ``z_t``; the loop keeps that conversion to itself, so guidance and callbacks
see the same latents whatever the scheduler.

Everything here is a function of tensors and callables: no I/O, no global state. Randomness comes
only from the ``generator`` argument: the initial noise first, then the scheduler's per-step noise.
"""

from __future__ import annotations

import inspect
import logging
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor

from .guidance import IdentityGuidance, guidance_step_size, identity_gradient, is_active, is_guided_step

logger = logging.getLogger(__name__)

EpsModel = Callable[[Tensor, int], Tensor]
"""``eps_model(z_t, t)``: the noise prediction for latents ``z_t`` (B, C, h, w) at integer timestep ``t``."""

StepCallback = Callable[[int, int, Tensor], Optional[Tensor]]
"""``callback(i, t, z)`` after step ``i`` (from timestep ``t``) with the latents it produced; a tensor
it returns replaces them."""

SAMPLERS = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler, "dpm++": DPMSolverMultistepScheduler,
            "euler": EulerDiscreteScheduler}
SIGMA_SPACE = (EulerDiscreteScheduler,)  # step on z_t / sqrt(abar_t) rather than on z_t


def check_scheduler(scheduler: SchedulerMixin) -> None:
    """Refuse a scheduler class that the sampler does not support."""
    supported = tuple(SAMPLERS.values())
    if type(scheduler) not in supported:
        names = ", ".join(cls.__name__ for cls in supported)
        raise ValueError(f"scheduler {type(scheduler).__name__} is not supported; use one of {names} "
                         "(e.g. pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config))")


def respaced_timesteps(start_t: int, steps: int) -> list[int]:
    """``steps`` timesteps from ``start_t`` down to 0: ``linspace(start_t, 0, steps)`` rounded,
    strictly decreasing, duplicates removed (there are some only when ``steps > start_t + 1``)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if start_t < 0:
        raise ValueError(f"start_t must be >= 0, got {start_t}")
    rounded = np.round(np.linspace(start_t, 0, steps)).astype(np.int64)
    timesteps = sorted({int(t) for t in rounded}, reverse=True)
    if len(timesteps) < steps:
        logger.warning("%d steps requested over [0, %d]: only %d distinct timesteps exist, using those",
                       steps, start_t, len(timesteps))
    return timesteps


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


def unet_eps_model(unet: torch.nn.Module, condition: Optional[Tensor] = None, cfg_scale: float = 1.0) -> EpsModel:
    """Wrap a ``UNet2DModel`` as an ``EpsModel``.

    With ``condition`` c the model is called on ``cat([z_t, c], dim=1)``. ``cfg_scale`` w != 1 adds
    classifier-free guidance, ``eps_u + w (eps_c - eps_u)`` with the unconditional branch on a zero
    condition (what condition dropout trains), both branches in one batched call. Inputs are cast
    to the UNet's dtype; the prediction comes back in the latent's dtype.
    """
    dtype = next(unet.parameters()).dtype
    if condition is None and cfg_scale != 1.0:
        raise ValueError("cfg_scale needs a condition (the model must be conditional)")

    def call(inputs: Tensor, t: int) -> Tensor:
        # A device tensor, not an int: no host-to-device copy per step, and a compiled UNet does not
        # specialise (recompile) on every timestep value.
        timesteps = torch.full((inputs.shape[0],), t, device=inputs.device, dtype=torch.long)
        return unet(inputs, timesteps).sample

    def eps_model(z_t: Tensor, t: int) -> Tensor:
        if condition is None:
            return call(z_t.to(dtype), t).to(z_t.dtype)
        cond = condition.to(z_t.device, dtype)
        if cfg_scale == 1.0:
            return call(torch.cat([z_t.to(dtype), cond], dim=1), t).to(z_t.dtype)
        z = z_t.to(dtype).repeat(2, 1, 1, 1)
        both = call(torch.cat([z, torch.cat([cond, torch.zeros_like(cond)])], dim=1), t).to(z_t.dtype)
        eps_cond, eps_uncond = both.chunk(2)
        return eps_uncond + cfg_scale * (eps_cond - eps_uncond)

    return eps_model


def difface_sample(
    eps_model: EpsModel,
    z_start: Tensor,
    scheduler: SchedulerMixin,
    *,
    start_t: int,
    steps: int,
    eta: float = 0.0,
    generator: Optional[torch.Generator | list[torch.Generator]] = None,
    pure_noise: bool = False,
    guidance: Optional[IdentityGuidance] = None,
    callback: Optional[StepCallback] = None,
) -> Tensor:
    """Run the DifFace chain from ``z_start`` (scaled latents, B x C x h x w) and return z_0.

    ``scheduler``: the sampler (its class) and the training schedule (its config). ``pure_noise=True``
    ignores ``z_start``'s values and starts from N(0, I) at ``start_t`` (use T - 1 for an
    unconditional prior check). ``eta`` is DDIM's stochasticity (0: deterministic). ``guidance`` adds
    the masked identity update after each guided step (see ``samplers.guidance``); an inactive
    guidance changes nothing. ``callback`` sees the latents after every step.
    """
    num_train = scheduler.config.num_train_timesteps
    if not 0 <= start_t < num_train:
        raise ValueError(f"start_t must be in [0, {num_train - 1}], got {start_t}")
    timesteps = respaced_timesteps(start_t, steps)
    respaced = build_respaced_scheduler(scheduler, timesteps)
    step_kwargs = _step_kwargs(respaced, eta)
    guide = guidance is not None and is_active(guidance)
    alpha_bars = [scheduler.alphas_cumprod[t].item() for t in timesteps] + [1.0]  # the last step lands clean
    scales = [_state_scale(respaced, alpha_bar) for alpha_bar in alpha_bars]

    z_start = z_start.float()
    noise = randn_tensor(z_start.shape, generator=generator, device=z_start.device, dtype=z_start.dtype)
    z = noise if pure_noise else noise_latent(scheduler, z_start, noise, timesteps[0])
    x = z * scales[0]
    for i, t in enumerate(timesteps):
        z = respaced.scale_model_input(x, respaced.timesteps[i])
        eps = eps_model(z, t)
        gradient = None
        if guide and is_guided_step(guidance, i, len(timesteps)):
            gradient = identity_gradient(guidance, z, eps, alpha_bars[i])
            size = guidance_step_size(guidance, alpha_bars[i])
        x = respaced.step(eps, respaced.timesteps[i], x, generator=generator, **step_kwargs).prev_sample
        if gradient is not None:
            x = x - size * scales[i + 1] * guidance.mask.to(x) * gradient
        if callback is not None:
            replaced = callback(i, t, x / scales[i + 1])
            x = x if replaced is None else replaced * scales[i + 1]
    return x


def _step_kwargs(scheduler: SchedulerMixin, eta: float) -> dict:
    if "eta" in inspect.signature(scheduler.step).parameters:
        return {"eta": eta}
    if eta != 0.0:
        raise ValueError(f"eta applies to DDIMScheduler only (the scheduler is {type(scheduler).__name__}, eta={eta})")
    return {}


def _state_scale(scheduler: SchedulerMixin, alpha_bar: float) -> float:
    """What the scheduler's sample is in units of z_t (1 for the variance-preserving ones)."""
    return alpha_bar ** -0.5 if isinstance(scheduler, SIGMA_SPACE) else 1.0
