"""Score restored faces against ground truth (or, without it, against their LQ inputs).

``diffrestore-eval --restored DIR [--gt DIR] [--lq DIR] --out DIR`` pairs files by name stem
(``a.png`` in ``--restored`` with ``a.webp`` in ``--gt``) and writes ``per_image.csv``,
``summary.json`` and ``summary.md``, each with the protocol the numbers were measured under: the
colour space, the identity network, the reference set of the distribution distance and, when a
test-set ``manifest.json`` sits next to ``--gt`` (as ``diffrestore-testset`` writes it), the
degradation recipe and seed. Metric definitions: ``diffrestore.metrics``.

Columns of ``per_image.csv`` (``<c>`` is the colour space, ``y`` or ``rgb``):
``psnr_<c>``, ``ssim_<c>``, ``lpips`` (restored vs GT); ``ids``, ``deg`` (identity of restored vs GT);
``ids_lq``, ``deg_lq`` (restored vs its LQ input: the no-reference identity check); ``lapvar``
(sharpness of the restored face), ``lapvar_gt``, ``lapvar_lq`` for comparison.

The library function ``evaluate_folders`` does the same and returns the result as a dict.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from . import metrics as M
from .builders import load_template
from .io import list_images, load_image, pil_to_tensor

DEFAULT_TEMPLATE = "utkface_128"
METRICS = ("psnr", "ssim", "lpips", "ids", "deg", "ids_lq", "deg_lq", "lapvar", "fd-identity", "fd-vq", "fid")
"""Names accepted by ``metrics=``; ``fd-identity`` is reported as ``FD-<network>`` (e.g. FD-SFace)."""
IDENTITY_METRICS = ("ids", "deg", "ids_lq", "deg_lq", "fd-identity")
GROUPINGS = ("utkface",)
GENDERS = {0: "male", 1: "female"}
RACES = {0: "White", 1: "Black", 2: "Asian", 3: "Indian", 4: "Others"}
AGE_BINS = ((0, 2), (3, 9), (10, 19), (20, 29), (30, 39), (40, 49), (50, 59), (60, 69), (70, 200))
RESULT_FILES = ("per_image.csv", "summary.json", "summary.md")
_NUMBER = re.compile(r"^\d+$")


# ------------------------------------------------------------------------------------------------
# pairing and groups


def index_by_stem(folder: str | Path) -> dict[str, Path]:
    """Image files of ``folder`` keyed by name stem; two files with one stem are an error."""
    index: dict[str, Path] = {}
    for path in list_images(folder, recursive=False):
        if path.stem in index:
            raise ValueError(f"{path}: same name stem as {index[path.stem]}; cannot pair files by name")
        index[path.stem] = path
    if not index:
        raise ValueError(f"{folder}: no images found")
    return index


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
    for attribute in ("gender", "race", "age"):
        table = {}
        for label in sorted(buckets[attribute], key=_group_sort_key):
            members = buckets[attribute][label]
            entry: dict[str, Any] = {"n": len(members)}
            for col in columns:
                entry[col] = M.summarize(r.get(col) for r in members)["mean"]
            table[label] = entry
        out[attribute] = table
    return out


# ------------------------------------------------------------------------------------------------
# protocol


def find_manifest(*folders: str | Path | None) -> tuple[Path | None, dict | None]:
    """The test-set ``manifest.json`` in or next to one of ``folders`` (testset writes
    ``OUT/hq``, ``OUT/lq`` and ``OUT/manifest.json``)."""
    for folder in folders:
        if folder is None:
            continue
        folder = Path(folder)
        for candidate in (folder / "manifest.json", folder.parent / "manifest.json"):
            if candidate.is_file():
                try:
                    return candidate, json.loads(candidate.read_text())
                except json.JSONDecodeError as err:
                    raise ValueError(f"{candidate}: not valid JSON ({err})") from err
    return None, None


def _manifest_protocol(manifest: dict, max_chars: int = 2000) -> dict:
    """The parts of a test-set manifest that define the protocol: its per-file records (any entry
    longer than ``max_chars`` as JSON) are summarised by their count, not copied."""
    out = {}
    for key, value in manifest.items():
        if len(json.dumps(value, default=str)) <= max_chars:
            out[key] = value
        else:
            out[key] = f"({len(value)} entries: see the manifest)" if hasattr(value, "__len__") else "(see the manifest)"
    return out


def _color_description(color: str) -> str:
    if color == "y":
        return "Y of ITU-R BT.601 (studio range 16-235, peak 255), as the face-restoration papers report"
    return "RGB, all three channels, 0-255"


# ------------------------------------------------------------------------------------------------
# scoring


def _load_tensor(path: Path, size: tuple[int, int] | None = None) -> torch.Tensor:
    img = load_image(path)
    if size is not None and img.size != size:
        img = img.resize(size, Image.BICUBIC)
    return pil_to_tensor(img).unsqueeze(0)


def _resolve_template(template: str | np.ndarray | Sequence | None, face_size: int,
                      template_size: int | None = None) -> tuple[np.ndarray, str]:
    if template is None:
        template = DEFAULT_TEMPLATE
    if isinstance(template, (str, Path)):
        return load_template(str(template), face_size), str(template)
    landmarks = np.asarray(template, dtype=np.float64)
    scale = face_size / template_size if template_size else 1.0
    return landmarks * scale, f"landmarks {landmarks.round(2).tolist()} (at {template_size or face_size}px)"


def _resolve_vq(vq_model: Any, device: str) -> M.FeatureExtractor:
    if isinstance(vq_model, M.FeatureExtractor):
        return vq_model
    if vq_model is None:
        raise ValueError("fd-vq needs a VQGAN: pass vq_model (a pipeline folder or a VQModel folder)")
    if not isinstance(vq_model, (str, Path)):
        return M.vqgan_feature_extractor(vq_model, source="(in memory)")
    from diffusers import VQModel

    folder = Path(vq_model)
    if (folder / "vqgan" / "config.json").is_file():
        folder = folder / "vqgan"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{vq_model}: neither a VQModel folder nor a pipeline folder with vqgan/")
    return M.vqgan_feature_extractor(VQModel.from_pretrained(str(folder)).eval(), device=device,
                                     source=f"of {folder}")


def _features(extractor: M.FeatureExtractor, paths: Sequence[Path], size: tuple[int, int],
              cache: dict | None, batch: int = 32) -> torch.Tensor:
    # keyed by the extractor object's id too: callers that pass a cache keep their extractors alive
    key = (id(extractor), extractor.description, tuple(str(p) for p in paths), size)
    if cache is not None and key in cache:
        return cache[key]
    chunks = []
    for i in range(0, len(paths), batch):
        chunks.append(extractor(torch.cat([_load_tensor(p, size) for p in paths[i:i + batch]])))
    feats = torch.cat(chunks)
    if cache is not None:
        cache[key] = feats
    return feats


def _select_metrics(requested: Iterable[str] | None, has_gt: bool, has_lq: bool, has_ref: bool,
                    has_vq: bool) -> tuple[list[str], list[str]]:
    """The metrics to compute and the reasons why the others that were asked for are skipped."""
    skipped: list[str] = []
    if requested is None:
        wanted = ["lapvar"]
        if has_gt:
            wanted += ["psnr", "ssim", "lpips", "ids", "deg"]
        if has_lq:
            wanted += ["ids_lq", "deg_lq"]
        if has_ref:
            wanted += ["fd-identity", "fid"] + (["fd-vq"] if has_vq else [])
        explicit = False
    else:
        wanted = [m.lower() for m in requested]
        unknown = [m for m in wanted if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose from {METRICS}")
        explicit = True
    chosen = []
    for name in dict.fromkeys(wanted):
        reason = None
        if name in ("psnr", "ssim", "lpips", "ids", "deg") and not has_gt:
            reason = f"{name} skipped: needs --gt"
        elif name in ("ids_lq", "deg_lq") and not has_lq:
            reason = f"{name} skipped: needs --lq"
        elif name in ("fd-identity", "fd-vq", "fid") and not has_ref:
            reason = f"{name} skipped: needs a reference set (--reference or --gt)"
        elif name == "lpips":
            reason = M.lpips_unavailable_reason()
        elif name == "fid":
            reason = M.fid_unavailable_reason()
        if reason:
            if explicit or name in ("lpips", "fid"):
                skipped.append(reason)
        else:
            chosen.append(name)
    return chosen, skipped


def evaluate_folders(
    restored: str | Path,
    gt: str | Path | None = None,
    lq: str | Path | None = None,
    *,
    identity: str | M.FeatureExtractor = "sface",
    reference: str | Path | None = None,
    groups: str | None = None,
    metrics: Iterable[str] | None = None,
    color: str = "y",
    crop_border: int = 0,
    template: str | np.ndarray | Sequence | None = None,
    template_size: int | None = None,
    vq_model: Any = None,
    device: str = "cpu",
    cache: dict | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Score the images of ``restored`` and return ``{"rows", "columns", "summary", "distribution",
    "groups", "protocol", "skipped"}``.

    ``identity``: ``"sface"`` (default), ``"facenet"``, an IdentityNet folder, or a ready
    ``FeatureExtractor`` (see ``metrics.load_identity_evaluator``). ``template``: the template the
    faces are aligned to (a name/path, or landmarks at ``template_size`` px; default utkface_128).
    ``reference`` (default ``gt``) is the set the distribution distances compare against.
    ``metrics``: a subset of ``METRICS`` (default: every one the given folders allow; LPIPS and FID
    only where their weights are present). ``cache``: a dict reused across calls (sweeps) to keep
    the features of unchanged files.
    """
    if color not in M.COLOR_SPACES:
        raise ValueError(f"color must be one of {M.COLOR_SPACES}, got {color!r}")
    reference = reference if reference is not None else gt
    chosen, skipped = _select_metrics(metrics, gt is not None, lq is not None, reference is not None,
                                      vq_model is not None)
    restored_index = index_by_stem(restored)
    gt_index = index_by_stem(gt) if gt is not None else None
    lq_index = index_by_stem(lq) if lq is not None else None
    stems = sorted(restored_index)
    unmatched = {}
    for name, index in (("gt", gt_index), ("lq", lq_index)):
        if index is not None:
            missing = [s for s in stems if s not in index]
            if missing:
                unmatched[name] = missing
                warnings.warn(f"{len(missing)} restored file(s) have no {name} partner (by name), e.g. "
                              f"{restored_index[missing[0]]}; they are left out")
    stems = [s for s in stems if all(s not in miss for miss in unmatched.values())]
    if not stems:
        raise ValueError(f"{restored}: no restored file pairs by name with the given folders")

    first = load_image(restored_index[stems[0]])
    size = first.size
    face_size = size[0]
    landmarks, template_name = _resolve_template(template, face_size, template_size)
    needs_identity = any(m in chosen for m in IDENTITY_METRICS)
    evaluator, identity_warning = None, None
    if needs_identity:
        evaluator = identity if isinstance(identity, M.FeatureExtractor) else \
            M.load_identity_evaluator(str(identity), landmarks, face_size, device=device)
        if isinstance(identity, (str, Path)) and Path(str(identity)).is_dir() and M.is_guidance_network(identity):
            identity_warning = (f"{identity} is part of a restoration pipeline and may have guided the sampler: "
                                "its IDS/Deg are then not an independent measure")
            warnings.warn(identity_warning)
    lpips_metric = M.LPIPSMetric(device) if "lpips" in chosen else None

    pixel_metrics = bool({"psnr", "ssim", "lpips", "lapvar"} & set(chosen))
    ref_paths = list_images(reference, recursive=False) if reference is not None else []
    rows: list[dict[str, Any]] = []
    for stem in stems:
        row: dict[str, Any] = {"file": stem}
        out = _load_tensor(restored_index[stem])
        if out.shape[-1] != size[0] or out.shape[-2] != size[1]:
            raise ValueError(f"{restored_index[stem]}: size {out.shape[-1]}x{out.shape[-2]} differs from "
                             f"{restored_index[stems[0]]} ({size[0]}x{size[1]})")
        ref = _load_tensor(gt_index[stem]) if gt_index is not None and pixel_metrics else None
        if ref is not None and any(m in chosen for m in ("psnr", "ssim", "lpips")):
            if ref.shape != out.shape:
                raise ValueError(f"{gt_index[stem]}: size {ref.shape[-1]}x{ref.shape[-2]} differs from the restored "
                                 f"{restored_index[stem]} ({size[0]}x{size[1]})")
            if "psnr" in chosen:
                row[f"psnr_{color}"] = M.psnr(out, ref, color, crop_border).item()
            if "ssim" in chosen:
                row[f"ssim_{color}"] = M.ssim(out, ref, color, crop_border).item()
            if lpips_metric is not None:
                row["lpips"] = lpips_metric(out, ref).item()
        if "lapvar" in chosen:
            row["lapvar"] = M.laplacian_variance(out).item()
            if ref is not None:
                row["lapvar_gt"] = M.laplacian_variance(ref).item()
            if lq_index is not None:
                row["lapvar_lq"] = M.laplacian_variance(_load_tensor(lq_index[stem])).item()
        rows.append(row)
        if verbose and len(rows) % 100 == 0:
            print(f"scored {len(rows)}/{len(stems)}", file=sys.stderr)

    distribution: dict[str, float] = {}
    distribution_info: dict[str, str] = {}
    restored_paths = [restored_index[s] for s in stems]
    if evaluator is not None:
        # faces are resized to the restored size: aligned faces keep their framing when scaled
        restored_feats = _features(evaluator, restored_paths, size, cache=None)
        pairs = {"": gt_index, "_lq": lq_index}
        for suffix, index in pairs.items():
            if index is None or not ({f"ids{suffix}", f"deg{suffix}"} & set(chosen)):
                continue
            other = _features(evaluator, [index[s] for s in stems], size, cache)
            cos = M.identity_cosine(restored_feats, other)
            deg = M.identity_degrees(restored_feats, other)
            for row, c, d in zip(rows, cos.tolist(), deg.tolist()):
                if f"ids{suffix}" in chosen:
                    row[f"ids{suffix}"] = c
                if f"deg{suffix}" in chosen:
                    row[f"deg{suffix}"] = d
        if "fd-identity" in chosen:
            name = f"FD-{evaluator.name}"
            distribution[name] = M.frechet_distance_of(restored_feats, _features(evaluator, ref_paths, size, cache))
            distribution_info[name] = f"Fréchet distance of {evaluator.description} embeddings"
    for metric, name, make in (("fd-vq", "FD-VQ", lambda: _resolve_vq(vq_model, device)),
                               ("fid", "FID", lambda: M.inception_feature_extractor(device))):
        if metric not in chosen:
            continue
        extractor = make()
        distribution[name] = M.frechet_distance_of(_features(extractor, restored_paths, size, None),
                                                   _features(extractor, ref_paths, size, cache))
        distribution_info[name] = f"Fréchet distance of {extractor.description} features"

    columns = _ordered_columns(rows)
    summary = {col: M.summarize(r.get(col) for r in rows) for col in columns}
    manifest_path, manifest = find_manifest(gt, lq)
    protocol = {
        "restored": str(Path(restored)),
        "gt": str(Path(gt)) if gt is not None else None,
        "lq": str(Path(lq)) if lq is not None else None,
        "pairing": "by file name stem",
        "n_images": len(rows),
        "unmatched": {k: len(v) for k, v in unmatched.items()},
        "color_space": _color_description(color) if {"psnr", "ssim"} & set(chosen) else None,
        "crop_border": crop_border,
        "ssim": "Gaussian window 11x11, sigma 1.5, K1=0.01, K2=0.03, valid positions, mean over channels",
        "identity_network": evaluator.description if evaluator is not None else None,
        "identity_warning": identity_warning,
        "identity_template": f"{template_name} scaled to {face_size}px" if evaluator is not None else None,
        "identity_deg": "angle between embeddings in degrees (arccos of IDS)",
        "lapvar": "variance of the 3x3 Laplacian of the BT.601 Y channel (0-255), valid positions; a "
                  "sharpness score, not NIQE",
        "reference_set": str(Path(reference)) if reference is not None and distribution else None,
        "reference_size": len(ref_paths) if distribution else None,
        "distribution_features": distribution_info,
        "testset_manifest": str(manifest_path) if manifest_path else None,
        "testset": _manifest_protocol(manifest) if manifest else None,
        "versions": _versions(),
    }
    result = {"rows": rows, "columns": columns, "summary": summary, "distribution": distribution,
              "protocol": protocol, "skipped": skipped, "groups": None}
    if groups:
        result["groups"] = group_summaries(rows, columns, groups)
        protocol["groups"] = groups
    return result


_COLUMN_ORDER = ("psnr_y", "psnr_rgb", "ssim_y", "ssim_rgb", "lpips", "ids", "deg", "ids_lq", "deg_lq", "lapvar",
                 "lapvar_gt", "lapvar_lq")


def _ordered_columns(rows: Sequence[dict]) -> list[str]:
    present = {k for r in rows for k in r if k != "file"}
    return [c for c in _COLUMN_ORDER if c in present] + sorted(present - set(_COLUMN_ORDER))


def _versions() -> dict[str, str]:
    import diffrestore

    versions = {"diffrestore": diffrestore.__version__, "torch": torch.__version__}
    try:
        import cv2

        versions["opencv"] = cv2.__version__
    except ImportError:
        pass
    return versions


# ------------------------------------------------------------------------------------------------
# reports


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def summary_markdown(result: dict[str, Any], title: str = "Evaluation") -> str:
    protocol = result["protocol"]
    parts = [f"# {title}", "", "## Protocol", ""]
    for key, value in protocol.items():
        if value in (None, {}, []):
            continue
        if isinstance(value, dict):
            value = json.dumps(value, sort_keys=True, ensure_ascii=False)
        parts.append(f"- **{key}**: {value}")
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


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# Public names of the report formatting that the sweeps share with this module.
format_value = _fmt
json_safe = _json_safe


def write_reports(result: dict[str, Any], out_dir: str | Path, overwrite: bool = False,
                  title: str = "Evaluation") -> dict[str, Path]:
    """Write ``per_image.csv``, ``summary.json`` and ``summary.md`` into ``out_dir``."""
    out_dir = Path(out_dir)
    paths = {name: out_dir / name for name in RESULT_FILES}
    existing = [p for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]}: already exists (pass --overwrite to replace it)")
    out_dir.mkdir(parents=True, exist_ok=True)
    label_cols = ["age", "gender", "race"] if result.get("groups") else []
    with open(paths["per_image.csv"], "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file"] + label_cols + list(result["columns"]))
        for row in result["rows"]:
            labels = utkface_labels(row["file"]) if label_cols else {}
            writer.writerow([row["file"]] + [labels[c] for c in label_cols]
                            + [_fmt(row.get(c), 6) for c in result["columns"]])
    summary = {k: result[k] for k in ("summary", "distribution", "groups", "protocol", "skipped")}
    paths["summary.json"].write_text(json.dumps(_json_safe(summary), indent=1) + "\n")
    paths["summary.md"].write_text(summary_markdown(result, title))
    return paths


# ------------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffrestore-eval", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--restored", required=True, help="folder of restored aligned faces")
    parser.add_argument("--gt", help="folder of ground-truth faces (paired by file name stem)")
    parser.add_argument("--lq", help="folder of the LQ inputs (no-reference identity check)")
    parser.add_argument("--identity", default="sface",
                        help="identity evaluator: sface (default), facenet[:WEIGHTS.pt], or an IdentityNet folder. "
                             "Never the network that guided the restoration.")
    parser.add_argument("--reference", help="reference set for the distribution distances (default: --gt)")
    parser.add_argument("--groups", choices=GROUPINGS, help="per-group summaries from file names")
    parser.add_argument("--metrics", help=f"comma-separated subset of {','.join(METRICS)} (default: all that apply)")
    parser.add_argument("--color", choices=M.COLOR_SPACES, default="y",
                        help="colour space of PSNR/SSIM: y = BT.601 luma (default), rgb")
    parser.add_argument("--crop-border", type=int, default=0, help="pixels cropped at each border for PSNR/SSIM")
    parser.add_argument("--template", default=DEFAULT_TEMPLATE,
                        help="alignment template of the faces (name in diffrestore/templates or JSON path)")
    parser.add_argument("--vq-model", help="pipeline or VQModel folder whose encoder gives the FD-VQ features")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, help="output folder for per_image.csv, summary.json, summary.md")
    parser.add_argument("--overwrite", action="store_true", help="replace existing reports in --out")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    try:
        result = evaluate_folders(
            args.restored, args.gt, args.lq, identity=args.identity, reference=args.reference, groups=args.groups,
            metrics=metrics, color=args.color, crop_border=args.crop_border, template=args.template,
            vq_model=args.vq_model, device=args.device, verbose=True)
        paths = write_reports(result, args.out, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError, ImportError, RuntimeError) as err:
        print(f"diffrestore-eval: error: {err}", file=sys.stderr)
        return 2
    for reason in result["skipped"]:
        print(reason, file=sys.stderr)
    print(paths["summary.md"].read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
