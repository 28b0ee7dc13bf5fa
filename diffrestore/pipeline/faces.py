"""Faces in whole photos: detect 5 landmarks (MTCNN), align to a template, paste restored faces back.

Matrices are 2x3, photo pixels -> aligned-face pixels (the ``diffrestore.geometry`` convention),
always in the ORIGINAL photo's pixels; ``paste_faces`` adapts them to an upscaled background.

When no face is found, ``FaceDetector.detect`` returns ``[]``: it is the caller's decision whether
that is an error (one face expected), a skip (a folder of photos), or a fallback (treat the whole
image as an aligned face). Nothing here raises for it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from ..geometry import invert_affine, similarity_transform, warp_affine
from ..io import ImageLoadError, load_image, spread_subset

logger = logging.getLogger(__name__)


@dataclass
class DetectedFace:
    """One face: ``box`` (x0, y0, x1, y1), ``landmarks`` (5, 2) as (x, y) in photo pixels, in the
    template's order (left eye, right eye, nose, mouth left, mouth right; "left" as seen in the
    image), and the detector's confidence ``score``."""

    box: np.ndarray
    landmarks: np.ndarray
    score: float

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return float(max(x1 - x0, 0.0) * max(y1 - y0, 0.0))


class FaceDetector:
    """facenet-pytorch's MTCNN (weights ship in its wheel), created on first use."""

    def __init__(self, device: str | torch.device = "cpu", min_face_size: int = 20, threshold: float = 0.9):
        self.device = torch.device(device)
        self.min_face_size = min_face_size
        self.threshold = threshold
        self._mtcnn = None
        self._creating = threading.Lock()  # the folder pipeline detects on several threads

    @property
    def mtcnn(self):
        with self._creating:
            if self._mtcnn is None:
                from facenet_pytorch import MTCNN  # imports torchvision: keep it off the import path

                self._mtcnn = MTCNN(keep_all=True, min_face_size=self.min_face_size, post_process=False,
                                    device=self.device)
        return self._mtcnn

    def detect(self, image: Image.Image, pad: float = 0.0) -> list[DetectedFace]:
        """Faces scoring at least ``threshold``, largest box first; ``[]`` when there is none.

        ``pad`` surrounds the image with a grey border of ``pad`` times its longer side before
        detection (coordinates are returned in the unpadded image). Use it for tight face crops:
        MTCNN misplaces the landmarks of a face that fills the frame (on UTKFace crops the eyes
        land ~10 px too high and wide without it; ``pad=0.25`` fixes that).
        """
        image = image.convert("RGB")
        border = int(round(pad * max(image.size)))
        if border > 0:
            image = ImageOps.expand(image, border=border, fill=(127, 127, 127))
        boxes, scores, points = self.mtcnn.detect(image, landmarks=True)
        if boxes is None:
            return []
        faces = [
            DetectedFace(np.asarray(box, np.float64) - border,
                         np.asarray(marks, np.float64).reshape(5, 2) - border, float(score))
            for box, score, marks in zip(boxes, scores, points)
            if float(score) >= self.threshold
        ]
        return sorted(faces, key=lambda face: face.area, reverse=True)


def center_face(faces: Sequence[DetectedFace], image_size: tuple[int, int]) -> DetectedFace:
    """The face whose box centre is nearest the centre of an image of ``image_size`` (width, height)."""
    centre = (np.asarray(image_size, np.float64) - 1) / 2
    return min(faces, key=lambda face: float(np.linalg.norm((face.box[:2] + face.box[2:]) / 2 - centre)))


def alignment_matrix(landmarks: np.ndarray, template: np.ndarray) -> np.ndarray:
    """2x3 similarity taking photo pixels to aligned-face pixels (``landmarks`` onto ``template``)."""
    return similarity_transform(np.asarray(landmarks, np.float64), np.asarray(template, np.float64))


def align_faces(photo: torch.Tensor, matrices: Sequence[np.ndarray], size: int,
                padding_mode: str = "reflection") -> torch.Tensor:
    """Crop the faces of ``photo`` (3, H, W) by ``matrices`` into a (N, 3, size, size) batch.

    Parts of the crop outside the photo are filled by ``padding_mode`` (``grid_sample``'s
    "reflection" or "border"): a black border would be restored as if it were part of the face.
    """
    if not matrices:
        return photo.new_zeros((0, 3, size, size))
    batch = photo.unsqueeze(0).expand(len(matrices), -1, -1, -1)
    return warp_affine(batch, np.stack(matrices), (size, size), padding_mode=padding_mode)


def upscale_image(photo: torch.Tensor, factor: float) -> torch.Tensor:
    """Bicubic resize of (3, H, W) by ``factor`` (output floor(H*factor) x floor(W*factor)), clamped.

    Pixel (x, y) of the result samples the photo at ((x + 0.5) / factor - 0.5, ...), exactly the
    mapping ``paste_faces`` assumes for the same ``factor``.
    """
    if factor == 1:
        return photo.clone()
    out = F.interpolate(photo.unsqueeze(0), scale_factor=factor, mode="bicubic", align_corners=False,
                        recompute_scale_factor=False, antialias=factor < 1)
    return out[0].clamp(-1, 1)


def _upscale_matrix(factor: float) -> np.ndarray:
    """Photo pixels -> upscaled pixels, pixel centres at integers (align_corners=False)."""
    shift = 0.5 * (factor - 1.0)
    return np.array([[factor, 0.0, shift], [0.0, factor, shift], [0.0, 0.0, 1.0]])


def feather_mask(size: int, feather: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """(size, size) blending weight of an aligned face: 0 on the border, 1 inside.

    Equivalent to eroding the square by ``feather * size / 2`` and blurring it over ``feather * size``
    pixels, computed in closed form (smoothstep of the distance to the border) so it is exact.
    """
    if feather <= 0:
        return torch.ones(size, size, device=device)
    centres = torch.arange(size, dtype=torch.float32, device=device) + 0.5
    edge_distance = torch.minimum(centres, size - centres)
    distance = torch.minimum(edge_distance[:, None], edge_distance[None, :])
    width = feather * size
    ramp = ((distance - width / 2) / width).clamp(0, 1)
    return ramp * ramp * (3 - 2 * ramp)


def paste_faces(background: torch.Tensor, faces: torch.Tensor, matrices: Sequence[np.ndarray],
                upscale: float, feather: float = 0.06, aligned: torch.Tensor | None = None,
                detail: float = 0.0) -> torch.Tensor:
    """Warp each face of ``faces`` (N, 3, s, s) back into ``background`` (3, H', W') and blend.

    ``background`` is the photo already upscaled by ``upscale_image(photo, upscale)``; ``matrices``
    are the photo -> face matrices used by ``align_faces`` on the original photo. Faces are pasted
    in order, so a later face covers an earlier one where they overlap. ``feather`` is the width of
    the soft border as a fraction of the face size (see ``feather_mask``).

    ``detail`` keeps the photo's own detail above the faces' s-px resolution (a two-band split):
    each pasted face is ``warp(face) + detail * (background - warp(aligned))``, where ``aligned``
    (N, 3, s, s) are the crops ``align_faces`` took from the same photo (the faces the model saw) and
    ``warp`` is the same face -> background warp. The difference is what an s-px crop cannot hold:
    ~0 for a face smaller than s px in the photo, its fine detail for a larger one. 0 = the restored
    face alone; 1 = all of the photo's band above s px. With ``faces == aligned`` and ``detail=1`` the
    photo comes back unchanged.
    """
    out = background.clone()
    if len(matrices) == 0:
        return out
    if detail and aligned is None:
        raise ValueError("paste_faces: detail != 0 needs the aligned input faces (aligned=...)")
    size = faces.shape[-1]
    to_background = [
        invert_affine((np.vstack([m, [0.0, 0.0, 1.0]]) @ np.linalg.inv(_upscale_matrix(upscale)))[:2])
        for m in matrices
    ]
    mask = feather_mask(size, feather, faces.device).expand(len(matrices), 1, size, size)
    layers = [faces, mask] + ([aligned.to(faces.device)] if detail else [])
    layers = torch.cat([layer.to(background.dtype) for layer in layers], dim=1)
    warped = warp_affine(layers, np.stack(to_background), tuple(background.shape[-2:]), padding_mode="zeros")
    for face_and_mask in warped:
        face, weight = face_and_mask[:3], face_and_mask[3:4]
        if detail:
            face = face + detail * (background - face_and_mask[4:7])
        out = weight * face + (1 - weight) * out
    return out.clamp(-1, 1)


TIGHT_CROP_PAD = 0.25


def collect_landmarks(paths: Sequence[Path], size: int, detector: FaceDetector,
                      limit: int | None = None, pad: float = TIGHT_CROP_PAD) -> np.ndarray:
    """(K, 5, 2) landmarks, rescaled to a ``size`` x ``size`` frame, of the aligned face crops among
    ``spread_subset(paths, limit)`` where exactly one face scores above the detector's threshold.

    Detection runs with ``pad`` (see ``FaceDetector.detect``). Unreadable files are skipped with a
    warning naming them.
    """
    found = []
    for path in spread_subset(paths, limit):
        try:
            image = load_image(path)
        except ImageLoadError as err:
            logger.warning("skipping %s", err)
            continue
        faces = detector.detect(image, pad=pad)
        if len(faces) == 1:
            scale = np.array([size / image.width, size / image.height])
            found.append(faces[0].landmarks * scale)
    return np.asarray(found, dtype=np.float64).reshape(-1, 5, 2)


def estimate_template(paths: Sequence[Path], size: int, detector: FaceDetector,
                      limit: int | None = None, pad: float = TIGHT_CROP_PAD) -> np.ndarray:
    """Mean 5-point landmarks (5, 2) of a set of aligned faces: the framing a model trained on them
    expects. Raises ``ValueError`` when no image had exactly one confident face."""
    landmarks = collect_landmarks(paths, size, detector, limit, pad)
    if len(landmarks) == 0:
        raise ValueError(f"no image among the {len(spread_subset(paths, limit))} examined had exactly "
                         "one detected face")
    return landmarks.mean(axis=0)
