"""Real data parallelism: two CPU processes (gloo DDP) launched by ``accelerate launch``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
import sys
import socket
import subprocess

import pytest

from train_helpers import REPO, read_log, subprocess_env, write_config

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(config, processes: int = 2) -> subprocess.CompletedProcess:
    # The CLI of the interpreter running the tests, whether or not its environment is activated.
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate, f"the accelerate CLI is not installed beside {sys.executable}"
    # `--cpu --num_processes 2` would start ONE process; --multi_gpu with ACCELERATE_USE_CPU starts gloo DDP.
    command = [accelerate, "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
               str(REPO / "train.py"), "--config", str(config)]
    env = dict(subprocess_env(), ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


@pytest.mark.parametrize("resident", [False, True], ids=["data-loader", "resident"])
def test_two_processes_see_different_data_and_end_identical(tmp_path, resident):
    # vqgan: two optimizers, the discriminator called on real and fake, adaptive weight through autograd.grad;
    # resident: each process holds the faces and takes its share of every global batch
    run = tmp_path / "run"
    steps = 4
    config = write_config(tmp_path, "vqgan", run, max_steps=steps, checkpoint_every=steps,
                          debug_record_indices=True, data={"resident": resident})
    launch(config)

    debug = run / "debug"
    digests = [json.loads((debug / f"weights_rank{r}.json").read_text()) for r in (0, 1)]
    assert digests[0]["step"] == digests[1]["step"] == steps
    assert digests[0]["sha256"] == digests[1]["sha256"]  # vqgan and discriminator, bitwise

    records = [[json.loads(line) for line in (debug / f"indices_rank{r}.jsonl").read_text().splitlines()]
               for r in (0, 1)]
    assert [len(r) for r in records] == [steps, steps]
    for mine, theirs in zip(*records):
        assert mine["step"] == theirs["step"]
        assert len(mine["indices"]) == len(theirs["indices"]) == 4
        assert not set(mine["indices"]) & set(theirs["indices"]), "both processes got the same faces"
    # within an epoch (20 faces, 4 per process -> 2 global batches) no face is seen twice
    epoch = [i for rank in records for row in rank[:2] for i in row["indices"]]
    assert len(epoch) == len(set(epoch)) == 16

    # the logged losses are averaged over both processes, and only the main process writes them
    rows = [row for row in read_log(run) if "loss/vqgan" in row]
    assert [row["step"] for row in rows] == list(range(1, steps + 1))
    assert "loss/discriminator" in rows[0]
    assert (run / "export" / "vqgan" / "config.json").is_file()
