#!/usr/bin/env python
"""Does identity guidance through phi move the face towards the person SFace and dlib see? On seeded
synthetic pairs of a face folder (the training degradations), the backbone's latent E(f(y)) descends
1 - cos(phi(D(z)), target) by ``--iterations`` steps of the sampler's unit-RMS gradient (recomputed at
each step), optionally low-passed in the latent (a Gaussian of ``--smooth`` latent pixels). After 1, 2,
4, ... steps the decoded face's SFace cosine and dlib distance to the truth are compared with the
unguided face's, paired per face:

    python research/guidance_probe.py --faces data/celebahq256/val --limit 16 --steps 0.02 --iterations 8

``--network sface`` descends SFace in torch instead of the pipeline's phi (then SFace judges the network it
was guided by: read dlib's column). ``--lq DIR`` takes the LQ faces of a test set (``diffrestore-testset``)
paired by name with ``--faces`` (its hq/), instead of degrading ``--faces`` here.

Targets: ``truth`` (phi of the HQ face: an oracle, the best any target can do), ``backbone``
(phi(f(y)), the sampler's default) and with ``--irn-target`` ``irn`` (IRN(y), CLR-Face's target; with
``--network sface`` for an IRN trained on SFace). ``--no-quantize`` decodes without the codebook (the gradient never
sees it). ``--model`` takes any pipeline folder, e.g. one with another phi (``research/reframe_identity.py``).
``--sheet FILE`` saves the first batch, a row each: LQ | unguided | the last descent towards the truth's embedding |
their difference x8 | the truth (no colour fix: the VQGAN's own colours).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from diffrestore.data.datasets import PairedFaceDataset
from diffrestore.data.degradations import DegradationConfig
from diffrestore.evaluation.dlib_faces import DlibFaces, to_uint8
from diffrestore.evaluation.features import load_face
from diffrestore.io import list_images, save_image
from diffrestore.measures import gaussian_taps
from diffrestore.models.identity import SFaceIdentity
from diffrestore.pipeline.pipeline_diffrestore import DiffRestorePipeline
from diffrestore.training.stages._common import image_rows
from diffrestore.sampling.guidance import identity_loss, unit_rms


def gaussian_blur(latents: Tensor, sigma: float) -> Tensor:
    if sigma <= 0:
        return latents
    radius = int(3 * sigma + 0.5)
    taps = gaussian_taps(2 * radius + 1, sigma).to(latents)
    channels = latents.shape[1]
    padded = F.pad(latents, (radius,) * 4, mode="reflect")
    rows = F.conv2d(padded, taps.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(rows, taps.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def descent_direction(pipe: DiffRestorePipeline, phi: nn.Module, latents: Tensor, target: Tensor,
                      sigma: float) -> Tensor:
    with torch.enable_grad():
        latent = latents.detach().requires_grad_(True)
        loss = identity_loss(phi(pipe.decode(latent, quantize=False)), target).sum()
        (gradient,) = torch.autograd.grad(loss, latent)
    return unit_rms(gaussian_blur(gradient, sigma))


class Judges:
    """SFace cosine and dlib distance of faces to their truths (dlib: nan where it finds no face in the truth)."""

    def __init__(self, sface: SFaceIdentity, dlib: DlibFaces, truths: Tensor) -> None:
        self.sface, self.dlib = sface, dlib
        self.sface_truth = sface(truths)
        self.truths = [to_uint8(face) for face in truths]
        self.boxes = [(dlib.detect(face) or [None])[0] for face in self.truths]

    def __call__(self, faces: Tensor) -> tuple[Tensor, Tensor]:
        cosines = (self.sface(faces) * self.sface_truth).sum(-1)
        distances = [self.dlib.score_pair(to_uint8(face), truth, box).descriptor_distance if box is not None
                     else float("nan") for face, truth, box in zip(faces, self.truths, self.boxes)]
        return cosines, torch.tensor(distances)


def paired(values: list[Tensor], base: list[Tensor]) -> dict[str, float]:
    diff = torch.cat(values) - torch.cat(base)
    diff = diff[~diff.isnan()]
    return {"mean": float(torch.cat(values).nanmean()), "paired_diff": float(diff.mean()),
            "se": float(diff.std() / len(diff) ** 0.5)}


def testset_pairs(faces: str, lq: str, resolution: int, limit: int) -> list[dict[str, Tensor]]:
    """The first ``limit`` (by name) LQ faces of ``lq`` with their truths in ``faces``, at ``resolution``."""
    truths = {p.stem: p for p in list_images(faces)}
    size = (resolution, resolution)
    return [{"lq": load_face(p, size)[0], "hq": load_face(truths[p.stem], size)[0]}
            for p in list_images(lq)[:limit]]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="a saved pipeline folder (default: the bundled model)")
    p.add_argument("--faces", required=True)
    p.add_argument("--limit", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", default="0.02", help="step sizes in latent units (comma-separated)")
    p.add_argument("--iterations", type=int, default=1, help="descent steps; reported after 1, 2, 4, ...")
    p.add_argument("--smooth", default="0", help="Gaussian sigmas of the gradient, latent pixels")
    p.add_argument("--sheet", help="an image file for the first batch's faces")
    p.add_argument("--no-quantize", dest="quantize", action="store_false", help="decode without the codebook")
    p.add_argument("--network", choices=("phi", "sface"), default="phi", help="the identity network descended")
    p.add_argument("--lq", help="LQ faces of a test set, paired by name with --faces")
    p.add_argument("--irn-target", action="store_true",
                   help="also descend towards IRN(y), the pipeline's IRN (trained on --network's embedding)")
    args = p.parse_args(argv)
    pipe = DiffRestorePipeline.from_pretrained(args.model)
    resolution = int(pipe.config.resolution)
    sface = SFaceIdentity(np.asarray(pipe.config.template, dtype=np.float64), resolution)
    dlib = DlibFaces()
    if args.lq:
        subset = testset_pairs(args.faces, args.lq, resolution, args.limit)
    else:
        pairs = PairedFaceDataset(args.faces, resolution, DegradationConfig(), seed=args.seed, flip=False)
        subset = torch.utils.data.Subset(pairs, range(min(args.limit, len(pairs))))
    steps = [float(s) for s in args.steps.split(",")]
    sigmas = [float(s) for s in args.smooth.split(",")]
    reported = {2 ** k for k in range(args.iterations.bit_length())} | {args.iterations}
    phi = pipe.guidance_network(args.network)

    scores: dict[str, dict[str, list[Tensor]]] = {}  # key -> sface / dlib / phi -> per-batch values

    def record(key: str, faces: Tensor, judges: Judges, target: Tensor | None = None) -> None:
        cosines, distances = judges(faces)
        row = scores.setdefault(key, {"sface": [], "dlib": [], "phi": []})
        row["sface"].append(cosines)
        row["dlib"].append(distances)
        if target is not None:
            row["phi"].append(1 - identity_loss(phi(faces), target))

    sheet_saved = False
    for batch in DataLoader(subset, batch_size=8):
        with torch.no_grad():
            estimate = pipe.estimate(batch["lq"])
            z = pipe.encode(estimate)
            judges = Judges(sface, dlib, batch["hq"])
            targets = {"truth": phi(batch["hq"]), "backbone": phi(estimate)}
            if args.irn_target:
                targets["irn"] = pipe.irn(batch["lq"].to(pipe.irn.dtype)).float()
            unguided = pipe.decode(z, args.quantize).clamp(-1, 1)
            record("unguided", unguided, judges)
            for name, target in targets.items():
                record(f"{name} unguided", unguided, judges, target)
        for (name, target), sigma, step in ((t, s, k) for t in targets.items() for s in sigmas for k in steps):
            latents = z
            for i in range(1, args.iterations + 1):
                latents = latents - step * descent_direction(pipe, phi, latents, target, sigma)
                if i in reported:
                    with torch.no_grad():
                        guided = pipe.decode(latents, args.quantize).clamp(-1, 1)
                        record(f"{name} step {step} smooth {sigma} iterations {i}", guided, judges, target)
            if args.sheet and name == "truth" and not sheet_saved:
                rows = [batch["lq"], unguided, guided, (guided - unguided).abs() * 8 - 1, batch["hq"]]
                save_image(image_rows(rows).clamp(-1, 1), args.sheet, overwrite=True)
                sheet_saved = True

    base = scores["unguided"]
    report = {"faces": len(subset), "network": args.network, "quantize": args.quantize, "sface_unguided": float(torch.cat(base["sface"]).mean()),
              "dlib_unguided": float(torch.cat(base["dlib"]).nanmean())}
    for key, row in scores.items():
        if key.endswith("unguided"):
            continue
        before = scores[key.split(" step")[0] + " unguided"]["phi"]
        report[key] = {"sface": paired(row["sface"], base["sface"]), "dlib": paired(row["dlib"], base["dlib"]),
                       "phi_to_target_before": float(torch.cat(before).mean()),
                       "phi_to_target_after": float(torch.cat(row["phi"]).mean())}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
