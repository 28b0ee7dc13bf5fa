#!/usr/bin/env python
"""One Markdown table from several ``diffrestore-eval`` outputs: one row per ``LABEL=REPORT_DIR``.

    python scripts/evaluation_table.py "LQ input=runs/celeba-test-codeformer/eval_lq50" \\
        "pipeline (fast)=runs/celeba-test-codeformer/eval_fast"
    python scripts/evaluation_table.py --paired "backbone=DIR_A" "pipeline=DIR_B" ...
    python scripts/evaluation_table.py --groups ids,same_person "LQ=DIR_A" "pipeline=DIR_B" ...

Each cell is the mean over the row's images (``summary.json``), in the columns some report has (the
identity to the input of real-photo reports among them); the truth's NIQE and Laplacian variance come
from the first row that has them. ``--paired`` instead compares every row with
the first, face by face (``per_image.csv``, the faces both have): the mean difference, its standard
error and the share of faces where the row is higher. ``--groups METRICS`` prints, for each grouping
of the reports (``diffrestore-eval --groups utkface``) and each metric, the groups as rows and the
reports as columns.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

from diffrestore.evaluation import markdown_table

# dlib's descriptor is the headline identity column: SFace guides and trains the models, so it is not a
# judge they never saw (SFace's IDS stays, after it)
COLUMNS = (("psnr_y", "PSNR-Y", 2), ("ssim_y", "SSIM-Y", 3), ("effnet_pd", "EffNet-PD", 3),
           ("same_person", "same person (dlib)", 3), ("dlib_dist", "dlib dist.", 3), ("ids", "IDS (SFace)", 3),
           ("lmd", "LMD (px)", 2), ("same_person_lq", "same person as the input (dlib)", 3),
           ("dlib_dist_lq", "dlib dist. to the input", 3), ("ids_lq", "IDS to the input (SFace)", 3),
           ("niqe", "NIQE", 2), ("FD-EffNet", "FD-EffNet", 2), ("FD-SFace", "FD-SFace", 3), ("lapvar", "LapVar", 1))
GROUND_TRUTH = {"niqe": "niqe_gt", "lapvar": "lapvar_gt"}  # columns whose value for the truth the reports carry


def _cell(summary: dict, key: str, digits: int) -> str:
    if key in summary["distribution"]:
        return f"{summary['distribution'][key]:.{digits}f}"
    entry = summary["summary"].get(key)
    return "" if entry is None or entry["mean"] is None else f"{entry['mean']:.{digits}f}"


def _per_image(folder: str) -> dict[str, dict[str, float]]:
    """The numeric columns of ``per_image.csv`` by file (group labels and empty cells left out)."""
    numeric = {key for key, _, _ in COLUMNS}
    with open(Path(folder) / "per_image.csv") as handle:
        return {row.pop("file"): {k: float(v) for k, v in row.items() if k in numeric and v not in ("", "nan")}
                for row in csv.DictReader(handle)}


def paired_table(specs: list[str]) -> str:
    """Every row minus the first, per face: mean (standard error), share of faces higher."""
    (base_label, base_dir), *others = [spec.split("=", 1) for spec in specs]
    base = _per_image(base_dir)
    keys = [(key, title, digits) for key, title, digits in COLUMNS if any(key in v for v in base.values())]
    rows = []
    for label, folder in others:
        other = _per_image(folder)
        cells = []
        for key, _, digits in keys:
            diffs = [other[f][key] - base[f][key] for f in base if f in other and key in base[f] and key in other[f]]
            if len(diffs) < 2:
                cells.append("")
                continue
            mean = sum(diffs) / len(diffs)
            se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / len(diffs))
            higher = sum(d > 0 for d in diffs) / len(diffs)
            cells.append(f"{mean:+.{digits + 1}f} ({se:.{digits + 1}f}), {higher:.0%} higher")
        rows.append([f"{label} - {base_label}", len(set(base) & set(other))] + cells)
    return markdown_table(["", "n"] + [title for _, title, _ in keys], rows)


def group_tables(metrics: list[str], specs: list[str]) -> str:
    """Per grouping and metric: one row per group (its size from the first report), one column per report."""
    reports = [(label, json.loads((Path(folder) / "summary.json").read_text())["groups"])
               for label, folder in (spec.split("=", 1) for spec in specs)]
    first = reports[0][1]
    if not first:
        raise SystemExit(f"{specs[0]}: no per-group summaries (diffrestore-eval --groups ...)")
    tables = []
    for grouping, groups in first.items():
        for metric in metrics:
            rows = [[name, values["n"]] + [f"{report[grouping][name][metric]:.3f}" for _, report in reports]
                    for name, values in groups.items()]
            tables.append(f"{grouping}, {metric}:\n\n" + markdown_table([grouping, "n"] + [label for label, _ in reports], rows))
    return "\n\n".join(tables)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--paired":
        print(paired_table(argv[1:]))
        return 0
    if argv and argv[0] == "--groups":
        print(group_tables(argv[1].split(","), argv[2:]))
        return 0
    reports = [(label, json.loads((Path(folder) / "summary.json").read_text()))
               for label, folder in (spec.split("=", 1) for spec in argv)]
    keys = [(key, title, digits) for key, title, digits in COLUMNS
            if any(_cell(summary, key, digits) for _, summary in reports)]
    rows = [[label, summary["protocol"]["n_images"]] + [_cell(summary, key, digits) for key, _, digits in keys]
            for label, summary in reports]
    truth = []
    for key, _, digits in keys:
        found = [s["summary"][GROUND_TRUTH[key]]["mean"] for _, s in reports if GROUND_TRUTH.get(key) in s["summary"]]
        truth.append(f"{found[0]:.{digits}f}" if found else "")
    if any(truth):
        rows.append(["ground truth", ""] + truth)
    print(markdown_table(["", "n"] + [title for _, title, _ in keys], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
