"""The score model as the samplers call it: ``eps_model(z_t, t)``."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

EpsModel = Callable[[Tensor, int], Tensor]
"""``eps_model(z_t, t)``: the noise prediction for latents ``z_t`` (B, C, h, w) at integer timestep ``t``."""


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
