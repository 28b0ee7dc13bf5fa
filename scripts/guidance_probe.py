#!/usr/bin/env python
"""Does one identity-guidance step through phi move the face towards the person SFace sees? On seeded
synthetic pairs of a face folder (the training degradations), the backbone's latent E(f(y)) takes one
step of the sampler's unit-RMS gradient of 1 - cos(phi(D(z)), target), optionally low-passed in the
latent (a Gaussian of ``--smooth`` latent pixels), and the decoded face's SFace cosine to the truth is
compared with the unguided one's, paired per face:

    python scripts/guidance_probe.py --faces data/celebahq256/val --limit 32 --steps 0.05,0.2 --smooth 0,2

Targets: ``truth`` (phi of the HQ face: an oracle, the best any target can do) and ``backbone``
(phi(f(y)), the sampler's default).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from diffrestore.data import PairedFaceDataset
from diffrestore.degradations import DegradationConfig
from diffrestore.metrics import gaussian_taps
from diffrestore.models.identity import SFaceIdentity
from diffrestore.pipeline import DiffRestorePipeline
from samplers.guidance import identity_loss, unit_rms


def gaussian_blur(latents: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return latents
    radius = int(3 * sigma + 0.5)
    taps = gaussian_taps(2 * radius + 1, sigma).to(latents)
    channels = latents.shape[1]
    padded = F.pad(latents, (radius,) * 4, mode="reflect")
    rows = F.conv2d(padded, taps.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(rows, taps.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="a saved pipeline folder (default: the bundled model)")
    p.add_argument("--faces", required=True)
    p.add_argument("--limit", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", default="0.05,0.2", help="step sizes in latent units (comma-separated)")
    p.add_argument("--smooth", default="0,2", help="Gaussian sigmas of the gradient, latent pixels")
    args = p.parse_args(argv)
    pipe = DiffRestorePipeline.from_pretrained(args.model)
    resolution = int(pipe.config.resolution)
    sface = SFaceIdentity(np.asarray(pipe.config.template, dtype=np.float64), resolution)
    pairs = PairedFaceDataset(args.faces, resolution, DegradationConfig(), seed=args.seed, flip=False)
    subset = torch.utils.data.Subset(pairs, range(min(args.limit, len(pairs))))
    steps = [float(s) for s in args.steps.split(",")]
    sigmas = [float(s) for s in args.smooth.split(",")]
    phi = pipe.identity

    cosines: dict[str, list[torch.Tensor]] = {}  # SFace cosine to the truth
    phi_cosines: dict[str, list[torch.Tensor]] = {}  # phi's cosine to the target
    for batch in DataLoader(subset, batch_size=8):
        hq = batch["hq"]
        with torch.no_grad():
            estimate = pipe.estimate(batch["lq"])
            z = pipe.encode(estimate)
            truth = sface(hq)
            targets = {"truth": phi(hq), "backbone": phi(estimate)}
            unguided = pipe.decode(z).clamp(-1, 1)
            cosines.setdefault("unguided", []).append((sface(unguided) * truth).sum(-1))
            for name, target in targets.items():
                phi_cosines.setdefault(f"{name} unguided", []).append(1 - identity_loss(phi(unguided), target))
        for name, target in targets.items():
            with torch.enable_grad():
                latent = z.detach().requires_grad_(True)
                loss = identity_loss(phi(pipe.decode(latent, quantize=False)), target).sum()
                (gradient,) = torch.autograd.grad(loss, latent)
            for sigma in sigmas:
                direction = unit_rms(gaussian_blur(gradient, sigma))
                for step in steps:
                    with torch.no_grad():
                        face = pipe.decode(z - step * direction).clamp(-1, 1)
                        key = f"{name} step {step} smooth {sigma}"
                        cosines.setdefault(key, []).append((sface(face) * truth).sum(-1))
                        phi_cosines.setdefault(key, []).append(1 - identity_loss(phi(face), target))

    base = torch.cat(cosines["unguided"])
    report = {"faces": len(base), "sface_unguided": float(base.mean())}
    for key, values in cosines.items():
        if key == "unguided":
            continue
        diff = torch.cat(values) - base
        phi_before = torch.cat(phi_cosines[key.split(" step")[0] + " unguided"])
        report[key] = {"sface": float(torch.cat(values).mean()), "paired_diff": float(diff.mean()),
                       "se": float(diff.std() / len(diff) ** 0.5),
                       "phi_to_target_before": float(phi_before.mean()),
                       "phi_to_target_after": float(torch.cat(phi_cosines[key]).mean())}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
