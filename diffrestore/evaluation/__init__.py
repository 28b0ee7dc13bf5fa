"""Scoring restored faces (the public evaluation API; ``diffrestore-eval`` is ``evaluation.cli``).

``evaluate_folders(restored, gt=None, lq=None, **options) -> dict`` scores a restored folder;
``write_reports(result, out_dir)`` writes ``per_image.csv``, ``summary.json`` and ``summary.md``.
Metrics and their protocol: docs/evaluation.md.
"""

from __future__ import annotations

from .dlib_faces import unavailable_reason as dlib_unavailable_reason
from .cli import build_parser, main
from .features import extract_features, load_face
from .groups import AGE_BINS, GENDERS, GROUPINGS, RACES, age_bin, group_summaries, utkface_labels
from .pairing import find_manifest, index_by_stem, manifest_protocol
from .reports import RESULT_FILES, format_value, json_safe, markdown_table, summary_markdown, write_reports
from .scoring import evaluate_folders, ordered_columns
from .registry import METRICS, Metric, register_metric
from .scores import DLIB_METRICS, IDENTITY_METRICS

__all__ = [
    "AGE_BINS", "DLIB_METRICS", "GENDERS", "GROUPINGS", "IDENTITY_METRICS", "METRICS", "Metric", "RACES",
    "RESULT_FILES", "age_bin", "build_parser", "dlib_unavailable_reason", "evaluate_folders", "extract_features", "find_manifest",
    "format_value", "group_summaries", "index_by_stem", "json_safe", "load_face", "main", "manifest_protocol",
    "markdown_table", "ordered_columns", "register_metric", "summary_markdown", "utkface_labels", "write_reports",
]
