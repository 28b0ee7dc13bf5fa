"""End to end against the pipeline alone, in one process (issue 31): a folder of aligned faces and a folder of
whole photos through the ``diffrestore`` command, the same faces through ``FaceRestorer`` alone, and the
latency of one face.

    python benchmarks/folder.py --model-config configs/model/celebahq256.yaml --device cuda --batch-size 64 \\
        --aligned-count 324 --whole-count 100 --latency-compile none,auto --append
    python benchmarks/folder.py --device cpu --aligned-count 8 --whole-count 2 --batch-size 4   # this CPU

Folders: ``--aligned-lq`` (default tests/assets/celebahq, 512 px) and ``--whole-lq`` (default tests/assets/whole)
repeated under new names to ``--aligned-count`` / ``--whole-count`` images (each name seeds its own faces).
Rows, per folder:

- ``pipeline only``: every face of the folder, already decoded and aligned in memory, through
  ``FaceRestorer.restore_aligned`` in batches of ``--batch-size`` (after one untimed batch);
- ``command, --prefetch P``: ``diffrestore.cli.restore.main`` on the folder (a fresh output folder, the
  model loaded by the call: ``load s``); ``--prefetch 0`` is the sequential loop (before), the default the
  threaded one (after). ``faces/s`` counts the seconds without the model load; ``ratio`` divides it by the
  pipeline-only faces/s: the share of the time the model works (the GPU busy share, near enough); the last
  column compares the outputs with the first run's (the sequential loop's: the same faces and seeds).

``--process`` adds the default command (its own batch size) in a fresh process, start and load included.

Latency: one face (batch 1) per ``--latency-compile`` mode (none = eager; auto = CUDA graphs on a GPU), the
first call (warm-up, compilation included) and the median of ``--repeats`` calls after it.
A ``--model-config`` pipeline has random weights (saved to a temporary folder): speed does not depend on them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.autograd import DeviceType

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_header, report, sync, with_root_on_path  # noqa: E402

from diffrestore.cli import restore as cli  # noqa: E402
from diffrestore.io import list_images, load_image  # noqa: E402
from diffrestore.pipeline.options import RestoreOptions  # noqa: E402
from diffrestore.pipeline.pipeline_diffrestore import DiffRestorePipeline  # noqa: E402
from diffrestore.pipeline.restore import FaceRestorer, resolve_device, set_threads  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model", help="pipeline folder or bundled model (default: the bundled model)")
    source.add_argument("--model-config", help="model config file: a pipeline with random weights")
    p.add_argument("--aligned-lq", type=Path, default=ROOT / "tests/assets/celebahq")
    p.add_argument("--whole-lq", type=Path, default=ROOT / "tests/assets/whole")
    p.add_argument("--aligned-count", type=int, default=324, help="aligned images (0: skip)")
    p.add_argument("--whole-count", type=int, default=100, help="whole photos (0: skip)")
    p.add_argument("--prefetch", default="0,default", help="comma-separated --prefetch values (default: the CLI's)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--process", action="store_true",
                   help="also time the whole default command a user types (`diffrestore --lq DIR --aligned|--whole`, "
                        "its own batch size) as a fresh process, start and model load included")
    p.add_argument("--device", default="auto")
    p.add_argument("--latency-compile", default="none",
                   help="comma-separated compile modes of the one-face rows (none: eager; auto; reduce-overhead; "
                        "'': no rows)")
    p.add_argument("--repeats", type=int, default=20, help="latency calls after the warm-up")
    p.add_argument("--profile", type=Path, default=None,
                   help="folder for torch.profiler tables of the last command run of each folder (its kernels' "
                        "busy share of the wall time, the operators by time)")
    p.add_argument("--append", action="store_true", help="also append the tables to --results")
    p.add_argument("--results", type=Path, default=None, help="default benchmarks/RESULTS.md")
    p.add_argument("overrides", nargs="*", help="key=value RestoreOptions for every run (e.g. steps=10)")
    return p.parse_args(argv)


def repeated_folder(source: Path, count: int, folder: Path) -> Path:
    """``count`` images cycled from ``source`` as ``i_name`` (distinct keys, so distinct noise)."""
    images = list_images(source)
    folder.mkdir(parents=True)
    for i in range(count):
        path = images[i % len(images)]
        shutil.copy(path, folder / f"{i:05d}_{path.name}")
    return folder


def largest_difference(first: Path, other: Path) -> int:
    """The largest difference between the images of two output folders, in 1/255 levels."""
    names = [path.relative_to(first) for path in list_images(first)]  # not the hidden records beside them
    if names != [path.relative_to(other) for path in list_images(other)]:
        raise SystemExit(f"{first} and {other} hold different files")
    return max(int(np.abs(np.asarray(Image.open(first / name), np.int16)
                          - np.asarray(Image.open(other / name), np.int16)).max()) for name in names)


def written_megabytes(folder: Path) -> float:
    """The size of the restored images in a folder (not the records beside them), in MB."""
    return sum(path.stat().st_size for path in list_images(folder)) / 1e6


def override_pairs(overrides: list[str]) -> dict:
    import yaml

    return {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in overrides)}


def pipeline_only(restorer: FaceRestorer, folder: Path, aligned: bool) -> dict:
    """Every face of ``folder`` (decoded and aligned first, untimed) through the model alone."""
    prepared = [restorer.prepare(load_image(path), path.name, aligned) for path in list_images(folder)]
    faces = [face for item in prepared if item.faces is not None for face in item.faces]
    keys = [key for item in prepared for key in item.face_keys]
    restorer.restore_aligned(faces[:restorer.options.batch_size], keys)  # warm-up
    sync(restorer.device)
    tic = time.perf_counter()
    restorer.restore_aligned(faces, keys)
    sync(restorer.device)
    seconds = time.perf_counter() - tic
    return {"run": "pipeline only", "images": len(prepared), "faces": len(faces), "load s": None, "s": seconds,
            "images/s": len(prepared) / seconds, "faces/s": len(faces) / seconds, "ratio": 1.0,
            "max diff (levels) vs first run": None, "MB written": None, "summary": None}


def command(folder: Path, out: Path, model: str, options: RestoreOptions, aligned: bool, prefetch: str,
            overrides: list[str]) -> tuple[float, str]:
    """Seconds of ``diffrestore.cli.restore.main`` on ``folder`` and its summary line."""
    argv = ["--lq", str(folder), "--out", str(out), "--model", model, "--device", options.device, "--batch-size",
            str(options.batch_size), "--aligned" if aligned else "--whole", "--quiet", *overrides]
    if prefetch != "default":
        argv += ["--prefetch", prefetch]
    printed = io.StringIO()
    threads = torch.get_num_threads()
    tic = time.perf_counter()
    with contextlib.redirect_stdout(printed):
        status = cli.main(argv)
    seconds = time.perf_counter() - tic
    torch.set_num_threads(threads)  # the command sets its own (one on a GPU beside its threads): not the next row's
    if status != 0:  # reported, not fatal: random weights can make a face the failure check refuses
        print(f"diffrestore {' '.join(argv)} exited {status}:\n{printed.getvalue()[-2000:]}", flush=True)
    return seconds, summary_of(printed.getvalue(), out)


def folder_rows(folder: Path, aligned: bool, model: str, options: RestoreOptions, args: argparse.Namespace,
                tmp: Path) -> list[dict]:
    restorer = FaceRestorer.from_options(options)
    base = pipeline_only(restorer, folder, aligned)
    del restorer
    rows, outs = [base], []
    for prefetch in args.prefetch.split(","):
        tic = time.perf_counter()
        FaceRestorer.from_options(options)  # what the command spends loading before its loop
        load = time.perf_counter() - tic
        outs.append(tmp / f"out_{folder.name}_{prefetch}")
        profiled = args.profile is not None and prefetch == args.prefetch.split(",")[-1]
        with profiling(args.profile / f"folder_{folder.name}.txt" if profiled else None):
            seconds, summary = command(folder, outs[-1], model, options, aligned, prefetch, args.overrides)
        loop = max(seconds - load, 1e-9)
        rows.append({"run": f"command, --prefetch {prefetch}", "images": base["images"], "faces": base["faces"],
                     "load s": load, "s": seconds, "images/s": base["images"] / loop, "faces/s": base["faces"] / loop,
                     "ratio": base["faces"] / loop / base["faces/s"],
                     "max diff (levels) vs first run": largest_difference(outs[0], outs[-1]),
                     "MB written": written_megabytes(outs[-1]), "summary": summary})
        print(rows[-1], flush=True)
    if args.process:
        rows.append(process_row(folder, tmp / f"out_{folder.name}_process", model, options, aligned, args.overrides,
                                base))
    return [{"folder": "aligned" if aligned else "whole", **row} for row in rows]


@contextlib.contextmanager
def profiling(report_path: Path | None):
    """torch.profiler around the block, its tables written to ``report_path`` (nothing when None): the CUDA
    kernels' summed time against the wall time (the GPU busy share, an upper bound where kernels overlap) and the
    operators by self time."""
    if report_path is None:
        yield
        return
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    tic = time.perf_counter()
    with torch.profiler.profile(activities=activities) as prof:
        yield
    wall = time.perf_counter() - tic
    averages = prof.key_averages()
    # the kernels' own events (the operators' rows count the same kernels again: session 14's first figure was 2x)
    kernel_s = sum(e.self_device_time_total for e in averages
                   if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)) / 1e6
    report_path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"wall {wall:.2f} s; kernels {kernel_s:.2f} s: GPU busy share {kernel_s / wall:.3f}", "",
             averages.table(sort_by="self_cpu_time_total", row_limit=30)]
    if torch.cuda.is_available():
        lines += ["", averages.table(sort_by="self_device_time_total", row_limit=20)]
    report_path.write_text("\n".join(lines))
    print(f"profile: {report_path} ({lines[0]})", flush=True)


def process_row(folder: Path, out: Path, model: str, options: RestoreOptions, aligned: bool, overrides: list[str],
                base: dict) -> dict:
    """The default command as a fresh process: its wall time, start and model load included."""
    argv = [sys.executable, str(ROOT / "sample.py"), "--lq", str(folder), "--out", str(out), "--model", model,
            "--device", options.device, "--aligned" if aligned else "--whole", "--quiet", *overrides]
    tic = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=with_root_on_path())
    seconds = time.perf_counter() - tic
    return {"run": "default command, own process", "images": base["images"], "faces": base["faces"], "load s": None,
            "s": seconds, "images/s": base["images"] / seconds, "faces/s": base["faces"] / seconds,
            "ratio": base["faces"] / seconds / base["faces/s"], "max diff (levels) vs first run": None,
            "summary": summary_of(done.stdout, out) or f"exit {done.returncode}: {done.stderr[-300:]}"}


def summary_of(printed: str, out: Path) -> str:
    """The command's summary line, shortened: ``done N (F faces), failed K``."""
    line = next((line for line in printed.splitlines() if line.startswith(f"{out}: ")), "")
    return re.sub(r", skipped .*\), ", ", ", line.removeprefix(f"{out}: "))


def latency_rows(folder: Path, options: RestoreOptions, args: argparse.Namespace) -> list[dict]:
    face = load_image(list_images(folder)[0])
    rows = []
    for mode in [m for m in args.latency_compile.split(",") if m]:
        restorer = FaceRestorer.from_options(replace(options, batch_size=1, compile=None if mode == "none" else mode))
        tic = time.perf_counter()
        restorer.restore_aligned([face], ["latency"])
        sync(restorer.device)
        warmup = time.perf_counter() - tic
        times = []
        for i in range(args.repeats):
            tic = time.perf_counter()
            restorer.restore_aligned([face], [f"latency{i}"])
            sync(restorer.device)
            times.append(time.perf_counter() - tic)
        rows.append({"compile": mode, "warm-up s (first call)": warmup,
                     "ms per face (median)": 1000 * sorted(times)[len(times) // 2], "min ms": 1000 * min(times)})
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        model = args.model or "celebahq256"
        if args.model_config:
            model = str(tmp / "model")
            DiffRestorePipeline.from_model_config(args.model_config).save_pretrained(model)
        device = resolve_device(args.device)
        options = RestoreOptions(model=model, device=str(device), batch_size=args.batch_size,
                                 **override_pairs(args.overrides))
        set_threads(options.threads, device)  # what the command sets: the pipeline-only rows run alike
        rows = []
        if args.aligned_count:
            folder = repeated_folder(args.aligned_lq, args.aligned_count, tmp / "aligned")
            rows += folder_rows(folder, True, model, options, args, tmp)
        if args.whole_count:
            folder = repeated_folder(args.whole_lq, args.whole_count, tmp / "whole")
            rows += folder_rows(folder, False, model, options, args, tmp)
        latency = latency_rows(args.aligned_lq, options, args)
    source = args.model_config or args.model or "bundled celebahq256"
    preset = " ".join(args.overrides) or "default preset"
    settings = (f"model: {source} · {device} · batch {args.batch_size} · {preset} · "
                f"aligned: {args.aligned_count} of {args.aligned_lq} · whole: {args.whole_count} of {args.whole_lq}")
    report("Folder end to end", machine_header(device), settings, rows, args.append, args.results)
    if latency:
        report("One face", machine_header(device), settings, latency, args.append, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
