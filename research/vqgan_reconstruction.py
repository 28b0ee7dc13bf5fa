#!/usr/bin/env python
"""Reconstruction quality of a VQGAN on a folder of aligned faces (what the vqgan stage's export writes
to ``reconstruction.json``), e.g. the bundled 128 px one and a 256 px campaign export on CelebA-HQ val:

    python research/vqgan_reconstruction.py --vqgan diffrestore/pretrained/utkface128/vqgan \
        --faces data/celebahq256/val --resolution 256
"""

from __future__ import annotations

import argparse
import json

import torch
from diffusers import VQModel

from diffrestore.data.datasets import HQFaceDataset
from diffrestore.evaluation.metrics import effnet_unavailable_reason
from diffrestore.training.stages.vqgan import reconstruction_report


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vqgan", required=True, help="a saved VQModel folder")
    p.add_argument("--faces", required=True)
    p.add_argument("--resolution", type=int, required=True)
    p.add_argument("--limit", type=int, default=200)
    args = p.parse_args(argv)
    vqgan = VQModel.from_pretrained(args.vqgan, torch_dtype=torch.float32).eval()
    faces = HQFaceDataset(args.faces, args.resolution, flip=False)
    distance = None
    if effnet_unavailable_reason() is None:
        from diffrestore.perception.effnet import EffNetPerceptualDistance

        distance = EffNetPerceptualDistance()
    print(json.dumps({"vqgan": args.vqgan, "faces": args.faces, "resolution": args.resolution,
                      **reconstruction_report(vqgan, faces, args.limit, distance)}, indent=1))


if __name__ == "__main__":
    main()
