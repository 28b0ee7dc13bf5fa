"""Shared fixtures: the small set of real images in ``tests/assets``.

- ``faces/``: 20 UTKFace faces (16 train, 4 val), 128x128 WebP, tight framing (the model's).
- ``real_lq/``: 3 real degraded faces (GFPGAN / PGDiff / VQFR demo inputs), 256x256 PNG, FFHQ framing.
- ``whole/``: 3 whole photos (GFPGAN demo inputs) with 2-3 faces each, long side 640 px, JPEG q90.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ASSETS_DIR = Path(__file__).parent / "assets"


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file())


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """The command sets torch's threads for its process (``--threads``, 1 on the CPU): not for the next tests."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    return ASSETS_DIR


@pytest.fixture(scope="session")
def face_paths(assets_dir: Path) -> list[Path]:
    return _images(assets_dir / "faces")


@pytest.fixture
def photos(tmp_path: Path, face_paths: list[Path]) -> Path:
    """A folder ``tmp_path/photos`` holding copies of two of the faces: a user's input folder."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in face_paths[:2]:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="session")
def real_lq_paths(assets_dir: Path) -> list[Path]:
    return _images(assets_dir / "real_lq")


@pytest.fixture(scope="session")
def whole_paths(assets_dir: Path) -> list[Path]:
    return _images(assets_dir / "whole")
