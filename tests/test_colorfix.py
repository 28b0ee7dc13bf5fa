"""The colour fixes: colours from the reference, detail from the image."""

import pytest
import torch

from diffrestore.pipeline.colorfix import chroma_color_fix, low_frequency, luma, wavelet_color_fix


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


def chroma(images: torch.Tensor) -> torch.Tensor:
    return images - luma(images)  # (R - Y, G - Y, B - Y): zero for any grey


def test_chroma_fix_keeps_fine_colours_of_the_reference_that_the_wavelet_fix_loses():
    reference = smooth_face(4)
    reference[:, 2, 30:34, 30:34] += 1.0  # a small blue patch (an iris), finer than the colour layer
    grey_detail = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(5)).expand(1, 3, 64, 64) * 0.1
    image = luma(reference).expand(1, 3, 64, 64) + grey_detail  # the decoder lost the colours, kept detail
    patch = (slice(None), slice(None), slice(30, 34), slice(30, 34))
    blue = chroma(reference)[patch]
    wavelet = wavelet_color_fix(image, reference, levels=4)
    fixed = chroma_color_fix(image, reference, levels=4)
    assert (chroma(fixed)[patch] - blue).abs().mean() < 1e-5
    assert (chroma(wavelet)[patch] - blue).abs().mean() > 0.3 * blue.abs().mean()
    torch.testing.assert_close(luma(fixed), luma(wavelet))  # detail (luma) exactly as the wavelet fix
