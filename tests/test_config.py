"""diffrestore.config: YAML chains validated against dataclass schemas, errors that name the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import pytest
from omegaconf import OmegaConf

from diffrestore.config import ConfigError, check_kwargs, load_config, merge_config
from diffrestore.data.degradations import DegradationConfig


@dataclass
class Optim:
    lr: float = 1e-4
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class Schema:
    name: str = "run"
    steps: int = 100
    flip: bool = True
    optim: Optim = field(default_factory=Optim)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)


def _write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_chain_then_file_then_overrides(tmp_path):
    _write(tmp_path / "base" / "common.yaml", "steps: 10\noptim:\n  lr: 0.5\nname: base\n")
    _write(tmp_path / "base" / "more.yaml", "optim:\n  lr: 0.25\n")
    cfg_path = _write(tmp_path / "run.yaml", "defaults: [base/common.yaml, base/more.yaml]\nname: mine\n"
                                             "degradation:\n  noise: [0, 5]\n")
    cfg = load_config(cfg_path, Schema)
    assert cfg.steps == 10  # from the first default
    assert cfg.optim.lr == 0.25  # the later default wins
    assert cfg.name == "mine"  # the file wins over its defaults
    assert list(cfg.degradation.noise) == [0, 5] and cfg.degradation.jpeg_quality == [30, 90]
    assert "defaults" not in cfg

    cfg = load_config(cfg_path, Schema, ["optim.lr=0.125", "steps=7", "degradation.blur_sigma=[1,2]"])
    assert cfg.optim.lr == 0.125 and cfg.steps == 7 and list(cfg.degradation.blur_sigma) == [1.0, 2.0]
    assert OmegaConf.to_object(cfg).degradation == DegradationConfig(noise=[0, 5], blur_sigma=[1.0, 2.0])


def test_unknown_key_is_named(tmp_path):
    path = _write(tmp_path / "typo.yaml", "degradation:\n  blur_sgima: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml.*'degradation\.blur_sgima'"):
        load_config(path, Schema)
    with pytest.raises(ConfigError, match=r"optim\.lrr"):
        load_config(_write(tmp_path / "ok.yaml", "steps: 3\n"), Schema, ["optim.lrr=1"])


def test_wrong_type_is_named(tmp_path):
    path = _write(tmp_path / "bad.yaml", "steps: many\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*'steps'"):
        load_config(path, Schema)
    with pytest.raises(ConfigError, match=r"'flip'"):
        load_config(_write(tmp_path / "ok.yaml", "steps: 3\n"), Schema, ["flip=maybe"])
    with pytest.raises(ConfigError, match="not of the form key=value"):
        load_config(tmp_path / "ok.yaml", Schema, ["steps"])


def test_missing_and_broken_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"nothere\.yaml: config file not found"):
        load_config(tmp_path / "nothere.yaml", Schema)
    parent_missing = _write(tmp_path / "child.yaml", "defaults: [gone.yaml]\n")
    with pytest.raises(ConfigError, match=r"gone\.yaml: config file not found"):
        load_config(parent_missing, Schema)
    with pytest.raises(ConfigError, match=r"broken\.yaml:2:1: cannot parse YAML: .*flow sequence at 1:8\)$"):
        load_config(_write(tmp_path / "broken.yaml", "steps: [1, 2\n"), Schema)
    with pytest.raises(ConfigError, match=r"indent\.yaml:2:7: cannot parse YAML: mapping values are not allowed"):
        load_config(_write(tmp_path / "indent.yaml", "steps: 3\n  name: x\n"), Schema)
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(_write(tmp_path / "list.yaml", "- 1\n- 2\n"), Schema)
    _write(tmp_path / "a.yaml", "defaults: [b.yaml]\n")
    _write(tmp_path / "b.yaml", "defaults: [a.yaml]\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "a.yaml", Schema)


def test_real_configs_load():
    """Every training config of the repository validates against its schema."""
    from pathlib import Path

    from diffrestore.models.builders import load_template
    from diffrestore.training.schema import TrainConfig

    configs = sorted((Path(__file__).parents[1] / "configs" / "train").rglob("*.yaml"))
    stages = [p for p in configs if p.name != "base.yaml"]
    assert stages
    for path in stages:
        cfg = load_config(path, TrainConfig)
        assert cfg.stage and cfg.model.resolution in (32, 128, 256, 512), path  # 32: the quickstart's tiny model
        assert load_template(cfg.model.template, cfg.model.resolution).shape == (5, 2), path  # the template exists


def test_merge_config_and_check_kwargs():
    cfg = merge_config(Schema, {"steps": 5}, ["name=x"])
    assert cfg.steps == 5 and cfg.name == "x"

    def build(channels: int, depth: int = 2):
        return channels, depth

    assert check_kwargs(build, OmegaConf.create({"channels": 4}), "model.net") == {"channels": 4}
    with pytest.raises(ConfigError, match=r"'model\.net\.dpeth'.*not an argument of build"):
        check_kwargs(build, {"channels": 4, "dpeth": 3}, "model.net")


@pytest.mark.parametrize("override, message", [
    ("optim.betas=0.9",
     "command line: config key 'optim.betas': must be a list of numbers (got 0.9; e.g. [0.9, 0.999])"),
    ("optim.betas=[0.9,x]", "command line: config key 'optim.betas[1]': must be a number (got 'x')"),
    ("steps=many", "command line: config key 'steps': must be an integer (got 'many'; e.g. 3)"),
    ("flip=maybe", "command line: config key 'flip': must be true or false (got 'maybe'; e.g. True)"),
    ("optim.lrr=1", "command line: config key 'optim.lrr': not a setting of Optim; did you mean optim.lr?"),
])
def test_an_override_error_blames_the_command_line_in_the_user_s_terms(override, message, tmp_path):
    path = _write(tmp_path / "ok.yaml", "steps: 3\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path, Schema, [override])
    assert str(raised.value) == message  # one line, no OmegaConf internals, not the file's fault


def test_a_file_error_blames_the_file_of_the_chain_it_is_in(tmp_path):
    _write(tmp_path / "parent.yaml", "steps: lots\n")
    child = _write(tmp_path / "child.yaml", "defaults: [parent.yaml]\nname: x\n")
    with pytest.raises(ConfigError, match=r"parent\.yaml: config key 'steps': must be an integer \(got 'lots'"):
        load_config(child, Schema, ["name=y"])
