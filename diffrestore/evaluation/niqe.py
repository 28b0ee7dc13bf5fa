"""NIQE: the Natural Image Quality Evaluator of Mittal, Soundararajan and Bovik (IEEE SPL 2013).

A no-reference score: the distance between a multivariate Gaussian (MVG) fitted to natural-scene
statistics of the image's patches and an MVG fitted to the same statistics of pristine images.
Lower is better (closer to the pristine model). The algorithm, as published:

1. Grey image (here BT.601 luma, 0-255). MSCN coefficients ``(I - mu) / (sigma + 1)`` with ``mu`` and
   ``sigma`` the local mean and standard deviation under a 7x7 Gaussian window (sigma 7/6), borders
   replicated.
2. The image is cut into ``96 x 96`` patches (the remainder at the right and bottom dropped). Per patch,
   18 features: an asymmetric generalised Gaussian (AGGD) fit of the MSCN coefficients (shape, mean
   variance), and AGGD fits (shape, mean, left and right variance) of the products of each coefficient
   with its right, lower, lower-right and lower-left neighbour.
3. The same at half resolution (bicubic, antialiased) with ``48 x 48`` patches: 36 features per patch.
4. Pristine model: the features of the sharpest patches of every pristine image (patches whose summed
   ``sigma`` exceeds 0.75 of the image's sharpest patch), pooled over the images: mean and covariance.
5. Score of an image: the MVG of ALL its patches, ``sqrt((m1 - m2)^T ((S1 + S2) / 2)^+ (m1 - m2))``.

The pristine model shipped in ``diffrestore/niqe_celebahq512.json`` is fitted on the project's own HQ
faces (``diffrestore-niqe-fit``), not on the 125 natural images of the paper: scores are comparable
with each other, not with published NIQE values (see docs/evaluation.md).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..io import list_images, load_image, pil_to_tensor
from ..measures import gaussian_taps, rgb_to_y

PATCH_SIZE = 96
SHARPNESS_THRESHOLD = 0.75
WINDOW_SIZE, WINDOW_SIGMA = 7, 7 / 6
FEATURES_PER_SCALE = 18
DEFAULT_MODEL_FILE = Path(__file__).parent / "niqe_celebahq512.json"
_SHAPE_GRID = np.arange(0.2, 10.0005, 0.001)
# the four neighbour offsets (row, column) of the paired products: horizontal, vertical, two diagonals
_NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _shape_ratio(shape: np.ndarray) -> np.ndarray:
    """``Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))``, via log-gamma (no overflow at small shapes)."""
    lg = np.vectorize(math.lgamma)
    return np.exp(2 * lg(2 / shape) - lg(1 / shape) - lg(3 / shape))


_RATIO_GRID = _shape_ratio(_SHAPE_GRID)


def fit_aggd(samples: np.ndarray) -> np.ndarray:
    """Moment-matching AGGD fit of each row of ``samples`` (N, M): ``(shape, mean, left variance,
    right variance)`` per row, shape (N, 4). The shape is searched on the grid 0.2:0.001:10."""
    x = np.asarray(samples, dtype=np.float64)
    neg, pos = x < 0, x > 0
    left = np.sqrt((np.where(neg, x, 0) ** 2).sum(1) / np.maximum(neg.sum(1), 1))
    right = np.sqrt((np.where(pos, x, 0) ** 2).sum(1) / np.maximum(pos.sum(1), 1))
    gamma_hat = left / np.maximum(right, 1e-12)
    r_hat = np.abs(x).mean(1) ** 2 / np.maximum((x**2).mean(1), 1e-12)
    r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    shape = _SHAPE_GRID[np.abs(_RATIO_GRID[None, :] - r_norm[:, None]).argmin(1)]
    lg = np.vectorize(math.lgamma)
    scale = np.exp(0.5 * (lg(1 / shape) - lg(3 / shape)))
    mean = (right - left) * scale * np.exp(lg(2 / shape) - lg(1 / shape))
    return np.stack([shape, mean, left**2, right**2], 1)


def mscn(grey: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MSCN coefficients and local standard deviation of a (1, 1, H, W) float64 grey image."""
    pad = WINDOW_SIZE // 2
    taps = gaussian_taps(WINDOW_SIZE, WINDOW_SIGMA)
    rows, cols = taps.view(1, 1, WINDOW_SIZE, 1), taps.view(1, 1, 1, WINDOW_SIZE)

    def local_mean(t: torch.Tensor) -> torch.Tensor:  # the 2-D Gaussian as two 1-D passes
        return F.conv2d(F.conv2d(F.pad(t, (pad,) * 4, mode="replicate"), rows), cols)

    mu = local_mean(grey)
    sigma = (local_mean(grey * grey) - mu * mu).abs().sqrt()
    return (grey - mu) / (sigma + 1), sigma


def _patches(t: torch.Tensor, size: int) -> np.ndarray:
    """Non-overlapping ``size`` x ``size`` patches of (H, W), row-major: (P, size * size)."""
    rows, cols = t.shape[0] // size, t.shape[1] // size
    blocks = t[:rows * size, :cols * size].reshape(rows, size, cols, size).permute(0, 2, 1, 3)
    return blocks.reshape(rows * cols, size * size).numpy()


def _neighbour_products(coeffs: torch.Tensor, size: int) -> list[np.ndarray]:
    """Per patch, the products of each coefficient with its four neighbours; the image is shifted as a
    whole (circularly, as the published code does), so neighbours cross patch borders."""
    out = []
    for dy, dx in _NEIGHBOURS:
        shifted = torch.roll(coeffs, shifts=(-dy, -dx), dims=(0, 1))
        out.append(_patches(coeffs * shifted, size))
    return out


def scale_features(grey: torch.Tensor, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The 18 features of every ``size`` patch of a (1, 1, H, W) grey image, (P, 18), and each patch's
    sharpness (summed local standard deviation), (P,)."""
    coeffs, sigma = mscn(grey)
    coeffs, sigma = coeffs[0, 0], sigma[0, 0]
    own = fit_aggd(_patches(coeffs, size))
    feats = [own[:, [0]], ((own[:, 2] + own[:, 3]) / 2)[:, None]]
    feats += [fit_aggd(products) for products in _neighbour_products(coeffs, size)]
    return np.concatenate(feats, 1), _patches(sigma, size).sum(1)


def image_features(image: torch.Tensor, patch_size: int = PATCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Features (P, 36) of all patches of one [-1, 1] RGB image (3, H, W) or (1, 3, H, W), and the
    sharpness (P,) of each patch at full resolution."""
    grey = rgb_to_y(image if image.ndim == 4 else image[None])
    h, w = grey.shape[-2:]
    if min(h, w) < 2 * patch_size:
        raise ValueError(f"NIQE needs images of at least {2 * patch_size} px a side (2x2 patches of {patch_size}), "
                         f"got {w}x{h}")
    full, sharpness = scale_features(grey, patch_size)
    half_grey = F.interpolate(grey, scale_factor=0.5, mode="bicubic", align_corners=False, antialias=True)
    half, _ = scale_features(half_grey, patch_size // 2)
    return np.concatenate([full, half], 1), sharpness


def _mvg(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    finite = features[np.isfinite(features).all(1)]
    return finite.mean(0), np.cov(finite, rowvar=False)


@dataclass
class NIQEModel:
    """A pristine MVG: ``mean`` (36,), ``cov`` (36, 36), and how it was fitted (``provenance``)."""

    mean: np.ndarray
    cov: np.ndarray
    patch_size: int = PATCH_SIZE
    provenance: dict | None = None

    def score(self, image: torch.Tensor) -> float:
        """NIQE of one [-1, 1] RGB image: lower is closer to the pristine model."""
        feats, _ = image_features(image, self.patch_size)
        mean, cov = _mvg(feats)
        diff = self.mean - mean
        return float(np.sqrt(diff @ np.linalg.pinv((self.cov + cov) / 2) @ diff))

    def save(self, path: str | Path) -> None:
        payload = {"patch_size": self.patch_size, "mean": self.mean.tolist(), "cov": self.cov.tolist(),
                   "provenance": self.provenance or {}}
        Path(path).write_text(json.dumps(payload, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path = DEFAULT_MODEL_FILE) -> "NIQEModel":
        try:
            payload = json.loads(Path(path).read_text())
            return cls(np.asarray(payload["mean"], np.float64), np.asarray(payload["cov"], np.float64),
                       int(payload["patch_size"]), payload.get("provenance"))
        except (OSError, KeyError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a NIQE model file ({err})") from err


def pristine_features(image: torch.Tensor, patch_size: int = PATCH_SIZE) -> np.ndarray:
    """The features of an image's sharp patches (sharpness above 0.75 of its sharpest patch's)."""
    feats, sharpness = image_features(image, patch_size)
    return feats[sharpness > SHARPNESS_THRESHOLD * sharpness.max()]


def fit_pristine_model(images: Iterable[torch.Tensor], patch_size: int = PATCH_SIZE,
                       provenance: dict | None = None) -> NIQEModel:
    """The pristine MVG of the sharp patches of ``images`` (each a [-1, 1] RGB tensor)."""
    feats = np.concatenate([pristine_features(image, patch_size) for image in images])
    mean, cov = _mvg(feats)
    info = dict(provenance or {}, n_patches=int(len(feats)))
    return NIQEModel(mean, cov, patch_size, info)


def niqe(image: torch.Tensor, model: NIQEModel | None = None) -> float:
    """NIQE of one [-1, 1] RGB image under ``model`` (default: the shipped CelebA-HQ 512 model)."""
    return (model or default_model()).score(image)


_DEFAULT: NIQEModel | None = None


def default_model() -> NIQEModel:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = NIQEModel.load(DEFAULT_MODEL_FILE)
    return _DEFAULT


# ------------------------------------------------------------------------------------------------
# fitting from the command line


def _every_nth(paths: Sequence[Path], limit: int | None) -> list[Path]:
    if limit is None or limit >= len(paths):
        return list(paths)
    step = len(paths) / limit
    return [paths[int(i * step)] for i in range(limit)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog="diffrestore-niqe-fit",
                                     description="Fit NIQE's pristine model on a folder of HQ images.")
    parser.add_argument("--hq", type=Path, required=True, help="folder of pristine (HQ) images")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write the model to")
    parser.add_argument("--limit", type=int, help="use N images, evenly spaced over the sorted folder")
    parser.add_argument("--patch-size", type=int, default=PATCH_SIZE)
    args = parser.parse_args(argv)
    paths = _every_nth(list_images(args.hq, recursive=False), args.limit)
    if not paths:
        print(f"diffrestore-niqe-fit: error: {args.hq}: no images found", file=sys.stderr)
        return 2
    import diffrestore

    provenance = {"source": str(args.hq), "n_images": len(paths), "selection": "evenly spaced over sorted names",
                  "sharpness_threshold": SHARPNESS_THRESHOLD, "grey": "BT.601 studio-range luma",
                  "tool": f"diffrestore-niqe-fit {diffrestore.__version__}", "torch": torch.__version__,
                  "numpy": np.__version__}
    model = fit_pristine_model((pil_to_tensor(load_image(p)) for p in paths), args.patch_size, provenance)
    model.save(args.out)
    print(f"{args.out}: pristine model from {len(paths)} images, {model.provenance['n_patches']} patches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
