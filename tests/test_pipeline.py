"""DiffRestorePipeline (tiny random model) and FaceRestorer: loading, saving, switches, reproducibility."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from diffrestore.evaluation.ablation import AblationOptions, restore_ablated
from diffrestore.training.assemble import main as assemble_main
from diffrestore.pipeline.faces import FaceDetector
from diffrestore.io import load_image
from diffrestore.pipeline.options import RestoreOptions
from diffrestore.pipeline.pipeline_diffrestore import DiffRestorePipeline, load_model_config
from diffrestore.pipeline.restore import FaceRestorer, face_seed
from diffrestore.sampling import SCHEDULERS

TINY = Path(__file__).parents[1] / "configs" / "model" / "tiny.yaml"
R = 32


def tiny_pipeline() -> DiffRestorePipeline:
    pipe = DiffRestorePipeline.from_model_config(TINY)
    with torch.no_grad():  # a fresh backbone is the identity (zero-initialised output layer)
        pipe.backbone.conv_out[-1].weight.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(1))
    return pipe


@pytest.fixture(scope="module")
def pipe() -> DiffRestorePipeline:
    return tiny_pipeline()


@pytest.fixture(scope="module")
def lq() -> torch.Tensor:
    return torch.rand(2, 3, R, R, generator=torch.Generator().manual_seed(0)) * 2 - 1


def with_scheduler(pipe, scheduler):
    return pipe.with_components(scheduler=SCHEDULERS[scheduler].from_config(pipe.scheduler.config))


def call(pipe, lq, seed=0, scheduler=None, **kwargs):
    """The pipeline call on tensors, 4 steps from t = 300 unless ``kwargs`` say otherwise."""
    pipe = with_scheduler(pipe, scheduler) if scheduler else pipe
    kwargs = {"steps": 4, "start_t": 300, **kwargs}
    return pipe(lq, generator=torch.Generator().manual_seed(seed), output_type="pt", **kwargs).images


def ablate(pipe, lq, seed=0, scheduler=None, **kwargs):
    """``call`` through the sweeps' ablation switches (mask, start_from, condition, backbone_only)."""
    pipe = with_scheduler(pipe, scheduler) if scheduler else pipe
    options = AblationOptions(**{"steps": 4, "start_t": 300, **kwargs})
    return restore_ablated(pipe, lq, options, torch.Generator().manual_seed(seed))


def latents_of(pipe, lq, run=call, scheduler=None, **kwargs):
    """The sampler's z_0 (before the quantizing decoder), captured on the way out of ``run``."""
    pipe = with_scheduler(pipe, scheduler) if scheduler else pipe
    seen = {}
    original = pipe.decode

    def spy(latents, quantize=True):
        if quantize:
            seen["z0"] = latents
        return original(latents, quantize)

    pipe.decode = spy
    try:
        run(pipe, lq, **kwargs)
    finally:
        del pipe.decode
    return seen["z0"]


def test_output_shape_range_and_reproducibility(pipe, lq):
    a = call(pipe, lq, scheduler="ddpm")
    assert a.shape == lq.shape and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, call(pipe, lq, scheduler="ddpm"))
    assert not torch.equal(latents_of(pipe, lq, scheduler="ddpm"), latents_of(pipe, lq, scheduler="ddpm", seed=1))


def test_unet_called_once_per_step_starting_at_start_t(pipe, lq):
    seen = []
    hook = pipe.unet.register_forward_hook(lambda module, args, out: seen.append(args[1].tolist()))
    try:
        call(pipe, lq, steps=7, start_t=250)
    finally:
        hook.remove()
    assert all(len(set(batch)) == 1 and len(batch) == len(lq) for batch in seen)  # one timestep per call
    seen = [batch[0] for batch in seen]
    assert len(seen) == 7 and seen[0] == 250 and seen[-1] == 0


def test_guidance_off_paths_are_bit_identical(pipe, lq):
    unguided = latents_of(pipe, lq, scheduler="ddpm", guidance=0.0)
    assert torch.equal(latents_of(pipe, lq, ablate, scheduler="ddpm", guidance=0.0, mask="full"), unguided)
    assert torch.equal(latents_of(pipe, lq, ablate, scheduler="ddpm", guidance=0.5, mask="off"), unguided)
    logits = pipe.mask.logits.data.clone()
    pipe.mask.logits.data.fill_(-float("inf"))  # an all-zero learned mask
    try:
        assert torch.equal(latents_of(pipe, lq, scheduler="ddpm", guidance=0.5), unguided)
    finally:
        pipe.mask.logits.data.copy_(logits)
    guided = latents_of(pipe, lq, scheduler="ddpm", guidance=0.5)
    assert (guided - unguided).abs().mean() > 1e-3


def test_ablation_defaults_are_the_pipeline_call(pipe, lq):
    for kwargs in ({}, {"guidance": 0.0, "cfg_scale": 2.0}, {"guidance_every": 1, "guidance_target": "irn"}):
        assert torch.equal(ablate(pipe, lq, **kwargs), call(pipe, lq, **kwargs)), kwargs


def test_switches_change_the_result(pipe, lq):
    base = latents_of(pipe, lq)
    for kwargs in ({"start_from": "lq"}, {"start_from": "noise"}, {"condition": False}):
        assert not torch.allclose(latents_of(pipe, lq, ablate, **kwargs), base), kwargs
    for kwargs in ({"cfg_scale": 2.0}, {"start_t": 600}):
        assert not torch.allclose(latents_of(pipe, lq, **kwargs), base), kwargs
    guided = latents_of(pipe, lq, guidance=0.5)
    assert not torch.allclose(guided, base)
    assert not torch.allclose(latents_of(pipe, lq, ablate, guidance=0.5, mask="full"), guided)


def test_invalid_calls(pipe, lq):
    with pytest.raises(ValueError, match="image"):
        pipe(lq[:, :2])
    with pytest.raises(TypeError, match="'start_from'"):  # an ablation switch, not a setting of the call
        pipe(lq, start_from="lq")
    with pytest.raises(ValueError, match="output_type"):
        pipe(lq, steps=2, output_type="jpeg")
    with pytest.raises(ValueError, match="start_from"):
        ablate(pipe, lq, start_from="estimate")
    with pytest.raises(ValueError, match="mask"):
        ablate(pipe, lq, mask="half")
    no_mask = DiffRestorePipeline(**{**pipe.components, "mask": None}, **_config(pipe))
    with pytest.raises(ValueError, match="learned latent mask"):
        no_mask(lq, guidance=0.1, steps=2)
    with pytest.raises(ValueError, match="learned mask"):
        ablate(no_mask, lq, guidance=0.1, mask="learned", steps=2)


def _config(pipe):
    return {key: pipe.config[key] for key in ("resolution", "template", "condition")}


def test_save_and_load_round_trip(pipe, lq, tmp_path):
    pipe.save_pretrained(tmp_path / "pipe")
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    assert index["backbone"][1] == "RestorationNet" and index["resolution"] == R
    loaded = DiffRestorePipeline.from_pretrained(tmp_path / "pipe")
    assert loaded.config.template == pipe.config.template and loaded.config.condition is True
    for kwargs in ({"scheduler": "ddpm"}, {"guidance": 0.3, "eta": 0.5}):
        assert torch.equal(call(loaded, lq, **kwargs), call(pipe, lq, **kwargs))


def test_optional_components_may_be_missing(pipe, lq, tmp_path):
    bare = DiffRestorePipeline(**{**pipe.components, "identity": None, "irn": None, "mask": None}, **_config(pipe))
    bare.save_pretrained(tmp_path / "bare")
    loaded = DiffRestorePipeline.from_pretrained(tmp_path / "bare")
    assert loaded.identity is None and loaded.irn is None and loaded.mask is None
    assert torch.equal(call(loaded, lq, guidance=0.0), call(pipe, lq, guidance=0.0))
    with pytest.raises(ValueError, match="identity"):
        loaded(lq, guidance=0.1)


def test_assemble_writes_a_loadable_folder_and_refuses_to_overwrite(pipe, lq, tmp_path, capsys):
    args = []
    for name in ("vqgan", "unet", "backbone", "identity", "mask"):
        getattr(pipe, name).save_pretrained(tmp_path / "parts" / name)
        args += [f"--{name}", str(tmp_path / "parts" / name)]
    out = tmp_path / "assembled"
    cfg_args = ["--model-config", str(TINY), "--out", str(out)]
    assert assemble_main(args + cfg_args) == 0
    loaded = DiffRestorePipeline.from_pretrained(out)
    assert loaded.irn is None and loaded.mask is not None
    weights = next((out / "unet").glob("*.safetensors"))
    from safetensors.torch import load_file
    assert all(t.dtype == torch.float16 for t in load_file(weights).values())
    # fp16 storage: the same model up to half precision
    assert (call(loaded.cast(torch.float32), lq) - call(pipe, lq)).abs().mean() < 0.05
    stamp = (out / "model_index.json").stat().st_mtime_ns
    assert assemble_main(args + cfg_args) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "model_index.json").stat().st_mtime_ns == stamp
    assert assemble_main(args + cfg_args + ["--overwrite"]) == 0
    assert not list(tmp_path.glob(".assembled*"))  # no staging folder left behind


def test_missing_default_model_explains_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr("diffrestore.pipeline.pipeline_diffrestore.BUNDLED_MODEL", tmp_path / "utkface128")
    with pytest.raises(FileNotFoundError, match="diffrestore-assemble"):
        DiffRestorePipeline.from_pretrained()
    with pytest.raises(FileNotFoundError, match="not a pipeline folder"):
        DiffRestorePipeline.from_pretrained(tmp_path)


def test_a_bundled_model_is_found_by_name_unless_a_path_of_that_name_exists(tmp_path, monkeypatch):
    from diffrestore.pipeline.pipeline_diffrestore import BUNDLED_MODEL, PRETRAINED, model_folder

    assert model_folder(None) == BUNDLED_MODEL
    assert model_folder("utkface128") == PRETRAINED / "utkface128"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "utkface128").mkdir()
    assert model_folder("utkface128") == Path("utkface128")  # the user's folder, not the bundled one
    assert model_folder("no-such-model") == Path("no-such-model")
    with pytest.raises(FileNotFoundError, match="no-such-model: not a pipeline folder"):
        DiffRestorePipeline.from_pretrained("no-such-model")


# --------------------------------------------------------------------------------------------------
# FaceRestorer


@pytest.fixture(scope="module")
def restorer(pipe) -> FaceRestorer:
    return FaceRestorer(pipe, RestoreOptions(steps=3, start_t=200, batch_size=3, device="cpu"),
                        detector=FaceDetector("cpu"))


def test_restore_aligned_resizes_and_is_batch_independent(restorer, face_paths):
    images = [load_image(p) for p in face_paths[:5]]  # 128 px faces for a 32 px model
    keys = [p.name for p in face_paths[:5]]
    together = restorer.restore_aligned(images, keys)
    assert all(t.shape == (3, R, R) for t in together)
    alone = restorer.restore_aligned(images[3:4], keys[3:4])  # another batch, another position
    torch.testing.assert_close(alone[0], together[3], rtol=0, atol=1e-5)  # up to batch-size-dependent kernels
    renamed = restorer.restore_aligned(images[3:4], ["other.png"])  # another key, other noise
    assert (renamed[0] - together[3]).abs().mean() > 1e-3


def test_face_seed_depends_on_seed_and_key():
    assert face_seed(0, "a.png") == face_seed(0, "a.png") != face_seed(1, "a.png") != face_seed(0, "b.png")


def test_restore_photo_pastes_every_face_and_keeps_the_background(restorer, whole_paths):
    from diffrestore.pipeline.faces import alignment_matrix, paste_faces, upscale_image
    from diffrestore.io import pil_to_tensor

    photo = load_image(whole_paths[0])
    restorer.options.upscale = 2.0
    try:
        restored, count = restorer.restore_photo(photo)
    finally:
        restorer.options.upscale = 1.0
    faces = restorer.detector.detect(photo)
    assert count == len(faces) >= 1
    assert restored.size == (photo.width * 2, photo.height * 2)
    matrices = [alignment_matrix(f.landmarks, restorer.template) for f in faces]
    expected = upscale_image(pil_to_tensor(photo), 2.0)
    coverage = paste_faces(torch.zeros_like(expected), torch.ones(len(faces), 3, R, R), matrices, 2.0)[0]
    outside = coverage == 0
    inside = coverage > 0.99
    diff = (pil_to_tensor(restored) - expected).abs().mean(0)
    assert outside.float().mean() > 0.3 and inside.any()
    assert diff[outside].max() <= 1.01 / 127.5  # only the 8-bit rounding of the output
    assert diff[inside].mean() > 0.05  # the faces were replaced


def test_looks_aligned(restorer, face_paths, whole_paths):
    whole = load_image(whole_paths[0])
    assert not restorer.looks_aligned(whole, restorer.detector.detect(whole))  # not square
    blank = whole.crop((0, 0, 64, 64)).resize((128, 128))
    assert restorer.looks_aligned(blank, [])  # square, no face: an undetectable aligned face
    template = np.asarray(restorer.template) * (128 / R)
    from diffrestore.pipeline.faces import DetectedFace
    on_template = DetectedFace(np.array([0, 0, 128, 128.0]), template + 1.0, 0.99)
    off_template = DetectedFace(np.array([0, 0, 64, 64.0]), template * 0.5, 0.99)
    assert restorer.looks_aligned(blank, [on_template])
    assert not restorer.looks_aligned(blank, [off_template])
    assert not restorer.looks_aligned(blank, [on_template, on_template])


def test_model_config_file_is_strict():
    from diffrestore.config import ConfigError

    assert load_model_config(TINY, ["model.resolution=64"]).resolution == 64
    with pytest.raises(ConfigError, match="nope"):
        load_model_config(TINY, ["model.nope=1"])


def test_backbone_only_returns_the_backbone_estimate(pipe, lq):
    out = ablate(pipe, lq, backbone_only=True)
    assert torch.equal(out, pipe.backbone(lq).clamp(-1, 1))
    assert not torch.allclose(out, call(pipe, lq), atol=1e-3)


def test_speedups_keep_the_outputs(lq):
    reference = ablate(tiny_pipeline(), lq, guidance=0.5, mask="full")
    fast = tiny_pipeline().optimize(channels_last=True)
    assert fast.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(ablate(fast, lq, guidance=0.5, mask="full"), reference, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="compile_mode"):
        tiny_pipeline().optimize(compile_mode="fastest")


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="torch.compile on CPU needs a C compiler")
def test_compiled_unet_keeps_the_outputs(lq):
    reference = call(tiny_pipeline(), lq, steps=3)
    compiled = tiny_pipeline().optimize(compile_mode="default")
    torch.testing.assert_close(call(compiled, lq, steps=3), reference, atol=1e-4, rtol=0)


def test_color_fix_takes_the_colours_of_the_backbone_estimate(pipe, lq):
    from diffrestore.pipeline.colorfix import low_frequency

    estimate = pipe.backbone(lq).clamp(-1, 1)
    colours = lambda x: low_frequency(x, pipe.color_fix_levels)  # noqa: E731
    raw, fixed = call(pipe, lq, color_fix="none"), call(pipe, lq, color_fix="wavelet")
    assert (colours(fixed) - colours(estimate)).abs().mean() < 0.5 * (colours(raw) - colours(estimate)).abs().mean()
    with pytest.raises(ValueError, match="color_fix"):
        call(pipe, lq, color_fix="adain")


def test_guidance_target_chooses_what_identity_is_pulled_towards(pipe, lq):
    towards_irn = ablate(pipe, lq, guidance=0.5, mask="full", guidance_target="irn")
    towards_backbone = ablate(pipe, lq, guidance=0.5, mask="full", guidance_target="backbone")
    assert not torch.allclose(towards_irn, towards_backbone, atol=1e-4)
    assert torch.equal(ablate(pipe, lq, guidance=0.5, mask="full"), towards_backbone)  # the default
    with pytest.raises(ValueError, match="guidance_target"):
        call(pipe, lq, guidance=0.5, guidance_target="hq")


def test_the_quantize_switch_decodes_the_sampled_latent_without_the_codebook(pipe, lq):
    z0 = latents_of(pipe, lq, run=ablate)
    raw = ablate(pipe, lq, quantize=False)
    options = AblationOptions(steps=4, start_t=300)
    expected = pipe.finish(z0, pipe.estimate(lq), options, quantize=False)
    torch.testing.assert_close(raw, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(raw, ablate(pipe, lq), atol=1e-3)


def test_sface_guidance_pulls_the_face_towards_sfaces_target(pipe, lq):
    """``guidance_network=sface``: the gradient comes from SFace in torch, and the guided faces are closer
    (by SFace) to the target SFace(f(y)) than the unguided ones."""
    sface = pipe.guidance_network("sface")
    # one small step on the last of 4 steps, where z0_hat is the result: a first-order descent of what is
    # decoded (no codebook, no colour fix)
    kwargs = {"mask": "full", "guidance_range": [0.75, 1.0], "guidance_every": 1, "guidance_network": "sface",
              "quantize": False, "color_fix": "none"}
    guided = ablate(pipe, lq, guidance=0.05, **kwargs)
    unguided = ablate(pipe, lq, guidance=0.0, **kwargs)
    with torch.no_grad():
        target = sface(pipe.estimate(lq))
        gain = (sface(guided) * target).sum(-1) - (sface(unguided) * target).sum(-1)
    assert (gain > 0).all(), gain
    by_phi = ablate(pipe, lq, guidance=0.05, **{**kwargs, "guidance_network": "phi"})
    assert not torch.allclose(by_phi, guided, atol=1e-5)
    with pytest.raises(ValueError, match="guidance_network"):
        call(pipe, lq, guidance=0.5, guidance_network="arcface")
    # the tiny pipeline's IRN is an IdentityNet: it predicts phi's embedding, not SFace's
    with pytest.raises(ValueError, match="guidance_network=sface: this pipeline's IRN predicts phi's"):
        call(pipe, lq, guidance=0.5, guidance_network="sface", guidance_target="irn")
