"""The restoring command (``diffrestore``, ``sample.py``) end to end on the real images of tests/assets
with a tiny saved pipeline folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from diffrestore.cli import restore as sample
from diffrestore.cli.files import comparison_path
from diffrestore.pipeline.faces import FaceDetector, alignment_matrix, paste_faces, upscale_image
from diffrestore.io import load_image, pil_to_tensor
from diffrestore.pipeline.pipeline_diffrestore import DiffRestorePipeline

ROOT = Path(__file__).parents[1]

TINY = ROOT / "configs" / "model" / "tiny.yaml"
FAST = ["--steps", "3", "--start-t", "200", "--device", "cpu", "--seed", "3"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "tiny"
    DiffRestorePipeline.from_model_config(TINY).save_pretrained(folder)
    return folder


def copy_images(paths, folder: Path, nested: int = 0) -> list[Path]:
    """Copy ``paths`` into ``folder``, the last ``nested`` of them into ``folder/sub/``."""
    out = []
    for i, path in enumerate(paths):
        target = folder / ("sub" if i >= len(paths) - nested else "") / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
        out.append(target)
    return out


def test_aligned_folder_then_resume(model_dir, face_paths, tmp_path, capsys):
    lq = tmp_path / "faces"
    inputs = copy_images(face_paths[:6], lq, nested=2)
    before = {p: p.read_bytes() for p in inputs}
    code = sample.main(["--lq", str(lq), "--model", str(model_dir), "--aligned", "--upscale", "2",
                        "--save-comparison", *FAST])
    assert code == 0
    out = tmp_path / "faces_restored"
    for path in inputs:
        result = out / path.relative_to(lq)
        assert Image.open(result).size == (256, 256)  # the input's 128 px x upscale 2 (the model works at 32)
        assert Image.open(comparison_path(result)).size == (512, 256)
    assert {p: p.read_bytes() for p in inputs} == before  # inputs untouched
    assert "done 6" in capsys.readouterr().out

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert sample.main(["--lq", str(lq), "--model", str(model_dir), "--aligned", "--upscale", "2",
                        "--save-comparison", *FAST]) == 0
    assert "done 0 (0 faces), skipped 6" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps

    # other options: these files are not what the rerun asks for, so not skipped and not replaced
    assert sample.main(["--lq", str(lq), "--model", str(model_dir), "--aligned", *FAST]) == 1
    report = capsys.readouterr().out
    assert "skipped 0" in report and "failed 6" in report
    assert "is not this image's output (made with other options: save_comparison, upscale); --overwrite" in report
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps


def test_same_seed_same_output(model_dir, face_paths, tmp_path):
    lq = tmp_path / "one.webp"
    shutil.copy(face_paths[0], lq)
    runs = []
    for name in ("a", "b"):
        assert sample.main(["--lq", str(lq), "--model", str(model_dir), "--out", str(tmp_path / name), "--aligned",
                            "scheduler=ddpm", *FAST]) == 0
        runs.append(pil_to_tensor(load_image(tmp_path / name / "one.webp")))
    # WebP is lossy but deterministic: identical restorations encode to identical files
    assert (tmp_path / "a" / "one.webp").read_bytes() == (tmp_path / "b" / "one.webp").read_bytes()


def test_corrupt_file_is_reported_and_the_rest_restored(model_dir, face_paths, tmp_path, capsys):
    lq = tmp_path / "mixed"
    inputs = copy_images(face_paths[:3], lq)
    (lq / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    code = sample.main(["--lq", str(lq), "--model", str(model_dir), "--aligned", "--batch-size", "2", *FAST])
    assert code == 1
    report = capsys.readouterr().out
    assert "failed 1" in report and "broken.png" in report
    out = tmp_path / "mixed_restored"
    assert all((out / p.name).is_file() for p in inputs) and not (out / "broken.png").exists()


def test_whole_photos_keep_their_background(model_dir, whole_paths, tmp_path, capsys):
    lq = tmp_path / "whole"
    inputs = copy_images(whole_paths, lq)
    assert sample.main(["--lq", str(lq), "--model", str(model_dir), "--whole", "--upscale", "2", *FAST]) == 0
    report = capsys.readouterr().out
    assert "done 3" in report
    pipe_template = DiffRestorePipeline.load_config(model_dir)["template"]
    detector = FaceDetector("cpu")
    for path in inputs:
        photo = load_image(path)
        restored = load_image(tmp_path / "whole_restored" / path.name)
        assert restored.size == (2 * photo.width, 2 * photo.height)
        faces = detector.detect(photo)
        assert faces
        matrices = [alignment_matrix(f.landmarks, pipe_template) for f in faces]
        expected = upscale_image(pil_to_tensor(photo), 2.0)
        coverage = paste_faces(torch.zeros_like(expected), torch.ones(len(faces), 3, 32, 32), matrices, 2.0)[0]
        far = torch.nn.functional.max_pool2d(coverage[None, None], 9, 1, 4)[0, 0] == 0  # clear of JPEG blocks
        diff = (pil_to_tensor(restored) - expected).abs().mean(0)
        assert diff[far].mean() < 0.02, path  # JPEG (q95) re-encoding error only
        assert diff[coverage > 0.99].mean() > 0.05, path  # the faces were replaced


def test_detail_keeps_the_photo_sharpness_of_large_faces(model_dir, whole_paths, tmp_path):
    """The tiny model works at 32 px, far below the faces of gfpgan_Blake_Lively: ``detail=1`` (the
    default) pastes them with the photo's own fine detail, ``detail=0`` as blurred 32-px faces."""
    lq = tmp_path / "blake.png"  # lossless, so the Laplacian measures the paste, not JPEG blocks
    load_image(next(p for p in whole_paths if "Blake" in p.name)).save(lq)
    photo = pil_to_tensor(load_image(lq))
    template = DiffRestorePipeline.load_config(model_dir)["template"]
    matrices = [alignment_matrix(f.landmarks, template) for f in FaceDetector("cpu").detect(load_image(lq))]
    inside = paste_faces(torch.zeros_like(photo), torch.ones(len(matrices), 3, 32, 32), matrices, 1.0)[0] > 0.99
    kernel = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).expand(3, 1, 3, 3)

    def laplacian_energy(image: torch.Tensor) -> float:
        return torch.nn.functional.conv2d(image[None], kernel, padding=1, groups=3)[0][:, inside].pow(2).mean().item()

    energy = {}
    for detail in (1.0, 0.0):
        out = tmp_path / f"detail{detail}"
        assert sample.main(["--lq", str(lq), "--out", str(out), "--model", str(model_dir), "--whole",
                            f"detail={detail}", *FAST]) == 0
        energy[detail] = laplacian_energy(pil_to_tensor(load_image(out / lq.name)))
    photo_energy = laplacian_energy(photo)
    assert energy[0.0] < 0.3 * photo_energy and 0.7 * photo_energy < energy[1.0] < 1.5 * photo_energy, \
        (energy, photo_energy)


def test_photo_without_faces_is_copied_upscaled(model_dir, face_paths, tmp_path, capsys):
    lq = tmp_path / "nofaces"
    lq.mkdir()
    Image.new("RGB", (80, 60), (40, 120, 200)).save(lq / "sky.png")
    assert sample.main(["--lq", str(lq), "--model", str(model_dir), "--whole", "--upscale", "2", *FAST]) == 0
    assert "no face found" in capsys.readouterr().out
    out = load_image(tmp_path / "nofaces_restored" / "sky.png")
    assert out.size == (160, 120) and out.getpixel((50, 50)) == (40, 120, 200)


def test_refusals(model_dir, face_paths, tmp_path, capsys):
    lq = tmp_path / "in"
    copy_images(face_paths[:1], lq)
    assert sample.main(["--lq", str(lq), "--out", str(lq / "out"), "--model", str(model_dir), *FAST]) == 2
    assert "must not be the input folder" in capsys.readouterr().err
    assert sample.main(["--lq", str(lq), "--model", str(tmp_path / "nothing"), *FAST]) == 2
    assert "not a pipeline folder" in capsys.readouterr().err
    assert sample.main(["--lq", str(lq), "--model", str(model_dir), "stepz=3", *FAST]) == 2
    assert "stepz" in capsys.readouterr().err
    assert sample.main(["--lq", str(tmp_path / "missing"), "--model", str(model_dir)]) == 2


def test_presets_and_overrides(tmp_path):
    presets = sorted((ROOT / "configs" / "sample").glob("*.yaml"))
    assert len(presets) >= 4
    for preset in presets:
        args = sample.parse_args(["--lq", "x", "--config", str(preset)])
        assert sample.build_options(args).steps > 0
    args = sample.parse_args(["--lq", "x", "--config", str(ROOT / "configs/sample/utkface128_quality.yaml"), "--steps", "7",
                              "guidance_range=[0.1,0.5]", "--whole"])
    options = sample.build_options(args)
    assert options.steps == 7 and options.guidance_range == [0.1, 0.5] and options.aligned is False
    assert options.cfg_scale == 2.0 and options.start_t == 100  # from the preset and its default.yaml
    assert sample.default_out(tmp_path) == tmp_path.parent / f"{tmp_path.name}_restored"


def test_script_runs_as_a_command(model_dir, face_paths, tmp_path):
    lq = tmp_path / "cli"
    copy_images(face_paths[:2], lq)
    run = subprocess.run([sys.executable, str(ROOT / "sample.py"), "--lq", str(lq), "--model", str(model_dir),
                          "--aligned", *FAST], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "done 2" in run.stdout
    assert len(list((tmp_path / "cli_restored").glob("*.webp"))) == 2


def test_auto_mode_decides_per_image(model_dir, whole_paths, tmp_path, capsys):
    lq = tmp_path / "auto"
    copy_images(whole_paths[:1], lq)
    Image.new("RGB", (96, 96), (200, 180, 160)).save(lq / "blank.png")  # square, no detectable face
    assert sample.main(["--lq", str(lq), "--model", str(model_dir), *FAST]) == 0
    report = capsys.readouterr().out
    out = tmp_path / "auto_restored"
    assert Image.open(out / whole_paths[0].name).size == Image.open(whole_paths[0]).size  # whole photo
    assert Image.open(out / "blank.png").size == (96, 96)  # an aligned face, back at its own size
    assert "blank.png: no face detected; square, so restored as an aligned face" in report


def test_pip_installs_the_diffrestore_command(tmp_path):
    command = shutil.which("diffrestore", path=str(Path(sys.executable).parent))
    assert command, f"no diffrestore command beside {sys.executable}: pip install -e . installs it"
    (tmp_path / "empty").mkdir()
    run = subprocess.run([command, "--lq", str(tmp_path / "empty")], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 1 and "no images found" in run.stderr, run.stderr
