"""Ctrl-C (SIGINT) or SIGTERM in ``python train.py``: a checkpoint at the current step, where it is and how to
resume on one stderr message, exit 130, no traceback; the run resumes from it."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from diffrestore.training import checkpoint as ckpt
from train_helpers import REPO, read_log, run_train, subprocess_env, train_command, write_config


def logged_steps(run: Path) -> int:
    log = run / "log.jsonl"
    return len([row for row in read_log(run) if "event" not in row]) if log.is_file() else 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_saves_the_current_step_and_says_how_to_resume(tmp_path, sig):
    run = tmp_path / "run"
    config = write_config(tmp_path, "backbone", run, max_steps=100_000, checkpoint_every=1000)
    proc = subprocess.Popen(train_command(config), cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while logged_steps(run) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    found = re.search(rf"interrupted \({sig.name}\) at step (\d+): checkpoint saved to (\S+)\n"
                      rf"  resume with: python train.py --config {re.escape(str(config))} --resume latest", err)
    assert found, err[-2000:]
    step, path = int(found[1]), Path(found[2])
    assert path == ckpt.latest_checkpoint(run / "checkpoints") and ckpt.read_state(path)["step"] == step
    assert step >= 3 and step == logged_steps(run)  # the current step, not the last periodic checkpoint (none)
    if sig == signal.SIGTERM:
        return  # the resume is the same after either signal: run it once
    resumed = run_train(config, "--resume", "latest", f"max_steps={step + 1}")
    assert f"resumed from {path} at step {step}" in resumed.stdout + resumed.stderr
