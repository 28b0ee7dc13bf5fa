"""The wavelet colour fix: colours from the reference, detail from the image."""

import pytest
import torch

from diffrestore.colorfix import low_frequency, wavelet_color_fix


def smooth_face(seed: int) -> torch.Tensor:
    noise = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(seed))
    return low_frequency(noise, levels=4) * 3


def test_a_colour_shift_is_removed_and_detail_is_kept():
    reference = smooth_face(0)
    detail = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 0.1
    shifted = reference + detail + torch.tensor([0.3, -0.2, 0.1]).view(1, 3, 1, 1)  # a tint plus texture
    fixed = wavelet_color_fix(shifted, reference, levels=4)
    assert (fixed - (reference + detail)).abs().mean() < 0.25 * (shifted - (reference + detail)).abs().mean()
    change = fixed - shifted  # only colours change: the correction itself is smooth
    high_part = change - low_frequency(change, levels=1)
    assert high_part.abs().mean() < 0.1 * detail.abs().mean()


def test_fixing_an_image_against_itself_changes_nothing():
    image = smooth_face(2) + torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 0.1
    torch.testing.assert_close(wavelet_color_fix(image, image), image)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="differ in shape"):
        wavelet_color_fix(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 16, 16))
