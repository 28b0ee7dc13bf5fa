"""Face datasets. Every random choice of an item comes from ``np.random.default_rng((seed, epoch,
index))``, so an item is a pure function of its index and epoch: reproducible, and safe in any number
of DataLoader workers or processes.

``resident(device)`` of a training set decodes it once into a uint8 tensor on ``device`` and returns
a :class:`ResidentFaces`, which makes whole batches there (flips, degradations): training at GPU speed
without data-loader workers. Its randomness comes from a generator the caller seeds per batch.

A corrupt file in a training folder (``HQFaceDataset``, ``PairedFaceDataset``) is reported once per
process (a warning naming it) and replaced by the next readable index, so a long run is not stopped
by one bad image and stays deterministic; the item's ``index`` and ``path`` are those of the image
actually used. ``LQFolderDataset`` holds the user's inputs, each of which matters: there a corrupt
file raises ``ImageLoadError`` naming it.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from torch import Tensor

from .degradations import DegradationConfig, degrade, degrade_batch, sample_batch, sample_params
from ..io import ImageLoadError, list_images, load_image, pil_to_tensor

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


class ResidentFaces:
    """Faces held as one uint8 tensor (N, 3, R, R) on a device, with the recipe of their batches:
    random mirroring when ``flip``, an LQ version by the degradation model when ``degradation`` is
    set, and per-face ``extras`` (e.g. teacher embeddings) looked up by index."""

    def __init__(self, images: Tensor, flip: bool, degradation: DegradationConfig | None = None,
                 extras: dict[str, Tensor] | None = None) -> None:
        self.images, self.flip, self.degradation = images, flip, degradation
        self.extras = {k: v.to(images.device) for k, v in (extras or {}).items()}

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def with_extras(self, **extras: Tensor) -> "ResidentFaces":
        return ResidentFaces(self.images, self.flip, self.degradation, {**self.extras, **extras})

    def faces(self, indices: Tensor, flipped: Tensor | None = None) -> Tensor:
        """The faces at ``indices`` as floats in [-1, 1], mirrored where ``flipped``."""
        hq = self.images[indices].float() / 127.5 - 1
        return hq if flipped is None else torch.where(flipped[:, None, None, None], hq.flip(-1), hq)

    def batch(self, indices: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        """``{"hq", "index", "flipped"[, "lq"], *extras}`` for ``indices`` (on this set's device)."""
        n = indices.shape[0]
        flipped = torch.rand(n, generator=generator, device=self.device) < 0.5 if self.flip \
            else torch.zeros(n, dtype=torch.bool, device=self.device)
        hq = self.faces(indices, flipped)
        batch = {"hq": hq, "index": indices, "flipped": flipped}
        if self.degradation is not None:
            params = sample_batch(self.degradation, hq.shape[-1], n, generator)
            batch["lq"] = degrade_batch(hq, params, generator=generator)
        batch.update({name: values[indices] for name, values in self.extras.items()})
        return batch


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

    def decode_all(self, workers: int = 16) -> Tensor:
        """Every face (unreadable ones replaced as in training) as one uint8 tensor (N, 3, R, R)."""
        def pixels(index: int) -> Tensor:
            return ((self.load(index)[1] + 1) * 127.5).round().to(torch.uint8)

        with ThreadPoolExecutor(workers) as pool:
            return torch.stack(list(pool.map(pixels, range(len(self)))))

    def resident(self, device: torch.device | str) -> ResidentFaces:
        return ResidentFaces(self.decode_all().to(device), self.flip)


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

    def resident(self, device: torch.device | str) -> ResidentFaces:
        return ResidentFaces(self.decode_all().to(device), self.flip, self.degradation)


class LQFolderDataset(_FaceFolder):
    """Degraded faces without ground truth: ``{"lq", "path"}``; resized when ``resolution`` is set."""

    def __getitem__(self, index: int) -> dict:
        image = fit_resolution(load_image(self.paths[index]), self.resolution)
        return {"lq": pil_to_tensor(image), "path": str(self.paths[index])}
