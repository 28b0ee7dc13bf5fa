"""The metric registry: one record per metric, and the choice of metrics for one evaluation.

A record says what a metric needs (``gt``, ``lq``, ``reference``: a reference set, ``vq``: a VQGAN),
how to tell whether it can run here (``unavailable``: packages, weights, image size), how to compute it
(``per_image`` on each restored face and its partners, or ``per_set`` on the whole folder), the columns it
writes, its direction and a description for the reports. Adding a metric is one ``register_metric`` record
in a module of ``evaluation/scores/``, plus its test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from torch import Tensor

from ..measures import COLOR_SPACES
from .context import Scoring

NEEDS = {"gt": "needs --gt", "lq": "needs --lq", "reference": "needs a reference set (--reference or --gt)",
         "vq": "needs a VQGAN (--vq-model)"}
DIRECTIONS = ("higher", "lower", "neither")


@dataclass
class Faces:
    """One restored face and its partners (``None`` where the folder or no chosen metric wants it)."""

    stem: str
    restored: Tensor
    gt: Optional[Tensor] = None
    lq: Optional[Tensor] = None


@dataclass(frozen=True)
class Metric:
    name: str  # as asked for in ``metrics=`` / ``--metrics``
    columns: tuple[str, ...]  # per-image columns (``{color}`` is the colour space) or distribution names
    direction: str  # which way is better: higher | lower | neither (a diagnostic)
    description: str
    needs: tuple[str, ...] = ()  # of NEEDS
    per_image: Optional[Callable[[Faces, Scoring], dict[str, float]]] = None
    per_set: Optional[Callable[[Scoring], None]] = None  # adds to scoring.rows or scoring.distribution
    reads: tuple[str, ...] = ("restored",)  # the images ``per_image`` is given: restored, gt, lq
    unavailable: Callable[[Scoring], Optional[str]] = lambda scoring: None
    optional: bool = False  # its reason is reported even when it was not asked for (weights, packages)
    default: bool = True  # computed when no metrics are named and its needs are met
    identity: bool = False  # scored with the identity network (``identity=``)
    distribution: bool = False  # ``columns`` name entries of ``scoring.distribution``, not per-image columns
    protocol: Optional[Callable[[Scoring], dict]] = None  # what the report says it was measured under

    def __post_init__(self) -> None:
        if (self.per_image is None) == (self.per_set is None) or (self.distribution and self.per_image):
            raise ValueError(f"metric {self.name}: give one of per_image and per_set (a distribution is per_set)")
        if self.direction not in DIRECTIONS or not set(self.needs) <= set(NEEDS):
            raise ValueError(f"metric {self.name}: direction one of {DIRECTIONS}, needs a subset of {list(NEEDS)}")


METRICS: dict[str, Metric] = {}
DIAGNOSTICS = ("gt_face_found", "faces_found")  # per-image columns that count, listed after the metrics'


def register_metric(metric: Metric) -> Metric:
    if metric.name in METRICS:
        raise ValueError(f"metric {metric.name!r} is registered twice")
    METRICS[metric.name] = metric
    return metric


def column_order() -> list[str]:
    """Every per-image column in the registry's order, the diagnostics last."""
    columns = [c.format(color=space) for m in METRICS.values() if not m.distribution for c in m.columns
               for space in COLOR_SPACES]
    return list(dict.fromkeys(columns)) + list(DIAGNOSTICS)


def check_names(requested: Iterable[str]) -> list[str]:
    wanted = [m.lower() for m in requested]
    unknown = [m for m in wanted if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {tuple(METRICS)}")
    return list(dict.fromkeys(wanted))


def choose(requested: Optional[list[str]], has: set[str], scoring: Scoring) -> tuple[list[str], list[str]]:
    """The metrics to compute, and why the others asked for (or optional ones) are skipped."""
    wanted = requested if requested is not None else [
        name for name, m in METRICS.items() if m.default and set(m.needs) <= has]
    chosen, skipped = [], []
    for name in wanted:
        metric = METRICS[name]
        missing = [need for need in metric.needs if need not in has]
        reason = f"{name} skipped: {NEEDS[missing[0]]}" if missing else metric.unavailable(scoring)
        if reason is None:
            chosen.append(name)
        elif requested is not None or metric.optional:
            skipped.append(reason)
    return chosen, skipped
