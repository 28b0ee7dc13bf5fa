"""Loading faces for scoring and the feature sets behind identity and Fréchet distances."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from . import metrics as M
from ..models.builders import load_template, template_for_size
from ..models.codec import load_autoencoder
from ..io import load_image, pil_to_tensor


def load_face(path: Path, size: tuple[int, int] | None = None) -> torch.Tensor:
    """A (1, 3, H, W) [-1, 1] tensor of the image at ``path``, resized (bicubic) to ``size`` if given."""
    img = load_image(path)
    if size is not None and img.size != size:
        img = img.resize(size, Image.BICUBIC)
    return pil_to_tensor(img).unsqueeze(0)


def resolve_template(template: str | np.ndarray | Sequence | None, face_size: int,
                     template_size: int | None = None) -> tuple[np.ndarray, str]:
    """The 5-point template at ``face_size`` px and a description of it (None: the bundled template of
    that size, ``template_for_size``)."""
    if template is None:
        template = template_for_size(face_size)
    if isinstance(template, (str, Path)):
        return load_template(str(template), face_size), str(template)
    landmarks = np.asarray(template, dtype=np.float64)
    scale = face_size / template_size if template_size else 1.0
    return landmarks * scale, f"landmarks {landmarks.round(2).tolist()} (at {template_size or face_size}px)"


def resolve_vq(vq_model: Any, device: str) -> M.FeatureExtractor:
    """FD-VQ features from a ready extractor, an in-memory VQModel, or a (pipeline or VQModel) folder."""
    if isinstance(vq_model, M.FeatureExtractor):
        return vq_model
    if vq_model is None:
        raise ValueError("fd-vq needs a VQGAN: pass vq_model (a pipeline folder or a VQModel folder)")
    if not isinstance(vq_model, (str, Path)):
        return M.vqgan_feature_extractor(vq_model, source="(in memory)")
    folder = Path(vq_model)
    if (folder / "vqgan" / "config.json").is_file():
        folder = folder / "vqgan"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{vq_model}: neither a VQModel folder nor a pipeline folder with vqgan/")
    return M.vqgan_feature_extractor(load_autoencoder(folder).eval(), device=device,
                                     source=f"of {folder}")


def extract_features(extractor: M.FeatureExtractor, paths: Sequence[Path], size: tuple[int, int],
                     cache: dict | None = None, batch: int = 32) -> torch.Tensor:
    """Features (N, D) of the images at ``paths``, resized to ``size``; ``cache`` (a dict kept by the
    caller across calls) keeps the features of files already seen."""
    # keyed by the extractor object's id too: callers that pass a cache keep their extractors alive
    key = (id(extractor), extractor.description, tuple(str(p) for p in paths), size)
    if cache is not None and key in cache:
        return cache[key]
    chunks = [extractor(torch.cat([load_face(p, size) for p in paths[i:i + batch]]))
              for i in range(0, len(paths), batch)]
    feats = torch.cat(chunks)
    if cache is not None:
        cache[key] = feats
    return feats
