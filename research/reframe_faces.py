#!/usr/bin/env python
"""Aligned faces of one framing redrawn in another, e.g. UTKFace's tight 128-px crops in the CelebA-HQ
framing of the 256 px model, so that the identity stage can distil phi from both sets (18,544 more
people than CelebA-HQ's 5,116; research/LOG.md, session 7):

    python research/reframe_faces.py --src ../shared/data/utkface/train --from-template utkface_128 \\
        --to-template celebahq_256 --size 256 --out /tmp/phi_faces/utkface

Each face is warped by the similarity that takes one template's five landmarks onto the other's
(``geometry.template_to_template``); where the source crop ends, its border pixels are repeated
(as SFace's crops of these faces do). WebP at ``--quality``, one file per face, same stem.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from diffrestore.models.builders import load_template
from diffrestore.geometry import template_to_template, warp_affine
from diffrestore.io import list_images, load_image, pil_to_tensor, tensor_to_pil


def reframe(image: torch.Tensor, from_template: str, to_template: str, size: int) -> torch.Tensor:
    """A face (3, S, S) in [-1, 1] aligned to ``from_template`` -> (3, size, size) aligned to ``to_template``."""
    matrix = template_to_template(load_template(from_template, image.shape[-1]), load_template(to_template, size))
    return warp_affine(image[None], matrix, (size, size), padding_mode="border")[0].clamp(-1, 1)


def reframe_file(job: tuple[Path, Path, str, str, int, int]) -> None:
    src, dst, from_template, to_template, size, quality = job
    face = reframe(pil_to_tensor(load_image(src)), from_template, to_template, size)
    tensor_to_pil(face).save(dst, format="WEBP", quality=quality, method=6)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--from-template", required=True, help="the framing of --src (a bundled template's name)")
    p.add_argument("--to-template", required=True, help="the framing to draw the faces in")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(src, args.out / f"{src.stem}.webp", args.from_template, args.to_template, args.size, args.quality)
            for src in list_images(args.src)]
    with ProcessPoolExecutor(args.workers) as pool:
        list(pool.map(reframe_file, jobs, chunksize=64))
    print(f"{len(jobs)} faces {args.from_template} -> {args.to_template} at {args.size} px -> {args.out}")


if __name__ == "__main__":
    main()
