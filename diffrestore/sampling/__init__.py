"""Reverse-diffusion sampling: small functions of models, latents and a schedule (no I/O).

A *sampler* is the algorithm (``SAMPLERS``: ``difface``, DifFace posterior sampling, with CLR-Face's
identity guidance as an option; ``prior``, the same chain from pure noise); a *scheduler* is the diffusers
update rule it steps with (``SCHEDULERS``: ddim, ddpm, dpm++, euler).
"""

from .difface import sample_difface, sample_prior
from .eps_model import EpsModel, unet_eps_model
from .guidance import IdentityGuidance, identity_gradient, identity_loss, is_active
from .registry import SAMPLERS, Sampler, StepCallback, register_sampler
from .schedulers import (SCHEDULERS, build_respaced_scheduler, chain_problems, check_scheduler, clean_latent,
                         noise_latent, respaced_timesteps)

__all__ = ["SAMPLERS", "SCHEDULERS", "EpsModel", "IdentityGuidance", "Sampler", "StepCallback",
           "build_respaced_scheduler", "chain_problems", "check_scheduler", "clean_latent", "identity_gradient",
           "identity_loss", "is_active", "noise_latent", "register_sampler", "respaced_timesteps", "sample_difface",
           "sample_prior", "unet_eps_model"]
