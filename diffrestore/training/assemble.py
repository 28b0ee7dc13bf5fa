"""Put trained component folders together into one pipeline folder.

``diffrestore-assemble --vqgan DIR --unet DIR --backbone DIR [--identity DIR] [--irn DIR] [--mask DIR]
--model-config configs/model/default128.yaml --out DIR [--overwrite]``

Each DIR is a folder written by ``save_pretrained`` (``config.json`` + safetensors), or a folder that
holds one under the component's name (``DIR/unet/``, as a pipeline folder does). The sampler (DDIM
on the training schedule), the face template and the conditioning flag come from the model config. The result is
written in fp16 safetensors to a temporary folder and moved into place, so ``--out`` is either the
old folder or the complete new one; an existing ``--out`` is only replaced with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import torch
from diffusers import UNet2DModel

from ..config import ConfigError
from ..models import LatentMask, RestorationNet, load_identity_folder
from ..models.codec import AUTOENCODER
from ..pipeline.pipeline_diffrestore import DiffRestorePipeline, load_model_config

# how each component's folder loads (the identity networks by the class their config names)
COMPONENTS = {"vqgan": AUTOENCODER.from_pretrained, "unet": UNet2DModel.from_pretrained,
              "backbone": RestorationNet.from_pretrained, "identity": load_identity_folder, "irn": load_identity_folder,
              "mask": LatentMask.from_pretrained}
REQUIRED = ("vqgan", "unet", "backbone")


def component_folder(path: Path, name: str) -> Path:
    """``path`` itself or its ``name`` subfolder: whichever holds a ``config.json``."""
    if (path / "config.json").is_file():
        return path
    if (path / name / "config.json").is_file():
        return path / name
    raise FileNotFoundError(f"{path}: no {name} here (neither {path}/config.json nor {path}/{name}/config.json)")


def assemble(folders: dict[str, Optional[Path]], model_config: Path, overrides: Sequence[str] = ()
             ) -> DiffRestorePipeline:
    """A pipeline of the component ``folders`` (by component name; None: left out)."""
    cfg = load_model_config(model_config, overrides)
    parts = {}
    for name, load in COMPONENTS.items():
        folder = folders.get(name)
        parts[name] = load(str(component_folder(Path(folder), name))).eval() if folder else None
    return DiffRestorePipeline.from_parts(cfg, **parts)


def write_pipeline(pipeline: DiffRestorePipeline, out: Path, overwrite: bool = False) -> None:
    """Save ``pipeline`` (fp16 weights) to ``out`` atomically; refuses an existing ``out`` unless ``overwrite``."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (pass --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        pipeline.cast(torch.float16)
        pipeline.save_pretrained(str(staging))
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            staging.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    for name in COMPONENTS:
        p.add_argument(f"--{name}", type=Path, required=name in REQUIRED, help=f"{name} component folder")
    p.add_argument("--model-config", required=True, type=Path, help="configs/model/*.yaml the parts were trained with")
    p.add_argument("--out", required=True, type=Path, help="pipeline folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of the model config")
    args = p.parse_args(argv)
    if args.out.exists() and not args.overwrite:
        print(f"error: {args.out}: already exists (pass --overwrite to replace it)", file=sys.stderr)
        return 2
    try:
        pipeline = assemble({name: getattr(args, name) for name in COMPONENTS}, args.model_config, args.overrides)
        write_pipeline(pipeline, args.out, args.overwrite)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    present = [name for name in COMPONENTS if getattr(pipeline, name) is not None]
    print(f"{args.out}: pipeline with {', '.join(present)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
