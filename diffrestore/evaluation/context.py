"""One evaluation in progress: the paired files, the options, and what its metrics fill in."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from . import metrics as M
from . import niqe as N
from ..io import list_images, load_image
from .features import resolve_template
from .pairing import index_by_stem, paired_stems

T = TypeVar("T")


@dataclass
class FolderSet:
    """The paired files of one evaluation: per stem, the restored file and its GT / LQ partners."""

    stems: list[str]
    restored: dict[str, Path]
    gt: dict[str, Path] | None
    lq: dict[str, Path] | None
    unmatched: dict[str, list[str]]

    @classmethod
    def pair(cls, restored: str | Path, gt: str | Path | None, lq: str | Path | None) -> "FolderSet":
        restored_index = index_by_stem(restored)
        gt_index = index_by_stem(gt) if gt is not None else None
        lq_index = index_by_stem(lq) if lq is not None else None
        stems, unmatched = paired_stems(restored_index, {"gt": gt_index, "lq": lq_index}, restored)
        return cls(stems, restored_index, gt_index, lq_index, unmatched)

    def paths(self, which: str) -> list[Path]:
        index = getattr(self, which)
        return [index[s] for s in self.stems]


@dataclass
class Scoring:
    """One evaluation in progress: the paired files, the options, and what the metrics fill in (``rows``,
    ``distribution``, ``protocol``); networks and features that several metrics use are made ``once``."""

    files: FolderSet
    color: str = "y"
    crop_border: int = 0
    device: str = "cpu"
    identity: str | M.FeatureExtractor = "sface"
    reference: str | Path | None = None
    template: Any = None
    template_size: int | None = None
    vq_model: Any = None
    niqe_model: str | Path | N.NIQEModel | None = None
    cache: dict | None = None
    verbose: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list)
    distribution: dict[str, float] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    made: dict[str, Any] = field(default_factory=dict)

    def once(self, key: str, make: Callable[[], T]) -> T:
        if key not in self.made:
            self.made[key] = make()
        return self.made[key]

    @property
    def size(self) -> tuple[int, int]:
        """The restored images' size; metrics that stack features need every one to have it."""
        return self.once("size", lambda: common_size(self.files))

    def first_size(self) -> tuple[int, int]:
        return load_image(self.files.restored[self.files.stems[0]]).size

    def reference_paths(self) -> list[Path]:
        return self.once("reference", lambda: list_images(self.reference, recursive=False))

    def identity_evaluator(self) -> M.FeatureExtractor:
        return self.once("identity", self._load_identity_evaluator)

    def _load_identity_evaluator(self) -> M.FeatureExtractor:
        size = self.size
        landmarks, template_name = resolve_template(self.template, size[0], self.template_size)
        evaluator, warning = load_evaluator(self.identity, landmarks, size[0], self.device)
        self.protocol.update(identity_network=evaluator.description, identity_warning=warning,
                             identity_template=f"{template_name} scaled to {size[0]}px")
        return evaluator


def common_size(files: FolderSet) -> tuple[int, int]:
    """The restored images' size; every restored image must have it (feature metrics stack them)."""
    sizes: dict[tuple[int, int], str] = {}
    for stem in files.stems:
        sizes.setdefault(load_image(files.restored[stem]).size, stem)
    if len(sizes) > 1:
        (first, a), (second, b) = list(sizes.items())[:2]
        raise ValueError(f"{files.restored[b]}: size {second[0]}x{second[1]} differs from {files.restored[a]} "
                         f"({first[0]}x{first[1]})")
    return next(iter(sizes))


def load_evaluator(identity: str | M.FeatureExtractor, landmarks: np.ndarray, face_size: int,
                   device: str) -> tuple[M.FeatureExtractor, str | None]:
    """The identity network, and a warning when it is one a pipeline may have guided with."""
    if isinstance(identity, M.FeatureExtractor):
        return identity, None
    evaluator = M.load_identity_evaluator(str(identity), landmarks, face_size, device=device)
    if Path(str(identity)).is_dir() and M.is_guidance_network(identity):
        message = (f"{identity} is part of a restoration pipeline and may have guided the sampler: "
                   "its IDS/Deg are then not an independent measure")
        warnings.warn(message)
        return evaluator, message
    return evaluator, None
