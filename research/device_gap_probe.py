"""Why the CPU's images differ from the GPU's (session 13): the bundled model at N = 200 on the first faces of the
val test set, restored here in one of several variants and compared with the GPU's fp32 PNGs of the same faces.

    python research/device_gap_probe.py --gpu runs/s13/tmp/b8/fp32 --cpu /tmp/cpu8_n200 compare|fp32|tf32|seed1|codebook
    python research/device_gap_probe.py dump --device cuda --out gpu.pt [--model DIR --lq DIR]  # on the GPU
    python research/device_gap_probe.py stages --gpu gpu.pt [--vqgan DIR]    # here: the same stages on this CPU
    python research/device_gap_probe.py digests --out data/testsets/val256-codeformer/digests.json   # pixels

``--cpu``: the CLI's fp32 images of those faces (``diffrestore --lq <faces> --out DIR --aligned start_t=200``).
compare scores the two folders against each other (every face; any two folders of the same names); fp32 repeats
the CPU's images; tf32 rounds every convolution's input and weight to TF32's 10-bit mantissa (what cuDNN does on
a GPU in "fp32"); seed1 draws other noise (the scale of a real difference); codebook prints the Laplacian variance
with and without the codebook's final lookup. Run it with another torch (a venv) to compare versions.

dump saves every stage of the first faces' fp32 restoration at N = 200 on one device (the LQ pixels, the backbone
estimate, both latents, each step's z_t and z_0 prediction, the final z_0 and image); stages recomputes each stage
here from the dump's own input to it, so that a stage that differs shows apart from the chain's drift.

Answer (session 14): no device gap. The latent chain agrees to 1e-4 (relative), the decoder did not: the machine
decoded with the VQGAN staged in data/init, the decoder from before session 10's, while the CPU used the bundled
one (--vqgan with the old decoder reproduces the GPU's images to 7e-5). research/init_check.py now guards this."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from PIL import Image

from diffrestore.evaluation.testset import pixel_digest
from diffrestore.io import pil_to_tensor, tensor_to_pil
from diffrestore.measures import laplacian_variance, psnr
from diffrestore.models.codec import load_autoencoder
from diffrestore.pipeline import DiffRestorePipeline
from diffrestore.pipeline.options import RestoreOptions
from diffrestore.pipeline.restore import FaceRestorer, face_seed

LQ = Path("data/testsets/val256-codeformer/lq")
BUNDLED = "diffrestore/pretrained/celebahq256"


def load_faces(names: list[str], folder: Path = LQ) -> torch.Tensor:
    return torch.stack([pil_to_tensor(Image.open(folder / name).convert("RGB")) for name in names])


def load_pipeline(model: str, device: str = "cpu") -> DiffRestorePipeline:
    pipe = DiffRestorePipeline.from_pretrained(model).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


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


def codebook(names: list[str]) -> None:
    """The Laplacian variance of the bundled model's N = 200 faces with and without the codebook's final lookup."""
    pipe = load_pipeline(BUNDLED)
    traced = trace(pipe, load_faces(names), names)
    with torch.no_grad():
        for quantize in (True, False):
            out = pipe.finish(traced["z0"], traced["estimate"], RestoreOptions(start_t=200), quantize=quantize)
            lapvar = [round(v, 1) for v in laplacian_variance(out).tolist()]
            print("codebook lookup" if quantize else "no lookup", lapvar)


def write_digests(lq_folder: Path, out: Path) -> None:
    """The pixel digests of a test set's LQ and HQ images (the manifests of sets made before session 13 lack
    them), as {name: {"hq": ..., "lq": ...}}: what the machine's manifest is compared with."""
    digests = {path.name: {side: pixel_digest(lq_folder.parent / side / path.name) for side in ("hq", "lq")}
               for path in sorted(lq_folder.glob("*.png"))}
    out.write_text(json.dumps(digests))
    print(f"{out}: {len(digests)} images")


def trace(pipe: DiffRestorePipeline, lq: torch.Tensor, names: list[str]) -> dict:
    """Every stage of the restoration of ``lq`` at N = 200, in fp32 on the pipeline's device, moved to the CPU."""
    options = RestoreOptions(start_t=200)
    generators = [torch.Generator().manual_seed(face_seed(0, name)) for name in names]
    steps: list[dict] = []
    calls: list[dict] = []

    def record(info: dict) -> None:
        steps.append({"t": int(info["t"]), "x": info["x"].float().cpu(), "denoised": info["denoised"].float().cpu()})

    def record_call(module, args, output) -> None:
        calls.append({"sample": args[0].float().cpu(), "timestep": args[1].cpu(), "eps": output.sample.float().cpu()})

    hook = pipe.unet.register_forward_hook(record_call)
    with torch.no_grad():
        estimate = pipe.estimate(lq)
        z_start, condition = pipe.encode(estimate), pipe.encode(lq)
        z0 = pipe.sample_latents(z_start, condition, options, generators, callback=record)
        image = pipe.finish(z0, estimate, options)
    hook.remove()
    cpu = lambda x: x.float().cpu()  # noqa: E731
    return {"names": names, "lq": cpu(lq), "estimate": cpu(estimate), "z_start": cpu(z_start),
            "condition": cpu(condition), "steps": steps, "calls": calls, "z0": cpu(z0), "image": cpu(image),
            "torch": str(torch.__version__), "device": str(lq.device)}


def dump(model: str, lq_folder: Path, device: str, out: Path, faces: int) -> None:
    names = sorted(p.name for p in lq_folder.glob("*.png"))[:faces]
    torch.save(trace(load_pipeline(model, device), load_faces(names, lq_folder).to(device), names), out)
    print(f"{out}: {len(names)} faces on {device}")


def gap(a: torch.Tensor, b: torch.Tensor) -> str:
    """Relative L2 difference and the largest absolute one."""
    return f"rel {((a - b).norm() / b.norm()).item():.2e}, max {(a - b).abs().max().item():.2e}"


def stages(gpu_dump: Path, vqgan: Path | None = None) -> None:
    """Each stage on this CPU from the GPU's input to it, then the whole chain, against the GPU's."""
    gpu = torch.load(gpu_dump)
    print(f"GPU dump: torch {gpu['torch']} on {gpu['device']}; here torch {torch.__version__} on the CPU")
    pipe = load_pipeline(BUNDLED)
    lq = load_faces(gpu["names"])
    print(f"LQ pixels: {gap(lq, gpu['lq'])}")
    with torch.no_grad():
        print(f"backbone, same LQ: {gap(pipe.estimate(gpu['lq']), gpu['estimate'])}")
        print(f"encoder, same estimate: {gap(pipe.encode(gpu['estimate']), gpu['z_start'])}")
        print(f"encoder, same LQ: {gap(pipe.encode(gpu['lq']), gpu['condition'])}")
        for call in gpu["calls"]:  # the UNet on the GPU's own input of each step
            eps = pipe.unet(call["sample"], call["timestep"]).sample
            print(f"UNet at t={call['timestep'][0].item()}, same input: eps {gap(eps, call['eps'])}")
        options = RestoreOptions(start_t=200)
        image = pipe.finish(gpu["z0"], gpu["estimate"], options)
        print(f"decoder and colour fix, same z_0: {gap(image, gpu['image'])}; LapVar here "
              f"{[round(v, 1) for v in laplacian_variance(image).tolist()]}, GPU "
              f"{[round(v, 1) for v in laplacian_variance(gpu['image']).tolist()]}")
        if vqgan is not None:  # session 14: the GPU's images came from a stale decoder staged there
            other = pipe.with_components(vqgan=load_autoencoder(vqgan)).finish(gpu["z0"], gpu["estimate"], options)
            print(f"decoder {vqgan}, same z_0: {gap(other, gpu['image'])}; LapVar "
                  f"{[round(v, 1) for v in laplacian_variance(other).tolist()]}")
        mine = trace(pipe, gpu["lq"], gpu["names"])
    for name in ("estimate", "z_start", "condition"):
        print(f"chain {name}: {gap(mine[name], gpu[name])}")
    for step_here, step_gpu in zip(mine["steps"], gpu["steps"]):
        print(f"chain step t={step_gpu['t']}: z_t {gap(step_here['x'], step_gpu['x'])}; "
              f"z_0 prediction {gap(step_here['denoised'], step_gpu['denoised'])}")
    print(f"chain z_0: {gap(mine['z0'], gpu['z0'])}; image {gap(mine['image'], gpu['image'])}; LapVar here "
          f"{[round(v, 1) for v in laplacian_variance(mine['image']).tolist()]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variant",
                        choices=["compare", "fp32", "tf32", "seed1", "codebook", "dump", "stages", "digests"])
    parser.add_argument("--gpu", type=Path)
    parser.add_argument("--cpu", type=Path)
    parser.add_argument("--faces", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--model", default=BUNDLED)
    parser.add_argument("--lq", type=Path, default=LQ)
    parser.add_argument("--vqgan", type=Path, help="stages: also decode the GPU's z_0 with this VQGAN folder")
    args = parser.parse_args()
    if args.variant == "digests":
        return write_digests(args.lq, args.out)
    if args.variant == "dump":
        return dump(args.model, args.lq, args.device, args.out, args.faces)
    torch.set_num_threads(2)
    if args.variant == "stages":
        return stages(args.gpu, args.vqgan)
    if args.variant == "compare":
        return compare(args.cpu, args.gpu)
    names = sorted(args.gpu.glob("*.png"))[:args.faces]
    if args.variant == "codebook":
        return codebook([n.name for n in names])
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
