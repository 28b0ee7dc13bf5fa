"""Throughput of the degradation model: the batched path on the GPU against the CPU data loader.

    python benchmarks/degradations.py --hq data/celebahq256/train --resolution 256 --workers 16

"GPU batched": ``ResidentFaces.batch`` (flips, parameters drawn on the device, ``degrade_batch``) on
faces held in device memory. "CPU loader": ``PairedFaceDataset`` through a ``DataLoader`` with
``--workers`` processes (decoding, flips, ``degrade`` per image), as the trainer ran before. Both on the
same faces and degradation config, in one run; the GPU figure is the median of ``--repeats`` timed
batches after a warm-up, with the device synchronised.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_header, report, sync, time_call  # noqa: E402

from diffrestore.data.datasets import PairedFaceDataset  # noqa: E402
from diffrestore.data.degradations import DegradationConfig  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--hq", required=True, help="folder of aligned HQ faces")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--batch-sizes", default="64,256,1024")
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--cpu-images", type=int, default=4096, help="images timed through the CPU loader")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--append", action="store_true")
    p.add_argument("--results", type=Path, default=None)
    return p.parse_args(argv)


def cpu_loader_rate(dataset: PairedFaceDataset, workers: int, images: int, batch_size: int = 64) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
                        persistent_workers=False)
    batches = iter(loader)
    next(batches)  # workers started, first batches in flight
    tic, seen = time.perf_counter(), 0
    while seen < images:
        try:
            seen += next(batches)["lq"].shape[0]
        except StopIteration:
            batches = iter(loader)
    return seen / (time.perf_counter() - tic)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":  # as the trainer runs it: TF32 for the fp32 matrix products (resizes, DCT)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    dataset = PairedFaceDataset(args.hq, args.resolution, DegradationConfig())
    tic = time.perf_counter()
    faces = dataset.resident(device)
    load_seconds = time.perf_counter() - tic
    rows = []
    generator = torch.Generator(device).manual_seed(0)
    for batch_size in map(int, args.batch_sizes.split(",")):
        def one_batch() -> None:
            indices = torch.randint(len(faces), (batch_size,), generator=generator, device=device)
            faces.batch(indices, generator)

        seconds = time_call(one_batch, device, warmup=3, repeats=args.repeats)
        rows.append({"path": f"GPU batched ({device.type})", "batch": batch_size, "img/s": batch_size / seconds,
                     "ms/batch": 1000 * seconds})
    sync(device)
    rows.append({"path": f"CPU loader, {args.workers} workers", "batch": 64,
                 "img/s": cpu_loader_rate(dataset, args.workers, args.cpu_images, min(64, len(dataset))),
                 "ms/batch": None})
    settings = (f"{args.resolution} px · {args.hq} ({len(faces)} faces, resident in {load_seconds:.1f} s) · "
                f"default degradation config (blur, down-sampling, noise, JPEG) · CPU cores: {torch.get_num_threads()}")
    report(f"Degradations at {args.resolution} px", machine_header(device), settings, rows, args.append, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
