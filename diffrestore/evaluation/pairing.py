"""Pairing restored files with their ground truth / LQ inputs by name stem, and the test-set manifest."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from ..io import list_images


def index_by_stem(folder: str | Path) -> dict[str, Path]:
    """Image files of ``folder`` keyed by name stem; two files with one stem are an error."""
    index: dict[str, Path] = {}
    for path in list_images(folder, recursive=False):
        if path.stem in index:
            raise ValueError(f"{path}: same name stem as {index[path.stem]}; cannot pair files by name")
        index[path.stem] = path
    if not index:
        raise ValueError(f"{folder}: no images found")
    return index


def paired_stems(restored: dict[str, Path], partners: dict[str, dict[str, Path] | None],
                 restored_folder: str | Path) -> tuple[list[str], dict[str, list[str]]]:
    """The sorted stems of ``restored`` that every given partner index has, and per partner name the
    stems it lacks (warned about; those files are left out)."""
    stems = sorted(restored)
    unmatched = {}
    for name, index in partners.items():
        if index is None:
            continue
        missing = [s for s in stems if s not in index]
        if missing:
            unmatched[name] = missing
            warnings.warn(f"{len(missing)} restored file(s) have no {name} partner (by name), e.g. "
                          f"{restored[missing[0]]}; they are left out")
    left_out = {s for missing in unmatched.values() for s in missing}
    stems = [s for s in stems if s not in left_out]
    if not stems:
        raise ValueError(f"{restored_folder}: no restored file pairs by name with the given folders")
    return stems, unmatched


def find_manifest(*folders: str | Path | None) -> tuple[Path | None, dict | None]:
    """The test-set ``manifest.json`` in or next to one of ``folders`` (testset writes
    ``OUT/hq``, ``OUT/lq`` and ``OUT/manifest.json``)."""
    for folder in folders:
        if folder is None:
            continue
        folder = Path(folder)
        for candidate in (folder / "manifest.json", folder.parent / "manifest.json"):
            if candidate.is_file():
                try:
                    return candidate, json.loads(candidate.read_text())
                except json.JSONDecodeError as err:
                    raise ValueError(f"{candidate}: not valid JSON ({err})") from err
    return None, None


def manifest_protocol(manifest: dict, max_chars: int = 2000) -> dict:
    """The parts of a test-set manifest that define the protocol: its per-file records (any entry
    longer than ``max_chars`` as JSON) are summarised by their count, not copied."""
    out = {}
    for key, value in manifest.items():
        if len(json.dumps(value, default=str)) <= max_chars:
            out[key] = value
        else:
            out[key] = f"({len(value)} entries: see the manifest)" if hasattr(value, "__len__") else "(see the manifest)"
    return out
