"""Ctrl-C: SIGINT to a running ``sample.py`` drops the image in progress, keeps the finished ones,
prints the summary without a traceback, exits 130; a rerun restores the rest."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from diffrestore.cli import restore as cli
from diffrestore.cli.files import LEDGER
from diffrestore.pipeline.pipeline_diffrestore import DiffRestorePipeline

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.slow


def test_sigint_stops_cleanly_and_a_rerun_resumes(tmp_path, face_paths, capsys):
    model = tmp_path / "tiny"
    DiffRestorePipeline.from_model_config(ROOT / "configs/model/tiny.yaml").save_pretrained(model)
    lq = tmp_path / "faces"
    lq.mkdir()
    for path in face_paths[:6]:
        shutil.copy(path, lq / path.name)
    args = ["--lq", str(lq), "--model", str(model), "--aligned", "--steps", "10", "--start-t", "200", "--guidance", "0",
            "--device", "cpu", "--verbose"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    run = subprocess.Popen([sys.executable, str(ROOT / "sample.py"), *args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                           # a test run in the background inherits SIGINT ignored; a user's terminal does not
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen, deadline = [], time.monotonic() + 180
    while time.monotonic() < deadline:
        line = run.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.rstrip().endswith("aligned, 1 face(s)"):  # one image written: interrupt the next
            run.send_signal(signal.SIGINT)
            break
    out, err = run.communicate(timeout=120)
    out = "".join(seen) + out
    assert run.returncode == 130, out + err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "interrupted: " in out and "rerun the same command to resume" in out
    summary = next(line for line in out.splitlines() if line.startswith("interrupted: "))
    done = int(summary.split("done ")[1].split()[0])
    left = int(summary.split("left ")[1].split()[0])
    assert 1 <= done < 6 and done + left == 6, summary

    outputs = sorted(p for p in (tmp_path / "faces_restored").iterdir() if p.name != LEDGER)
    assert [p.name for p in outputs if p.name.startswith(".")] == []  # no partial (temporary) file
    assert not list((tmp_path / "faces_restored" / LEDGER).glob("*.claim"))  # released
    assert len(outputs) == done
    for path in outputs:
        with Image.open(path) as image:
            image.load()  # complete files only

    assert cli.main(args) == 0
    assert f"done {6 - done} ({6 - done} faces), skipped {done}" in capsys.readouterr().out
    assert len(list((tmp_path / "faces_restored").glob("*.webp"))) == 6
