"""Ablation switches: the method with one of its parts changed, for the sweeps and the evaluation runs.

They are not settings of the pipeline call: each recombines the pipeline's steps
(``DiffRestorePipeline.estimate`` / ``encode`` / ``identity_guidance`` / ``sample_latents`` / ``finish``).

- ``mask``: ``learned`` (the pipeline's LatentMask), ``full`` (all ones) or ``off`` (no guidance);
- ``start_from``: ``backbone`` (DifFace: diffuse E(f(y)) to ``start_t``), ``lq`` (diffuse E(y)) or
  ``noise`` (pure noise from the last training timestep; ``start_t`` is ignored);
- ``condition``: None = as trained; False on a conditional model feeds a zero condition (the
  unconditional branch of condition dropout); True on an unconditional model is an error;
- ``backbone_only``: the L2 backbone's estimate f(y) itself (no VQGAN, no diffusion);
- ``quantize``: False decodes the sampled z_0 without snapping it to the codebook.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch
from torch import Tensor

from ..pipeline.options import RestoreOptions, failing, one_of
from ..pipeline.pipeline_diffrestore import DiffRestorePipeline
from ..pipeline.restore import FaceRestorer

MASKS = ("learned", "full", "off")
START_FROM = ("backbone", "lq", "noise")


@dataclass
class AblationOptions(RestoreOptions):
    """``RestoreOptions`` and the ablation switches (the defaults are the method itself)."""

    mask: str = "learned"  # learned | full | off
    start_from: str = "backbone"  # backbone | lq | noise
    condition: Optional[bool] = None  # None = as the model was trained; false = zero condition
    backbone_only: bool = False  # output the L2 backbone's estimate alone (no diffusion prior)
    quantize: bool = True  # false = decode z_0 without the codebook

    def problems(self, num_train_timesteps: Optional[int] = None) -> list[tuple[str, str]]:
        rules = [("mask", self.mask in MASKS, one_of(MASKS)),
                 ("start_from", self.start_from in START_FROM, one_of(START_FROM))]
        return super().problems(num_train_timesteps) + failing(rules)


@torch.no_grad()
def restore_ablated(pipe: DiffRestorePipeline, lq: Tensor, options: AblationOptions,
                    generator: Optional[torch.Generator | list[torch.Generator]] = None) -> Tensor:
    """Aligned faces (B, 3, R, R) in [-1, 1] -> restored with the ablation switches of ``options``."""
    options.check()
    if options.condition and not pipe.config.condition:
        raise ValueError("condition=True needs a conditional model; this one was trained without E(y)")
    lq = lq.to(pipe.device, pipe.dtype)
    estimate = pipe.estimate(lq)
    if options.backbone_only:
        return estimate
    lq_latent = pipe.encode(lq) if pipe.config.condition or options.start_from == "lq" else None
    z_start = start_latent(pipe, options.start_from, estimate, lq_latent)
    condition = None
    if pipe.config.condition:
        condition = lq_latent if options.condition in (None, True) else torch.zeros_like(lq_latent)
    guidance = None
    if options.mask != "off":
        guidance = pipe.identity_guidance(lq, estimate, options, ablation_mask(pipe, options.mask, z_start))
    if options.start_from == "noise":
        options = replace(options, sampler="prior", start_t=pipe.scheduler.config.num_train_timesteps - 1)
    z0 = pipe.sample_latents(z_start, condition, options, generator, guidance)
    return pipe.finish(z0, estimate, options, quantize=options.quantize)


def start_latent(pipe: DiffRestorePipeline, start_from: str, estimate: Tensor, lq_latent: Optional[Tensor]) -> Tensor:
    """The latent the chain is diffused from (only its shape matters for ``noise``)."""
    if start_from == "backbone":
        return pipe.encode(estimate)
    if start_from == "lq":
        return lq_latent
    return torch.zeros(estimate.shape[0], *pipe.latent_shape, device=estimate.device)


def ablation_mask(pipe: DiffRestorePipeline, mask: str, like: Tensor) -> Tensor:
    """The mask guidance acts through: ``full`` (all ones) or ``learned``."""
    if mask == "full":
        return torch.ones_like(like[:1])
    if pipe.mask is None:
        raise ValueError("this pipeline has no learned mask: use mask='full' or mask='off'")
    return pipe.learned_mask()


class AblationRestorer(FaceRestorer):
    """A ``FaceRestorer`` whose batches go through ``restore_ablated``."""

    options: AblationOptions

    def restore_batch(self, faces: Tensor, generators: list[torch.Generator]) -> Tensor:
        return restore_ablated(self.pipeline, faces, self.options, generators)
