#!/usr/bin/env python
"""The ``color_fix=chroma`` row of a test set from two restored rows, without restoring again: the luma
of the pipeline row (restored with ``color_fix=wavelet``) with the chroma of its backbone row, face by
face, which is what the chroma fix computes (up to 8-bit rounding and the order of resizing):

    python research/chroma_from_rows.py --pipeline /tmp/ev4/s4_fast --backbone /tmp/ev4/s4_backbone \
        --out /tmp/ev4/s4_chroma
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffrestore.pipeline.colorfix import luma
from diffrestore.io import list_images, load_image, pil_to_tensor, save_image, tensor_to_pil


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pipeline", type=Path, required=True, help="faces restored with color_fix=wavelet")
    p.add_argument("--backbone", type=Path, required=True, help="the same faces, backbone_only=true")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in list_images(args.pipeline, recursive=False):
        image = pil_to_tensor(load_image(path))[None]
        reference = pil_to_tensor(load_image(args.backbone / path.name))[None]
        save_image(tensor_to_pil(reference + luma(image) - luma(reference)), args.out / path.name)


if __name__ == "__main__":
    main()
