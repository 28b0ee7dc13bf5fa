"""Identity: the cosine (IDS) and angle (Deg) of identity embeddings, restored against GT or LQ, and the
Fréchet distance of the restored set's embeddings to a reference set's (FD-<network>)."""

from __future__ import annotations

import torch

from .. import metrics as M
from ..features import extract_features
from ..registry import Metric, register_metric


def embeddings(scoring, which: str) -> torch.Tensor:
    """The identity embeddings of the restored faces or of their partners (resized to the restored size:
    aligned faces keep their framing when scaled)."""
    evaluator = scoring.identity_evaluator()
    cache = None if which == "restored" else scoring.cache
    return scoring.once(f"embeddings:{which}", lambda: extract_features(
        evaluator, scoring.files.paths(which), scoring.size, cache))


def per_face(column: str, which: str, measure):
    def compute(scoring) -> None:
        values = measure(embeddings(scoring, "restored"), embeddings(scoring, which)).tolist()
        for row, value in zip(scoring.rows, values):
            row[column] = value

    return compute


def frechet(scoring) -> None:
    evaluator = scoring.identity_evaluator()
    name = f"FD-{evaluator.name}"
    reference = extract_features(evaluator, scoring.reference_paths(), scoring.size, scoring.cache)
    scoring.distribution[name] = M.frechet_distance_of(embeddings(scoring, "restored"), reference)
    scoring.protocol.setdefault("distribution_features", {})[name] = f"Fréchet distance of {evaluator.description} embeddings"


DEGREES = "angle between embeddings in degrees (arccos of IDS)"
for suffix, which, partner in (("", "gt", "the GT"), ("_lq", "lq", "the LQ input")):
    register_metric(Metric(f"ids{suffix}", (f"ids{suffix}",), "higher",
                           f"cosine of the identity embeddings of the restored face and {partner}", needs=(which,),
                           identity=True, per_set=per_face(f"ids{suffix}", which, M.identity_cosine)))
    register_metric(Metric(f"deg{suffix}", (f"deg{suffix}",), "lower", f"{DEGREES}, against {partner}",
                           needs=(which,), identity=True,
                           per_set=per_face(f"deg{suffix}", which, M.identity_degrees)))

register_metric(Metric(
    "fd-identity", ("FD-<network>",), "lower", "Fréchet distance of the identity embeddings to the reference set's",
    needs=("reference",), identity=True, distribution=True, per_set=frechet))
