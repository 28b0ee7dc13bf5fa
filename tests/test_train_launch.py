"""``python train.py --processes N`` (train.py's own ``accelerate launch``): an error before training reaches
the user as the same one line and exit status as under ``python train.py``; ``accelerate launch`` alone
would add its traceback and exit 1 (diffrestore/training/launch.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from diffrestore.training import launch

from train_helpers import REPO, reset_accelerate, subprocess_env, write_config

sys.path.insert(0, str(REPO))
import train  # noqa: E402  (the script, imported for its main)


@pytest.fixture
def missing_data(tmp_path) -> list[str]:
    config = write_config(tmp_path, "backbone", tmp_path / "run")
    yield ["--config", str(config), f"data.hq_dir={tmp_path / 'missing'}"]
    reset_accelerate()


def test_a_worker_reports_its_error_once_and_leaves_the_status_to_the_launcher(missing_data, tmp_path,
                                                                               monkeypatch, capsys):
    assert train.main(missing_data) == 2  # python train.py
    alone = capsys.readouterr().err
    assert alone == f"error: {tmp_path / 'missing'}: no such file or directory\n"

    status = tmp_path / "status"
    monkeypatch.setenv(launch.STATUS_FILE_ENV, str(status))
    monkeypatch.setenv("RANK", "0")
    assert train.main([*missing_data, "--processes", "2"]) == 0  # a worker: accelerate sees success ...
    assert capsys.readouterr().err == alone and status.read_text() == "2\n"  # ... the launcher the status
    monkeypatch.setenv("RANK", "1")
    assert train.main(missing_data) == 0 and capsys.readouterr().err == ""  # said once, by the main process


@pytest.mark.parametrize("worker, code", [
    ("import os, pathlib; pathlib.Path(os.environ['{env}']).write_text('2\\n')", 2),  # a reported error
    ("import sys; sys.exit(1)", 1),  # a crash (its traceback is its own): accelerate's status
    ("pass", 0),
])
def test_the_launcher_exits_with_the_status_its_workers_recorded(worker, code, monkeypatch):
    script = worker.format(env=launch.STATUS_FILE_ENV)
    monkeypatch.setattr(launch, "accelerate_command", lambda *_: [sys.executable, "-c", script])
    assert launch.launch(Path("train.py"), [], processes=2) == code


def test_the_launch_command_is_quiet_and_complete():
    command = launch.accelerate_command(Path("train.py"), ["--config", "x.yaml"], processes=2, cpu=True)
    assert command[1:4] == ["launch", "--quiet", "--multi_gpu"] and command[-3:] == ["train.py", "--config", "x.yaml"]
    # every value accelerate would otherwise warn about having defaulted
    for flag in ("--num_processes", "--num_machines", "--mixed_precision", "--dynamo_backend",
                 "--num_cpu_threads_per_process"):
        assert flag in command


@pytest.mark.slow
def test_launched_the_user_sees_the_one_line_and_exit_2(missing_data, tmp_path, capsys):
    """The real thing: train.py --processes 1 starts accelerate launch, whose worker fails before training."""
    assert train.main(missing_data) == 2
    alone = capsys.readouterr().err
    env = subprocess_env()
    env.pop(launch.STATUS_FILE_ENV, None)
    run = subprocess.run([sys.executable, str(REPO / "train.py"), "--processes", "1", *missing_data],
                         capture_output=True, text=True, env=env, timeout=120)
    assert (run.returncode, run.stderr, run.stdout) == (2, alone, "")
