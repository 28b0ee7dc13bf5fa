"""ONNX export (``diffrestore-export --onnx``) and the numpy + onnxruntime reference restore, on the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
import onnx  # noqa: E402

from diffrestore.deploy.onnx_export import compare_with_torch, export_onnx, main  # noqa: E402
from diffrestore.deploy.onnx_restore import OnnxRestorer, OnnxSettings, torch_randn  # noqa: E402
from test_pipeline import R, tiny_pipeline  # noqa: E402

COMPONENTS = {"backbone", "vqgan_encoder", "vqgan_decoder", "unet", "identity", "irn"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[object, Path]:
    pipe, folder = tiny_pipeline(), tmp_path_factory.mktemp("onnx")
    export_onnx(pipe, folder)
    return pipe, folder


def test_every_exported_network_equals_torch(exported):
    pipe, folder = exported
    differences = compare_with_torch(pipe, folder, batch=3)  # exported at batch 2: the batch axis is dynamic
    assert set(differences) == COMPONENTS
    assert max(differences.values()) < 1e-3, differences


def test_pipeline_json_describes_the_files(exported):
    pipe, folder = exported
    spec = json.loads((folder / "pipeline.json").read_text())
    assert spec["opset"] == onnx.load(folder / "unet.onnx").opset_import[0].version
    assert spec["scheduler"]["num_train_timesteps"] == pipe.scheduler.config.num_train_timesteps
    assert spec["template"] == pipe.config.template and spec["resolution"] == R
    assert spec["sampling"] == {"steps": 10, "start_t": 100, "eta": 0.0, "cfg_scale": 1.0, "color_fix": "chroma"}
    assert set(spec["components"]) == COMPONENTS | {"mask"}
    unet = onnx.load(folder / "unet.onnx").graph
    assert [i.name for i in unet.input] == ["latents", "timestep", "condition"]
    assert all(i.type.tensor_type.shape.dim[0].dim_param == "batch" for i in unet.input)
    np.testing.assert_allclose(np.load(folder / "mask.npy"), pipe.mask().detach().numpy())


@pytest.mark.parametrize("settings", [dict(steps=4, start_t=300), dict(steps=3, start_t=200, cfg_scale=2.0),
                                      dict(steps=4, start_t=300, color_fix="wavelet")])
def test_reference_restore_equals_the_pipeline(exported, settings):
    pipe, folder = exported
    faces = (torch.rand(2, R, R, 3, generator=torch.Generator().manual_seed(3)) * 255).round().to(torch.uint8).numpy()
    seeds = [5, 11]
    expected = pipe(list(faces), generator=[torch.Generator().manual_seed(s) for s in seeds], output_type="np",
                    **settings).images
    got = OnnxRestorer(folder)(list(faces), OnnxSettings(**settings), seeds=seeds)
    difference = np.abs(got.astype(np.float64) - np.round(expected * 255))
    assert difference.mean() < 0.5 and difference.max() <= 2, (difference.mean(), difference.max())
    other_seed = OnnxRestorer(folder)(list(faces), OnnxSettings(**settings), seeds=[6, 12])
    assert np.abs(other_seed.astype(np.float64) - got).mean() > 1  # the seed matters: the noise is replayed


@pytest.mark.parametrize("shape,seed", [((4, 8, 8), 0), ((1, 4, 64, 64), 2 ** 40 + 7), ((3, 5, 7), 1), ((17,), 9)])
def test_torch_randn_replays_torch(shape, seed):
    expected = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).numpy()
    np.testing.assert_allclose(torch_randn(shape, seed), expected, atol=1e-5, rtol=0)


def test_reference_restore_imports_no_torch(exported):
    _, folder = exported
    code = ("import sys, numpy as np; from diffrestore.deploy.onnx_restore import OnnxRestorer, OnnxSettings; "
            f"out = OnnxRestorer({str(folder)!r})([np.zeros(({R}, {R}, 3), np.uint8)], OnnxSettings(steps=2)); "
            "assert out.shape == (1, %d, %d, 3), out.shape; print('torch' in sys.modules)" % (R, R))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_export_command_refuses_bad_arguments(tmp_path, capsys):
    assert main(["--onnx", str(tmp_path / "out"), "--opset", "11"]) == 2
    assert "--opset 11: must be >= 16" in capsys.readouterr().err
    assert main(["--onnx", str(tmp_path / "out"), "--model", str(tmp_path / "nowhere")]) == 2
    assert f"{tmp_path / 'nowhere'}: not a pipeline folder" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["--onnx", str(tmp_path / "file")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_reference_restore_refuses_another_scheduler(exported, tmp_path):
    _, folder = exported
    spec = json.loads((folder / "pipeline.json").read_text())
    (tmp_path / "pipeline.json").write_text(json.dumps({**spec, "scheduler_class": "EulerDiscreteScheduler"}))
    with pytest.raises(ValueError, match="scheduler EulerDiscreteScheduler: the reference restore runs DDIM only"):
        OnnxRestorer(tmp_path)
    with pytest.raises(FileNotFoundError, match="no pipeline.json"):
        OnnxRestorer(tmp_path / "missing")


def test_an_irn_on_sfaces_network_exports_and_equals_torch(tmp_path):
    """The 256 px model's IRN is SFace's network behind a warp (GridSample): it exports like the compact one."""
    from diffrestore.models import SFaceNet

    pipe = tiny_pipeline()
    irn = SFaceNet.for_template(np.asarray(pipe.config.template)).eval()
    pipe = pipe.with_components(irn=irn)
    export_onnx(pipe, tmp_path)
    differences = compare_with_torch(pipe, tmp_path, batch=3)
    assert differences["irn"] < 1e-3, differences
