"""``diffrestore-eval-restore``: restore a test set whose faces share a known framing.

    diffrestore-eval-restore --lq data/testsets/celeba-test-codeformer/lq \\
        --out runs/celeba-test-codeformer/pipeline [--framing ffhq_512] [--config configs/sample/quality.yaml] \\
        [key=value ...]

A CelebA-Test-style set is aligned already (CelebA-HQ's framing, close to FFHQ's), but not to the
model's template, nor at its size (the bundled model restores 256-px crops; a UTKFace set is 128-px
crops framed otherwise). ``--framing`` defaults to the bundled template of the set's size
(``builders.template_for_size``: ffhq_512 at 512 px, utkface_128 at 128). Each face then goes
through the whole-photo path with the set's known alignment in place of detection: the fixed
similarity from the set's template to the model's crops the face, the model restores it, and the
photo path's feathered blend and detail band paste it back at the set's size. Detection is skipped
because it fails on the heaviest degradations of these sets (a 512-px face down-sampled 30 times is
17 px), and a face it loses would be scored as its LQ input.
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

from ..ablation import AblationOptions, AblationRestorer
from ..builders import template_for_size
from ..config import load_config, merge_config
from ..io import list_images, load_image, pil_to_tensor, save_image, tensor_to_pil

DEFAULT_PRESET = Path(__file__).resolve().parents[2] / "configs" / "sample" / "default.yaml"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="diffrestore-eval-restore", description=__doc__.split("\n\n")[0])
    p.add_argument("--lq", type=Path, required=True, help="folder of square LQ faces in the --framing alignment")
    p.add_argument("--out", type=Path, required=True, help="folder for the restored faces (PNG, same stems)")
    p.add_argument("--framing", help="template the set is aligned to (name or JSON path; default: the bundled "
                                     "template of the faces' size, e.g. ffhq_512 at 512 px)")
    p.add_argument("--config", type=Path, default=DEFAULT_PRESET, help="sampler preset (configs/sample/*.yaml)")
    p.add_argument("--limit", type=int, help="restore only the first N files (sorted)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="any RestoreOptions field or ablation switch")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = merge_config(load_config(args.config, AblationOptions), {}, list(args.overrides), source="command line")
    options = AblationOptions(**OmegaConf.to_container(cfg, resolve=True))
    paths = list_images(args.lq, recursive=False)[:args.limit]
    if not paths:
        print(f"diffrestore-eval-restore: error: {args.lq}: no images", file=sys.stderr)
        return 2
    try:
        framing = args.framing or template_for_size(load_image(paths[0]).size[0])
    except ValueError as err:
        print(f"diffrestore-eval-restore: error: {paths[0]}: {err} (--framing)", file=sys.stderr)
        return 2
    todo = [p for p in paths if not (args.out / f"{p.stem}.png").exists()]
    restorer = AblationRestorer.from_options(options)
    start = time.perf_counter()
    for start_index in range(0, len(todo), options.batch_size):
        chunk = todo[start_index:start_index + options.batch_size]
        images = [pil_to_tensor(load_image(p)) for p in chunk]
        not_square = [p for p, image in zip(chunk, images) if image.shape[-1] != image.shape[-2]]
        if not_square:
            print(f"diffrestore-eval-restore: error: {not_square[0]}: not square", file=sys.stderr)
            return 2
        for path, restored in zip(chunk, restorer.restore_framed(images, [p.stem for p in chunk], framing)):
            save_image(tensor_to_pil(restored), args.out / f"{path.stem}.png")
    elapsed = time.perf_counter() - start
    per_face = elapsed / len(todo) if todo else 0.0
    print(f"{args.out}: restored {len(todo)} faces ({len(paths) - len(todo)} existed) in {elapsed:.0f} s, "
          f"{per_face:.2f} s/face, torch {torch.__version__}, {torch.get_num_threads()} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
