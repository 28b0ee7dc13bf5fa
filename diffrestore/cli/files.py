"""``diffrestore``'s files: the jobs (an output path for every input image, refused where it would clash)
and the writing of each image's outputs."""

from __future__ import annotations

import contextlib
import glob
import re
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from ..io import ALPHA_FORMATS, DEFAULT_QUALITY, IMAGE_EXTENSIONS, ImageExtras, list_images, save_image
from ..pipeline.restore import Restoration, comparison_image
from .ledger import Record, made_from, new_record, read_record, write_record

OUTPUT_EXTENSIONS = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}
LEDGER = ".diffrestore"  # hidden folder of the outputs' records and claims (list_images skips it)


class UsageError(ValueError):
    """A bad argument: the message names it and says what is wrong."""


@dataclass
class Job:
    source: Path
    target: Path
    key: str  # relative path of the input: the seed of its faces
    ledger: Path  # <out>/.diffrestore/<output name>: its record (.json) and claim (.claim) beside it


def default_out(lq: Path) -> Path:
    lq = lq.resolve()
    return lq.parent / (f"{lq.stem}_restored" if lq.is_file() else f"{lq.name}_restored")


def check_input(lq: Path) -> None:
    if not lq.exists():
        raise UsageError(f"--lq {lq}: no such file or folder")
    if lq.is_file() and lq.suffix.lower() not in IMAGE_EXTENSIONS:
        raise UsageError(f"--lq {lq}: {lq.suffix or 'no extension'} is not a supported image type "
                         f"({' '.join(IMAGE_EXTENSIONS)})")


def check_output_folder(out: Path) -> None:
    """``out`` is (or can become) a folder we can write in; creates it."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise UsageError(f"--out {out}: cannot write there ({err.strerror or err})") from err


# io.save_image writes ``.NAME.XXXXXXXX.tmp`` (mkstemp) beside NAME, then renames it; a kill between leaves it
TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
STALE_AFTER_S = 60  # younger ones may belong to another run saving into this folder right now


def remove_stale_temporaries(out: Path, now: Optional[float] = None) -> int:
    """Delete the temporaries of image saves killed in ``out`` (recursively); returns how many."""
    now = time.time() if now is None else now
    removed = 0
    for path in out.rglob(".*.tmp"):
        match = TEMPORARY.match(path.name)
        if not match or Path(match["name"]).suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
            continue
        with contextlib.suppress(FileNotFoundError):  # another process removed it first
            if now - path.stat().st_mtime > STALE_AFTER_S:
                path.unlink()
                removed += 1
    return removed


def output_name(rel: Path, ext: Optional[str], suffix: str) -> Path:
    extension = OUTPUT_EXTENSIONS[ext] if ext else rel.suffix
    return rel.with_name(f"{rel.stem}{suffix}{extension}")


def comparison_path(target: Path) -> Path:
    return target.with_name(f"{target.stem}_comparison{target.suffix}")


def face_paths(target: Path, index: int) -> tuple[Path, Path]:
    stem = f"{target.stem}_face{index:02d}"
    return target.with_name(f"{stem}_input.png"), target.with_name(f"{stem}_restored.png")


FACE_CROP = re.compile(r"^(?P<stem>.+)_face\d{2,}_(input|restored)\.png$")  # the names face_paths gives


def face_crop_owner(path: Path) -> Optional[tuple[Path, str]]:
    """(folder, stem) of the output whose ``--save-faces`` crop ``path`` would be, or None."""
    match = FACE_CROP.match(path.name)
    return (path.parent, match["stem"]) if match else None


def describe(source: Path, role: str) -> str:
    return f"{source}'s {role}" if role else str(source)


def planned_outputs(target: Path, save_comparison: bool) -> list[tuple[Path, str]]:
    """The files of one image known before it is restored, with their role (its face crops are not)."""
    return [(target, "")] + ([(comparison_path(target), "--save-comparison image")] if save_comparison else [])


def refuse_collisions(jobs: Sequence[Job], inputs: set[Path], save_comparison: bool, save_faces: bool,
                      ext: Optional[str]) -> None:
    """Refuse (UsageError naming both files) any planned output that another image's output or an input
    also claims."""
    writers: dict[Path, tuple[Path, str]] = {}
    crops: dict[tuple[Path, str], Path] = {}
    for job in jobs:
        for path, role in planned_outputs(job.target, save_comparison):
            if path in inputs:
                raise UsageError(f"{path}: {describe(job.source, role or 'output')} would overwrite an input; "
                                 "choose another --out")
            if path in writers:
                hint = ", or keep the input formats (no --ext)" if ext and not role and not writers[path][1] else ""
                raise UsageError(f"{describe(*writers[path])} and {describe(job.source, role)} would both be "
                                 f"written to {path}; rename one of them{hint}")
            writers[path] = (job.source, role)
        prefix = (job.target.parent, job.target.stem)
        if save_faces and prefix in crops:
            raise UsageError(f"{crops[prefix]} and {job.source} would both write their --save-faces crops to "
                             f"{job.target.parent / job.target.stem}_faceNN_*.png; rename one of them")
        crops[prefix] = job.source
    if save_faces:
        refuse_crop_collisions(crops, writers, inputs)


def refuse_crop_collisions(crops: dict[tuple[Path, str], Path], writers: dict[Path, tuple[Path, str]],
                           inputs: set[Path]) -> None:
    """An output or an input named like another image's face crop (``<stem>_face00_input.png``)."""
    for path in [*writers, *inputs]:
        owner = crops.get(face_crop_owner(path))
        if owner is not None and path in inputs:
            raise UsageError(f"{path}: {owner}'s --save-faces crops would overwrite this input; "
                             "choose another --out")
        if owner is not None:
            raise UsageError(f"{owner}'s --save-faces crops and {describe(*writers[path])} would both be "
                             f"written to {path}; rename one of them")


def plan_jobs(lq: Path, out: Path, ext: Optional[str] = None, suffix: str = "", save_comparison: bool = False,
              save_faces: bool = False) -> list[Job]:
    """A job for every image; refuses (before any work) outputs that would land in the input folder,
    overwrite an input, or collide with each other: restored images, comparisons and face crops."""
    inputs = list_images(lq)
    root = lq.resolve() if lq.is_dir() else lq.resolve().parent
    out = out.resolve()
    if lq.is_dir() and (out == root or root in out.parents):
        raise UsageError(f"--out {out}: the output folder must not be the input folder or inside it ({root})")
    jobs = []
    for path in inputs:
        rel = path.relative_to(lq) if lq.is_dir() else Path(path.name)
        name = output_name(rel, ext, suffix)
        jobs.append(Job(path, out / name, rel.as_posix(), out / LEDGER / name))
    refuse_collisions(jobs, {p.resolve() for p in inputs}, save_comparison, save_faces, ext)
    return jobs


def ignored_files(lq: Path) -> list[Path]:
    """Visible files under the folder ``lq`` that are not images by their extension."""
    if not lq.is_dir():
        return []
    return sorted(p for p in lq.rglob("*") if p.is_file() and p.suffix.lower() not in IMAGE_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(lq).parts))


@dataclass
class OutputSettings:
    ext: Optional[str] = None
    quality: int = DEFAULT_QUALITY
    suffix: str = ""
    save_faces: bool = False
    save_comparison: bool = False
    overwrite: bool = False


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C until the block is done (writing an image's files), then raise it."""
    caught = []
    try:
        previous = signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    except ValueError:  # not the main thread: nothing to defer
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def extras_notes(extras: ImageExtras, target: Path) -> list[str]:
    from PIL import Image

    fmt = Image.registered_extensions().get(target.suffix.lower())
    notes = [extras.dropped] if extras.dropped else []
    if extras.alpha is not None and fmt not in ALPHA_FORMATS:
        notes.append(f"transparency dropped: {target.suffix} has none (--ext png or webp keeps it)")
    return notes


def output_files(job: Job, lq, result: Restoration, settings: OutputSettings) -> list[tuple[Path, Any]]:
    """(path, image) of every file of one restored image, the output last: on disk, it means all are."""
    files = []
    if settings.save_comparison:
        files.append((comparison_path(job.target), comparison_image(lq, result.image)))
    if settings.save_faces and result.restored_faces is not None:
        for i, (seen, restored) in enumerate(zip(result.input_faces, result.restored_faces)):
            seen_path, restored_path = face_paths(job.target, i)
            files += [(seen_path, seen), (restored_path, restored)]
    return files + [(job.target, result.image)]


def write_outputs(job: Job, lq, extras: ImageExtras, result: Restoration, settings: OutputSettings,
                  options: dict) -> None:
    """Write one image's files and their record: first the record (unfinished), then the files, then the
    record finished. Files of this image's own earlier record are replaced; others only with --overwrite."""
    files = output_files(job, lq, result, settings)
    record = new_record(job.key, job.source, options, [path for path, _ in files])
    previous = read_record(job.ledger)
    replace = settings.overwrite or (previous is not None and previous.produced_by(record))
    taken = [path for path, _ in files if path.exists()]
    if taken and not replace:  # appeared since the run was planned
        raise FileExistsError(f"{taken[0]}: already exists (--overwrite to replace it)")
    write_record(job.ledger, record)
    for path, image in files:
        save_image(image, path, overwrite=replace, quality=settings.quality,
                   extras=extras if path == job.target else None)
    record.finished = time.time()
    write_record(job.ledger, record)


def own_record(job: Job, options: dict) -> tuple[Optional[Record], bool]:
    """The record of ``job``'s output and whether this image made it with these options."""
    record = read_record(job.ledger)
    if record is None or record.input != job.key or record.options != options:
        return record, False
    return record, made_from(record, job.source)


def finished_output(job: Job, options: dict, since: Optional[float] = None) -> bool:
    """``job``'s files are all written, by this image with these options (and after ``since``)."""
    record, own = own_record(job, options)
    return (own and record.finished is not None and (since is None or record.finished >= since)
            and job.target.exists())


def existing_outputs(job: Job, settings: OutputSettings) -> list[Path]:
    planned = [path for path, _ in planned_outputs(job.target, settings.save_comparison) if path.exists()]
    if not settings.save_faces or not job.target.parent.is_dir():
        return planned
    crops = job.target.parent.glob(f"{glob.escape(job.target.stem)}_face*.png")
    return planned + sorted(p for p in crops if face_crop_owner(p) == (job.target.parent, job.target.stem))


def blocking_file(job: Job, options: dict, settings: OutputSettings) -> str:
    """Why ``job`` may not write its files (one of them exists and is not its own output), or ""."""
    record, own = own_record(job, options)
    existing = [] if own or settings.overwrite else existing_outputs(job, settings)
    if not existing:
        return ""
    why = ("no record of what made it" if record is None
           else record.differences(new_record(job.key, job.source, options, [])))
    return f"{existing[0]} exists and is not this image's output ({why}); --overwrite to replace it"
