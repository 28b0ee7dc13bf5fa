#!/usr/bin/env python
"""Realism against fidelity as DifFace's N grows: one point per ``diffrestore-eval`` output.

    python research/realism_fidelity_plot.py --out docs/realism_fidelity_256.png \\
        0=runs/s11/eval64/backbone 100=runs/s11/eval64/old 200=runs/s11/eval64/n200 400=runs/s11/eval64/n400 \\
        --extra "LQ input=runs/s11/eval64/lq"

Each ``N=DIR`` is the pipeline restored with ``start_t=N`` (0: the backbone alone); ``--extra LABEL=DIR``
adds labelled points (the input, another model). Three panels share the x axis, PSNR-Y (fidelity): NIQE and
EffNet-PD (lower is more natural) and the Laplacian variance (sharpness, the truth's as a line). Means over the
faces of each report, with their standard errors as bars.
"""

from __future__ import annotations

import argparse
import csv
import math
from functools import lru_cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = (("niqe", "NIQE (lower: more natural)"), ("effnet_pd", "EffNet-PD to the truth"),
          ("lapvar", "Laplacian variance (sharpness)"))


@lru_cache(maxsize=None)
def per_image(folder: str) -> tuple[dict[str, str], ...]:
    """The rows of a report's ``per_image.csv``, read once."""
    with open(Path(folder) / "per_image.csv") as handle:
        return tuple(csv.DictReader(handle))


def column(folder: str, key: str) -> list[float]:
    return [float(row[key]) for row in per_image(folder) if row.get(key) not in (None, "", "nan")]


def mean_and_error(folder: str, key: str) -> tuple[float, float]:
    values = column(folder, key)
    mean = sum(values) / len(values)
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return mean, spread / math.sqrt(len(values))


def truth_value(folder: str, key: str) -> float | None:
    values = column(folder, f"{key}_gt")
    return sum(values) / len(values) if values else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("points", nargs="+", metavar="N=DIR", help="start_t and the evaluation of the rows it restored")
    p.add_argument("--extra", action="append", default=[], metavar="LABEL=DIR", help="a labelled point")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    curve = sorted(((int(n), d) for n, d in (spec.split("=", 1) for spec in args.points)), key=lambda nd: nd[0])
    extras = [spec.rsplit("=", 1) for spec in args.extra]
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 4.2))
    for axis, (key, title) in zip(axes, PANELS):
        xs = [mean_and_error(d, "psnr_y") for _, d in curve]
        ys = [mean_and_error(d, key) for _, d in curve]
        axis.errorbar([x for x, _ in xs], [y for y, _ in ys], xerr=[e for _, e in xs], yerr=[e for _, e in ys],
                      marker="o", capsize=2, label="pipeline, N = start_t")
        for (n, _), (x, _), (y, _) in zip(curve, xs, ys):
            axis.annotate(f"N={n}" if n else "backbone", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        for label, folder in extras:
            (x, _), (y, _) = mean_and_error(folder, "psnr_y"), mean_and_error(folder, key)
            axis.plot([x], [y], marker="s", linestyle="none", label=label)
        truth = truth_value(curve[0][1], key)
        if truth is not None and key != "effnet_pd":
            axis.axhline(truth, color="grey", linestyle=":", label="ground truth")
        axis.set_xlabel("PSNR-Y (dB, higher: more faithful)")
        axis.set_title(title, fontsize=10)
        if key == "lapvar":
            axis.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
