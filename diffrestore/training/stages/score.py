"""Stage ``score``: the latent score model (``UNet2DModel``, epsilon prediction) on a frozen VQGAN's
scaled latents of HQ faces; conditional (CLR-Face) when ``model.condition``: the input is
``cat([z_t, c])`` with ``c`` the scaled latent of the degraded face, dropped to zeros with
probability ``loss.condition_dropout`` so that classifier-free guidance is possible.

With ``loss.pixel_weight`` > 0 part of each batch is drawn at the noise levels the restorer starts from
(t < ``loss.pixel_max_t``), and the z0 its epsilon implies is decoded by the frozen VQGAN and compared with
the truth in pixels: L1, a perceptual distance and the local Laplacian energy. An epsilon-MSE model predicts
the mean of what a noisy latent could have been, a smooth face; those terms ask its prediction at DifFace's N
for the truth's texture, which is what the restored face is made of.

With ``loss.gan_weight`` > 0 a PatchGAN discriminator also judges those decoded predictions against the
decoded true latents (the VQGAN's reconstructions, not the photos: the score model can only make what a
latent carries), its hinge loss weighted adaptively against the pixel loss at the UNet's last layer as
taming's VQGAN weighs it against the reconstruction loss. A critic tells a mean from a sample."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ...sampling import clean_latent, respaced_timesteps, sample_prior, unet_eps_model

from ...models.builders import build_discriminator, build_scheduler, build_unet
from ...pipeline.options import failing
from ...config import ConfigError
from ...data.datasets import ResidentFaces
from ...models.codec import LatentCodec
from ..losses import adaptive_gan_weight, build_perceptual_loss, hinge_critic, laplacian_energy_loss
from ..stage import Losses, Stage
from ._common import (hq_dataset, image_rows, load_vqgan, loss_config, paired_dataset, paired_val_dataset,
                      save_fp16)


@dataclass
class ScoreLoss:
    condition_dropout: float = 0.1  # probability of training a sample unconditionally (c = 0)
    sample_steps: int = 25  # DDIM steps of the sample grid (from pure noise at t = T - 1)
    pixel_weight: float = 0.0  # the decoded z0 prediction's loss in pixels (module docstring); 0 = epsilon alone
    pixel_max_t: int = 300  # its samples' t ~ U{0..pixel_max_t - 1}: the default N is 100; 300 is --fidelity 0.13
    pixel_samples: int = 32  # samples of each batch judged in pixels (each costs a decoder and a perceptual pass)
    perceptual: str = "effnet"  # of losses.PERCEPTUAL_CHOICES (effnet: EffNet-PD, the perception extra)
    perceptual_weight: float = 0.1
    detail_energy_weight: float = 0.25  # losses.laplacian_energy_loss
    gan_weight: float = 0.0  # the adversarial term on the judged samples, times the adaptive weight; 0 = off
    discriminator_warmup_steps: int = 0  # the discriminator learns this many steps before its verdict counts
    adaptive_weight_max: float = 1e4


class ScoreStage(Stage):
    ema_names = ("unet",)

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.loss_cfg = loss_config(ScoreLoss, cfg)
        dropout = self.loss_cfg.condition_dropout
        if not 0.0 <= dropout <= 1.0:
            raise ConfigError(f"config key 'loss.condition_dropout': {dropout} is not in [0, 1]")
        self.scheduler = build_scheduler(cfg.model)
        self.condition = cfg.model.condition
        self.latent_cache: Tensor | None = None
        self.check_pixel_loss()
        self.perceptual = build_perceptual_loss(self.loss_cfg.perceptual) if self.loss_cfg.pixel_weight else None

    def check_pixel_loss(self) -> None:
        lc, steps = self.loss_cfg, self.scheduler.config.num_train_timesteps
        problems = failing([
            ("pixel_weight", lc.pixel_weight >= 0, "must be >= 0 (0 = off)"),
            ("pixel_max_t", 1 <= lc.pixel_max_t <= steps, f"must be in [1, {steps}] (the training timesteps)"),
            ("pixel_samples", lc.pixel_samples >= 1, "must be at least 1"),
            ("gan_weight", lc.gan_weight >= 0, "must be >= 0 (0 = off)"),
            ("gan_weight", lc.gan_weight == 0 or lc.pixel_weight > 0,
             "needs loss.pixel_weight > 0: the critic judges the pixel loss's samples and is weighed against it"),
            ("discriminator_warmup_steps", lc.discriminator_warmup_steps >= 0, "must be >= 0")])
        if problems:
            key, problem = problems[0]
            raise ConfigError(f"config key 'loss.{key}': {getattr(lc, key)!r} {problem}")

    def build_models(self) -> dict[str, nn.Module]:
        models = {"unet": build_unet(self.cfg.model)}
        if self.loss_cfg.gan_weight:
            models["discriminator"] = build_discriminator(self.cfg.model)
        return models

    def build_frozen(self) -> dict[str, nn.Module]:
        frozen = {"vqgan": load_vqgan(self.cfg)}
        if isinstance(self.perceptual, nn.Module):
            frozen["perceptual"] = self.perceptual
        return frozen

    def train_dataset(self) -> Dataset:
        if self.condition:
            return paired_dataset(self.cfg, self.cfg.data.hq_dir)
        return hq_dataset(self.cfg, self.cfg.data.hq_dir)

    def val_dataset(self) -> Dataset | None:
        if not self.cfg.data.val_dir:
            return None
        if self.condition:
            return paired_val_dataset(self.cfg)
        return hq_dataset(self.cfg, self.cfg.data.val_dir, flip=False)

    def prepare_resident(self, faces: ResidentFaces, frozen: dict[str, nn.Module]) -> None:
        """The latents of every HQ face and of its mirror image, (N, 2, C, h, w): the frozen encoder's
        work on the targets is done once, not every epoch."""
        chunks = torch.arange(len(faces), device=faces.device).split(256)
        self.latent_cache = torch.cat([
            torch.stack([LatentCodec(frozen["vqgan"]).encode(faces.faces(i, torch.full_like(i, f, dtype=torch.bool)))
                         for f in (False, True)], dim=1)
            for i in chunks])

    def _target_latents(self, codec: LatentCodec, batch: dict[str, Tensor]) -> Tensor:
        if self.latent_cache is not None and "flipped" in batch:
            return self.latent_cache[batch["index"], batch["flipped"].long()]
        return codec.encode(batch["hq"])

    def compute_losses(self, models, frozen, batch: dict[str, Tensor], step: int) -> Losses:
        codec = LatentCodec(frozen["vqgan"])
        with torch.no_grad():
            z0 = self._target_latents(codec, batch)
            cond = codec.encode(batch["lq"]) if self.condition else None
        noise = torch.randn_like(z0)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (z0.shape[0],), device=z0.device)
        judged = min(self.loss_cfg.pixel_samples, z0.shape[0]) if self.loss_cfg.pixel_weight else 0
        t[:judged] = torch.randint(0, self.loss_cfg.pixel_max_t, (judged,), device=z0.device)
        z_t = self.scheduler.add_noise(z0, noise, t)
        inputs = z_t
        if cond is not None:
            keep = torch.rand(z0.shape[0], 1, 1, 1, device=z0.device) >= self.loss_cfg.condition_dropout
            inputs = torch.cat([z_t, cond * keep], dim=1)
        eps = models["unet"](inputs, t).sample
        loss = F.mse_loss(eps.float(), noise)
        logs = {"eps_mse": loss.detach()}
        losses: Losses = {}
        if judged:
            z0_pred = clean_latent(self.scheduler, z_t[:judged], eps[:judged], t[:judged])
            predicted = codec.decode(z0_pred, quantize=False)
            pixel, pixel_logs = self.pixel_loss(frozen, predicted, batch["hq"][:judged])
            pixel = self.loss_cfg.pixel_weight * pixel
            loss = loss + pixel
            logs |= pixel_logs
            if self.loss_cfg.gan_weight:
                with torch.no_grad():
                    real = codec.decode(z0[:judged], quantize=False)
                adversarial, gan_logs, losses["discriminator"] = self.adversarial(models, real, predicted, pixel, step)
                loss = loss + adversarial
                logs |= gan_logs
        return {"unet": (loss, logs), **losses}

    def adversarial(self, models, real: Tensor, predicted: Tensor, pixel: Tensor,
                    step: int) -> tuple[Tensor, dict[str, Tensor], tuple[Tensor, dict[str, Tensor]]]:
        """The score model's adversarial term and its logs, and the discriminator's (loss, logs)."""
        lc = self.loss_cfg
        g_loss, d_loss, d_logs = hinge_critic(models["discriminator"], real, predicted)
        if step >= lc.discriminator_warmup_steps:
            last_layer = self.unwrap(models["unet"]).conv_out.weight
            weight = adaptive_gan_weight(pixel, g_loss, last_layer, lc.adaptive_weight_max)
        else:
            weight = torch.zeros((), device=g_loss.device)
        return (lc.gan_weight * weight * g_loss, {"g_loss": g_loss.detach(), "adaptive_weight": weight},
                (d_loss, d_logs))

    def pixel_loss(self, frozen: dict[str, nn.Module], predicted: Tensor,
                   hq: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """L1 + perceptual + Laplacian energy of the decoded z0 predictions against the truth."""
        lc = self.loss_cfg
        l1 = (predicted - hq.float()).abs().mean()
        perceptual = frozen.get("perceptual", self.perceptual)(predicted, hq.float())
        energy = laplacian_energy_loss(predicted, hq)
        total = l1 + lc.perceptual_weight * perceptual + lc.detail_energy_weight * energy
        return total, {"pixel_l1": l1.detach(), "pixel_perceptual": perceptual.detach(),
                       "pixel_energy": energy.detach()}

    def make_grid(self, models, frozen, batch: dict[str, Tensor]) -> Tensor:
        codec, unet = LatentCodec(frozen["vqgan"]), models["unet"]
        hq = batch["hq"][:8]
        z0 = codec.encode(hq)
        cond = codec.encode(batch["lq"][:8]) if self.condition else None
        generator = torch.Generator(z0.device).manual_seed(self.cfg.seed)
        timesteps = respaced_timesteps(self.scheduler.config.num_train_timesteps - 1, self.loss_cfg.sample_steps)
        z = sample_prior(unet_eps_model(unet, cond), z0, self.scheduler, timesteps, generator=generator)
        rows = [codec.decode(z), codec.decode(z0), hq]
        return image_rows(([batch["lq"][:8]] if self.condition else []) + rows)

    def export(self, models: dict[str, nn.Module], out_dir: Path) -> None:
        save_fp16(models["unet"], out_dir / "unet")
