"""Stage ``mask``: the latent mask M of CLR-Face, learned with frozen vqgan, backbone, score model,
identity phi (and IRN).

Per batch (y the LQ face, x the HQ face), one guided step of the sampler (``samplers.guidance``,
``samplers.difface``) at a timestep of its range:

    z     = scaling_factor * E(backbone(y))                       # what DifFace diffuses
    z_t   = sqrt(abar_t) z + sqrt(1 - abar_t) n,  t ~ U{1..max_t}  # max_t: the sampler's N
    z0    = (z_t - sqrt(1 - abar_t) eps(z_t, t, E(y))) / sqrt(abar_t)   # the prior's prediction
    g     = grad_z0 [1 - cos(phi(D(z0)), target)] / RMS           # unit RMS per sample; D decodes WITHOUT
                                                                  # quantization (as the sampler's guidance)
    z0'   = z0 - step_size * M * g
    loss  = identity_weight * (1 - cos(phi(D(z0')), phi(x)))      # identity gain w.r.t. the TRUE identity
          + change_weight * mean|D(z0') - D(z0)|                  # change is penalised
          + sparsity_weight * mean(M)

``target`` is the sampler's (``guidance_target``): phi(f(y)) (``backbone``, its default) or IRN(y).
``max_t = 0`` takes the backbone's clean latent for z0 (no score model): the stage's first form, which
with ``target = irn`` learns for a target and a latent that the default sampler never guides. g is a constant
for the mask (as in the sampler); the loss reaches M through D(z0'). The export writes
``mask_eval.json``: on the validation pairs, the learned mask against all-ones (no mask), a uniform
mask of the learned mask's mean (same budget, no "where") and all-zeros (no guidance), at the same
step size; identity cosine to the HQ face (phi, and SFace where it is installed, which is not the
guidance network) and the change magnitude.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from diffusers import DDPMScheduler
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from ...sampling.guidance import IdentityGuidance, identity_gradient, identity_loss
from ...sampling.schedulers import clean_latent

from ...models.builders import build_mask, build_scheduler, load_template
from ...config import ConfigError
from ...models.codec import LatentCodec
from ...models import SFaceIdentity
from ..stage import Losses, Stage
from ._common import (check_embedding_dims, image_rows, load_backbone, load_identity_network, load_irn, load_unet,
                      load_vqgan, loss_config, paired_dataset, paired_val_dataset, require_identity, save_fp16)


TARGETS = ("backbone", "irn")


@dataclass
class MaskLoss:
    step_size: float = 1.0  # latent units per step (the gradient has unit RMS), like the sampler's scale
    max_t: int = 0  # guided timesteps t ~ U{1..max_t} (the sampler's N); 0 = the backbone's clean latent
    target: str = "irn"  # what the gradient pulls phi(D(z0)) towards: backbone = phi(f(y)), irn = IRN(y)
    identity_weight: float = 1.0
    change_weight: float = 1.0
    sparsity_weight: float = 0.01
    eval_images: int = 256  # validation pairs of mask_eval.json


@dataclass
class GuidanceProblem:
    """One batch, prepared: the latent, its decode, the unit-RMS identity gradient and the targets."""

    z: Tensor
    before: Tensor
    gradient: Tensor
    true_identity: Tensor
    decode: Callable[[Tensor], Tensor]


def prepare(frozen: dict[str, nn.Module], lq: Tensor, hq: Tensor, loss: MaskLoss,
            scheduler: DDPMScheduler | None = None, generator: torch.Generator | None = None) -> GuidanceProblem:
    codec, identity = LatentCodec(frozen["vqgan"]), frozen["identity"]

    def decode(latents: Tensor) -> Tensor:
        return codec.decode(latents, quantize=False)

    with torch.no_grad():
        estimate = frozen["backbone"](lq)
        z = codec.encode(estimate)
        if loss.max_t > 0:
            unet = frozen["unet"]
            condition = codec.encode(lq) if unet.config.in_channels > z.shape[1] else None
            z = predicted_clean_latent(unet, scheduler, z, condition, loss.max_t, generator)
        target = (frozen["irn"](lq) if loss.target == "irn" else identity(estimate)).float()
        true_identity = identity(hq).float()
        before = decode(z)
    guidance = IdentityGuidance(decode=decode, embed=identity, target=target, mask=torch.ones_like(z[:1]),
                                scale=1.0)
    gradient = identity_gradient(guidance, z, torch.zeros_like(z), 1.0)
    return GuidanceProblem(z, before, gradient, true_identity, decode)


def predicted_clean_latent(unet: nn.Module, scheduler: DDPMScheduler, z: Tensor, condition: Tensor | None,
                           max_t: int, generator: torch.Generator | None = None) -> Tensor:
    """The score model's z0 prediction from ``z`` diffused to t ~ U{1..max_t} (per sample); ``condition``
    E(y) for a conditional UNet (None otherwise)."""
    # drawn on the CPU (the global stream, or ``generator``), the same on every device
    t = torch.randint(1, max_t + 1, (z.shape[0],), generator=generator).to(z.device)
    noise = torch.randn(z.shape, generator=generator).to(z)
    z_t = scheduler.add_noise(z, noise, t)
    inputs = z_t if condition is None else torch.cat([z_t, condition], dim=1)
    dtype = next(unet.parameters()).dtype
    return clean_latent(scheduler, z_t, unet(inputs.to(dtype), t).sample, t)


class MaskedStep(nn.Module):
    """``z - step_size * M * g`` as a forward pass of the trained module, so that DDP sees the mask's
    use (a DDP forward without tensor inputs fails on GPUs); ``.mask`` is the ``LatentMask`` exported."""

    def __init__(self, mask: nn.Module) -> None:
        super().__init__()
        self.mask = mask

    def forward(self, z: Tensor, gradient: Tensor, step_size: float) -> Tensor:
        return z - step_size * self.mask() * gradient


def fixed_step(mask: Tensor) -> Callable[[Tensor, Tensor, float], Tensor]:
    """A constant mask (all-ones, all-zeros, ...) in ``MaskedStep``'s place."""
    return lambda z, gradient, step_size: z - step_size * mask * gradient


class MaskStage(Stage):
    ema_names = ("mask",)

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.loss_cfg = loss_config(MaskLoss, cfg)
        self.identity_spec = require_identity(cfg)
        if self.loss_cfg.target not in TARGETS:
            raise ConfigError(f"config key 'loss.target': {self.loss_cfg.target!r} is not one of {TARGETS}")
        if self.loss_cfg.max_t < 0:
            raise ConfigError(f"config key 'loss.max_t': {self.loss_cfg.max_t} is negative (0 = the clean latent)")
        self.scheduler = build_scheduler(cfg.model) if self.loss_cfg.max_t > 0 else None

    def build_models(self) -> dict[str, nn.Module]:
        return {"mask": MaskedStep(build_mask(self.cfg.model))}

    def build_frozen(self) -> dict[str, nn.Module]:
        irn, identity = load_irn(self.cfg), load_identity_network(self.identity_spec, self.cfg.model)
        check_embedding_dims(irn.config.embedding_dim, identity, self.cfg.model)
        frozen = {"vqgan": load_vqgan(self.cfg), "backbone": load_backbone(self.cfg), "irn": irn, "identity": identity}
        if self.loss_cfg.max_t > 0:
            frozen["unet"] = load_unet(self.cfg)
        return frozen

    def train_dataset(self) -> Dataset:
        return paired_dataset(self.cfg, self.cfg.data.hq_dir)

    def val_dataset(self) -> Dataset | None:
        return paired_val_dataset(self.cfg)

    def _terms(self, frozen, problem: GuidanceProblem, step: Callable[[Tensor, Tensor, float], Tensor],
               mask: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """The loss terms of one masked step (``step`` computes z'), and D(z')."""
        lc = self.loss_cfg
        after = problem.decode(step(problem.z, problem.gradient, lc.step_size))
        identity_term = identity_loss(frozen["identity"](after), problem.true_identity).mean()
        change = (after.float() - problem.before.float()).abs().mean()
        sparsity = mask.float().mean()
        objective = lc.identity_weight * identity_term + lc.change_weight * change + lc.sparsity_weight * sparsity
        return {"objective": objective, "cos_hq": 1 - identity_term, "change": change, "mask_mean": sparsity}, after

    def compute_losses(self, models, frozen, batch: dict[str, Tensor], step: int) -> Losses:
        problem = prepare(frozen, batch["lq"], batch["hq"], self.loss_cfg, self.scheduler)
        terms, _ = self._terms(frozen, problem, models["mask"], self.unwrap(models["mask"]).mask())
        with torch.no_grad():
            cos_before = 1 - identity_loss(frozen["identity"](problem.before), problem.true_identity).mean()
        logs = {k: v.detach() for k, v in terms.items() if k != "objective"}
        logs["cos_hq_gain"] = logs["cos_hq"] - cos_before
        return {"mask": (terms["objective"], logs)}

    def make_grid(self, models, frozen, batch: dict[str, Tensor]) -> Tensor:
        """Rows: LQ, D(z) (no guidance), learned mask, all-ones mask, HQ; then the mask (channel mean)."""
        lq, hq = batch["lq"][:8], batch["hq"][:8]
        problem = prepare(frozen, lq, hq, self.loss_cfg, self.scheduler, _generator())
        mask = models["mask"].mask()
        _, learned = self._terms(frozen, problem, models["mask"], mask)
        _, ones = self._terms(frozen, problem, fixed_step(torch.ones_like(mask)), mask)
        size = hq.shape[-1]
        picture = torch.nn.functional.interpolate(mask.float().mean(1, keepdim=True), size=(size, size),
                                                  mode="nearest").expand(hq.shape[0], 3, size, size)
        return image_rows([lq, problem.before, learned, ones, hq, picture * 2 - 1])

    def export(self, models: dict[str, nn.Module], out_dir: Path) -> None:
        report = self.evaluate(models["mask"].mask)
        save_fp16(models["mask"].mask, out_dir / "mask")
        (out_dir / "mask_eval.json").write_text(json.dumps(report, indent=2) + "\n")

    def evaluate(self, mask_model: nn.Module) -> dict:
        """Learned mask vs all-ones vs uniform (learned mean) vs all-zeros at equal step size, on the
        first ``loss.eval_images`` validation pairs (the training pairs where there is no val_dir)."""
        device = next(mask_model.parameters()).device
        frozen = {k: m.to(device).eval().requires_grad_(False) for k, m in self.build_frozen().items()}
        dataset = self.val_dataset() or paired_dataset(self.cfg, self.cfg.data.hq_dir, flip=False)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(0)
        n = min(self.loss_cfg.eval_images, len(dataset))
        sface, sface_note = _sface_or_reason(self.cfg)
        with torch.no_grad():
            learned = mask_model().float()
        masks = {"learned": learned, "all_ones": torch.ones_like(learned),
                 "uniform_mean": torch.full_like(learned, float(learned.mean())),
                 "all_zeros": torch.zeros_like(learned)}
        sums: dict[str, dict[str, float]] = {name: {} for name in masks}
        generator = _generator()  # the same timesteps and noise for every mask and every export
        for batch in DataLoader(Subset(dataset, range(n)), batch_size=32):
            lq, hq = batch["lq"].to(device), batch["hq"].to(device)
            problem = prepare(frozen, lq, hq, self.loss_cfg, self.scheduler, generator)
            hq_sface = sface(hq) if sface else None
            for name, mask in masks.items():
                with torch.no_grad():
                    terms, after = self._terms(frozen, problem, fixed_step(mask), mask)
                values = {k: float(v) * lq.shape[0] for k, v in terms.items()}
                if sface:
                    values["sface_cos_hq"] = float((sface(after) * hq_sface).sum())
                for k, v in values.items():
                    sums[name][k] = sums[name].get(k, 0.0) + v
        results = {name: {k: v / n for k, v in s.items()} for name, s in sums.items()}
        return {
            "protocol": {"images": n, "source": self.cfg.data.val_dir or self.cfg.data.hq_dir,
                         "degradation_seed": self.cfg.seed, "step_size": self.loss_cfg.step_size,
                         "max_t": self.loss_cfg.max_t, "target": self.loss_cfg.target,
                         "decode": "VQGAN decoder without quantization", "identity": str(self.identity_spec),
                         "objective": "identity_weight*(1-cos_hq) + change_weight*change + sparsity_weight*mask_mean",
                         "weights": {k: getattr(self.loss_cfg, k) for k in
                                     ("identity_weight", "change_weight", "sparsity_weight")},
                         "sface": sface_note},
            "results": results,
            "learned_beats_all_ones": results["learned"]["objective"] < results["all_ones"]["objective"],
        }


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _sface_or_reason(cfg) -> tuple[Callable[[Tensor], Tensor] | None, str]:
    """SFace embeddings (an identity network independent of the guidance) where it can run, and a note."""
    try:
        net = SFaceIdentity(load_template(cfg.model.template, cfg.model.resolution), cfg.model.resolution)
    except (ImportError, FileNotFoundError) as err:
        return None, f"SFace unavailable: {err}"
    return (lambda images: net(images.float()).to(images.device)), "sface_cos_hq: OpenCV Zoo SFace, independent of phi"
