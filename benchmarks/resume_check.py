"""Exact resume of every stage on GPU-resident data, across two separate processes (or machine calls).

    python benchmarks/resume_check.py first  --runs /tmp/resume_check --hq data/celebahq256/train
    python benchmarks/resume_check.py second --runs /tmp/resume_check --hq data/celebahq256/train --append

``first``: each stage of ``configs/train/celebahq256/`` (frozen inputs and teacher embeddings: random
stand-ins, kept under ``--runs``) trains ``2k`` steps on resident data, checkpointing at step ``k``.
``second``, in a new process: resumes each from its step-``k`` checkpoint to ``2k``, and trains it again
from scratch to ``2k``; the table compares the losses logged at steps ``k+1..2k`` of the resumed run
and of the second uninterrupted run with the first run's. Deterministic algorithms are asked for
(``warn_only``: kernels without a deterministic version run anyway, which the second row measures).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_header, report  # noqa: E402
from training import use_random_pretrained  # noqa: E402

from diffrestore.config import load_config  # noqa: E402
from diffrestore.training import TrainConfig, Trainer  # noqa: E402
from diffrestore.training.stages import STAGES  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STAGE_SETTINGS = {"vqgan": ["loss.gan_start_step=0", "loss.scale_images=64", "loss.perceptual=ssim"],
                  "score": ["loss.sample_steps=2"], "mask": ["loss.eval_images=16"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("phase", choices=["first", "second"])
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--hq", required=True)
    p.add_argument("--stages", default="vqgan,backbone,score,identity,irn,mask")
    p.add_argument("--steps", type=int, default=4, help="k: the checkpoint step; runs end at 2k")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--append", action="store_true")
    p.add_argument("--results", type=Path, default=None)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="for every stage, e.g. mixed_precision=no on a CPU")
    return p.parse_intermixed_args(argv)


def run(args: argparse.Namespace, stage: str, name: str, resume: str | None = None) -> list[dict]:
    from accelerate.state import AcceleratorState, GradientState

    out = args.runs / stage / name
    overrides = [f"output_dir={out}", f"data.hq_dir={args.hq}", "data.val_dir=null", f"max_steps={2 * args.steps}",
                 f"checkpoint_every={args.steps}", "keep_last=0", "log_every=1", "log_with=none",
                 f"sample_every={10 * args.steps}", f"batch_size={args.batch_size}", "optim.warmup_steps=1",
                 *STAGE_SETTINGS.get(stage, []), *args.overrides] + ([f"resume={resume}"] if resume else [])
    cfg = load_config(REPO / "configs" / "train" / "celebahq256" / f"{stage}.yaml", TrainConfig, overrides)
    use_random_pretrained(cfg, args.runs / "pretrained" / stage)
    try:
        Trainer(cfg, STAGES[stage](cfg)).train()
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def losses_after(rows: list[dict], step: int) -> dict[int, dict[str, float]]:
    return {r["step"]: {k: v for k, v in r.items() if k.startswith("loss/")} for r in rows
            if "event" not in r and r["step"] > step}


def max_difference(a: dict, b: dict) -> float:
    return max(abs(a[s][k] - b[s][k]) for s in a for k in a[s])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.use_deterministic_algorithms(True, warn_only=True)
    stages = args.stages.split(",")
    if args.phase == "first":
        for stage in stages:
            run(args, stage, "whole")
        return 0
    rows = []
    for stage in stages:
        whole = losses_after([json.loads(x) for x in (args.runs / stage / "whole" / "log.jsonl").read_text().splitlines()],
                             args.steps)
        checkpoint = args.runs / stage / "whole" / "checkpoints" / f"step-{args.steps:08d}"
        resumed = losses_after(run(args, stage, "resumed", resume=str(checkpoint)), args.steps)
        again = losses_after(run(args, stage, "again"), args.steps)
        assert resumed.keys() == whole.keys() == again.keys(), (stage, resumed.keys(), whole.keys())
        scale = max(abs(v) for s in whole for v in whole[s].values())
        rows.append({"stage": stage, "steps compared": f"{args.steps + 1}-{2 * args.steps}",
                     "max |loss| ": scale, "resumed vs first run": max_difference(resumed, whole),
                     "second uninterrupted vs first": max_difference(again, whole),
                     "bit-exact resume": max_difference(resumed, whole) == 0})
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    settings = (f"configs/train/celebahq256/<stage>.yaml {' '.join(args.overrides)} on {args.hq}, data.resident=true, "
                f"batch {args.batch_size}, "
                f"checkpoint at step {args.steps} of the first process, resumed in a second process; random frozen "
                f"networks; torch.use_deterministic_algorithms(warn_only=True)")
    report("Resume on resident data, across two processes", machine_header(device), settings, rows, args.append,
           args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
