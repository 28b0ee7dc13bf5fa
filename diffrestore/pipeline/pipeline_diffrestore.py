"""The restoration pipeline: a ``diffusers.DiffusionPipeline`` holding every network, saved and loaded
as one folder (``save_pretrained`` / ``DiffRestorePipeline.from_pretrained``).

Components: ``vqgan`` (VQModel), ``unet`` (UNet2DModel), ``scheduler`` (its class is the update rule
the sampler steps with, its config the TRAINING noise schedule; swap it the diffusers way,
``pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)``; ``sampling.SCHEDULERS``
lists the supported classes), ``backbone`` (RestorationNet) and the optional ``identity`` (phi),
``irn`` (identity recovery network) and ``mask`` (LatentMask).

How our own classes come back from ``model_index.json``: diffusers records a non-diffusers class as
(defining module, class name), e.g. ``["diffrestore.models.backbone", "RestorationNet"]``; loading
imports that module, takes the class from it and finds its load method by looking up the base
classes it knows (``ModelMixin``) in the same module. So the classes must stay importable from the
module that defined them (they are also exported from ``diffrestore`` for users). A missing optional
component is recorded as ``[null, null]`` and comes back as ``None``. Weights are stored as the
components' dtype (``diffrestore-assemble`` writes fp16) and load as float32 unless ``dtype=`` is given.

``pipe(image)`` restores aligned faces with the default settings (``diffrestore.options``); it only
converts images (``pipeline.processing``) and composes the steps below; ``options.sampler`` names the
sampler (``diffrestore.sampling.SAMPLERS``) that runs the chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from diffusers import DDIMScheduler, DiffusionPipeline, UNet2DModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from PIL import Image
from torch import Tensor

from ..sampling import SAMPLERS, IdentityGuidance, StepCallback, respaced_timesteps, unet_eps_model

from ..models.builders import (ModelConfig, build_backbone, build_identity, build_irn, build_mask, build_scheduler,
                               build_unet, build_vqgan, load_template)
from .checksums import verify_checksums
from .colorfix import COLOR_FIX_FUNCTIONS
from ..config import load_config
from ..models.codec import AUTOENCODER, LatentCodec
from ..models import IdentityNet, LatentMask, RestorationNet, SFaceNet
from .options import COMPILE_MODES, SamplingOptions, check_choice, with_settings
from .processing import OUTPUT_TYPES, ImageInput, from_face_batch, to_face_batch

PRETRAINED = Path(__file__).parents[1] / "pretrained"
BUNDLED_MODEL = PRETRAINED / "celebahq256"


def bundled_models() -> list[str]:
    """The names of the models shipped in ``diffrestore/pretrained`` (``--model NAME``)."""
    if not PRETRAINED.is_dir():  # an install without the package data: only --model FOLDER works
        return []
    return sorted(p.name for p in PRETRAINED.iterdir() if (p / "model_index.json").is_file())


def model_folder(model: str | Path | None) -> Path:
    """Where ``model`` lives: None is the bundled default; the name of a bundled model (a folder of
    ``diffrestore/pretrained``, e.g. ``utkface128``) is that folder unless a path of that name exists;
    anything else is a path."""
    if not model:
        return BUNDLED_MODEL
    path = Path(model)
    if not path.exists() and len(path.parts) == 1 and (PRETRAINED / path.name / "model_index.json").is_file():
        return PRETRAINED / path.name
    return path

StepEndCallback = Callable[["DiffRestorePipeline", int, int, dict], dict]
"""diffusers' ``callback_on_step_end(pipe, step, timestep, {"latents": z, "denoised": x0})``; a ``latents``
entry in the dict it returns replaces the latents."""


@dataclass
class ModelFile:
    """Schema of a model config file (``configs/model/*.yaml``): everything under ``model:``."""

    model: ModelConfig = field(default_factory=ModelConfig)


def load_model_config(path: str | Path, overrides: Sequence[str] = ()) -> ModelConfig:
    """Read a model config file (strictly checked) into a ``ModelConfig``."""
    cfg = load_config(path, ModelFile, overrides)
    return ModelConfig(**{key: cfg.model[key] for key in cfg.model})


@dataclass
class DiffRestorePipelineOutput(BaseOutput):
    """``images``: the restored faces, as ``output_type`` asked (a list of PIL images, an array or a tensor)."""

    images: Union[list[Image.Image], np.ndarray, Tensor]


class DiffRestorePipeline(DiffusionPipeline):
    """Blind face restoration: backbone estimate -> DifFace transition at ``start_t`` -> (conditional)
    latent refinement with masked identity guidance -> VQGAN decoder -> colour fix.

    Config: ``resolution`` (aligned face size in pixels), ``template`` (five [x, y] landmarks at that
    resolution: the framing the model expects) and ``condition`` (the UNet sees E(y) concatenated).
    """

    _optional_components = ["identity", "irn", "mask"]

    def __init__(
        self,
        vqgan: AUTOENCODER,
        unet: UNet2DModel,
        scheduler: SchedulerMixin,
        backbone: RestorationNet,
        identity: Optional[IdentityNet] = None,
        irn: Optional[IdentityNet | SFaceNet] = None,
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
        latent_channels = LatentCodec(vqgan).latent_shape(resolution)[0]
        expected_in = latent_channels * (2 if condition else 1)
        if unet.config.in_channels != expected_in:
            raise ValueError(f"unet has {unet.config.in_channels} input channels; condition={condition} with "
                             f"{latent_channels} latent channels needs {expected_in}")
        self.register_modules(vqgan=vqgan, unet=unet, scheduler=scheduler, backbone=backbone, identity=identity,
                              irn=irn, mask=mask)
        self.register_to_config(resolution=int(resolution), template=template, condition=bool(condition))

    # ----------------------------------------------------------------------------------------------
    # construction: from parts (one way), from a folder (one way)

    @classmethod
    def from_parts(cls, cfg: ModelConfig, **parts: Optional[torch.nn.Module]) -> "DiffRestorePipeline":
        """A pipeline of the networks ``parts`` (vqgan, unet, backbone[, identity, irn, mask]) trained
        with the model config ``cfg``, which gives the scheduler (DDIM on the training schedule), the
        resolution, the face template and the conditioning flag."""
        scheduler = DDIMScheduler.from_config(build_scheduler(cfg).config)
        template = load_template(cfg.template, cfg.resolution).tolist()
        return cls(**parts, scheduler=scheduler, resolution=cfg.resolution, template=template, condition=cfg.condition)

    @classmethod
    def from_model_config(cls, cfg: ModelConfig | str | Path, with_identity: bool = True,
                          seed: Optional[int] = 0) -> "DiffRestorePipeline":
        """A pipeline with freshly initialised (random) weights, for tests and benchmarks.
        ``cfg`` is a ``ModelConfig`` or the path of a model config file."""
        if not isinstance(cfg, ModelConfig):
            cfg = load_model_config(cfg)
        if seed is not None:
            torch.manual_seed(seed)
        parts = dict(vqgan=build_vqgan(cfg), unet=build_unet(cfg), backbone=build_backbone(cfg))
        if with_identity:
            parts.update(identity=build_identity(cfg), irn=build_irn(cfg), mask=build_mask(cfg))
        return cls.from_parts(cfg, **{name: part.eval() for name, part in parts.items()})

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path | None = None,
                        **kwargs: Any) -> "DiffRestorePipeline":
        """Load a pipeline folder (``None``: the bundled model); ``dtype=`` casts (default float32).
        A folder that is not a pipeline is refused, naming it and saying how to make one; weights that
        differ from the folder's ``checksums.json`` (if it has one) raise ``ChecksumError`` naming the file."""
        path = model_folder(pretrained_model_name_or_path)
        if not (path / "model_index.json").is_file():
            hint = ""
            if not pretrained_model_name_or_path:
                hint = (" The bundled model is not there yet: train the stages (train.py) and put them together "
                        "with `diffrestore-assemble --vqgan DIR --unet DIR --backbone DIR [--identity DIR --irn DIR "
                        f"--mask DIR] --model-config configs/model/celebahq256.yaml --out {BUNDLED_MODEL}`, "
                        "or pass --model DIR (model=DIR) naming a pipeline folder.")
            raise FileNotFoundError(f"{path}: not a pipeline folder (no model_index.json).{hint}")
        verify_checksums(path)
        return super().from_pretrained(str(path), **kwargs)

    def with_components(self, **parts: Any) -> "DiffRestorePipeline":
        """A new pipeline sharing this one's components but ``parts`` (e.g. ``unet=...``); the
        conditioning flag follows the UNet's input channels."""
        components = {**self.components, **parts}
        condition = components["unet"].config.in_channels == 2 * self.latent_shape[0]
        return type(self)(**components, resolution=self.config.resolution, template=self.config.template,
                          condition=condition)

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
            check_choice("compile_mode", compile_mode, COMPILE_MODES)
            self.unet.compile(mode=compile_mode)
        return self

    # ----------------------------------------------------------------------------------------------
    # latents

    # The UNet's first parameter stands for where and how every model runs. diffusers' own properties walk
    # every module (looking for offloading hooks, which this pipeline does not use): milliseconds per call,
    # which a one-face restoration pays several times.
    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def _execution_device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def codec(self) -> LatentCodec:
        return LatentCodec(self.vqgan)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return self.codec.latent_shape(self.config.resolution)

    def encode(self, images: Tensor) -> Tensor:
        """Images in [-1, 1] -> scaled continuous latents (``models.codec``)."""
        return self.codec.encode(images)

    def decode(self, latents: Tensor, quantize: bool = True) -> Tensor:
        """Scaled latents -> images (float32, not clamped); ``quantize=False`` keeps it differentiable."""
        return self.codec.decode(latents, quantize)

    # ----------------------------------------------------------------------------------------------
    # the call

    @torch.no_grad()
    def __call__(
        self,
        image: ImageInput,
        options: Optional[SamplingOptions] = None,
        *,
        generator: Optional[torch.Generator | list[torch.Generator]] = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Optional[StepEndCallback] = None,
        **settings: Any,
    ) -> DiffRestorePipelineOutput | tuple:
        """Restore aligned faces: ``image`` is a PIL image, a numpy array or a tensor, or a list of
        them (``diffrestore.processing``); each is resized to the model's resolution.

        The sampling settings are the fields of ``SamplingOptions`` (defaults: the default preset),
        given as ``options`` and/or keyword arguments (``pipe(face, steps=20, guidance=0)``).
        ``generator``: one, or one per face. ``output_type``: ``pil``, ``np`` ([0, 1]) or ``pt``
        ([-1, 1]). Returns ``DiffRestorePipelineOutput(images)``, or ``(images,)`` without ``return_dict``.
        """
        options = with_settings(options, settings)
        check_choice("output_type", output_type, OUTPUT_TYPES)
        lq = to_face_batch(image, self.config.resolution).to(self._execution_device, self.dtype)
        restored = self.restore(lq, options, generator, self._step_callback(callback_on_step_end))
        images = from_face_batch(restored, output_type)
        return DiffRestorePipelineOutput(images=images) if return_dict else (images,)

    def restore(self, lq: Tensor, options: SamplingOptions, generator: Optional[torch.Generator | list] = None,
                callback: Optional[StepCallback] = None) -> Tensor:
        """Aligned faces (B, 3, R, R) in [-1, 1] -> restored faces in [-1, 1]: the steps of the
        method, each a method below (the sweeps' ablations recombine them)."""
        estimate = self.estimate(lq)
        condition = self.encode(lq) if self.config.condition else None
        guidance = self.identity_guidance(lq, estimate, options, self.learned_mask())
        z0 = self.sample_latents(self.encode(estimate), condition, options, generator, guidance, callback=callback)
        return self.finish(z0, estimate, options)

    def estimate(self, lq: Tensor) -> Tensor:
        """The L2 backbone's estimate f(y), clamped to [-1, 1]."""
        return self.backbone(lq.to(self.backbone.dtype)).clamp(-1, 1).float()

    def learned_mask(self) -> Optional[Tensor]:
        """The LatentMask's values (1, C, h, w), or None when the pipeline has none."""
        return None if self.mask is None else self.mask().float().to(self._execution_device)

    def guidance_network(self, name: str) -> torch.nn.Module:
        """The identity network guidance descends: ``phi`` (the pipeline's) or ``sface`` (SFace in torch,
        built at first use behind the warp from this model's template)."""
        if name == "phi":
            if self.identity is None:
                raise ValueError("guidance_network=phi needs an identity network; this pipeline has none "
                                 "(use guidance=0 or guidance_network=sface)")
            return self.identity
        if getattr(self, "_sface", None) is None:
            self._sface = SFaceNet.frozen_sface(np.asarray(self.config.template)).to(self._execution_device)
        return self._sface

    def check_irn_network(self, network: str) -> None:
        """Refuse guidance through ``network`` towards an IRN that predicts another network's embedding: an
        IRN on SFace's network (``SFaceNet``) predicts SFace's, an ``IdentityNet`` IRN phi's."""
        predicts = "sface" if isinstance(self.irn, SFaceNet) else "phi"
        if network != predicts:
            raise ValueError(f"guidance_target=irn with guidance_network={network}: this pipeline's IRN predicts "
                             f"{predicts}'s embedding (use guidance_network={predicts}, or guidance_target=backbone)")

    def identity_guidance(self, lq: Tensor, estimate: Tensor, options: SamplingOptions,
                          mask: Optional[Tensor]) -> Optional[IdentityGuidance]:
        """Masked identity guidance towards ``options.guidance_target`` (None when ``guidance`` is 0)."""
        if options.guidance == 0:
            return None
        identity = self.guidance_network(options.guidance_network)
        if mask is None:
            raise ValueError(f"guidance={options.guidance} needs a learned latent mask; this pipeline has none "
                             "(use guidance=0, or mask=full in the sweeps)")
        # IRN(y) predicts the HQ face's embedding; the network's embedding of f(y) is the alternative (and the
        # fallback without an IRN). An IRN predicts the embedding of the network it was trained on.
        if options.guidance_target == "irn" and self.irn is not None:
            self.check_irn_network(options.guidance_network)
            target = self.irn(lq.to(self.irn.dtype))
        else:
            target = identity(estimate.to(next(identity.parameters()).dtype))

        def embed(images: Tensor) -> Tensor:
            return identity(images.to(next(identity.parameters()).dtype)).float()

        low, high = options.guidance_range
        return IdentityGuidance(decode=lambda z: self.decode(z, quantize=False), embed=embed,
                                target=target.float().detach(), mask=mask, scale=float(options.guidance),
                                every=int(options.guidance_every), range=(float(low), float(high)),
                                schedule=options.guidance_schedule)

    def sample_latents(self, z_start: Tensor, condition: Optional[Tensor], options: SamplingOptions,
                       generator: Optional[torch.Generator | list] = None, guidance: Optional[IdentityGuidance] = None,
                       callback: Optional[StepCallback] = None) -> Tensor:
        """The sampler ``options.sampler`` with ``self.scheduler`` over ``options.steps`` steps from
        ``options.start_t``, from ``z_start``, conditioned on ``condition``."""
        timesteps = respaced_timesteps(int(options.start_t), int(options.steps),
                                       self.scheduler.config.num_train_timesteps)
        eps_model = unet_eps_model(self.unet, condition, options.cfg_scale)
        with self.progress_bar(total=len(timesteps)) as bar:
            def on_step(info: dict) -> Optional[Tensor]:
                bar.update()
                return callback(info) if callback is not None else None

            return SAMPLERS[options.sampler](eps_model, z_start, self.scheduler, timesteps, generator=generator,
                                             callback=on_step, eta=options.eta, guidance=guidance)

    def finish(self, z0: Tensor, estimate: Tensor, options: SamplingOptions, quantize: bool = True) -> Tensor:
        """Decode z_0 (through the codebook unless ``quantize=False``), fix its colours against the backbone
        estimate, clamp to [-1, 1]."""
        restored = self.decode(z0, quantize)
        if options.color_fix != "none":
            restored = COLOR_FIX_FUNCTIONS[options.color_fix](restored, estimate, self.color_fix_levels)
        return restored.clamp(-1, 1)

    def _step_callback(self, callback_on_step_end: Optional[StepEndCallback]) -> Optional[StepCallback]:
        if callback_on_step_end is None:
            return None

        def callback(info: dict) -> Optional[Tensor]:
            tensors = {"latents": info["x"], "denoised": info["denoised"]}
            returned = callback_on_step_end(self, info["i"], info["t"], tensors) or {}
            return returned.get("latents")

        return callback

    @property
    def color_fix_levels(self) -> int:
        """Wavelet levels of the colour fix: the colour layer spans about 1/8 of the face at any resolution."""
        return max(1, int(self.config.resolution).bit_length() - 4)
