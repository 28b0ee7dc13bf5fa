"""Helpers of the training tests: tiny configs of real stages, subprocess runs, checkpoint comparison."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from diffrestore.config import load_config
from diffrestore.training import TrainConfig

REPO = Path(__file__).resolve().parents[1]
FACES = REPO / "tests" / "assets" / "faces"

# Small and fast: the tiny model at 32 px, 4 faces a batch, no workers, no TensorBoard.
TINY = {"data": {"hq_dir": str(FACES), "val_dir": None, "num_workers": 0}, "batch_size": 4, "log_with": "none",
        "mixed_precision": "no",
        "optim": {"warmup_steps": 2}, "log_every": 1, "sample_every": 1000}
STAGE_TINY = {"vqgan": {"loss": {"gan_start_step": 0, "perceptual": "ssim"}}}  # both optimizers from step 0


def write_config(folder: Path, stage: str, output_dir: Path, **settings: Any) -> Path:
    """A config file: ``configs/train/<stage>.yaml`` + the tiny model + ``TINY`` + ``settings``."""
    folder.mkdir(parents=True, exist_ok=True)
    body = OmegaConf.merge(TINY, STAGE_TINY.get(stage, {}), {"output_dir": str(output_dir)}, settings)
    path = folder / f"{stage}-{output_dir.name}.yaml"
    path.write_text(f"defaults: [{REPO}/configs/train/{stage}.yaml, {REPO}/configs/model/tiny.yaml]\n"
                    + OmegaConf.to_yaml(body))
    return path


def tiny_config(folder: Path, stage: str, output_dir: Path, **settings: Any) -> TrainConfig:
    return load_config(write_config(folder, stage, output_dir, **settings), TrainConfig)


def reset_accelerate() -> None:
    """accelerate keeps process-wide singletons; each in-process Trainer builds a new Accelerator."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), TQDM_DISABLE="1")
    env.pop("ACCELERATE_USE_CPU", None)
    return env


def train_command(config: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "train.py"), "--config", str(config), *extra]


def run_train(config: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run(train_command(config, *extra), cwd=REPO, env=subprocess_env(), capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def checkpoint_contents(folder: Path) -> dict[str, Any]:
    """Everything a checkpoint holds: weights, optimizer and scheduler states, EMA, stage state, RNGs."""
    out: dict[str, Any] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".safetensors":
            out[path.name] = load_file(path)
        elif path.suffix in (".bin", ".pkl"):
            out[path.name] = torch.load(path, map_location="cpu", weights_only=False)
    return out


def assert_identical(a: Any, b: Any, where: str = "") -> None:
    """Exact (bitwise for tensors) equality of nested checkpoint contents; names the first difference."""
    import numpy as np

    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where}: tensors differ (max |diff| {(a.double() - b.double()).abs().max()})"
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), f"{where}: arrays differ"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(map(str, a))} != {sorted(map(str, b))}"
        for key in a:
            assert_identical(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
