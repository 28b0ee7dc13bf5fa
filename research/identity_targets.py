#!/usr/bin/env python
"""How close is each test-time identity target to the truth's? Guidance can only add identity where its
target is nearer the HQ face's embedding than the unguided face already is. On a test set's LQ/HQ pairs,
the SFace cosine to SFace(HQ) of: SFace(LQ), SFace(f(y)) (the backbone target) and IRN(y) (CLR-Face's target,
when the pipeline has an IRN; meaningful when the IRN was trained on SFace, ``pretrained.identity=sface``):

    python research/identity_targets.py --hq data/testsets/celeba-test-codeformer/hq \
        --lq data/testsets/celeba-test-codeformer/lq --limit 64 [--model FOLDER]
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from diffrestore.evaluation.features import load_face
from diffrestore.io import list_images
from diffrestore.pipeline.pipeline_diffrestore import DiffRestorePipeline


def cosine_stats(values: torch.Tensor) -> dict[str, float]:
    return {"mean": float(values.mean()), "se": float(values.std() / len(values) ** 0.5)}


@torch.no_grad()
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--model", default=None, help="a pipeline folder (default: the bundled model)")
    p.add_argument("--hq", required=True)
    p.add_argument("--lq", required=True)
    p.add_argument("--limit", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args(argv)
    pipe = DiffRestorePipeline.from_pretrained(args.model)
    size = (pipe.config.resolution,) * 2
    sface = pipe.guidance_network("sface")
    truths = {path.stem: path for path in list_images(args.hq)}
    lq_paths = list_images(args.lq)[:args.limit]
    cosines: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(lq_paths), args.batch_size):
        chunk = lq_paths[start:start + args.batch_size]
        lq = torch.stack([load_face(path, size)[0] for path in chunk])
        hq = torch.stack([load_face(truths[path.stem], size)[0] for path in chunk])
        truth = sface(hq)
        targets = {"sface(lq)": sface(lq), "sface(f(y))": sface(pipe.estimate(lq))}
        if pipe.irn is not None:
            targets["irn(y)"] = pipe.irn(lq.to(pipe.irn.dtype)).float()
        for name, target in targets.items():
            cosines.setdefault(name, []).append(F.cosine_similarity(target, truth, dim=-1))
    report = {"faces": len(lq_paths), "model": args.model or "bundled",
              "cosine_to_sface_of_hq": {name: cosine_stats(torch.cat(v)) for name, v in cosines.items()}}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
