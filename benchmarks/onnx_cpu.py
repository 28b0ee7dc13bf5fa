"""The ONNX export of a pipeline against torch on the CPU: the same face, and the time per face.

    python benchmarks/onnx_cpu.py                       # bundled model, examples/lq/pgdiff_0040.png, default preset
    python benchmarks/onnx_cpu.py --onnx runs/onnx --append

Exports the model (``diffrestore-export --onnx``) unless ``--onnx`` already holds a ``pipeline.json``, then
restores the face with the torch pipeline (``pipe(face, generator=torch.Generator().manual_seed(seed))``)
and with ``OnnxRestorer`` (numpy + onnxruntime, the same seed), both on ``--threads`` threads. Rows: the
median seconds per face of ``--repeats`` calls after one untimed call, and the mean / largest absolute
difference between the two restored faces in 8-bit levels.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_header, report, time_call  # noqa: E402

from diffrestore.deploy.onnx_export import export_onnx  # noqa: E402
from diffrestore.deploy.onnx_restore import OnnxRestorer  # noqa: E402
from diffrestore.io import load_image  # noqa: E402
from diffrestore.pipeline import DiffRestorePipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--model", help="pipeline folder or bundled model name (default: the bundled model)")
    p.add_argument("--onnx", type=Path, help="exported folder (exported there if it has no pipeline.json; "
                                             "default: a temporary folder)")
    p.add_argument("--face", type=Path, default=ROOT / "examples/lq/pgdiff_0040.png", help="an aligned face")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    p.add_argument("--results", type=Path, default=None)
    return p.parse_args(argv)


def compare(args: argparse.Namespace, folder: Path) -> list[dict]:
    torch.set_num_threads(args.threads)
    pipe = DiffRestorePipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    if not (folder / "pipeline.json").is_file():
        export_onnx(pipe, folder)
    restorer = OnnxRestorer(folder, threads=args.threads)
    face = load_image(args.face)

    def with_torch() -> np.ndarray:
        generator = torch.Generator().manual_seed(args.seed)
        return np.asarray(pipe(face, generator=generator).images[0])

    def with_onnx() -> np.ndarray:
        return restorer([face], seeds=args.seed)[0]

    difference = np.abs(with_torch().astype(np.int16) - with_onnx().astype(np.int16))
    cpu = torch.device("cpu")
    rows = [{"runtime": "torch (eager, fp32)", "s per face": time_call(with_torch, cpu, repeats=args.repeats)},
            {"runtime": "onnxruntime + numpy (fp32)", "s per face": time_call(with_onnx, cpu, repeats=args.repeats)}]
    for row in rows:
        row.update({"mean abs diff (levels)": float(difference.mean()), "max abs diff (levels)": int(difference.max())})
    return rows


def main(argv: list[str] | None = None) -> int:
    import onnxruntime

    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="diffrestore-onnx-") as scratch:
        rows = compare(args, args.onnx or Path(scratch))
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    header = (f"{machine_header(torch.device('cpu'))}, onnxruntime {onnxruntime.__version__} · load average "
              f"{load} at the end (the cores are shared: compare rows of one table only)")
    settings = (f"{args.model or 'celebahq256'} · {args.face.relative_to(ROOT) if args.face.is_relative_to(ROOT) else args.face}"
                f" · default preset · seed {args.seed} · {args.threads} threads · median of {args.repeats}")
    report("ONNX export against torch (CPU)", header, settings, rows, args.append, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
