"""The bad-input matrix of the ``diffrestore`` command: every bad argument exits 2 (or 1 for an input
without images) with ONE line naming it, before any model is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from diffrestore.cli import restore as cli
from diffrestore.pipeline.options import RestoreOptions
from diffrestore.pipeline.pipeline_diffrestore import DiffRestorePipeline
from diffrestore.pipeline.restore import FaceRestorer

ROOT = Path(__file__).parents[1]


@pytest.fixture
def no_model_loads(monkeypatch):
    def refuse(*_, **__):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(FaceRestorer, "from_options", classmethod(refuse))
    monkeypatch.setattr(DiffRestorePipeline, "from_pretrained", classmethod(refuse))


def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "taken.txt"
    path.write_text("a file, not a folder")
    return path


def clashing_inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "clash"
    folder.mkdir()
    Image.new("RGB", (64, 64)).save(folder / "face.png")
    Image.new("RGB", (64, 64)).save(folder / "face.jpg")
    return folder


def no_identity_model(tmp_path: Path) -> Path:
    folder = tmp_path / "plain"
    DiffRestorePipeline.from_model_config(ROOT / "configs/model/tiny.yaml", with_identity=False).save_pretrained(folder)
    return folder


# (case, extra arguments (a function of tmp_path and the photos folder), exit code, the message's text)
BAD_INPUTS = [
    ("steps 0", lambda t, p: ["--steps", "0"], 2, "--steps 0: must be at least 1"),
    ("steps negative", lambda t, p: ["--steps", "-5"], 2, "--steps -5: must be at least 1"),
    ("start-t past the schedule", lambda t, p: ["--start-t", "5000"], 2,
     "--start-t 5000: must be in [0, 999] (the model has 1000 training timesteps)"),
    ("upscale 0", lambda t, p: ["--upscale", "0"], 2, "--upscale 0.0: must be in (0, 8]"),
    ("unknown colour fix", lambda t, p: ["color_fix=bogus"], 2,
     "color_fix 'bogus': must be one of wavelet, chroma, none"),
    ("batch size 0", lambda t, p: ["--batch-size", "0"], 2, "--batch-size 0: must be at least 1"),
    ("eta with ddpm", lambda t, p: ["--scheduler", "ddpm", "--eta", "0.5"], 2,
     "--eta 0.5: applies to the ddim scheduler only"),
    ("a scheduler named as the sampler", lambda t, p: ["--sampler", "ddpm"], 2,
     "--sampler 'ddpm': is a scheduler (the update rule): use scheduler=ddpm"),
    ("guidance range reversed", lambda t, p: ["guidance_range=[0.8,0.2]"], 2,
     "guidance_range [0.8, 0.2]: must be [start, end] with 0 <= start <= end <= 1"),
    ("negative guidance", lambda t, p: ["--guidance", "-1"], 2, "--guidance -1.0: must be >= 0 (0 = off)"),
    ("unknown key", lambda t, p: ["stepz=3"], 2, "stepz"),
    ("fp16 on the CPU", lambda t, p: ["--device", "cpu", "--dtype", "fp16"], 2,
     "--dtype fp16: half precision does not run on the CPU"),
    ("unknown device", lambda t, p: ["--device", "foo"], 2, "--device 'foo': not a device"),
    ("fidelity out of range", lambda t, p: ["--fidelity", "1.5"], 2, "--fidelity: must be in [0, 1] (got 1.5)"),
    ("fidelity and start-t", lambda t, p: ["--fidelity", "0.5", "--start-t", "10"], 2,
     "--fidelity sets --start-t: give one or the other"),
    ("quality 0", lambda t, p: ["--quality", "0"], 2, "--quality 0: must be in 1..100"),
    ("suffix with a slash", lambda t, p: ["--suffix", "a/b"], 2, "--suffix 'a/b': must not contain a path separator"),
    ("out is a file", lambda t, p: ["--out", str(a_file(t))], 2, "taken.txt: is a file, not a folder"),
    ("out cannot be written", lambda t, p: ["--out", "/proc/diffrestore-out"], 2,
     "--out /proc/diffrestore-out: cannot write there"),
    ("out inside the input", lambda t, p: ["--out", str(p / "out")], 2,
     "the output folder must not be the input folder or inside it"),
    ("model folder missing", lambda t, p: ["--model", str(t / "nothing")], 2,
     "nothing: not a pipeline folder (no model_index.json)"),
    ("guidance without identity network", lambda t, p: ["--model", str(no_identity_model(t)), "--guidance", "0.5"],
     2, "--guidance 0.5: this model has no identity network (phi); use --guidance 0 or guidance_network=sface"),
    ("guidance towards an IRN the model lacks",
     lambda t, p: ["--model", str(no_identity_model(t)), "--guidance", "0.5", "guidance_network=sface",
                   "guidance_target=irn"],
     2, "--guidance 0.5: guidance_target=irn but this model has no IRN; use guidance_target=backbone"),
]


def run_cli(argv, capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("case, extra, code, message", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_argument_exits_before_any_model_loads(case, extra, code, message, photos, tmp_path, capsys,
                                                   no_model_loads):
    got, out, err = run_cli(["--lq", str(photos), *extra(tmp_path, photos)], capsys)
    assert got == code
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert out == ""
    assert not (tmp_path / "photos_restored").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(photos, capsys, no_model_loads):
    code, _, err = run_cli(["--lq", str(photos), "--device", "cuda"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "--device 'cuda': CUDA is not available on this machine" in err


@pytest.mark.parametrize("make, message", [
    (lambda t: t / "missing", "no such file or folder"),
    (lambda t: a_file(t), "taken.txt: .txt is not a supported image type"),
])
def test_bad_input_path(make, message, tmp_path, capsys, no_model_loads):
    code, _, err = run_cli(["--lq", str(make(tmp_path))], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_outputs_that_would_collide(tmp_path, capsys, no_model_loads):
    code, _, err = run_cli(["--lq", str(clashing_inputs(tmp_path)), "--ext", "webp"], capsys)
    assert code == 2 and "would both be written to" in err and "face.webp" in err and err.count("\n") == 1


def test_an_unknown_choice_is_argparse_usage(tmp_path, capsys, no_model_loads):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--lq", str(tmp_path), "--ext", "gif"])
    assert exit_info.value.code == 2
    assert "--ext: invalid choice: 'gif'" in capsys.readouterr().err


def test_empty_folder_says_so(tmp_path, capsys, no_model_loads):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run_cli(["--lq", str(empty)], capsys)
    assert code == 1 and out == ""
    assert err.strip() == f"{empty}: no images found; looked for .png .jpg .jpeg .webp .bmp .tif .tiff"


def test_folder_of_other_files_counts_them(tmp_path, capsys, no_model_loads):
    folder = tmp_path / "gifs"
    folder.mkdir()
    Image.new("RGB", (64, 64)).save(folder / "anim.gif")
    code, _, err = run_cli(["--lq", str(folder)], capsys)
    assert code == 1 and "no images found (1 other file(s) ignored)" in err


def test_good_arguments_pass_the_checks(photos, tmp_path):
    args = cli.parse_args(["--lq", str(photos), "--device", "cpu", "--fidelity", "0.5"])
    options, _, out, jobs = cli.prepare(args)
    assert options == RestoreOptions(device="cpu")  # fidelity 0.5 is the default preset
    assert out == tmp_path / "photos_restored" and out.is_dir() and len(jobs) == 2


def test_broken_weights_exit_2_naming_the_model(tmp_path, face_paths, capsys):
    model = tmp_path / "broken"
    DiffRestorePipeline.from_model_config(ROOT / "configs/model/tiny.yaml").save_pretrained(model)
    weights = model / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    code, _, err = run_cli(["--lq", str(face_paths[0]), "--out", str(tmp_path / "out"), "--model", str(model),
                            "--device", "cpu", "--quiet"], capsys)
    assert code == 2 and err.startswith(f"error: --model {model}: cannot be loaded (") and "Traceback" not in err


def test_the_cli_and_the_pipeline_refuse_options_by_the_same_rules():
    """One validator: the CLI prints RestoreOptions.problems with its flag names, and the pipeline's
    check() raises the first of the same problems."""
    from diffrestore.cli.options import option_problems
    from diffrestore.pipeline.options import RestoreOptions, SamplingOptions

    bad = RestoreOptions(steps=0, feather=0.9, color_fix="sepia")
    assert [line.split(":")[0] for line in option_problems(bad)] == ["--steps 0", "color_fix 'sepia'", "feather 0.9"]
    with pytest.raises(ValueError, match="steps 0: must be at least 1"):
        SamplingOptions(steps=0).check()
    SamplingOptions(start_t=1500).check()  # no model given: only start_t >= 0 is known
    with pytest.raises(ValueError, match=r"start_t 1500: must be in \[0, 999\]"):
        SamplingOptions(start_t=1500).check(num_train_timesteps=1000)
