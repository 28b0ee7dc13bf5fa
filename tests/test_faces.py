"""Detection, alignment, paste-back and the UTKFace template."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from diffrestore.models.builders import load_template
from diffrestore.pipeline.faces import (FaceDetector, align_faces, alignment_matrix, estimate_template, feather_mask,
                                        paste_faces, upscale_image)
from diffrestore.geometry import scale_template
from diffrestore.io import load_image, pil_to_tensor
from diffrestore.cli.template import main as template_cli

SIZE = 128
EXPECTED_FACES = {"gfpgan_00.jpg": 2, "gfpgan_10045.jpg": 3, "gfpgan_Blake_Lively.jpg": 2}


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector("cpu")


@pytest.fixture(scope="module")
def detections(detector, whole_paths):
    return {p.name: (pil_to_tensor(load_image(p)), detector.detect(load_image(p))) for p in whole_paths}


def test_mtcnn_finds_the_faces_of_the_whole_photos(detections):
    assert {name: len(faces) for name, (_, faces) in detections.items()} == EXPECTED_FACES
    for photo, faces in detections.values():
        areas = [f.area for f in faces]
        assert areas == sorted(areas, reverse=True)
        for face in faces:
            x0, y0, x1, y1 = face.box
            marks = face.landmarks
            assert face.score >= 0.9 and marks.shape == (5, 2)
            assert ((marks[:, 0] > x0) & (marks[:, 0] < x1) & (marks[:, 1] > y0) & (marks[:, 1] < y1)).all()
            assert marks[0, 0] < marks[1, 0] and marks[3, 0] < marks[4, 0]  # left before right, as seen
            assert marks[:2, 1].max() < marks[2, 1] < marks[3:, 1].min()  # eyes, nose, mouth downwards


def test_no_face_gives_an_empty_list(detector):
    assert detector.detect(Image.new("RGB", (200, 160), (120, 130, 140))) == []


def test_alignment_puts_landmarks_on_the_template(detections):
    template = load_template("utkface_128", SIZE)
    photo, faces = detections["gfpgan_Blake_Lively.jpg"]
    for face in faces:
        matrix = alignment_matrix(face.landmarks, template)
        mapped = face.landmarks @ matrix[:, :2].T + matrix[:, 2]
        assert np.abs(mapped - template).max() < 8  # a similarity fits 5 points up to expression/pose
        assert np.abs(mapped[:2] - template[:2]).max() < 4  # the eyes closely


def _round_trip(photo: torch.Tensor, faces, upscale: float, feather: float = 0.06):
    template = load_template("utkface_128", SIZE)
    matrices = [alignment_matrix(f.landmarks, template) for f in faces]
    crops = align_faces(photo, matrices, SIZE)
    background = upscale_image(photo, upscale)
    pasted = paste_faces(background, crops, matrices, upscale, feather=feather)
    # where the pasted faces have weight: warp ones with the same machinery
    weight = paste_faces(torch.zeros_like(background), torch.ones_like(crops), matrices, upscale, feather=feather)
    return background, pasted, weight, crops


@pytest.mark.parametrize("upscale", [1.0, 2.0])
def test_align_then_paste_back_reproduces_the_photo(detections, upscale):
    photo, faces = detections["gfpgan_00.jpg"]
    background, pasted, weight, crops = _round_trip(photo, faces, upscale)
    assert pasted.shape == background.shape == (3, int(photo.shape[1] * upscale), int(photo.shape[2] * upscale))
    outside = weight[0] == 0
    inside = weight[0] > 0.99
    assert outside.float().mean() > 0.5 and inside.sum() > 1000
    assert torch.equal(pasted[:, outside], background[:, outside])  # untouched outside the feathered border
    error = (pasted - background).abs()[:, inside].mean().item()
    assert error < 0.02, error  # the face itself: interpolation loss only (~1 % of the range)
    # and the crops are faces at the template's framing, not borders or background
    assert crops.std(dim=(1, 2, 3)).min() > 0.1


def test_pasting_a_changed_face_changes_only_the_face(detections):
    photo, faces = detections["gfpgan_Blake_Lively.jpg"]
    template = load_template("utkface_128", SIZE)
    matrices = [alignment_matrix(faces[0].landmarks, template)]
    dark = -torch.ones(1, 3, SIZE, SIZE)
    pasted = paste_faces(photo, dark, matrices, 1.0)
    changed = (pasted - photo).abs().sum(0) > 1e-6
    x0, y0, x1, y1 = faces[0].box
    ys, xs = torch.nonzero(changed, as_tuple=True)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    assert abs(xs.float().mean() - cx) < 0.1 * (x1 - x0) and abs(ys.float().mean() - cy) < 0.15 * (y1 - y0)
    assert changed.sum() < 2.5 * (x1 - x0) * (y1 - y0)


def _textured_photo(size: int = 256, blur_sigma: float = 0.0) -> torch.Tensor:
    """A smooth shading plus pixel-level texture (white noise, or noise blurred like a natural photo)."""
    y, x = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    shading = 0.3 * torch.sin(x / 23) * torch.cos(y / 31)
    texture = torch.randn(3, size, size, generator=torch.Generator().manual_seed(0))
    if blur_sigma > 0:
        radius = int(3 * blur_sigma)
        kernel = torch.exp(-torch.arange(-radius, radius + 1).float() ** 2 / (2 * blur_sigma ** 2))
        kernel = (kernel / kernel.sum()).view(1, 1, 1, -1)
        texture = F.conv2d(F.pad(texture[:, None], (radius, radius, 0, 0), mode="reflect"), kernel)
        texture = F.conv2d(F.pad(texture, (0, 0, radius, radius), mode="reflect"), kernel.transpose(2, 3))[:, 0]
    return shading + 0.15 * texture / texture.std()


def _face_matrix(centre: tuple[float, float], side: float, size: int, degrees: float = 10.0) -> np.ndarray:
    """Photo -> face matrix taking a ``side``-px square around ``centre``, rotated, onto ``size`` px."""
    angle = np.radians(degrees)
    linear = size / side * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shift = np.full(2, (size - 1) / 2) - linear @ np.asarray(centre)
    return np.hstack([linear, shift[:, None]])


def _inside(background: torch.Tensor, matrices, size: int, upscale: float) -> torch.Tensor:
    ones = torch.ones(len(matrices), 3, size, size)
    return paste_faces(torch.zeros_like(background), ones, matrices, upscale)[0] > 0.99


def _laplacian(image: torch.Tensor) -> torch.Tensor:
    kernel = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).expand(3, 1, 3, 3)
    return F.conv2d(image[None], kernel, padding=1, groups=3)[0]


def test_detail_zero_is_the_plain_paste(detections):
    photo, faces = detections["gfpgan_Blake_Lively.jpg"]
    template = load_template("utkface_128", SIZE)
    matrices = [alignment_matrix(f.landmarks, template) for f in faces]
    crops = align_faces(photo, matrices, SIZE)
    restored = (crops.flip(-1) * 0.8).clamp(-1, 1)  # any face different from the crop
    for upscale in (1.0, 2.0):
        background = upscale_image(photo, upscale)
        plain = paste_faces(background, restored, matrices, upscale)
        assert torch.equal(paste_faces(background, restored, matrices, upscale, aligned=crops, detail=0.0), plain)
        assert not torch.equal(paste_faces(background, restored, matrices, upscale, aligned=crops, detail=1.0), plain)
    with pytest.raises(ValueError, match="aligned"):
        paste_faces(photo, restored, matrices, 1.0, detail=1.0)


@pytest.mark.parametrize("upscale", [1.0, 2.0])
def test_detail_brings_back_the_photo_band_a_small_face_cannot_hold(upscale):
    """A 200-px face aligned to 48 px: the crop holds the shading, not the pixel-level texture."""
    photo, size = _textured_photo(), 48
    matrices = [_face_matrix((128, 128), 200, size)]
    crops = align_faces(photo, matrices, size)
    background = upscale_image(photo, upscale)
    inside = _inside(background, matrices, size, upscale)
    restored = crops + 0.1  # a "model" that keeps the face it saw and brightens it
    target = background + 0.1  # ... so the ideal result is the photo, brightened

    def paste(detail: float) -> torch.Tensor:
        return paste_faces(background, restored, matrices, upscale, aligned=crops, detail=detail)

    with_detail, without = paste(1.0), paste(0.0)
    error_with = (with_detail - target)[:, inside].abs().mean().item()
    error_without = (without - target)[:, inside].abs().mean().item()
    assert error_with < 1e-3 and error_without > 0.08, (error_with, error_without)
    # the texture itself: the plain paste loses most of its Laplacian energy, the detail paste keeps it
    energy = {name: _laplacian(image)[:, inside].pow(2).mean().item()
              for name, image in [("photo", background), ("with", with_detail), ("without", without)]}
    assert abs(energy["with"] / energy["photo"] - 1) < 0.02 and energy["without"] < 0.2 * energy["photo"], energy
    half = paste(0.5)[:, inside]  # detail scales the photo band linearly
    assert torch.allclose(half, (with_detail[:, inside] + without[:, inside]) / 2, atol=1e-5)


@pytest.mark.parametrize("upscale", [1.0, 2.0])
def test_detail_is_near_zero_for_faces_smaller_than_the_model(detections, upscale):
    """Alignment upsamples a small face: its crop holds all of it, so the photo adds ~nothing."""

    def detail_term(image: torch.Tensor, matrices, size: int) -> float:
        """Mean |background - warp_back(aligned)| inside the faces."""
        crops = align_faces(image, matrices, size)
        background = upscale_image(image, upscale)
        zero = torch.zeros_like(crops)
        term = (paste_faces(background, zero, matrices, upscale, aligned=crops, detail=1.0)
                - paste_faces(background, zero, matrices, upscale))
        return term[:, _inside(background, matrices, size, upscale)].abs().mean().item()

    photo = _textured_photo(blur_sigma=1.0)  # texture as sharp as a good photo's
    small = detail_term(photo, [_face_matrix((128, 128), 25, 64)], 64)  # 0.4 photo px per face px
    large = detail_term(photo, [_face_matrix((128, 128), 200, 64)], 64)
    assert small < 0.025 and large > 0.05, (small, large)  # the texture's own mean |.|: 0.12
    # the real faces of gfpgan_00 (0.4-0.5 photo px per face px at 128)
    real_photo, faces = detections["gfpgan_00.jpg"]
    template = load_template("utkface_128", SIZE)
    real = detail_term(real_photo, [alignment_matrix(f.landmarks, template) for f in faces], SIZE)
    assert real < 0.025, real  # ~3 / 255


def test_feather_mask_shape():
    mask = feather_mask(64, 0.1)
    assert mask[0].max() == 0 and mask[:, 0].max() == 0 and mask[32, 32] == 1
    assert torch.equal(mask, mask.T) and torch.equal(mask, mask.flip(0))
    row = mask[32, :32]
    assert (row.diff() >= 0).all() and 0 < row[5] < 1  # a ramp, not a step
    assert torch.equal(feather_mask(16, 0.0), torch.ones(16, 16))


def test_upscale_image():
    photo = torch.rand(3, 20, 30) * 2 - 1
    big = upscale_image(photo, 2.0)
    assert big.shape == (3, 40, 60) and big.min() >= -1 and big.max() <= 1
    assert (torch.nn.functional.avg_pool2d(big[None], 2)[0] - photo).abs().mean() < 0.2
    assert torch.equal(upscale_image(photo, 1.0), photo)


def test_template_matches_the_training_faces(detector, face_paths):
    """The bundled template is where MTCNN puts the landmarks of UTKFace crops."""
    shipped = load_template("utkface_128", SIZE)
    measured = estimate_template(face_paths, SIZE, detector)
    assert np.abs(measured - shipped).max() < 4, (measured, shipped)
    # tight crops: eyes at about 30 % of the height, symmetric about the centre line
    assert 30 < shipped[:2, 1].mean() < 45 and abs(shipped[:2, 0].mean() - SIZE / 2) < 3
    assert shipped[3:, 1].mean() - shipped[:2, 1].mean() > 40
    # ... and tighter than the FFHQ framing (larger eye distance at the same size)
    ffhq = load_template("ffhq_512", SIZE)
    assert shipped[1, 0] - shipped[0, 0] > 1.3 * (ffhq[1, 0] - ffhq[0, 0])
    assert np.allclose(ffhq, scale_template(load_template("ffhq_512", 512), 512, SIZE))


def test_template_cli(tmp_path, face_paths):
    out = tmp_path / "t.json"
    template_cli(["--faces", str(face_paths[0].parent), "--size", "64", "--limit", "6", "--out", str(out)])
    record = json.loads(out.read_text())
    assert record["size"] == 64 and record["num_images"] == 6 and 4 <= record["num_faces"] <= 6
    assert np.asarray(record["landmarks"]).shape == (5, 2) and "source" in record
    assert np.abs(np.asarray(record["landmarks"]) - load_template("utkface_128", 64)).max() < 4
    assert np.allclose(load_template(str(out), 128), np.asarray(record["landmarks"]) * 2)
    with pytest.raises(SystemExit, match="already exists"):
        template_cli(["--faces", str(face_paths[0].parent), "--out", str(out)])
