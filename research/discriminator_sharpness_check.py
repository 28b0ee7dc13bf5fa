#!/usr/bin/env python
"""Can a PatchGAN tell sharp faces from mildly blurred ones, with per-sample GroupNorm, with spectral
norm, without a norm? Trains each for 300 steps on the first 96 faces of a folder at 128 px (sharp =
real, Gaussian blur sigma 0.8 = fake, hinge loss, Adam 2e-4, betas (0.5, 0.9)) and reports the held-out
accuracy on the next 32; CPU, one thread, about a minute:

    python research/discriminator_sharpness_check.py --faces data/celebahq256/val
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from diffrestore.io import list_images, load_image, pil_to_tensor
from diffrestore.training.losses import hinge_d_loss
from diffrestore.evaluation.metrics import gaussian_taps, laplacian_variance


def blur(images: torch.Tensor, sigma: float = 0.8) -> torch.Tensor:
    taps = gaussian_taps(7, sigma).float()
    kernel = torch.outer(taps, taps).view(1, 1, 7, 7).repeat(3, 1, 1, 1)
    return F.conv2d(F.pad(images, (3, 3, 3, 3), mode="reflect"), kernel, groups=3)


def patch_discriminator(norm: str) -> nn.Sequential:
    """The layout of ``models.PatchDiscriminator`` (4 convolutions, 32-256 channels) with a choice of norm."""
    def conv(cin: int, cout: int, stride: int, bias: bool = True) -> nn.Module:
        layer = nn.Conv2d(cin, cout, 4, stride, 1, bias=bias)
        return nn.utils.parametrizations.spectral_norm(layer) if norm == "spectral" else layer

    def normed(ch: int) -> nn.Module:
        return nn.GroupNorm(min(32, ch // 4), ch) if norm == "group" else nn.Identity()

    return nn.Sequential(conv(3, 32, 2), nn.LeakyReLU(0.2),
                         conv(32, 64, 2, False), normed(64), nn.LeakyReLU(0.2),
                         conv(64, 128, 2, False), normed(128), nn.LeakyReLU(0.2),
                         conv(128, 256, 1, False), normed(256), nn.LeakyReLU(0.2), conv(256, 1, 1))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--faces", required=True)
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    paths = list_images(args.faces)[:128]
    faces = torch.stack([pil_to_tensor(load_image(path).resize((128, 128))) for path in paths])
    train, held_out = faces[:96], faces[96:]
    print(f"sharpness of the blurred faces: median Laplacian-variance ratio "
          f"{float((laplacian_variance(blur(faces)) / laplacian_variance(faces)).median()):.3f}")
    for norm in ("group", "spectral", "none"):
        torch.manual_seed(0)
        critic = patch_discriminator(norm)
        optimizer = torch.optim.Adam(critic.parameters(), 2e-4, betas=(0.5, 0.9))
        for _ in range(args.steps):
            real = train[torch.randint(0, len(train), (16,))]
            loss = hinge_d_loss(critic(real), critic(blur(real)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            real_score = critic(held_out).mean((1, 2, 3))
            fake_score = critic(blur(held_out)).mean((1, 2, 3))
        accuracy = ((real_score > 0).float().mean() + (fake_score < 0).float().mean()) / 2
        print(f"{norm}: held-out accuracy {float(accuracy):.2f} after {args.steps} steps")


if __name__ == "__main__":
    main()
