"""Detection, alignment, paste-back and the UTKFace template."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from diffrestore.builders import load_template
from diffrestore.faces import (FaceDetector, align_faces, alignment_matrix, estimate_template, feather_mask,
                               paste_faces, upscale_image)
from diffrestore.geometry import scale_template
from diffrestore.io import load_image, pil_to_tensor
from diffrestore.template import main as template_cli

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
