"""dlib's landmarks and descriptor as evaluators: known distances, a noisy copy against another person."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from diffrestore.evaluation.dlib_faces import SAME_PERSON_THRESHOLD, landmark_distance
from diffrestore.io import load_image

pytest.importorskip("dlib")


@pytest.fixture(scope="module")
def faces():
    from diffrestore.evaluation.dlib_faces import DlibFaces

    return DlibFaces()


def _array(path, size=256) -> np.ndarray:
    return np.asarray(load_image(path).resize((size, size), Image.BICUBIC))


def _noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, image.shape)
    return np.clip(image + noise, 0, 255).round().astype(np.uint8)


def test_landmark_distance_known_answers():
    points = np.random.default_rng(0).uniform(0, 100, (68, 2))
    assert landmark_distance(points, points) == 0.0
    assert landmark_distance(points, points + [3.0, 4.0]) == pytest.approx(5.0)
    moved = points.copy()
    moved[:34] += [6.0, 8.0]  # half the points 10 px away
    assert landmark_distance(points, moved) == pytest.approx(5.0)


def test_a_face_against_itself_a_noisy_copy_and_another_person(faces, face_paths):
    gt = _array(face_paths[0])
    box = faces.detect(gt)[0]
    same = faces.score_pair(gt, gt, box)
    assert same.lmd == 0.0 and same.descriptor_distance == 0.0 and same.same_person

    noisy = faces.score_pair(_noisy(gt, 8.0), gt, box)
    assert noisy.same_person and noisy.descriptor_distance < 0.4
    assert noisy.lmd < 3.0  # pixels at 256 px

    others = [faces.score_pair(_array(p), gt, box) for p in face_paths[1:6]]
    assert all(o.descriptor_distance > SAME_PERSON_THRESHOLD for o in others)
    assert min(o.lmd for o in others) > noisy.lmd
