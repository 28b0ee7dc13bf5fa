"""Fingerprints that decide whether a point is up to date: hashes of files, models and settings."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional, Sequence

from ...pipeline.checksums import file_sha256 as file_digest
from ...pipeline.pipeline_diffrestore import model_folder


def files_fingerprint(paths: Sequence[Path], root: Path | None = None) -> str:
    """Hash of the names and contents of ``paths``."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        name = path.relative_to(root).as_posix() if root else path.name
        digest.update(f"{name}\0{file_digest(path)}\n".encode())
    return digest.hexdigest()


def model_fingerprint(model: Optional[str]) -> str:
    """Hash of a pipeline folder's files (None: the bundled model), or of a model config (random weights)."""
    path = model_folder(model)
    if path.is_file():  # a model config: random weights from seed 0
        return "random-init-seed0:" + file_digest(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: model not found (a pipeline folder or a model config .yaml)")
    files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return files_fingerprint(files, root=path)


def payload_hash(payload: Any) -> str:
    """Hash of a JSON-able ``payload`` (keys sorted)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
