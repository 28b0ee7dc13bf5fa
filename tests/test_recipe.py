"""The declared training recipe: every stage of the tiny recipe on a CPU, each export feeding the next,
assembled into a pipeline that restores a face; a rerun skips what is done; the commands it prints."""

from __future__ import annotations

import shlex

import pytest
import torch
from omegaconf import OmegaConf

from diffrestore import DiffRestorePipeline
from diffrestore.config import ConfigError
from diffrestore.training.recipe import commands, load_recipe, main, run_recipe

from train_helpers import FACES, REPO, reset_accelerate

TINY = REPO / "configs" / "recipes" / "tiny.yaml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("recipe")
    said = []
    reset_accelerate()
    pipeline = run_recipe(TINY, FACES, out, log=said.append)
    return out, pipeline, said


@pytest.mark.slow
def test_the_tiny_recipe_trains_every_stage_in_order_into_a_pipeline(trained):
    out, pipeline, said = trained
    assert [line.split(":")[0] for line in said] == ["vqgan", "backbone", "score", "identity", "irn", "mask",
                                                      "pipeline"]
    # each stage read the exports the recipe names
    score = OmegaConf.load(out / "score" / "config.yaml")
    assert score.pretrained.vqgan == str(out / "vqgan" / "export" / "vqgan")
    mask = OmegaConf.load(out / "mask" / "config.yaml")
    assert mask.pretrained.irn == str(out / "irn" / "export" / "irn") and mask.data.hq_dir == str(FACES)
    pipe = DiffRestorePipeline.from_pretrained(pipeline)
    assert pipe.mask is not None and pipe.config.resolution == 32
    face = torch.rand(1, 3, 32, 32) * 2 - 1
    restored = pipe(face, output_type="pt", steps=2, start_t=50, guidance=0.5, guidance_every=1).images
    assert restored.shape == (1, 3, 32, 32) and torch.isfinite(restored).all()


@pytest.mark.slow
def test_a_rerun_skips_the_stages_that_are_done(trained):
    out, pipeline, _ = trained
    said = []
    run_recipe(TINY, FACES, out, log=said.append)
    assert all(line.endswith("export)") for line in said[:-1]) and said[0].startswith("vqgan: done")


def test_the_recipe_as_commands(tmp_path):
    lines = commands(TINY, FACES, tmp_path / "out")
    assert len(lines) == 7
    score = shlex.split(lines[2])
    assert score[:5] == ["accelerate", "launch", "train.py", "--config", str(REPO / "configs" / "train" / "score.yaml")]
    assert f"pretrained.vqgan={tmp_path / 'out' / 'vqgan' / 'export' / 'vqgan'}" in score
    assert "model.resolution=32" in score and f"data.hq_dir={FACES}" in score
    assert shlex.split(lines[-1])[0] == "diffrestore-assemble" and f"--out={tmp_path / 'out' / 'pipeline'}" in lines[-1]
    # a stage whose config already has the recipe's model is not told it again
    bundled = commands(REPO / "configs" / "recipes" / "celebahq256.yaml", FACES, tmp_path / "out")
    assert not any(arg.startswith("model.") for line in bundled for arg in shlex.split(line))


def test_a_stage_reading_a_later_stage_is_refused(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(f"name: bad\nmodel: {REPO}/configs/model/tiny.yaml\n"
                      f"stages:\n  - {{name: score, config: {REPO}/configs/train/score.yaml, pretrained: {{vqgan: vqgan}}}}\n"
                      f"  - {{name: vqgan, config: {REPO}/configs/train/vqgan.yaml}}\n")
    with pytest.raises(ConfigError, match="'score' reads the export of 'vqgan', which is not an earlier stage"):
        load_recipe(recipe)
    assert main([str(recipe), "--faces", str(FACES), "--commands"]) == 2
