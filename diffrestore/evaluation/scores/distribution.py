"""Distribution distances of the restored set to a reference set: FD-VQ (a VQGAN encoder's latents),
FD-EffNet (EfficientNet-Lite0 features) and standard FID (pytorch-fid's Inception-v3, only where its
weights are already on the machine)."""

from __future__ import annotations

from .. import metrics as M
from ..features import extract_features, resolve_vq
from ..registry import Metric, register_metric


def frechet(name: str, make_extractor):
    def compute(scoring) -> None:
        extractor = make_extractor(scoring)
        restored = extract_features(extractor, scoring.files.paths("restored"), scoring.size)
        reference = extract_features(extractor, scoring.reference_paths(), scoring.size, scoring.cache)
        scoring.distribution[name] = M.frechet_distance_of(restored, reference)
        scoring.protocol.setdefault("distribution_features", {})[name] = (
            f"Fréchet distance of {extractor.description} features")

    return compute


register_metric(Metric(
    "fd-vq", ("FD-VQ",), "lower", "Fréchet distance of VQGAN encoder latents to the reference set's",
    needs=("reference", "vq"), distribution=True,
    per_set=frechet("FD-VQ", lambda scoring: resolve_vq(scoring.vq_model, scoring.device))))

register_metric(Metric(
    "fd-effnet", ("FD-EffNet",), "lower",
    "Fréchet distance of EfficientNet-Lite0 pooled features to the reference set's (an offline stand-in for FID)",
    needs=("reference",), distribution=True, optional=True, unavailable=lambda scoring: M.effnet_unavailable_reason(),
    per_set=frechet("FD-EffNet", lambda scoring: M.effnet_feature_extractor(scoring.device))))

register_metric(Metric(
    "fid", ("FID",), "lower", "FID: Fréchet distance of Inception-v3 pool features to the reference set's",
    needs=("reference",), distribution=True, optional=True, unavailable=lambda scoring: M.fid_unavailable_reason(),
    per_set=frechet("FID", lambda scoring: M.inception_feature_extractor(scoring.device))))
