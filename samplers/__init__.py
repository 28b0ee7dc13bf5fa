"""Reverse-diffusion samplers: small functions of models, latents and a schedule (no I/O)."""

from .difface import (SAMPLERS, EpsModel, StepCallback, build_respaced_scheduler, check_scheduler, difface_sample,
                      noise_latent, respaced_timesteps, unet_eps_model)
from .guidance import IdentityGuidance, identity_gradient, identity_loss, is_active

__all__ = ["SAMPLERS", "EpsModel", "StepCallback", "build_respaced_scheduler", "check_scheduler", "difface_sample",
           "noise_latent", "respaced_timesteps", "unet_eps_model", "IdentityGuidance", "identity_gradient",
           "identity_loss", "is_active"]
