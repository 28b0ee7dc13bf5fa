"""Writing a scored folder: ``per_image.csv``, ``summary.json`` and ``summary.md``."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

from .groups import utkface_labels

RESULT_FILES = ("per_image.csv", "summary.json", "summary.md")
_LABEL_COLUMNS = ("age", "gender", "race")


def format_value(value: Any, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` places, NaN as ``n/a``, None as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(format_value(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats made JSON-valid (NaN -> null, inf -> "inf"), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _protocol_lines(protocol: dict[str, Any]) -> list[str]:
    lines = []
    for key, value in protocol.items():
        if value in (None, {}, []):
            continue
        if isinstance(value, dict):
            value = json.dumps(value, sort_keys=True, ensure_ascii=False)
        lines.append(f"- **{key}**: {value}")
    return lines


def summary_markdown(result: dict[str, Any], title: str = "Evaluation") -> str:
    """The Markdown report of an ``evaluate_folders`` result: protocol, means, distances, groups."""
    parts = [f"# {title}", "", "## Protocol", ""] + _protocol_lines(result["protocol"])
    parts += ["", "## Metrics (mean over images)", ""]
    parts.append(markdown_table(["metric", "mean", "std", "n"],
                                [[c, s["mean"], s["std"], s["n"]] for c, s in result["summary"].items()]))
    if result["distribution"]:
        parts += ["", "## Distribution distances (restored set vs reference set)", ""]
        parts.append(markdown_table(["distance", "value"], result["distribution"].items()))
    if result["skipped"]:
        parts += ["", "## Not computed", ""] + [f"- {reason}" for reason in result["skipped"]]
    if result.get("groups"):
        parts += ["", "## Per group (means)", ""]
        for attribute, table in result["groups"].items():
            header = [attribute, "n"] + list(result["columns"])
            parts += [f"### {attribute}", "",
                      markdown_table(header, [[label, e["n"]] + [e[c] for c in result["columns"]]
                                              for label, e in table.items()]), ""]
    return "\n".join(parts).rstrip() + "\n"


def _write_csv(result: dict[str, Any], path: Path) -> None:
    label_cols = list(_LABEL_COLUMNS) if result.get("groups") else []
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file"] + label_cols + list(result["columns"]))
        for row in result["rows"]:
            labels = utkface_labels(row["file"]) if label_cols else {}
            writer.writerow([row["file"]] + [labels[c] for c in label_cols]
                            + [format_value(row.get(c), 6) for c in result["columns"]])


def write_reports(result: dict[str, Any], out_dir: str | Path, overwrite: bool = False,
                  title: str = "Evaluation") -> dict[str, Path]:
    """Write ``per_image.csv``, ``summary.json`` and ``summary.md`` into ``out_dir``."""
    out_dir = Path(out_dir)
    paths = {name: out_dir / name for name in RESULT_FILES}
    existing = [p for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]}: already exists (pass --overwrite to replace it)")
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(result, paths["per_image.csv"])
    summary = {k: result[k] for k in ("summary", "distribution", "groups", "protocol", "skipped")}
    paths["summary.json"].write_text(json.dumps(json_safe(summary), indent=1) + "\n")
    paths["summary.md"].write_text(summary_markdown(result, title))
    return paths
