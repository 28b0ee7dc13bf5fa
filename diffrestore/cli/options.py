"""``diffrestore``'s arguments: parsed, merged with the preset into ``RestoreOptions``, and checked before any
model loads (each problem one line naming the flag as the user wrote it)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from omegaconf import OmegaConf

from .. import __version__
from ..config import load_config, merge_config
from ..io import DEFAULT_QUALITY
from ..pipeline.options import RestoreOptions
from ..pipeline.pipeline_diffrestore import bundled_models, model_folder
from ..pipeline.restore import resolve_device
from ..sampling import SAMPLERS, SCHEDULERS
from .files import OUTPUT_EXTENSIONS, UsageError

PRESET_DIR = Path(__file__).resolve().parents[1] / "presets"  # package data; configs/sample links to it
DEFAULT_PRESET = PRESET_DIR / "default.yaml"
PRESETS = sorted(path.stem for path in PRESET_DIR.glob("*.yaml"))
FLAGS = {  # flag dest -> RestoreOptions key
    "model": "model", "steps": "steps", "start_t": "start_t", "sampler": "sampler", "scheduler": "scheduler",
    "eta": "eta",
    "guidance": "guidance", "seed": "seed", "batch_size": "batch_size", "device": "device", "dtype": "dtype",
    "upscale": "upscale", "aligned": "aligned", "only_center_face": "only_center_face",
    "save_comparison": "save_comparison", "overwrite": "overwrite", "threads": "threads",
}
# --fidelity f: DifFace's N = FIDELITY_MAX_START_T * (1 - f)^2, so that 0.5 is the default preset
# (N = 100), 0 the prior's realism (N = 400), 1 the backbone's fidelity (N = 0). It leaves identity
# guidance alone: on the bundled 256 px model guidance lowers identity (research/LOG.md).
FIDELITY_MAX_START_T = 400


DESCRIPTION = """Restore the faces in photos: diffrestore --lq photos/ [--out DIR] [options] [key=value ...]

--lq is an image or a folder (every image under it). Results go to --out (default <input>_restored beside
the input) with the same relative paths; an output this image made with these options is skipped unless
--overwrite, so a rerun resumes (another file there is kept and reported). Options come from a preset
(--preset or --config), then the flags, then key=value overrides."""
EPILOG = """exit status: 0 every image restored or skipped; 1 an image failed, or no image;
2 a bad argument (one line naming it); 130 interrupted (finished files are kept, a rerun resumes)"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(allow_abbrev=False, prog="diffrestore", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--version", action="version", version=f"diffrestore {__version__}")
    p.add_argument("--lq", required=True, type=Path, help="an image file or a folder of images (recursive)")
    p.add_argument("--out", type=Path, help="output folder (default: <input>_restored beside the input)")
    preset = p.add_mutually_exclusive_group()
    preset.add_argument("--preset", choices=PRESETS, help="a named sampling preset (default: default)")
    preset.add_argument("--config", type=Path, default=None, help="a sampling preset file (YAML)")
    p.add_argument("--model", help=f"pipeline folder, or a bundled model: {', '.join(bundled_models())}\n"
                                   "(default: the bundled default)")
    p.add_argument("--fidelity", type=float,
                   help="0..1: 0 = the prior's realism (N=400), 1 = the backbone's estimate, closest to the\n"
                        "input (N=0); 0.5 = the default preset. Sets --start-t.")
    p.add_argument("--steps", type=int, help="sampling steps from --start-t down to 0")
    p.add_argument("--start-t", dest="start_t", type=int, help="DifFace's N: the timestep the chain starts at")
    p.add_argument("--sampler", help=f"the algorithm: {', '.join(SAMPLERS)} (default difface)")
    p.add_argument("--scheduler", choices=sorted(SCHEDULERS), help="the update rule; default: the model's own (DDIM)")
    p.add_argument("--eta", type=float, help="DDIM's eta: 0 = deterministic (ddim scheduler only)")
    p.add_argument("--guidance", type=float, help="identity-guidance scale (0 = off)")
    p.add_argument("--seed", type=int, help="every face's noise is seeded from it and the file's path")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="faces per forward pass")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument("--dtype", choices=["auto", "fp32", "fp16", "bf16"],
                   help="auto (default): bf16 on CUDA, fp32 elsewhere")
    p.add_argument("--threads", type=int,
                   help="torch's CPU threads (default on the CPU: the cores the load average leaves idle, at\n"
                        "least 1, measured fastest; on a GPU 1 beside the reading and writing threads, torch's\n"
                        "own with --prefetch 0)")
    p.add_argument("--prefetch", type=int,
                   help="images read and prepared ahead while the model runs, on background threads that\n"
                        "also write the results (default: two model calls' worth; 0: one at a time, in turn)")
    p.add_argument("--upscale", type=float, help="output scale of the input's size, in (0, 8] (default 1)")
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
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="any option by its name, e.g. guidance_range=[0,0.6] color_fix=none\n"
                        "(the fields of diffrestore.pipeline.options.RestoreOptions)")
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def fidelity_options(fidelity: float) -> dict:
    """``--fidelity`` as the options it sets (see FIDELITY_MAX_START_T)."""
    if not 0 <= fidelity <= 1:
        raise UsageError(f"--fidelity: must be in [0, 1] (got {fidelity:g})")
    return {"start_t": round(FIDELITY_MAX_START_T * (1 - fidelity) ** 2)}


def load_preset(path: Optional[Path]):
    """``path``, else the default preset (package data; ``RestoreOptions``'s own defaults if it is missing)."""
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
    preset = PRESET_DIR / f"{args.preset}.yaml" if args.preset else args.config
    cfg = merge_config(load_preset(preset), flags, list(args.overrides), source="command line")
    return RestoreOptions(**OmegaConf.to_container(cfg, resolve=True))


def flag_name(key: str) -> str:
    """How the user wrote an option: its flag where there is one."""
    return f"--{key.replace('_', '-')}" if key in FLAGS.values() else key


def option_problems(o: RestoreOptions, num_train_timesteps: int = 1000) -> list[str]:
    """``RestoreOptions.problems`` as the user wrote the options: one line each (empty: fine)."""
    return [f"{flag_name(key)} {getattr(o, key)!r}: {problem}" for key, problem in o.problems(num_train_timesteps)]


def device_problems(o: RestoreOptions) -> list[str]:
    """``device`` exists on this machine and ``dtype`` runs on it."""
    import torch

    try:
        device = resolve_device(o.device)  # the one rule for "auto": cuda, then mps, then cpu
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
    has_irn: bool
    has_mask: bool


def read_model_facts(model: Optional[str]) -> ModelFacts:
    path = model_folder(model)
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise UsageError(f"--model {path}: not a pipeline folder (no model_index.json) nor a bundled model "
                         f"({', '.join(bundled_models())})")
    try:
        index = json.loads(index_file.read_text())
        scheduler = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"--model {path}: unreadable pipeline folder ({err})") from err
    present = {name: bool(index.get(name)) and index[name][0] is not None for name in ("identity", "irn", "mask")}
    return ModelFacts(int(scheduler.get("num_train_timesteps", 1000)), **{f"has_{k}": v for k, v in present.items()})


def model_problems(o: RestoreOptions, facts: ModelFacts) -> list[str]:
    problems = []
    if o.guidance > 0 and o.guidance_network == "phi" and not facts.has_identity:
        problems.append(f"--guidance {o.guidance:g}: this model has no identity network (phi); use --guidance 0 "
                        "or guidance_network=sface")
    if o.guidance > 0 and o.guidance_target == "irn" and not facts.has_irn:
        problems.append(f"--guidance {o.guidance:g}: guidance_target=irn but this model has no IRN; "
                        "use guidance_target=backbone")
    if o.guidance > 0 and not facts.has_mask:
        problems.append(f"--guidance {o.guidance:g}: this model has no learned latent mask; use --guidance 0")
    return problems


def check_options(o: RestoreOptions) -> None:
    """Raise ``UsageError`` naming the first bad option; reads the model folder's JSON, loads nothing."""
    facts = read_model_facts(o.model)
    problems = option_problems(o, facts.num_train_timesteps) or device_problems(o) or model_problems(o, facts)
    if problems:
        raise UsageError(problems[0])
