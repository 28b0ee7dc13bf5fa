"""Colour correction of restored faces against a colour-faithful reference (the backbone estimate).

The VQGAN decoder of a briefly trained model shifts colours (hue and saturation of skin, tinted grey
photos); the L2 backbone's colours are faithful but its detail is soft. ``wavelet_color_fix`` keeps
the restored image's high frequencies and takes the low frequencies from the reference: with an
a-trous (dilated) blur pyramid, ``out = image - low(image) + low(reference)``.

The decoder also drops colours finer than that layer (blue irises come back brown). ``chroma_color_fix``
keeps only the luma of the wavelet-fixed image and takes all of the reference's chroma: detail lives in
luma, and the eye is far less sensitive to soft chroma than to soft luma (the reason for chroma
subsampling in JPEG and video).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601


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


def chroma_color_fix(images: Tensor, reference: Tensor, levels: int = 5) -> Tensor:
    """The luma of ``wavelet_color_fix(images, reference)`` with the chroma (Cb, Cr) of ``reference``.

    Adding one value to R, G and B moves Y by that value and leaves Cb and Cr unchanged (the BT.601
    luma weights sum to 1), so ``reference + (Y(fixed) - Y(reference))`` has exactly that luma and
    that chroma.
    """
    reference = reference.to(images.dtype)
    fixed = wavelet_color_fix(images, reference, levels)
    return reference + (luma(fixed) - luma(reference))


def luma(images: Tensor) -> Tensor:
    """BT.601 luma (B, 1, H, W) of RGB ``images`` (B, 3, H, W), in their own range."""
    weights = torch.tensor(LUMA_WEIGHTS, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


COLOR_FIX_FUNCTIONS = {"wavelet": wavelet_color_fix, "chroma": chroma_color_fix}
COLOR_FIXES = (*COLOR_FIX_FUNCTIONS, "none")
