"""Train one stage of diffrestore.

    accelerate launch train.py --config configs/train/<stage>.yaml [key=value ...] [--resume latest]
    python train.py --config configs/train/<stage>.yaml ...            # one process, same code

Stages and their configs: diffrestore/training/stages/, configs/train/. The trained components are
exported to <output_dir>/export.
"""

from __future__ import annotations

import argparse
import sys

from diffrestore.config import ConfigError, load_config
from diffrestore.training import TrainConfig, Trainer
from diffrestore.training.stages import STAGES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a training config (configs/train/<stage>.yaml)")
    parser.add_argument("--resume", help="'latest' (newest complete checkpoint of output_dir) or a checkpoint folder")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=2e-4")
    return parser.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides) + ([f"resume={args.resume}"] if args.resume else [])
    try:
        cfg = load_config(args.config, TrainConfig, overrides)
        if cfg.stage not in STAGES:
            raise ConfigError(f"{args.config}: config key 'stage': unknown stage {cfg.stage!r} "
                              f"(one of {', '.join(sorted(STAGES))})")
        trainer = Trainer(cfg, STAGES[cfg.stage](cfg))
        out = trainer.train()
    except (ConfigError, FileNotFoundError) as err:  # the message names the key or the file
        print(f"error: {err}", file=sys.stderr)
        return 2
    if trainer.accelerator.is_main_process:
        print(f"exported to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
