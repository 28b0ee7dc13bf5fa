"""The pipeline's image processor: what a caller passes in -> a face batch, and back.

In: a ``PIL.Image``, a numpy array (H, W, 3) or (B, H, W, 3), uint8 or float in [0, 1] (the diffusers
convention), a tensor (3, H, W) or (B, 3, H, W) in [-1, 1] (the project's), or a list of any of
these. Every face is resized to the model's square resolution (bicubic, antialiased when shrinking).
Out (``output_type``): ``pil`` (a list of RGB images), ``np`` (float32 (B, R, R, 3) in [0, 1]) or
``pt`` (float32 (B, 3, R, R) in [-1, 1]).
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..io import pil_to_tensor, tensor_to_pil

ImageInput = Union[Image.Image, np.ndarray, Tensor, Sequence[Union[Image.Image, np.ndarray, Tensor]]]
OUTPUT_TYPES = ("pil", "np", "pt")


def resize_face(image: Tensor, size: int | tuple[int, int]) -> Tensor:
    """(3, H, W) -> (3, size, size), or (3, height, width) for a pair, bicubic with antialiasing when
    shrinking."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(image.shape[-2:]) == size:
        return image
    shrink = image.shape[-2] > size[0] or image.shape[-1] > size[1]
    out = F.interpolate(image[None], size=size, mode="bicubic", align_corners=False, antialias=shrink)
    return out[0].clamp(-1, 1)


def to_face_batch(image: ImageInput, size: int) -> Tensor:
    """The ``image`` argument of a pipeline call -> (B, 3, size, size) float32 in [-1, 1]."""
    faces = [resize_face(face, size) for face in _faces(image)]
    if not faces:
        raise ValueError("image: an empty list; pass at least one face")
    return torch.stack(faces)


def from_face_batch(images: Tensor, output_type: str) -> list[Image.Image] | np.ndarray | Tensor:
    """(B, 3, R, R) in [-1, 1] -> the pipeline's output of ``output_type``."""
    if output_type == "pt":
        return images.float()
    if output_type == "np":
        return ((images.float().cpu().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()
    if output_type == "pil":
        return [tensor_to_pil(face) for face in images]
    raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")


def _faces(image: ImageInput) -> list[Tensor]:
    if isinstance(image, Image.Image):
        return [pil_to_tensor(image)]
    if isinstance(image, np.ndarray):
        return list(_array_to_tensor(image)) if image.ndim == 4 else [_array_to_tensor(image[None])[0]]
    if isinstance(image, Tensor):
        return list(_check_tensor(image)) if image.ndim == 4 else [_check_tensor(image[None])[0]]
    if isinstance(image, (list, tuple)):
        return [face for item in image for face in _faces(item)]
    raise TypeError(f"image must be a PIL image, a numpy array, a tensor or a list of them, got {type(image).__name__}")


def _array_to_tensor(array: np.ndarray) -> Tensor:
    """(B, H, W, 3) uint8 or float in [0, 1] -> (B, 3, H, W) in [-1, 1]."""
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"image: a numpy array must be (H, W, 3) or (B, H, W, 3), got {array.shape}")
    if array.dtype == np.uint8:  # as io.pil_to_tensor computes it, so an array gives what its PIL image gives
        return torch.from_numpy(array.astype(np.float32)).permute(0, 3, 1, 2).contiguous() / 127.5 - 1.0
    if np.issubdtype(array.dtype, np.floating):
        if array.min() < 0 or array.max() > 1:
            low, high = array.min(), array.max()
            raise ValueError(f"image: a float numpy array must be in [0, 1], got [{low:.3g}, {high:.3g}]")
        return torch.from_numpy(array.astype(np.float32)).permute(0, 3, 1, 2).contiguous() * 2 - 1
    raise ValueError(f"image: a numpy array must be uint8 or float, got {array.dtype}")


def _check_tensor(images: Tensor) -> Tensor:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"image: a tensor must be (3, H, W) or (B, 3, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"image: a tensor must be float in [-1, 1], got {images.dtype}")
    return images.float()
