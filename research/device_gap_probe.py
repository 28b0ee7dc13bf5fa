"""Why the CPU's images differ from the GPU's (session 13): the bundled model at N = 200 on the first faces of the
val test set, restored here in one of several variants and compared with the GPU's fp32 PNGs of the same faces.

    python research/device_gap_probe.py --gpu runs/s13/tmp/b8/fp32 --cpu /tmp/cpu8_n200 compare|fp32|tf32|seed1|codebook

``--cpu``: the CLI's fp32 images of those faces (``diffrestore --lq <faces> --out DIR --aligned start_t=200``).
compare scores the two folders against each other (every face; any two folders of the same names); fp32 repeats
the CPU's images; tf32 rounds every convolution's input and weight to TF32's 10-bit mantissa (what cuDNN does on
a GPU in "fp32"); seed1 draws other noise (the scale of a real difference); codebook prints the Laplacian variance
with and without the codebook's final lookup. Run it with another torch (a venv) to compare versions."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image

from diffrestore.io import pil_to_tensor, tensor_to_pil
from diffrestore.measures import laplacian_variance, psnr
from diffrestore.pipeline import DiffRestorePipeline
from diffrestore.pipeline.options import RestoreOptions
from diffrestore.pipeline.restore import FaceRestorer, face_seed

LQ = Path("data/testsets/val256-codeformer/lq")


def tf32(x: torch.Tensor) -> torch.Tensor:
    """Round float32 to TF32's 10-bit mantissa (round half up on the bits)."""
    return ((x.view(torch.int32) + 0x1000) & ~0x1FFF).view(torch.float32) if x.dtype == torch.float32 else x


def face(path: Path) -> torch.Tensor:
    """An image as the (1, 3, H, W) [-1, 1] batch that diffrestore.measures scores."""
    return pil_to_tensor(Image.open(path).convert("RGB"))[None]


def compare(first: Path, second: Path) -> None:
    """PSNR-Y between two folders' images of the same names, and each one's Laplacian variance."""
    for path in sorted(first.glob("*.png")):
        a, b = face(path), face(second / path.name)
        print(f"{path.name}: PSNR-Y {psnr(a, b).item():.1f} dB; LapVar {laplacian_variance(a).item():.1f} "
              f"({first}) against {laplacian_variance(b).item():.1f} ({second})")


def codebook(names: list[Path]) -> None:
    pipe = DiffRestorePipeline.from_pretrained("diffrestore/pretrained/celebahq256")
    lq = torch.stack([pil_to_tensor(Image.open(LQ / n.name).convert("RGB")) for n in names])
    generators = [torch.Generator().manual_seed(face_seed(0, n.name)) for n in names]
    with torch.no_grad():
        estimate = pipe.estimate(lq)
        z0 = pipe.sample_latents(pipe.encode(estimate), pipe.encode(lq), RestoreOptions(start_t=200), generators)
        for quantize in (True, False):
            out = pipe.finish(z0, estimate, RestoreOptions(start_t=200), quantize=quantize)
            print("codebook lookup" if quantize else "no lookup",
                  [round(v, 1) for v in laplacian_variance(out.clamp(-1, 1)).tolist()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variant", choices=["compare", "fp32", "tf32", "seed1", "codebook"])
    parser.add_argument("--gpu", type=Path, required=True)
    parser.add_argument("--cpu", type=Path, required=True)
    parser.add_argument("--faces", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.variant == "compare":
        return compare(args.cpu, args.gpu)
    names = sorted(args.gpu.glob("*.png"))[:args.faces]
    if args.variant == "codebook":
        return codebook(names)
    if args.variant == "tf32":
        conv = torch.nn.Conv2d._conv_forward
        torch.nn.Conv2d._conv_forward = lambda self, x, w, b: conv(self, tf32(x), tf32(w), b)
    restorer = FaceRestorer.from_options(RestoreOptions(start_t=200, seed=1 if args.variant == "seed1" else 0))
    faces = [Image.open(LQ / n.name).convert("RGB") for n in names]
    restored = restorer.restore_aligned(faces, [n.name for n in names])
    print(f"torch {torch.__version__}, variant {args.variant}")
    for name, restored_face in zip(names, restored):
        mine = pil_to_tensor(tensor_to_pil(restored_face))[None]  # 8 bits, as the CLI writes it
        gpu, cpu = face(name), face(args.cpu / name.name)
        lapvar = [laplacian_variance(x).item() for x in (mine, gpu, cpu)]
        print(f"{name.name}: LapVar {lapvar[0]:.1f} (GPU {lapvar[1]:.1f}, CPU {lapvar[2]:.1f}); PSNR-Y to the "
              f"GPU's {psnr(mine, gpu).item():.1f} dB, to the CPU's {psnr(mine, cpu).item():.1f} dB")


if __name__ == "__main__":
    main()
