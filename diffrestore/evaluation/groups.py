"""Per-group summaries from UTKFace's labels in file names (``AGE_GENDER_RACE_DATE``)."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Sequence

from .metrics import summarize

GROUPINGS = ("utkface",)
GENDERS = {0: "male", 1: "female"}
RACES = {0: "White", 1: "Black", 2: "Asian", 3: "Indian", 4: "Others"}
AGE_BINS = ((0, 2), (3, 9), (10, 19), (20, 29), (30, 39), (40, 49), (50, 59), (60, 69), (70, 200))
ATTRIBUTES = ("gender", "race", "age")
_NUMBER = re.compile(r"^\d+$")


def age_bin(age: int) -> str:
    for low, high in AGE_BINS:
        if low <= age <= high:
            return f"{low}+" if high >= 200 else f"{low}-{high}"
    return "unknown"


def utkface_labels(stem: str) -> dict[str, str]:
    """UTKFace labels from a name ``AGE_GENDER_RACE_DATE`` (gender 0 male, 1 female; race 0 White,
    1 Black, 2 Asian, 3 Indian, 4 Others). Missing or malformed fields are ``"unknown"`` (a few
    UTKFace names lack the race field: ``AGE_GENDER_DATE``)."""
    parts = stem.split("_")
    labels = {"age": "unknown", "gender": "unknown", "race": "unknown"}
    if parts and _NUMBER.match(parts[0]):
        labels["age"] = age_bin(int(parts[0]))
    if len(parts) > 1 and parts[1] in ("0", "1"):
        labels["gender"] = GENDERS[int(parts[1])]
    if len(parts) > 3 and _NUMBER.match(parts[2]) and int(parts[2]) in RACES:
        labels["race"] = RACES[int(parts[2])]
    return labels


def _group_sort_key(label: str) -> tuple:
    head = label.split("-")[0].rstrip("+")
    return (0, int(head), label) if head.isdigit() else (1, 0, label)


def group_summaries(rows: Sequence[dict[str, Any]], columns: Sequence[str],
                    grouping: str = "utkface") -> dict[str, dict[str, dict[str, Any]]]:
    """Per-group means of ``columns`` over ``rows`` (each with a ``file`` stem), one table per
    attribute: ``{"gender": {"male": {"n": 12, "psnr_y": ...}, ...}, "race": ..., "age": ...}``."""
    if grouping not in GROUPINGS:
        raise ValueError(f"unknown grouping {grouping!r}; choose one of {GROUPINGS}")
    buckets: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        for attribute, label in utkface_labels(row["file"]).items():
            buckets[attribute][label].append(row)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for attribute in ATTRIBUTES:
        table = {}
        for label in sorted(buckets[attribute], key=_group_sort_key):
            members = buckets[attribute][label]
            entry: dict[str, Any] = {"n": len(members)}
            for col in columns:
                entry[col] = summarize(r.get(col) for r in members)["mean"]
            table[label] = entry
        out[attribute] = table
    return out
