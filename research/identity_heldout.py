#!/usr/bin/env python
"""How well does an identity network (phi or the IRN's architecture) match SFace on faces of a folder?
The identity stage's held-out report (``identity/heldout.json``) for any saved network and folder:

    python research/identity_heldout.py --identity diffrestore/pretrained/celebahq256/identity \\
        --faces data/celebahq256/val data/celebahq256/train/part0 data/celebahq256/train/part1

Per folder, on its first ``--limit`` faces (sorted by name) and seeded degradations of them (the training
ranges): the network's mean cosine to SFace's embedding of the HQ face, for the clean and the degraded
face, and the mean cosine between different faces for the network and for SFace.
"""

from __future__ import annotations

import argparse
import json

from diffrestore.models.builders import load_template
from diffrestore.data.datasets import PairedFaceDataset
from diffrestore.data.degradations import DegradationConfig
from diffrestore.models import IdentityNet, SFaceIdentity
from diffrestore.training.stages.identity import HELDOUT_FACES, identity_report


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--identity", required=True, help="a saved IdentityNet folder")
    p.add_argument("--faces", nargs="+", required=True, help="folders of aligned faces")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--template", default="celebahq_256")
    p.add_argument("--limit", type=int, default=HELDOUT_FACES)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    student = IdentityNet.from_pretrained(args.identity).float().eval()
    teacher = SFaceIdentity(load_template(args.template, args.resolution), args.resolution)
    report = {folder: identity_report(student, PairedFaceDataset(folder, args.resolution, DegradationConfig(),
                                                                 seed=args.seed, flip=False), teacher, args.limit)
              for folder in args.faces}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
