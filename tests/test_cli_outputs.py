"""What the ``diffrestore`` command writes: formats, quality, suffix, alpha / EXIF / ICC, faces, the
centre face, and what it says per image."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from diffrestore.cli import restore as cli
from diffrestore.cli.files import LEDGER
from diffrestore.cli.options import fidelity_options
from diffrestore.pipeline.faces import DetectedFace, FaceDetector, center_face
from diffrestore.io import load_image
from diffrestore.pipeline.options import RestoreOptions
from diffrestore.pipeline.pipeline_diffrestore import DiffRestorePipeline

ROOT = Path(__file__).parents[1]
FAST = ["--steps", "2", "--start-t", "100", "--guidance", "0", "--device", "cpu"]
ARTIST = 0x013B
ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "tiny"
    DiffRestorePipeline.from_model_config(ROOT / "configs/model/tiny.yaml").save_pretrained(folder)
    return folder


def restore(model_dir: Path, lq: Path, out: Path, *extra: str) -> int:
    return cli.main(["--lq", str(lq), "--out", str(out), "--model", str(model_dir), *FAST, *extra])


def test_ext_quality_and_suffix(model_dir, face_paths, tmp_path, capsys):
    lq = tmp_path / "face.webp"
    shutil.copy(face_paths[0], lq)
    sizes = {}
    for quality in (30, 95):
        out = tmp_path / f"q{quality}"
        assert restore(model_dir, lq, out, "--aligned", "--ext", "jpg", "--quality", str(quality),
                       "--suffix", "_restored") == 0
        result = out / "face_restored.jpg"
        assert sorted(p.name for p in out.iterdir() if p.name != LEDGER) == ["face_restored.jpg"]
        with Image.open(result) as image:
            assert image.format == "JPEG" and image.size == (128, 128)
        sizes[quality] = result.stat().st_size
    assert sizes[30] < 0.7 * sizes[95]
    capsys.readouterr()
    assert restore(model_dir, lq, tmp_path / "q30", "--aligned", "--ext", "jpg", "--quality", "30",
                   "--suffix", "_restored") == 0
    assert "skipped 1" in capsys.readouterr().out  # the suffixed output counts for the resume


def rgba_photo_with_metadata(face: Path, target: Path) -> tuple[np.ndarray, bytes]:
    rgb = load_image(face)
    alpha = Image.fromarray(np.tile(np.linspace(0, 255, rgb.width, dtype=np.uint8), (rgb.height, 1)))
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    exif = Image.Exif()
    exif[ARTIST] = "diffrestore test"
    exif[ORIENTATION] = 1
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rgba.save(target, exif=exif.tobytes(), icc_profile=icc)
    return np.asarray(alpha), icc


def test_alpha_exif_and_icc_come_back(model_dir, face_paths, tmp_path, capsys):
    lq = tmp_path / "in" / "face.png"
    lq.parent.mkdir()
    alpha, icc = rgba_photo_with_metadata(face_paths[1], lq)
    assert restore(model_dir, lq.parent, tmp_path / "png", "--aligned", "--upscale", "2") == 0
    with Image.open(tmp_path / "png" / "face.png") as result:
        assert result.mode == "RGBA" and result.size == (256, 256)
        restored_alpha = np.asarray(result.getchannel("A").resize((128, 128), Image.BICUBIC), dtype=np.float64)
        assert np.abs(restored_alpha - alpha).mean() < 2
        assert result.getexif().get(ARTIST) == "diffrestore test" and ORIENTATION not in result.getexif()
        assert result.info.get("icc_profile") == icc
    capsys.readouterr()

    assert restore(model_dir, lq.parent, tmp_path / "jpg", "--aligned", "--ext", "jpg") == 0
    assert "transparency dropped: .jpg has none (--ext png or webp keeps it)" in capsys.readouterr().out
    with Image.open(tmp_path / "jpg" / "face.jpg") as result:
        assert result.mode == "RGB" and result.getexif().get(ARTIST) == "diffrestore test"
        assert result.info.get("icc_profile") == icc


def test_center_face_is_the_one_nearest_the_centre():
    def face(x0, y0, size):
        return DetectedFace(np.array([x0, y0, x0 + size, y0 + size], float), np.zeros((5, 2)), 0.99)

    big_corner, small_centre = face(0, 0, 60), face(40, 30, 20)
    assert center_face([big_corner, small_centre], (100, 80)) is small_centre


def test_only_center_face_and_save_faces(model_dir, whole_paths, tmp_path, capsys):
    photo = next(p for p in whole_paths if len(FaceDetector("cpu").detect(load_image(p))) >= 2)
    lq = tmp_path / photo.name
    shutil.copy(photo, lq)
    assert restore(model_dir, lq, tmp_path / "out", "--whole", "--only-center-face", "--save-faces") == 0
    assert "done 1 (1 faces)" in capsys.readouterr().out
    stem = lq.stem
    written = sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != LEDGER)
    assert written == sorted([lq.name, f"{stem}_face00_input.png", f"{stem}_face00_restored.png"])
    seen = load_image(tmp_path / "out" / f"{stem}_face00_input.png")
    restored = load_image(tmp_path / "out" / f"{stem}_face00_restored.png")
    assert seen.size == restored.size == (32, 32)  # the tiny model's resolution
    assert np.abs(np.asarray(seen, float) - np.asarray(restored, float)).mean() > 5  # the model changed it


def test_fidelity_maps_to_start_t():
    mapped = [fidelity_options(f) for f in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert mapped[0] == {"start_t": 400} and mapped[-1] == {"start_t": 0}
    assert mapped[2] == {"start_t": RestoreOptions().start_t}  # the default preset
    assert all(a["start_t"] > b["start_t"] for a, b in zip(mapped, mapped[1:]))


def test_progress_per_image_verbose_and_quiet(model_dir, face_paths, tmp_path, capsys):
    lq = tmp_path / "faces"
    lq.mkdir()
    for path in face_paths[:2]:
        shutil.copy(path, lq / path.name)
    (lq / "notes.txt").write_text("not an image")
    assert restore(model_dir, lq, tmp_path / "verbose", "--aligned", "--verbose") == 0
    captured = capsys.readouterr()
    for path in face_paths[:2]:
        assert f"{path.name}: aligned, 1 face(s)\n" in captured.out
    assert "1/2" in captured.err and "2/2" in captured.err  # the bar moves per image
    assert "1 file(s) ignored, not images by their extension (e.g. notes.txt)" in captured.out

    assert restore(model_dir, lq, tmp_path / "quiet", "--aligned", "--quiet") == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.splitlines() == [f"{tmp_path / 'quiet'}: done 2 (2 faces), skipped 0 (output exists; "
                                         "--overwrite to redo), failed 0"]
