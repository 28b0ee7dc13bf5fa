"""DifFace posterior sampling (Yue & Loy, arXiv 2212.06512), and the prior from pure noise.

DifFace does not start the reverse process from pure noise at T: it diffuses the backbone's estimate
``x`` to an intermediate step N with the forward marginal ``q(z_N | x) = N(sqrt(abar_N) x, (1 - abar_N) I)``
and runs S reverse steps over [0, N] (``timesteps``, see ``schedulers``). CLR-Face's refinement is the
same chain with the masked identity update after each guided step (``guidance``, see ``guidance``).

Everything here is a function of tensors and callables: no I/O, no global state. Randomness comes
only from the ``generator`` argument: the initial noise first, then the scheduler's per-step noise.
The loop keeps the Euler scheduler's sigma space to itself, so guidance and callbacks see the same
latents whatever the scheduler.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor

from .guidance import IdentityGuidance, guidance_step_size, identity_gradient, is_active, is_guided_step
from .eps_model import EpsModel
from .registry import StepCallback, register_sampler
from .schedulers import build_respaced_scheduler, noise_latent, state_scale, step_kwargs

Generator = Optional[torch.Generator | list[torch.Generator]]


@register_sampler("difface")
def sample_difface(model: EpsModel, x: Tensor, scheduler: SchedulerMixin, timesteps: Sequence[int], *,
                   generator: Generator = None, callback: Optional[StepCallback] = None, eta: float = 0.0,
                   guidance: Optional[IdentityGuidance] = None) -> Tensor:
    """z_0 of the chain from the scaled latents ``x`` (B x C x h x w) diffused to ``timesteps[0]``.
    ``eta``: DDIM's stochasticity (0: deterministic); an inactive ``guidance`` changes nothing."""
    x = x.float()
    noise = randn_tensor(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return reverse_chain(model, noise_latent(scheduler, x, noise, timesteps[0]), scheduler, timesteps,
                         generator=generator, callback=callback, eta=eta, guidance=guidance)


@register_sampler("prior")
def sample_prior(model: EpsModel, x: Tensor, scheduler: SchedulerMixin, timesteps: Sequence[int], *,
                 generator: Generator = None, callback: Optional[StepCallback] = None, eta: float = 0.0,
                 guidance: Optional[IdentityGuidance] = None) -> Tensor:
    """The same chain from N(0, I) at ``timesteps[0]``, ignoring ``x``'s values (only its shape counts):
    the score model's prior, an unconditional check when ``timesteps[0]`` is the last training timestep."""
    noise = randn_tensor(x.shape, generator=generator, device=x.device, dtype=torch.float32)
    return reverse_chain(model, noise, scheduler, timesteps, generator=generator, callback=callback, eta=eta,
                         guidance=guidance)


def reverse_chain(model: EpsModel, z: Tensor, scheduler: SchedulerMixin, timesteps: Sequence[int], *,
                  generator: Generator = None, callback: Optional[StepCallback] = None, eta: float = 0.0,
                  guidance: Optional[IdentityGuidance] = None) -> Tensor:
    """The reverse steps from the noisy latents ``z`` at ``timesteps[0]`` down to z_0, with ``scheduler``'s
    update rule on the respaced chain."""
    respaced = build_respaced_scheduler(scheduler, timesteps)
    kwargs = step_kwargs(respaced, eta)
    guide = guidance is not None and is_active(guidance)
    alpha_bars = [scheduler.alphas_cumprod[t].item() for t in timesteps] + [1.0]  # the last step lands clean
    scales = [state_scale(respaced, alpha_bar) for alpha_bar in alpha_bars]
    x = z * scales[0]
    for i, t in enumerate(timesteps):
        z = respaced.scale_model_input(x, respaced.timesteps[i])
        eps = model(z, t)
        gradient = None
        if guide and is_guided_step(guidance, i, len(timesteps)):
            gradient = identity_gradient(guidance, z, eps, alpha_bars[i])
            size = guidance_step_size(guidance, alpha_bars[i])
        x = respaced.step(eps, respaced.timesteps[i], x, generator=generator, **kwargs).prev_sample
        if gradient is not None:
            x = x - size * scales[i + 1] * guidance.mask.to(x) * gradient
        if callback is not None:
            denoised = (z - (1 - alpha_bars[i]) ** 0.5 * eps) / alpha_bars[i] ** 0.5
            replaced = callback({"i": i, "t": t, "x": x / scales[i + 1], "denoised": denoised})
            x = x if replaced is None else replaced * scales[i + 1]
    return x
