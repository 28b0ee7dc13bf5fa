"""The folder loop that keeps the device busy (issue 31): the next images are read and prepared (decoded,
detected, aligned) on reader threads, the faces of several images go through the model together (up to
``batch_size`` faces a call), and the images are put back together, encoded and written on writer threads,
so that the main thread only runs the model.

Semantics as the sequential loop of ``cli.restore``: every file is recorded once, in the order of the
jobs; a file that cannot be read, restored or written fails alone; on Ctrl-C the images already
restored are still written (and counted done), the others are left for a rerun. What the files are
called, how they are written and which process takes which job is the command's (``FileHooks``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Iterable, Iterator, Optional, Sequence

from PIL import Image
from torch import Tensor

from ..io import ImageExtras, ImageLoadError, load_image_with_extras
from ..pipeline.restore import FaceRestorer, PreparedImage, Restoration
from .background import OrderedPool, io_workers, prefetched
from .files import Job, OutputSettings, extras_notes, interrupts_deferred, write_outputs
from .progress import Progress, Summary


def write_files(settings: OutputSettings, recorded: dict, job: Job, image: Image.Image, extras: ImageExtras,
                result: Restoration) -> list[str]:
    """An image's files as ``settings`` say and their record of the ``recorded`` options (``write_outputs``;
    raises OSError / ValueError); the notes for the summary."""
    write_outputs(job, image, extras, result, settings, recorded)
    return [note for note in [result.note, *extras_notes(extras, job.target)] if note]


@dataclass
class FileHooks:
    """What the loop asks of the command about files; it knows nothing of names, records or claims."""

    # an image's files, raising OSError / ValueError; notes for the summary (e.g. partial(write_files, ...))
    write: Callable[[Job, Image.Image, ImageExtras, Restoration], list[str]]
    take: Callable[[Job], bool] = lambda job: True  # before reading a job: False leaves it (another process's)
    release: Callable[[Job], None] = lambda job: None  # a taken job once recorded, or dropped by Ctrl-C


@dataclass
class Loaded:
    """An image read (on a reader thread) and made ready for the model."""

    job: Job
    image: Image.Image
    extras: ImageExtras
    prepared: PreparedImage


@dataclass
class Outcome:
    """What became of one file: restored and written (``result``), or ``failure``."""

    job: Job
    result: Optional[Restoration] = None
    failure: str = ""
    notes: list[str] = field(default_factory=list)


def load_job(restorer: FaceRestorer, aligned: Optional[bool], job: Job) -> Loaded:
    image, extras = load_image_with_extras(job.source)
    return Loaded(job, image, extras, restorer.prepare(image, job.key, aligned))


def load_failure(job: Job, err: BaseException) -> str:
    if isinstance(err, (ImageLoadError, OSError)):
        return str(err).removeprefix(f"{job.source}: ")
    return f"{type(err).__name__}: {err}"  # preparing it failed (e.g. a pipeline without a face template)


def finish_job(restorer: FaceRestorer, loaded: Loaded, faces: Optional[Tensor], hooks: FileHooks) -> Outcome:
    """The image put back together and written: on a writer thread, beside the model's next call."""
    try:
        result = restorer.assemble(loaded.prepared, faces)
    except Exception as err:  # noqa: BLE001 - a file that cannot be put back together fails alone
        return Outcome(loaded.job, failure=f"{type(err).__name__}: {err}")
    return written(loaded.job, loaded.image, loaded.extras, result, hooks.write)


def written(job: Job, image: Image.Image, extras: ImageExtras, result: Restoration,
            write: Callable[[Job, Image.Image, ImageExtras, Restoration], list[str]]) -> Outcome:
    """A restored image's files written by ``write`` (``FileHooks.write``), or why they were not."""
    if result.failure:
        return Outcome(job, failure=result.failure)
    try:
        notes = write(job, image, extras, result)
    except (OSError, ValueError) as err:
        return Outcome(job, failure=str(err))
    return Outcome(job, result, notes=notes)


def record(outcome: Outcome, summary: Summary, progress: Progress) -> None:
    source = str(outcome.job.source)
    if outcome.failure:
        summary.failed.append((source, outcome.failure))
        progress.image(outcome.job, failure=outcome.failure)
        return
    summary.done.append(source)
    summary.faces += outcome.result.num_faces
    summary.notes += [(source, note) for note in outcome.notes]
    progress.image(outcome.job, outcome.result)


class FolderRun:
    """One pass over the jobs: the reader and writer pools and the group of images waiting for the model."""

    def __init__(self, restorer: FaceRestorer, hooks: FileHooks, summary: Summary, progress: Progress,
                 faces_per_call: int, workers: int) -> None:
        self.restorer, self.hooks, self.summary, self.progress = restorer, hooks, summary, progress
        self.faces_per_call = faces_per_call
        self.writers = OrderedPool(workers, "diffrestore-write")
        self.group: list[Loaded] = []
        self.taken: dict[str, Job] = {}  # by key: taken, not yet recorded

    def take(self, jobs: Iterable[Job]) -> Iterator[Job]:
        """The jobs the hooks let this process take, taken as the readers reach them."""
        for job in jobs:
            with interrupts_deferred():  # a job taken (a claim on disk) is one known to release
                taken = self.hooks.take(job)
                if taken:
                    self.taken[job.key] = job
            if taken:
                yield job

    def release_all(self) -> None:
        for job in self.taken.values():
            self.hooks.release(job)
        self.taken.clear()

    def add(self, loaded: Loaded) -> None:
        """Queue an image for the model; the queue goes through it before it would exceed ``faces_per_call``."""
        faces = sum(item.prepared.num_faces for item in self.group)
        if self.group and faces + loaded.prepared.num_faces > self.faces_per_call:
            self.flush()
        self.group.append(loaded)
        if sum(item.prepared.num_faces for item in self.group) >= self.faces_per_call:
            self.flush()

    def fail(self, job: Job, failure: str) -> None:
        self.flush()  # the images queued before it first, then it through the writers: records keep the jobs' order
        self.writers.submit(Outcome, job, None, failure)

    def flush(self) -> None:
        group, self.group = self.group, []
        if group:
            self.restore(group)
        self.record_written()

    def restore(self, group: Sequence[Loaded]) -> None:
        try:
            restored = self.restorer.restore_faces_of([item.prepared for item in group])
        except Exception as err:  # noqa: BLE001 - isolate the file that breaks a batch, keep the others
            if len(group) == 1:
                self.fail(group[0].job, f"{type(err).__name__}: {err}")
                return
            for item in group:
                self.restore([item])
            return
        with interrupts_deferred():  # without writer threads the files are written here: each image whole
            for item, faces in zip(group, restored):
                self.writers.submit(finish_job, self.restorer, item, faces, self.hooks)

    def record_written(self, keep: Optional[int] = None) -> None:
        """Record the files written, in order; wait for the oldest while more than ``keep`` are pending
        (None: only those done)."""
        while self.writers.oldest_done() or (keep is not None and len(self.writers) > keep):
            outcome = self.writers.next().result()
            record(outcome, self.summary, self.progress)
            self.hooks.release(self.taken[outcome.job.key])  # then forgotten: Ctrl-C between releases it again
            del self.taken[outcome.job.key]

    def finish(self) -> None:
        self.flush()
        self.record_written(keep=0)
        self.writers.close()


def restore_pipelined(restorer: FaceRestorer, jobs: Sequence[Job], aligned: Optional[bool], hooks: FileHooks,
                      summary: Summary, progress: Progress, faces_per_call: int, prefetch: int,
                      workers: Optional[int] = None) -> None:
    """Restore ``jobs`` (none skipped), recording each in ``summary``: ``prefetch`` images read ahead,
    up to ``faces_per_call`` faces per model call, ``workers`` threads to read and as many to write
    (default ``io_workers()``; 0: everything in this thread, in turn)."""
    workers = io_workers() if workers is None else workers
    readers = OrderedPool(workers, "diffrestore-read")
    run = FolderRun(restorer, hooks, summary, progress, faces_per_call, workers)
    try:
        for job, loaded in prefetched(run.take(jobs), partial(load_job, restorer, aligned), readers, prefetch):
            if loaded.exception() is not None:
                run.fail(job, load_failure(job, loaded.exception()))
            else:
                run.add(loaded.result())
            run.record_written(keep=max(prefetch, 1))  # bounds the restored images held in memory
        run.finish()
    except KeyboardInterrupt:
        readers.close(cancel=True)
        with interrupts_deferred():  # the images already restored are finished work: write them
            run.record_written(keep=0)
        raise
    finally:
        readers.close(cancel=True)
        run.writers.close()
        run.release_all()  # those dropped (Ctrl-C, an error)
