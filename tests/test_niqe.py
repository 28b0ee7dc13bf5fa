"""NIQE (Mittal et al. 2013): the AGGD fit on samples of known distributions, the distance on a model
of the image's own statistics, and the shipped CelebA-HQ model ranking degraded faces below HQ ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from diffrestore.evaluation import niqe as N
from diffrestore.data.degradations import DegradationParams, blur, degrade, gaussian_kernel
from diffrestore.io import load_image, pil_to_tensor

CELEBAHQ = sorted((Path(__file__).parent / "assets" / "celebahq").iterdir())


@pytest.fixture(scope="module")
def hq_faces() -> list[torch.Tensor]:
    """512-px CelebA-HQ val faces: outside the shipped model's fit (CelebA-HQ train)."""
    return [pil_to_tensor(load_image(p)) for p in CELEBAHQ]


def test_aggd_fit_recovers_known_distributions():
    rng = np.random.default_rng(0)
    gaussian = rng.normal(0, 1.5, (1, 200_000))
    shape, mean, left, right = N.fit_aggd(gaussian)[0]
    assert shape == pytest.approx(2.0, abs=0.03)
    assert left == pytest.approx(2.25, rel=0.02) and right == pytest.approx(2.25, rel=0.02)
    assert mean == pytest.approx(0.0, abs=0.02)
    assert N.fit_aggd(rng.laplace(0, 1, (1, 200_000)))[0, 0] == pytest.approx(1.0, abs=0.03)
    # an asymmetric Gaussian (shape 2): left half of N(0, 1), right half of N(0, 2^2), each side's
    # mass in proportion to its scale (1/3, 2/3): left variance 1, right 4, a positive mean
    halves = np.concatenate([-np.abs(rng.normal(0, 1, 100_000)), np.abs(rng.normal(0, 2, 200_000))])[None]
    shape, mean, left, right = N.fit_aggd(halves)[0]
    assert shape == pytest.approx(2.0, abs=0.05)
    assert left == pytest.approx(1.0, rel=0.02) and right == pytest.approx(4.0, rel=0.02)
    assert mean == pytest.approx((2 - 1) * np.sqrt(2 / np.pi), rel=0.03)  # E[x] of the two half-normals


def test_an_image_scores_zero_against_a_model_of_its_own_patches(hq_faces):
    feats, _ = N.image_features(hq_faces[0])
    assert feats.shape == (25, 36)  # 5 x 5 patches of 96 px in 512 px
    own = N.NIQEModel(feats.mean(0), np.cov(feats, rowvar=False))
    assert own.score(hq_faces[0]) == pytest.approx(0.0, abs=1e-9)
    assert own.score(hq_faces[1]) > 1.0


def test_shipped_model_prefers_hq_faces_to_degraded_ones(hq_faces):
    model = N.default_model()
    assert model.provenance["n_images"] >= 100 and "celebahq/train" in model.provenance["source"]
    params = DegradationParams(sigma_x=3.0, sigma_y=3.0, theta=0.0, kernel_size=41, scale=4.0, noise=10.0,
                               jpeg_quality=50, noise_seed=1)
    for face in hq_faces:
        assert model.score(face) < model.score(degrade(face, params)) - 1.0


def test_more_blur_scores_monotonically_worse(hq_faces):
    model = N.default_model()
    for face in hq_faces[:2]:
        scores = [model.score(face)] + [model.score(blur(face, gaussian_kernel(41, s, s, 0.0))) for s in (1, 2, 4, 8)]
        assert scores == sorted(scores) and len(set(scores)) == len(scores), scores


def test_small_images_and_bad_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 192 px"):
        N.niqe(torch.zeros(3, 128, 256))
    bad = tmp_path / "model.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="not a NIQE model file"):
        N.NIQEModel.load(bad)


def test_fit_save_load_round_trip(hq_faces, tmp_path):
    model = N.fit_pristine_model(hq_faces[:2], provenance={"source": "tests"})
    assert model.mean.shape == (36,) and model.cov.shape == (36, 36)
    assert model.provenance["n_patches"] >= 2  # the sharp patches only: fewer than the 2 x 25
    assert model.provenance["n_patches"] < 50
    model.save(tmp_path / "m.json")
    again = N.NIQEModel.load(tmp_path / "m.json")
    assert again.score(hq_faces[2]) == model.score(hq_faces[2])
