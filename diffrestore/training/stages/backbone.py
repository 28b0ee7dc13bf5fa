"""Stage ``backbone``: the restoration network f of DifFace, trained with L2 on synthetic pairs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ...models.builders import build_backbone
from ..stage import Losses, Stage
from ._common import image_rows, loss_config, paired_dataset, paired_val_dataset, save_fp16


@dataclass
class BackboneLoss:
    """DifFace trains its estimator with the plain L2 loss: nothing to configure."""


class BackboneStage(Stage):
    ema_names = ("backbone",)

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.loss_cfg = loss_config(BackboneLoss, cfg)

    def build_models(self) -> dict[str, nn.Module]:
        return {"backbone": build_backbone(self.cfg.model)}

    def train_dataset(self) -> Dataset:
        return paired_dataset(self.cfg, self.cfg.data.hq_dir)

    def val_dataset(self) -> Dataset | None:
        return paired_val_dataset(self.cfg)

    def compute_losses(self, models, frozen, batch: dict[str, Tensor], step: int) -> Losses:
        estimate = models["backbone"](batch["lq"])
        loss = F.mse_loss(estimate.float(), batch["hq"].float())
        return {"backbone": (loss, {"mse": loss.detach()})}

    def make_grid(self, models, frozen, batch: dict[str, Tensor]) -> Tensor:
        return image_rows([batch["lq"], models["backbone"](batch["lq"]), batch["hq"]])

    def export(self, models: dict[str, nn.Module], out_dir: Path) -> None:
        save_fp16(models["backbone"], out_dir / "backbone")
