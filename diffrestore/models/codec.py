"""The latent codec: images <-> the scaled continuous latents that diffusion runs on.

``LatentCodec(vqgan)`` owns everything the rest of the project knows about the autoencoder's latent
space: ``encode`` gives ``E(x) * scaling_factor`` (before quantization); ``decode`` divides by the factor
and decodes, quantizing unless ``quantize=False`` (differentiable: identity guidance and the mask
stage); ``shape_of`` / ``latent_shape`` give (channels, h, w) from the autoencoder's config; ``AUTOENCODER``
is its class, which the builder, the loaders and ``diffrestore-assemble`` use. The pipeline, the training
stages, the builders and the metrics all go through this module, so another autoencoder is a change here
(and a training stage for it), nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from diffusers import VQModel
from torch import Tensor


AUTOENCODER = VQModel
"""The class of the pipeline's autoencoder component (``vqgan``): what is built, saved and loaded."""


def load_autoencoder(folder: str | Path, **kwargs) -> VQModel:
    """The autoencoder saved in ``folder`` (``from_pretrained``'s keyword arguments pass through)."""
    return AUTOENCODER.from_pretrained(str(folder), **kwargs)


class LatentCodec:
    """Images in [-1, 1] <-> scaled latents of ``autoencoder`` (a ``diffusers.VQModel``)."""

    def __init__(self, autoencoder: VQModel) -> None:
        self.autoencoder = autoencoder

    @staticmethod
    def shape_of(config: Mapping, resolution: int) -> tuple[int, int, int]:
        """(channels, h, w) of the latents of ``resolution``-px images, from an autoencoder config (the
        VQModel's own, or the ``vqgan`` entry of a model config)."""
        factor = 2 ** (len(config["block_out_channels"]) - 1)
        channels = config.get("vq_embed_dim") or config["latent_channels"]
        return channels, resolution // factor, resolution // factor

    def latent_shape(self, resolution: int) -> tuple[int, int, int]:
        return self.shape_of(self.autoencoder.config, resolution)

    @property
    def scaling_factor(self) -> float:
        return float(self.autoencoder.config.scaling_factor)

    def encode(self, images: Tensor) -> Tensor:
        """Images in [-1, 1] (B, 3, H, W) -> scaled continuous latents, float32."""
        vqgan = self.autoencoder
        latents = vqgan.encode(images.to(vqgan.device, vqgan.dtype)).latents
        return latents.float() * self.scaling_factor

    def decode(self, latents: Tensor, quantize: bool = True) -> Tensor:
        """Scaled latents -> images (float32, not clamped); ``quantize=False`` keeps it differentiable."""
        vqgan = self.autoencoder
        unscaled = (latents / self.scaling_factor).to(vqgan.dtype)
        return vqgan.decode(unscaled, force_not_quantize=not quantize).sample.float()
