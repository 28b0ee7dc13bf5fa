"""Seconds per face of the whole ``diffrestore`` command on the CPU per ``--threads``, on an idle machine
and beside a second process that keeps one core busy (issue 31: the default thread count is chosen by it).

    python benchmarks/threads.py --lq ../shared/data/celebahq/val --faces 4 --threads 1,2 --repeats 3 --append

Each run is a fresh process (start, model load, restoring, writing) over the same ``--faces`` aligned faces;
machine states and thread counts alternate within a repeat so that drift in the machine's load (other work
on a shared machine) hits them alike. Rows: the median (and the range) of wall seconds / faces, the range of
the load average seen before the runs, and the largest difference (in 1/255 levels) of the outputs from
those of the first thread count (the last repeat's).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_header, report, with_root_on_path  # noqa: E402

import torch  # noqa: E402

from diffrestore.io import list_images, spread_subset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUSY_LOOP = "while True: pass"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--lq", type=Path, default=ROOT / "tests/assets/celebahq", help="a folder of aligned faces")
    p.add_argument("--faces", type=int, default=4)
    p.add_argument("--threads", default="1,2", help="comma-separated --threads values")
    p.add_argument("--loads", default="idle,loaded", help="idle and/or loaded (a busy-loop process beside)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model", default=None, help="pipeline folder (default: the bundled model)")
    p.add_argument("--append", action="store_true", help="also append the table to --results")
    p.add_argument("--results", type=Path, default=None, help="default benchmarks/RESULTS.md")
    p.add_argument("extra", nargs="*", help="more diffrestore arguments, e.g. --steps 2")
    return p.parse_args(argv)


@contextmanager
def cpu_load(load: str) -> Iterator[None]:
    """``loaded``: a second process spinning on one core for the duration."""
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if load == "loaded" else None
    try:
        yield
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()


def restore_seconds(lq: Path, out: Path, threads: int, args: argparse.Namespace) -> float:
    model = ["--model", args.model] if args.model else []
    command = [sys.executable, str(ROOT / "sample.py"), "--lq", str(lq), "--out", str(out), "--aligned", "--device",
               "cpu", "--threads", str(threads), "--overwrite", "--quiet", *model, *args.extra]
    env = with_root_on_path()
    tic = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - tic


def largest_difference(first: Path, other: Path) -> int:
    """The largest difference of two folders' images, in 1/255 levels."""
    return max(int(np.abs(np.asarray(Image.open(a), np.int16) - np.asarray(Image.open(other / a.name), np.int16)).max())
               for a in list_images(first))  # not the hidden records beside them


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts = [int(n) for n in args.threads.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        lq = Path(tmp) / "lq"
        lq.mkdir()
        for path in spread_subset(list_images(args.lq), args.faces):
            shutil.copy(path, lq / path.name)
        loads = args.loads.split(",")
        seconds = {(load, n): [] for load in loads for n in counts}
        load_averages = {load: [] for load in loads}
        for _ in range(args.repeats):  # machine states and thread counts alternate: drift hits them alike
            for load in loads:
                with cpu_load(load):
                    time.sleep(1)
                    load_averages[load].append(os.getloadavg()[0])
                    for n in counts:
                        seconds[load, n].append(restore_seconds(lq, Path(tmp) / f"out{n}", n, args) / args.faces)
                        print(load, n, f"{seconds[load, n][-1]:.2f} s per face", flush=True)
        for (load, n), values in seconds.items():
            rows.append({"machine": load, "threads": n, "s per face (median)": statistics.median(values),
                         "min": min(values), "max": max(values),
                         "load avg (1 min) seen": f"{min(load_averages[load]):.1f}-{max(load_averages[load]):.1f}",
                         f"max diff (levels) vs threads {counts[0]}":
                             largest_difference(Path(tmp) / f"out{counts[0]}", Path(tmp) / f"out{n}")})
    settings = (f"`diffrestore --aligned --device cpu --threads N` on {args.faces} faces of {args.lq} "
                f"({args.model or 'bundled model'}, default preset {' '.join(args.extra)}), a fresh process per run "
                f"(start and model load included), {args.repeats} repeats; loaded = `python -c '{BUSY_LOOP}'` beside; "
                f"{os.cpu_count()} cores, torch default {torch.get_num_threads()} threads")
    report("CPU threads", machine_header(torch.device("cpu")), settings, rows, args.append, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
