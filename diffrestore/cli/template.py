"""``diffrestore-template``: derive a 5-point alignment template from a folder of aligned faces.

The template is the mean MTCNN landmarks of the training faces, so that faces found in a user's
photo are aligned to the framing the model was trained on. Example:

    diffrestore-template --faces data/utkface/train --size 128 --limit 1500 \\
        --out diffrestore/templates/utkface_128.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..pipeline.faces import TIGHT_CROP_PAD, FaceDetector, collect_landmarks
from ..io import list_images, spread_subset


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="diffrestore-template", description=__doc__.splitlines()[0],
                                     allow_abbrev=False)
    parser.add_argument("--faces", type=Path, required=True, help="folder of aligned face crops")
    parser.add_argument("--size", type=int, default=128, help="template frame size in pixels")
    parser.add_argument("--limit", type=int, default=None,
                        help="examine at most this many faces, evenly spaced over the sorted folder")
    parser.add_argument("--pad", type=float, default=TIGHT_CROP_PAD,
                        help="grey border (fraction of the image side) added before detection")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.out.exists() and not args.overwrite:
        raise SystemExit(f"{args.out}: already exists (pass --overwrite to replace it)")
    paths = spread_subset(list_images(args.faces), args.limit)
    if not paths:
        raise SystemExit(f"{args.faces}: no images found")
    landmarks = collect_landmarks(paths, args.size, FaceDetector(device=args.device), pad=args.pad)
    if len(landmarks) == 0:
        raise SystemExit(f"{args.faces}: no image had exactly one detected face")
    record = {
        "size": args.size,
        "source": (f"mean MTCNN (facenet-pytorch) landmarks of {'/'.join(args.faces.parts[-2:])}/ faces "
                   f"(detected with a {args.pad:g} grey pad; faces with exactly one detection)"),
        "num_faces": len(landmarks),
        "num_images": len(paths),
        "landmarks": [[round(float(x), 5), round(float(y), 5)] for x, y in landmarks.mean(axis=0)],
        "landmarks_std": [[round(float(x), 3), round(float(y), 3)] for x, y in landmarks.std(axis=0)],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    logging.info("%s: template from %d of %d faces: %s", args.out, len(landmarks), len(paths),
                 record["landmarks"])


if __name__ == "__main__":
    main()
