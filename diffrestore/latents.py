"""The latent codec: images <-> the scaled continuous VQGAN latents that diffusion runs on.

``encode_latents`` gives ``E(x) * scaling_factor`` (before quantization); ``decode_latents`` divides
by the factor and decodes, quantizing unless ``quantize=False`` (differentiable: identity guidance
and the mask stage). The pipeline, the training stages and the metrics all go through these two.
"""

from __future__ import annotations

from diffusers import VQModel
from torch import Tensor


def encode_latents(vqgan: VQModel, images: Tensor) -> Tensor:
    """Images in [-1, 1] (B, 3, H, W) -> scaled continuous latents, float32."""
    latents = vqgan.encode(images.to(vqgan.device, vqgan.dtype)).latents
    return latents.float() * vqgan.config.scaling_factor


def decode_latents(vqgan: VQModel, latents: Tensor, quantize: bool = True) -> Tensor:
    """Scaled latents -> images (float32, not clamped); ``quantize=False`` keeps it differentiable."""
    unscaled = (latents / vqgan.config.scaling_factor).to(vqgan.dtype)
    return vqgan.decode(unscaled, force_not_quantize=not quantize).sample.float()
