"""``diffrestore-eval-restore``: restore a test set whose faces share a known framing.

    diffrestore-eval-restore --lq data/testsets/celeba-test-codeformer/lq \\
        --out runs/celeba-test-codeformer/pipeline [--framing aligned|TEMPLATE] [--config configs/sample/quality.yaml] \\
        [key=value ...]

``--framing aligned`` (the default) restores each face exactly as ``diffrestore --aligned`` does, the
path users get: the face resized to the model's size, restored, resized back, seeded by its file name.
That is right for a set framed as the model's training faces (CelebA-Test is CelebA-HQ's framing, the
256 px model's). ``--framing TEMPLATE`` is for a set framed otherwise (e.g. ``utkface_128`` crops
restored by a model of the FFHQ framing): each face then goes through the whole-photo path with the
set's known alignment in place of detection: the fixed similarity from the set's template to the
model's crops the face, the model restores it, and the photo path's feathered blend and detail band
paste it back at the set's size. Detection is skipped because it fails on the heaviest degradations
of these sets (a 512-px face down-sampled 30 times is 17 px), and a face it loses would be scored as
its LQ input.
Options are ``sample.py``'s (``--config`` preset, then ``key=value`` overrides of ``RestoreOptions``)
and the sweeps' ablation switches (``backbone_only=true``, ``mask=off``: ``diffrestore.ablation``);
existing outputs are skipped, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

import torch
from omegaconf import OmegaConf
from PIL import Image

from .ablation import AblationOptions, AblationRestorer
from ..models.builders import load_template
from ..config import load_config, merge_config
from ..io import list_images, load_image, pil_to_tensor, save_image, tensor_to_pil

ALIGNED = "aligned"
DEFAULT_PRESET = Path(__file__).resolve().parents[2] / "configs" / "sample" / "default.yaml"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="diffrestore-eval-restore", description=__doc__.split("\n\n")[0],
                                allow_abbrev=False)
    p.add_argument("--lq", type=Path, required=True, help="folder of square LQ faces in the --framing alignment")
    p.add_argument("--out", type=Path, required=True, help="folder for the restored faces (PNG, same stems)")
    p.add_argument("--framing", default=ALIGNED, help="'aligned' (default: the faces are in the model's framing, "
                                                      "restored as by `diffrestore --aligned`), or the template "
                                                      "the set is aligned to (name or JSON path, e.g. utkface_128)")
    p.add_argument("--config", type=Path, default=DEFAULT_PRESET, help="sampler preset (configs/sample/*.yaml)")
    p.add_argument("--limit", type=int, help="restore only the first N files (sorted)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="any RestoreOptions field or ablation switch")
    return p.parse_args(argv)


def restore_chunk(restorer: AblationRestorer, images: list[Image.Image], paths: list[Path],
                  framing: str) -> list[Image.Image]:
    """The restored faces of one batch: as ``diffrestore --aligned`` (seeded by the file name, as the CLI
    seeds a file at the top of its folder), or through ``framing``'s template."""
    if framing == ALIGNED:
        return [r.image for r in restorer.restore_photos(images, [p.name for p in paths], aligned=True)]
    restored = restorer.restore_framed([pil_to_tensor(i) for i in images], [p.stem for p in paths], framing)
    return [tensor_to_pil(face) for face in restored]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = merge_config(load_config(args.config, AblationOptions), {}, list(args.overrides), source="command line")
    options = AblationOptions(**OmegaConf.to_container(cfg, resolve=True))
    paths = list_images(args.lq, recursive=False)[:args.limit]
    if not paths:
        print(f"diffrestore-eval-restore: error: {args.lq}: no images", file=sys.stderr)
        return 2
    framing = args.framing
    if framing != ALIGNED:
        try:
            load_template(framing, load_image(paths[0]).size[0])
        except (FileNotFoundError, ValueError, KeyError) as err:
            print(f"diffrestore-eval-restore: error: --framing {framing}: {err}", file=sys.stderr)
            return 2
    todo = [p for p in paths if not (args.out / f"{p.stem}.png").exists()]
    restorer = AblationRestorer.from_options(options)
    start = time.perf_counter()
    for start_index in range(0, len(todo), options.batch_size):
        chunk = todo[start_index:start_index + options.batch_size]
        images = [load_image(p) for p in chunk]
        not_square = [p for p, image in zip(chunk, images) if image.width != image.height]
        if not_square:
            print(f"diffrestore-eval-restore: error: {not_square[0]}: not square", file=sys.stderr)
            return 2
        for path, restored in zip(chunk, restore_chunk(restorer, images, chunk, framing)):
            save_image(restored, args.out / f"{path.stem}.png")
    elapsed = time.perf_counter() - start
    per_face = elapsed / len(todo) if todo else 0.0
    print(f"{args.out}: restored {len(todo)} faces ({len(paths) - len(todo)} existed) in {elapsed:.0f} s, "
          f"{per_face:.2f} s/face, torch {torch.__version__}, {torch.get_num_threads()} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
