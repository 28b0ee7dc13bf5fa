"""``diffrestore``'s files: the jobs (an output path for every input image, refused where it would clash)
and the writing of each image's outputs."""

from __future__ import annotations

import contextlib
import re
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from ..io import ALPHA_FORMATS, DEFAULT_QUALITY, IMAGE_EXTENSIONS, ImageExtras, list_images, save_image
from ..pipeline.restore import Restoration, comparison_image

OUTPUT_EXTENSIONS = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}


class UsageError(ValueError):
    """A bad argument: the message names it and says what is wrong."""


@dataclass
class Job:
    source: Path
    target: Path
    key: str  # relative path of the input: the seed of its faces


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


def plan_jobs(lq: Path, out: Path, ext: Optional[str] = None, suffix: str = "") -> list[Job]:
    """A job for every image; refuses outputs that would land in the input folder, overwrite an
    input, or collide with each other."""
    inputs = list_images(lq)
    root = lq.resolve() if lq.is_dir() else lq.resolve().parent
    out = out.resolve()
    if lq.is_dir() and (out == root or root in out.parents):
        raise UsageError(f"--out {out}: the output folder must not be the input folder or inside it ({root})")
    resolved_inputs = {p.resolve() for p in inputs}
    jobs, sources = [], {}
    for path in inputs:
        rel = path.relative_to(lq) if lq.is_dir() else Path(path.name)
        target = out / output_name(rel, ext, suffix)
        if target in resolved_inputs:
            raise UsageError(f"{target}: the output would overwrite an input; choose another --out")
        if target in sources:
            raise UsageError(f"{sources[target]} and {path} would both be written to {target}; "
                             "rename one, or keep the input formats (no --ext)")
        sources[target] = path
        jobs.append(Job(path, target, rel.as_posix()))
    return jobs


def ignored_files(lq: Path) -> list[Path]:
    """Visible files under the folder ``lq`` that are not images by their extension."""
    if not lq.is_dir():
        return []
    return sorted(p for p in lq.rglob("*") if p.is_file() and p.suffix.lower() not in IMAGE_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(lq).parts))


def comparison_path(target: Path) -> Path:
    return target.with_name(f"{target.stem}_comparison{target.suffix}")


def face_paths(target: Path, index: int) -> tuple[Path, Path]:
    stem = f"{target.stem}_face{index:02d}"
    return target.with_name(f"{stem}_input.png"), target.with_name(f"{stem}_restored.png")


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


def write_outputs(job: Job, lq, extras: ImageExtras, result: Restoration, settings: OutputSettings,
                  notes: list[tuple[str, str]]) -> None:
    """The extras first, the output last: an output on disk means the image is done (resume); an extra
    that exists is kept, with a note."""
    extra_files = []
    if settings.save_comparison:
        extra_files.append((comparison_path(job.target), comparison_image(lq, result.image)))
    if settings.save_faces and result.restored_faces is not None:
        for i, (seen, restored) in enumerate(zip(result.input_faces, result.restored_faces)):
            seen_path, restored_path = face_paths(job.target, i)
            extra_files += [(seen_path, seen), (restored_path, restored)]
    for path, image in extra_files:
        if path.exists() and not settings.overwrite:
            notes.append((str(job.source), f"{path} exists: kept (--overwrite to replace it)"))
        else:
            save_image(image, path, overwrite=settings.overwrite, quality=settings.quality)
    save_image(result.image, job.target, overwrite=settings.overwrite, quality=settings.quality, extras=extras)
