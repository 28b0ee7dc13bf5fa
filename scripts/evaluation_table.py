#!/usr/bin/env python
"""One Markdown table from several ``diffrestore-eval`` outputs: one row per ``LABEL=REPORT_DIR``.

    python scripts/evaluation_table.py "LQ input=runs/celeba-test-codeformer/eval_lq50" \\
        "pipeline (fast)=runs/celeba-test-codeformer/eval_fast"

Each cell is the mean over the row's images (``summary.json``); the GT column of NIQE and the
Laplacian variance comes from the first row that has it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from diffrestore.evaluate import markdown_table

COLUMNS = (("psnr_y", "PSNR-Y", 2), ("ssim_y", "SSIM-Y", 3), ("ids", "IDS (SFace)", 3), ("lmd", "LMD (px)", 2),
           ("dlib_dist", "dlib dist.", 3), ("same_person", "same person", 3), ("niqe", "NIQE", 2),
           ("FD-SFace", "FD-SFace", 3), ("lapvar", "LapVar", 1))


def _cell(summary: dict, key: str, digits: int) -> str:
    if key in summary["distribution"]:
        return f"{summary['distribution'][key]:.{digits}f}"
    entry = summary["summary"].get(key)
    return "" if entry is None or entry["mean"] is None else f"{entry['mean']:.{digits}f}"


def main(argv: list[str]) -> int:
    rows, gt = [], {}
    for spec in argv:
        label, folder = spec.split("=", 1)
        summary = json.loads((Path(folder) / "summary.json").read_text())
        n = summary["protocol"]["n_images"]
        rows.append([label, n] + [_cell(summary, key, digits) for key, _, digits in COLUMNS])
        for key in ("niqe_gt", "lapvar_gt"):
            if key not in gt and key in summary["summary"]:
                gt[key] = summary["summary"][key]["mean"]
    rows.append(["ground truth", "", "", "", "", "", "", "", f"{gt.get('niqe_gt', float('nan')):.2f}", "",
                 f"{gt.get('lapvar_gt', float('nan')):.1f}"])
    print(markdown_table(["", "n"] + [title for _, title, _ in COLUMNS], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
