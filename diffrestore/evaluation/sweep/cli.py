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
    data: {lq: data/testsets/utkface-val/lq, gt: data/testsets/utkface-val/hq, limit: null, framing: null}
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

``data.framing: aligned`` restores a set of aligned faces of another size (a CelebA-Test-style set at 512 px)
exactly as ``diffrestore --aligned`` and ``diffrestore-eval-restore`` do, back at the set's size
(``configs/ablations/start_step_celeba256.yaml``); a template name (``ffhq_512``) instead warps each face
into the model's framing and pastes it back (a different path: 0.45 dB apart on the bundled model).

Data paths are relative to the working directory (run from the repository root). Output (default
``runs/ablations/<name>``): ``points/<point>/`` (restored faces, ``per_image.csv``,
``summary.json``/``.md``, ``point.json``), ``results.csv``, ``results.md``, ``plots/<metric>.png``.

A point is skipped when its outputs exist and its hashes match: restoring is redone only when the
sampling config, the model's files or the LQ files change; scoring only when that or the evaluation
settings, the GT or the reference files change. The code itself is not hashed: ``--force`` redoes all.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence

from ...config import ConfigError
from .config import load_sweep
from .results import write_results
from .runner import SweepRunner


def run_sweep(config: str | Path, out: str | Path | None = None, overrides: Sequence[str] = (), force: bool = False,
              score_only: bool = False, restore_only: bool = False,
              log: Callable[[str], None] = print) -> tuple[SweepRunner, dict[str, Path]]:
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
    parser = argparse.ArgumentParser(allow_abbrev=False, prog="diffrestore-sweep", description=__doc__.split("\n\n")[0],
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
