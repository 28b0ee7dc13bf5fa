"""Similarity transforms between 5-point face templates and batched, differentiable warps.

Every 2x3 matrix here maps source pixel coordinates (x, y) to destination pixel coordinates, the
convention of ``cv2.warpAffine``; ``warp_affine`` inverts it internally for sampling.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Five landmarks, (x, y) in pixels: left eye, right eye, nose tip, left mouth corner, right mouth
# corner ("left" as seen in the image). FFHQ-style 512 template, as used by GFPGAN and CodeFormer.
FFHQ_512 = np.array(
    [[192.98138, 239.94708], [318.90277, 240.19360], [256.63416, 314.01935],
     [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float64,
)
# ArcFace 112x112 template: the input framing of SFace and most recognition networks.
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
     [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64,
)


def scale_template(template: np.ndarray, from_size: int, to_size: int) -> np.ndarray:
    return np.asarray(template, dtype=np.float64) * (to_size / from_size)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking ``src`` to ``dst``.

    Umeyama's closed form, restricted to proper rotations. Returns a 2x3 matrix.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rotation = u @ np.diag(d) @ vt
    scale = (s * d).sum() / src_c.var(0).sum()
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def _pixel_to_normalized(size_hw: tuple[int, int]) -> np.ndarray:
    """3x3 map from pixel coordinates (pixel centres at integers) to grid_sample's [-1, 1]."""
    h, w = size_hw
    return np.array([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]])


def warp_affine(
    images: torch.Tensor,
    matrices: np.ndarray | torch.Tensor,
    out_size: tuple[int, int],
    mode: str = "bilinear",
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Warp ``images`` (B, C, H, W) by source->destination pixel matrices (B, 2, 3) or (2, 3).

    Differentiable in the images; equivalent to ``cv2.warpAffine`` with the same matrix.
    """
    b, _, h, w = images.shape
    m = torch.as_tensor(matrices, dtype=torch.float64)
    if m.ndim == 2:
        m = m.expand(b, 2, 3)
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(m.shape[0], 1, 3)
    full = torch.cat([m, bottom], dim=1)
    out_to_src = torch.linalg.inv(full)
    to_norm_src = torch.as_tensor(_pixel_to_normalized((h, w)))
    from_norm_out = torch.linalg.inv(torch.as_tensor(_pixel_to_normalized(out_size)))
    theta = (to_norm_src @ out_to_src @ from_norm_out)[:, :2]
    grid = F.affine_grid(theta.to(images.device, torch.float32), [b, images.shape[1], *out_size],
                         align_corners=False)
    return F.grid_sample(images, grid.to(images.dtype), mode=mode, padding_mode=padding_mode,
                         align_corners=False)


def template_to_template(src_template: np.ndarray, dst_template: np.ndarray) -> np.ndarray:
    """Matrix that re-frames a face aligned to ``src_template`` into ``dst_template``'s framing."""
    return similarity_transform(src_template, dst_template)
