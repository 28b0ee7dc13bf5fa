"""``diffrestore-export --onnx DIR [--model NAME|DIR] [--opset N]``: every network of a pipeline as ONNX.

Written to DIR: ``backbone.onnx`` (LQ face -> estimate), ``vqgan_encoder.onnx`` (images -> scaled
continuous latents), ``vqgan_decoder.onnx`` (scaled latents -> images, through the codebook),
``unet.onnx`` (latents, timestep[, condition] -> predicted noise), ``identity.onnx`` and ``irn.onnx``
(faces -> L2-normalised embeddings) where the pipeline has them, ``mask.npy`` (the learned latent mask),
and ``pipeline.json``: the opset, the scheduler config, the latent scaling, the face template, the
default sampling settings and each file's inputs and outputs. Every input has a dynamic batch axis.

``diffrestore.deploy.onnx_restore.OnnxRestorer`` restores faces from that folder without torch. After
writing, each network is run once in onnxruntime (the ``onnx`` extra) against torch and the largest
difference printed (``--no-check`` skips it).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.codec import LatentCodec
from ..pipeline import DiffRestorePipeline, SamplingOptions

DEFAULT_OPSET = 17
MIN_OPSET = 16  # GridSample (an identity network that reframes its faces)
SAMPLING_KEYS = ("steps", "start_t", "eta", "cfg_scale", "color_fix")


class VQGANEncoder(nn.Module):
    """Images in [-1, 1] -> the scaled continuous latents diffusion runs on (``LatentCodec.encode``)."""

    def __init__(self, vqgan: nn.Module) -> None:
        super().__init__()
        self.vqgan = vqgan

    def forward(self, images: Tensor) -> Tensor:
        return LatentCodec(self.vqgan).encode(images)


class VQGANDecoder(nn.Module):
    """Scaled latents -> images through the codebook (``LatentCodec.decode``, quantised)."""

    def __init__(self, vqgan: nn.Module) -> None:
        super().__init__()
        self.vqgan = vqgan

    def forward(self, latents: Tensor) -> Tensor:
        return LatentCodec(self.vqgan).decode(latents, quantize=True)


class ConditionalUNet(nn.Module):
    """The score model with the condition E(y) as its own input (concatenated to the latents inside)."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, latents: Tensor, timestep: Tensor, condition: Tensor) -> Tensor:
        return self.unet(torch.cat([latents, condition], dim=1), timestep).sample


class UNet(nn.Module):
    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, latents: Tensor, timestep: Tensor) -> Tensor:
        return self.unet(latents, timestep).sample


class ResizedIdentity(nn.Module):
    """An identity network whose antialiased input resize (which the ONNX exporter lacks) is done as
    the two matrix products it is: ``rows @ faces @ rows.T``, the matrix found by resizing the identity."""

    def __init__(self, net: nn.Module, size: int) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("rows", resize_matrix(size, net.config.input_size))

    def forward(self, faces: Tensor) -> Tensor:
        return self.net(self.rows @ faces @ self.rows.T)


def resize_matrix(size: int, new_size: int) -> Tensor:
    """(new_size, size): what ``IdentityNet``'s bilinear antialiased resize does to each column."""
    basis = torch.eye(size)[None, None]  # resizing only its height gives the matrix itself
    return F.interpolate(basis, size=(new_size, size), mode="bilinear", align_corners=False, antialias=True)[0, 0]


def identity_module(net: nn.Module, size: int) -> nn.Module:
    """``net`` as exported for faces of ``size`` px."""
    if net.config.reframe is None and net.config.input_size != size:
        return ResizedIdentity(net, size)
    return net


@dataclass
class Component:
    """One exported network: the module, example inputs (batch 2) and the names of inputs and output."""

    module: nn.Module
    inputs: dict[str, Tensor]
    output: str

    def shapes(self) -> dict[str, list]:
        return {name: ["batch", *value.shape[1:]] for name, value in self.inputs.items()}


def components(pipe: DiffRestorePipeline, batch: int = 2, seed: int = 0) -> dict[str, Component]:
    """The networks of ``pipe`` to export, each with random example inputs of ``batch`` faces."""
    generator = torch.Generator().manual_seed(seed)
    size, latent = pipe.config.resolution, pipe.latent_shape
    faces = torch.rand(batch, 3, size, size, generator=generator) * 2 - 1
    latents = torch.randn(batch, *latent, generator=generator)
    timestep = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (batch,), generator=generator)
    parts = {
        "backbone": Component(pipe.backbone, {"lq": faces}, "estimate"),
        "vqgan_encoder": Component(VQGANEncoder(pipe.vqgan), {"images": faces}, "latents"),
        "vqgan_decoder": Component(VQGANDecoder(pipe.vqgan), {"latents": latents}, "images"),
    }
    if pipe.config.condition:
        condition = torch.randn(batch, *latent, generator=generator)
        parts["unet"] = Component(ConditionalUNet(pipe.unet),
                                  {"latents": latents, "timestep": timestep, "condition": condition}, "noise")
    else:
        parts["unet"] = Component(UNet(pipe.unet), {"latents": latents, "timestep": timestep}, "noise")
    for name in ("identity", "irn"):
        if getattr(pipe, name) is not None:
            parts[name] = Component(identity_module(getattr(pipe, name), size), {"faces": faces}, "embeddings")
    return parts


def export_component(component: Component, path: Path, opset: int) -> None:
    """One network to ``path`` with a dynamic batch axis on every input and the output."""
    axes = {name: {0: "batch"} for name in [*component.inputs, component.output]}
    # The tracer warns about every Python branch on a shape; the comparison with torch at another
    # batch size (compare_with_torch) is what says the graph is right.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(component.module.eval(), tuple(component.inputs.values()), str(path),
                          input_names=list(component.inputs), output_names=[component.output],
                          dynamic_axes=axes, opset_version=opset, dynamo=False)


def pipeline_spec(pipe: DiffRestorePipeline, parts: dict[str, Component], opset: int) -> dict:
    """What ``pipeline.json`` says: enough to run the exported networks as the pipeline does."""
    import diffusers
    import onnx

    scheduler = {key: value for key, value in pipe.scheduler.config.items() if not key.startswith("_")}
    sampling = {key: value for key, value in asdict(SamplingOptions()).items() if key in SAMPLING_KEYS}
    files = {name: {"file": f"{name}.onnx", "inputs": part.shapes(),
                    "outputs": {part.output: ["batch", *_output_shape(part)]}} for name, part in parts.items()}
    if pipe.mask is not None:
        files["mask"] = {"file": "mask.npy", "outputs": {"mask": [1, *pipe.latent_shape]}}
    return {
        "format": "diffrestore-onnx", "opset": opset,
        "exported_with": {"torch": torch.__version__, "onnx": onnx.__version__, "diffusers": diffusers.__version__},
        "resolution": int(pipe.config.resolution), "template": pipe.config.template,
        "condition": bool(pipe.config.condition), "latent_shape": list(pipe.latent_shape),
        "scaling_factor": pipe.codec.scaling_factor,
        "scheduler_class": type(pipe.scheduler).__name__, "scheduler": scheduler,
        "sampling": sampling, "color_fix_levels": pipe.color_fix_levels,
        "components": files,
    }


def _output_shape(part: Component) -> list[int]:
    with torch.no_grad():
        return list(part.module(*[value[:1] for value in part.inputs.values()]).shape[1:])


def export_onnx(pipe: DiffRestorePipeline, out: str | Path, opset: int = DEFAULT_OPSET,
                log: Callable[[str], None] = lambda line: None) -> dict:
    """Write every network of ``pipe`` (float32, on the CPU) and ``pipeline.json`` to ``out``; returns the spec."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pipe = pipe.to("cpu").cast(torch.float32)
    parts = components(pipe)
    for name, part in parts.items():
        export_component(part, out / f"{name}.onnx", opset)
        log(f"{out / name}.onnx")
    if pipe.mask is not None:
        with torch.no_grad():
            np.save(out / "mask.npy", pipe.mask().float().numpy())
    spec = pipeline_spec(pipe, parts, opset)
    (out / "pipeline.json").write_text(json.dumps(spec, indent=2) + "\n")
    return spec


def compare_with_torch(pipe: DiffRestorePipeline, folder: str | Path, batch: int = 3, seed: int = 1
                       ) -> dict[str, float]:
    """The largest absolute difference between each exported network in onnxruntime and torch, on
    fresh random inputs of ``batch`` faces (another batch size than the export's: the axis is dynamic)."""
    import onnxruntime as ort

    pipe = pipe.to("cpu").cast(torch.float32)
    differences = {}
    for name, part in components(pipe, batch=batch, seed=seed).items():
        session = ort.InferenceSession(str(Path(folder) / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        with torch.no_grad():
            expected = part.module(*part.inputs.values()).numpy()
        got = session.run(None, {key: value.numpy() for key, value in part.inputs.items()})[0]
        differences[name] = float(np.abs(got - expected).max())
    return differences


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(allow_abbrev=False, prog="diffrestore-export", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--onnx", required=True, type=Path, help="output folder (created; existing files are replaced)")
    p.add_argument("--model", help="pipeline folder, or the name of a bundled model (default: the bundled default)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip running each network in onnxruntime against torch")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.opset < MIN_OPSET:
        print(f"diffrestore-export: --opset {args.opset}: must be >= {MIN_OPSET} (GridSample)",
              file=sys.stderr)
        return 2
    if args.onnx.exists() and not args.onnx.is_dir():
        print(f"diffrestore-export: --onnx {args.onnx}: exists and is not a folder", file=sys.stderr)
        return 2
    try:
        pipe = DiffRestorePipeline.from_pretrained(args.model)
    except (FileNotFoundError, OSError, ValueError) as err:
        print(f"diffrestore-export: --model: {err}", file=sys.stderr)
        return 2
    export_onnx(pipe, args.onnx, args.opset, log=print)
    if args.check:
        for name, difference in compare_with_torch(pipe, args.onnx).items():
            print(f"{name}: largest difference to torch {difference:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
