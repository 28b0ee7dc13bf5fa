"""Training losses that ``torch`` and ``diffusers`` do not provide (images in [-1, 1]).

The identity objective ``1 - cos`` is :func:`samplers.guidance.identity_loss`, shared with the sampler.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from ..measures import LAPLACIAN_3X3, lpips_unavailable_reason, ssim

PERCEPTUAL_CHOICES = ("ssim", "effnet", "lpips", "auto")


def structural_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - SSIM over the RGB channels, averaged over the batch: the offline perceptual term."""
    return (1 - ssim(x, y, color="rgb")).mean()


class LPIPSLoss(nn.Module):
    """LPIPS (AlexNet) as a differentiable loss; needs the ``lpips`` package and its weights on disk."""

    def __init__(self) -> None:
        super().__init__()
        import lpips

        self.net = lpips.LPIPS(net="alex", verbose=False).eval().requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.net.to(x.device)
        return self.net(x.float(), y.float()).mean()


class EffNetPerceptualLoss(nn.Module):
    """EffNet-PD (``diffrestore.perception``: EfficientNet-Lite0's ImageNet features, LPIPS's recipe
    with equal weights) averaged over the batch; needs the ``perception`` extra."""

    def __init__(self) -> None:
        super().__init__()
        from ..perception.effnet import EffNetPerceptualDistance

        self.distance = EffNetPerceptualDistance()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.distance(x, y).mean()


def build_perceptual_loss(kind: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``"ssim"`` (works offline), ``"effnet"`` (EffNet-PD, offline with the ``perception`` extra),
    ``"lpips"`` (an error where LPIPS cannot run) or ``"auto"`` (LPIPS where its package and weights
    are present, SSIM otherwise). A network loss is an ``nn.Module``: stages hold it as a frozen model."""
    if kind not in PERCEPTUAL_CHOICES:
        raise ConfigError(f"config key 'loss.perceptual': {kind!r} is not one of {PERCEPTUAL_CHOICES}")
    if kind == "effnet":
        try:
            return EffNetPerceptualLoss()
        except ImportError as err:
            raise ConfigError(f"config key 'loss.perceptual': effnet asked for, but {err}") from None
    reason = lpips_unavailable_reason() if kind != "ssim" else "not asked for"
    if reason is None:
        return LPIPSLoss()
    if kind == "lpips":
        raise ConfigError(f"config key 'loss.perceptual': lpips asked for, but {reason}")
    return structural_loss


def focal_frequency_loss(x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Squared error of the orthonormal 2-D spectra, each frequency weighted by its own error (to the
    power ``alpha``, normalised per image and detached): the frequencies the model gets most wrong,
    which after a pixel loss are the fine texture and sharp edges, weigh most (Jiang et al., 2021)."""
    diff = torch.fft.fft2(x.float(), norm="ortho") - torch.fft.fft2(y.float(), norm="ortho")
    error = diff.abs()
    weight = error.pow(alpha)
    weight = (weight / weight.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None, None]).detach()
    return (weight * error.pow(2)).mean()


def laplacian_energy_loss(x: torch.Tensor, y: torch.Tensor, patch: int = 8, eps: float = 1e-4) -> torch.Tensor:
    """Mean absolute log-ratio of the local energy of the 3x3 Laplacian (per channel, averaged over
    ``patch`` x ``patch`` cells) of ``x`` and ``y``. It asks for as much fine detail as the truth has
    in each cell without asking for it in the same phase, so unlike a pixel or spectral error it does
    not reward the blur that averages an uncertain texture away."""
    kernel = LAPLACIAN_3X3.to(x.device, torch.float32).view(1, 1, 3, 3)

    def energy(images: torch.Tensor) -> torch.Tensor:
        images = images.float()
        lap = F.conv2d(images.flatten(0, 1)[:, None], kernel)
        return F.avg_pool2d(lap.pow(2), patch, ceil_mode=True)

    return (torch.log(energy(x) + eps) - torch.log(energy(y) + eps)).abs().mean()


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss (taming-transformers)."""
    return 0.5 * (F.relu(1 - logits_real.float()).mean() + F.relu(1 + logits_fake.float()).mean())


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Generator side of the hinge GAN."""
    return -logits_fake.float().mean()


def hinge_critic(discriminator: nn.Module, real: torch.Tensor,
                 fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """One discriminator pass over real and (non-detached) fake images: the generator's and the
    discriminator's hinge losses and the mean logits to log. The trainer sends each loss only into its
    own model, so the fake's logits serve both."""
    logits_real, logits_fake = discriminator(torch.cat([real, fake])).float().chunk(2)
    logs = {"logits_real": logits_real.detach().mean(), "logits_fake": logits_fake.detach().mean()}
    return hinge_g_loss(logits_fake), hinge_d_loss(logits_real, logits_fake), logs


def adaptive_gan_weight(rec_loss: torch.Tensor, gan_loss: torch.Tensor, last_layer: torch.Tensor,
                        max_weight: float = 1e4) -> torch.Tensor:
    """taming-transformers' balance ``||grad_w rec|| / ||grad_w gan||`` at the decoder's last layer ``w``,
    clamped to [0, max_weight] and detached (the graph is kept for the real backward pass)."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    weight = rec_grad.float().norm() / (gan_grad.float().norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach()
