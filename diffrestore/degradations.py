"""Synthetic degradation model of GFPGAN / CodeFormer: blur, down-sample, noise, JPEG, resize back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List


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
