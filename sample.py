#!/usr/bin/env python
"""Restore faces: ``python sample.py --lq photos/ [--out DIR] [options] [key=value ...]``.

``--lq`` is a folder (every image under it, recursively) or one file. Results go to ``--out``
(default: a new folder beside the input, ``photos_restored/``; never into the input folder) with the
same relative paths. An existing output is skipped unless ``--overwrite``, so an interrupted run
resumes where it stopped. Images are aligned faces or whole photos: ``--aligned`` / ``--whole``
force the mode; by default each image is classified on its own (see ``diffrestore.restore``).

Options come from a preset (``--config``, default ``configs/sample/default.yaml``), then the flags,
then ``key=value`` overrides of any ``RestoreOptions`` field (e.g. ``guidance_range=[0,0.6]``).
Exit status: 0 when every image was restored or skipped, 1 when any failed, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from diffusers.utils import logging as diffusers_logging
from omegaconf import OmegaConf
from tqdm import tqdm

from diffrestore.config import ConfigError, load_config, merge_config
from diffrestore.io import ImageLoadError, list_images, load_image, save_image
from diffrestore.options import RestoreOptions
from diffrestore.restore import FaceRestorer, comparison_image
from samplers import SAMPLERS

DEFAULT_PRESET = Path(__file__).resolve().parent / "configs" / "sample" / "default.yaml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--lq", required=True, type=Path, help="an image file or a folder of images (recursive)")
    p.add_argument("--out", type=Path, help="output folder (default: <input>_restored beside the input)")
    p.add_argument("--config", type=Path, default=None, help=f"sampler preset (default {DEFAULT_PRESET.name})")
    p.add_argument("--model", help="pipeline folder (default: the bundled model)")
    p.add_argument("--steps", type=int)
    p.add_argument("--start-t", dest="start_t", type=int, help="DifFace's N: the timestep the chain starts at")
    p.add_argument("--sampler", choices=sorted(SAMPLERS), help="default: the model's own scheduler (DDIM)")
    p.add_argument("--eta", type=float)
    p.add_argument("--guidance", type=float, help="identity-guidance scale (0 = off)")
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int, help="faces per forward pass")
    p.add_argument("--device")
    p.add_argument("--dtype", choices=["auto", "fp32", "fp16", "bf16"])
    p.add_argument("--upscale", type=float, help="output scale (whole photos: of the photo)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--aligned", dest="aligned", action="store_const", const=True,
                      help="inputs are aligned faces (resized to the model's resolution); default: decide per "
                           "image (square with no face, or one face already on the template: aligned)")
    mode.add_argument("--whole", dest="aligned", action="store_const", const=False,
                      help="inputs are whole photos: detect, align, restore every face, paste back")
    p.add_argument("--save-comparison", dest="save_comparison", action="store_const", const=True,
                   help="also write <name>_comparison<ext> (LQ | restored)")
    p.add_argument("--overwrite", action="store_const", const=True, help="replace existing outputs")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="any RestoreOptions field")
    return p.parse_args(argv)


def build_options(args: argparse.Namespace) -> RestoreOptions:
    """The preset, then the flags given (each named as its option), then the key=value overrides."""
    flags = {f.name: getattr(args, f.name) for f in fields(RestoreOptions) if getattr(args, f.name, None) is not None}
    preset = load_config(args.config or DEFAULT_PRESET, RestoreOptions)
    cfg = merge_config(preset, flags, list(args.overrides), source="command line")
    return RestoreOptions(**OmegaConf.to_container(cfg, resolve=True))


def default_out(lq: Path) -> Path:
    lq = lq.resolve()
    return lq.parent / (f"{lq.stem}_restored" if lq.is_file() else f"{lq.name}_restored")


def plan_outputs(lq: Path, out: Path) -> list[tuple[Path, Path, str]]:
    """(input, output, key) for every image; refuses an output folder that would write into the input."""
    inputs = list_images(lq)
    root = lq.resolve() if lq.is_dir() else lq.resolve().parent
    out = out.resolve()
    if lq.is_dir() and (out == root or root in out.parents):
        raise ValueError(f"{out}: the output folder must not be the input folder or inside it ({root})")
    plan = []
    resolved_inputs = {p.resolve() for p in inputs}
    for path in inputs:
        rel = path.relative_to(lq) if lq.is_dir() else Path(path.name)
        target = out / rel
        if target in resolved_inputs:
            raise ValueError(f"{target}: the output would overwrite an input; choose another --out")
        plan.append((path, target, rel.as_posix()))
    return plan


def comparison_path(target: Path) -> Path:
    return target.with_name(f"{target.stem}_comparison{target.suffix}")


@dataclass
class Summary:
    done: list[str] = field(default_factory=list)
    faces: int = 0
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)

    def report(self) -> str:
        lines = [f"done {len(self.done)} ({self.faces} faces), skipped {len(self.skipped)} "
                 f"(output exists; --overwrite to redo), failed {len(self.failed)}"]
        lines += [f"  note: {path}: {note}" for path, note in self.notes]
        lines += [f"  FAILED {path}: {reason}" for path, reason in self.failed]
        return "\n".join(lines)


def restore_chunk(restorer: FaceRestorer, chunk, options: RestoreOptions, summary: Summary) -> None:
    loaded = []
    for path, target, key in chunk:
        try:
            loaded.append((path, target, key, load_image(path)))
        except (ImageLoadError, OSError) as err:
            summary.failed.append((str(path), str(err).removeprefix(f"{path}: ")))
    if not loaded:
        return
    try:
        results = restorer.restore_photos([item[3] for item in loaded], [item[2] for item in loaded],
                                          aligned=options.aligned)
    except Exception as err:  # noqa: BLE001 - isolate the file that breaks a batch, keep the others
        if len(loaded) == 1:
            summary.failed.append((str(loaded[0][0]), f"{type(err).__name__}: {err}"))
            return
        for item in loaded:
            restore_chunk(restorer, [item[:3]], options, summary)
        return
    for (path, target, _, image), result in zip(loaded, results):
        try:
            save_image(result.image, target, overwrite=options.overwrite)
            if options.save_comparison:
                compare = comparison_path(target)
                if compare.exists() and not options.overwrite:
                    summary.notes.append((str(path), f"{compare} exists: kept (--overwrite to replace it)"))
                else:
                    save_image(comparison_image(image, result.image), compare, overwrite=options.overwrite)
        except (OSError, ValueError) as err:
            summary.failed.append((str(path), str(err)))
            continue
        summary.done.append(str(path))
        summary.faces += result.num_faces
        if result.note:
            summary.notes.append((str(path), result.note))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    diffusers_logging.disable_progress_bar()  # one bar (ours) is enough
    try:
        options = build_options(args)
        out = args.out or default_out(args.lq)
        plan = plan_outputs(args.lq, out)
    except (ConfigError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary = Summary()
    todo = []
    for item in plan:
        if item[1].exists() and not options.overwrite:
            summary.skipped.append(str(item[0]))
        else:
            todo.append(item)
    if todo:
        try:
            restorer = FaceRestorer.from_options(options)
        except (FileNotFoundError, ValueError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        with tqdm(total=len(todo), unit="img", desc="restoring") as bar:
            for start in range(0, len(todo), options.batch_size):
                chunk = todo[start:start + options.batch_size]
                restore_chunk(restorer, chunk, options, summary)
                bar.update(len(chunk))
    print(f"{out}: " + summary.report())
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
