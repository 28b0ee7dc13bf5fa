"""Ablation sweeps: restore a test set at every point of a grid of sampling (or training) settings,
score each point, and gather one table and one plot per metric.

    diffrestore-sweep configs/ablations/start_step.yaml [--out DIR] [--force] [--dry-run] [key=value ...]

A sweep config (``configs/ablations/*.yaml``; schema ``SweepConfig``)::

    name: start_step
    description: DifFace's fidelity/realism trade-off: the start step N
    base: ../sample/default.yaml     # a sampling preset (AblationOptions: RestoreOptions + the ablation switches), path relative to this file
    set: {steps: 50, guidance: 0.0}  # option keys fixed for every point
    grid:                            # cartesian product over dotted option keys ...
      start_t: [100, 200, 400]
    points:                          # ... and/or explicit points (appended after the grid)
      - {start_from: noise}
    x: start_t                       # the key on the plots' x axis (default: the first swept key)
    data: {lq: data/testsets/utkface-val/lq, gt: data/testsets/utkface-val/hq, limit: null}
    eval: {metrics: null, identity: sface, color: y}   # see diffrestore.evaluate
    train: {config: null}            # a training-side sweep (below)

Keys of ``grid``/``points`` are ``AblationOptions`` fields (``mask``, ``guidance_range``, ``model`` ...).
``model`` names a pipeline folder (null = the bundled model) or, for smoke tests, a model config
YAML (``configs/model/tiny.yaml``): a pipeline with random weights (seed 0).

Training-side sweeps: keys prefixed ``train.`` are overrides of the training config
``train.config``; a point that has any trains first (``python train.py --config C
output_dir=<point>/train ...``, resumed if interrupted) and its exported ``train.component``
(``<output_dir>/export/<component>``) replaces that component of the ``model`` pipeline before
sampling. E.g. ``grid: {train.loss.condition_dropout: [0.0, 0.1, 0.2]}`` with
``train: {config: configs/train/score.yaml, component: unet}``.

Data paths are relative to the working directory (run from the repository root). Output (default
``runs/ablations/<name>``): ``points/<point>/`` (restored faces, ``per_image.csv``,
``summary.json``/``.md``, ``point.json``), ``results.csv``, ``results.md``, ``plots/<metric>.png``.

A point is skipped when its outputs exist and its hashes match: restoring is redone only when the
sampling config, the model's files or the LQ files change; scoring only when that or the evaluation
settings, the GT or the reference files change. The code itself is not hashed: ``--force`` redoes all.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import itertools
import json
import math
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from . import evaluate as E
from .builders import load_template
from .config import ConfigError, load_config, merge_config
from .io import list_images, load_image, save_image, spread_subset
from .ablation import AblationOptions, AblationRestorer
from .pipeline import BUNDLED_MODEL, DiffRestorePipeline
from .restore import resolve_device, resolve_dtype

TRAIN_PREFIX = "train."
RESTORE_CHUNK = 64
INPUT_COLUMNS = ("lapvar_gt", "lapvar_lq")
# option fields that do not change the restored pixels: left out of the point's hash
NOT_HASHED = ("batch_size", "device", "overwrite", "save_comparison")


@dataclass
class SweepData:
    lq: str = MISSING  # folder of aligned LQ faces
    gt: Optional[str] = None  # folder of the ground truth (paired by file name stem)
    limit: Optional[int] = None  # only N LQ files, evenly spaced by name (quick runs); the reference set stays whole


@dataclass
class SweepEval:
    metrics: Optional[List[str]] = None  # subset of diffrestore.evaluate.METRICS; null = all that apply
    identity: str = "sface"  # sface | facenet[:weights] | an IdentityNet folder (never the guidance network)
    color: str = "y"  # y (BT.601 luma) | rgb
    crop_border: int = 0
    reference: Optional[str] = None  # reference set of the distribution distances; null = data.gt
    groups: Optional[str] = None  # utkface: per-group summaries from file names
    vq_model: Optional[str] = None  # FD-VQ features: a pipeline/VQModel folder, or "model" = the point's VQGAN


@dataclass
class SweepTrain:
    config: Optional[str] = None  # a training config (configs/train/*.yaml); needed by train.* keys
    component: str = "unet"  # the exported component that replaces the pipeline's
    overrides: List[str] = field(default_factory=list)  # training overrides for every point
    command: List[str] = field(default_factory=lambda: [sys.executable, "train.py"])  # or [accelerate, launch, train.py]


@dataclass
class SweepConfig:
    name: str = MISSING
    description: str = ""
    base: str = "../sample/default.yaml"
    set: Dict[str, Any] = field(default_factory=dict)
    grid: Dict[str, List[Any]] = field(default_factory=dict)
    points: List[Dict[str, Any]] = field(default_factory=list)
    x: Optional[str] = None
    data: SweepData = field(default_factory=SweepData)
    eval: SweepEval = field(default_factory=SweepEval)
    train: SweepTrain = field(default_factory=SweepTrain)


@dataclass
class Point:
    values: Dict[str, Any]  # the swept keys of this point
    sample: DictConfig  # the full, validated AblationOptions
    train_overrides: List[str]
    slug: str

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={_show(v)}" for k, v in self.values.items()) or "base"


def _show(value: Any) -> str:
    """A value as YAML would write it (null, true, [0.0, 0.6])."""
    return json.dumps(value) if value is None or isinstance(value, (bool, list, dict)) else str(value)


def _slug(values: Dict[str, Any]) -> str:
    text = "__".join(f"{k}={_show(v)}" for k, v in values.items()) or "base"
    text = re.sub(r"[^A-Za-z0-9._=-]+", "-", text).strip("-")
    if len(text) > 80:
        text = text[:64] + "-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return text


# ------------------------------------------------------------------------------------------------
# config


def load_sweep(path: str | Path, overrides: Sequence[str] = ()) -> tuple[DictConfig, list[Point]]:
    """Read a sweep config, validate it and every point's sampling config (before any work)."""
    path = Path(path)
    cfg = load_config(path, SweepConfig, overrides)
    base = Path(cfg.base)
    base = base if base.is_absolute() else path.parent / base
    base_sample = load_config(base, AblationOptions)
    grid = OmegaConf.to_container(cfg.grid, resolve=True)
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] if grid else []
    combos += OmegaConf.to_container(cfg.points, resolve=True)
    points, seen = [], {}
    for values in combos or [{}]:
        sample_keys = {k: v for k, v in values.items() if not k.startswith(TRAIN_PREFIX)}
        train_overrides = [f"{k[len(TRAIN_PREFIX):]}={json.dumps(v)}" for k, v in values.items()
                           if k.startswith(TRAIN_PREFIX)]
        if train_overrides and not cfg.train.config:
            raise ConfigError(f"{path}: keys {sorted(values)} start with 'train.' but train.config is not set")
        layers = [_dotted_layer(OmegaConf.to_container(cfg.set, resolve=True)), _dotted_layer(sample_keys)]
        sample = merge_config(base_sample, *layers, source=f"{path} point {values}")
        for key, value in sample_keys.items():
            if isinstance(value, bool) and isinstance(OmegaConf.select(sample, key), str):
                raise ConfigError(f"{path}: config key '{key}': YAML read {value} (a boolean) where a string is "
                                  "expected; quote words like 'off', 'on', 'no' and 'yes'")
        if train_overrides:
            _check_train_config(cfg.train, train_overrides, path)
        slug = _slug(values)
        if slug in seen:
            raise ConfigError(f"{path}: point {values} appears twice (as {seen[slug]})")
        seen[slug] = values
        points.append(Point(values, sample, train_overrides, slug))
    if cfg.x is not None and not any(cfg.x in p.values for p in points):
        raise ConfigError(f"{path}: config key 'x': {cfg.x!r} is not a swept key")
    return cfg, points


def _check_train_config(train: DictConfig, point_overrides: list[str], source: Path) -> None:
    """Validate a point's training config (keys, types) before any work is done."""
    from .training.schema import TrainConfig

    if not Path(train.config).is_file():
        raise ConfigError(f"{source}: config key 'train.config': {train.config} not found")
    load_config(train.config, TrainConfig, list(train.overrides) + point_overrides + ["output_dir=sweep-point"])


def _dotted_layer(values: Dict[str, Any]) -> DictConfig:
    layer = OmegaConf.create({})
    for key, value in values.items():
        OmegaConf.update(layer, key, value, force_add=True)
    return layer


# ------------------------------------------------------------------------------------------------
# fingerprints


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_fingerprint(paths: Sequence[Path], root: Path | None = None) -> str:
    """Hash of the names and contents of ``paths``."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        name = path.relative_to(root).as_posix() if root else path.name
        digest.update(f"{name}\0{_file_digest(path)}\n".encode())
    return digest.hexdigest()


def model_fingerprint(model: Optional[str]) -> str:
    path = Path(model) if model else BUNDLED_MODEL
    if path.is_file():  # a model config: random weights from seed 0
        return "random-init-seed0:" + _file_digest(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: model not found (a pipeline folder or a model config .yaml)")
    files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return files_fingerprint(files, root=path)


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


# ------------------------------------------------------------------------------------------------
# running


class SweepRunner:
    """Runs the points of one sweep into ``out``; keeps pipelines, evaluators and features cached."""

    def __init__(self, cfg: DictConfig, points: list[Point], out: str | Path, force: bool = False,
                 score_only: bool = False, restore_only: bool = False, log=print) -> None:
        if score_only and restore_only:
            raise ValueError("score_only and restore_only exclude each other")
        self.cfg, self.points, self.out, self.force, self.log = cfg, points, Path(out), force, log
        self.score_only, self.restore_only = score_only, restore_only
        self.lq_paths = list_images(cfg.data.lq, recursive=False)
        if cfg.data.limit is not None:
            self.lq_paths = spread_subset(self.lq_paths, cfg.data.limit)
        if not self.lq_paths:
            raise ValueError(f"{cfg.data.lq}: no LQ images")
        self._pipelines: dict = {}
        self._fingerprints: dict = {}
        self._evaluators: dict = {}
        self._vq_extractors: dict = {}
        self._feature_cache: dict = {}
        self.restored: list[str] = []  # slugs restored in this run
        self.scored: list[str] = []  # slugs scored in this run
        self.trained: list[str] = []

    # -- fingerprints -------------------------------------------------------------------------

    def _fingerprint(self, key: str, make) -> str:
        if key not in self._fingerprints:
            self._fingerprints[key] = make()
        return self._fingerprints[key]

    def restore_hash(self, point: Point) -> str:
        sample = {k: v for k, v in OmegaConf.to_container(point.sample, resolve=True).items() if k not in NOT_HASHED}
        sample["dtype"] = str(resolve_dtype(point.sample.dtype, resolve_device(point.sample.device)))
        model = sample.pop("model")
        return _hash({
            "sample": sample,
            "model": self._fingerprint(f"model:{model}", lambda: model_fingerprint(model)),
            "train": self._train_spec(point) if point.train_overrides else None,
            "lq": self._fingerprint("lq", lambda: files_fingerprint(self.lq_paths)),
        })

    def eval_hash(self, point: Point, restore_hash: str) -> str:
        data, ev = self.cfg.data, self.cfg.eval
        reference = ev.reference or data.gt

        def folder(path):
            return self._fingerprint(f"dir:{path}", lambda: files_fingerprint(list_images(path, recursive=False)))

        return _hash({"restore": restore_hash, "eval": OmegaConf.to_container(ev, resolve=True),
                      "gt": folder(data.gt) if data.gt else None,
                      "reference": folder(reference) if reference else None})

    # -- models -------------------------------------------------------------------------------

    def _train_spec(self, point: Point) -> dict:
        t = self.cfg.train
        return {"config": t.config, "config_digest": _file_digest(Path(t.config)), "component": t.component,
                "overrides": list(t.overrides) + point.train_overrides}

    def _train(self, point: Point) -> Path:
        """Train the point's component (resuming an interrupted run) and return its export folder."""
        t = self.cfg.train
        train_dir = self.out / "points" / point.slug / "train"
        export = train_dir / "export" / t.component
        spec_file = train_dir / "sweep_train.json"
        spec = self._train_spec(point)
        if export.is_dir() and spec_file.is_file() and json.loads(spec_file.read_text()) == spec and not self.force:
            return export
        train_dir.mkdir(parents=True, exist_ok=True)
        spec_file.unlink(missing_ok=True)
        resume = ["--resume", "latest"] if (train_dir / "checkpoints").is_dir() and not self.force else []
        command = list(t.command) + ["--config", t.config, *resume, f"output_dir={train_dir}", *t.overrides,
                                     *point.train_overrides]
        self.log(f"[{point.slug}] training: {' '.join(command)}")
        subprocess.run(command, check=True)
        if not export.is_dir():
            raise FileNotFoundError(f"{export}: training finished but exported no '{t.component}'")
        spec_file.write_text(json.dumps(spec, indent=1))
        self.trained.append(point.slug)
        return export

    def pipeline(self, point: Point):
        model = point.sample.model
        export = self._train(point) if point.train_overrides else None
        key = (model, str(export))
        if key not in self._pipelines:
            if model and Path(model).is_file():
                pipe = DiffRestorePipeline.from_model_config(model, seed=0)
            else:
                pipe = DiffRestorePipeline.from_pretrained(model)
            if export is not None:
                pipe = replace_component(pipe, self.cfg.train.component, export)
            self._pipelines[key] = pipe
        return self._pipelines[key]

    # -- a point ------------------------------------------------------------------------------

    def run_point(self, point: Point) -> dict:
        point_dir = self.out / "points" / point.slug
        restored_dir = point_dir / "restored"
        record_path = point_dir / "point.json"
        record = json.loads(record_path.read_text()) if record_path.is_file() and not self.force else {}
        r_hash = self.restore_hash(point)
        expected = [restored_dir / f"{p.stem}.png" for p in self.lq_paths]
        pipe = None
        if self.score_only:  # faces restored elsewhere (e.g. on a GPU machine): take them as they are
            if not record.get("restore_hash") or not all(p.is_file() for p in expected):
                raise FileNotFoundError(f"{point_dir}: --score-only, but this point has no complete restored faces")
            r_hash = record["restore_hash"]
        elif record.get("restore_hash") != r_hash or not all(p.is_file() for p in expected):
            pipe = self.pipeline(point)
            options = AblationOptions(**OmegaConf.to_container(point.sample, resolve=True))
            restorer = AblationRestorer(pipe, options)
            self.log(f"[{point.slug}] restoring {len(self.lq_paths)} faces on {restorer.device}")
            shutil.rmtree(restored_dir, ignore_errors=True)  # the sweep's own output: no stale faces from a past run
            start = time.perf_counter()
            for i in range(0, len(self.lq_paths), RESTORE_CHUNK):
                chunk = self.lq_paths[i:i + RESTORE_CHUNK]
                outputs = restorer.restore_aligned([load_image(p) for p in chunk], keys=[p.name for p in chunk])
                for path, face in zip(chunk, outputs):
                    save_image(face, restored_dir / f"{path.stem}.png", overwrite=True)
            record = {"values": point.values, "label": point.label, "restore_hash": r_hash,
                      "sample": OmegaConf.to_container(point.sample, resolve=True),
                      "train_overrides": point.train_overrides,
                      "restore_seconds": round(time.perf_counter() - start, 3), "device": str(restorer.device)}
            _write_json(record_path, record)
            self.restored.append(point.slug)

        if self.restore_only:  # scored later, elsewhere (--score-only)
            return {"point": point, "record": record, "summary": None}
        e_hash = self.eval_hash(point, r_hash)
        summary_path = point_dir / "summary.json"
        if record.get("eval_hash") != e_hash or not summary_path.is_file():
            pipe = pipe or self.pipeline(point)
            result = self._score(point, pipe, restored_dir)
            E.write_reports(result, point_dir, overwrite=True, title=f"{self.cfg.name}: {point.label}")
            record["eval_hash"] = e_hash
            _write_json(record_path, record)
            self.scored.append(point.slug)
            for reason in result["skipped"]:
                self.log(f"[{point.slug}] {reason}")
        else:
            self.log(f"[{point.slug}] up to date, skipped")
        summary = json.loads(summary_path.read_text())
        return {"point": point, "record": record, "summary": summary}

    def _score(self, point: Point, pipe, restored_dir: Path) -> dict:
        import numpy as np

        ev, data = self.cfg.eval, self.cfg.data
        size = int(pipe.config.resolution)
        if pipe.config.template is not None:
            template = np.asarray(pipe.config.template, dtype=np.float64)
        else:  # a pipeline without a template: the faces are taken to be in the default framing
            template = load_template(E.DEFAULT_TEMPLATE, size)
        identity = ev.identity
        needs_identity = ev.metrics is None or bool(set(ev.metrics) & set(E.IDENTITY_METRICS))
        if needs_identity and (identity in ("sface", "facenet") or identity.startswith("facenet:")):
            key = (identity, template.tobytes(), size)
            if key not in self._evaluators:
                from .metrics import load_identity_evaluator

                self._evaluators[key] = load_identity_evaluator(identity, template, size)
            identity = self._evaluators[key]
        vq_model = ev.vq_model
        if vq_model == "model":  # one extractor per pipeline, kept alive for the feature cache
            if id(pipe) not in self._vq_extractors:
                from .metrics import vqgan_feature_extractor

                self._vq_extractors[id(pipe)] = vqgan_feature_extractor(pipe.vqgan, source="of the point's model")
            vq_model = self._vq_extractors[id(pipe)]
        metrics = list(ev.metrics) if ev.metrics is not None else None
        return E.evaluate_folders(restored_dir, data.gt, data.lq, identity=identity, reference=ev.reference,
                                  groups=ev.groups, metrics=metrics, color=ev.color, crop_border=ev.crop_border,
                                  template=template, template_size=size, vq_model=vq_model, cache=self._feature_cache)

    def run(self) -> list[dict]:
        self._check_out()
        return [self.run_point(point) for point in self.points]

    def _check_out(self) -> None:
        marker = self.out / "sweep.json"
        payload = {"name": self.cfg.name, "config": OmegaConf.to_container(self.cfg, resolve=True)}
        previous = json.loads(marker.read_text()) if marker.is_file() else None
        if previous is not None and previous.get("name") != self.cfg.name:
            raise FileExistsError(f"{self.out}: holds the sweep {previous.get('name')!r}, not {self.cfg.name!r}; "
                                  "choose another --out")
        if previous != E.json_safe(payload):
            _write_json(marker, payload)


def replace_component(pipe: DiffRestorePipeline, component: str, folder: Path) -> DiffRestorePipeline:
    """A copy of ``pipe`` whose ``component`` is loaded from ``folder`` (a ``save_pretrained`` folder)."""
    current = pipe.components.get(component)
    if current is None:
        raise ValueError(f"the pipeline has no component {component!r} to replace")
    return pipe.with_components(**{component: type(current).from_pretrained(str(folder)).eval()})


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(E.json_safe(payload), indent=1, default=str) + "\n")
    tmp.replace(path)


# ------------------------------------------------------------------------------------------------
# results


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
        writer.writerow([_show(row.get(h)) if h in swept else E.format_value(row.get(h), 6) for h in header])
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
    table_rows = [[_show(r[k]) for k in swept] + [r["n"]] + [r.get(c) for c in metric_cols]
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
    categories = list(dict.fromkeys(_show(x) for x in xs))
    series: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        series.setdefault(", ".join(f"{k}={_show(row[k])}" for k in others), []).append(i)
    for col, path in paths.items():
        fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=110)
        for label, members in series.items():
            pts = [(xs[i] if numeric else categories.index(_show(xs[i])), rows[i].get(col)) for i in members]
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


# ------------------------------------------------------------------------------------------------
# command line


def run_sweep(config: str | Path, out: str | Path | None = None, overrides: Sequence[str] = (), force: bool = False,
              score_only: bool = False, restore_only: bool = False, log=print) -> tuple[SweepRunner, dict[str, Path]]:
    """Load, run (skipping points that are up to date) and report a sweep; returns the runner
    (``runner.restored`` / ``runner.scored`` list what was recomputed) and the written files
    (none with ``restore_only``)."""
    cfg, points = load_sweep(config, overrides)
    out = Path(out) if out else Path("runs") / "ablations" / cfg.name
    runner = SweepRunner(cfg, points, out, force=force, score_only=score_only, restore_only=restore_only, log=log)
    outcomes = runner.run()
    if restore_only:
        log(f"{len(points)} points: restored {len(runner.restored)}, up to date "
            f"{len(points) - len(runner.restored)}; score them with --score-only")
        return runner, {}
    files = write_results(cfg, outcomes, out)
    log(f"{len(points)} points: restored {len(runner.restored)}, scored {len(runner.scored)}, "
        f"up to date {len(points) - len(set(runner.restored) | set(runner.scored))}; results in {files['md']}")
    return runner, files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="diffrestore-sweep", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("config", help="a sweep config (configs/ablations/*.yaml)")
    parser.add_argument("--out", help="output folder (default runs/ablations/<name>)")
    parser.add_argument("--force", action="store_true", help="recompute every point")
    parser.add_argument("--dry-run", action="store_true", help="list the points and exit")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--score-only", action="store_true",
                      help="restore nothing: score the restored faces already in --out (e.g. made on a GPU "
                           "machine whose OpenCV cannot run SFace)")
    only.add_argument("--restore-only", action="store_true",
                      help="restore every point and score nothing (score later with --score-only)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="overrides of the sweep config, e.g. data.limit=50 set.device=cuda")
    args = parser.parse_intermixed_args(argv)
    try:
        if args.dry_run:
            cfg, points = load_sweep(args.config, args.overrides)
            for point in points:
                print(f"{point.slug}: {point.label}")
            return 0
        run_sweep(args.config, args.out, args.overrides, force=args.force, score_only=args.score_only,
                  restore_only=args.restore_only)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError, ImportError, RuntimeError,
            subprocess.CalledProcessError) as err:
        print(f"diffrestore-sweep: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
