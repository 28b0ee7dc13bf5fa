"""A sweep's results: one table (CSV and Markdown with the protocol) and one plot per metric."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from ... import evaluation as E
from .config import TRAIN_PREFIX, Point, show_value

INPUT_COLUMNS = ("lapvar_gt", "lapvar_lq")


def _number(value: Any) -> float:
    """A mean as ``summary.json`` stores it (None for NaN, "inf"/"-inf" strings) back to a float."""
    return float("nan") if value is None else float(value)


def collect(outcomes: list[dict]) -> tuple[list[str], list[str], list[dict]]:
    """(swept keys, metric columns, rows) of the results table."""
    swept = list(dict.fromkeys(k for o in outcomes for k in o["point"].values))
    metric_cols: list[str] = []
    rows = []
    for o in outcomes:
        s = o["summary"]
        row = {"point": o["point"].slug}
        for key in swept:
            row[key] = _resolved(o["point"], key)
        row["n"] = max((m["n"] for m in s["summary"].values()), default=0)
        for col, stats in s["summary"].items():
            if col in INPUT_COLUMNS:  # a property of the inputs, the same at every point
                continue
            row[col] = _number(stats["mean"])
            metric_cols.append(col)
        for name, value in s["distribution"].items():
            row[name] = _number(value)
            metric_cols.append(name)
        row["restore_seconds"] = o["record"].get("restore_seconds")
        rows.append(row)
    return swept, list(dict.fromkeys(metric_cols)), rows


def _resolved(point: Point, key: str) -> Any:
    """A swept key's value at a point: its own, or the base config's where the point leaves it."""
    if key in point.values:
        return point.values[key]
    if key.startswith(TRAIN_PREFIX):
        return None
    value = OmegaConf.select(point.sample, key)
    return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value


def write_results(cfg: DictConfig, outcomes: list[dict], out: Path) -> dict[str, Path]:
    """Write results.csv, results.md and plots/<metric>.png; when the table and the text are what
    is already there and every plot exists, nothing is rewritten."""
    swept, metric_cols, rows = collect(outcomes)
    header = ["point"] + swept + ["n"] + metric_cols + ["restore_seconds"]
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([show_value(row.get(h)) if h in swept else E.format_value(row.get(h), 6) for h in header])
    texts = {out / "results.csv": table.getvalue(),
             out / "results.md": results_markdown(cfg, outcomes, swept, metric_cols, rows)}
    plots = {col: out / "plots" / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', col)}.png" for col in metric_cols}
    unchanged = all(p.is_file() and p.read_text() == t for p, t in texts.items()) and \
        all(p.is_file() for p in plots.values())
    if not unchanged:
        out.mkdir(parents=True, exist_ok=True)
        for path, text in texts.items():
            path.write_text(text)
        plot_results(cfg, swept, rows, plots)
    return {"csv": out / "results.csv", "md": out / "results.md", **{f"plot:{k}": v for k, v in plots.items()}}


def results_markdown(cfg: DictConfig, outcomes: list[dict], swept: list[str], metric_cols: list[str],
                     rows: list[dict]) -> str:
    protocol = outcomes[0]["summary"]["protocol"] if outcomes else {}
    lines = [f"# Ablation: {cfg.name}", ""]
    if cfg.description:
        lines += [cfg.description.strip(), ""]
    lines += ["## Protocol", "",
              f"- **base sampling config**: {cfg.base}; fixed: {json.dumps(OmegaConf.to_container(cfg.set))}",
              f"- **swept**: {', '.join(swept) or 'nothing (one point)'}",
              f"- **LQ**: {cfg.data.lq} ({outcomes[0]['summary']['protocol']['n_images'] if outcomes else 0} faces"
              f"{'' if cfg.data.limit is None else f', {cfg.data.limit} evenly spaced by name'})",
              f"- **GT**: {cfg.data.gt}"]
    for key in ("color_space", "identity_network", "identity_template", "reference_set", "reference_size",
                "testset_manifest"):
        if protocol.get(key) is not None:
            lines.append(f"- **{key}**: {protocol[key]}")
    inputs = outcomes[0]["summary"]["summary"] if outcomes else {}
    for col in INPUT_COLUMNS:
        if col in inputs:
            lines.append(f"- **{col}** (sharpness of the {col[-2:].upper()} faces, for comparison with lapvar): "
                         f"{E.format_value(_number(inputs[col]['mean']))}")
    testset = protocol.get("testset")
    if testset:
        lines.append(f"- **testset**: {json.dumps(testset, sort_keys=True, ensure_ascii=False)}")
    if cfg.train.config:
        lines.append(f"- **training**: {cfg.train.config} (component {cfg.train.component}), "
                     f"fixed overrides {list(cfg.train.overrides)}")
    lines += ["", "## Results (means over faces; distribution distances over the set)", ""]
    header = swept + ["n"] + metric_cols + ["restore s"]
    table_rows = [[show_value(r[k]) for k in swept] + [r["n"]] + [r.get(c) for c in metric_cols]
                  + [r.get("restore_seconds")] for r in rows]
    lines.append(E.markdown_table(header, table_rows))
    skipped = sorted({reason for o in outcomes for reason in o["summary"].get("skipped", [])})
    if skipped:
        lines += ["", "Not computed:"] + [f"- {s}" for s in skipped]
    return "\n".join(lines) + "\n"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def plot_results(cfg: DictConfig, swept: list[str], rows: list[dict], paths: dict[str, Path]) -> None:
    """One PNG per metric: the metric against the x key, one line per combination of the other keys."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_key = cfg.x or (swept[0] if swept else None)
    others = [k for k in swept if k != x_key]
    xs = [r.get(x_key) if x_key else "base" for r in rows]
    numeric = all(_is_number(x) for x in xs)
    categories = list(dict.fromkeys(show_value(x) for x in xs))
    series: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        series.setdefault(", ".join(f"{k}={show_value(row[k])}" for k in others), []).append(i)
    for col, path in paths.items():
        fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=110)
        for label, members in series.items():
            pts = [(xs[i] if numeric else categories.index(show_value(xs[i])), rows[i].get(col)) for i in members]
            pts = [(x, y) for x, y in pts if y is not None and math.isfinite(y)]
            if numeric:
                pts.sort()
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label or None)
        if not numeric:
            ax.set_xticks(range(len(categories)), categories, rotation=20 if len(categories) > 4 else 0)
        ax.set_xlabel(x_key or "point")
        ax.set_ylabel(col)
        ax.set_title(f"{cfg.name}: {col}")
        ax.grid(alpha=0.3)
        if any(series):
            ax.legend(fontsize=7)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        plt.close(fig)
