"""``evaluate_folders``: score a folder of restored faces against ground truth and/or LQ inputs."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from .. import dlib_faces
from .. import metrics as M
from .. import niqe as N
from ..io import list_images, load_image
from .features import extract_features, load_face, resolve_template, resolve_vq
from .groups import group_summaries
from .protocol import build_protocol
from .pairing import index_by_stem, paired_stems
from .selection import IDENTITY_METRICS, select_metrics


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


def _common_size(files: FolderSet) -> tuple[int, int]:
    """The restored images' size; every restored image must have it (feature metrics stack them)."""
    sizes = {}
    for stem in files.stems:
        with_size = load_image(files.restored[stem]).size
        sizes.setdefault(with_size, stem)
    if len(sizes) > 1:
        (first, a), (second, b) = list(sizes.items())[:2]
        raise ValueError(f"{files.restored[b]}: size {second[0]}x{second[1]} differs from {files.restored[a]} "
                         f"({first[0]}x{first[1]})")
    return next(iter(sizes))


def _pixel_scores(out: torch.Tensor, ref: torch.Tensor | None, lq: torch.Tensor | None, chosen: set[str],
                  color: str, crop_border: int, networks: dict[str, Any], gt_path: Path | None) -> dict[str, float]:
    row: dict[str, float] = {}
    if ref is not None and chosen & {"psnr", "ssim", *networks}:
        if ref.shape != out.shape:
            raise ValueError(f"{gt_path}: size {ref.shape[-1]}x{ref.shape[-2]} differs from the restored "
                             f"face ({out.shape[-1]}x{out.shape[-2]})")
        if "psnr" in chosen:
            row[f"psnr_{color}"] = M.psnr(out, ref, color, crop_border).item()
        if "ssim" in chosen:
            row[f"ssim_{color}"] = M.ssim(out, ref, color, crop_border).item()
        for name, metric in networks.items():
            row[name] = metric(out, ref).item()
    if "lapvar" in chosen:
        row["lapvar"] = M.laplacian_variance(out).item()
        for suffix, image in (("_gt", ref), ("_lq", lq)):
            if image is not None:
                row[f"lapvar{suffix}"] = M.laplacian_variance(image).item()
    return row


def _niqe_scores(out: torch.Tensor, ref: torch.Tensor | None, lq: torch.Tensor | None,
                 model: N.NIQEModel) -> dict[str, float]:
    row = {"niqe": model.score(out)}
    for suffix, image in (("_gt", ref), ("_lq", lq)):
        if image is not None:
            row[f"niqe{suffix}"] = model.score(image)
    return row


def _niqe_skip_reason(files: FolderSet, patch_size: int) -> str | None:
    width, height = load_image(files.restored[files.stems[0]]).size
    if min(width, height) < 2 * patch_size:
        return f"niqe skipped: needs images of at least {2 * patch_size} px a side, these are {width}x{height}"
    return None


def _load_niqe(niqe_model: str | Path | N.NIQEModel | None) -> N.NIQEModel:
    if isinstance(niqe_model, N.NIQEModel):
        return niqe_model
    return N.NIQEModel.load(niqe_model) if niqe_model is not None else N.default_model()


def _pixel_rows(files: FolderSet, chosen: set[str], color: str, crop_border: int, device: str,
                niqe_model: N.NIQEModel | None, verbose: bool) -> list[dict[str, Any]]:
    networks = {name: make(device) for name, make in (("lpips", M.LPIPSMetric), ("effnet_pd", M.EffNetPDMetric))
                if name in chosen}
    wants_gt = files.gt is not None and bool(chosen & {"psnr", "ssim", *networks, "lapvar", "niqe"})
    wants_lq = files.lq is not None and bool(chosen & {"lapvar", "niqe"})
    rows = []
    for stem in files.stems:
        out = load_face(files.restored[stem])
        ref = load_face(files.gt[stem]) if wants_gt else None
        lq = load_face(files.lq[stem]) if wants_lq else None
        row: dict[str, Any] = {"file": stem}
        row.update(_pixel_scores(out, ref, lq, chosen, color, crop_border, networks,
                                 files.gt[stem] if files.gt else None))
        if niqe_model is not None:
            row.update(_niqe_scores(out, ref, lq, niqe_model))
        rows.append(row)
        if verbose and len(rows) % 100 == 0:
            print(f"scored {len(rows)}/{len(files.stems)}", file=sys.stderr)
    return rows


def _dlib_scores_against_gt(faces: dlib_faces.DlibFaces, restored: np.ndarray, gt: np.ndarray,
                            chosen: set[str]) -> dict[str, float]:
    boxes = faces.detect(gt)
    if not boxes:
        return {"gt_face_found": 0.0}
    score = faces.score_pair(restored, gt, boxes[0])
    row = {"gt_face_found": 1.0}
    if "lmd" in chosen:
        row["lmd"] = score.lmd
    if "dlib" in chosen:
        row["dlib_dist"] = score.descriptor_distance
        row["same_person"] = float(score.same_person)
    return row


def _dlib_scores_against_lq(faces: dlib_faces.DlibFaces, restored: np.ndarray, lq: np.ndarray) -> dict[str, float]:
    """Every face found in the restored image, each with its box on both images: the mean distance
    and the fraction judged the same person; ``faces_found`` counts them."""
    boxes = faces.detect(restored)
    if not boxes:
        return {"faces_found": 0.0}
    scores = [faces.score_pair(restored, lq, box) for box in boxes]
    return {"faces_found": float(len(boxes)),
            "dlib_dist_lq": float(np.mean([s.descriptor_distance for s in scores])),
            "same_person_lq": float(np.mean([s.same_person for s in scores]))}


def _add_dlib_scores(rows: list[dict[str, Any]], files: FolderSet, chosen: set[str]) -> str:
    faces = dlib_faces.DlibFaces()
    for row, stem in zip(rows, files.stems):
        restored = load_image(files.restored[stem])
        if files.gt is not None and chosen & {"lmd", "dlib"}:
            gt = load_image(files.gt[stem])
            row.update(_dlib_scores_against_gt(faces, np.asarray(restored), np.asarray(gt.resize(restored.size)), chosen))
        if files.lq is not None and "dlib_lq" in chosen:
            lq = load_image(files.lq[stem]).resize(restored.size)
            row.update(_dlib_scores_against_lq(faces, np.asarray(restored), np.asarray(lq)))
    return faces.description


def _add_identity_scores(rows: list[dict[str, Any]], files: FolderSet, evaluator: M.FeatureExtractor,
                         chosen: set[str], size: tuple[int, int], cache: dict | None) -> torch.Tensor:
    """IDS / Deg columns (restored vs GT, restored vs LQ); returns the restored faces' embeddings."""
    # faces are resized to the restored size: aligned faces keep their framing when scaled
    restored_feats = extract_features(evaluator, files.paths("restored"), size)
    for suffix, which in (("", "gt"), ("_lq", "lq")):
        if getattr(files, which) is None or not ({f"ids{suffix}", f"deg{suffix}"} & chosen):
            continue
        other = extract_features(evaluator, files.paths(which), size, cache)
        cos = M.identity_cosine(restored_feats, other).tolist()
        deg = M.identity_degrees(restored_feats, other).tolist()
        for row, c, d in zip(rows, cos, deg):
            if f"ids{suffix}" in chosen:
                row[f"ids{suffix}"] = c
            if f"deg{suffix}" in chosen:
                row[f"deg{suffix}"] = d
    return restored_feats


def _load_evaluator(identity: str | M.FeatureExtractor, landmarks: np.ndarray, face_size: int,
                    device: str) -> tuple[M.FeatureExtractor, str | None]:
    if isinstance(identity, M.FeatureExtractor):
        return identity, None
    evaluator = M.load_identity_evaluator(str(identity), landmarks, face_size, device=device)
    if Path(str(identity)).is_dir() and M.is_guidance_network(identity):
        message = (f"{identity} is part of a restoration pipeline and may have guided the sampler: "
                   "its IDS/Deg are then not an independent measure")
        warnings.warn(message)
        return evaluator, message
    return evaluator, None


def _distribution_distances(files: FolderSet, chosen: set[str], reference: str | Path | None,
                            identity: tuple[M.FeatureExtractor, torch.Tensor] | None, vq_model: Any,
                            size: tuple[int, int], device: str, cache: dict | None
                            ) -> tuple[dict[str, float], dict[str, str], int]:
    ref_paths = list_images(reference, recursive=False) if reference is not None else []
    distances: dict[str, float] = {}
    described: dict[str, str] = {}
    if identity is not None and "fd-identity" in chosen:
        evaluator, restored_feats = identity
        name = f"FD-{evaluator.name}"
        distances[name] = M.frechet_distance_of(restored_feats, extract_features(evaluator, ref_paths, size, cache))
        described[name] = f"Fréchet distance of {evaluator.description} embeddings"
    for metric, name, make in (("fd-vq", "FD-VQ", lambda: resolve_vq(vq_model, device)),
                               ("fd-effnet", "FD-EffNet", lambda: M.effnet_feature_extractor(device)),
                               ("fid", "FID", lambda: M.inception_feature_extractor(device))):
        if metric not in chosen:
            continue
        extractor = make()
        distances[name] = M.frechet_distance_of(extract_features(extractor, files.paths("restored"), size),
                                                extract_features(extractor, ref_paths, size, cache))
        described[name] = f"Fréchet distance of {extractor.description} features"
    return distances, described, len(ref_paths)


_COLUMN_ORDER = ("psnr_y", "psnr_rgb", "ssim_y", "ssim_rgb", "lpips", "effnet_pd", "ids", "deg", "lmd", "dlib_dist", "same_person",
                 "ids_lq", "deg_lq", "dlib_dist_lq", "same_person_lq", "niqe", "niqe_gt", "niqe_lq", "lapvar",
                 "lapvar_gt", "lapvar_lq", "gt_face_found", "faces_found")


def ordered_columns(rows: Sequence[dict]) -> list[str]:
    """The score columns present in ``rows``, in the reports' order."""
    present = {k for r in rows for k in r if k != "file"}
    return [c for c in _COLUMN_ORDER if c in present] + sorted(present - set(_COLUMN_ORDER))


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
    template of the faces' size, ``builders.template_for_size``).
    ``reference`` (default ``gt``) is the set the distribution distances compare against.
    ``metrics``: a subset of ``METRICS`` (default: every one the given folders allow; LPIPS and FID
    only where their weights are present, LMD and dlib's identity where dlib is installed, NIQE on
    images of at least 192 px). ``niqe_model``: a NIQE model file (default: the shipped CelebA-HQ
    512 model). ``cache``: a dict reused across calls (sweeps) to keep the features of unchanged files.
    """
    if color not in M.COLOR_SPACES:
        raise ValueError(f"color must be one of {M.COLOR_SPACES}, got {color!r}")
    reference = reference if reference is not None else gt
    chosen_list, skipped = select_metrics(metrics, gt is not None, lq is not None, reference is not None,
                                          vq_model is not None)
    files = FolderSet.pair(restored, gt, lq)
    niqe_loaded = None
    if "niqe" in chosen_list:
        patch_size = niqe_model.patch_size if isinstance(niqe_model, N.NIQEModel) else N.PATCH_SIZE
        reason = _niqe_skip_reason(files, patch_size)
        if reason:
            chosen_list.remove("niqe")
            skipped.append(reason)
        else:
            niqe_loaded = _load_niqe(niqe_model)
    chosen = set(chosen_list)

    needs_size = bool(chosen & {*IDENTITY_METRICS, "fd-vq", "fd-effnet", "fid"})
    size = _common_size(files) if needs_size else load_image(files.restored[files.stems[0]]).size
    landmarks, template_name = resolve_template(template, size[0], template_size)
    rows = _pixel_rows(files, chosen, color, crop_border, device, niqe_loaded, verbose)
    dlib_description = _add_dlib_scores(rows, files, chosen) if chosen & {"lmd", "dlib", "dlib_lq"} else None

    evaluator, identity_warning, identity_feats = None, None, None
    if chosen & set(IDENTITY_METRICS):
        evaluator, identity_warning = _load_evaluator(identity, landmarks, size[0], device)
        identity_feats = (evaluator, _add_identity_scores(rows, files, evaluator, chosen, size, cache))
    distribution, distribution_info, reference_size = _distribution_distances(
        files, chosen, reference, identity_feats, vq_model, size, device, cache)

    columns = ordered_columns(rows)
    protocol = build_protocol(
        restored=restored, gt=gt, lq=lq, files=files, chosen=chosen, color=color, crop_border=crop_border,
        evaluator=evaluator, identity_warning=identity_warning, template=f"{template_name} scaled to {size[0]}px",
        niqe_model=niqe_loaded, dlib_description=dlib_description,
        reference=reference if distribution else None, reference_size=reference_size if distribution else None,
        distribution_info=distribution_info)
    result = {"rows": rows, "columns": columns, "summary": {c: M.summarize(r.get(c) for r in rows) for c in columns},
              "distribution": distribution, "protocol": protocol, "skipped": skipped, "groups": None}
    if groups:
        result["groups"] = group_summaries(rows, columns, groups)
        protocol["groups"] = groups
    return result
