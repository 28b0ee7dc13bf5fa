"""Colour correction of restored faces against a colour-faithful reference (the backbone estimate).

The VQGAN decoder of a briefly trained model shifts colours (hue and saturation of skin, tinted grey
photos); the L2 backbone's colours are faithful but its detail is soft. ``wavelet_color_fix`` keeps
the restored image's high frequencies and takes the low frequencies from the reference: with an
a-trous (dilated) blur pyramid, ``out = image - low(image) + low(reference)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

COLOR_FIXES = ("wavelet", "none")


def _blur(images: Tensor, dilation: int) -> Tensor:
    """3x3 binomial blur with holes (a-trous), replicate padding."""
    kernel = torch.tensor([1.0, 2.0, 1.0], device=images.device, dtype=images.dtype)
    kernel = (kernel[:, None] * kernel[None, :]) / 16.0
    channels = images.shape[1]
    weight = kernel.expand(channels, 1, 3, 3)
    padded = F.pad(images, (dilation,) * 4, mode="replicate")
    return F.conv2d(padded, weight, groups=channels, dilation=dilation)


def low_frequency(images: Tensor, levels: int = 5) -> Tensor:
    """The residual after ``levels`` a-trous wavelet levels (dilations 1, 2, 4, ...): the colour layer."""
    for level in range(levels):
        images = _blur(images, 2 ** level)
    return images


def wavelet_color_fix(images: Tensor, reference: Tensor, levels: int = 5) -> Tensor:
    """``images`` with the low-frequency colour layer of ``reference`` (same shape, B x C x H x W)."""
    if images.shape != reference.shape:
        raise ValueError(f"images {tuple(images.shape)} and reference {tuple(reference.shape)} differ in shape")
    return images - low_frequency(images, levels) + low_frequency(reference.to(images.dtype), levels)
