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
    matrices = matrices.cpu().numpy() if isinstance(matrices, torch.Tensor) else np.asarray(matrices)
    theta = torch.from_numpy(_normalized_theta(matrices.astype(np.float64), (h, w), out_size))
    # the grid built from matmuls rather than affine_grid, which ONNX has only from opset 20
    out_h, out_w = out_size
    ys = (2 * torch.arange(out_h, device=images.device, dtype=torch.float32) + 1) / out_h - 1
    xs = (2 * torch.arange(out_w, device=images.device, dtype=torch.float32) + 1) / out_w - 1
    ys, xs = torch.meshgrid(ys, xs, indexing="ij")
    centres = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(1, -1, 3)  # output pixel centres
    grid = (centres @ theta.to(images.device, torch.float32).transpose(1, 2)).reshape(-1, out_h, out_w, 2)
    return F.grid_sample(images, grid.expand(b, -1, -1, -1).to(images.dtype), mode=mode, padding_mode=padding_mode,
                         align_corners=False)


def _normalized_theta(matrices: np.ndarray, src_size: tuple[int, int], out_size: tuple[int, int]) -> np.ndarray:
    """``affine_grid``'s theta (B or 1, 2, 3) for source->destination pixel ``matrices`` (B, 2, 3) or (2, 3),
    inverted in numpy (constants: an ONNX export sees no inverse)."""
    matrices = matrices.reshape(-1, 2, 3)
    bottom = np.broadcast_to(np.array([[0.0, 0.0, 1.0]]), (len(matrices), 1, 3))
    out_to_src = np.linalg.inv(np.concatenate([matrices, bottom], axis=1))
    return (_pixel_to_normalized(src_size) @ out_to_src @ np.linalg.inv(_pixel_to_normalized(out_size)))[:, :2]


def template_to_template(src_template: np.ndarray, dst_template: np.ndarray) -> np.ndarray:
    """Matrix that re-frames a face aligned to ``src_template`` into ``dst_template``'s framing."""
    return similarity_transform(src_template, dst_template)
