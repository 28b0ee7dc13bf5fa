"""Build the pipeline's networks from a model config (``configs/model/*.yaml``).

A model config names each component's constructor arguments; shapes that follow from other
components (the UNet's input channels, the mask's latent shape) are derived here, not configured.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict

import numpy as np
from diffusers import DDPMScheduler, UNet2DModel

from ..config import ConfigError, check_kwargs, plain_dict
from .codec import AUTOENCODER, LatentCodec
from . import IdentityNet, LatentMask, PatchDiscriminator, RestorationNet, SFaceNet

TEMPLATE_DIR = Path(__file__).parents[1] / "templates"


@dataclass
class ModelConfig:
    resolution: int = 128
    template: str = "utkface_128"  # a name in diffrestore/templates/ or a path to a JSON file
    condition: bool = True  # the score model sees E(y) concatenated on the channel axis
    vqgan: Dict[str, Any] = field(default_factory=dict)
    unet: Dict[str, Any] = field(default_factory=dict)
    backbone: Dict[str, Any] = field(default_factory=dict)
    identity: Dict[str, Any] = field(default_factory=dict)
    irn: Dict[str, Any] = field(default_factory=dict)
    mask: Dict[str, Any] = field(default_factory=dict)
    discriminator: Dict[str, Any] = field(default_factory=dict)
    scheduler: Dict[str, Any] = field(default_factory=dict)


def load_template(name_or_path: str, size: int) -> np.ndarray:
    """Five (x, y) landmarks of an alignment template, scaled to ``size`` pixels."""
    path = Path(name_or_path)
    if not path.suffix:
        path = TEMPLATE_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: face template not found")
    data = json.loads(path.read_text())
    return np.asarray(data["landmarks"], dtype=np.float64) * (size / data["size"])


def template_for_size(size: int) -> str:
    """The bundled template drawn at ``size`` px, the framing an aligned face of that size is taken to
    have when none is named: 128 UTKFace's crops, 256 CelebA-HQ's, 512 FFHQ's (real photos, CelebA-Test)."""
    sizes = {path.stem: json.loads(path.read_text())["size"] for path in sorted(TEMPLATE_DIR.glob("*.json"))}
    matches = [name for name, template_size in sizes.items() if template_size == size]
    if len(matches) != 1:
        known = ", ".join(f"{name} ({template_size} px)" for name, template_size in sizes.items())
        raise ValueError(f"the faces are {size} px and no single bundled template is drawn at that size "
                         f"(bundled: {known}); name the faces' template")
    return matches[0]


def latent_shape(cfg: ModelConfig) -> tuple[int, int, int]:
    return LatentCodec.shape_of(cfg.vqgan, cfg.resolution)


def build_vqgan(cfg: ModelConfig) -> AUTOENCODER:
    return AUTOENCODER(**check_kwargs(AUTOENCODER, cfg.vqgan, "model.vqgan"), sample_size=cfg.resolution)


def build_unet(cfg: ModelConfig) -> UNet2DModel:
    channels, height, _ = latent_shape(cfg)
    kwargs = check_kwargs(UNet2DModel, cfg.unet, "model.unet")
    return UNet2DModel(**kwargs, sample_size=height, in_channels=channels * (2 if cfg.condition else 1),
                       out_channels=channels)


def build_backbone(cfg: ModelConfig) -> RestorationNet:
    return RestorationNet(**check_kwargs(RestorationNet, cfg.backbone, "model.backbone"))


def build_identity(cfg: ModelConfig) -> IdentityNet:
    return IdentityNet(**check_kwargs(IdentityNet, cfg.identity, "model.identity"))


IRN_ARCHITECTURES = ("compact", "sface")


def build_irn(cfg: ModelConfig) -> IdentityNet | SFaceNet:
    """``model.irn.architecture``: ``compact`` (an ``IdentityNet``, the rest of the section its arguments)
    or ``sface`` (SFace's network behind the warp from the model's template; random until its stage
    loads SFace's weights). Model configs merge over the stage configs' 128 px model, so an ``sface``
    section may still hold the compact network's arguments: those are ignored, any other key refused."""
    kwargs = plain_dict(cfg.irn)
    architecture = kwargs.pop("architecture", "compact")
    if architecture == "sface":
        net = SFaceNet.for_template(load_template(cfg.template, cfg.resolution))
        compact_only = set(inspect.signature(IdentityNet).parameters) - set(inspect.signature(SFaceNet).parameters)
        check_kwargs(SFaceNet, {k: v for k, v in kwargs.items() if k not in compact_only}, "model.irn")
        if kwargs.get("embedding_dim", 128) != 128:
            raise ConfigError(f"config key 'model.irn.embedding_dim': {kwargs['embedding_dim']}, but SFace's "
                              "embeddings are 128-dimensional")
        return net
    if architecture != "compact":
        raise ConfigError(f"config key 'model.irn.architecture': {architecture!r}, not one of {IRN_ARCHITECTURES}")
    return IdentityNet(**check_kwargs(IdentityNet, kwargs, "model.irn"))


def build_mask(cfg: ModelConfig) -> LatentMask:
    channels, height, width = latent_shape(cfg)
    return LatentMask(**check_kwargs(LatentMask, cfg.mask, "model.mask"), channels=channels, height=height,
                      width=width)


def build_discriminator(cfg: ModelConfig) -> PatchDiscriminator:
    return PatchDiscriminator(**check_kwargs(PatchDiscriminator, cfg.discriminator, "model.discriminator"))


def build_scheduler(cfg: ModelConfig) -> DDPMScheduler:
    return DDPMScheduler(**check_kwargs(DDPMScheduler, cfg.scheduler, "model.scheduler"))
