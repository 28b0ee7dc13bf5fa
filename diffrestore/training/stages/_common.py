"""Pieces every stage uses: loss-config validation, datasets, frozen components, fp16 export, grids."""

from __future__ import annotations

import copy
from dataclasses import field, make_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F
from diffusers import UNet2DModel
from omegaconf import DictConfig
from torch import Tensor, nn
from torchvision.utils import make_grid

from ...models.builders import ModelConfig, latent_shape, load_template
from ...models.codec import AUTOENCODER, LatentCodec, load_autoencoder
from ...config import ConfigError, merge_config
from ...data.datasets import HQFaceDataset, PairedFaceDataset
from ...measures import hub_checkpoint
from ...models import FacenetIdentity, IdentityNet, RestorationNet, SFaceNet, load_identity_folder

if TYPE_CHECKING:
    from ..schema import TrainConfig

FACENET_VGGFACE2_FILE = "20180402-114759-vggface2.pt"


def loss_config(schema: type, cfg: TrainConfig) -> DictConfig:
    """``cfg.loss`` checked against the stage's schema: an unknown key or a wrong type is an error that
    names it in full (``config key 'loss.step_sise'``)."""
    wrapper = make_dataclass(f"{schema.__name__}Section", [("loss", schema, field(default_factory=schema))])
    return merge_config(wrapper, {"loss": cfg.loss}, source=f"stage {cfg.stage}").loss


def hq_dataset(cfg: TrainConfig, root: str, flip: bool | None = None) -> HQFaceDataset:
    return HQFaceDataset(root, cfg.model.resolution, flip=cfg.data.flip if flip is None else flip, seed=cfg.seed)


def paired_dataset(cfg: TrainConfig, root: str, flip: bool | None = None) -> PairedFaceDataset:
    return PairedFaceDataset(root, cfg.model.resolution, cfg.data.degradation, seed=cfg.seed,
                             flip=cfg.data.flip if flip is None else flip)


def paired_val_dataset(cfg: TrainConfig) -> PairedFaceDataset | None:
    """Fixed (unflipped, seeded) pairs of ``data.val_dir`` for the sample grids."""
    return paired_dataset(cfg, cfg.data.val_dir, flip=False) if cfg.data.val_dir else None


def pretrained_path(cfg: TrainConfig, name: str) -> str:
    """The folder ``pretrained.<name>``; an error naming the key when it is unset or missing."""
    path = getattr(cfg.pretrained, name)
    if not path:
        raise ConfigError(f"config key 'pretrained.{name}': the {cfg.stage} stage needs a trained {name} "
                          f"(the folder its stage exported)")
    if not (Path(path) / "config.json").is_file():
        raise ConfigError(f"config key 'pretrained.{name}': {path}: not a saved model folder (no config.json)")
    return str(path)


def load_vqgan(cfg: TrainConfig) -> AUTOENCODER:
    """The frozen VQGAN of ``pretrained.vqgan``, checked against the model config's latent shape."""
    path = pretrained_path(cfg, "vqgan")
    vqgan = load_autoencoder(path, torch_dtype=torch.float32)
    expected, got = latent_shape(cfg.model), LatentCodec(vqgan).latent_shape(cfg.model.resolution)
    if got != expected:
        raise ConfigError(f"config key 'pretrained.vqgan': {path} gives latents of shape {got} at "
                          f"{cfg.model.resolution} px; the model config expects {expected}")
    return vqgan


def load_backbone(cfg: TrainConfig) -> nn.Module:
    return RestorationNet.from_pretrained(pretrained_path(cfg, "backbone"), torch_dtype=torch.float32)


def load_unet(cfg: TrainConfig) -> UNet2DModel:
    return UNet2DModel.from_pretrained(pretrained_path(cfg, "unet"), torch_dtype=torch.float32)


def load_irn(cfg: TrainConfig) -> nn.Module:
    return load_identity_folder(pretrained_path(cfg, "irn"), torch_dtype=torch.float32)


def load_identity_network(spec: str, model_cfg: ModelConfig) -> nn.Module:
    """The frozen identity network phi named by ``pretrained.identity``:

    - a folder saved by the identity stage (``IdentityNet``),
    - ``sface``: OpenCV Zoo's SFace in torch (``diffrestore.perception``; the ``perception`` extra), or
    - ``facenet`` / ``facenet:WEIGHTS.pt``: facenet-pytorch's InceptionResnetV1 with its published
      vggface2 weights, from the torch hub cache or the given state-dict file (never downloaded here).
    """
    if spec == "sface":
        return load_sface_identity(model_cfg)
    if spec == "facenet" or spec.startswith("facenet:"):
        weights = Path(spec.split(":", 1)[1]) if ":" in spec else hub_checkpoint(FACENET_VGGFACE2_FILE)
        if not weights.is_file():
            raise ConfigError(f"config key 'pretrained.identity': {weights}: facenet vggface2 weights not found "
                              "(they are not downloaded at training time; pass facenet:/path/to/weights.pt)")
        template = load_template(model_cfg.template, model_cfg.resolution)
        return FacenetIdentity(template, model_cfg.resolution, weights_path=str(weights))
    if not (Path(spec) / "config.json").is_file():
        raise ConfigError(f"config key 'pretrained.identity': {spec}: neither an IdentityNet folder nor "
                          "'sface' nor 'facenet[:weights.pt]'")
    return IdentityNet.from_pretrained(spec, torch_dtype=torch.float32)


def load_sface_identity(model_cfg: ModelConfig) -> nn.Module:
    """SFace in torch behind the warp from the model's template; a ConfigError where it cannot load."""
    try:
        return SFaceNet.frozen_sface(load_template(model_cfg.template, model_cfg.resolution))
    except ImportError as err:
        raise ConfigError(f"SFace asked for (pretrained.identity=sface or loss.identity_weight), but {err}") from None


def check_embedding_dims(irn_dim: int, identity: nn.Module, model_cfg: ModelConfig) -> None:
    """The IRN predicts phi's embeddings: their dimensions must agree (facenet's are 512)."""
    size = model_cfg.resolution
    with torch.no_grad():
        identity_dim = identity.eval()(torch.zeros(1, 3, size, size)).shape[-1]
    if irn_dim != identity_dim:
        raise ConfigError(f"config key 'model.irn.embedding_dim': {irn_dim}, but the identity network "
                          f"(pretrained.identity) gives {identity_dim}-dimensional embeddings; set it to match")


def require_identity(cfg: TrainConfig) -> str:
    spec = cfg.pretrained.identity
    if not spec:
        raise ConfigError(f"config key 'pretrained.identity': the {cfg.stage} stage needs an identity network "
                          "(sface, the identity stage's export, or facenet[:weights.pt])")
    return spec


def save_fp16(model: nn.Module, folder: Path) -> None:
    """``save_pretrained`` of a half-precision copy (the trained model itself is left as it is)."""
    copy.deepcopy(model).half().save_pretrained(folder, safe_serialization=True, max_shard_size="15MB")


def image_rows(rows: Sequence[Tensor], max_images: int = 8) -> Tensor:
    """Rows of image batches (each (B, 3, H, W) in [-1, 1]) as one (3, H', W') grid."""
    n = min(max_images, rows[0].shape[0])
    images = torch.cat([r[:n].float().clamp(-1, 1).cpu() for r in rows])
    return make_grid(images, nrow=n, padding=2, pad_value=-1.0)


def similarity_panel(a: Tensor, b: Tensor, width: int) -> Tensor:
    """Cosine similarities of embeddings ``a`` (rows) and ``b`` (columns) as a grey (3, width, width)
    image in [-1, 1]; a bright diagonal means each face is recognised as itself."""
    sim = F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T
    panel = F.interpolate(sim[None, None].cpu(), size=(width, width), mode="nearest")[0]
    return panel.expand(3, width, width)
