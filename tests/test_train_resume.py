"""Exact resume: a run that is stopped (or killed) and resumed in a new process ends bitwise identical to
an uninterrupted run — weights, optimizer and scheduler states, EMA, RNG states."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from diffrestore.training import Trainer
from diffrestore.training import checkpoint as ckpt
from diffrestore.training.stages import STAGES
from train_helpers import (REPO, assert_identical, checkpoint_contents, read_log, reset_accelerate, run_train,
                           subprocess_env, tiny_config, train_command, write_config)

pytestmark = pytest.mark.slow


def train_in_process(tmp_path, stage, run, **settings):
    cfg = tiny_config(tmp_path, stage, run, **settings)
    try:
        Trainer(cfg, STAGES[stage](cfg)).train()
    finally:
        reset_accelerate()
    return run


def final(run, step):
    return checkpoint_contents(run / "checkpoints" / ckpt.checkpoint_name(step))


@pytest.mark.parametrize("stage, settings", [
    # EMA, gradient accumulation, a resume point in the middle of an epoch (20 faces -> 5 batches of 4;
    # step 3 = micro-batch 6 = epoch 1 + 1 batch).
    ("backbone", {"max_steps": 6, "checkpoint_every": 3, "gradient_accumulation_steps": 2}),
    # Two optimizers (VQGAN + discriminator) from the first step.
    ("vqgan", {"max_steps": 4, "checkpoint_every": 2}),
    # The training set resident in device memory, degradations made there, resumed mid-epoch.
    ("backbone", {"max_steps": 6, "checkpoint_every": 3, "gradient_accumulation_steps": 2, "data": {"resident": True}}),
])
def test_resume_in_a_new_process_is_exact(tmp_path, stage, settings):
    whole = train_in_process(tmp_path, stage, tmp_path / "whole", **settings)
    half = settings["max_steps"] // 2
    resumed = tmp_path / "resumed"
    config = write_config(tmp_path, stage, resumed, **settings)
    run_train(config, "--resume", str(whole / "checkpoints" / ckpt.checkpoint_name(half)))

    assert read_log(resumed)[0]["event"].startswith("resumed from")
    a, b = final(whole, settings["max_steps"]), final(resumed, settings["max_steps"])
    assert any(name.startswith("optimizer") for name in a) and "random_states_0.pkl" in a
    assert_identical(a, b)
    # and the comparison is not vacuous: the half-way state differs from the end
    with pytest.raises(AssertionError):
        assert_identical(final(whole, half)["model.safetensors"], a["model.safetensors"])


def test_killed_run_resumes_from_latest_to_the_same_weights(tmp_path):
    settings = {"max_steps": 12, "checkpoint_every": 3, "keep_last": 2}
    config = write_config(tmp_path, "backbone", tmp_path / "killed", **settings)
    proc = subprocess.Popen(train_command(config), cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    root = tmp_path / "killed" / "checkpoints"
    try:
        deadline = time.monotonic() + 120
        while not ckpt.list_checkpoints(root) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)  # the first checkpoint is at step 3 of 12: kill it well before the end
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed mid-run"
    killed_at = ckpt.latest_checkpoint(root)
    assert killed_at is not None and ckpt.read_state(killed_at)["step"] < settings["max_steps"]

    run_train(config, "--resume", "latest")
    rows = read_log(tmp_path / "killed")
    resumed_from = [row["event"] for row in rows if "event" in row]
    assert len(resumed_from) == 1 and "step-" in resumed_from[0]
    logged = [row["step"] for row in rows if "event" not in row]
    assert logged == list(range(1, settings["max_steps"] + 1))  # the killed run's rows past its checkpoint went

    whole = train_in_process(tmp_path, "backbone", tmp_path / "whole", **settings)
    assert_identical(final(whole, 12), final(tmp_path / "killed", 12))


def test_resume_latest_ignores_a_half_written_checkpoint(tmp_path):
    run = train_in_process(tmp_path, "backbone", tmp_path / "run", max_steps=4, checkpoint_every=2)
    root = run / "checkpoints"
    partial = ckpt.temp_dir(root, 6)  # what a kill during save_state leaves
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\0" * 10)
    assert ckpt.latest_checkpoint(root).name == "step-00000004"

    train_in_process(tmp_path, "backbone", run, max_steps=6, checkpoint_every=2, resume="latest")
    events = [row["event"] for row in read_log(run) if "event" in row]
    assert events == [f"resumed from {root / 'step-00000004'}"]
    assert not partial.exists()
    assert ckpt.read_state(ckpt.latest_checkpoint(root))["step"] == 6


def test_resume_warns_when_the_schedule_changed(tmp_path, caplog):
    run = train_in_process(tmp_path, "backbone", tmp_path / "run", max_steps=2, checkpoint_every=2)
    with caplog.at_level("WARNING"):
        train_in_process(tmp_path, "backbone", run, max_steps=4, checkpoint_every=2, resume="latest")
    assert "max_steps=2, resumed with 4" in caplog.text
