"""The generic trainer on one process: learning, logging, export, gradient isolation between optimizers,
config checks, checkpoint bookkeeping."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from diffrestore.config import ConfigError, merge_config
from diffrestore.training import Stage, TrainConfig, Trainer
from diffrestore.training import checkpoint as ckpt
from diffrestore.training.stages import STAGES
from train_helpers import read_log, reset_accelerate, tiny_config


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    yield
    reset_accelerate()


def test_backbone_loss_goes_down_and_run_leaves_its_outputs(tmp_path):
    # Noise only (sigma 20/255): a degradation that 40 steps of a tiny network can visibly learn to undo.
    noise = {"blur_sigma": [0.1, 0.1], "downsample": [1.0, 1.0], "noise": [20.0, 20.0], "jpeg_quality": [95, 95]}
    cfg = tiny_config(tmp_path, "backbone", tmp_path / "run", max_steps=40, checkpoint_every=20, sample_every=20,
                      keep_last=1, optim={"lr": 3e-3}, log_with="tensorboard", data={"degradation": noise})
    trainer = Trainer(cfg, STAGES["backbone"](cfg))

    def fixed_batch_loss() -> float:  # the same 8 pairs before and after training
        with torch.no_grad():
            return float(trainer.stage.compute_losses(trainer.models, {}, trainer.grid_batch, 0)["backbone"][0])

    before = fixed_batch_loss()
    export = trainer.train()
    after = fixed_batch_loss()
    assert after < 0.8 * before, (before, after)

    run = Path(cfg.output_dir)
    logged = [row for row in read_log(run) if "loss/backbone" in row]
    assert [row["step"] for row in logged] == list(range(1, 41))
    assert all(row["img_per_s"] > 0 for row in logged)
    lrs = [row["lr/backbone"] for row in logged]  # warm-up (2 steps in train_helpers), then cosine to 0
    assert lrs[0] < lrs[1] == pytest.approx(3e-3, rel=0.01) and lrs[-1] < 1e-5

    assert [p.name for p in ckpt.list_checkpoints(run / "checkpoints")] == ["step-00000040"]  # keep_last=1
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-00000020.png", "step-00000040.png"]
    assert list((run / "tb").rglob("events.out.tfevents.*"))
    from diffrestore.models import RestorationNet

    restored = RestorationNet.from_pretrained(export / "backbone")
    assert sum(p.numel() for p in restored.parameters()) > 0


class _Pairs(Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {"x": torch.randn(3, 8, 8, generator=g), "index": torch.tensor(i)}


class _AdversarialOnly(Stage):
    """Generator and discriminator losses through the SAME discriminator pass on a non-detached fake:
    if either leaked into the other model, the two gradients would cancel or add up."""

    def build_models(self):
        torch.manual_seed(0)
        return {"gen": nn.Conv2d(3, 3, 3, padding=1), "disc": nn.Conv2d(3, 1, 3)}

    def train_dataset(self):
        return _Pairs()

    def compute_losses(self, models, frozen, batch, step):
        score = models["disc"](models["gen"](batch["x"])).mean()
        return {"gen": (-score, {}), "disc": (score, {})}

    def make_grid(self, models, frozen, batch):
        return models["gen"](batch["x"])[0].clamp(-1, 1)

    def export(self, models, out_dir):
        pass


def test_each_loss_reaches_only_its_own_model(tmp_path, monkeypatch):
    cfg = merge_config(TrainConfig, {"stage": "toy", "output_dir": str(tmp_path / "run"), "max_steps": 1,
                                     "batch_size": 4, "log_with": "none", "data": {"hq_dir": "-", "num_workers": 0}})
    stage = _AdversarialOnly(cfg)
    trainer = Trainer(cfg, stage)
    batch = next(iter(trainer.loader))
    gen, disc = (trainer.unwrap(n) for n in ("gen", "disc"))
    score = disc(gen(batch["x"])).mean()
    want_gen = torch.autograd.grad(-score, list(gen.parameters()), retain_graph=True)
    want_disc = torch.autograd.grad(score, list(disc.parameters()))

    got = {}
    original = trainer._optimizer_step

    def spy():
        got.update({n: [p.grad.clone() for p in trainer.params[n]] for n in ("gen", "disc")})
        return original()

    monkeypatch.setattr(trainer, "_optimizer_step", spy)
    trainer.train()
    for want, have in ((want_gen, got["gen"]), (want_disc, got["disc"])):
        for w, h in zip(want, have):
            assert w.abs().sum() > 0
            torch.testing.assert_close(h, w)


def test_refuses_to_start_over_an_earlier_run(tmp_path):
    cfg = tiny_config(tmp_path, "backbone", tmp_path / "run", max_steps=1)
    Trainer(cfg, STAGES["backbone"](cfg)).train()
    reset_accelerate()
    with pytest.raises(ConfigError, match="resume"):
        Trainer(cfg, STAGES["backbone"](cfg)).train()


def test_bad_trainer_settings_name_the_key(tmp_path):
    cfg = tiny_config(tmp_path, "backbone", tmp_path / "run", mixed_precision="fp32")
    with pytest.raises(ConfigError, match="mixed_precision"):
        Trainer(cfg, STAGES["backbone"](cfg))
    with pytest.raises(ConfigError, match="max_stepz"):
        tiny_config(tmp_path, "backbone", tmp_path / "run", max_stepz=3)


def test_checkpoint_folders_are_complete_or_ignored(tmp_path):
    root = tmp_path / "checkpoints"

    def write(step: int) -> Path:
        return ckpt.save_checkpoint(root, step, {"step": step}, write=lambda tmp: (tmp / "x.bin").write_bytes(b"1"),
                                    barrier=lambda: None, is_main=True)

    write(1), write(2), write(3)
    (root / ".tmp-step-00000009").mkdir()  # a save killed half-way
    (root / ".tmp-step-00000009" / "model.safetensors").write_bytes(b"trunc")
    (root / "step-00000008").mkdir()  # a folder without the state file written last
    assert ckpt.latest_checkpoint(root).name == "step-00000003"
    ckpt.prune(root, keep_last=2)
    assert [p.name for p in ckpt.list_checkpoints(root)] == ["step-00000002", "step-00000003"]
    write(3)  # the same step again replaces it
    assert ckpt.read_state(root / "step-00000003") == {"step": 3}
    assert [p.name for p in ckpt.remove_partial(root)] == [".tmp-step-00000009"]


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="torch.compile on CPU needs a C compiler")
def test_a_compiled_run_draws_its_samples_without_recompiling(tmp_path):
    from torch._dynamo.utils import counters

    cfg = tiny_config(tmp_path, "backbone", tmp_path / "run", compile=True)
    trainer = Trainer(cfg, STAGES["backbone"](cfg))
    before = counters["stats"]["unique_graphs"]
    trainer.micro_step(next(trainer.batches()))
    compiled = counters["stats"]["unique_graphs"]
    assert compiled > before  # the training step ran compiled
    trainer._sample()
    assert counters["stats"]["unique_graphs"] == compiled
    assert (tmp_path / "run" / "samples" / "step-00000000.png").is_file()
