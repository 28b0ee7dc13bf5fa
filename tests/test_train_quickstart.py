"""The user's first training run: the default configs need nothing beyond the base install (logs go to
log.jsonl; TensorBoard only when asked for, and then a clear error where it is missing), and
configs/train/quickstart.yaml trains on a folder of faces (README, "Training data")."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from diffrestore.config import ConfigError, load_config
from diffrestore.training import TrainConfig
from diffrestore.training.schema import check_config

from train_helpers import FACES, REPO, reset_accelerate

sys.path.insert(0, str(REPO))
import train  # noqa: E402  (the script, imported for its main)


def test_the_default_configs_log_without_tensorboard(monkeypatch):
    for path in sorted((REPO / "configs" / "train").rglob("*.yaml")):
        if path.name != "base.yaml":
            assert load_config(path, TrainConfig).log_with == "none", path
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard"
                        else real_find_spec(name, *a))
    cfg = load_config(REPO / "configs/train/quickstart.yaml", TrainConfig, ["log_with=tensorboard"])
    with pytest.raises(ConfigError, match=r"'log_with': tensorboard is not installed \(pip install -e \"\.\[train\]\""):
        check_config(cfg)


def test_the_quickstart_config_trains_on_a_folder_of_faces(tmp_path, capsys):
    out = tmp_path / "quickstart"
    try:
        assert train.main(["--config", str(REPO / "configs/train/quickstart.yaml"), f"data.hq_dir={FACES}",
                           f"output_dir={out}", "max_steps=2", "checkpoint_every=2", "sample_every=2"]) == 0
    finally:
        reset_accelerate()
    assert f"exported to {out / 'export'}" in capsys.readouterr().out
    assert (out / "export" / "backbone").is_dir() and (out / "log.jsonl").is_file() and not (out / "tb").exists()
