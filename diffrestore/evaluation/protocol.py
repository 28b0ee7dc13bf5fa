"""What a report says the numbers were measured under: colour space, networks, reference set, test set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .. import metrics as M
from ..dlib_faces import SAME_PERSON_THRESHOLD
from .pairing import find_manifest, manifest_protocol

SSIM_DESCRIPTION = "Gaussian window 11x11, sigma 1.5, K1=0.01, K2=0.03, valid positions, mean over channels"
LAPVAR_DESCRIPTION = ("variance of the 3x3 Laplacian of the BT.601 Y channel (0-255), valid positions; a "
                      "sharpness score, not NIQE")
LMD_DESCRIPTION = ("mean Euclidean distance (pixels of the restored image) of dlib's 68 landmarks on the restored "
                   "and GT faces, both located in the one box dlib's detector finds on the GT")
DLIB_DESCRIPTION = (f"Euclidean distance of dlib's 128-d face descriptors; same_person: the fraction below "
                    f"{SAME_PERSON_THRESHOLD} (dlib's threshold). Against GT: the GT's box; against LQ: every face "
                    "found on the restored image, each with its box on both")


def color_description(color: str) -> str:
    if color == "y":
        return "Y of ITU-R BT.601 (studio range 16-235, peak 255), as the face-restoration papers report"
    return "RGB, all three channels, 0-255"


def versions() -> dict[str, str]:
    """Versions of the packages the numbers depend on (those that are installed)."""
    import diffrestore

    found = {"diffrestore": diffrestore.__version__, "torch": torch.__version__}
    for module in ("cv2", "dlib"):
        try:
            found[module] = __import__(module).__version__
        except ImportError:
            pass
    return found


def _niqe_description(model: Any) -> str | None:
    if model is None:
        return None
    info = model.provenance or {}
    return (f"NIQE (Mittal et al. 2013), {model.patch_size}-px patches, pristine model fitted on "
            f"{info.get('n_images', '?')} images of {info.get('source', '?')} ({info.get('n_patches', '?')} patches); "
            "lower is better; not comparable with NIQE of the paper's pristine set")


def build_protocol(*, restored, gt, lq, files, chosen: set[str], color: str, crop_border: int, evaluator,
                   identity_warning: str | None, template: str, niqe_model, dlib_description: str | None,
                   reference, reference_size: int | None, distribution_info: dict[str, str]) -> dict[str, Any]:
    manifest_path, manifest = find_manifest(gt, lq)
    return {
        "restored": str(Path(restored)),
        "gt": str(Path(gt)) if gt is not None else None,
        "lq": str(Path(lq)) if lq is not None else None,
        "pairing": "by file name stem",
        "n_images": len(files.stems),
        "unmatched": {k: len(v) for k, v in files.unmatched.items()},
        "color_space": color_description(color) if {"psnr", "ssim"} & chosen else None,
        "crop_border": crop_border,
        "ssim": SSIM_DESCRIPTION if "ssim" in chosen else None,
        "identity_network": evaluator.description if evaluator is not None else None,
        "identity_warning": identity_warning,
        "identity_template": template if evaluator is not None else None,
        "identity_deg": "angle between embeddings in degrees (arccos of IDS)" if evaluator is not None else None,
        "niqe": _niqe_description(niqe_model),
        "dlib": dlib_description,
        "lmd": LMD_DESCRIPTION if "lmd" in chosen else None,
        "dlib_identity": DLIB_DESCRIPTION if {"dlib", "dlib_lq"} & chosen else None,
        "lapvar": LAPVAR_DESCRIPTION if "lapvar" in chosen else None,
        "effnet_pd": M.EffNetPDMetric.description if "effnet_pd" in chosen else None,
        "reference_set": str(Path(reference)) if reference is not None else None,
        "reference_size": reference_size,
        "distribution_features": distribution_info,
        "testset_manifest": str(manifest_path) if manifest_path else None,
        "testset": manifest_protocol(manifest) if manifest else None,
        "versions": versions(),
    }
