#!/usr/bin/env python
"""An identity network distilled in one framing, saved to serve a model of another (``IdentityNet.reframe``):

    python research/reframe_identity.py --identity diffrestore/pretrained/utkface128/identity \\
        --from-template utkface_128 --to-template celebahq_256 --size 256 --out /tmp/phi_utk256

The 128 px model's phi (distilled from 18,544 UTKFace faces) drawn this way scores 0.56 against SFace on
the CelebA-HQ val faces, the 256 px model's own phi 0.32 (research/LOG.md, session 7).
"""

from __future__ import annotations

import argparse

from diffrestore.models.builders import load_template
from diffrestore.models import IdentityNet
from diffrestore.models.identity import reframe_identity
from diffrestore.training.stages._common import save_fp16


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--identity", required=True, help="a saved IdentityNet folder")
    p.add_argument("--from-template", required=True, help="the framing it was trained in (a bundled template)")
    p.add_argument("--to-template", required=True, help="the framing of the faces it will be given")
    p.add_argument("--size", type=int, required=True, help="the size of the faces it will be given")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    net = IdentityNet.from_pretrained(args.identity).float()
    reframe_identity(net, load_template(args.from_template, net.config.input_size),
                     load_template(args.to_template, args.size))
    save_fp16(net, args.out)
    print(f"{args.identity} ({args.from_template}) -> {args.out} (faces: {args.to_template} at {args.size} px)")


if __name__ == "__main__":
    main()
