"""The ``diffrestore`` command: ``diffrestore --lq photos/ [--out DIR] [options] [key=value ...]``.

``--lq`` is a folder (every image under it, recursively) or one image. Results go to ``--out``
(default: a new folder beside the input, ``photos_restored/``; never into the input folder) with the
same relative paths. An existing output is skipped unless ``--overwrite``, so an interrupted run
resumes where it stopped. Images are aligned faces or whole photos: ``--aligned`` / ``--whole``
force the mode; by default each image is classified on its own (see ``diffrestore.restore``).
Aligned faces come back at their own size, whole photos at theirs, both times ``--upscale``.

Options come from a preset (``--config``, default ``configs/sample/default.yaml``), then the flags,
then ``key=value`` overrides of any ``RestoreOptions`` field (e.g. ``guidance_range=[0,0.6]``). Every
option is checked before a model loads. ``accelerate launch`` runs it over several processes (GPUs):
each restores its share of the files, and the main process prints one summary.

Exit status: 0 when every image was restored or skipped, 1 when any failed or there was no image,
2 for a usage error (one line naming the argument), 130 when interrupted (Ctrl-C: the image being
restored is dropped, finished files are kept, a rerun resumes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator, Optional, Sequence

from omegaconf import OmegaConf

from .config import ConfigError, load_config, merge_config
from samplers import SAMPLERS

from .io import (ALPHA_FORMATS, DEFAULT_QUALITY, IMAGE_EXTENSIONS, ImageExtras, ImageLoadError, list_images,
                 load_image_with_extras, save_image)
from .options import RestoreOptions
from .pipeline import model_folder
from .restore import Restoration, comparison_image

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs" / "sample"
DEFAULT_PRESET = PRESET_DIR / "default.yaml"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
OUTPUT_EXTENSIONS = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}
FLAGS = {  # flag dest -> RestoreOptions key
    "model": "model", "steps": "steps", "start_t": "start_t", "sampler": "sampler", "eta": "eta",
    "guidance": "guidance", "seed": "seed", "batch_size": "batch_size", "device": "device", "dtype": "dtype",
    "upscale": "upscale", "aligned": "aligned", "only_center_face": "only_center_face",
    "save_comparison": "save_comparison", "overwrite": "overwrite",
}
# --fidelity f: DifFace's N = FIDELITY_MAX_START_T * (1 - f)^2, so that 0.5 is the default preset
# (N = 100), 0 the prior's realism (N = 400), 1 the backbone's fidelity (N = 0). It leaves identity
# guidance alone: on the bundled 256 px model guidance lowers identity (docs/evaluation.md).
FIDELITY_MAX_START_T = 400


class UsageError(ValueError):
    """A bad argument: the message names it and says what is wrong."""


# --------------------------------------------------------------------------------------------------
# arguments and options


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="diffrestore", description="Restore the faces in photos (see the module docstring of diffrestore.cli).",
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--lq", required=True, type=Path, help="an image file or a folder of images (recursive)")
    p.add_argument("--out", type=Path, help="output folder (default: <input>_restored beside the input)")
    p.add_argument("--config", type=Path, default=None, help=f"sampler preset (default {DEFAULT_PRESET.name})")
    p.add_argument("--model", help="pipeline folder, or the name of a bundled model (default: the bundled default)")
    p.add_argument("--fidelity", type=float,
                   help="0..1: 0 = the prior's realism (N=400), 1 = the backbone's estimate, closest to the\n"
                        "input (N=0); 0.5 = the default preset. Sets --start-t.")
    p.add_argument("--steps", type=int)
    p.add_argument("--start-t", dest="start_t", type=int, help="DifFace's N: the timestep the chain starts at")
    p.add_argument("--sampler", choices=sorted(SAMPLERS), help="default: the model's own scheduler (DDIM)")
    p.add_argument("--eta", type=float)
    p.add_argument("--guidance", type=float, help="identity-guidance scale (0 = off)")
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int, help="faces per forward pass")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument("--dtype", choices=["auto", "fp32", "fp16", "bf16"])
    p.add_argument("--upscale", type=float, help="output scale of the input's size")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--aligned", dest="aligned", action="store_const", const=True,
                      help="inputs are aligned faces; default: decide per image (square with no face,\n"
                           "or one face already on the template: aligned)")
    mode.add_argument("--whole", dest="aligned", action="store_const", const=False,
                      help="inputs are whole photos: detect, align, restore every face, paste back")
    p.add_argument("--only-center-face", dest="only_center_face", action="store_const", const=True,
                   help="whole photos: restore only the face nearest the centre")
    p.add_argument("--ext", choices=sorted(OUTPUT_EXTENSIONS), help="output format (default: the input's)")
    p.add_argument("--quality", type=int, default=DEFAULT_QUALITY,
                   help=f"jpg / webp quality, 1..100 (default {DEFAULT_QUALITY})")
    p.add_argument("--suffix", default="", help="added to output names: face.png -> face<suffix>.png")
    p.add_argument("--save-comparison", dest="save_comparison", action="store_const", const=True,
                   help="also write <name>_comparison<ext> (LQ | restored)")
    p.add_argument("--save-faces", action="store_true",
                   help="also write each face as the model saw it and restored: <name>_face00_input.png,\n"
                        "<name>_face00_restored.png, ...")
    p.add_argument("--overwrite", action="store_const", const=True, help="replace existing outputs")
    talk = p.add_mutually_exclusive_group()
    talk.add_argument("--quiet", action="store_true", help="no progress bar and no notes: the summary line only")
    talk.add_argument("--verbose", action="store_true", help="a line per image: the mode chosen and the faces")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="any RestoreOptions field")
    return p.parse_args(argv)


def fidelity_options(fidelity: float) -> dict:
    """``--fidelity`` as the options it sets (see FIDELITY_MAX_START_T)."""
    if not 0 <= fidelity <= 1:
        raise UsageError(f"--fidelity: must be in [0, 1] (got {fidelity:g})")
    return {"start_t": round(FIDELITY_MAX_START_T * (1 - fidelity) ** 2)}


def load_preset(path: Optional[Path]):
    """``path``, else the default preset of the checkout; an installed wheel has no configs/ folder,
    so there it is ``RestoreOptions``'s own defaults."""
    if path is None and not DEFAULT_PRESET.is_file():
        return merge_config(RestoreOptions)
    return load_config(path or DEFAULT_PRESET, RestoreOptions)


def build_options(args: argparse.Namespace) -> RestoreOptions:
    flags = {key: getattr(args, dest) for dest, key in FLAGS.items() if getattr(args, dest) is not None}
    if args.fidelity is not None:
        fidelity = fidelity_options(args.fidelity)
        clash = [f"--{key.replace('_', '-')}" for key in fidelity if key in flags]
        if clash:
            raise UsageError(f"--fidelity sets {' and '.join(clash)}: give one or the other")
        flags.update(fidelity)
    cfg = merge_config(load_preset(args.config), flags, list(args.overrides), source="command line")
    return RestoreOptions(**OmegaConf.to_container(cfg, resolve=True))


def _name(key: str) -> str:
    """How the user wrote an option: its flag where there is one."""
    return f"--{key.replace('_', '-')}" if key in FLAGS.values() else key


def option_problems(o: RestoreOptions, num_train_timesteps: int = 1000) -> list[str]:
    """``RestoreOptions.problems`` as the user wrote the options: one line each (empty: fine)."""
    return [f"{_name(key)} {getattr(o, key)!r}: {problem}" for key, problem in o.problems(num_train_timesteps)]


def device_problems(o: RestoreOptions) -> list[str]:
    """``device`` exists on this machine and ``dtype`` runs on it."""
    import torch

    if o.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(o.device)
        except (RuntimeError, ValueError):
            return [f"--device {o.device!r}: not a device; use auto, cpu, cuda, cuda:N or mps"]
    problems = []
    if device.type == "cuda" and not torch.cuda.is_available():
        problems.append(f"--device {o.device!r}: CUDA is not available on this machine "
                        f"(torch {torch.__version__}); use --device cpu or auto")
    elif device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        problems.append(f"--device {o.device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        problems.append(f"--device {o.device!r}: MPS is not available on this machine; use --device cpu or auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        problems.append(f"--device {o.device!r}: unsupported device type; use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cpu" and o.dtype in ("fp16", "float16"):
        problems.append(f"--dtype {o.dtype}: half precision does not run on the CPU; use fp32 (or bf16)")
    return problems


@dataclass
class ModelFacts:
    """What the checks need from a pipeline folder, read from its JSON files (no weights loaded)."""

    num_train_timesteps: int
    has_identity: bool
    has_mask: bool


def read_model_facts(model: Optional[str]) -> ModelFacts:
    path = model_folder(model)
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise UsageError(f"--model {path}: not a pipeline folder (no model_index.json)")
    try:
        index = json.loads(index_file.read_text())
        scheduler = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"--model {path}: unreadable pipeline folder ({err})") from err
    present = {name: bool(index.get(name)) and index[name][0] is not None for name in ("identity", "mask")}
    return ModelFacts(int(scheduler.get("num_train_timesteps", 1000)), present["identity"], present["mask"])


def model_problems(o: RestoreOptions, facts: ModelFacts) -> list[str]:
    problems = []
    if o.guidance > 0 and not facts.has_identity:
        problems.append(f"--guidance {o.guidance:g}: this model has no identity network; use --guidance 0")
    if o.guidance > 0 and not facts.has_mask:
        problems.append(f"--guidance {o.guidance:g}: this model has no learned latent mask; use --guidance 0")
    return problems


def check_options(o: RestoreOptions) -> None:
    """Raise ``UsageError`` naming the first bad option; reads the model folder's JSON, loads nothing."""
    facts = read_model_facts(o.model)
    problems = option_problems(o, facts.num_train_timesteps) or device_problems(o) or model_problems(o, facts)
    if problems:
        raise UsageError(problems[0])


# --------------------------------------------------------------------------------------------------
# files


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


# --------------------------------------------------------------------------------------------------
# the run


@dataclass
class Summary:
    done: list[str] = field(default_factory=list)
    faces: int = 0
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    left: int = 0  # not attempted (interrupted)

    def merge(self, other: "Summary") -> None:
        self.done += other.done
        self.faces += other.faces
        self.skipped += other.skipped
        self.failed += other.failed
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
        lines = [line + (f", left {self.left}" if self.left else "")]
        if with_notes:
            lines += [f"  note: {path}: {note}" for path, note in self.notes]
        lines += [f"  FAILED {path}: {reason}" for path, reason in self.failed]
        return "\n".join(lines)


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
                  summary: Summary) -> None:
    """The extras first, the output last: an output on disk means the image is done (resume)."""
    extra_files = []
    if settings.save_comparison:
        extra_files.append((comparison_path(job.target), comparison_image(lq, result.image)))
    if settings.save_faces and result.restored_faces is not None:
        for i, (seen, restored) in enumerate(zip(result.input_faces, result.restored_faces)):
            seen_path, restored_path = face_paths(job.target, i)
            extra_files += [(seen_path, seen), (restored_path, restored)]
    for path, image in extra_files:
        if path.exists() and not settings.overwrite:
            summary.notes.append((str(job.source), f"{path} exists: kept (--overwrite to replace it)"))
        else:
            save_image(image, path, overwrite=settings.overwrite, quality=settings.quality)
    save_image(result.image, job.target, overwrite=settings.overwrite, quality=settings.quality, extras=extras)


class Progress:
    """A bar per image (faces found in its postfix), a line per image under --verbose, nothing under --quiet."""

    def __init__(self, total: int, quiet: bool, verbose: bool, enabled: bool = True) -> None:
        from tqdm import tqdm

        self.verbose = verbose  # every process tells its own images
        self.bar = tqdm(total=total, unit="img", desc="restoring", disable=quiet or not enabled or total == 0)
        # one write a line (tqdm.write writes the text and its end apart): under `accelerate launch`
        # the processes share stdout, and two writes a line let another process's line in between
        self._write = lambda line: tqdm.write(line + "\n", end="")

    def image(self, job: Job, result: Optional[Restoration] = None, failure: str = "") -> None:
        if result is not None:
            self.bar.set_postfix_str(f"{Path(job.key).name}: {result.num_faces} face(s)", refresh=False)
        if self.verbose:
            what = f"FAILED: {failure}" if failure else f"{result.mode}, {result.num_faces} face(s)" + (
                f"; {result.note}" if result.note else "")
            self._write(f"{job.key}: {what}")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def restore_chunk(restorer, jobs: Sequence[Job], options: RestoreOptions, settings: OutputSettings,
                  summary: Summary, progress: Progress) -> None:
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
                                          aligned=options.aligned)
    except Exception as err:  # noqa: BLE001 - isolate the file that breaks a batch, keep the others
        if len(loaded) == 1:
            summary.failed.append((str(loaded[0][0].source), f"{type(err).__name__}: {err}"))
            progress.image(loaded[0][0], failure=f"{type(err).__name__}: {err}")
            return
        for job, _, _ in loaded:
            restore_chunk(restorer, [job], options, settings, summary, progress)
        return
    with interrupts_deferred():
        for (job, image, extras), result in zip(loaded, results):
            try:
                write_outputs(job, image, extras, result, settings, summary)
            except (OSError, ValueError) as err:
                summary.failed.append((str(job.source), str(err)))
                progress.image(job, failure=str(err))
                continue
            summary.done.append(str(job.source))
            summary.faces += result.num_faces
            summary.notes += [(str(job.source), note) for note in [result.note, *extras_notes(extras, job.target)]
                              if note]
            progress.image(job, result)


def images_per_chunk(restorer, options: RestoreOptions) -> int:
    """Images restored together. On the CPU one at a time, so progress and Ctrl-C act per image
    (results are bit-identical either way; batching gains ~25 % there, benchmarks/RESULTS.md)."""
    return 1 if restorer.device.type == "cpu" else options.batch_size


def restore_jobs(jobs: Sequence[Job], options: RestoreOptions, settings: OutputSettings, summary: Summary,
                 progress: Progress) -> None:
    """Restore ``jobs`` (none skipped), recording each in ``summary``."""
    from .restore import FaceRestorer

    try:
        restorer = FaceRestorer.from_options(options)
    except (OSError, ValueError) as err:  # the folder passed check_options: its weights are broken
        raise UsageError(f"--model {model_folder(options.model)}: cannot be loaded ({err})") from err
    step = images_per_chunk(restorer, options)
    for start in range(0, len(jobs), step):
        restore_chunk(restorer, jobs[start:start + step], options, settings, summary, progress)


# --------------------------------------------------------------------------------------------------
# processes (accelerate launch)


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


# --------------------------------------------------------------------------------------------------


def prepare(args: argparse.Namespace) -> tuple[RestoreOptions, Path, list[Job]]:
    """Every check that needs no model; raises UsageError (or ConfigError) for the first problem."""
    options = build_options(args)
    check_options(options)
    if not 1 <= args.quality <= 100:
        raise UsageError(f"--quality {args.quality}: must be in 1..100")
    if Path(args.suffix).name != args.suffix:
        raise UsageError(f"--suffix {args.suffix!r}: must not contain a path separator")
    check_input(args.lq)
    out = args.out or default_out(args.lq)
    jobs = plan_jobs(args.lq, out, args.ext, args.suffix)
    if jobs:
        check_output_folder(out)
    return options, out, jobs


def split_skipped(jobs: Sequence[Job], overwrite: bool, summary: Summary) -> list[Job]:
    """The jobs to do; those whose output exists are counted as skipped (unless ``overwrite``)."""
    todo = []
    for job in jobs:
        if job.target.exists() and not overwrite:
            summary.skipped.append(str(job.source))
        else:
            todo.append(job)
    return todo


def ignored_note(lq: Path) -> list[tuple[str, str]]:
    others = ignored_files(lq)
    if not others:
        return []
    return [(str(lq), f"{len(others)} file(s) ignored, not images by their extension (e.g. {others[0].name})")]


def restore_all(args: argparse.Namespace, options: RestoreOptions, out: Path, jobs: Sequence[Job]) -> int:
    """Restore this process's share of ``jobs``; print the summary (one, gathered, on the main process)."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()  # one bar (ours) is enough
    processes = join_processes(on_cpu=options.device == "cpu")
    if processes.device and options.device == "auto":
        options = replace(options, device=processes.device)
    settings = OutputSettings(args.ext, args.quality, args.suffix, args.save_faces, bool(options.save_comparison),
                              bool(options.overwrite))
    summary = Summary()
    # disjoint shares of one sorted list: each file is restored exactly once, whatever exists already
    todo = split_skipped(jobs[processes.rank::processes.world], bool(options.overwrite), summary)
    progress = Progress(len(todo), args.quiet, args.verbose, enabled=processes.is_main)
    try:
        if todo:
            restore_jobs(todo, options, settings, summary, progress)
    except KeyboardInterrupt:
        progress.close()
        summary.left = len(todo) - len(summary.done) - len(summary.failed)
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
    try:
        options, out, jobs = prepare(args)
        if not jobs:
            others = ignored_files(args.lq)
            seen = f" ({len(others)} other file(s) ignored)" if others else ""
            print(f"{args.lq}: no images found{seen}; looked for {' '.join(IMAGE_EXTENSIONS)}", file=sys.stderr)
            return EXIT_FAILED
        return restore_all(args, options, out, jobs)
    except (UsageError, ConfigError) as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)  # OmegaConf adds lines of its internals
        return EXIT_USAGE
    except KeyboardInterrupt:  # before the first image (restore_all reports the later ones)
        print("interrupted before any image was restored", file=sys.stderr)
        return EXIT_INTERRUPTED
