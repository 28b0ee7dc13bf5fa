"""diffrestore-report: the reports of diffrestore-eval plus a comparison sheet whose tiles are the files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from diffrestore.evaluation import report as R
from diffrestore.io import load_image


@pytest.fixture
def folders(tmp_path, face_paths):
    names = ("lq", "backbone", "restored", "gt")
    dirs = {n: tmp_path / n for n in names}
    for d in dirs.values():
        d.mkdir()
    for path in face_paths[:5]:
        img = load_image(path)
        img.save(dirs["gt"] / f"{path.stem}.png")
        img.filter(ImageFilter.GaussianBlur(3)).save(dirs["lq"] / f"{path.stem}.png")
        img.filter(ImageFilter.GaussianBlur(1.5)).save(dirs["backbone"] / f"{path.stem}.png")
        img.filter(ImageFilter.GaussianBlur(0.7)).save(dirs["restored"] / f"{path.stem}.png")
    return dirs


def test_report_writes_summary_and_a_sheet_of_the_right_tiles(folders, tmp_path):
    out = tmp_path / "report"
    argv = ["--restored", str(folders["restored"]), "--gt", str(folders["gt"]), "--lq", str(folders["lq"]),
            "--backbone", str(folders["backbone"]), "--metrics", "psnr,ssim", "--faces", "3", "--sort-by", "psnr_y",
            "--out", str(out)]
    assert R.main(argv) == 0
    assert "psnr_y" in (out / "summary.md").read_text()
    sheet = Image.open(out / R.SHEET_FILE)
    tile = 128
    assert sheet.size == (4 * tile, R.CAPTION_HEIGHT + 3 * (tile + R.CAPTION_HEIGHT))

    # row 0 is the face with the lowest PSNR; its ground-truth tile is that file, pixel for pixel
    import csv

    with open(out / "per_image.csv") as handle:
        rows = list(csv.DictReader(handle))
    worst = min(rows, key=lambda r: float(r["psnr_y"]))["file"]
    top = R.CAPTION_HEIGHT
    gt_tile = np.asarray(sheet.crop((3 * tile, top, 4 * tile, top + tile)))
    assert np.array_equal(gt_tile, np.asarray(load_image(folders["gt"] / f"{worst}.png")))
    lq_tile = np.asarray(sheet.crop((0, top, tile, top + tile)))
    assert np.array_equal(lq_tile, np.asarray(load_image(folders["lq"] / f"{worst}.png")))

    assert R.main(argv) == 2  # nothing is overwritten without --overwrite
    assert R.main(argv + ["--overwrite", "--tile", "64", "--sort-by", "nope"]) == 2


def test_pick_faces_spreads_or_sorts_with_nan_last():
    rows = [{"file": str(i), "ids": v} for i, v in enumerate([0.5, float("nan"), 0.2, 0.9, 0.1])]
    assert [r["file"] for r in R.pick_faces(rows, 2, "ids")] == ["4", "2"]
    assert [r["file"] for r in R.pick_faces(rows, 5, "ids")][-1] == "1"
    assert [r["file"] for r in R.pick_faces(rows, 3)] == ["0", "2", "4"]


def test_compared_folders_are_columns_and_a_bad_spec_is_refused_before_scoring(folders, tmp_path, capsys,
                                                                                monkeypatch):
    out = tmp_path / "report"
    argv = ["--restored", str(folders["restored"]), "--gt", str(folders["gt"]), "--metrics", "psnr",
            "--faces", "2", "--compare", f"other model={folders['backbone']}", "--label", "ours", "--out", str(out)]
    assert R.main(argv) == 0
    sheet = Image.open(out / R.SHEET_FILE)
    tile = 128
    assert sheet.size[0] == 3 * tile  # other model | ours | ground truth
    first = R.pick_faces([{"file": p.stem} for p in sorted(folders["gt"].iterdir())], 2)[0]["file"]
    other_tile = np.asarray(sheet.crop((0, R.CAPTION_HEIGHT, tile, R.CAPTION_HEIGHT + tile)))
    assert np.array_equal(other_tile, np.asarray(load_image(folders["backbone"] / f"{first}.png")))

    monkeypatch.setattr(R, "evaluate_from_args", lambda args: pytest.fail("scored before the arguments were checked"))
    assert R.main(argv[:-4] + ["--compare", str(folders["backbone"]), "--out", str(tmp_path / "r2")]) == 2
    assert "LABEL=FOLDER" in capsys.readouterr().err
