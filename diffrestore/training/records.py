"""What a run writes down besides checkpoints: JSON-lines logs and, for the exact-resume tests, weight digests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

import torch
from diffusers.training_utils import EMAModel
from torch import nn


def append_json_line(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def weights_digest(model: nn.Module, ema: Optional[EMAModel] = None) -> str:
    """SHA-256 of ``model``'s state (and of its EMA's shadow weights)."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode() + value.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    if ema is not None:
        for value in ema.shadow_params:
            digest.update(value.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def drop_rows_after(log: Path, step: int) -> None:
    """The rows of ``log`` (JSON lines) past ``step`` belong to the run that was cut short."""
    if not log.is_file():
        return
    rows = log.read_text().splitlines(keepends=True)
    kept = [row for row in rows if json.loads(row).get("step", 0) <= step]
    if len(kept) != len(rows):
        tmp = log.with_suffix(".tmp")
        tmp.write_text("".join(kept))
        tmp.replace(log)
