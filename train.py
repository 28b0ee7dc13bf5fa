"""Train one stage of diffrestore.

    python train.py --config configs/train/<stage>.yaml [key=value ...] [--resume latest]
    python train.py --processes 4 --config ...        # through accelerate launch, on 4 GPUs (or CPU processes)
    accelerate launch train.py --config ...           # works too, but its own traceback follows an error

Stages and their configs: diffrestore/training/stages/, configs/train/. The trained components are
exported to <output_dir>/export. Ctrl-C (SIGINT) or SIGTERM saves a checkpoint at the current step, prints
where it is and the command that resumes, and exits 130. An error before training is one line and exit 2,
with --processes too (diffrestore/training/launch.py says why accelerate launch alone cannot).
"""

from __future__ import annotations

import argparse
import sys

from pathlib import Path

from diffrestore.config import ConfigError, load_config
from diffrestore.training import TrainConfig, Trainer
from diffrestore.training.launch import is_main_process, launch, launched, report_status
from diffrestore.training.stages import STAGES

EXIT_INTERRUPTED = 130


def resume_command(argv: list[str] | None) -> str:
    """This command again with ``--resume latest`` (replacing any --resume it had)."""
    args = list(sys.argv[1:] if argv is None else argv)
    for flag in [a for a in args if a.startswith("--resume")]:
        at = args.index(flag)
        del args[at:at + (1 if "=" in flag else 2)]
    return " ".join(["python train.py", *args, "--resume latest"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--config", required=True, help="a training config (configs/train/<stage>.yaml)")
    parser.add_argument("--processes", type=int, help="run under accelerate launch on this many processes (GPUs)")
    parser.add_argument("--resume", help="'latest' (newest complete checkpoint of output_dir) or a checkpoint folder")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=2e-4")
    return parser.parse_intermixed_args(argv)


def fail(message: str, code: int) -> int:
    """Report an error once (the main process) and return the exit status (see launch.report_status)."""
    if is_main_process():
        print(message, file=sys.stderr)
    return report_status(code)


def main(argv: list[str] | None = None) -> int:
    from diffrestore.training.trainer import TrainingInterrupted

    args = parse_args(argv)
    if args.processes is not None and not launched():
        if args.processes < 1:
            return fail(f"error: --processes {args.processes}: must be at least 1", 2)
        return launch(Path(__file__).resolve(), list(sys.argv[1:] if argv is None else argv), args.processes)
    overrides = list(args.overrides) + ([f"resume={args.resume}"] if args.resume else [])
    try:
        cfg = load_config(args.config, TrainConfig, overrides)
        if cfg.stage not in STAGES:
            raise ConfigError(f"{args.config}: config key 'stage': unknown stage {cfg.stage!r} "
                              f"(one of {', '.join(sorted(STAGES))})")
        trainer = Trainer(cfg, STAGES[cfg.stage](cfg))
        out = trainer.train()
    except (ConfigError, FileNotFoundError) as err:  # the message names the key or the file
        return fail(f"error: {err}", 2)
    except TrainingInterrupted as stop:
        return fail(f"interrupted ({stop.signal_name}) at step {stop.step}: checkpoint saved to {stop.path}\n"
                    f"  resume with: {resume_command(argv)}", EXIT_INTERRUPTED)
    except KeyboardInterrupt:  # before the first step: nothing trained, nothing to save
        return fail("interrupted before training started: nothing to save", EXIT_INTERRUPTED)
    if trainer.accelerator.is_main_process:
        print(f"exported to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
