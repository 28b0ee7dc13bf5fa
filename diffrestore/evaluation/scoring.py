"""``evaluate_folders``: score a folder of restored faces against ground truth and/or LQ inputs, with
the metrics of the registry (``registry``, ``scores/``)."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import numpy as np

from . import metrics as M
from . import niqe as N
from ..io import list_images, load_image
from .features import load_face, resolve_template
from .groups import group_summaries
from .pairing import index_by_stem, paired_stems
from .protocol import build_protocol
from .registry import METRICS, Faces, check_names, choose, column_order
from . import scores  # noqa: F401  (registers the metrics)

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


def score_images(scoring: Scoring, chosen: Sequence[str]) -> None:
    """One pass over the faces for the per-image metrics: each image is loaded once."""
    metrics = [METRICS[name] for name in chosen if METRICS[name].per_image]
    reads = {which for m in metrics for which in m.reads}
    files = scoring.files
    for index, (row, stem) in enumerate(zip(scoring.rows, files.stems), 1):
        faces = Faces(stem, load_face(files.restored[stem]),
                      load_face(files.gt[stem]) if files.gt and "gt" in reads else None,
                      load_face(files.lq[stem]) if files.lq and "lq" in reads else None)
        for metric in metrics:
            row.update(metric.per_image(faces, scoring))
        if scoring.verbose and index % 100 == 0:
            print(f"scored {index}/{len(files.stems)}", file=sys.stderr)


def ordered_columns(rows: Sequence[dict]) -> list[str]:
    """The score columns present in ``rows``, in the reports' order (the registry's)."""
    present = {k for r in rows for k in r if k != "file"}
    order = column_order()
    return [c for c in order if c in present] + sorted(present - set(order))


def evaluate_folders(
    restored: str | Path,
    gt: str | Path | None = None,
    lq: str | Path | None = None,
    *,
    identity: str | M.FeatureExtractor = "sface",
    reference: str | Path | None = None,
    groups: str | None = None,
    metrics: Iterable[str] | None = None,
    color: str = "y",
    crop_border: int = 0,
    template: str | np.ndarray | Sequence | None = None,
    template_size: int | None = None,
    vq_model: Any = None,
    niqe_model: str | Path | N.NIQEModel | None = None,
    device: str = "cpu",
    cache: dict | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Score the images of ``restored`` and return ``{"rows", "columns", "summary", "distribution",
    "groups", "protocol", "skipped"}``.

    ``identity``: ``"sface"`` (default), ``"facenet"``, an IdentityNet folder, or a ready
    ``FeatureExtractor`` (see ``metrics.load_identity_evaluator``). ``template``: the template the
    faces are aligned to (a name/path, or landmarks at ``template_size`` px; default: the bundled
    template of the faces' size, ``models.builders.template_for_size``).
    ``reference`` (default ``gt``) is the set the distribution distances compare against.
    ``metrics``: names of the registry (``evaluation.METRICS``; default: every one the given folders
    allow; LPIPS and FID only where their weights are present, LMD and dlib's identity where dlib is
    installed, NIQE on images of at least 192 px). ``niqe_model``: a NIQE model file (default: the
    shipped CelebA-HQ 512 model). ``cache``: a dict reused across calls (sweeps) to keep the features of
    unchanged files.
    """
    if color not in M.COLOR_SPACES:
        raise ValueError(f"color must be one of {M.COLOR_SPACES}, got {color!r}")
    requested = check_names(metrics) if metrics is not None else None
    reference = reference if reference is not None else gt
    files = FolderSet.pair(restored, gt, lq)
    scoring = Scoring(files, color, crop_border, device, identity, reference, template, template_size, vq_model,
                      niqe_model, cache, verbose, rows=[{"file": stem} for stem in files.stems])
    given = {"gt": gt, "lq": lq, "reference": reference, "vq": vq_model}
    chosen, skipped = choose(requested, {need for need, value in given.items() if value is not None}, scoring)
    score_images(scoring, chosen)
    for name in chosen:
        if METRICS[name].per_set is not None:
            METRICS[name].per_set(scoring)

    columns = ordered_columns(scoring.rows)
    protocol = build_protocol(restored=restored, gt=gt, lq=lq, files=files, chosen=chosen, scoring=scoring)
    result = {"rows": scoring.rows, "columns": columns, "distribution": scoring.distribution,
              "summary": {c: M.summarize(r.get(c) for r in scoring.rows) for c in columns},
              "protocol": protocol, "skipped": skipped, "groups": None}
    if groups:
        result["groups"] = group_summaries(scoring.rows, columns, groups)
        protocol["groups"] = groups
    return result
