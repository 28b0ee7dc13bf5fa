"""What a report says the numbers were measured under: the metrics, their networks, the reference set, the test set."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from .pairing import find_manifest, manifest_protocol
from .registry import METRICS


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


def metric_descriptions(chosen: Sequence[str]) -> dict[str, str]:
    """What each computed metric is and which way is better, from the registry."""
    better = {"higher": "higher is better", "lower": "lower is better", "neither": "no better direction"}
    return {name: f"{METRICS[name].description} ({better[METRICS[name].direction]})" for name in chosen}


def build_protocol(*, restored, gt, lq, files, chosen: Sequence[str], scoring) -> dict[str, Any]:
    """Where the numbers come from: the folders, the pairing, each metric's definition and what the
    metrics measured with (``scoring.protocol``: networks, models, colour space), the test set."""
    manifest_path, manifest = find_manifest(gt, lq)
    protocol = {
        "restored": str(Path(restored)),
        "gt": str(Path(gt)) if gt is not None else None,
        "lq": str(Path(lq)) if lq is not None else None,
        "pairing": "by file name stem",
        "n_images": len(files.stems),
        "unmatched": {k: len(v) for k, v in files.unmatched.items()},
        "metrics": metric_descriptions(chosen),
    }
    for name in chosen:
        if METRICS[name].protocol is not None:
            protocol.update(METRICS[name].protocol(scoring))
    protocol.update(scoring.protocol)
    if scoring.distribution:
        protocol.update(reference_set=str(Path(scoring.reference)), reference_size=len(scoring.reference_paths()))
    protocol.update(testset_manifest=str(manifest_path) if manifest_path else None,
                    testset=manifest_protocol(manifest) if manifest else None, versions=versions())
    return protocol
