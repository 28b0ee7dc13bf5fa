"""The ``diffrestore-eval`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import metrics as M
from .groups import GROUPINGS
from .reports import write_reports
from .scoring import evaluate_folders
from .registry import METRICS

DESCRIPTION = """Score restored faces against ground truth (or, without it, against their LQ inputs).

Pairs files by name stem (a.png in --restored with a.webp in --gt) and writes per_image.csv,
summary.json and summary.md into --out, each with the protocol the numbers were measured under.
Metrics: docs/evaluation.md."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog="diffrestore-eval", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_eval_arguments(parser)


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``diffrestore-eval`` (shared with ``diffrestore-report``)."""
    parser.add_argument("--restored", required=True, help="folder of restored faces (or photos, without --gt)")
    parser.add_argument("--gt", help="folder of ground-truth faces (paired by file name stem)")
    parser.add_argument("--lq", help="folder of the LQ inputs (no-reference identity check)")
    parser.add_argument("--identity", default="sface",
                        help="identity evaluator: sface (default), facenet[:WEIGHTS.pt], or an IdentityNet folder. "
                             "Never the network that guided the restoration.")
    parser.add_argument("--reference", help="reference set for the distribution distances (default: --gt)")
    parser.add_argument("--groups", choices=GROUPINGS, help="per-group summaries from file names")
    parser.add_argument("--metrics", help=f"comma-separated subset of {','.join(METRICS)} (default: all that apply)")
    parser.add_argument("--color", choices=M.COLOR_SPACES, default="y",
                        help="colour space of PSNR/SSIM: y = BT.601 luma (default), rgb")
    parser.add_argument("--crop-border", type=int, default=0, help="pixels cropped at each border for PSNR/SSIM")
    parser.add_argument("--template",
                        help="alignment template of the faces (name in diffrestore/templates or JSON path; "
                             "default: the bundled template of the faces' size, e.g. ffhq_512 at 512 px)")
    parser.add_argument("--vq-model", help="pipeline or VQModel folder whose encoder gives the FD-VQ features")
    parser.add_argument("--niqe-model", help="NIQE pristine model file (default: the shipped CelebA-HQ 512 fit)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, help="output folder for per_image.csv, summary.json, summary.md")
    parser.add_argument("--overwrite", action="store_true", help="replace existing reports in --out")
    return parser


def evaluate_from_args(args: argparse.Namespace) -> dict:
    """``evaluate_folders`` with the options parsed by ``add_eval_arguments``."""
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    return evaluate_folders(
        args.restored, args.gt, args.lq, identity=args.identity, reference=args.reference, groups=args.groups,
        metrics=metrics, color=args.color, crop_border=args.crop_border, template=args.template,
        vq_model=args.vq_model, niqe_model=args.niqe_model, device=args.device, verbose=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = evaluate_from_args(args)
        paths = write_reports(result, args.out, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError, ImportError, RuntimeError) as err:
        print(f"diffrestore-eval: error: {err}", file=sys.stderr)
        return 2
    for reason in result["skipped"]:
        print(reason, file=sys.stderr)
    print(paths["summary.md"].read_text())
    return 0
