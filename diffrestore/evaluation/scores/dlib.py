"""dlib: landmark distance (LMD) and the same-person verdict of its 128-d face descriptors, against the GT
(in the one box its detector finds on the GT) or the LQ input (every face found on the restored image)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dlib_faces
from ...io import load_image
from ..registry import Metric, register_metric

IDENTITY = (f"Euclidean distance of dlib's 128-d face descriptors; same_person: the fraction below "
            f"{dlib_faces.SAME_PERSON_THRESHOLD} (dlib's threshold)")


def detector(scoring) -> dlib_faces.DlibFaces:
    return scoring.once("dlib", dlib_faces.DlibFaces)


def against_gt(scoring) -> list[dict[str, float]]:
    """Per face: whether dlib finds a face on the GT, and the restored face's scores in that box."""
    def score() -> list[dict[str, float]]:
        faces, files, found = detector(scoring), scoring.files, []
        for stem in files.stems:
            restored = load_image(files.restored[stem])
            gt = np.asarray(load_image(files.gt[stem]).resize(restored.size))
            boxes = faces.detect(gt)
            if not boxes:
                found.append({"gt_face_found": 0.0})
                continue
            pair = faces.score_pair(np.asarray(restored), gt, boxes[0])
            found.append({"gt_face_found": 1.0, "lmd": pair.lmd, "dlib_dist": pair.descriptor_distance,
                          "same_person": float(pair.same_person)})
        return found

    return scoring.once("dlib:gt", score)


def columns_of_gt_scores(*columns: str):
    def compute(scoring) -> None:
        for row, scores in zip(scoring.rows, against_gt(scoring)):
            row.update({k: v for k, v in scores.items() if k in columns})

    return compute


def against_lq(scoring) -> None:
    """Every face found in the restored image, each with its box on both images: the mean distance and
    the fraction judged the same person; ``faces_found`` counts them."""
    faces, files = detector(scoring), scoring.files
    for row, stem in zip(scoring.rows, files.stems):
        restored = load_image(files.restored[stem])
        lq = np.asarray(load_image(files.lq[stem]).resize(restored.size))
        boxes = faces.detect(np.asarray(restored))
        row["faces_found"] = float(len(boxes))
        if boxes:
            pairs = [faces.score_pair(np.asarray(restored), lq, box) for box in boxes]
            row["dlib_dist_lq"] = float(np.mean([p.descriptor_distance for p in pairs]))
            row["same_person_lq"] = float(np.mean([p.same_person for p in pairs]))


def model_protocol(scoring) -> dict[str, Any]:
    return {"dlib": detector(scoring).description}


def unavailable(scoring) -> str | None:
    return dlib_faces.unavailable_reason()


register_metric(Metric(
    "lmd", ("lmd",), "lower",
    "mean Euclidean distance (pixels of the restored image) of dlib's 68 landmarks on the restored and GT faces, "
    "both located in the one box dlib's detector finds on the GT", needs=("gt",), optional=True,
    unavailable=unavailable, protocol=model_protocol, per_set=columns_of_gt_scores("gt_face_found", "lmd")))

register_metric(Metric(
    "dlib", ("dlib_dist", "same_person"), "lower", f"{IDENTITY}, restored against the GT in the GT's box",
    needs=("gt",), optional=True, unavailable=unavailable, protocol=model_protocol,
    per_set=columns_of_gt_scores("gt_face_found", "dlib_dist", "same_person")))

register_metric(Metric(
    "dlib_lq", ("dlib_dist_lq", "same_person_lq"), "lower",
    f"{IDENTITY}, restored against the LQ input, every face found on the restored image with its box on both",
    needs=("lq",), optional=True, unavailable=unavailable, protocol=model_protocol, per_set=against_lq))
