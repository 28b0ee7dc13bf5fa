"""Pixel measures of image tensors shared by training (losses, validation) and evaluation.

Every function takes the project's image tensors (float, RGB, in [-1, 1], ``(B, 3, H, W)``) and returns
one value per image, ``(B,)``; the conventions (BT.601 Y in studio range, Gaussian-window SSIM) are
written out in ``diffrestore.evaluation.metrics``. Also the offline checks of weights that are never
downloaded (``hub_checkpoint``, ``lpips_unavailable_reason``).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
import torch.nn.functional as F

PEAK = 255.0
BT601_Y = (65.481, 128.553, 24.966)
COLOR_SPACES = ("y", "rgb")


def to_255(images: torch.Tensor) -> torch.Tensor:
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
    return (images.double().clamp(-1, 1) + 1) * 127.5


def rgb_to_y(images: torch.Tensor) -> torch.Tensor:
    """BT.601 studio-range luma of [-1, 1] RGB images: (B, 1, H, W) in [16, 235]."""
    rgb = to_255(images) / 255.0
    weights = torch.tensor(BT601_Y, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return 16.0 + (rgb * weights).sum(1, keepdim=True)


def _channels(images: torch.Tensor, color: str) -> torch.Tensor:
    if color == "y":
        return rgb_to_y(images)
    if color == "rgb":
        return to_255(images)
    raise ValueError(f"color must be one of {COLOR_SPACES}, got {color!r}")


def check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images to compare differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")


def _crop(x: torch.Tensor, border: int) -> torch.Tensor:
    return x[..., border:-border, border:-border] if border > 0 else x


def psnr(a: torch.Tensor, b: torch.Tensor, color: str = "y", crop_border: int = 0) -> torch.Tensor:
    """PSNR in dB per image (see the module docstring for the colour convention)."""
    check_pair(a, b)
    x, y = _crop(_channels(a, color), crop_border), _crop(_channels(b, color), crop_border)
    mse = (x - y).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(PEAK**2 / mse)).float()


def gaussian_taps(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The normalised 1-D Gaussian whose outer product is ``gaussian_window``."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = gaussian_taps(size, sigma)
    return torch.outer(g, g)


def ssim(a: torch.Tensor, b: torch.Tensor, color: str = "y", crop_border: int = 0,
         window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """SSIM per image: Gaussian window, valid positions only, mean over channels."""
    check_pair(a, b)
    x, y = _crop(_channels(a, color), crop_border), _crop(_channels(b, color), crop_border)
    channels = x.shape[1]
    if min(x.shape[-2:]) < window_size:
        raise ValueError(f"images of {tuple(x.shape[-2:])} px are smaller than the {window_size}px SSIM window")
    taps = gaussian_taps(window_size, sigma).to(x.device)
    rows = taps.view(1, 1, window_size, 1).expand(channels, 1, window_size, 1)
    cols = taps.view(1, 1, 1, window_size).expand(channels, 1, 1, window_size)

    def blur(t: torch.Tensor) -> torch.Tensor:  # the separable Gaussian window as two 1-D passes
        return F.conv2d(F.conv2d(t, rows, groups=channels), cols, groups=channels)

    c1, c2 = (0.01 * PEAK) ** 2, (0.03 * PEAK) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1).float()


LAPLACIAN_3X3 = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)


def laplacian_variance(images: torch.Tensor) -> torch.Tensor:
    """No-reference sharpness: variance of the 3x3 Laplacian of the BT.601 Y channel (0-255)."""
    y = rgb_to_y(images)
    lap = F.conv2d(y, LAPLACIAN_3X3.to(y.device).view(1, 1, 3, 3))
    return lap.flatten(1).var(1, unbiased=False).float()


def hub_checkpoint(filename: str) -> Path:
    """Where torch.hub keeps the checkpoint ``filename`` (it is looked for there, never downloaded)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


ALEXNET_FILE = "alexnet-owt-7be5be79.pth"


def offline_unavailable_reason(name: str, module: str, package: str, weights: str, what: str) -> str | None:
    """None when the metric ``name`` can run offline (``module`` importable, the checkpoint ``weights`` in the
    torch hub cache), otherwise why not; ``what`` says whose weights they are."""
    try:
        importlib.import_module(module)
    except ImportError:
        return f"{name} skipped: the '{package}' package is not installed (pip install {package})"
    path = hub_checkpoint(weights)
    if not path.is_file():
        return (f"{name} skipped: {what} weights not found at {path} "
                f"(they are never downloaded here; place the file there to enable {name})")
    return None


def lpips_unavailable_reason() -> str | None:
    """None when LPIPS (AlexNet) can run offline, otherwise why not."""
    return offline_unavailable_reason("LPIPS", "lpips", "lpips", ALEXNET_FILE, "AlexNet ImageNet")
