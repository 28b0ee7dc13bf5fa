"""The ``diffrestore`` command: ``diffrestore --lq photos/ [--out DIR] [options] [key=value ...]``.

``--lq`` is a folder (every image under it, recursively) or one image. Results go to ``--out``
(default: a new folder beside the input, ``photos_restored/``; never into the input folder) with the
same relative paths. Every output name (restored images, ``_comparison`` images, ``--save-faces`` crops)
is planned before any work, and a clash between two of them or with an input is refused (exit 2).
``<out>/.diffrestore/`` holds a record per output (which input, by content, and which options made it,
``cli/ledger.py``): an output whose record matches is skipped unless ``--overwrite``, so an interrupted
run resumes where it stopped; an existing file without a matching record is reported as failed and kept.
Processes started on one ``--out`` share the work through a claim per output. The temporary files of a
save killed earlier (``.NAME.XXXXXXXX.tmp``, over a minute old) are removed at start. Images are aligned
faces or whole photos: ``--aligned`` / ``--whole`` force the mode; by default each image is classified on
its own (see ``diffrestore.restore``).
Aligned faces come back at their own size, whole photos at theirs, both times ``--upscale``.

Options come from a preset (``--preset NAME``, a file of ``diffrestore/presets``, which
``configs/sample`` links to; or ``--config FILE``; default ``default``), then the flags,
then ``key=value`` overrides of any ``RestoreOptions`` field (e.g. ``guidance_range=[0,0.6]``). Every
option is checked before a model loads. ``accelerate launch`` runs it over several processes (GPUs):
each restores its share of the files, and the main process prints one summary.

Exit status: 0 when every image was restored or skipped, 1 when any failed or there was no image,
2 for a usage error (one line naming the argument), 130 when interrupted (Ctrl-C: the image being
restored is dropped, finished files are kept, a rerun resumes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Optional, Sequence

from ..config import ConfigError
from ..io import IMAGE_EXTENSIONS, ImageLoadError, load_image_with_extras
from ..pipeline.options import RestoreOptions
from ..pipeline.pipeline_diffrestore import model_folder
from .files import (Job, OutputSettings, UsageError, blocking_file, check_input, check_output_folder, default_out,
                    finished_output, ignored_files, interrupts_deferred, plan_jobs, remove_stale_temporaries)
from .folder import FileHooks, Outcome, record, restore_pipelined, write_files, written
from .ledger import release_claim, try_claim
from .options import build_options, check_options, parse_args
from .progress import Progress, Summary, gather_summaries, join_processes

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


UNRECORDED = ("overwrite", "device", "batch_size", "compile", "threads")  # how fast and where, not what is asked for


def output_options(options: RestoreOptions, settings: OutputSettings) -> dict:
    """What decides an image's files: recorded beside them, compared on a rerun (as JSON reads it back)."""
    chosen = {key: value for key, value in asdict(options).items() if key not in UNRECORDED}
    chosen.update(ext=settings.ext, quality=settings.quality, suffix=settings.suffix, save_faces=settings.save_faces)
    return json.loads(json.dumps(chosen))


@dataclass
class Run:
    """One process's run: its options, what they record, and when it started (under --overwrite, an output
    finished since then is another process's, started on the same folder with it)."""

    options: RestoreOptions
    settings: OutputSettings
    recorded: dict
    started: float


def restore_chunk(restorer, jobs: Sequence[Job], run: Run, summary: Summary, progress: Progress) -> None:
    loaded = []
    for job in jobs:
        try:
            image, extras = load_image_with_extras(job.source)
            loaded.append((job, image, extras))
        except (ImageLoadError, OSError) as err:
            summary.failed.append((str(job.source), str(err).removeprefix(f"{job.source}: ")))
            progress.image(job, failure=str(err))
    if not loaded:
        return
    try:
        results = restorer.restore_photos([image for _, image, _ in loaded], [job.key for job, _, _ in loaded],
                                          aligned=run.options.aligned)
    except Exception as err:  # noqa: BLE001 - isolate the file that breaks a batch, keep the others
        if len(loaded) == 1:
            record(Outcome(loaded[0][0], failure=f"{type(err).__name__}: {err}"), summary, progress)
            return
        for job, _, _ in loaded:
            restore_chunk(restorer, [job], run, summary, progress)
        return
    write = partial(write_files, run.settings, run.recorded)
    with interrupts_deferred():
        for (job, image, extras), result in zip(loaded, results):
            record(written(job, image, extras, result, write), summary, progress)


def images_per_chunk(restorer, options: RestoreOptions) -> int:
    """Images restored together. On the CPU one at a time, so progress and Ctrl-C act per image
    (results are bit-identical either way; batching gains ~25 % there, benchmarks/RESULTS.md)."""
    return 1 if restorer.device.type == "cpu" else options.batch_size


def take(job: Job, run: Run) -> bool:
    """Claim ``job`` for this process; False when another process holds it, or finished it meanwhile."""
    if not try_claim(job.ledger):
        return False
    if finished_output(job, run.recorded, since=run.started if run.settings.overwrite else None):
        release_claim(job.ledger)
        return False
    return True


def take_or_leave(job: Job, run: Run, summary: Summary, progress: Progress) -> bool:
    """``take`` ``job``; one that another process has is counted as its."""
    if take(job, run):
        return True
    summary.others.append(str(job.source))
    progress.other(job)
    return False


def restore_jobs(jobs: Sequence[Job], run: Run, summary: Summary, progress: Progress,
                 prefetch: Optional[int] = None) -> None:
    """Restore ``jobs`` (none skipped) that no other process restores, recording each in ``summary``:
    ``prefetch`` images read ahead while the model runs (None: two calls' worth; 0: the sequential loop,
    one chunk read, restored, written at a time)."""
    from ..pipeline.restore import FaceRestorer, resolve_device, set_threads

    set_threads(run.options.threads, resolve_device(run.options.device), pipelined=prefetch != 0)
    try:
        restorer = FaceRestorer.from_options(run.options)
    except (OSError, ValueError) as err:  # the folder passed check_options: its weights are broken
        raise UsageError(f"--model {model_folder(run.options.model)}: cannot be loaded ({err})") from err
    size = images_per_chunk(restorer, run.options)
    if prefetch != 0:
        hooks = FileHooks(write=partial(write_files, run.settings, run.recorded),
                          take=partial(take_or_leave, run=run, summary=summary, progress=progress),
                          release=lambda job: release_claim(job.ledger))
        restore_pipelined(restorer, jobs, run.options.aligned, hooks, summary, progress, size,
                          2 * size if prefetch is None else prefetch)
        return
    chunk: list[Job] = []
    for i, job in enumerate(jobs):
        if take_or_leave(job, run, summary, progress):
            chunk.append(job)
        if chunk and (len(chunk) == size or i == len(jobs) - 1):
            try:
                restore_chunk(restorer, chunk, run, summary, progress)
            finally:
                for claimed in chunk:
                    release_claim(claimed.ledger)
            chunk = []


def prepare(args: argparse.Namespace) -> tuple[RestoreOptions, OutputSettings, Path, list[Job]]:
    """Every check that needs no model; raises UsageError (or ConfigError) for the first problem."""
    options = build_options(args)
    check_options(options)
    if not 1 <= args.quality <= 100:
        raise UsageError(f"--quality {args.quality}: must be in 1..100")
    if args.prefetch is not None and args.prefetch < 0:
        raise UsageError(f"--prefetch {args.prefetch}: must be >= 0 (0: no reading ahead)")
    if Path(args.suffix).name != args.suffix:
        raise UsageError(f"--suffix {args.suffix!r}: must not contain a path separator")
    check_input(args.lq)
    settings = OutputSettings(args.ext, args.quality, args.suffix, args.save_faces, bool(options.save_comparison),
                              bool(options.overwrite))
    out = args.out or default_out(args.lq)
    jobs = plan_jobs(args.lq, out, args.ext, args.suffix, settings.save_comparison, settings.save_faces)
    if jobs:
        check_output_folder(out)
        remove_stale_temporaries(out)
    return options, settings, out, jobs


def split_done(jobs: Sequence[Job], run: Run, summary: Summary) -> list[Job]:
    """The jobs to do. Skipped: those whose files this image wrote with these options (unless --overwrite);
    failed: those whose files exist but are another image's or another run's."""
    todo = []
    for job in jobs:
        if not run.settings.overwrite and finished_output(job, run.recorded):
            summary.skipped.append(str(job.source))
        elif blocked := blocking_file(job, run.recorded, run.settings):
            summary.failed.append((str(job.source), blocked))
        else:
            todo.append(job)
    return todo


def ignored_note(lq: Path) -> list[tuple[str, str]]:
    others = ignored_files(lq)
    if not others:
        return []
    return [(str(lq), f"{len(others)} file(s) ignored, not images by their extension (e.g. {others[0].name})")]


def restore_all(args: argparse.Namespace, options: RestoreOptions, settings: OutputSettings, out: Path,
                jobs: Sequence[Job], started: float) -> int:
    """Restore this process's share of ``jobs``; print the summary (one, gathered, on the main process)."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()  # one bar (ours) is enough
    processes = join_processes(on_cpu=options.device == "cpu")
    if processes.device and options.device == "auto":
        options = replace(options, device=processes.device)
    run = Run(options, settings, output_options(options, settings), started)
    summary = Summary()
    # disjoint shares of one sorted list: each file is restored exactly once, whatever exists already
    todo = split_done(jobs[processes.rank::processes.world], run, summary)
    blocked = len(summary.failed)
    progress = Progress(len(todo), args.quiet, args.verbose, enabled=processes.is_main)
    try:
        if todo:
            restore_jobs(todo, run, summary, progress, args.prefetch)
    except KeyboardInterrupt:
        progress.close()
        summary.left = (len(todo) - len(summary.done) - (len(summary.failed) - blocked)
                        - len(summary.others))
        name = f"{out} (process {processes.rank + 1}/{processes.world})" if processes.world > 1 else str(out)
        print(f"interrupted: {name}: " + summary.report(not args.quiet) + "\n  rerun the same command to resume",
              flush=True)
        return EXIT_INTERRUPTED
    finally:
        progress.close()
    summary = gather_summaries(summary, processes)
    if processes.is_main:
        summary.notes += [] if args.quiet else ignored_note(args.lq)
        print(f"{out}: " + summary.report(not args.quiet), flush=True)
    return EXIT_FAILED if summary.failed else EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    started = time.time()
    try:
        options, settings, out, jobs = prepare(args)
        if not jobs:
            others = ignored_files(args.lq)
            seen = f" ({len(others)} other file(s) ignored)" if others else ""
            print(f"{args.lq}: no images found{seen}; looked for {' '.join(IMAGE_EXTENSIONS)}", file=sys.stderr)
            return EXIT_FAILED
        return restore_all(args, options, settings, out, jobs, started)
    except (UsageError, ConfigError) as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)  # OmegaConf adds lines of its internals
        return EXIT_USAGE
    except KeyboardInterrupt:  # before the first image (restore_all reports the later ones)
        print("interrupted before any image was restored", file=sys.stderr)
        return EXIT_INTERRUPTED
