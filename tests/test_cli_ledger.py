"""Outputs that cannot collide, reruns that skip only their own outputs, processes that share a folder:
every output name is planned before any work (a collision exits 2 naming both files), the record beside
each output (``<out>/.diffrestore/NAME.json``) says which input and options made it, and a claim
(``NAME.claim``) which process is restoring it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from diffrestore.cli import restore as cli
from diffrestore.cli.files import LEDGER
from diffrestore.cli.ledger import STALE_CLAIM_S, claim_file, release_claim, try_claim
from diffrestore.pipeline.pipeline_diffrestore import DiffRestorePipeline

ROOT = Path(__file__).parents[1]
FAST = ["--steps", "2", "--start-t", "100", "--guidance", "0", "--device", "cpu", "--quiet"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
    return subprocess.run([sys.executable, str(ROOT / "sample.py"), *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "tiny"
    DiffRestorePipeline.from_model_config(ROOT / "configs/model/tiny.yaml").save_pretrained(folder)
    return folder


def folder_of(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in names:
        Image.new("RGB", (64, 64), (120, 90, 80)).save(folder / name)
    return folder


@pytest.mark.parametrize("names, flag, clash", [
    (("b.png", "b_comparison.png"), "--save-comparison", "b_comparison.png"),
    (("a.png", "a.jpg"), "--save-faces", "a_faceNN_*.png"),
])
def test_colliding_outputs_are_refused_up_front_naming_both_files(names, flag, clash, tmp_path):
    lq, out = folder_of(tmp_path, *names), tmp_path / "out"
    run = run_cli("--lq", str(lq), "--out", str(out), flag, "--device", "cpu")
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    first, second = sorted(names)
    assert str(lq / first) in lines[0] and str(lq / second) in lines[0] and str(out / clash) in lines[0]
    assert run.stdout == "" and not out.exists()  # nothing done


def test_an_input_named_like_another_image_s_face_crop_is_refused(tmp_path, capsys):
    lq = folder_of(tmp_path, "a.png", "a_face00_input.png")
    assert cli.main(["--lq", str(lq), "--out", str(tmp_path / "out"), "--save-faces", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{lq / 'a.png'}'s --save-faces crops and {lq / 'a_face00_input.png'}" in err


def test_without_the_extra_outputs_the_same_names_are_fine(tmp_path, model_dir, capsys):
    lq = folder_of(tmp_path, "b.png", "b_comparison.png")
    assert cli.main(["--lq", str(lq), "--out", str(tmp_path / "out"), "--model", str(model_dir), "--aligned",
                     *FAST]) == 0
    assert "done 2" in capsys.readouterr().out


def test_a_rerun_skips_only_what_this_image_made_with_these_options(tmp_path, face_paths, model_dir, capsys):
    lq, out = tmp_path / "faces", tmp_path / "out"
    lq.mkdir()
    first, second = (p.name for p in face_paths[:2])
    for path in face_paths[:2]:
        shutil.copy(path, lq / path.name)
    args = ["--lq", str(lq), "--out", str(out), "--model", str(model_dir), "--aligned", *FAST]
    assert cli.main(args) == 0
    record = json.loads((out / LEDGER / f"{first}.json").read_text())
    assert record["input"] == first and record["files"] == [first] and record["finished"]
    capsys.readouterr()

    (out / first).unlink()  # an output lost: its own record lets the rerun write it again
    shutil.copy(face_paths[5], lq / second)  # another photo under the same name
    shutil.copy(face_paths[6], lq / "new.webp")
    shutil.copy(face_paths[7], out / "new.webp")  # a file the tool did not write
    kept = (out / second).read_bytes(), (out / "new.webp").read_bytes()

    assert cli.main(args) == 1
    report = capsys.readouterr().out
    assert report.startswith(f"{out}: done 1 (1 faces), skipped 0 (output exists; --overwrite to redo), failed 2")
    assert f"FAILED {lq / second}: {out / second} exists and is not this image's output (made from another input)" \
           in report
    assert f"FAILED {lq / 'new.webp'}: {out / 'new.webp'} exists and is not this image's output (no record" in report
    assert ((out / second).read_bytes(), (out / "new.webp").read_bytes()) == kept

    assert cli.main([*args, "--overwrite"]) == 0
    assert "done 3 (3 faces)" in capsys.readouterr().out
    os.utime(lq / first, (1e9, 1e9))  # touched, or copied without its time: the same content still counts
    assert cli.main(args) == 0
    assert "done 0 (0 faces), skipped 3" in capsys.readouterr().out


def test_a_claim_is_held_once_and_a_dead_process_s_claim_is_taken_over(tmp_path):
    ledger = tmp_path / LEDGER / "face.png"
    assert try_claim(ledger) and not try_claim(ledger)  # held: by this (live) process
    release_claim(ledger)
    assert try_claim(ledger)

    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    claim_file(ledger).write_text(f"{finished.pid} {socket.gethostname()}\n")
    assert try_claim(ledger) and claim_file(ledger).read_text() == f"{os.getpid()} {socket.gethostname()}\n"

    claim_file(ledger).write_text(f"{finished.pid} another-machine\n")  # cannot tell: respected
    assert not try_claim(ledger)
    claim_file(ledger).write_text("")  # a process killed between creating and writing it ...
    assert not try_claim(ledger)
    old = time.time() - 2 * STALE_CLAIM_S
    os.utime(claim_file(ledger), (old, old))  # ... a while ago
    assert try_claim(ledger)
    assert sorted(p.name for p in ledger.parent.iterdir()) == ["face.png.claim"]


def start_cli(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(ROOT / "sample.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_two_processes_on_one_folder_restore_each_file_once(tmp_path, face_paths, model_dir):
    lq, out = tmp_path / "faces", tmp_path / "out"
    lq.mkdir()
    for path in face_paths[:4]:
        shutil.copy(path, lq / path.name)
    args = ["--lq", str(lq), "--out", str(out), "--model", str(model_dir), "--aligned", *FAST[:-1], "--verbose"]
    runs = [start_cli(*args) for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs

    restored = [line.split(": ")[0] for out_, _ in outputs for line in out_.splitlines()
                if line.endswith(": aligned, 1 face(s)")]
    assert sorted(restored) == sorted(p.name for p in face_paths[:4])  # each file once, by one process
    summaries = [line for out_, _ in outputs for line in out_.splitlines() if line.startswith(f"{out}: done")]
    assert len(summaries) == 2 and all("failed 0" in line for line in summaries), summaries
    assert len(list(out.glob("*.webp"))) == 4 and not list((out / LEDGER).glob("*.claim"))
