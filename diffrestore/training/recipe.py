"""A training recipe: the stages of a model in order, which exports each one reads, and the pipeline they
make, declared in one YAML file (``configs/recipes/*.yaml``) and run by one command:

    diffrestore-train-recipe configs/recipes/celebahq256.yaml --faces DIR [--val DIR] [--out runs/NAME]
        [--commands] [key=value ...]

Each stage trains with its config on ``--faces`` into ``<out>/<stage>``; a stage's ``pretrained`` maps a
component to the stage whose export holds it (``<out>/<stage>/export/<component>``); at the end the exports
named under ``pipeline`` are assembled into ``<out>/pipeline`` (``diffrestore --model <out>/pipeline``). A
stage whose export exists is done and skipped, and a stage cut short resumes from its last checkpoint, so the
same command continues an interrupted recipe. ``key=value`` overrides apply to every stage. ``--commands``
prints the equivalent ``train.py`` and ``diffrestore-assemble`` commands (for ``accelerate launch`` on
several GPUs) instead of running them.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from omegaconf import MISSING, DictConfig, OmegaConf

from ..config import ConfigError, load_config, merge_config, read_yaml_chain
from .assemble import assemble, write_pipeline
from .schema import TrainConfig


@dataclass
class RecipeStage:
    name: str  # the stage (a key of training.stages.STAGES)
    config: str  # its training config, relative to the recipe file
    pretrained: Dict[str, str] = field(default_factory=dict)  # component -> the stage whose export holds it
    overrides: List[str] = field(default_factory=list)


@dataclass
class Recipe:
    name: str = MISSING
    model: str = MISSING  # the model config of every stage and of the pipeline (relative to the recipe file)
    overrides: List[str] = field(default_factory=list)  # for every stage
    stages: List[RecipeStage] = field(default_factory=list)
    pipeline: Dict[str, str] = field(default_factory=dict)  # pipeline component -> the stage whose export holds it


def load_recipe(path: str | Path) -> DictConfig:
    recipe = load_config(path, Recipe)
    names = [stage.name for stage in recipe.stages]
    for i, stage in enumerate(recipe.stages):
        later = [source for source in stage.pretrained.values() if source not in names[:i]]
        if later:
            raise ConfigError(f"{path}: stage {stage.name!r} reads the export of {later[0]!r}, which is not an "
                              f"earlier stage ({', '.join(names[:i]) or 'none'})")
    missing = [source for source in recipe.pipeline.values() if source not in names]
    if missing:
        raise ConfigError(f"{path}: config key 'pipeline': {missing[0]!r} is not a stage of the recipe")
    return recipe


def export_of(out: Path, stage: str, component: str) -> Path:
    return out / stage / "export" / component


def stage_overrides(recipe: DictConfig, stage: RecipeStage, faces: Path, val: Optional[Path], out: Path,
                    overrides: Sequence[str]) -> list[str]:
    """What the recipe sets on a stage's own config: data, output, the exports it reads, the overrides."""
    settings = [f"data.hq_dir={faces}", f"data.val_dir={val if val is not None else 'null'}",
                f"output_dir={out / stage.name}", "resume=latest"]
    if stage.name == "identity":
        settings.append(f"data.teacher_embeddings={out / 'identity' / 'teacher_embeddings.npy'}")
    settings += [f"pretrained.{component}={export_of(out, source, component)}"
                 for component, source in stage.pretrained.items()]
    return settings + list(recipe.overrides) + list(stage.overrides) + list(overrides)


def stage_config(recipe_path: Path, recipe: DictConfig, stage: RecipeStage, settings: Sequence[str]) -> DictConfig:
    layers = read_yaml_chain(recipe_path.parent / stage.config) + read_yaml_chain(recipe_path.parent / recipe.model)
    return merge_config(TrainConfig, *layers, list(settings), source=str(recipe_path.parent / stage.config))


def model_overrides(recipe_path: Path, recipe: DictConfig, stage: RecipeStage) -> list[str]:
    """The recipe's model config as ``model.*=value`` overrides of a stage config that has another one
    (what ``stage_config`` merges as a layer); none where merging it onto the stage config's model
    changes nothing."""
    def model_of(path: Path) -> DictConfig:
        return OmegaConf.merge(*read_yaml_chain(path)).get("model")

    model = model_of(recipe_path.parent / recipe.model)
    stage_model = model_of(recipe_path.parent / stage.config)
    if stage_model is not None and OmegaConf.merge(stage_model, model) == stage_model:
        return []

    def walk(prefix: str, value) -> list[str]:
        if isinstance(value, dict):
            return [item for key, child in value.items() for item in walk(f"{prefix}.{key}", child)]
        shown = "[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else value
        return [f"{prefix}={shown}"]

    return walk("model", OmegaConf.to_container(model, resolve=True))


def is_done(out: Path, stage: str) -> bool:
    export = out / stage / "export"
    return export.is_dir() and any((folder / "config.json").is_file() for folder in export.iterdir())


def run_recipe(recipe_path: str | Path, faces: Path, out: Path, val: Optional[Path] = None,
               overrides: Sequence[str] = (), log=print) -> Path:
    """Train every stage of the recipe not yet done, then assemble ``<out>/pipeline``; returns that folder."""
    from .stages import STAGES
    from .trainer import Trainer

    recipe_path = Path(recipe_path)
    recipe = load_recipe(recipe_path)
    for stage in recipe.stages:
        if is_done(out, stage.name):
            log(f"{stage.name}: done ({out / stage.name / 'export'})")
            continue
        cfg = stage_config(recipe_path, recipe, stage, stage_overrides(recipe, stage, faces, val, out, overrides))
        log(f"{stage.name}: training into {cfg.output_dir}")
        Trainer(cfg, STAGES[cfg.stage](cfg)).train()
    pipeline = assemble({component: export_of(out, source, component) for component, source in recipe.pipeline.items()},
                        recipe_path.parent / recipe.model)
    write_pipeline(pipeline, out / "pipeline", overwrite=True)
    log(f"pipeline: {out / 'pipeline'} (diffrestore --lq DIR --model {out / 'pipeline'})")
    return out / "pipeline"


def commands(recipe_path: str | Path, faces: Path, out: Path, val: Optional[Path] = None,
             overrides: Sequence[str] = ()) -> list[str]:
    """The recipe as ``accelerate launch train.py`` commands and the ``diffrestore-assemble`` that ends it."""
    recipe_path = Path(recipe_path)
    recipe = load_recipe(recipe_path)
    lines = []
    for stage in recipe.stages:
        settings = stage_overrides(recipe, stage, faces, val, out, overrides)
        config = os.path.normpath(recipe_path.parent / stage.config)
        lines.append(shlex.join(["accelerate", "launch", "train.py", "--config", config,
                                 *model_overrides(recipe_path, recipe, stage), *settings]))
    parts = [f"--{component}={export_of(out, source, component)}" for component, source in recipe.pipeline.items()]
    lines.append(shlex.join(["diffrestore-assemble", *parts, f"--model-config={os.path.normpath(recipe_path.parent / recipe.model)}",
                             f"--out={out / 'pipeline'}", "--overwrite"]))
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    doc = __doc__.split("\n\n")
    p = argparse.ArgumentParser(allow_abbrev=False, prog="diffrestore-train-recipe", description=doc[0],
                                epilog=doc[2] if len(doc) > 2 else None)
    p.add_argument("recipe", type=Path, help="a recipe file (configs/recipes/*.yaml)")
    p.add_argument("--faces", required=True, type=Path, help="folder of aligned HQ training faces")
    p.add_argument("--val", type=Path, help="folder of aligned validation faces (default: none)")
    p.add_argument("--out", type=Path, help="where the stages and the pipeline go (default: runs/<recipe name>)")
    p.add_argument("--commands", action="store_true", help="print the equivalent commands instead of running")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of every stage, e.g. max_steps=100")
    args = p.parse_intermixed_args(argv)
    try:
        out = args.out or Path("runs") / load_recipe(args.recipe).name
        if not args.faces.is_dir():
            raise FileNotFoundError(f"--faces {args.faces}: no such folder")
        if args.commands:
            print("\n".join(commands(args.recipe, args.faces, out, args.val, args.overrides)))
            return 0
        run_recipe(args.recipe, args.faces, out, args.val, args.overrides)
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
