"""Pixel metrics: PSNR and SSIM on Y or RGB, the perceptual distances LPIPS and EffNet-PD, the Laplacian's
variance (conventions: ``metrics``)."""

from __future__ import annotations

from torch import Tensor

from .. import metrics as M
from ..registry import Faces, Metric, register_metric


def color_protocol(scoring) -> dict:
    space = ("Y of ITU-R BT.601 (studio range 16-235, peak 255), as the face-restoration papers report"
             if scoring.color == "y" else "RGB, all three channels, 0-255")
    return {"color_space": space, "crop_border": scoring.crop_border}


def ground_truth(faces: Faces, scoring) -> Tensor:
    """The GT face, refused when its size is not the restored face's."""
    if faces.gt.shape != faces.restored.shape:
        raise ValueError(f"{scoring.files.gt[faces.stem]}: size {faces.gt.shape[-1]}x{faces.gt.shape[-2]} differs "
                         f"from the restored face ({faces.restored.shape[-1]}x{faces.restored.shape[-2]})")
    return faces.gt


def with_partners(column: str, score, faces: Faces) -> dict[str, float]:
    """``score`` of the restored face, and of its GT and LQ partners where they were loaded."""
    row = {column: score(faces.restored)}
    row.update({f"{column}_{which}": score(image) for which, image in (("gt", faces.gt), ("lq", faces.lq))
                if image is not None})
    return row


register_metric(Metric(
    "psnr", ("psnr_{color}",), "higher", "PSNR (dB), 10 log10(255^2 / MSE) over every pixel", needs=("gt",),
    reads=("restored", "gt"), protocol=color_protocol,
    per_image=lambda faces, s: {f"psnr_{s.color}": M.psnr(faces.restored, ground_truth(faces, s), s.color,
                                                          s.crop_border).item()}))

register_metric(Metric(
    "ssim", ("ssim_{color}",), "higher",
    "SSIM, Gaussian window 11x11, sigma 1.5, K1=0.01, K2=0.03, valid positions, mean over channels",
    needs=("gt",), reads=("restored", "gt"), protocol=color_protocol,
    per_image=lambda faces, s: {f"ssim_{s.color}": M.ssim(faces.restored, ground_truth(faces, s), s.color,
                                                          s.crop_border).item()}))

register_metric(Metric(
    "lpips", ("lpips",), "lower", "LPIPS v0.1 (AlexNet)", needs=("gt",), reads=("restored", "gt"), optional=True,
    unavailable=lambda scoring: M.lpips_unavailable_reason(),
    per_image=lambda faces, s: {"lpips": s.once("lpips", lambda: M.LPIPSMetric(s.device))(
        faces.restored, ground_truth(faces, s)).item()}))

register_metric(Metric(
    "effnet_pd", ("effnet_pd",), "lower", M.EffNetPDMetric.description, needs=("gt",), reads=("restored", "gt"),
    optional=True, unavailable=lambda scoring: M.effnet_unavailable_reason(),
    per_image=lambda faces, s: {"effnet_pd": s.once("effnet_pd", lambda: M.EffNetPDMetric(s.device))(
        faces.restored, ground_truth(faces, s)).item()}))

register_metric(Metric(
    "lapvar", ("lapvar", "lapvar_gt", "lapvar_lq"), "neither",
    "variance of the 3x3 Laplacian of the BT.601 Y channel (0-255), valid positions; a sharpness score, not NIQE",
    reads=("restored", "gt", "lq"),
    per_image=lambda faces, s: with_partners("lapvar", lambda image: M.laplacian_variance(image).item(), faces)))
