"""Face datasets (deterministic, worker-safe, robust to a bad file) and the test-set command."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from diffrestore.data.datasets import HQFaceDataset, LQFolderDataset, PairedFaceDataset
from diffrestore.data.degradations import DegradationConfig, degrade, DegradationParams
from diffrestore.io import ImageLoadError, load_image, pil_to_tensor
from diffrestore.evaluation import testset


@pytest.fixture()
def face_dir(tmp_path, face_paths):
    folder = tmp_path / "faces"
    folder.mkdir()
    for path in face_paths[:6]:
        shutil.copy(path, folder / path.name)
    return folder


def test_hq_items_resize_and_flip(face_dir):
    plain = HQFaceDataset(face_dir, 64, flip=False)
    assert len(plain) == 6
    item = plain[2]
    assert item["index"] == 2 and item["path"] == str(plain.paths[2])
    assert item["hq"].shape == (3, 64, 64)
    original = pil_to_tensor(load_image(plain.paths[2]))
    assert original.shape == (3, 128, 128)
    down = torch.nn.functional.avg_pool2d(original[None], 2)[0]
    assert (item["hq"] - down).abs().mean() < 0.05  # the same face, resized

    flipped = HQFaceDataset(face_dir, 128, flip=True, seed=0)
    flips = []
    for epoch in range(8):
        flipped.set_epoch(epoch)
        hq = flipped[2]["hq"]
        flips.append(torch.equal(hq, original.flip(-1)))
        assert flips[-1] or torch.equal(hq, original)
    assert any(flips) and not all(flips)


def test_paired_items_are_deterministic_and_vary(face_dir):
    cfg = DegradationConfig()
    a = PairedFaceDataset(face_dir, 128, cfg, seed=3)
    b = PairedFaceDataset(face_dir, 128, cfg, seed=3)
    first = a[1]
    again = b[1]
    assert torch.equal(first["lq"], again["lq"]) and torch.equal(first["hq"], again["hq"])
    assert first["params"] == again["params"]
    assert not torch.equal(first["lq"], first["hq"])
    # the params stored with the item reproduce its LQ image
    assert torch.equal(degrade(first["hq"], DegradationParams(**first["params"])), first["lq"])

    other_seed = PairedFaceDataset(face_dir, 128, cfg, seed=4)[1]
    assert not torch.equal(other_seed["lq"], first["lq"])
    a.set_epoch(1)
    assert a[1]["params"] != first["params"]
    a.set_epoch(0)
    assert torch.equal(a[1]["lq"], first["lq"])


def test_workers_see_the_same_items(face_dir):
    data = PairedFaceDataset(face_dir, 64, DegradationConfig(), seed=0)
    single = [item["lq"] for item in DataLoader(data, batch_size=None, num_workers=0)]
    multi = [item["lq"] for item in DataLoader(data, batch_size=None, num_workers=2)]
    assert all(torch.equal(x, y) for x, y in zip(single, multi))
    batch = next(iter(DataLoader(data, batch_size=3)))
    assert batch["lq"].shape == (3, 3, 64, 64) and batch["params"]["jpeg_quality"].shape == (3,)


def test_corrupt_training_file_is_reported_once_and_replaced(face_dir, caplog):
    bad = sorted(face_dir.iterdir())[2]
    bad.write_bytes(b"not an image")
    data = HQFaceDataset(face_dir, 128, flip=False)
    with caplog.at_level(logging.WARNING, logger="diffrestore.data"):
        items = [data[2], data[2], data[1]]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and bad.name in warnings[0]
    assert items[0]["index"] == 3 and items[0]["path"] == str(data.paths[3])  # the next readable one
    assert torch.equal(items[0]["hq"], items[1]["hq"])
    assert items[2]["index"] == 1

    for path in face_dir.iterdir():
        path.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="no readable image"):
        HQFaceDataset(face_dir, 128)[0]


def test_lq_folder(real_lq_paths, tmp_path):
    folder = real_lq_paths[0].parent
    native = LQFolderDataset(folder)
    assert len(native) == len(real_lq_paths) and native[0]["lq"].shape == (3, 256, 256)
    assert set(native[0]) == {"lq", "path"}
    assert LQFolderDataset(folder, resolution=128)[1]["lq"].shape == (3, 128, 128)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ImageLoadError, match="broken.png"):
        LQFolderDataset(tmp_path)[0]
    with pytest.raises(FileNotFoundError, match="missing: no such"):
        LQFolderDataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: no images"):
        LQFolderDataset(tmp_path / "empty")


# ------------------------------------------------------------------------------------ diffrestore-testset

def test_testset_is_reproducible_byte_for_byte(face_dir, tmp_path, capsys):
    runs = [tmp_path / "run1", tmp_path / "run2"]
    for out in runs:
        testset.main(["--hq", str(face_dir), "--out", str(out), "--resolution", "128", "--seed", "0"])
    files = sorted(p.relative_to(runs[0]) for p in runs[0].rglob("*") if p.is_file())
    assert len(files) == 2 * 6 + 1
    assert files == sorted(p.relative_to(runs[1]) for p in runs[1].rglob("*") if p.is_file())
    for rel in files:
        assert (runs[0] / rel).read_bytes() == (runs[1] / rel).read_bytes(), rel

    manifest = json.loads((runs[0] / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["resolution"] == 128 and manifest["count"] == 6
    assert manifest["degradation"]["blur_sigma"] == [0.1, 15.0]
    record = manifest["images"][0]
    hq = pil_to_tensor(load_image(runs[0] / "hq" / record["name"]))
    lq = pil_to_tensor(load_image(runs[0] / "lq" / record["name"]))
    redone = degrade(hq, DegradationParams(**record["params"]))
    assert (redone - lq).abs().max() <= 1 / 127.5 + 1e-6  # the manifest's params made that LQ image
    assert max(r["params"]["scale"] for r in manifest["images"]) <= 30 * 128 / 512
    assert record["pixels_sha256"]["lq"] == hashlib.sha256(np.asarray(load_image(runs[0] / "lq" / record["name"]))
                                                           .tobytes()).hexdigest()
    assert record["pixels_sha256"]["lq"] != record["pixels_sha256"]["hq"]

    other = tmp_path / "seed1"
    testset.main(["--hq", str(face_dir), "--out", str(other), "--seed", "1", "--limit", "2"])
    assert len(list((other / "lq").iterdir())) == 2
    name = sorted((other / "lq").iterdir())[0].name
    assert (other / "lq" / name).read_bytes() != (runs[0] / "lq" / name).read_bytes()
    assert (other / "hq" / name).read_bytes() == (runs[0] / "hq" / name).read_bytes()


def test_testset_refuses_to_overwrite_and_reads_a_config(face_dir, tmp_path):
    out = tmp_path / "set"
    testset.main(["--hq", str(face_dir), "--out", str(out), "--limit", "3"])
    with pytest.raises(SystemExit, match="not empty"):
        testset.main(["--hq", str(face_dir), "--out", str(out)])

    config = tmp_path / "mild.yaml"
    config.write_text("degradation:\n  blur_sigma: [0.1, 0.2]\n  downsample: [1.0, 1.0]\n  noise: [0, 0]\n"
                      "  jpeg_quality: [95, 95]\n")
    testset.main(["--hq", str(face_dir), "--out", str(out), "--limit", "2", "--config", str(config), "--overwrite"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["degradation"]["jpeg_quality"] == [95, 95] and manifest["count"] == 2
    assert len(list((out / "lq").iterdir())) == 2  # the third pair of the earlier run is gone
    for record in manifest["images"]:
        lq = pil_to_tensor(load_image(out / "lq" / record["name"]))
        hq = pil_to_tensor(load_image(out / "hq" / record["name"]))
        assert (lq - hq).abs().mean() < 0.03  # mild recipe, mild damage

    config.write_text("degradation:\n  blur_sgima: [1, 2]\n")
    with pytest.raises(SystemExit, match="blur_sgima"):
        testset.main(["--hq", str(face_dir), "--out", str(tmp_path / "typo"), "--config", str(config)])
    assert not (tmp_path / "typo").exists()
