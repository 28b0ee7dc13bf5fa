"""Running a sweep: every point restored (training its component first where it has ``train.`` keys)
and scored, each step skipped when its fingerprint says the outputs are up to date."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from ... import evaluation as E
from ..ablation import AblationOptions, AblationRestorer
from ...models.builders import load_template, template_for_size
from ...config import ConfigError
from ...io import list_images, load_image, pil_to_tensor, save_image, spread_subset
from ..metrics import load_identity_evaluator, vqgan_feature_extractor
from ..restore_set import ALIGNED, restore_chunk
from ...pipeline.pipeline_diffrestore import DiffRestorePipeline
from ...pipeline.restore import resolve_device, resolve_dtype
from .config import Point
from .fingerprint import file_digest, files_fingerprint, model_fingerprint, payload_hash

RESTORE_CHUNK = 64
# option fields that do not change the restored pixels: left out of the point's hash
NOT_HASHED = ("batch_size", "device", "overwrite", "save_comparison")


class SweepRunner:
    """Runs the points of one sweep into ``out``; keeps pipelines, evaluators and features cached."""

    def __init__(self, cfg: DictConfig, points: list[Point], out: str | Path, force: bool = False,
                 score_only: bool = False, restore_only: bool = False, log: Callable[[str], None] = print) -> None:
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
        """What the restored faces depend on: the options, the model's files, the training, the LQ files."""
        sample = {k: v for k, v in OmegaConf.to_container(point.sample, resolve=True).items() if k not in NOT_HASHED}
        sample["dtype"] = str(resolve_dtype(point.sample.dtype, resolve_device(point.sample.device)))
        model = sample.pop("model")
        return payload_hash({
            "sample": sample,
            "model": self._fingerprint(f"model:{model}", lambda: model_fingerprint(model)),
            "train": self._train_spec(point) if point.train_overrides else None,
            "lq": self._fingerprint("lq", lambda: files_fingerprint(self.lq_paths)),
            "framing": self.cfg.data.framing,
        })

    def eval_hash(self, point: Point, restore_hash: str) -> str:
        """What the scores depend on: the restored faces, the evaluation settings, the GT and reference files."""
        data, ev = self.cfg.data, self.cfg.eval
        reference = ev.reference or data.gt

        def folder(path):
            return self._fingerprint(f"dir:{path}", lambda: files_fingerprint(list_images(path, recursive=False)))

        return payload_hash({"restore": restore_hash, "eval": OmegaConf.to_container(ev, resolve=True),
                      "gt": folder(data.gt) if data.gt else None,
                      "reference": folder(reference) if reference else None})

    # -- models -------------------------------------------------------------------------------

    def _train_spec(self, point: Point) -> dict:
        t = self.cfg.train
        return {"config": t.config, "config_digest": file_digest(Path(t.config)), "component": t.component,
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

    def pipeline(self, point: Point) -> DiffRestorePipeline:
        """The point's pipeline (a model config: random weights), its trained component swapped in."""
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
        """Restore and score one point, each only when out of date: ``{point, record, summary}``."""
        point_dir = self.out / "points" / point.slug
        record_path = point_dir / "point.json"
        record = json.loads(record_path.read_text()) if record_path.is_file() and not self.force else {}
        record = self._restore_point(point, point_dir, record)
        if self.restore_only:  # scored later, elsewhere (--score-only)
            return {"point": point, "record": record, "summary": None}
        record = self._score_point(point, point_dir, record)
        return {"point": point, "record": record, "summary": json.loads((point_dir / "summary.json").read_text())}

    def _restore_point(self, point: Point, point_dir: Path, record: dict) -> dict:
        restored_dir = point_dir / "restored"
        complete = all((restored_dir / f"{p.stem}.png").is_file() for p in self.lq_paths)
        if self.score_only:  # faces restored elsewhere (e.g. on a GPU machine): take them as they are
            if not record.get("restore_hash") or not complete:
                raise FileNotFoundError(f"{point_dir}: --score-only, but this point has no complete restored faces")
            return record
        r_hash = self.restore_hash(point)
        if record.get("restore_hash") == r_hash and complete:
            return record
        options = AblationOptions(**OmegaConf.to_container(point.sample, resolve=True))
        restorer = AblationRestorer(self.pipeline(point), options)
        self._check_framing(restorer.resolution)
        self.log(f"[{point.slug}] restoring {len(self.lq_paths)} faces on {restorer.device}")
        shutil.rmtree(restored_dir, ignore_errors=True)  # the sweep's own output: no stale faces from a past run
        start = time.perf_counter()
        for i in range(0, len(self.lq_paths), RESTORE_CHUNK):
            chunk = self.lq_paths[i:i + RESTORE_CHUNK]
            outputs = self._restore_chunk(restorer, chunk)
            for path, face in zip(chunk, outputs):
                save_image(face, restored_dir / f"{path.stem}.png", overwrite=True)
        record = {"values": point.values, "label": point.label, "restore_hash": r_hash,
                  "sample": OmegaConf.to_container(point.sample, resolve=True), "train_overrides": point.train_overrides,
                  "restore_seconds": round(time.perf_counter() - start, 3), "device": str(restorer.device)}
        write_json(point_dir / "point.json", record)
        self.restored.append(point.slug)
        return record

    def _check_framing(self, resolution: int) -> None:
        """Without ``data.framing`` the faces come back at the model's size: ground truth of another
        size cannot be scored, so say so before restoring anything."""
        data = self.cfg.data
        if data.framing is None and data.gt is not None:
            size = self.lq_size
            if size != (resolution, resolution):
                raise ConfigError(f"config key 'data.framing': {self.lq_paths[0]} is {size[0]}x{size[1]} and the "
                                  f"model restores {resolution}x{resolution} faces; name the set's template "
                                  f"(e.g. data.framing=ffhq_512) to restore it at its own size")

    @cached_property
    def lq_size(self) -> tuple[int, int]:
        """(width, height) of the first LQ face: the set's size."""
        return load_image(self.lq_paths[0]).size

    def _restore_chunk(self, restorer: AblationRestorer, paths: list[Path]) -> list[Tensor]:
        keys, framing = [p.name for p in paths], self.cfg.data.framing
        if framing is None:
            return restorer.restore_aligned([load_image(p) for p in paths], keys=keys)
        if framing == ALIGNED:  # as `diffrestore --aligned` restores them: diffrestore-eval-restore's own chunk
            return [pil_to_tensor(face) for face in restore_chunk(restorer, [load_image(p) for p in paths], paths,
                                                                  ALIGNED)]
        return restorer.restore_framed([pil_to_tensor(load_image(p)) for p in paths], keys, framing)

    def _score_point(self, point: Point, point_dir: Path, record: dict) -> dict:
        e_hash = self.eval_hash(point, record["restore_hash"])
        if record.get("eval_hash") == e_hash and (point_dir / "summary.json").is_file():
            self.log(f"[{point.slug}] up to date, skipped")
            return record
        result = self._score(point, self.pipeline(point), point_dir / "restored")
        E.write_reports(result, point_dir, overwrite=True, title=f"{self.cfg.name}: {point.label}")
        record = {**record, "eval_hash": e_hash}
        write_json(point_dir / "point.json", record)
        self.scored.append(point.slug)
        for reason in result["skipped"]:
            self.log(f"[{point.slug}] {reason}")
        return record

    def _score(self, point: Point, pipe: DiffRestorePipeline, restored_dir: Path) -> dict:
        ev, data = self.cfg.eval, self.cfg.data
        size = int(pipe.config.resolution)
        if data.framing == ALIGNED:  # the restored faces are at the set's size
            size = self.lq_size[0]
            template = aligned_set_template(pipe, size)
        elif data.framing is not None:  # the restored faces are at the set's size, in its framing
            size = self.lq_size[0]
            template = load_template(data.framing, size)
        elif pipe.config.template is not None:
            template = np.asarray(pipe.config.template, dtype=np.float64)
        else:  # a pipeline without a template: the faces are taken to be in the framing of their size
            template = load_template(template_for_size(size), size)
        identity = ev.identity
        needs_identity = ev.metrics is None or bool(set(ev.metrics) & set(E.IDENTITY_METRICS))
        if needs_identity and (identity in ("sface", "facenet") or identity.startswith("facenet:")):
            key = (identity, template.tobytes(), size)
            if key not in self._evaluators:
                self._evaluators[key] = load_identity_evaluator(identity, template, size)
            identity = self._evaluators[key]
        vq_model = ev.vq_model
        if vq_model == "model":  # one extractor per pipeline, kept alive for the feature cache
            if id(pipe) not in self._vq_extractors:
                self._vq_extractors[id(pipe)] = vqgan_feature_extractor(pipe.vqgan, source="of the point's model")
            vq_model = self._vq_extractors[id(pipe)]
        metrics = list(ev.metrics) if ev.metrics is not None else None
        return E.evaluate_folders(restored_dir, data.gt, data.lq, identity=identity, reference=ev.reference,
                                  groups=ev.groups, metrics=metrics, color=ev.color, crop_border=ev.crop_border,
                                  template=template, template_size=size, vq_model=vq_model, cache=self._feature_cache)

    def run(self) -> list[dict]:
        """Every point, in order (see ``run_point``)."""
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
            write_json(marker, payload)


def replace_component(pipe: DiffRestorePipeline, component: str, folder: Path) -> DiffRestorePipeline:
    """A copy of ``pipe`` whose ``component`` is loaded from ``folder`` (a ``save_pretrained`` folder)."""
    current = pipe.components.get(component)
    if current is None:
        raise ValueError(f"the pipeline has no component {component!r} to replace")
    return pipe.with_components(**{component: type(current).from_pretrained(str(folder)).eval()})


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(E.json_safe(payload), indent=1, default=str) + "\n")
    tmp.replace(path)


def aligned_set_template(pipe: DiffRestorePipeline, size: int) -> np.ndarray:
    """The template scoring takes for aligned faces of ``size`` px: ``diffrestore-eval``'s default (the bundled
    template drawn at that size, e.g. ffhq_512), else the model's own scaled to that size."""
    try:
        return load_template(template_for_size(size), size)
    except ValueError:
        if pipe.config.template is None:
            raise
        return np.asarray(pipe.config.template, dtype=np.float64) * size / int(pipe.config.resolution)
