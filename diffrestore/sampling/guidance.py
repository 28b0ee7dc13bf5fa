"""Identity guidance through a latent mask (CLR-Face).

At a guided step t, with the score model's prediction eps:

    z0_hat = (z_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)               # Tweedie / DDIM x0 prediction
    L      = 1 - cos(phi(D(z0_hat)), target)                            # D: VQGAN decoder, no quantization
    g      = grad_{z_t} L,   normalised per sample to unit RMS
    z_{t-1} <- z_{t-1} - s_t * M * g                                    # after the scheduler's step

Choices, and why:

- eps is treated as a constant (no back-propagation through the score model), so
  grad_{z_t} L = grad_{z0_hat} L / sqrt(abar_t). This is the cheap variant of universal / FreeDoM
  guidance: one decoder + identity-net backward per guided step, memory-light at 512 px.
- The gradient is normalised to unit RMS per sample (before the mask): the raw magnitude of
  identity-loss gradients varies by orders of magnitude across timesteps, images and identity
  networks, so a raw scale would need re-tuning for each. After normalisation ``scale`` reads
  directly as "latent units moved per guided step" (the latents have unit variance) and the mask
  M in [0, 1] decides where, and how much of, that step is taken.
- Schedules: ``constant`` (s_t = scale) or ``sigma`` (s_t = scale * sqrt(1 - abar_t): large while the
  latent is noisy and identity is being decided, vanishing towards the clean image).

A guidance whose scale is 0 or whose mask is all zero is inactive: the sampler then does not even
compute the gradient, so the result is bit-identical to the unguided sampler. Guidance never draws
random numbers, so the sampler's RNG stream is the same with or without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

SCHEDULES = ("constant", "sigma")


@dataclass
class IdentityGuidance:
    """What identity guidance needs. ``decode`` maps scaled latents to images in [-1, 1]
    differentiably (no quantization); ``embed`` is the identity network phi (L2-normalised
    embeddings); ``target`` (B, D) the embeddings to move towards (the IRN's prediction from the LQ
    face); ``mask`` (broadcastable to the latent, values in [0, 1]) where the update may act.

    Step i of n is guided when ``i % every == 0`` and ``range[0] <= i / n < range[1]`` (fractions of
    the trajectory, 0 = the first, noisiest step)."""

    decode: Callable[[Tensor], Tensor]
    embed: Callable[[Tensor], Tensor]
    target: Tensor
    mask: Tensor
    scale: float
    every: int = 1
    range: Tuple[float, float] = (0.0, 1.0)
    schedule: str = "constant"

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"guidance_every must be >= 1, got {self.every}")
        low, high = self.range
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"guidance_range must satisfy 0 <= start <= end <= 1, got {tuple(self.range)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown guidance schedule {self.schedule!r}; choose one of {SCHEDULES}")
        if self.scale < 0:
            raise ValueError(f"guidance scale must be >= 0, got {self.scale}")


def is_active(guidance: IdentityGuidance) -> bool:
    """False when guidance cannot change anything (scale 0, all-zero mask, empty range)."""
    low, high = guidance.range
    return guidance.scale != 0 and high > low and bool((guidance.mask != 0).any())


def is_guided_step(guidance: IdentityGuidance, index: int, num_steps: int) -> bool:
    low, high = guidance.range
    fraction = index / num_steps
    return index % guidance.every == 0 and low <= fraction < high


def guidance_step_size(guidance: IdentityGuidance, alpha_bar_t: float) -> float:
    if guidance.schedule == "sigma":
        return guidance.scale * (1.0 - alpha_bar_t) ** 0.5
    return guidance.scale


def identity_loss(embeddings: Tensor, target: Tensor) -> Tensor:
    """Per-sample ``1 - cos(embeddings, target)``."""
    return 1.0 - F.cosine_similarity(embeddings.float(), target.float().to(embeddings.device), dim=-1)


def identity_gradient(guidance: IdentityGuidance, z_t: Tensor, eps: Tensor, alpha_bar_t: float) -> Tensor:
    """Unit-RMS (per sample) gradient of the identity loss of D(z0_hat(z_t)) with respect to z_t."""
    with torch.enable_grad():
        z = z_t.detach().requires_grad_(True)
        z0_hat = (z - (1.0 - alpha_bar_t) ** 0.5 * eps.detach()) / alpha_bar_t ** 0.5
        loss = identity_loss(guidance.embed(guidance.decode(z0_hat)), guidance.target).sum()
        (gradient,) = torch.autograd.grad(loss, z)
    return unit_rms(gradient)


def unit_rms(gradient: Tensor) -> Tensor:
    """``gradient`` scaled to unit root-mean-square per sample."""
    return gradient / per_sample_rms(gradient).clamp_min(1e-12)


def per_sample_rms(values: Tensor) -> Tensor:
    """Root-mean-square over all but the first axis, shaped to broadcast against ``values``."""
    return values.pow(2).mean(dim=tuple(range(1, values.ndim)), keepdim=True).sqrt()
