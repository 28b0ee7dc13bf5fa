"""The degradation model: each operation does what it says, ranges scale, results are deterministic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from diffrestore.data.degradations import (DegradationConfig, DegradationParams, degrade, gaussian_kernel,
                                           sample_params)
from diffrestore.io import load_image, pil_to_tensor


def _params(**changes) -> DegradationParams:
    """The identity degradation (no blur, no resize, no noise, near-lossless JPEG), then ``changes``."""
    base = DegradationParams(sigma_x=0.05, sigma_y=0.05, theta=0.0, kernel_size=21, scale=1.0, noise=0.0,
                             jpeg_quality=100, noise_seed=0)
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def faces(face_paths) -> list[torch.Tensor]:
    return [pil_to_tensor(load_image(p)) for p in face_paths[:4]]


def _laplacian_energy(image: torch.Tensor) -> float:
    """Mean squared discrete Laplacian: the high-frequency energy a blur removes."""
    grey = image.mean(0)
    lap = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1]
    return float(lap.pow(2).mean())


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean())


def test_kernel_is_normalised_and_oriented():
    iso = gaussian_kernel(21, 3.0, 3.0, 0.0)
    assert iso.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(iso, iso.T, atol=1e-7)
    wide = gaussian_kernel(21, 4.0, 1.0, 0.0)  # long along x
    assert wide[10, :].sum() > 2 * wide[:, 10].sum()
    tall = gaussian_kernel(21, 4.0, 1.0, np.pi / 2)  # rotated by 90 degrees: long along y
    assert torch.allclose(tall, wide.T, atol=1e-6)


def test_blur_removes_more_high_frequencies_as_sigma_grows(faces):
    energies = [_laplacian_energy(degrade(faces[0], _params(sigma_x=s, sigma_y=s))) for s in (0.05, 0.8, 1.6, 3.2)]
    assert all(a > 1.5 * b for a, b in zip(energies, energies[1:])), energies
    near_identity = degrade(faces[0], _params())
    assert _mse(near_identity, faces[0]) < 1e-4  # the "identity" settings really are


def test_anisotropic_blur_smooths_along_its_long_axis():
    texture = torch.rand(3, 96, 96, generator=torch.Generator().manual_seed(0)) - 0.5
    for theta, axis in ((0.0, -1), (np.pi / 2, -2)):
        out = degrade(texture, _params(sigma_x=3.0, sigma_y=0.05, theta=theta))
        along = out.diff(dim=axis).abs().mean()
        across = out.diff(dim=-3 - axis).abs().mean()
        assert along < 0.3 * across, (theta, along, across)


def test_error_grows_with_downsample_factor(faces):
    errors = [np.mean([_mse(degrade(f, _params(scale=r)), f) for f in faces]) for r in (1.0, 2.0, 4.0, 8.0)]
    assert all(a < b for a, b in zip(errors, errors[1:])), errors
    assert errors[0] < 1e-4 and errors[-1] > 20 * errors[1]


def _blockiness(image: torch.Tensor) -> float:
    """Mean jump across the 8x8 JPEG block borders over the mean jump elsewhere."""
    grey = image.mean(0)
    jumps = (grey[:, 1:] - grey[:, :-1]).abs().mean(0)
    at_borders = jumps[7::8]
    return float(at_borders.mean() / jumps[np.setdiff1d(np.arange(len(jumps)), np.arange(7, len(jumps), 8))].mean())


def test_lower_jpeg_quality_means_larger_error_and_blockiness(faces):
    qualities = (95, 70, 40, 10)
    errors = [np.mean([_mse(degrade(f, _params(jpeg_quality=q)), f) for f in faces]) for q in qualities]
    assert all(a < b for a, b in zip(errors, errors[1:])), errors
    block = [np.mean([_blockiness(degrade(f, _params(jpeg_quality=q))) for f in faces]) for q in (95, 10)]
    assert block[1] > block[0] + 0.2, block


def test_noise_has_the_requested_strength():
    flat = torch.zeros(3, 128, 128)
    for sigma in (5.0, 10.0):
        out = degrade(flat, _params(noise=sigma))
        luma = 0.299 * out[0] + 0.587 * out[1] + 0.114 * out[2]  # JPEG subsamples chroma, not luma
        expected = sigma * np.sqrt(0.299**2 + 0.587**2 + 0.114**2)  # i.i.d. noise per channel
        assert float(luma.std()) * 127.5 == pytest.approx(expected, rel=0.1)


def test_grayscale_and_colour_shift(faces):
    grey = degrade(faces[1], _params(grayscale=True))
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    shifted = degrade(faces[1], _params(color_shift=[20.0, 0.0, -20.0]))
    base = degrade(faces[1], _params())
    delta = (shifted - base).mean(dim=(1, 2)) * 127.5
    assert delta[0] > 15 and abs(delta[1]) < 1 and delta[2] < -15
    # shift then grey, as GFPGAN: a grey face stays grey
    both = degrade(faces[1], _params(grayscale=True, color_shift=[20.0, 0.0, -20.0]))
    assert torch.equal(both[0], both[2])


def test_same_params_same_image_other_seed_other_image(faces):
    cfg = DegradationConfig()
    p1 = sample_params(cfg, 128, np.random.default_rng(7))
    p2 = sample_params(cfg, 128, np.random.default_rng(7))
    p3 = sample_params(cfg, 128, np.random.default_rng(8))
    assert p1 == p2 and p1 != p3
    assert torch.equal(degrade(faces[2], p1), degrade(faces[2], p2))
    assert not torch.equal(degrade(faces[2], p1), degrade(faces[2], p3))
    noisy = _params(noise=10.0)
    assert not torch.equal(degrade(faces[2], noisy), degrade(faces[2], dataclasses.replace(noisy, noise_seed=1)))
    assert degrade(faces[2], p1).shape == faces[2].shape
    assert set(p1.to_dict()) >= {"sigma_x", "sigma_y", "theta", "kernel_size", "scale", "noise", "jpeg_quality",
                                 "grayscale", "color_shift", "noise_seed"}


def test_ranges_scale_with_resolution_but_noise_and_quality_do_not():
    cfg = DegradationConfig()
    draws = {res: [sample_params(cfg, res, np.random.default_rng(i)) for i in range(400)] for res in (128, 512)}
    for res, factor in ((128, 0.25), (512, 1.0)):
        p = draws[res]
        sigmas = [x.sigma_x for x in p]
        scales = [x.scale for x in p]
        assert max(sigmas) <= 15.0 * factor + 1e-9 and max(sigmas) > 0.9 * 15.0 * factor
        assert min(scales) >= 1.0 and max(scales) <= 30.0 * factor and max(scales) > 0.9 * 30 * factor
        assert {x.kernel_size for x in p} == {41 if res == 512 else 11}
        assert min(x.noise for x in p) >= 0 and max(x.noise for x in p) > 18
        assert min(x.jpeg_quality for x in p) >= 30 and max(x.jpeg_quality for x in p) <= 90
        assert 0.35 < np.mean([x.sigma_x != x.sigma_y for x in p]) < 0.65  # anisotropic half the time
    assert not any(x.grayscale for x in draws[128])  # probabilities default to 0
    coloured = dataclasses.replace(cfg, grayscale_prob=1.0, color_jitter_prob=1.0)
    p = sample_params(coloured, 128, np.random.default_rng(0))
    assert p.grayscale and any(abs(c) > 0 for c in p.color_shift)
