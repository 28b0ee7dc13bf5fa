"""The val rows of a campaign call in one process (session 14): each row restored by the command users run
(``diffrestore --aligned``) and scored by ``diffrestore-eval``, with Python, torch and CUDA started once instead
of twice per row (session 13's rows took about 140 s each on the GPU machine, where every process starts cold).
Rows run in the order given while ``--seconds`` last; a row that would start later is skipped and said so.

    python research/val_rows.py --gt T/hq --restored R --eval E --seconds 300 --metrics psnr,lapvar,niqe \\
        --row bundled M/bundled T/lq "" --row bundled_n200f M/bundled /tmp/lq64 "start_t=200 --dtype fp32"

``--row NAME MODEL LQ ARGS``: the restored faces go to R/NAME, their scores to E/NAME; ARGS are the command's
further arguments (settings, flags), one string."""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from diffrestore.cli import main as restore_main
from diffrestore.evaluation.cli import main as evaluate_main


def run_row(name: str, model: str, lq: str, extra: str, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    restored = args.restored / name
    code = restore_main(["--lq", lq, "--out", str(restored), "--aligned", "--model", model, "--batch-size",
                         str(args.batch_size), "--quiet", *shlex.split(extra)])
    restore_seconds = time.perf_counter() - started
    if code == 0:
        code = evaluate_main(["--restored", str(restored), "--gt", str(args.gt), "--device", args.device,
                              "--metrics", args.metrics, "--out", str(args.eval / name)])
    print(f"{name}: exit {code}; restored in {restore_seconds:.0f} s, scored in "
          f"{time.perf_counter() - started - restore_seconds:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--row", nargs=4, action="append", required=True, metavar=("NAME", "MODEL", "LQ", "ARGS"))
    parser.add_argument("--gt", required=True, type=Path)
    parser.add_argument("--restored", required=True, type=Path)
    parser.add_argument("--eval", required=True, type=Path)
    parser.add_argument("--metrics", default="psnr,ssim,effnet_pd,lapvar,niqe")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=float("inf"), help="start no row after this many")
    args = parser.parse_args()
    started = time.perf_counter()
    for name, model, lq, extra in args.row:
        if time.perf_counter() - started > args.seconds:
            print(f"{name}: skipped, out of time", flush=True)
            continue
        run_row(name, model, lq, extra, args)


if __name__ == "__main__":
    main()
