"""sha256 checksums of a pipeline folder's weights: ``checksums.json`` beside ``model_index.json``
maps each ``*.safetensors`` file (relative path) to its digest. Bundled models carry one; a folder
without it (a user's own) loads unchecked. Corrupted weights otherwise load and restore black faces."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

CHECKSUM_FILE = "checksums.json"


class ChecksumError(ValueError):
    """A weights file of a pipeline folder does not match its recorded checksum (the message names it)."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder: str | Path) -> Path:
    """Record the sha256 of every ``*.safetensors`` file under ``folder``; returns the JSON's path."""
    folder = Path(folder)
    sums = {p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*.safetensors"))}
    target = folder / CHECKSUM_FILE
    target.write_text(json.dumps(sums, indent=1, sort_keys=True) + "\n")
    return target


def verify_checksums(folder: str | Path) -> None:
    """Raise ``ChecksumError`` naming the first weights file that is missing or differs from
    ``folder/checksums.json``; nothing to check when the folder has no such file."""
    folder = Path(folder)
    record = folder / CHECKSUM_FILE
    if not record.is_file():
        return
    try:
        sums = json.loads(record.read_text())
    except ValueError as err:
        raise ChecksumError(f"{record}: not valid JSON ({err})") from err
    for name, expected in sums.items():
        path = folder / name
        if not path.is_file():
            raise ChecksumError(f"{path}: missing (listed in {CHECKSUM_FILE}); reinstall or re-download the model")
        if file_sha256(path) != expected:
            raise ChecksumError(f"{path}: corrupted (its sha256 differs from {CHECKSUM_FILE}); "
                                "reinstall or re-download the model")
