"""The folder loop of issue 31 (``cli.folder``): reading ahead and writing behind on threads, the faces of
several images in one model call, and the same files, outputs and summary as the sequential loop."""

from __future__ import annotations

import os
import shutil
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffrestore.cli import restore as cli
from diffrestore.cli.background import OrderedPool, prefetched
from diffrestore.cli.files import OutputSettings, plan_jobs
from diffrestore.cli.folder import FileHooks, restore_pipelined, write_files
from diffrestore.cli.progress import Progress, Summary
from diffrestore.io import list_images
from diffrestore.pipeline.options import RestoreOptions
from diffrestore.pipeline.pipeline_diffrestore import DiffRestorePipeline
from diffrestore.pipeline.restore import FaceRestorer, padded_size, resolve_compile, set_threads

ROOT = Path(__file__).parents[1]
# PNG outputs: the inputs' WebP is lossy, and its encoder turns a 1-level difference into several
FAST = ["--steps", "2", "--start-t", "100", "--guidance", "0", "--device", "cpu", "--quiet", "--ext", "png"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "tiny"
    DiffRestorePipeline.from_model_config(ROOT / "configs/model/tiny.yaml").save_pretrained(folder)
    return folder


@pytest.fixture
def mixed_folder(tmp_path, face_paths, whole_paths) -> Path:
    """Six aligned faces (one in a subfolder), a whole photo, and a file that is not an image."""
    folder = tmp_path / "lq"
    (folder / "sub").mkdir(parents=True)
    for i, path in enumerate(face_paths[:6]):
        shutil.copy(path, folder / ("sub" if i == 2 else "") / path.name)
    shutil.copy(whole_paths[0], folder / "photo.jpg")
    (folder / "35_broken.png").write_bytes(b"not a png")  # between the faces: the order of the records
    return folder


def levels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def assert_same_outputs(first: Path, second: Path) -> None:
    names = [p.relative_to(first) for p in list_images(first)]  # not the hidden records beside them
    assert names == [p.relative_to(second) for p in list_images(second)] and names
    for name in names:
        assert np.abs(levels(first / name) - levels(second / name)).max() <= 1, name


def test_ordered_pool_returns_in_submission_order_with_errors():
    pool = OrderedPool(3, "test")

    def slow_then_fast(i: int) -> int:
        time.sleep(0.05 * (3 - i))  # the first submitted finishes last
        if i == 1:
            raise ValueError("one")
        return i

    for i in range(3):
        pool.submit(slow_then_fast, i)
    first, second, third = pool.next(), pool.next(), pool.next()
    assert first.result() == 0 and isinstance(second.exception(), ValueError) and third.result() == 2
    pool.close()
    inline = OrderedPool(0, "inline")
    inline.submit(threading.current_thread)
    assert inline.oldest_done() and inline.next().result() is threading.current_thread()


def test_prefetch_reads_at_most_depth_ahead():
    started = []
    pool = OrderedPool(2, "test")
    stream = prefetched(range(10), lambda i: started.append(i) or i * i, pool, depth=3)
    item, future = next(stream)
    assert item == 0 and future.result() == 0
    time.sleep(0.05)
    assert sorted(started) == [0, 1, 2, 3]  # the first and the three ahead of it, no more
    assert [(i, f.result()) for i, f in stream] == [(i, i * i) for i in range(1, 10)]
    pool.close()


def test_the_pipelined_folder_equals_the_sequential_loop(model_dir, mixed_folder, tmp_path, capsys):
    common = ["--lq", str(mixed_folder), "--model", str(model_dir), *FAST]
    assert cli.main([*common, "--out", str(tmp_path / "old"), "--prefetch", "0"]) == 1  # broken.png fails
    old = capsys.readouterr().out
    assert cli.main([*common, "--out", str(tmp_path / "new")]) == 1
    new = capsys.readouterr().out
    assert old.replace(str(tmp_path / "old"), str(tmp_path / "new")) == new
    assert "done 7 (" in new and f"FAILED {mixed_folder / '35_broken.png'}: " in new
    assert_same_outputs(tmp_path / "old", tmp_path / "new")


def restorer_of(model_dir: Path, **settings) -> FaceRestorer:
    options = RestoreOptions(model=str(model_dir), device="cpu", steps=2, start_t=100, guidance=0, **settings)
    return FaceRestorer.from_options(options)


def run_pipelined(restorer: FaceRestorer, lq: Path, out: Path, faces_per_call: int, workers: int,
                  summary: Summary | None = None, **hooks) -> Summary:
    summary = summary if summary is not None else Summary()
    out.mkdir(exist_ok=True)
    jobs = [job for job in plan_jobs(lq, out, "png") if not job.target.exists()]
    progress = Progress(len(jobs), quiet=True, verbose=False)
    hooks = FileHooks(partial(write_files, OutputSettings("png"), {}), **hooks)
    restore_pipelined(restorer, jobs, None, hooks, summary, progress, faces_per_call, prefetch=4, workers=workers)
    return summary


def test_faces_of_several_images_share_a_call_up_to_the_batch_size(model_dir, mixed_folder, tmp_path, monkeypatch):
    restorer = restorer_of(model_dir, batch_size=4)
    calls = []
    real = restorer.restore_faces_of
    monkeypatch.setattr(restorer, "restore_faces_of", lambda items: calls.append(
        [item.num_faces for item in items]) or real(items))
    recorded = []
    monkeypatch.setattr(Progress, "image", lambda self, job, result=None, failure="": recorded.append(str(job.source)))
    summary = run_pipelined(restorer, mixed_folder, tmp_path / "grouped", faces_per_call=4, workers=2)
    assert len(summary.done) == 7 and [path for path, _ in summary.failed] == [str(mixed_folder / "35_broken.png")]
    assert recorded == [str(job.source) for job in plan_jobs(mixed_folder, tmp_path / "x", "png")]
    assert max(len(call) for call in calls) > 1 and all(sum(call) <= 4 or len(call) == 1 for call in calls)
    assert cli.main(["--lq", str(mixed_folder), "--model", str(model_dir), *FAST, "--out", str(tmp_path / "old"),
                     "--prefetch", "0"]) == 1
    assert_same_outputs(tmp_path / "old", tmp_path / "grouped")


def test_ctrl_c_writes_what_is_restored_and_a_rerun_resumes(model_dir, face_paths, tmp_path, monkeypatch):
    lq = tmp_path / "faces"
    lq.mkdir()
    for path in face_paths[:6]:
        shutil.copy(path, lq / path.name)
    restorer = restorer_of(model_dir)
    real, calls = restorer.restore_faces_of, []

    def interrupted_third(items):
        calls.append(len(items))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(items)

    monkeypatch.setattr(restorer, "restore_faces_of", interrupted_third)
    summary, taken, released = Summary(), [], []
    with pytest.raises(KeyboardInterrupt):
        run_pipelined(restorer, lq, tmp_path / "out", 1, workers=2, summary=summary,
                      take=lambda job: taken.append(job.key) or "23_" not in job.key, release=released.append)
    assert len(taken) == 6 and sorted(job.key for job in released) == sorted(key for key in taken if "23_" not in key)
    written = sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file())  # not the records' folder
    assert len(summary.done) == 2 and written == sorted(f"{Path(p).stem}.png" for p in summary.done)  # no temporary
    assert not any("23_" in name for name in written)  # another process's job: left alone
    monkeypatch.setattr(restorer, "restore_faces_of", real)
    assert len(run_pipelined(restorer, lq, tmp_path / "out", 1, workers=2).done) == 4
    assert len([p for p in (tmp_path / "out").iterdir() if p.is_file()]) == 6


def test_fixed_shapes_pad_batches_without_changing_faces(model_dir, face_paths, monkeypatch):
    assert [padded_size(n, 16) for n in (1, 2, 3, 5, 9, 16)] == [1, 2, 4, 8, 16, 16]
    assert padded_size(5, 6) == 6
    restorer = restorer_of(model_dir, batch_size=8)
    images = [Image.open(path).convert("RGB") for path in face_paths[:3]]
    plain = restorer.restore_aligned(images)
    sizes, real = [], restorer.restore_batch
    monkeypatch.setattr(restorer, "restore_batch", lambda faces, gens: sizes.append(len(faces)) or real(faces, gens))
    restorer.fixed_shapes = True
    padded = restorer.restore_aligned(images)
    assert sizes == [4]
    assert max(float((a - b).abs().max()) for a, b in zip(plain, padded)) <= 1 / 255


def test_compile_auto_is_eager_on_the_cpu_and_threads_apply(model_dir):
    assert resolve_compile("auto", torch.device("cpu")) is None
    assert resolve_compile("auto", torch.device("cuda")) == "reduce-overhead"
    assert resolve_compile("default", torch.device("cpu")) == "default"
    restorer = restorer_of(model_dir, compile="auto")
    assert not restorer.fixed_shapes and restorer.pipeline.unet.__dict__.get("_compiled_call_impl") is None
    assert RestoreOptions(threads=0).problems()[0][0] == "threads"
    set_threads(1, torch.device("cuda"))  # an explicit count applies on any device (conftest restores it)
    assert torch.get_num_threads() == 1


def test_threads_default_to_one_on_a_gpu_beside_the_folder_threads_only():
    torch.set_num_threads(2)
    set_threads(None, torch.device("cuda"))  # the sequential loop on a GPU: torch's own count, untouched
    assert torch.get_num_threads() == 2
    set_threads(None, torch.device("cuda"), pipelined=True)  # readers and writers: one intra-op thread each
    assert torch.get_num_threads() == 1
    set_threads(3, torch.device("cuda"), pipelined=True)  # an explicit count wins
    assert torch.get_num_threads() == 3


def test_prefetch_and_threads_are_checked_up_front(model_dir, face_paths, tmp_path, capsys):
    lq = face_paths[0]
    assert cli.main(["--lq", str(lq), "--model", str(model_dir), *FAST, "--prefetch", "-1"]) == 2
    assert "--prefetch -1: must be >= 0" in capsys.readouterr().err
    assert cli.main(["--lq", str(lq), "--model", str(model_dir), *FAST, "--threads", "0"]) == 2
    assert "--threads 0: must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("flag, load, expected",
                         [([], 0.2, 2), ([], 1.3, 1), ([], 7.0, 1), (["--threads", "2"], 7.0, 2)])
def test_the_command_sets_torchs_threads(flag, load, expected, model_dir, face_paths, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert cli.main(["--lq", str(face_paths[0]), "--out", str(tmp_path), "--model", str(model_dir), *FAST, *flag]) == 0
    assert seen == [expected]  # on the CPU: the idle cores, at least one, unless told


def test_a_rerun_with_other_threads_or_prefetch_skips_the_finished_files(model_dir, face_paths, tmp_path, capsys):
    args = ["--lq", str(face_paths[0]), "--out", str(tmp_path), "--model", str(model_dir), *FAST]
    assert cli.main(args) == 0
    capsys.readouterr()
    assert cli.main([*args, "--threads", "2", "--prefetch", "0"]) == 0  # how fast, not what: the same outputs
    assert "done 0 (0 faces), skipped 1" in capsys.readouterr().out
