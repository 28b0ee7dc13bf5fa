"""``diffrestore``'s bookkeeping: the summary of a run, its progress bar, and the processes of
``accelerate launch`` that share the files out and gather one summary."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from ..pipeline.restore import Restoration
from .files import Job

@dataclass
class Summary:
    done: list[str] = field(default_factory=list)
    faces: int = 0
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    others: list[str] = field(default_factory=list)  # restored by another process on the same folder
    notes: list[tuple[str, str]] = field(default_factory=list)
    left: int = 0  # not attempted (interrupted)

    def merge(self, other: "Summary") -> None:
        self.done += other.done
        self.faces += other.faces
        self.skipped += other.skipped
        self.failed += other.failed
        self.others += other.others
        self.notes += other.notes
        self.left += other.left

    @classmethod
    def from_dict(cls, fields: dict) -> "Summary":
        """The inverse of ``dataclasses.asdict`` (which turns the pairs into lists)."""
        pairs = {key: [tuple(pair) for pair in fields[key]] for key in ("failed", "notes")}
        return cls(**{**fields, **pairs})

    def report(self, with_notes: bool = True) -> str:
        line = (f"done {len(self.done)} ({self.faces} faces), skipped {len(self.skipped)} "
                f"(output exists; --overwrite to redo), failed {len(self.failed)}")
        line += f", by another process {len(self.others)}" if self.others else ""
        lines = [line + (f", left {self.left}" if self.left else "")]
        if with_notes:
            lines += [f"  note: {path}: {note}" for path, note in self.notes]
        lines += [f"  FAILED {path}: {reason}" for path, reason in self.failed]
        return "\n".join(lines)


class Progress:
    """A bar per image (faces found in its postfix), a line per image under --verbose, nothing under --quiet."""

    def __init__(self, total: int, quiet: bool, verbose: bool, enabled: bool = True) -> None:
        from tqdm import tqdm

        self.verbose = verbose  # every process tells its own images
        self.bar = tqdm(total=total, unit="img", desc="restoring", disable=quiet or not enabled or total == 0)

    @staticmethod
    def _write(line: str) -> None:
        """One write a line (tqdm.write writes the text and its end apart), flushed at once: under
        `accelerate launch` the processes share stdout, and a line in two writes, or one that a full
        buffer cuts, lets another process's line in between."""
        from tqdm import tqdm

        tqdm.write(line + "\n", end="", file=sys.stdout)
        sys.stdout.flush()

    def image(self, job: Job, result: Optional[Restoration] = None, failure: str = "") -> None:
        if result is not None:
            self.bar.set_postfix_str(f"{Path(job.key).name}: {result.num_faces} face(s)", refresh=False)
        if self.verbose:
            what = f"FAILED: {failure}" if failure else f"{result.mode}, {result.num_faces} face(s)" + (
                f"; {result.note}" if result.note else "")
            self._write(f"{job.key}: {what}")
        self.bar.update(1)

    def other(self, job: Job) -> None:
        """``job`` is another process's (it holds the claim, or finished it)."""
        if self.verbose:
            self._write(f"{job.key}: restored by another process")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


@dataclass
class Processes:
    rank: int = 0
    world: int = 1
    device: Optional[str] = None  # this process's device under accelerate launch

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def join_processes(on_cpu: bool) -> Processes:
    """The process group of ``accelerate launch`` (WORLD_SIZE > 1), else one process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Processes()
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # Accelerator reads ACCELERATE_USE_CPU itself; PartialState must be told, or it runs each process alone.
    state = PartialState(cpu=on_cpu or parse_flag_from_env("ACCELERATE_USE_CPU"))
    return Processes(state.process_index, state.num_processes, str(state.device))


def gather_summaries(summary: Summary, processes: Processes) -> Summary:
    if processes.world == 1:
        return summary
    import torch.distributed as dist

    parts: list = [None] * processes.world
    dist.all_gather_object(parts, asdict(summary))
    total = Summary()
    for part in parts:
        total.merge(Summary.from_dict(part))
    return total
