"""``diffrestore-report``: the scores of a restored folder and a comparison sheet to look at.

    diffrestore-report --restored runs/celeba-test-codeformer/fast --gt data/testsets/celeba-test-codeformer/hq \\
        --lq data/testsets/celeba-test-codeformer/lq --backbone runs/celeba-test-codeformer/backbone \\
        --template ffhq_512 --out runs/celeba-test-codeformer/report

writes ``diffrestore-eval``'s ``per_image.csv``, ``summary.json``, ``summary.md`` and
``comparison_sheet.png``: one row per face (``--faces`` of them, evenly spaced over the sorted names,
or the lowest by ``--sort-by COLUMN``), columns LQ | backbone only | ``--compare`` folders | pipeline
(``--label``) | ground truth (those given), tiles at the restored size unless ``--tile``: zoom in to see
the pixels.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw

from ..io import load_image, spread_subset
from .cli import add_eval_arguments, evaluate_from_args
from .pairing import index_by_stem
from .reports import format_value, write_reports

SHEET_FILE = "comparison_sheet.png"
CAPTION_HEIGHT = 18
_CAPTION_COLUMNS = ("psnr_y", "ids", "lmd", "niqe")


def pick_faces(rows: Sequence[dict], count: int, sort_by: str | None = None) -> list[dict]:
    """``count`` rows: the lowest by ``sort_by`` (NaN last), or evenly spaced over the given order."""
    if sort_by is None:
        return spread_subset(list(rows), count)
    if not any(sort_by in r for r in rows):
        raise ValueError(f"--sort-by {sort_by}: not a column of this evaluation")

    def key(row: dict) -> float:
        value = row.get(sort_by)
        return math.inf if value is None or math.isnan(value) else value

    return sorted(rows, key=key)[:count]


def _caption(row: dict) -> str:
    scores = [f"{c} {format_value(row[c], 3)}" for c in _CAPTION_COLUMNS if row.get(c) is not None]
    return "  ".join([row["file"]] + scores)


def comparison_sheet(columns: dict[str, dict[str, Path]], rows: Sequence[dict], tile: int) -> Image.Image:
    """A grid: a header with the column names, then per face its images side by side (each resized to
    ``tile`` px) over a caption with its name and scores."""
    names = list(columns)
    row_height = tile + CAPTION_HEIGHT
    sheet = Image.new("RGB", (tile * len(names), CAPTION_HEIGHT + row_height * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, name in enumerate(names):
        draw.text((j * tile + 4, 3), name, fill="black")
    for i, row in enumerate(rows):
        top = CAPTION_HEIGHT + i * row_height
        for j, name in enumerate(names):
            image = load_image(columns[name][row["file"]])
            sheet.paste(image.resize((tile, tile), Image.BICUBIC) if image.size != (tile, tile) else image, (j * tile, top))
        draw.text((4, top + tile + 3), _caption(row), fill="black")
    return sheet


def sheet_columns(args: argparse.Namespace) -> dict[str, dict[str, Path]]:
    """Column name -> the files of that folder by stem, in the sheet's order."""
    compared = []
    for spec in args.compare:
        label, _, folder = spec.partition("=")
        if not label or not folder:
            raise ValueError(f"--compare {spec!r}: give LABEL=FOLDER (e.g. --compare utkface128=runs/utk128)")
        compared.append((label, folder))
    given = (("LQ", args.lq), ("backbone only", args.backbone), *compared, (args.label, args.restored),
             ("ground truth", args.gt))
    return {name: index_by_stem(folder) for name, folder in given if folder is not None}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffrestore-report", description=__doc__.split("\n\n")[0],
                                     allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_eval_arguments(parser)
    parser.add_argument("--backbone", help="folder of the backbone-only outputs (a column of the sheet)")
    parser.add_argument("--compare", action="append", default=[], metavar="LABEL=FOLDER",
                        help="another folder of restored faces as a column before --restored's (repeatable)")
    parser.add_argument("--label", default="pipeline", help="the caption of --restored's column")
    parser.add_argument("--faces", type=int, default=8, help="rows of the comparison sheet")
    parser.add_argument("--sort-by", help="show the faces lowest in this per-image column (e.g. ids)")
    parser.add_argument("--tile", type=int, help="tile size in px (default: the restored images' size)")
    parser.add_argument("--title", default="Evaluation", help="title of summary.md")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        columns = sheet_columns(args)  # before scoring: a bad folder is named at once
        result = evaluate_from_args(args)
        paths = write_reports(result, args.out, overwrite=args.overwrite, title=args.title)
        sheet_path = Path(args.out) / SHEET_FILE
        if sheet_path.exists() and not args.overwrite:
            raise FileExistsError(f"{sheet_path}: already exists (pass --overwrite to replace it)")
        rows = pick_faces(result["rows"], args.faces, args.sort_by)
        tile = args.tile or load_image(columns[args.label][rows[0]["file"]]).width
        comparison_sheet(columns, rows, tile).save(sheet_path)
    except (FileNotFoundError, FileExistsError, ValueError, ImportError, RuntimeError) as err:
        print(f"diffrestore-report: error: {err}", file=sys.stderr)
        return 2
    print(f"{paths['summary.md']}\n{sheet_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
