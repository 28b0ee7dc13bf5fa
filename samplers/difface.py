"""DifFace posterior sampling with an (optionally conditional) latent score model.

DifFace (Yue & Loy, arXiv 2212.06512) does not start the reverse process from pure noise at T: it
diffuses the backbone's estimate ``z_start`` to an intermediate step N with the forward marginal
``q(z_N | z_start) = N(sqrt(abar_N) z_start, (1 - abar_N) I)`` and runs S reverse steps over [0, N].

Timesteps. The S steps are ``linspace(N, 0, S)`` rounded, strictly decreasing and deduplicated, so
the first denoising step is at exactly the timestep where the noise was added (DifFace's public code
noises at N but denoises first at a neighbouring step). Each step goes from one listed timestep to
the next and the last step (at t = 0 when S > 1) lands on the clean latent.

Schedulers. The diffusers schedulers (``DDIMScheduler`` with ``eta``, ``DDPMScheduler`` ancestral)
are used unchanged on a *respaced* schedule (guided-diffusion's ``SpacedDiffusion``, which DifFace
uses): the kept timesteps t_0 < ... < t_{S-1} define a new S-step chain with
``abar'_i = abar[t_i]``, i.e. betas ``1 - abar[t_i] / abar[t_{i-1}]``. The scheduler runs that chain
with unit stride; the score model is called with the ORIGINAL timestep t_i. ``DDIMScheduler`` has no
custom-timestep option (its previous step is always ``t - T // S``), so respacing is the one
mechanism that serves both without touching scheduler internals.

Everything here is a function of tensors and callables: no I/O, no global state. Randomness comes
only from the ``generator`` argument: the initial noise first, then the scheduler's per-step noise.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor

from .guidance import IdentityGuidance, guidance_step_size, identity_gradient, is_active, is_guided_step

logger = logging.getLogger(__name__)

EpsModel = Callable[[Tensor, int], Tensor]
"""``eps_model(z_t, t)``: the noise prediction for latents ``z_t`` (B, C, h, w) at integer timestep ``t``."""

SAMPLERS = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler}


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


def build_respaced_scheduler(train_scheduler: DDPMScheduler, timesteps: Sequence[int], sampler: str = "ddim"):
    """A diffusers scheduler of kind ``sampler`` running the chain through ``timesteps`` (decreasing)
    of the training scheduler, with unit stride (see the module docstring). Its timestep ``i`` stands
    for the original timestep ``timesteps[len - 1 - i]``."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {sorted(SAMPLERS)}")
    ascending = torch.as_tensor(list(timesteps)[::-1])
    if len(ascending) > 1 and not bool((ascending[1:] > ascending[:-1]).all()):
        raise ValueError(f"timesteps must be strictly decreasing, got {list(timesteps)}")
    alphas_cumprod = train_scheduler.alphas_cumprod.double()[ascending]
    previous = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
    betas = (1.0 - alphas_cumprod / previous).tolist()
    scheduler = SAMPLERS[sampler].from_config(
        train_scheduler.config, num_train_timesteps=len(betas), trained_betas=betas,
        timestep_spacing="leading", steps_offset=0, rescale_betas_zero_snr=False,
    )
    scheduler.set_timesteps(len(betas))
    expected = torch.arange(len(betas) - 1, -1, -1)
    if not torch.equal(scheduler.timesteps.cpu(), expected):  # a guard against a diffusers change
        raise RuntimeError(f"{type(scheduler).__name__} did not lay out unit-stride timesteps")
    return scheduler


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
    train_scheduler: DDPMScheduler,
    *,
    start_t: int,
    steps: int,
    sampler: str = "ddim",
    eta: float = 0.0,
    generator: Optional[torch.Generator] = None,
    pure_noise: bool = False,
    guidance: Optional[IdentityGuidance] = None,
) -> Tensor:
    """Run the DifFace chain from ``z_start`` (scaled latents, B x C x h x w) and return z_0.

    ``pure_noise=True`` ignores ``z_start``'s values and starts from N(0, I) at ``start_t`` (use
    T - 1 for an unconditional prior check). ``eta`` is DDIM's stochasticity (0: deterministic);
    ``ddpm`` is ancestral sampling and takes no ``eta``. ``guidance`` adds the masked identity
    update after each guided step (see ``samplers.guidance``); an inactive guidance changes nothing.
    """
    if sampler != "ddim" and eta != 0.0:
        raise ValueError(f"eta applies to the ddim sampler only (sampler={sampler!r}, eta={eta})")
    num_train = train_scheduler.config.num_train_timesteps
    if not 0 <= start_t < num_train:
        raise ValueError(f"start_t must be in [0, {num_train - 1}], got {start_t}")
    timesteps = respaced_timesteps(start_t, steps)
    scheduler = build_respaced_scheduler(train_scheduler, timesteps, sampler)
    step_kwargs = {"eta": eta} if sampler == "ddim" else {}
    guide = guidance is not None and is_active(guidance)

    z_start = z_start.float()
    noise = randn_tensor(z_start.shape, generator=generator, device=z_start.device, dtype=z_start.dtype)
    z = noise if pure_noise else noise_latent(train_scheduler, z_start, noise, timesteps[0])
    for i, t in enumerate(timesteps):
        eps = eps_model(z, t)
        gradient = None
        if guide and is_guided_step(guidance, i, len(timesteps)):
            alpha_bar = train_scheduler.alphas_cumprod[t].item()
            gradient = identity_gradient(guidance, z, eps, alpha_bar)
            size = guidance_step_size(guidance, alpha_bar)
        z_next = scheduler.step(eps, scheduler.timesteps[i], z, generator=generator, **step_kwargs).prev_sample
        if gradient is not None:
            z_next = z_next - size * guidance.mask.to(z_next) * gradient
        z = z_next
    return z
