"""``accelerate launch sample.py --lq DIR`` on two real CPU processes (gloo): the folder is shared out,
every file restored exactly once, existing outputs skipped, one summary printed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from diffrestore.cli import restore as cli
from diffrestore.pipeline.pipeline_diffrestore import DiffRestorePipeline

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(*args: str, processes: int = 2) -> subprocess.CompletedProcess:
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate, f"the accelerate CLI is not installed beside {sys.executable}"
    # `--cpu --num_processes 2` would start ONE process; --multi_gpu with ACCELERATE_USE_CPU starts gloo DDP.
    command = [accelerate, "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
               str(ROOT / "sample.py"), *args]
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def test_two_processes_restore_each_file_exactly_once(tmp_path, face_paths):
    model = tmp_path / "tiny"
    DiffRestorePipeline.from_model_config(ROOT / "configs/model/tiny.yaml").save_pretrained(model)
    lq, out = tmp_path / "faces", tmp_path / "restored"
    names = []
    for i, path in enumerate(face_paths[:6]):
        name = f"{'sub/' if i % 2 else ''}{path.name}"
        (lq / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, lq / name)
        names.append(name)
    options = ["--model", str(model), "--aligned", "--steps", "2", "--start-t", "100", "--guidance", "0"]
    assert cli.main(["--lq", str(lq / names[0]), "--out", str(out), *options, "--device", "cpu", "--quiet"]) == 0
    kept = (out / names[0]).stat().st_mtime_ns  # already done: a resumed run skips it

    run = launch("--lq", str(lq), "--out", str(out), *options, "--verbose")
    lines = run.stdout.splitlines()
    restored = [line.split(": ")[0] for line in lines if line.endswith(": aligned, 1 face(s)")]
    assert sorted(restored) == sorted(names[1:])  # each file by one process, once
    summaries = [line for line in lines if line.startswith(f"{out}: ")]
    assert summaries == [f"{out}: done 5 (5 faces), skipped 1 (output exists; --overwrite to redo), failed 0"]
    assert all((out / name).is_file() for name in names)
    assert (out / names[0]).stat().st_mtime_ns == kept


def test_a_verbose_line_is_one_write(monkeypatch):
    """Processes under `accelerate launch` share stdout: a line written in two pieces lets another
    process's line in between (seen as a lost file in the test above)."""
    from PIL import Image

    from diffrestore.cli.files import Job
    from diffrestore.cli.progress import Progress
    from diffrestore.pipeline.restore import Restoration

    writes: list[str] = []

    class Recorder:
        def write(self, text: str) -> None:
            if text:
                writes.append(text)

        def flush(self) -> None:
            writes.append("<flush>")

    monkeypatch.setattr(sys, "stdout", Recorder())
    progress = Progress(total=1, quiet=True, verbose=True)
    job = Job(Path("in/a.png"), Path("out/a.png"), "sub/a.png", Path("out/.diffrestore/a.png"))
    progress.image(job, Restoration(Image.new("RGB", (8, 8)), num_faces=1, mode="aligned"))
    progress.close()
    assert writes[:2] == ["sub/a.png: aligned, 1 face(s)\n", "<flush>"]  # whole, and out at once
