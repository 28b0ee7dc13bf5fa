"""Synthetic degradation model of GFPGAN / CodeFormer: blur, down-sample, noise, JPEG, resize back.

Two implementations of one model: ``degrade`` takes one image and one ``DegradationParams`` (the CPU
data loaders, the test sets); ``degrade_batch`` takes a batch and a ``DegradationBatch`` of per-image
parameters and runs on any device (training on the GPU). ``sample_params`` and ``sample_batch`` draw
from the same distribution (``_Ranges``). The batched path resizes through precomputed matrices (the
same antialiased bicubic operators as ``F.interpolate``) and compresses with ``diffrestore.jpeg``.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import List

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from . import jpeg as torch_jpeg
from ..pipeline.colorfix import luma


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


@dataclass(frozen=True)
class _Ranges:
    """The ranges of ``cfg`` at ``resolution``: the one place where they are scaled."""

    sigma: tuple[float, float]
    kernel_size: int
    scale: tuple[float, float]

    @classmethod
    def of(cls, cfg: DegradationConfig, resolution: int) -> "_Ranges":
        factor = resolution / cfg.range_resolution
        return cls(_scaled(cfg.blur_sigma, factor, 0.05), max(3, int(round(cfg.blur_kernel_size * factor)) | 1),
                   _scaled(cfg.downsample, factor, 1.0))


def sample_params(cfg: DegradationConfig, resolution: int, rng: np.random.Generator) -> DegradationParams:
    """Draw parameters; blur and down-sampling ranges are scaled from ``cfg.range_resolution``."""
    ranges = _Ranges.of(cfg, resolution)
    sigma_x = float(rng.uniform(*ranges.sigma))
    anisotropic = rng.random() < cfg.anisotropic_prob
    sigma_y = float(rng.uniform(*ranges.sigma)) if anisotropic else sigma_x
    theta = float(rng.uniform(0, np.pi)) if anisotropic else 0.0
    scale = float(rng.uniform(*ranges.scale))
    noise = float(rng.uniform(*cfg.noise))
    quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    grayscale = bool(rng.random() < cfg.grayscale_prob)
    shift = (rng.uniform(-cfg.color_jitter_shift, cfg.color_jitter_shift, 3).tolist()
             if rng.random() < cfg.color_jitter_prob else [0.0, 0.0, 0.0])
    noise_seed = int(rng.integers(2**31))
    return DegradationParams(sigma_x, sigma_y, theta, ranges.kernel_size, scale, noise, quality, noise_seed,
                             grayscale, shift)


@dataclass
class DegradationBatch:
    """Per-image parameters of a batch, as tensors of length B on one device (``kernel_size`` is shared)."""

    sigma_x: Tensor
    sigma_y: Tensor
    theta: Tensor
    kernel_size: int
    scale: Tensor
    noise: Tensor
    jpeg_quality: Tensor
    grayscale: Tensor
    color_shift: Tensor  # (B, 3), 0-255 units

    @classmethod
    def stack(cls, params: List[DegradationParams], device: torch.device | str = "cpu") -> "DegradationBatch":
        """The batch of the single-image draws ``params`` (their noise seeds are not used)."""
        if len({p.kernel_size for p in params}) != 1:
            raise ValueError("a DegradationBatch shares one kernel size")

        def column(name: str, dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.tensor([getattr(p, name) for p in params], dtype=dtype, device=device)

        return cls(column("sigma_x"), column("sigma_y"), column("theta"), params[0].kernel_size, column("scale"),
                   column("noise"), column("jpeg_quality", torch.long), column("grayscale", torch.bool),
                   column("color_shift"))


def sample_batch(cfg: DegradationConfig, resolution: int, n: int, generator: torch.Generator) -> DegradationBatch:
    """``n`` draws from the distribution of :func:`sample_params`, on ``generator``'s device."""
    ranges = _Ranges.of(cfg, resolution)
    device = generator.device

    def uniform(low: float, high: float, *shape: int) -> Tensor:
        return low + (high - low) * torch.rand(n, *shape, generator=generator, device=device)

    def chance(p: float) -> Tensor:
        return torch.rand(n, generator=generator, device=device) < p

    sigma_x, sigma_other = uniform(*ranges.sigma), uniform(*ranges.sigma)
    anisotropic = chance(cfg.anisotropic_prob)
    sigma_y = torch.where(anisotropic, sigma_other, sigma_x)
    theta = torch.where(anisotropic, uniform(0.0, np.pi), torch.zeros_like(sigma_x))
    scale = uniform(*ranges.scale)
    noise = uniform(*cfg.noise)
    quality = torch.randint(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1, (n,), generator=generator, device=device)
    grayscale = chance(cfg.grayscale_prob)
    shift = uniform(-cfg.color_jitter_shift, cfg.color_jitter_shift, 3) * chance(cfg.color_jitter_prob)[:, None]
    return DegradationBatch(sigma_x, sigma_y, theta, ranges.kernel_size, scale, noise, quality, grayscale, shift)


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float) -> torch.Tensor:
    """A normalised (size, size) Gaussian, rotated by ``theta`` (anisotropic when sigmas differ)."""
    return gaussian_kernels(size, *(torch.tensor([v], dtype=torch.float64) for v in (sigma_x, sigma_y, theta)))[0]


def gaussian_kernels(size: int, sigma_x: Tensor, sigma_y: Tensor, theta: Tensor) -> Tensor:
    """(B, size, size) normalised Gaussians, one per entry of the (B,) parameter tensors."""
    device = sigma_x.device
    half = (size - 1) / 2
    coords = torch.arange(size, dtype=torch.float64, device=device) - half
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    sx, sy, th = (v.to(torch.float64)[:, None, None] for v in (sigma_x, sigma_y, theta))
    cos, sin = torch.cos(th), torch.sin(th)
    u, v = cos * x + sin * y, -sin * x + cos * y
    kernel = torch.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return (kernel / kernel.sum(dim=(-2, -1), keepdim=True)).float()


def blur(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve each channel of (C, H, W) with a (k, k) ``kernel``, or of (B, C, H, W) with one (B, k, k)
    kernel per image (k odd), reflecting at the borders.

    Through the FFT: the papers' 41 px kernel at 512 px is ten times faster than ``conv2d`` on the
    one thread a data-loader worker has, and no slower on small kernels.
    """
    batched = image.dim() == 4
    images = image if batched else image[None]
    kernels = (kernel if kernel.dim() == 3 else kernel[None])[:, None].to(images)
    size = kernels.shape[-1]
    pad = size // 2
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    h, w = padded.shape[-2:]
    spectrum = torch.fft.rfft2(padded) * torch.fft.rfft2(kernels.flip(-2, -1), s=(h, w))
    out = torch.fft.irfft2(spectrum, s=(h, w))[..., size - 1:, size - 1:]
    return out if batched else out[0]


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize of (C, H, W), or of (B, C, H, W)."""
    images = image if image.dim() == 4 else image[None]
    out = F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=True)
    return out if image.dim() == 4 else out[0]


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


@lru_cache(maxsize=4)
def _resize_bank(size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """For every side ``n`` in 1..size, the matrices of :func:`resize` from ``size`` to ``n`` and back,
    zero-padded to (size, size): ``down[n] @ x`` holds the n resized rows on top, ``up[n] @ y`` reads
    the top n rows of ``y``."""
    down = torch.zeros(size + 1, size, size)
    up = torch.zeros(size + 1, size, size)
    for n in range(1, size + 1):
        # Resizing the rows of an identity image gives the operator's matrix (the width is unchanged).
        # On the CPU: CUDA's antialiased kernel refuses large factors (shared memory).
        down[n, :n] = resize(torch.eye(size)[None], (n, size))[0]
        up[n, :, :n] = resize(torch.eye(n)[None], (size, n))[0]
    down, up = down.to(device), up.to(device)
    return down, up


def _separable(matrices: Tensor, images: Tensor) -> Tensor:
    """``M_b @ image_b @ M_b^T`` for every image b and channel."""
    m = matrices[:, None]
    return m @ images @ m.transpose(-1, -2)


def _replicate_beyond(images: Tensor, sides: Tensor) -> Tensor:
    """Rows and columns at or past each image's ``side`` copied from its last row / column (how an
    encoder extends an image to whole blocks)."""
    size = images.shape[-1]
    index = torch.minimum(torch.arange(size, device=images.device)[None], sides[:, None] - 1)  # (B, size)
    rows = index[:, None, :, None].expand(-1, images.shape[1], -1, size)
    images = images.gather(2, rows)
    return images.gather(3, index[:, None, None, :].expand(-1, images.shape[1], size, -1))


def degrade_batch(images: Tensor, params: DegradationBatch, noise: Tensor | None = None,
                  generator: torch.Generator | None = None) -> Tensor:
    """:func:`degrade` for a batch of square images (B, 3, S, S) in [-1, 1], each with its own parameters.

    Each down-sampled image sits in the top-left corner of an S x S canvas, extended by replication,
    so that every operation stays one batched tensor operation. ``noise`` (B, 3, S, S), standard
    normal, is read in each canvas's top-left corner; without it, it is drawn from ``generator``.
    """
    b, _, size, width = images.shape
    if size != width:
        raise ValueError(f"degrade_batch takes square images, got {size}x{width}")
    down, up = _resize_bank(size, images.device)
    sides = torch.round(size / params.scale).long().clamp(1, size)
    kernels = gaussian_kernels(params.kernel_size, params.sigma_x, params.sigma_y, params.theta)
    out = _separable(down[sides], blur(images.float(), kernels))
    if noise is None:
        noise = torch.randn(out.shape, generator=generator, device=out.device)
    out = out + noise * (2 * params.noise / 255)[:, None, None, None]
    out = _replicate_beyond(out, sides)
    pixels = ((out.clamp(-1, 1) + 1) * 127.5).round()
    out = torch_jpeg.jpeg(pixels, params.jpeg_quality) / 127.5 - 1
    out = _separable(up[sides], out)
    out = out + params.color_shift[:, :, None, None] * (2 / 255)
    grey = luma(out).expand_as(out)
    out = torch.where(params.grayscale[:, None, None, None], grey, out)
    return out.clamp(-1, 1).to(images.dtype)
