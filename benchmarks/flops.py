"""FLOPs of sampling one face: one UNet step and a whole ``steps``-step restoration, and the share of a
GPU's bf16 peak that a measured throughput (``--faces-per-s``, from ``sampling.py``) achieves.

    python benchmarks/flops.py                                                # bundled 128 px model
    python benchmarks/flops.py --model-config configs/model/ffhq512.yaml --faces-per-s 13.9 --gpu H100

FLOPs are counted by ``torch.utils.flop_counter`` (matmuls and convolutions; 2 per multiply-add) on
one face on the CPU: they do not depend on the device or the weights. A whole restoration is one call
with a single step (backbone, encoder, one UNet step, decoder) plus ``steps - 1`` further UNet steps.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BF16_PEAK, count_flops, machine_header, report  # noqa: E402

from diffrestore.pipeline.pipeline_diffrestore import BUNDLED_MODEL, DiffRestorePipeline  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--model-config", help="model config file (default: the bundled model)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--faces-per-s", type=float, help="a measured throughput, to express as a share of the peak")
    p.add_argument("--gpu", default="H100 SXM", choices=sorted(BF16_PEAK), help="whose bf16 peak")
    p.add_argument("--append", action="store_true")
    p.add_argument("--results", type=Path, default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pipe = (DiffRestorePipeline.from_model_config(args.model_config) if args.model_config
            else DiffRestorePipeline.from_pretrained())
    pipe.set_progress_bar_config(disable=True)
    size = pipe.config.resolution
    lq = torch.zeros(1, 3, size, size)
    latent = torch.zeros(1, pipe.unet.config.in_channels, *pipe.latent_shape[1:])
    with torch.no_grad():
        unet_step = count_flops(lambda: pipe.unet(latent, torch.tensor([1])))
        one_step_call = count_flops(lambda: pipe(lq, steps=1, start_t=100, guidance=0.0, output_type="pt"))
    per_face = one_step_call + (args.steps - 1) * unet_step
    row = {"GFLOP per UNet step": unet_step / 1e9, f"GFLOP per face ({args.steps} steps)": per_face / 1e9,
           "UNet share": unet_step * args.steps / per_face}
    if args.faces_per_s:
        achieved = per_face * args.faces_per_s
        row.update({"faces/s (measured)": args.faces_per_s, "TFLOP/s": achieved / 1e12,
                    f"% bf16 peak ({args.gpu})": 100 * achieved / BF16_PEAK[args.gpu]})
    settings = f"model: {args.model_config or f'bundled {BUNDLED_MODEL.name}'} ({size} px), no guidance, batch 1 counted"
    report("Sampling FLOPs", machine_header(torch.device("cpu")), settings, [row], args.append, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
