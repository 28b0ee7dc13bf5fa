"""``evaluate_folders``: score a folder of restored faces against ground truth and/or LQ inputs, with
the metrics of the registry (``registry``, ``scores/``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from . import metrics as M
from . import niqe as N
from . import scores  # noqa: F401  (registers the metrics)
from .context import FolderSet, Scoring
from .features import load_face
from .groups import group_summaries
from .protocol import build_protocol
from .registry import METRICS, Faces, check_names, choose, column_order

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
