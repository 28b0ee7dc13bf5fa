"""The batched (GPU) degradation path against the single-image (CPU) one: same operations, same
parameter distribution. Run on the CPU here; the code is device-agnostic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from diffrestore.data import jpeg as torch_jpeg
from diffrestore.data.degradations import (DegradationBatch, DegradationConfig, blur, degrade, degrade_batch,
                                           gaussian_kernel, gaussian_kernels, jpeg, resize, sample_batch, sample_params)
from diffrestore.io import load_image, pil_to_tensor

RESOLUTION = 128


@pytest.fixture(scope="module")
def faces(face_paths) -> torch.Tensor:
    return torch.stack([pil_to_tensor(load_image(p)) for p in face_paths[:12]])


def _draws(cfg: DegradationConfig, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [sample_params(cfg, RESOLUTION, rng) for _ in range(n)]


def _noise_canvas(params, size: int) -> torch.Tensor:
    """The single-image path's noise (from each draw's seed), in the top-left corner of each canvas."""
    noise = torch.zeros(len(params), 3, size, size)
    for i, p in enumerate(params):
        side = max(1, round(size / p.scale))
        noise[i, :, :side, :side] = torch.randn((3, side, side), generator=torch.Generator().manual_seed(p.noise_seed))
    return noise


def test_batched_kernels_and_blur_equal_the_single_image_ones(faces):
    sx, sy, th = torch.tensor([0.5, 3.0, 2.0]), torch.tensor([0.5, 1.0, 4.0]), torch.tensor([0.0, 0.4, 2.5])
    kernels = gaussian_kernels(11, sx, sy, th)
    for i in range(3):
        assert torch.allclose(kernels[i], gaussian_kernel(11, float(sx[i]), float(sy[i]), float(th[i])), atol=1e-7)
    batched = blur(faces[:3], kernels)
    for i in range(3):
        assert torch.allclose(batched[i], blur(faces[i], kernels[i]), atol=1e-6)


def test_jpeg_in_torch_is_close_to_pillows(faces):
    pixels = ((faces + 1) * 127.5).round()
    for quality in (30, 60, 90):
        ours = torch_jpeg.jpeg(pixels, torch.full((len(faces),), quality))
        pillow = torch.stack([(jpeg(f, quality) + 1) * 127.5 for f in faces])
        error = (ours - pillow).abs()
        assert error.mean() < 1.0, (quality, error.mean())  # measured: 0.67 to 0.78 (0-255 units)
        assert float((ours - pixels).abs().mean()) == pytest.approx(float((pillow - pixels).abs().mean()), rel=0.1)
    low, high = (torch_jpeg.jpeg(pixels, torch.full((len(faces),), q)) for q in (20, 95))
    assert (low - pixels).abs().mean() > 2 * (high - pixels).abs().mean()


def test_quantisation_tables_follow_libjpeg_scaling():
    luma, chroma = torch_jpeg.quant_tables(torch.tensor([50, 100, 10, 1]))
    assert luma[0].flatten().tolist() == list(torch_jpeg.LUMA_TABLE)  # quality 50 = the standard's tables
    assert luma[1].max() == 1 and chroma[1].max() == 1  # quality 100: all ones
    assert luma[2, 0, 0] == (16 * 500 + 50) // 100  # scale 5000 / q
    assert luma[3].max() == 255  # baseline: clamped to 8 bits


def test_batched_degradation_matches_the_single_image_path(faces):
    params = _draws(DegradationConfig(), len(faces))
    batched = degrade_batch(faces, DegradationBatch.stack(params), noise=_noise_canvas(params, RESOLUTION))
    single = torch.stack([degrade(f, p) for f, p in zip(faces, params)])
    error = (batched - single).abs() * 127.5  # 0-255 units; only JPEG's rounding differs
    assert error.mean(dim=(1, 2, 3)).max() < 3.0, error.mean(dim=(1, 2, 3))
    psnr = 10 * torch.log10(4 / (batched - single).pow(2).mean(dim=(1, 2, 3)))
    assert psnr.min() > 33, psnr
    # ... and far closer to each other than to the clean face, or to another draw's result
    other = torch.stack([degrade(f, p) for f, p in zip(faces, _draws(DegradationConfig(), len(faces), seed=1))])
    assert (batched - single).pow(2).mean() < 0.05 * (single - other).pow(2).mean()


def test_resize_through_the_bank_is_the_bicubic_resize(faces):
    from diffrestore.data.degradations import _resize_bank, _separable
    down, up = _resize_bank(RESOLUTION, torch.device("cpu"))
    sides = torch.tensor([17, 40, 77, 128])
    small = _separable(down[sides], faces[:4])
    for i, side in enumerate(sides.tolist()):
        expected = resize(faces[i], (side, side))
        assert torch.allclose(small[i, :, :side, :side], expected, atol=1e-5)
        assert small[i, :, side:].abs().sum() == 0
        assert torch.allclose(_separable(up[sides[i:i + 1]], small[i:i + 1])[0],
                              resize(expected, (RESOLUTION, RESOLUTION)), atol=1e-5)


def test_batched_grey_and_colour_shift(faces):
    params = DegradationBatch.stack(_draws(DegradationConfig(), 4))
    params.grayscale = torch.tensor([True, False, True, False])
    params.color_shift = torch.tensor([[20.0, 0, -20]] * 4)
    out = degrade_batch(faces[:4], params, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[0, 0], out[0, 2]) and torch.equal(out[2, 0], out[2, 1])
    assert (out[1, 0] - out[1, 2]).mean() > (faces[1, 0] - faces[1, 2]).mean() + 0.2


def test_batched_sampler_draws_the_same_distribution():
    cfg = DegradationConfig(grayscale_prob=0.3, color_jitter_prob=0.5)
    n = 4000
    single = _draws(cfg, n)
    batch = sample_batch(cfg, RESOLUTION, n, torch.Generator().manual_seed(0))
    assert batch.kernel_size == single[0].kernel_size
    for name in ("sigma_x", "sigma_y", "theta", "scale", "noise", "jpeg_quality"):
        ours = getattr(batch, name).double().numpy()
        theirs = np.array([getattr(p, name) for p in single], dtype=np.float64)
        assert stats.ks_2samp(ours, theirs).pvalue > 1e-3, name
    aniso_batch = (batch.sigma_x != batch.sigma_y).double().mean()
    assert aniso_batch == pytest.approx(np.mean([p.sigma_x != p.sigma_y for p in single]), abs=0.04)
    assert batch.grayscale.double().mean() == pytest.approx(0.3, abs=0.03)
    shifted = (batch.color_shift.abs().sum(1) > 0).double().mean()
    assert shifted == pytest.approx(0.5, abs=0.03)
    assert batch.color_shift.abs().max() <= cfg.color_jitter_shift
    again = sample_batch(cfg, RESOLUTION, n, torch.Generator().manual_seed(0))
    assert torch.equal(again.scale, batch.scale)
