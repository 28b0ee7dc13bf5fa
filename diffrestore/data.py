"""Face datasets. Every random choice of an item comes from ``np.random.default_rng((seed, epoch,
index))``, so an item is a pure function of its index and epoch: reproducible, and safe in any number
of DataLoader workers or processes.

A corrupt file in a training folder is reported once (naming it) and replaced by the next readable
index, so a long run is not stopped by one bad image and stays deterministic.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .degradations import DegradationConfig, degrade, sample_params
from .io import ImageLoadError, list_images, load_image, pil_to_tensor

logger = logging.getLogger(__name__)


class _FaceFolder(Dataset):
    def __init__(self, root: str | Path, resolution: int | None, seed: int = 0) -> None:
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
        for offset in range(len(self.paths)):
            i = (index + offset) % len(self.paths)
            try:
                image = load_image(self.paths[i])
            except ImageLoadError as err:
                if self.paths[i] not in self._reported:
                    self._reported.add(self.paths[i])
                    logger.warning("skipping unreadable training image: %s", err)
                continue
            if self.resolution and image.size != (self.resolution, self.resolution):
                image = image.resize((self.resolution, self.resolution), resample=3)  # bicubic
            return i, pil_to_tensor(image)
        raise ImageLoadError(f"{self.root}: no readable image")


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
    ``{"hq", "lq", "index", "path"}``."""

    def __init__(self, root: str | Path, resolution: int, degradation: DegradationConfig, seed: int = 0,
                 flip: bool = True) -> None:
        super().__init__(root, resolution, flip, seed)
        self.degradation = degradation

    def __getitem__(self, index: int) -> dict:
        rng = self.rng(index)
        index, image = self.hq(index, rng)
        params = sample_params(self.degradation, image.shape[-1], rng)
        return {"hq": image, "lq": degrade(image, params), "index": index, "path": str(self.paths[index])}


class LQFolderDataset(_FaceFolder):
    """Degraded faces without ground truth: ``{"lq", "path"}``; resized when ``resolution`` is set."""

    def __getitem__(self, index: int) -> dict:
        index, image = self.load(index)
        return {"lq": image, "path": str(self.paths[index])}
