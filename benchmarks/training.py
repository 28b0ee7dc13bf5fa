"""Training throughput of one stage: img/s per GPU, achieved FLOP/s and its share of the bf16 peak.

    python benchmarks/training.py --config configs/train/score.yaml [key=value ...]
    accelerate launch --multi_gpu --num_processes 2 benchmarks/training.py --config ... # scaling
    python benchmarks/training.py --config configs/train/ffhq512/score.yaml --random-pretrained \\
        data.hq_dir=data/utkface/train                                                  # full size, no weights

It builds the real ``Trainer`` (Accelerate, DDP, mixed precision, EMA, clipping) and times
``Trainer.micro_step`` in two ways: on one fixed batch kept on the device ("model": the compute the
GPU can do) and on the stage's own batches ("end to end": from the data loader, degradations on the
CPU included, or with ``data.resident=true`` made on the device), with the share of that time the GPU
was busy (a profiler trace of up to 10 steps). FLOPs of one step (forward and backward, matmuls and convolutions) come from
``torch.utils.flop_counter``. ``--random-pretrained`` replaces the frozen networks a stage needs
(``pretrained.*``, teacher embeddings) by randomly initialised ones: speed does not depend on them.
Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (bf16_peak_flops, count_flops, machine_header, peak_memory_gib, report,  # noqa: E402
                     reset_peak_memory, sync)

from diffrestore.models.builders import build_backbone, build_identity, build_irn, build_unet, build_vqgan  # noqa: E402
from diffrestore.config import load_config  # noqa: E402
from diffrestore.training import TrainConfig, Trainer  # noqa: E402
from diffrestore.training.stages import STAGES  # noqa: E402
from diffrestore.training.teacher import describe_faces, save_teacher_embeddings  # noqa: E402

RANDOM_BUILDERS = {"vqgan": build_vqgan, "backbone": build_backbone, "identity": build_identity, "irn": build_irn,
                   "unet": build_unet}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--config", required=True)
    p.add_argument("--steps", type=int, default=20, help="timed steps per mode")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-loader", action="store_true", help="skip the end-to-end measurement (loader or resident data)")
    p.add_argument("--random-pretrained", action="store_true")
    p.add_argument("--append", action="store_true")
    p.add_argument("--results", type=Path, default=None)
    p.add_argument("overrides", nargs="*", metavar="key=value")
    return p.parse_args(argv)


def use_random_pretrained(cfg: TrainConfig, folder: Path) -> None:
    """Point every frozen input of the stage at randomly initialised stand-ins saved under ``folder``."""
    needs = [name for name in RANDOM_BUILDERS if getattr(cfg.pretrained, name)]
    if cfg.stage in ("irn", "mask") and "identity" not in needs:
        needs.append("identity")
    for name in needs:
        path = folder / name
        if not (path / "config.json").is_file():  # kept: a later run over the same folder sees the same ones
            RANDOM_BUILDERS[name](cfg.model).save_pretrained(path)
        setattr(cfg.pretrained, name, str(path))
    if cfg.stage == "identity":
        cfg.data.teacher_embeddings = str(folder / "teacher.npy")
        if not Path(cfg.data.teacher_embeddings).is_file():
            meta = describe_faces(cfg.data.hq_dir, cfg.model.resolution, cfg.model.template)
            embeddings = np.random.default_rng(0).standard_normal((len(meta["files"]),
                                                                   cfg.model.identity.embedding_dim))
            save_teacher_embeddings(cfg.data.teacher_embeddings, embeddings, meta)


def time_steps(trainer: Trainer, batches, steps: int, warmup: int) -> float:
    """Seconds per step, measured over ``steps`` steps after ``warmup``."""
    device = trainer.accelerator.device
    for _ in range(warmup):
        trainer.micro_step(next(batches))
    sync(device)
    tic = time.perf_counter()
    for _ in range(steps):
        trainer.micro_step(next(batches))
    sync(device)
    return (time.perf_counter() - tic) / steps


def gpu_busy_share(trainer: Trainer, batches, steps: int) -> float | None:
    """Share of the wall time of ``steps`` steps during which a GPU kernel ran (the union of the kernels'
    intervals in a torch.profiler trace): 1 means the GPU never waited for the data or the host."""
    device = trainer.accelerator.device
    if device.type != "cuda":
        return None
    from torch.profiler import ProfilerActivity, profile

    sync(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        tic = time.perf_counter()
        for _ in range(steps):
            trainer.micro_step(next(batches))
        sync(device)
        wall_us = (time.perf_counter() - tic) * 1e6
    intervals = sorted((e.time_range.start, e.time_range.end) for e in prof.events()
                       if e.device_type == torch.autograd.DeviceType.CUDA)
    busy, end = 0.0, float("-inf")
    for start, stop in intervals:
        if stop > end:
            busy += stop - max(start, end)
            end = stop
    return min(1.0, busy / wall_us)


def fixed(batch: dict):
    while True:
        yield batch


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [*args.overrides, f"output_dir={tmp}/run", "log_with=none", "gradient_accumulation_steps=1"]
        cfg = load_config(args.config, TrainConfig, overrides)
        if args.random_pretrained:
            use_random_pretrained(cfg, Path(tmp))
        trainer = Trainer(cfg, STAGES[cfg.stage](cfg))
        for model in trainer.models.values():
            model.train()
        acc, device = trainer.accelerator, trainer.accelerator.device
        loader = trainer.batches()
        batch = next(loader)
        reset_peak_memory(device)
        flops = count_flops(lambda: trainer.micro_step(batch))
        model_seconds = time_steps(trainer, fixed(batch), args.steps, args.warmup)
        memory = peak_memory_gib(device)
        loader_seconds = None if args.no_loader else time_steps(trainer, loader, args.steps, args.warmup)
        busy = None if args.no_loader else gpu_busy_share(trainer, loader, min(args.steps, 10))

    images = cfg.batch_size * acc.num_processes
    peak = bf16_peak_flops(device)
    rows = []
    data = "resident data" if cfg.data.resident else f"data loader, {cfg.data.num_workers} workers"
    for mode, seconds in (("model (fixed batch)", model_seconds), (f"end to end ({data})", loader_seconds)):
        if seconds is None:
            continue
        achieved = flops / seconds
        rows.append({"mode": mode, "GPUs": acc.num_processes, "batch/GPU": cfg.batch_size, "s/step": seconds,
                     "img/s": images / seconds, "img/s per GPU": images / seconds / acc.num_processes,
                     "TFLOP/s per GPU": achieved / 1e12, "% bf16 peak": 100 * achieved / peak if peak else None,
                     "peak GiB": memory, "GPU busy": busy if mode.startswith("end") else None})
    settings = (f"stage {cfg.stage} · {args.config} {' '.join(args.overrides)} · {cfg.model.resolution} px · "
                f"{cfg.mixed_precision} · {flops / 1e9:.1f} GFLOP per step per GPU · {args.steps} timed steps"
                + (" · random frozen networks" if args.random_pretrained else ""))
    if acc.is_main_process:
        report(f"Training: {cfg.stage}", machine_header(device), settings, rows, args.append, args.results)
    acc.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
