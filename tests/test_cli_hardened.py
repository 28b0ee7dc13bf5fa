"""The ``diffrestore`` command as a user meets it (a subprocess: exit code and the one-line message):
no silent wrong output, arguments refused up front, grey stays grey, stale temporaries removed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffrestore.pipeline.checksums import CHECKSUM_FILE, write_checksums
from diffrestore.pipeline.pipeline_diffrestore import DiffRestorePipeline

ROOT = Path(__file__).parents[1]
FAST = ["--steps", "2", "--start-t", "100", "--guidance", "0", "--device", "cpu", "--quiet"]
UNET_WEIGHTS = Path("unet") / "diffusion_pytorch_model.safetensors"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
    return subprocess.run([sys.executable, str(ROOT / "sample.py"), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def tiny_model(folder: Path, checksums: bool = False) -> Path:
    DiffRestorePipeline.from_model_config(ROOT / "configs/model/tiny.yaml").save_pretrained(folder)
    if checksums:
        write_checksums(folder)
    return folder


def corrupt(path: Path) -> None:
    """Overwrite the middle of ``path`` with random bytes, as a bad download or disk would."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4096] = os.urandom(4096)
    path.write_bytes(bytes(data))


def test_corrupted_weights_of_a_checked_folder_exit_2_naming_the_file(tmp_path, photos):
    model = tiny_model(tmp_path / "tiny", checksums=True)
    corrupt(model / UNET_WEIGHTS)
    run = run_cli("--lq", str(photos), "--out", str(tmp_path / "out"), "--model", str(model), "--aligned", *FAST)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert str(model / UNET_WEIGHTS) in lines[0] and "corrupted" in lines[0] and CHECKSUM_FILE in lines[0]
    assert not list((tmp_path / "out").glob("*.png"))


def test_bundled_models_carry_checksums_that_match():
    from diffrestore.pipeline.checksums import verify_checksums
    from diffrestore.pipeline.pipeline_diffrestore import PRETRAINED

    for folder in sorted(p for p in PRETRAINED.iterdir() if (p / "model_index.json").is_file()):
        assert (folder / CHECKSUM_FILE).is_file(), folder
        verify_checksums(folder)


def nan_unet_model(folder: Path) -> Path:
    """A folder without checksums (a user's own) whose UNet outputs NaN: loads, but restores nothing."""
    pipe = DiffRestorePipeline.from_model_config(ROOT / "configs/model/tiny.yaml")
    with torch.no_grad():
        next(pipe.unet.parameters()).fill_(float("nan"))
    pipe.save_pretrained(folder)
    return folder


def test_a_nan_face_is_a_failed_file_never_written(tmp_path, photos):
    model = nan_unet_model(tmp_path / "nan")
    out = tmp_path / "out"
    run = run_cli("--lq", str(photos), "--out", str(out), "--model", str(model), "--aligned", *FAST)
    assert run.returncode == 1, run.stdout + run.stderr
    for name in sorted(p.name for p in photos.iterdir()):  # every file reported, the batch went on
        assert f"FAILED {photos / name}: the model's output for face 0 is not finite (NaN/Inf)" in run.stdout
    assert not list(out.glob("*.webp"))


def test_a_collapsed_face_fails_only_its_own_file(monkeypatch, tmp_path):
    """One face of a batch collapsed to a constant: that image fails, the other is restored."""
    from PIL import Image

    from diffrestore.pipeline.options import RestoreOptions
    from diffrestore.pipeline.restore import FaceRestorer

    pipe = DiffRestorePipeline.from_model_config(ROOT / "configs/model/tiny.yaml")
    restorer = FaceRestorer(pipe, RestoreOptions(device="cpu", steps=2, start_t=100, guidance=0))
    real = restorer.restore_batch

    def collapse_second(faces, generators):
        restored = real(faces, generators)
        restored[1:] = 0.25
        return restored

    monkeypatch.setattr(restorer, "restore_batch", collapse_second)
    images = [Image.effect_noise((64, 64), 40).convert("RGB") for _ in range(2)]
    good, flat = restorer.restore_photos(images, ["a", "b"], aligned=True)
    assert good.failure == "" and "one flat colour" in flat.failure


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1", "8.5", "40"])
def test_upscale_outside_0_to_8_is_refused_up_front(value, tmp_path, photos):
    run = run_cli("--lq", str(photos), "--upscale", value, "--device", "cpu")
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert lines[0].startswith(f"error: --upscale {float(value)!r}: must be in (0, 8]"), lines[0]
    assert not (tmp_path / "photos_restored").exists()


def test_upscale_8_passes_the_checks(photos):
    from diffrestore.cli import restore as cli

    options, _, _, _ = cli.prepare(cli.parse_args(["--lq", str(photos), "--upscale", "8", "--device", "cpu"]))
    assert options.upscale == 8


def test_grey_inputs_stay_grey(tmp_path, face_paths):
    import numpy as np
    from PIL import Image

    lq = tmp_path / "grey"
    lq.mkdir()
    face = Image.open(face_paths[0]).convert("L")
    face.save(lq / "l.png")
    face.convert("RGB").save(lq / "rgb.png")
    with_alpha = face.convert("LA")
    with_alpha.putalpha(200)
    with_alpha.save(lq / "la.png")
    out = tmp_path / "out"
    run = run_cli("--lq", str(lq), "--out", str(out), "--model", "utkface128", "--aligned", *FAST)
    assert run.returncode == 0, run.stdout + run.stderr
    for name in ("l.png", "rgb.png", "la.png"):
        rgb = np.asarray(Image.open(out / name).convert("RGB"), dtype=np.int16)
        assert np.abs(rgb[..., 0] - rgb[..., 1]).max() == 0 and np.abs(rgb[..., 1] - rgb[..., 2]).max() == 0, name
        assert rgb.std() > 10, name  # restored, not blank


def test_stale_temporaries_of_killed_saves_are_removed_at_start(tmp_path, photos):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    stale = [out / ".face.png.k3j_9xq2.tmp", out / "sub" / ".other.jpg.abcdefgh.tmp"]
    fresh = out / ".saving.png.zz11yy22.tmp"  # another run is saving it right now
    foreign = out / ".notes.txt.abcdefgh.tmp"  # not ours: not an image's temporary
    for path in [*stale, fresh, foreign]:
        path.write_bytes(b"partial")
    an_hour_ago = os.path.getmtime(fresh) - 3600
    for path in [*stale, foreign]:
        os.utime(path, (an_hour_ago, an_hour_ago))
    model = tiny_model(tmp_path / "tiny")
    run = run_cli("--lq", str(photos), "--out", str(out), "--model", str(model), "--aligned", *FAST)
    assert run.returncode == 0, run.stdout + run.stderr
    assert not any(path.exists() for path in stale)
    assert fresh.exists() and foreign.exists()


def test_version():
    from diffrestore import __version__

    run = run_cli("--version")
    assert run.returncode == 0 and run.stdout.strip() == f"diffrestore {__version__}"


def test_a_wrong_model_name_lists_the_bundled_models(photos):
    run = run_cli("--lq", str(photos), "--model", "utkface", "--device", "cpu", cwd=photos)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert lines[0].startswith("error: --model utkface: not a pipeline folder") and \
        "bundled model (celebahq256, utkface128)" in lines[0]


def test_help_explains_every_option():
    from diffrestore.cli.options import build_parser

    run = run_cli("--help")
    assert run.returncode == 0 and "docstring" not in run.stdout and "exit status" in run.stdout
    for action in build_parser()._actions:
        assert action.help, f"{action.option_strings or action.dest} has no help text"


def test_named_presets_work_from_any_folder(tmp_path, photos):
    from diffrestore.cli import restore as cli

    run = run_cli("--lq", str(photos), "--preset", "nosuch", cwd=tmp_path)
    assert run.returncode == 2 and "--preset: invalid choice: 'nosuch'" in run.stderr and "quality" in run.stderr
    args = cli.parse_args(["--lq", str(photos), "--preset", "utkface128_quality", "--device", "cpu"])
    options, _, _, _ = cli.prepare(args)
    assert (options.cfg_scale, options.guidance_every, options.steps) == (2.0, 2, 50)  # its defaults chain too
    model = tiny_model(tmp_path / "tiny")
    run = run_cli("--lq", str(photos), "--out", str(tmp_path / "out"), "--model", str(model), "--preset", "quality",
                  "--aligned", *FAST, cwd=tmp_path)
    assert run.returncode == 0 and "done 2" in run.stdout, run.stdout + run.stderr
