"""Stage ``irn``: the identity recovery network that reads the DEGRADED face y and predicts the
frozen identity network's embedding of the HQ face: ``1 - cos(irn(y), phi(x_HQ))``, plus
``loss.lq_weight`` (0 by default) times ``1 - cos(irn(y), phi(y))``. Its output is the target of the
sampler's identity guidance. The log's ``cos_phi_lq`` is the baseline it must beat: phi applied to the
degraded face directly.

``model.irn.architecture``: ``compact`` (an ``IdentityNet`` from scratch) or ``sface`` (SFace's network,
starting from SFace's weights unless ``init.irn`` names a folder): with ``pretrained.identity=sface``
it starts at ``cos_phi_lq`` on day one and learns what degradation hides from SFace."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from ...sampling.guidance import identity_loss

from ...models import SFaceNet
from ...models.builders import build_irn
from ..stage import Losses, Stage
from ._common import (check_embedding_dims, image_rows, load_identity_network, loss_config, paired_dataset,
                      paired_val_dataset, require_identity, save_fp16, similarity_panel)


@dataclass
class IRNLoss:
    hq_weight: float = 1.0  # toward phi(x_HQ): the identity to recover
    lq_weight: float = 0.0  # toward phi(y): keeps the prediction near what the LQ face shows


class IRNStage(Stage):
    ema_names = ("irn",)

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.loss_cfg = loss_config(IRNLoss, cfg)
        self.identity_spec = require_identity(cfg)

    def build_models(self) -> dict[str, nn.Module]:
        irn = build_irn(self.cfg.model)
        if isinstance(irn, SFaceNet) and "irn" not in self.cfg.init:
            irn.load_sface_weights()
        return {"irn": irn}

    def build_frozen(self) -> dict[str, nn.Module]:
        identity = load_identity_network(self.identity_spec, self.cfg.model)
        check_embedding_dims(self.cfg.model.irn.get("embedding_dim", 128), identity, self.cfg.model)
        return {"identity": identity}

    def train_dataset(self) -> Dataset:
        return paired_dataset(self.cfg, self.cfg.data.hq_dir)

    def val_dataset(self) -> Dataset | None:
        return paired_val_dataset(self.cfg)

    def compute_losses(self, models, frozen, batch: dict[str, Tensor], step: int) -> Losses:
        lc = self.loss_cfg
        with torch.no_grad():
            target = frozen["identity"](batch["hq"])
            phi_lq = frozen["identity"](batch["lq"])
        predicted = models["irn"](batch["lq"])
        to_hq = identity_loss(predicted, target).mean()
        loss = lc.hq_weight * to_hq
        if lc.lq_weight:
            loss = loss + lc.lq_weight * identity_loss(predicted, phi_lq).mean()
        return {"irn": (loss, {"cos_irn_hq": 1 - to_hq.detach(),
                               "cos_phi_lq": 1 - identity_loss(phi_lq, target).mean()})}

    def make_grid(self, models, frozen, batch: dict[str, Tensor]) -> Tensor:
        """LQ and HQ rows, then the cosine matrix of irn(LQ) (rows) against phi(HQ) (columns)."""
        hq, lq = batch["hq"][:8], batch["lq"][:8]
        rows = image_rows([lq, hq])
        panel = similarity_panel(models["irn"](lq), frozen["identity"](hq), rows.shape[-1])
        return torch.cat([rows, panel.to(rows)], dim=1)

    def export(self, models: dict[str, nn.Module], out_dir: Path) -> None:
        save_fp16(models["irn"], out_dir / "irn")
        pairs = self.val_dataset()
        if pairs is not None:
            report = heldout_report(models["irn"], self.build_frozen()["identity"], pairs)
            (out_dir / "irn" / "heldout.json").write_text(json.dumps(report, indent=1) + "\n")


HELDOUT_PAIRS = 200


@torch.no_grad()
def heldout_report(irn: nn.Module, identity: nn.Module, pairs: Dataset, limit: int = HELDOUT_PAIRS) -> dict:
    """On the first ``limit`` validation pairs (seeded degradations): the mean cosine to phi(HQ) of IRN(y)
    and of phi(y), the baseline the IRN exists to beat, with their standard errors."""
    device = next(irn.parameters()).device
    identity = identity.to(device)
    rows: dict[str, list[Tensor]] = {"irn(y)": [], "phi(y)": []}
    for batch in DataLoader(Subset(pairs, range(min(limit, len(pairs)))), batch_size=50):
        hq, lq = batch["hq"].to(device), batch["lq"].to(device)
        target = identity(hq).float()
        rows["irn(y)"].append(F.cosine_similarity(irn(lq.to(irn.dtype)).float(), target))
        rows["phi(y)"].append(F.cosine_similarity(identity(lq).float(), target))
    cosines = {name: torch.cat(values).cpu() for name, values in rows.items()}
    n = len(cosines["irn(y)"])
    return {"pairs": n, **{f"cos_{name}_to_phi(hq)": {"mean": float(c.mean()), "se": float(c.std() / n ** 0.5)}
                           for name, c in cosines.items()}}
