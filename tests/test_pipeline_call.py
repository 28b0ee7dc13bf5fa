"""The pipeline called the diffusers way: inputs, outputs, progress, callbacks, schedulers, defaults."""

from __future__ import annotations

import io
import shutil
import sys
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                       PNDMScheduler)
from PIL import Image

from diffrestore import DiffRestorePipeline, DiffRestorePipelineOutput, RestoreOptions, SamplingOptions
from diffrestore.config import load_config
from diffrestore.io import load_image, pil_to_tensor, tensor_to_pil
from diffrestore.pipeline.restore import face_seed
from diffrestore.sampling import respaced_timesteps

ROOT = Path(__file__).parents[1]
TINY = ROOT / "configs" / "model" / "tiny.yaml"
PRESETS = ROOT / "configs" / "sample"
R = 32
FAST = {"steps": 4, "start_t": 300}


@pytest.fixture(scope="module")
def pipe() -> DiffRestorePipeline:
    pipe = DiffRestorePipeline.from_model_config(TINY)
    with torch.no_grad():  # a fresh backbone is the identity (zero-initialised output layer)
        pipe.backbone.conv_out[-1].weight.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(1))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def faces(face_paths) -> list[Image.Image]:
    return [load_image(p).resize((R, R), Image.BICUBIC) for p in face_paths[:2]]


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def as_tensor(images) -> torch.Tensor:
    return torch.stack([pil_to_tensor(im) for im in images])


def test_pil_numpy_and_tensor_inputs_give_the_same_faces(pipe, faces):
    out = pipe(faces[0], generator=seeded(), **FAST)
    assert isinstance(out, DiffRestorePipelineOutput) and len(out.images) == 1
    assert out.images[0].size == (R, R) and out.images[0].mode == "RGB"
    reference = np.asarray(out.images[0])
    for same in (np.asarray(faces[0]), np.asarray(faces[0]).astype(np.float32) / 255, pil_to_tensor(faces[0]),
                 [faces[0]]):
        assert np.array_equal(np.asarray(pipe(same, generator=seeded(), **FAST).images[0]), reference)
    restored = pipe(faces[0], generator=seeded(), **FAST).images[0]
    assert np.abs(np.asarray(restored, dtype=int) - np.asarray(faces[0], dtype=int)).mean() > 2  # it did something


def test_a_list_is_a_batch_with_one_generator_per_face(pipe, faces):
    both = pipe(faces, generator=[seeded(5), seeded(6)], output_type="pt", **FAST).images
    assert both.shape == (2, 3, R, R)
    second = pipe(faces[1], generator=seeded(6), output_type="pt", **FAST).images[0]
    torch.testing.assert_close(both[1], second, rtol=0, atol=1e-5)
    other_seed = pipe(faces[1], generator=seeded(7), output_type="pt", **FAST).images[0]
    assert (other_seed - second).abs().mean() > 1e-3


def test_output_types_and_return_dict(pipe, faces):
    pt = pipe(faces, generator=seeded(), output_type="pt", **FAST).images
    assert pt.dtype == torch.float32 and pt.min() >= -1 and pt.max() <= 1
    arrays = pipe(faces, generator=seeded(), output_type="np", **FAST).images
    assert arrays.shape == (2, R, R, 3) and arrays.dtype == np.float32
    np.testing.assert_allclose(arrays, ((pt + 1) / 2).permute(0, 2, 3, 1).numpy(), atol=1e-6)
    pil = pipe(faces, generator=seeded(), **FAST).images
    assert all(np.array_equal(np.asarray(im), np.asarray(tensor_to_pil(face))) for im, face in zip(pil, pt))
    (images,) = pipe(faces, generator=seeded(), output_type="pt", return_dict=False, **FAST)
    assert torch.equal(images, pt)


def test_inputs_are_resized_to_the_model(pipe, face_paths):
    big = load_image(face_paths[0])  # 128 px for a 32 px model
    assert big.size != (R, R)
    assert pipe(big, generator=seeded(), **FAST).images[0].size == (R, R)
    with pytest.raises(ValueError, match="image"):
        pipe(np.zeros((R, R, 3), np.float32) + 2.0)
    with pytest.raises(TypeError, match="image"):
        pipe("face.png")


def test_settings_come_from_options_or_keywords(pipe, faces):
    options = SamplingOptions(steps=3, start_t=200, guidance=0.0)
    by_options = pipe(faces[0], options, generator=seeded(), output_type="pt").images
    by_keywords = pipe(faces[0], generator=seeded(), output_type="pt", steps=3, start_t=200, guidance=0.0).images
    assert torch.equal(by_options, by_keywords)
    mixed = pipe(faces[0], options, generator=seeded(), output_type="pt", start_t=250).images
    assert not torch.equal(mixed, by_options)
    with pytest.raises(TypeError, match="'stepz'"):
        pipe(faces[0], stepz=3)
    with pytest.raises(ValueError, match="color_fix"):
        pipe(faces[0], color_fix="adain")


def test_progress_bar_and_step_callback(pipe, faces):
    seen = []

    def callback(p, step, timestep, tensors):
        assert p is pipe and tensors["latents"].shape == tensors["denoised"].shape == (1, *pipe.latent_shape)
        seen.append((step, timestep))
        return {}

    log = io.StringIO()
    pipe.set_progress_bar_config(file=log, disable=False)
    try:
        untouched = pipe(faces[0], generator=seeded(), output_type="pt", callback_on_step_end=callback, **FAST).images
    finally:
        pipe.set_progress_bar_config(disable=True)
    assert "4/4" in log.getvalue()
    assert seen == list(enumerate(respaced_timesteps(FAST["start_t"], FAST["steps"])))

    def zero_latents(p, step, timestep, tensors):
        return {"latents": torch.zeros_like(tensors["latents"])} if step == 1 else {}

    replaced = pipe(faces[0], generator=seeded(), output_type="pt", callback_on_step_end=zero_latents, **FAST).images
    assert (replaced - untouched).abs().mean() > 1e-3


# --------------------------------------------------------------------------------------------------
# the scheduler slot is the sampler's update rule; options.sampler the algorithm


def restore_with(pipe, scheduler_class, faces, **kwargs):
    swapped = pipe.with_components(scheduler=scheduler_class.from_config(pipe.scheduler.config))
    return swapped(faces, generator=seeded(3), output_type="pt", **{"steps": 20, "start_t": 400, **kwargs}).images


def test_swapping_the_scheduler_swaps_the_update_rule(pipe, faces):
    assert type(pipe.scheduler) is DDIMScheduler  # what from_parts puts in the slot: the default scheduler
    ddim = restore_with(pipe, DDIMScheduler, faces, guidance=0.0)
    # Euler in sigma space is DDIM (eta 0) written in other coordinates: the same result up to rounding
    torch.testing.assert_close(restore_with(pipe, EulerDiscreteScheduler, faces, guidance=0.0), ddim,
                               atol=2e-4, rtol=0)
    # DPM-Solver++ integrates the same flow to second order: close to DDIM, but not the same
    dpm = restore_with(pipe, DPMSolverMultistepScheduler, faces, guidance=0.0)
    assert 1e-4 < (dpm - ddim).abs().mean() < 0.05
    ddpm = restore_with(pipe, DDPMScheduler, faces, guidance=0.0)  # ancestral: fresh noise at every step
    assert (ddpm - ddim).abs().mean() > (dpm - ddim).abs().mean()
    for scheduler in (EulerDiscreteScheduler, DPMSolverMultistepScheduler):  # guidance goes through each of them
        guided = restore_with(pipe, scheduler, faces, guidance=0.5, guidance_every=1)
        assert (guided - restore_with(pipe, scheduler, faces, guidance=0.0)).abs().mean() > 1e-4


def test_setting_the_scheduler_attribute_takes_effect_and_survives_saving(faces, tmp_path):
    pipe = DiffRestorePipeline.from_model_config(TINY)
    pipe.set_progress_bar_config(disable=True)
    before = pipe(faces, generator=seeded(), output_type="pt", guidance=0.0, **FAST).images
    pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    after = pipe(faces, generator=seeded(), output_type="pt", guidance=0.0, **FAST).images
    assert (after - before).abs().mean() > 1e-3
    pipe.save_pretrained(tmp_path / "ddpm")
    loaded = DiffRestorePipeline.from_pretrained(tmp_path / "ddpm")
    assert type(loaded.scheduler) is DDPMScheduler
    loaded.set_progress_bar_config(disable=True)
    assert torch.equal(loaded(faces, generator=seeded(), output_type="pt", guidance=0.0, **FAST).images, after)


def test_an_unsupported_scheduler_is_refused_by_name(pipe, faces):
    swapped = pipe.with_components(scheduler=PNDMScheduler.from_config(pipe.scheduler.config))
    with pytest.raises(ValueError, match="PNDMScheduler is not supported.*DPMSolverMultistepScheduler"):
        swapped(faces[0], **FAST)


# --------------------------------------------------------------------------------------------------
# one declaration of every setting


def test_the_default_preset_is_the_dataclass_and_presets_list_only_changes():
    assert RestoreOptions(**load_config(PRESETS / "default.yaml", RestoreOptions)) == RestoreOptions()
    defaults = asdict(RestoreOptions())
    for name, changed in (("fast", {}), ("quality", {"cfg_scale": 2.0}),
                          ("identity", {"guidance": 0.5, "guidance_network": "sface", "guidance_target": "irn"}),
                          ("utkface128", {"steps": 50, "guidance": 0.5, "color_fix": "wavelet"}),
                          ("utkface128_quality", {"steps": 50, "guidance": 0.5, "color_fix": "wavelet", "cfg_scale": 2.0,
                                                  "guidance_every": 2})):
        preset = asdict(RestoreOptions(**load_config(PRESETS / f"{name}.yaml", RestoreOptions)))
        assert {k: v for k, v in preset.items() if defaults[k] != v} == changed, name
    sampling = {f.name for f in fields(SamplingOptions)}
    assert {k: v for k, v in defaults.items() if k in sampling} == asdict(SamplingOptions())


def test_the_cli_defaults_are_the_pipeline_defaults():
    from diffrestore.cli import restore as cli

    options = cli.build_options(cli.parse_args(["--lq", "x"]))
    assert options == RestoreOptions()


def test_pipe_with_no_options_gives_what_sample_py_gives(real_lq_paths, tmp_path):
    """The bundled model: ``pipe(face)`` (with the generator sample.py derives for that file) against
    ``sample.py --aligned`` with nothing else, pixel for pixel within 2/255."""
    sys.path.insert(0, str(ROOT))
    import sample  # noqa: E402

    pipe = DiffRestorePipeline.from_pretrained()
    folder = tmp_path / "faces"
    folder.mkdir()
    face = folder / "face.png"  # lossless, so the file holds exactly what sample.py restored
    size = pipe.config.resolution  # an aligned face at the model's size: both give it back at that size
    load_image(real_lq_paths[0]).resize((size, size), Image.BICUBIC).save(face)
    assert sample.main(["--lq", str(folder), "--out", str(tmp_path / "out"), "--aligned"]) == 0
    by_cli = np.asarray(load_image(tmp_path / "out" / "face.png"), dtype=int)

    by_pipe = pipe(load_image(face), generator=seeded(face_seed(0, "face.png"))).images[0]
    difference = np.abs(np.asarray(by_pipe, dtype=int) - by_cli)
    assert difference.max() <= 2, difference.max()
    assert np.abs(by_cli - np.asarray(load_image(face), dtype=int)).mean() > 1  # both restored the face
    shutil.rmtree(tmp_path / "out")
