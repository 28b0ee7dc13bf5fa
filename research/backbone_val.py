#!/usr/bin/env python
"""The L2 backbone alone on synthetic pairs of a face folder: PSNR-Y of the degraded input and of the
backbone's estimate against the truth (the degradation model of the training configs, seeded pairs):

    python research/backbone_val.py --backbone research/campaign/celebahq256/backbone --faces data/celebahq256/val \
        --resolution 256
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.utils.data import DataLoader

from diffrestore.data.datasets import PairedFaceDataset
from diffrestore.data.degradations import DegradationConfig
from diffrestore.evaluation.metrics import psnr
from diffrestore.models import RestorationNet


@torch.no_grad()
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", required=True, help="a saved RestorationNet folder")
    p.add_argument("--faces", required=True)
    p.add_argument("--resolution", type=int, required=True)
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    backbone = RestorationNet.from_pretrained(args.backbone, torch_dtype=torch.float32).eval()
    pairs = PairedFaceDataset(args.faces, args.resolution, DegradationConfig(), seed=args.seed, flip=False)
    subset = torch.utils.data.Subset(pairs, range(min(args.limit, len(pairs))))
    lq_psnr, estimate_psnr = [], []
    for batch in DataLoader(subset, batch_size=16):
        lq_psnr.append(psnr(batch["lq"], batch["hq"]))
        estimate_psnr.append(psnr(backbone(batch["lq"]).clamp(-1, 1), batch["hq"]))
    print(json.dumps({"backbone": args.backbone, "faces": args.faces, "pairs": len(subset), "seed": args.seed,
                      "psnr_y_lq": float(torch.cat(lq_psnr).mean()),
                      "psnr_y_backbone": float(torch.cat(estimate_psnr).mean())}, indent=1))


if __name__ == "__main__":
    main()
