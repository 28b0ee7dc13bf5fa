"""The bookkeeping beside ``diffrestore``'s outputs, in ``<out>/.diffrestore/`` (one file each per output):

- a record (``NAME.json``): which input (its relative path and sha256) and which options produced the
  output and its extra files, and whether they are all written. A rerun skips only an output whose record
  matches, so a file that another image or another run wrote is never counted as done.
- a claim (``NAME.claim``, created with O_EXCL, holding ``PID HOST``): the process restoring that output
  now. Processes started on one folder restore each file once; a claim whose process died is taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..pipeline.checksums import file_sha256

STALE_CLAIM_S = 60  # an unreadable claim this old is a process killed between creating and writing it


@dataclass
class Record:
    """What produced an output (``input``, ``input_sha256``, ``options``), the files written with it and
    when they were all written (``finished``; None while being written)."""

    input: str
    input_sha256: str
    options: dict
    files: list[str]
    input_stat: tuple[int, int] = (0, 0)  # size and mtime_ns: where they match, the hash is not recomputed
    finished: Optional[float] = None

    def produced_by(self, other: "Record") -> bool:
        return (self.input, self.input_sha256, self.options) == (other.input, other.input_sha256, other.options)

    def differences(self, other: "Record") -> str:
        """Why ``self``'s output is not ``other``'s, in a few words."""
        if (self.input, self.input_sha256) != (other.input, other.input_sha256):
            return "made from another input"
        changed = sorted(key for key in {**self.options, **other.options}
                         if self.options.get(key) != other.options.get(key))
        return f"made with other options: {', '.join(changed)}"


def record_file(ledger: Path) -> Path:
    return ledger.with_name(ledger.name + ".json")


def claim_file(ledger: Path) -> Path:
    return ledger.with_name(ledger.name + ".claim")


def file_stat(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def new_record(key: str, source: Path, options: dict, files: list[Path]) -> Record:
    """The record of restoring ``source`` with ``options`` (JSON-normalised, as a read record has them)."""
    return Record(key, file_sha256(source), json.loads(json.dumps(options)), [p.name for p in files],
                  file_stat(source))


def made_from(record: Record, source: Path) -> bool:
    """``record`` was made from this content of ``source`` (hashed only where size or mtime changed)."""
    return tuple(record.input_stat) == file_stat(source) or record.input_sha256 == file_sha256(source)


def read_record(ledger: Path) -> Optional[Record]:
    """The record of an output, or None when it has none (or an unreadable one)."""
    try:
        return Record(**json.loads(record_file(ledger).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_record(ledger: Path, record: Record) -> None:
    """Written whole or not at all (a temporary beside it, renamed)."""
    path = record_file(ledger)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(record.__dict__, indent=1, sort_keys=True) + "\n")
    os.replace(temporary, path)


def process_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) is CTRL_C_EVENT there: a claim is never judged dead on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def claim_is_stale(path: Path, holder: str) -> bool:
    """A claim of a process of this machine that no longer runs; another machine's is never stale."""
    try:
        pid, host = holder.split()
        return host == socket.gethostname() and not process_alive(int(pid))
    except ValueError:
        with contextlib.suppress(FileNotFoundError):
            return time.time() - path.stat().st_mtime > STALE_CLAIM_S
        return False


def remove_stale_claim(path: Path) -> bool:
    """Remove the claim at ``path`` if its process is dead; False when a live process holds it."""
    try:
        holder = path.read_text()
    except FileNotFoundError:
        return True
    if not claim_is_stale(path, holder):
        return False
    # Moved aside before deleting: two processes removing one stale claim must not delete a new claim
    # that one of them made in between; a claim moved aside by mistake is put back.
    aside = path.with_name(f"{path.name}.{os.getpid()}.stale")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True
    if aside.read_text() != holder:
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    aside.unlink()
    return True


def try_claim(ledger: Path) -> bool:
    """Claim an output for this process (atomic); False when a live process holds it."""
    path = claim_file(ledger)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not remove_stale_claim(path):
                return False
            continue
        with os.fdopen(handle, "w") as claim:
            claim.write(f"{os.getpid()} {socket.gethostname()}\n")
        return True
    return False


def release_claim(ledger: Path) -> None:
    claim_file(ledger).unlink(missing_ok=True)
