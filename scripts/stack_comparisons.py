"""Stack ``sample.py --save-comparison`` files (LQ | restored) into one figure, e.g. the README's:

    python sample.py --steps 50 --lq examples/lq/ --save-comparison
    python scripts/stack_comparisons.py examples/lq_restored/{vqfr_00000052_lq,pgdiff_0040,gfpgan_Julia_Roberts_crop}_comparison.png \
        --out docs/before_after.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image


def stack(paths: list[Path], width: int) -> Image.Image:
    """The images one above the other, each resized to ``width`` (aspect kept)."""
    rows = [Image.open(p).convert("RGB") for p in paths]
    rows = [r.resize((width, round(r.height * width / r.width)), Image.LANCZOS) for r in rows]
    figure = Image.new("RGB", (width, sum(r.height for r in rows)))
    top = 0
    for row in rows:
        figure.paste(row, (0, top))
        top += row.height
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--width", type=int, default=768)
    args = parser.parse_args()
    stack(args.images, args.width).save(args.out, quality=92)


if __name__ == "__main__":
    main()
