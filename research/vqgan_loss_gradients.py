#!/usr/bin/env python
"""Each reconstruction loss's gradient norm at a VQGAN decoder's last layer (where the GAN weight is
balanced too), at weight 1, on the first faces of a folder: what weights make the terms comparable.

    python research/vqgan_loss_gradients.py --vqgan diffrestore/pretrained/celebahq256/vqgan --faces data/celebahq256/val
"""

from __future__ import annotations

import argparse

import torch
from diffusers import VQModel

from diffrestore.io import list_images, load_image, pil_to_tensor
from diffrestore.training.losses import EffNetPerceptualLoss, focal_frequency_loss, laplacian_energy_loss, structural_loss


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vqgan", required=True)
    p.add_argument("--faces", required=True)
    p.add_argument("--limit", type=int, default=2)
    args = p.parse_args(argv)
    vqgan = VQModel.from_pretrained(args.vqgan, torch_dtype=torch.float32)
    hq = torch.stack([pil_to_tensor(load_image(path)) for path in list_images(args.faces)[:args.limit]])
    rec = vqgan(hq).sample
    terms = {"l1": (rec - hq).abs().mean(), "ssim": structural_loss(rec, hq),
             "focal frequency": focal_frequency_loss(rec, hq), "detail energy": laplacian_energy_loss(rec, hq),
             "effnet-pd": EffNetPerceptualLoss()(rec, hq)}
    for name, loss in terms.items():
        (gradient,) = torch.autograd.grad(loss, vqgan.decoder.conv_out.weight, retain_graph=True)
        print(f"{name}: loss {float(loss):.5f}, gradient norm {float(gradient.norm()):.3f}")


if __name__ == "__main__":
    main()
