"""Checkpoint folders that are complete or absent: ``<root>/step-XXXXXXXX``.

``accelerator.save_state`` writes into ``<root>/.tmp-step-XXXXXXXX``; once every process has written
its part, the main process flushes it to disk and renames it into place. A run killed during a save
leaves only a ``.tmp-*`` folder, which :func:`latest_checkpoint` never returns and
:func:`remove_partial` deletes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from .schema import TrainConfig

STATE_FILE = "trainer_state.json"  # written last into the temporary folder
_NAME = re.compile(r"^step-(\d{8})$")
_TMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found) if (p / STATE_FILE).is_file()]


def latest_checkpoint(root: str | Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def read_state(checkpoint: str | Path) -> dict[str, Any]:
    path = Path(checkpoint) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{checkpoint}: not a complete checkpoint (no {STATE_FILE})")
    return json.loads(path.read_text())


def remove_partial(root: str | Path) -> list[Path]:
    """Delete folders left by saves that were interrupted; returns what was removed."""
    root = Path(root)
    if not root.is_dir():
        return []
    stale = [p for p in root.iterdir() if p.name.startswith((_TMP_PREFIX, _OLD_PREFIX))]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def prune(root: str | Path, keep_last: int) -> None:
    """Keep the newest ``keep_last`` checkpoints (all when ``keep_last <= 0``)."""
    if keep_last <= 0:
        return
    for path in list_checkpoints(root)[:-keep_last]:
        # Rename first so a kill during rmtree leaves a '.old-' folder, never a gutted 'step-' one.
        doomed = path.with_name(_OLD_PREFIX + path.name)
        os.replace(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


def temp_dir(root: str | Path, step: int) -> Path:
    return Path(root) / (_TMP_PREFIX + checkpoint_name(step))


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(root: str | Path, step: int, state: dict[str, Any], write: Callable[[Path], None],
                    barrier: Callable[[], None], is_main: bool) -> Path:
    """Write a checkpoint atomically; call on every process.

    ``write(tmp)`` saves the state (``accelerator.save_state``; every process writes its RNG file),
    ``barrier`` waits for all processes. Returns the final folder.
    """
    root = Path(root)
    tmp = temp_dir(root, step)
    final = root / checkpoint_name(step)
    if is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    write(tmp)
    barrier()
    if is_main:
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
        _fsync_tree(tmp)
        if final.exists():  # the same step saved again (resumed from an older checkpoint)
            old = root / (_OLD_PREFIX + final.name)
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(root)
    barrier()
    return final


SCHEDULE_KEYS = ("max_steps", "optim.lr", "optim.lr_scale", "optim.lr_schedule", "optim.warmup_steps")


def schedule_changes(saved: dict, now: DictConfig) -> list[tuple[str, Any, Any]]:
    """(key, saved value, value now) of the learning-rate schedule's settings that a resume changes."""
    saved, defaults = OmegaConf.create(saved), OmegaConf.structured(TrainConfig)
    # a key added to the schema after the checkpoint was saved had its default then
    changes = [(key, OmegaConf.select(saved, key, default=OmegaConf.select(defaults, key)), OmegaConf.select(now, key))
               for key in SCHEDULE_KEYS]
    return [change for change in changes if change[1] != change[2]]
