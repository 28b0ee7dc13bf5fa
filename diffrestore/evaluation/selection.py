"""Which metrics a call computes, given the folders it has and the weights installed."""

from __future__ import annotations

from typing import Iterable

from .. import dlib_faces
from .. import metrics as M

METRICS = ("psnr", "ssim", "lpips", "effnet_pd", "ids", "deg", "ids_lq", "deg_lq", "lapvar", "niqe", "lmd", "dlib", "dlib_lq",
           "fd-identity", "fd-vq", "fd-effnet", "fid")
"""Names accepted by ``metrics=``; ``fd-identity`` is reported as ``FD-<network>`` (e.g. FD-SFace),
``dlib`` as ``dlib_dist`` and ``same_person`` (restored vs GT), ``dlib_lq`` as ``dlib_dist_lq`` and
``same_person_lq`` (restored vs its LQ input)."""
IDENTITY_METRICS = ("ids", "deg", "ids_lq", "deg_lq", "fd-identity")
"""The metrics that need the identity network (``identity=``)."""
DLIB_METRICS = ("lmd", "dlib", "dlib_lq")
_NEEDS_GT = ("psnr", "ssim", "lpips", "effnet_pd", "ids", "deg", "lmd", "dlib")
_NEEDS_LQ = ("ids_lq", "deg_lq", "dlib_lq")
_NEEDS_REFERENCE = ("fd-identity", "fd-vq", "fd-effnet", "fid")
_OPTIONAL = ("lpips", "effnet_pd", "fd-effnet", "fid", "lmd", "dlib", "dlib_lq")  # skipped with a reason when their weights are absent


def default_metrics(has_gt: bool, has_lq: bool, has_ref: bool, has_vq: bool) -> list[str]:
    wanted = ["lapvar", "niqe"]
    if has_gt:
        wanted += ["psnr", "ssim", "lpips", "effnet_pd", "ids", "deg", "lmd", "dlib"]
    if has_lq:
        wanted += ["ids_lq", "deg_lq", "dlib_lq"]
    if has_ref:
        wanted += ["fd-identity", "fd-effnet", "fid"] + (["fd-vq"] if has_vq else [])
    return wanted


def _unavailable_reason(name: str, has_gt: bool, has_lq: bool, has_ref: bool) -> str | None:
    if name in _NEEDS_GT and not has_gt:
        return f"{name} skipped: needs --gt"
    if name in _NEEDS_LQ and not has_lq:
        return f"{name} skipped: needs --lq"
    if name in _NEEDS_REFERENCE and not has_ref:
        return f"{name} skipped: needs a reference set (--reference or --gt)"
    if name == "lpips":
        return M.lpips_unavailable_reason()
    if name == "fid":
        return M.fid_unavailable_reason()
    if name in ("effnet_pd", "fd-effnet"):
        return M.effnet_unavailable_reason()
    if name in DLIB_METRICS:
        return dlib_faces.unavailable_reason()
    return None


def select_metrics(requested: Iterable[str] | None, has_gt: bool, has_lq: bool, has_ref: bool,
                   has_vq: bool) -> tuple[list[str], list[str]]:
    """The metrics to compute and the reasons why the others that were asked for are skipped (an
    optional metric's reason is given even when it was not asked for by name)."""
    explicit = requested is not None
    if explicit:
        wanted = [m.lower() for m in requested]
        unknown = [m for m in wanted if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose from {METRICS}")
    else:
        wanted = default_metrics(has_gt, has_lq, has_ref, has_vq)
    chosen, skipped = [], []
    for name in dict.fromkeys(wanted):
        reason = _unavailable_reason(name, has_gt, has_lq, has_ref)
        if reason is None:
            chosen.append(name)
        elif explicit or name in _OPTIONAL:
            skipped.append(reason)
    return chosen, skipped
