"""Sampling throughput and memory of ``DiffRestorePipeline`` on aligned faces (no detection, no file I/O).

    python benchmarks/sampling.py                                   # bundled model, default preset, this machine's device
    python benchmarks/sampling.py --model-config configs/model/ffhq512.yaml --batch-sizes 1,8,32
    python benchmarks/sampling.py --guidance 0,0.05 --channels-last --compile reduce-overhead --append

Rows: faces/s (batch / median seconds of one ``pipeline(...)`` call), the latency of that call, and the
peak GPU memory. A ``--model-config`` pipeline has random weights: speed does not depend on them. With
guidance a pipeline with a learned mask is guided through it, one without on the full latent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_header, peak_memory_gib, report, reset_peak_memory, sync, time_call  # noqa: E402

from diffrestore.pipeline.options import COMPILE_MODES, DTYPES, SamplingOptions  # noqa: E402
from diffrestore.pipeline.pipeline_diffrestore import BUNDLED_MODEL, DiffRestorePipeline  # noqa: E402
from diffrestore.evaluation.ablation import AblationOptions, restore_ablated  # noqa: E402
from diffrestore.pipeline.restore import resolve_device  # noqa: E402

DEFAULTS = SamplingOptions()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model", help="pipeline folder (default: the bundled model)")
    source.add_argument("--model-config", help="model config file: a pipeline with random weights")
    p.add_argument("--batch-sizes", default="1,16,64,256")
    p.add_argument("--guidance", default="0", help="comma-separated guidance scales (0 = unguided)")
    p.add_argument("--guidance-every", type=int, default=1)
    p.add_argument("--cfg-scale", type=float, default=1.0, help="classifier-free guidance scale (2 = the UNet twice)")
    p.add_argument("--steps", type=int, default=DEFAULTS.steps, help="DDIM steps (default: the default preset's)")
    p.add_argument("--start-t", type=int, default=DEFAULTS.start_t, help="DifFace's N (default: the default preset's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", choices=COMPILE_MODES, help="torch.compile mode of the UNet (default: eager)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--profile", type=Path, default=None,
                   help="also profile one call per row (after the timing) into PROFILE/profile_g<guidance>_b<batch>.txt: "
                        "torch.profiler's operators by device time, where launch overhead or a slow kernel shows")
    p.add_argument("--append", action="store_true", help="also append the table to --results")
    p.add_argument("--results", type=Path, default=None, help="default benchmarks/RESULTS.md")
    return p.parse_args(argv)


def build_pipeline(args: argparse.Namespace, dtype: torch.dtype) -> DiffRestorePipeline:
    if args.model_config:
        return DiffRestorePipeline.from_model_config(args.model_config).cast(dtype)
    return DiffRestorePipeline.from_pretrained(args.model, dtype=dtype)


def write_profile(fn, device: torch.device, path: Path) -> None:
    """One call of ``fn`` under torch.profiler: its operators by self device time (CPU time on the CPU)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(prof.key_averages().table(sort_by=key, row_limit=30))
    print(f"profile: {path}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    dtype = DTYPES[args.dtype]
    pipeline = build_pipeline(args, dtype).to(device)
    pipeline.optimize(channels_last=args.channels_last, compile_mode=args.compile)
    pipeline.set_progress_bar_config(disable=True)
    size = pipeline.config.resolution
    mask = "learned" if pipeline.mask is not None else "full"
    rows = []
    for scale in [float(g) for g in args.guidance.split(",")]:
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            lq = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).mul(2).sub(1).to(device)

            options = AblationOptions(steps=args.steps, start_t=args.start_t, guidance=scale, mask=mask,
                                      guidance_every=args.guidance_every, cfg_scale=args.cfg_scale)

            def restore() -> torch.Tensor:
                return restore_ablated(pipeline, lq, options)

            reset_peak_memory(device)
            try:
                seconds = time_call(restore, device, warmup=2 if args.compile else 1, repeats=args.repeats)
            except torch.OutOfMemoryError:
                rows.append({"guidance": scale, "batch": batch, "faces/s": None, "s per call": None,
                             "peak GiB": "out of memory"})
                torch.cuda.empty_cache()
                continue
            rows.append({"guidance": scale, "batch": batch, "faces/s": batch / seconds, "s per call": seconds,
                         "peak GiB": peak_memory_gib(device)})
            print(rows[-1], flush=True)
            if args.profile is not None:
                write_profile(restore, device, args.profile / f"profile_g{scale:g}_b{batch}.txt")
    source = args.model_config or args.model or f"bundled {BUNDLED_MODEL.name}"
    settings = (f"model: {source} ({size} px) · {args.steps} DDIM steps from t={args.start_t} · {args.dtype}"
                f" · channels-last {args.channels_last} · compile {args.compile or 'off'}"
                f" · guidance every {args.guidance_every} step(s), mask {mask} · cfg_scale {args.cfg_scale:g}")
    report("Sampling", machine_header(device), settings, rows, args.append, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
