"""The restoration pipeline: a ``diffusers.DiffusionPipeline`` holding every network, saved and loaded
as one folder (``save_pretrained`` / ``DiffRestorePipeline.from_pretrained``).

Components: ``vqgan`` (VQModel), ``unet`` (UNet2DModel), ``scheduler`` (the TRAINING DDPMScheduler;
samplers derive their respaced schedules from it), ``backbone`` (RestorationNet) and the optional
``identity`` (phi), ``irn`` (identity recovery network) and ``mask`` (LatentMask).

How our own classes come back from ``model_index.json``: diffusers records a non-diffusers class as
(defining module, class name), e.g. ``["diffrestore.models.backbone", "RestorationNet"]``; loading
imports that module, takes the class from it and finds its load method by looking up the base
classes it knows (``ModelMixin``) in the same module. So the classes must stay importable from the
module that defined them (they are also exported from ``diffrestore`` for users). A missing optional
component is recorded as ``[null, null]`` and comes back as ``None``. Weights are stored as the
components' dtype (``diffrestore-assemble`` writes fp16) and load as float32 unless ``dtype=`` is given.

``__call__`` only prepares tensors and calls ``samplers``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch
from diffusers import DDPMScheduler, DiffusionPipeline, UNet2DModel, VQModel
from torch import Tensor

from samplers import IdentityGuidance, difface_sample, unet_eps_model

from .builders import (ModelConfig, build_backbone, build_identity, build_irn, build_mask, build_scheduler,
                       build_unet, build_vqgan, load_template)
from .colorfix import COLOR_FIX_FUNCTIONS, COLOR_FIXES
from .config import load_config
from .models import IdentityNet, LatentMask, RestorationNet

START_FROM = ("backbone", "lq", "noise")
MASKS = ("learned", "full", "off")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
GUIDANCE_TARGETS = ("irn", "backbone")


def _check_choice(name: str, value: object, choices: Sequence) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


@dataclass
class ModelFile:
    """Schema of a model config file (``configs/model/*.yaml``): everything under ``model:``."""

    model: ModelConfig = field(default_factory=ModelConfig)


def load_model_config(path: str | Path, overrides: Sequence[str] = ()) -> ModelConfig:
    """Read a model config file (strictly checked) into a ``ModelConfig``."""
    cfg = load_config(path, ModelFile, overrides)
    return ModelConfig(**{key: cfg.model[key] for key in cfg.model})


class DiffRestorePipeline(DiffusionPipeline):
    """Blind face restoration: backbone estimate -> DifFace transition at ``start_t`` -> (conditional)
    latent refinement with optional masked identity guidance -> VQGAN decoder -> colour fix.

    Config: ``resolution`` (aligned face size in pixels), ``template`` (five [x, y] landmarks at that
    resolution: the framing the model expects) and ``condition`` (the UNet sees E(y) concatenated).
    """

    _optional_components = ["identity", "irn", "mask"]

    def __init__(
        self,
        vqgan: VQModel,
        unet: UNet2DModel,
        scheduler: DDPMScheduler,
        backbone: RestorationNet,
        identity: Optional[IdentityNet] = None,
        irn: Optional[IdentityNet] = None,
        mask: Optional[LatentMask] = None,
        resolution: int = 128,
        template: Optional[list] = None,
        condition: bool = True,
    ) -> None:
        super().__init__()
        if template is not None:
            template = [[float(x), float(y)] for x, y in template]
            if len(template) != 5:
                raise ValueError(f"template must have 5 [x, y] landmarks, got {len(template)}")
        latent_channels = vqgan.config.vq_embed_dim or vqgan.config.latent_channels
        expected_in = latent_channels * (2 if condition else 1)
        if unet.config.in_channels != expected_in:
            raise ValueError(f"unet has {unet.config.in_channels} input channels; condition={condition} with "
                             f"{latent_channels} latent channels needs {expected_in}")
        self.register_modules(vqgan=vqgan, unet=unet, scheduler=scheduler, backbone=backbone, identity=identity,
                              irn=irn, mask=mask)
        self.register_to_config(resolution=int(resolution), template=template, condition=bool(condition))

    # ----------------------------------------------------------------------------------------------
    # construction

    @classmethod
    def from_model_config(cls, cfg: ModelConfig | str | Path, with_identity: bool = True,
                          seed: Optional[int] = 0) -> "DiffRestorePipeline":
        """A pipeline with freshly initialised (random) weights, for tests and benchmarks.
        ``cfg`` is a ``ModelConfig`` or the path of a model config file."""
        if not isinstance(cfg, ModelConfig):
            cfg = load_model_config(cfg)
        if seed is not None:
            torch.manual_seed(seed)
        parts = dict(vqgan=build_vqgan(cfg), unet=build_unet(cfg), scheduler=build_scheduler(cfg),
                     backbone=build_backbone(cfg))
        if with_identity:
            parts.update(identity=build_identity(cfg), irn=build_irn(cfg), mask=build_mask(cfg))
        for part in parts.values():
            if isinstance(part, torch.nn.Module):
                part.eval()
        template = load_template(cfg.template, cfg.resolution).tolist()
        return cls(**parts, resolution=cfg.resolution, template=template, condition=cfg.condition)

    def cast(self, dtype: torch.dtype) -> "DiffRestorePipeline":
        """Cast every network to ``dtype``. (``pipeline.to(dtype)`` does the same but diffusers 0.42
        then warns about fp32-only modules that none of ours has.)"""
        for name in ("vqgan", "unet", "backbone", "identity", "irn", "mask"):
            module = getattr(self, name)
            if module is not None:
                torch.nn.Module.to(module, dtype=dtype)
        return self

    def optimize(self, channels_last: bool = False, compile_mode: Optional[str] = None) -> "DiffRestorePipeline":
        """Speed-ups that change results only by floating-point rounding (checked by the tests):
        channels-last memory layout for the convolutional networks, and ``torch.compile`` of the UNet,
        the one network called at every step (``compile_mode``: ``default``, or ``reduce-overhead`` to
        replay the fixed-shape step as a CUDA graph). Compilation happens on the first call per batch shape."""
        if channels_last:
            for name in ("vqgan", "unet", "backbone", "identity", "irn"):
                module = getattr(self, name)
                if module is not None:
                    module.to(memory_format=torch.channels_last)
        if compile_mode is not None:
            _check_choice("compile_mode", compile_mode, COMPILE_MODES)
            self.unet.compile(mode=compile_mode)
        return self

    # ----------------------------------------------------------------------------------------------
    # latents

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        vq = self.vqgan.config
        side = self.config.resolution // 2 ** (len(vq.block_out_channels) - 1)
        return (vq.vq_embed_dim or vq.latent_channels, side, side)

    def encode(self, images: Tensor) -> Tensor:
        """Images in [-1, 1] -> scaled continuous latents (before quantization), float32."""
        latents = self.vqgan.encode(images.to(self.vqgan.dtype)).latents
        return latents.float() * self.vqgan.config.scaling_factor

    def decode(self, latents: Tensor, quantize: bool = True) -> Tensor:
        """Scaled latents -> images (float32, not clamped); ``quantize=False`` keeps it differentiable."""
        unscaled = (latents / self.vqgan.config.scaling_factor).to(self.vqgan.dtype)
        return self.vqgan.decode(unscaled, force_not_quantize=not quantize).sample.float()

    # ----------------------------------------------------------------------------------------------
    # restoration

    def _check_input(self, lq: Tensor) -> None:
        size = self.config.resolution
        if lq.ndim != 4 or lq.shape[1] != 3 or lq.shape[-2:] != (size, size):
            raise ValueError(f"expected aligned faces of shape (B, 3, {size}, {size}), got {tuple(lq.shape)}")

    def _mask_tensor(self, mask: str, like: Tensor) -> Optional[Tensor]:
        if mask == "off":
            return None
        if mask == "full":
            return torch.ones_like(like[:1])
        if self.mask is None:
            raise ValueError("this pipeline has no learned mask: use mask='full' or mask='off'")
        return self.mask().float().to(like.device)

    def _guidance(self, lq: Tensor, estimate: Tensor, latent_like: Tensor, scale: float, mask: str, every: int,
                  range_: Sequence[float], schedule: str, target_from: str) -> Optional[IdentityGuidance]:
        if scale == 0 or mask == "off":
            return None
        if self.identity is None:
            raise ValueError("identity guidance needs an identity network; this pipeline has none (use guidance=0)")
        mask_tensor = self._mask_tensor(mask, latent_like)
        # IRN(y) predicts the HQ face's embedding; phi(f(y)) is the alternative (and the fallback without an IRN).
        if target_from == "irn" and self.irn is not None:
            target = self.irn(lq.to(self.irn.dtype))
        else:
            target = self.identity(estimate.to(self.identity.dtype))
        identity = self.identity

        def embed(images: Tensor) -> Tensor:
            return identity(images.to(identity.dtype)).float()

        return IdentityGuidance(decode=lambda z: self.decode(z, quantize=False), embed=embed,
                                target=target.float().detach(), mask=mask_tensor, scale=float(scale),
                                every=int(every), range=(float(range_[0]), float(range_[1])), schedule=schedule)

    @torch.no_grad()
    def __call__(
        self,
        lq: Tensor,
        steps: int = 50,
        start_t: int = 400,
        sampler: str = "ddim",
        eta: float = 0.0,
        guidance: float = 0.0,
        guidance_every: int = 1,
        guidance_range: Sequence[float] = (0.0, 1.0),
        guidance_schedule: str = "constant",
        guidance_target: str = "backbone",
        mask: str = "learned",
        cfg_scale: float = 1.0,
        start_from: str = "backbone",
        condition: Optional[bool] = None,
        backbone_only: bool = False,
        color_fix: str = "wavelet",
        generator: Optional[torch.Generator] = None,
    ) -> Tensor:
        """Restore aligned faces ``lq`` (B, 3, R, R) in [-1, 1]; returns (B, 3, R, R) in [-1, 1].

        ``start_from``: ``backbone`` (DifFace: diffuse E(f(y)) to ``start_t``), ``lq`` (diffuse E(y))
        or ``noise`` (pure noise from the last training timestep; ``start_t`` is ignored).
        ``condition``: None = as trained; False on a conditional model feeds a zero condition (the
        unconditional branch of condition dropout); True on an unconditional model is an error.
        ``mask``: ``learned`` (the pipeline's LatentMask), ``full`` (all ones) or ``off`` (no guidance).
        ``guidance_target``: the embedding guidance pulls towards: ``backbone`` (phi of the backbone
        estimate f(y)) or ``irn`` (IRN(y), CLR-Face). ``backbone`` is the default because on the bundled
        model phi(f(y)) predicts phi of the HQ face better than IRN(y) does (docs/ablations.md).
        ``backbone_only``: return the L2 backbone's estimate f(y) itself (no VQGAN, no diffusion): the
        first stage alone, for ablations.
        ``color_fix``: ``wavelet`` gives the output the low-frequency colours of the backbone estimate
        (the decoder's colour shift removed, its detail kept; see ``diffrestore.colorfix``), ``chroma``
        additionally all of the estimate's chroma (fine colours such as irises too), or ``none``.
        """
        for name, value, choices in (("start_from", start_from, START_FROM), ("color_fix", color_fix, COLOR_FIXES),
                                     ("guidance_target", guidance_target, GUIDANCE_TARGETS), ("mask", mask, MASKS)):
            _check_choice(name, value, choices)
        if condition and not self.config.condition:
            raise ValueError("condition=True needs a conditional model; this one was trained without E(y)")
        self._check_input(lq)
        device = self._execution_device
        lq = lq.to(device, self.dtype)

        estimate = self.backbone(lq.to(self.backbone.dtype)).clamp(-1, 1)
        if backbone_only:
            return estimate.float()
        lq_latent = self.encode(lq) if self.config.condition or start_from == "lq" else None
        if start_from == "backbone":
            z_start = self.encode(estimate)
        elif start_from == "lq":
            z_start = lq_latent
        else:  # only the shape matters: the chain starts from pure noise
            z_start = torch.zeros(lq.shape[0], *self.latent_shape, device=device)

        cond = None
        if self.config.condition:
            cond = lq_latent if condition in (None, True) else torch.zeros_like(lq_latent)
        eps_model = unet_eps_model(self.unet, cond, cfg_scale)
        identity_guidance = self._guidance(lq, estimate, z_start, guidance, mask, guidance_every, guidance_range,
                                           guidance_schedule, guidance_target)
        pure_noise = start_from == "noise"
        if pure_noise:
            start_t = self.scheduler.config.num_train_timesteps - 1
        z0 = difface_sample(eps_model, z_start, self.scheduler, start_t=int(start_t), steps=int(steps),
                            sampler=sampler, eta=eta, generator=generator, pure_noise=pure_noise,
                            guidance=identity_guidance)
        restored = self.decode(z0)
        if color_fix != "none":
            restored = COLOR_FIX_FUNCTIONS[color_fix](restored, estimate.float(), self.color_fix_levels)
        return restored.clamp(-1, 1)

    @property
    def color_fix_levels(self) -> int:
        """Wavelet levels of the colour fix: the colour layer spans about 1/8 of the face at any resolution."""
        return max(1, int(self.config.resolution).bit_length() - 4)
