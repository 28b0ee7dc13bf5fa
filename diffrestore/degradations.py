"""Synthetic degradation model of GFPGAN / CodeFormer: blur, down-sample, noise, JPEG, resize back."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from typing import List

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .colorfix import luma


@dataclass
class DegradationConfig:
    """Ranges as the papers give them for ``range_resolution`` px faces; blur and down-sampling
    ranges are scaled to the model's resolution, noise (0-255 units) and JPEG quality are not."""

    range_resolution: int = 512
    blur_sigma: List[float] = field(default_factory=lambda: [0.1, 15.0])
    blur_kernel_size: int = 41
    anisotropic_prob: float = 0.5
    downsample: List[float] = field(default_factory=lambda: [1.0, 30.0])
    noise: List[float] = field(default_factory=lambda: [0.0, 20.0])
    jpeg_quality: List[int] = field(default_factory=lambda: [30, 90])
    color_jitter_prob: float = 0.0
    color_jitter_shift: float = 20.0
    grayscale_prob: float = 0.0


@dataclass
class DegradationParams:
    """One draw of the degradation model; ``to_dict`` is what a test-set manifest records."""

    sigma_x: float
    sigma_y: float
    theta: float
    kernel_size: int
    scale: float
    noise: float
    jpeg_quality: int
    noise_seed: int = 0
    grayscale: bool = False
    color_shift: List[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])

    def to_dict(self) -> dict:
        return asdict(self)


def _scaled(bounds: List[float], factor: float, floor: float) -> tuple[float, float]:
    return max(bounds[0] * factor, floor), max(bounds[1] * factor, floor)


def sample_params(cfg: DegradationConfig, resolution: int, rng: np.random.Generator) -> DegradationParams:
    """Draw parameters; blur and down-sampling ranges are scaled from ``cfg.range_resolution``."""
    factor = resolution / cfg.range_resolution
    sigma_lo, sigma_hi = _scaled(cfg.blur_sigma, factor, 0.05)
    sigma_x = float(rng.uniform(sigma_lo, sigma_hi))
    anisotropic = rng.random() < cfg.anisotropic_prob
    sigma_y = float(rng.uniform(sigma_lo, sigma_hi)) if anisotropic else sigma_x
    theta = float(rng.uniform(0, np.pi)) if anisotropic else 0.0
    kernel_size = max(3, int(round(cfg.blur_kernel_size * factor)) | 1)
    scale = float(rng.uniform(*_scaled(cfg.downsample, factor, 1.0)))
    noise = float(rng.uniform(*cfg.noise))
    quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    grayscale = bool(rng.random() < cfg.grayscale_prob)
    shift = (rng.uniform(-cfg.color_jitter_shift, cfg.color_jitter_shift, 3).tolist()
             if rng.random() < cfg.color_jitter_prob else [0.0, 0.0, 0.0])
    noise_seed = int(rng.integers(2**31))
    return DegradationParams(sigma_x, sigma_y, theta, kernel_size, scale, noise, quality, noise_seed,
                             grayscale, shift)


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float) -> torch.Tensor:
    """A normalised (size, size) Gaussian, rotated by ``theta`` (anisotropic when sigmas differ)."""
    half = (size - 1) / 2
    coords = torch.arange(size, dtype=torch.float64) - half
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    cos, sin = np.cos(theta), np.sin(theta)
    u, v = cos * x + sin * y, -sin * x + cos * y
    kernel = torch.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return (kernel / kernel.sum()).float()


def blur(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve each channel of (C, H, W) with ``kernel`` (odd size), reflecting at the borders.

    Through the FFT: the papers' 41 px kernel at 512 px is ten times faster than ``conv2d`` on the
    one thread a data-loader worker has, and no slower on small kernels.
    """
    size = kernel.shape[-1]
    pad = size // 2
    padded = F.pad(image[None], (pad, pad, pad, pad), mode="reflect")[0]
    h, w = padded.shape[-2:]
    spectrum = torch.fft.rfft2(padded) * torch.fft.rfft2(kernel.to(image).flip(0, 1), s=(h, w))
    return torch.fft.irfft2(spectrum, s=(h, w))[:, size - 1:, size - 1:]


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(image[None], size=size, mode="bicubic", align_corners=False, antialias=True)[0]


def jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    pixels = ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    decoded = np.asarray(Image.open(buffer).convert("RGB"))
    return torch.from_numpy(decoded.copy()).permute(2, 0, 1).to(image.dtype) / 127.5 - 1


def degrade(image: torch.Tensor, params: DegradationParams) -> torch.Tensor:
    """Blur, down-sample by ``scale``, add noise, JPEG, resize back, shift colours, make grey:
    (3, H, W) in [-1, 1] to the same shape.

    The noise comes from ``params.noise_seed``, so the result is a pure function of ``(image, params)``.
    """
    h, w = image.shape[-2:]
    out = blur(image.float(), gaussian_kernel(params.kernel_size, params.sigma_x, params.sigma_y, params.theta))
    small = (max(1, round(h / params.scale)), max(1, round(w / params.scale)))
    out = resize(out, small)
    if params.noise > 0:
        noise = torch.randn(out.shape, generator=torch.Generator().manual_seed(params.noise_seed))
        out = out + noise * (2 * params.noise / 255)
    out = jpeg(out, params.jpeg_quality)
    out = resize(out, (h, w))
    out = out + torch.tensor(params.color_shift, dtype=out.dtype)[:, None, None] * (2 / 255)
    if params.grayscale:  # after the colour shift, as GFPGAN does: a grey face stays grey
        out = luma(out[None])[0].expand(3, h, w)
    return out.clamp(-1, 1).to(image.dtype)
