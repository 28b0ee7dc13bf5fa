"""The metrics of ``diffrestore-eval``, registered by family (``evaluation.registry``): the order of
these imports is the order of the report's columns."""

from . import pixel, identity, dlib, niqe, distribution  # noqa: F401,I001  (each registers its metrics)
from ..registry import METRICS

IDENTITY_METRICS = tuple(name for name, metric in METRICS.items() if metric.identity)
"""The metrics that need the identity network (``identity=``)."""
DLIB_METRICS = tuple(name for name, metric in METRICS.items() if metric.name in ("lmd", "dlib", "dlib_lq"))
