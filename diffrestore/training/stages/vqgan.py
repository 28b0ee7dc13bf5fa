"""Stage ``vqgan``: ``diffusers.VQModel`` (encoder, codebook, decoder) on HQ faces.

Loss (taming-transformers / CodeFormer): L1 + perceptual/structural (LPIPS where it runs offline,
1 - SSIM otherwise) + optional offline stand-ins for the perceptual loss's pull towards fine detail
(``loss.frequency_weight``: a focal frequency loss; ``loss.detail_energy_weight``: the local energy of
fine detail matched to the truth's, whatever its phase) + codebook/commitment (VQModel's
``commit_loss``) + PatchGAN hinge loss, weighted adaptively by the ratio of gradient norms at the
decoder's last layer and off before ``loss.gan_start_step``. Codebook entries unused for
``loss.dead_code_every`` steps are restarted from random encoder outputs (f=4 codebooks collapse
otherwise in short runs). No EMA: a VQGAN is used as trained (taming-transformers, CodeFormer), and an
average of codebooks that were restarted is not a codebook. ``loss.decoder_only`` fine-tunes the
decoder on a fixed latent space (no restarts). With a GAN, the export holds the discriminator too:
``init.discriminator`` warm-starts it with the decoder. The export sets ``scaling_factor`` to 1 / std
of the pre-quantization latents (decoder-only: kept).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.utils import gather, reduce
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ...measures import laplacian_variance, psnr
from ...models.builders import build_discriminator, build_vqgan
from ...sampling.guidance import identity_loss
from ..losses import (adaptive_gan_weight, build_perceptual_loss, focal_frequency_loss, hinge_critic,
                      laplacian_energy_loss)
from ..stage import Losses, Stage
from ._common import hq_dataset, image_rows, load_sface_identity, loss_config, save_fp16


@dataclass
class VQGANLoss:
    l1_weight: float = 1.0
    perceptual: str = "auto"  # ssim | effnet (EffNet-PD) | lpips | auto (LPIPS where it runs, SSIM otherwise)
    perceptual_weight: float = 1.0
    identity_weight: float = 0.0  # 1 - cos of SFace's embeddings of reconstruction and truth (0: off)
    frequency_weight: float = 0.0  # focal frequency loss: the frequencies reconstructed worst weigh most
    detail_energy_weight: float = 0.0  # local Laplacian energy matched to the truth's (losses.laplacian_energy_loss)
    codebook_weight: float = 1.0
    gan_weight: float = 0.5  # times the adaptive weight
    gan_start_step: int = 5000  # the discriminator is neither called nor trained before this step
    # For this many steps from gan_start_step the discriminator trains alone and the autoencoder waits,
    # so that a warm-started decoder is first judged by a critic that can already tell (research/LOG.md)
    discriminator_warmup_steps: int = 0
    adaptive_weight_max: float = 1e4
    dead_code_every: int = 100  # restart codes unused over this many steps; 0 disables restarts
    scale_images: int = 512  # training images that measure the latent std for scaling_factor
    eval_images: int = 200  # validation faces of reconstruction.json
    # Train the decoder (and the discriminator) alone: the encoder and codebook, hence the latent
    # space a score model is trained in, stay fixed, so the decoder can keep sharpening beside it.
    decoder_only: bool = False


class CodebookRestarter:
    """Counts code usage (summed over processes) and re-initialises the codes no batch used over
    ``every`` steps from random encoder outputs (the same choice on every process).

    The counts are not checkpointed: after a resume the first restart waits for a full window."""

    def __init__(self, num_codes: int, every: int, seed: int) -> None:
        self.num_codes, self.every, self.seed = num_codes, every, seed
        self.counts: Tensor | None = None
        self.tokens: Tensor | None = None  # the latest pre-quantization latents, (N, C)
        self.steps_seen: set[int] = set()
        self.last_restart = -1

    def observe(self, step: int, latents: Tensor, indices: Tensor) -> Tensor:
        """Record one batch's code indices and pre-quantization latents; returns the batch's counts."""
        counts = torch.bincount(indices.flatten(), minlength=self.num_codes)
        self.counts = counts if self.counts is None else self.counts + counts
        self.tokens = latents.detach().float().permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
        self.steps_seen.add(step)
        return counts

    def maybe_restart(self, step: int, codebook: nn.Embedding) -> int:
        """At the first micro-batch of every ``every``-th step, before the forward pass; returns how
        many codes were restarted. Collective: every process calls it at the same steps."""
        if (self.every <= 0 or step % self.every or step == self.last_restart or self.counts is None
                or len(self.steps_seen) < self.every):
            return 0
        self.last_restart = step
        counts = reduce(self.counts, reduction="sum")
        tokens = gather(self.tokens)
        self.counts, self.steps_seen = None, set()
        dead = torch.nonzero(counts == 0).flatten()
        if dead.numel() == 0:
            return 0
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        pick = torch.randperm(tokens.shape[0], generator=generator)[: dead.numel()].to(tokens.device)
        dead = dead[: pick.numel()]
        with torch.no_grad():
            codebook.weight[dead] = tokens[pick].to(codebook.weight.dtype)
        return int(dead.numel())


@torch.no_grad()
def reconstruction_report(vqgan: nn.Module, faces: Dataset, limit: int = 200,
                          perceptual: nn.Module | None = None) -> dict:
    """Reconstruction of the first ``limit`` faces through the codebook: PSNR-Y, the sharpness of the
    reconstructions against the truth's (Laplacian variance: per face, the median of the ratios) and,
    given an EffNet-PD network, the mean EffNet-PD to the truth."""
    n = min(limit, len(faces))
    device = next(vqgan.parameters()).device
    psnrs, sharp_rec, sharp_hq, distances = [], [], [], []
    for batch in DataLoader(torch.utils.data.Subset(faces, range(n)), batch_size=min(32, n)):
        hq = batch["hq"].to(device)
        rec = vqgan(hq.to(vqgan.dtype)).sample.float().clamp(-1, 1)
        psnrs.append(psnr(rec, hq))
        sharp_rec.append(laplacian_variance(rec))
        sharp_hq.append(laplacian_variance(hq))
        if perceptual is not None:
            distances.append(perceptual(rec, hq).float())
    ratio = torch.cat(sharp_rec) / torch.cat(sharp_hq)
    report = {"images": n, "psnr_y": float(torch.cat(psnrs).mean()), "sharpness_ratio_median": float(ratio.median()),
              "laplacian_variance_rec": float(torch.cat(sharp_rec).mean()),
              "laplacian_variance_hq": float(torch.cat(sharp_hq).mean())}
    if distances:
        report["effnet_pd"] = float(torch.cat(distances).mean())
    return report


class VQGANStage(Stage):
    ema_names = ()

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.loss_cfg = loss_config(VQGANLoss, cfg)
        self.perceptual = build_perceptual_loss(self.loss_cfg.perceptual)
        self.restarter = CodebookRestarter(cfg.model.vqgan["num_vq_embeddings"], self.loss_cfg.dead_code_every,
                                           cfg.seed)
        self._captured: dict[str, Tensor] = {}

    def build_models(self) -> dict[str, nn.Module]:
        vqgan = build_vqgan(self.cfg.model)
        captured = self._captured

        def capture(module: nn.Module, inputs: tuple, output: tuple) -> None:
            # VQModel's forward hides the code indices: read them (and the latents) off its quantizer.
            # A plain function, not a bound method, so that deep copies of the model do not copy the stage.
            captured.update(latents=inputs[0].detach(), indices=output[2][2].detach())

        vqgan.quantize.register_forward_hook(capture)
        if self.loss_cfg.decoder_only:
            for part in (vqgan.encoder, vqgan.quant_conv, vqgan.quantize):
                part.requires_grad_(False)
        return {"vqgan": vqgan, "discriminator": build_discriminator(self.cfg.model)}

    def build_frozen(self) -> dict[str, nn.Module]:
        frozen = {"perceptual": self.perceptual} if isinstance(self.perceptual, nn.Module) else {}
        if self.loss_cfg.identity_weight:
            frozen["identity"] = load_sface_identity(self.cfg.model)
        return frozen

    def train_dataset(self) -> Dataset:
        return hq_dataset(self.cfg, self.cfg.data.hq_dir)

    def val_dataset(self) -> Dataset | None:
        return hq_dataset(self.cfg, self.cfg.data.val_dir, flip=False) if self.cfg.data.val_dir else None

    def compute_losses(self, models, frozen, batch: dict[str, Tensor], step: int) -> Losses:
        lc = self.loss_cfg
        vqgan = self.unwrap(models["vqgan"])
        restarted = 0 if lc.decoder_only else self.restarter.maybe_restart(step, vqgan.quantize.embedding)

        hq = batch["hq"]
        out = models["vqgan"](hq)  # through the (DDP) wrapper's forward
        rec, commit = out.sample, out.commit_loss.float().mean()
        counts = self.restarter.observe(step, self._captured["latents"], self._captured["indices"])

        l1 = F.l1_loss(rec.float(), hq.float())
        perceptual = frozen.get("perceptual", self.perceptual)(rec, hq)
        nll = lc.l1_weight * l1 + lc.perceptual_weight * perceptual
        logs = {}
        if lc.identity_weight:
            with torch.no_grad():
                target = frozen["identity"](hq)
            identity = identity_loss(frozen["identity"](rec), target).mean()
            nll = nll + lc.identity_weight * identity
            logs["identity"] = identity.detach()
        if lc.frequency_weight:
            frequency = focal_frequency_loss(rec, hq)
            nll = nll + lc.frequency_weight * frequency
            logs["frequency"] = frequency.detach()
        if lc.detail_energy_weight:
            detail_energy = laplacian_energy_loss(rec, hq)
            nll = nll + lc.detail_energy_weight * detail_energy
            logs["detail_energy"] = detail_energy.detach()
        loss = nll + lc.codebook_weight * commit
        logs |= {"l1": l1.detach(), "perceptual": perceptual.detach(), "commit": commit.detach(),
                "codes_used": (counts > 0).float().sum(), "codes_restarted": torch.tensor(float(restarted))}
        losses: Losses = {}
        if lc.gan_weight > 0 and step >= lc.gan_start_step:
            g_loss, d_loss, d_logs = hinge_critic(models["discriminator"], hq, rec)
            if step >= lc.gan_start_step + lc.discriminator_warmup_steps:
                weight = adaptive_gan_weight(nll, g_loss, vqgan.decoder.conv_out.weight, lc.adaptive_weight_max)
                loss = loss + lc.gan_weight * weight * g_loss
            else:  # a loss without a graph: the autoencoder is not stepped while its critic warms up
                weight, loss = torch.zeros((), device=hq.device), loss.detach()
            logs.update(g_loss=g_loss.detach(), adaptive_weight=weight)
            losses["discriminator"] = (d_loss, d_logs)
        return {"vqgan": (loss, logs), **losses}

    def make_grid(self, models, frozen, batch: dict[str, Tensor]) -> Tensor:
        rec = models["vqgan"](batch["hq"]).sample
        return image_rows([batch["hq"], rec, (rec - batch["hq"]).abs() * 2 - 1])

    @torch.no_grad()
    def latent_std(self, vqgan: nn.Module) -> float:
        """Std of the pre-quantization latents over the first ``loss.scale_images`` training images."""
        dataset = hq_dataset(self.cfg, self.cfg.data.hq_dir)
        n = min(self.loss_cfg.scale_images, len(dataset))
        loader = DataLoader(torch.utils.data.Subset(dataset, range(n)), batch_size=min(64, n))
        device = next(vqgan.parameters()).device
        latents = torch.cat([vqgan.encode(b["hq"].to(device)).latents.float() for b in loader])
        return float(latents.std())

    def export(self, models: dict[str, nn.Module], out_dir: Path) -> None:
        vqgan = models["vqgan"]
        if not self.loss_cfg.decoder_only:  # a fixed latent space keeps the scale its score model was trained with
            vqgan.register_to_config(scaling_factor=1.0 / self.latent_std(vqgan))
        save_fp16(vqgan, out_dir / "vqgan")
        if self.loss_cfg.gan_weight > 0:
            # the discriminator travels with the export, so that a later warm start (init.discriminator)
            # continues the GAN instead of restarting it
            save_fp16(models["discriminator"], out_dir / "discriminator")
        dataset = self.val_dataset() or hq_dataset(self.cfg, self.cfg.data.hq_dir, flip=False)
        distance = getattr(self.perceptual, "distance", None)  # EffNet-PD where the stage trains with it
        report = reconstruction_report(vqgan, dataset, self.loss_cfg.eval_images, distance)
        (out_dir / "vqgan" / "reconstruction.json").write_text(json.dumps(report, indent=1) + "\n")
