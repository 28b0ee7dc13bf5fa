"""``diffrestore-testset``: a reproducible synthetic test set of LQ/HQ face pairs.

    diffrestore-testset --hq data/utkface/val --out data/testsets/utkface-val --resolution 128 --seed 0
    diffrestore-testset --hq ../shared/data/celebahq/val --out data/testsets/celeba-test-codeformer \
        --resolution 512 --seed 0 --config configs/testset/celeba_test_codeformer.yaml

(CelebA-Test-style presets of CodeFormer and GFPGAN: ``configs/testset/``.)

writes ``OUT/hq/NAME.png`` (the face at ``--resolution``), ``OUT/lq/NAME.png`` (degraded by the
GFPGAN/CodeFormer model, the papers' ranges scaled to the resolution) and ``OUT/manifest.json``
(recipe, seed, each image's parameters and the SHA-256 of its pixels). Each image's randomness comes from the seed and its
file name only, so the output is the same byte for byte on every run, and an image keeps its
degradation whatever else is in the folder or whatever ``--limit`` is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from .. import __version__
from ..config import ConfigError, read_yaml_chain, merge_config
from ..data.datasets import fit_resolution
from ..data.degradations import DegradationConfig, degrade, sample_params
from ..io import list_images, load_image, pil_to_tensor, save_image, spread_subset


@dataclass
class _DegradationSection:  # so that errors name the key as 'degradation.<key>'
    degradation: DegradationConfig = field(default_factory=DegradationConfig)


def load_degradation(path: str | Path | None) -> DegradationConfig:
    """The ``degradation:`` section of a YAML file (or ``data.degradation:`` of a training config),
    with its ``defaults`` chain, over ``DegradationConfig``'s defaults; ``None`` gives the defaults."""
    if path is None:
        return DegradationConfig()
    merged = OmegaConf.merge(*read_yaml_chain(Path(path)))
    section = merged.get("degradation")
    if section is None:
        section = OmegaConf.select(merged, "data.degradation")
    if section is None:
        raise ConfigError(f"{path}: no 'degradation' (or 'data.degradation') section")
    cfg = merge_config(_DegradationSection, {"degradation": section}, source=str(path))
    return OmegaConf.to_object(cfg).degradation


def image_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of one test image: a function of the seed and the file's relative name."""
    return np.random.default_rng((seed, zlib.crc32(name.encode("utf-8"))))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="diffrestore-testset", description=__doc__.splitlines()[0],
                                     allow_abbrev=False)
    parser.add_argument("--hq", type=Path, required=True, help="folder of aligned HQ faces")
    parser.add_argument("--out", type=Path, required=True, help="folder to write lq/, hq/, manifest.json")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML with a 'degradation:' section overriding the default ranges")
    parser.add_argument("--limit", type=int, default=None, help="use at most N images, evenly spaced over the sorted folder")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        cfg = load_degradation(args.config)
    except ConfigError as err:
        raise SystemExit(str(err)) from err
    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        raise SystemExit(f"{args.out}: not empty (pass --overwrite to write into it)")
    paths = spread_subset(list_images(args.hq), args.limit)
    if not paths:
        raise SystemExit(f"{args.hq}: no images found")
    names = [p.relative_to(args.hq).as_posix() if p != args.hq else p.name for p in paths]
    stems = {}
    for name in names:
        stem = Path(name).stem
        if stem in stems:
            raise SystemExit(f"{args.hq}: '{stems[stem]}' and '{name}' would both be written as {stem}.png")
        stems[stem] = name

    records = []
    for path, name in zip(paths, names):
        hq = pil_to_tensor(fit_resolution(load_image(path), args.resolution))
        params = sample_params(cfg, args.resolution, image_rng(args.seed, name))
        stem = Path(name).stem
        save_image(hq, args.out / "hq" / f"{stem}.png", overwrite=True)
        save_image(degrade(hq, params), args.out / "lq" / f"{stem}.png", overwrite=True)
        records.append({"name": f"{stem}.png", "source": name, "params": params.to_dict(),
                        "pixels_sha256": {side: pixel_digest(args.out / side / f"{stem}.png") for side in ("hq", "lq")}})
    _remove_stale(args.out, {r["name"] for r in records})

    manifest = {
        "tool": f"diffrestore-testset {__version__}",
        "source": str(args.hq),
        "resolution": args.resolution,
        "seed": args.seed,
        "config": str(args.config) if args.config else None,
        "degradation": asdict(cfg),
        "order": "blur, down-sample (bicubic), noise, JPEG (Pillow), resize back (bicubic), "
                 "colour shift, grey",
        "count": len(records),
        "images": records,
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"{args.out}: {len(records)} LQ/HQ pairs at {args.resolution} px, seed {args.seed}")


def pixel_digest(path: Path) -> str:
    """SHA-256 of an image's RGB pixels (not of its file: encoders may write the same pixels differently).
    The same manifest made with other library versions (JPEG, resampling) can give other pixels; comparing
    these digests tells whether two machines score the same test set."""
    return hashlib.sha256(np.asarray(load_image(path)).tobytes()).hexdigest()


def _remove_stale(out: Path, keep: set[str]) -> None:
    """With --overwrite, drop pairs of an earlier run so lq/ and hq/ match the manifest."""
    for folder in (out / "hq", out / "lq"):
        for path in folder.glob("*.png"):
            if path.name not in keep:
                path.unlink()


if __name__ == "__main__":
    main()
