"""Face datasets. Every random choice of an item comes from ``np.random.default_rng((seed, epoch,
index))``, so an item is a pure function of its index and epoch: reproducible, and safe in any number
of DataLoader workers or processes.

A corrupt file in a training folder (``HQFaceDataset``, ``PairedFaceDataset``) is reported once per
process (a warning naming it) and replaced by the next readable index, so a long run is not stopped
by one bad image and stays deterministic; the item's ``index`` and ``path`` are those of the image
actually used. ``LQFolderDataset`` holds the user's inputs, each of which matters: there a corrupt
file raises ``ImageLoadError`` naming it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .degradations import DegradationConfig, degrade, sample_params
from .io import ImageLoadError, list_images, load_image, pil_to_tensor

logger = logging.getLogger(__name__)


def fit_resolution(image: Image.Image, resolution: int | None) -> Image.Image:
    """``image`` resized (bicubic) to ``resolution`` x ``resolution`` unless it is that size or
    ``resolution`` is None. Aligned faces are square; a non-square image is stretched."""
    if resolution and image.size != (resolution, resolution):
        return image.resize((resolution, resolution), resample=Image.BICUBIC)
    return image


MAX_CONSECUTIVE_BAD = 50  # beyond this many unreadable files in a row the folder itself is wrong


class _FaceFolder(Dataset):
    def __init__(self, root: str | Path, resolution: int | None = None, seed: int = 0) -> None:
        self.root = Path(root)
        self.paths = list_images(root)
        if not self.paths:
            raise FileNotFoundError(f"{root}: no images found")
        self.resolution = resolution
        self.seed = seed
        self.epoch = 0
        self._reported: set[Path] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.epoch, index))

    def load(self, index: int) -> tuple[int, torch.Tensor]:
        """The image at ``index`` (or the next readable one) as (3, R, R) in [-1, 1]."""
        for offset in range(min(len(self.paths), MAX_CONSECUTIVE_BAD + 1)):
            i = (index + offset) % len(self.paths)
            try:
                image = load_image(self.paths[i])
            except ImageLoadError as err:
                if self.paths[i] not in self._reported:
                    self._reported.add(self.paths[i])
                    logger.warning("skipping unreadable training image: %s", err)
                continue
            return i, pil_to_tensor(fit_resolution(image, self.resolution))
        raise ImageLoadError(self.root, f"no readable image at index {index} or the "
                                        f"{MAX_CONSECUTIVE_BAD} after it (see the warnings above)")


class HQFaceDataset(_FaceFolder):
    """Aligned high-quality faces: ``{"hq", "index", "path"}``, randomly mirrored when ``flip``."""

    def __init__(self, root: str | Path, resolution: int, flip: bool = True, seed: int = 0) -> None:
        super().__init__(root, resolution, seed)
        self.flip = flip

    def hq(self, index: int, rng: np.random.Generator) -> tuple[int, torch.Tensor]:
        index, image = self.load(index)
        if self.flip and rng.random() < 0.5:
            image = image.flip(-1)
        return index, image

    def __getitem__(self, index: int) -> dict:
        index, image = self.hq(index, self.rng(index))
        return {"hq": image, "index": index, "path": str(self.paths[index])}


class PairedFaceDataset(HQFaceDataset):
    """HQ faces with an LQ version made on the fly by the degradation model:
    ``{"hq", "lq", "index", "path", "params"}`` (``params``: the degradation drawn, as a dict)."""

    def __init__(self, root: str | Path, resolution: int, degradation: DegradationConfig, seed: int = 0,
                 flip: bool = True) -> None:
        super().__init__(root, resolution, flip, seed)
        self.degradation = degradation

    def __getitem__(self, index: int) -> dict:
        rng = self.rng(index)
        index, image = self.hq(index, rng)
        params = sample_params(self.degradation, image.shape[-1], rng)
        return {"hq": image, "lq": degrade(image, params), "index": index, "path": str(self.paths[index]),
                "params": params.to_dict()}


class LQFolderDataset(_FaceFolder):
    """Degraded faces without ground truth: ``{"lq", "path"}``; resized when ``resolution`` is set."""

    def __getitem__(self, index: int) -> dict:
        image = fit_resolution(load_image(self.paths[index]), self.resolution)
        return {"lq": pil_to_tensor(image), "path": str(self.paths[index])}
