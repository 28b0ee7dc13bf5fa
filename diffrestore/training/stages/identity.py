"""Stage ``identity``: the compact identity network phi (``IdentityNet``) distilled from the SFace
teacher: ``1 - cos(student(x), teacher(x_HQ))`` on the clean face and on a degraded version of it,
so that the student recognises a person in a bad photo as well.

Teacher embeddings of the HQ training faces are computed once (``diffrestore.training.teacher``) into
``data.teacher_embeddings``, by the main process when the file is missing. Flipped faces keep the
teacher embedding of the unflipped face (identity is mirror-invariant; the student learns it so).

``loss.student: facenet`` is refused: facenet-pytorch's InceptionResnetV1 has published vggface2
weights and needs no distillation. Users who have them pass ``pretrained.identity=facenet`` (weights
in the torch hub cache) or ``facenet:/path/to/weights.pt`` to the irn and mask stages instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from torch import Tensor, nn
from torch.utils.data import Dataset

from samplers.guidance import identity_loss

from ...builders import build_identity
from ...data import ResidentFaces
from ...config import ConfigError
from ..stage import Losses, Stage
from ..teacher import compute_teacher_embeddings, load_teacher_embeddings
from ._common import image_rows, loss_config, paired_dataset, paired_val_dataset, save_fp16, similarity_panel

STUDENTS = ("compact", "facenet")


@dataclass
class IdentityLoss:
    student: str = "compact"  # compact (IdentityNet) | facenet (refused: use its published weights)
    clean_weight: float = 1.0
    degraded_weight: float = 1.0


class WithTeacher(Dataset):
    """Items of ``base`` plus ``"teacher"``: the teacher embedding of the item's HQ face."""

    def __init__(self, base: Dataset, embeddings: np.ndarray) -> None:
        self.base, self.embeddings = base, torch.from_numpy(embeddings)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        item = dict(self.base[i])
        item["teacher"] = self.embeddings[int(item["index"])]
        return item

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def resident(self, device: torch.device | str) -> ResidentFaces:
        return self.base.resident(device).with_extras(teacher=self.embeddings)


class IdentityStage(Stage):
    ema_names = ("identity",)

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.loss_cfg = loss_config(IdentityLoss, cfg)
        if self.loss_cfg.student not in STUDENTS:
            raise ConfigError(f"config key 'loss.student': {self.loss_cfg.student!r} is not one of {STUDENTS}")
        if self.loss_cfg.student == "facenet":
            raise ConfigError(
                "config key 'loss.student': facenet (InceptionResnetV1) is not distilled here: its vggface2 "
                "weights cannot be downloaded offline and, where you have them, it is used as published: "
                "skip this stage and pass pretrained.identity=facenet (torch hub cache) or "
                "pretrained.identity=facenet:/path/to/vggface2.pt to the irn and mask stages")
        if not cfg.data.teacher_embeddings:
            raise ConfigError("config key 'data.teacher_embeddings': the identity stage needs a .npy path for the "
                              "SFace teacher embeddings (computed there when missing)")

    def build_models(self) -> dict[str, nn.Module]:
        return {"identity": build_identity(self.cfg.model)}

    def _teacher_embeddings(self) -> np.ndarray:
        cfg = self.cfg
        path = Path(cfg.data.teacher_embeddings)
        state = PartialState()
        with state.main_process_first():
            if state.is_main_process and not path.is_file():
                compute_teacher_embeddings(cfg.data.hq_dir, path, cfg.model.resolution, cfg.model.template,
                                           workers=max(1, cfg.data.num_workers))
        return load_teacher_embeddings(path, cfg.data.hq_dir, cfg.model.resolution, cfg.model.template)

    def train_dataset(self) -> Dataset:
        embeddings = self._teacher_embeddings()
        dim = build_identity(self.cfg.model).config.embedding_dim
        if embeddings.shape[1] != dim:
            raise ConfigError(f"config key 'model.identity.embedding_dim': {dim}, but the teacher's embeddings "
                              f"({self.cfg.data.teacher_embeddings}) have {embeddings.shape[1]} dimensions")
        return WithTeacher(paired_dataset(self.cfg, self.cfg.data.hq_dir), embeddings)

    def val_dataset(self) -> Dataset | None:
        return paired_val_dataset(self.cfg)

    def compute_losses(self, models, frozen, batch: dict[str, Tensor], step: int) -> Losses:
        lc = self.loss_cfg
        n = batch["hq"].shape[0]
        # One pass over clean and degraded faces: the BatchNorm statistics then cover both.
        embeddings = models["identity"](torch.cat([batch["hq"], batch["lq"]]))
        clean = identity_loss(embeddings[:n], batch["teacher"]).mean()
        degraded = identity_loss(embeddings[n:], batch["teacher"]).mean()
        loss = lc.clean_weight * clean + lc.degraded_weight * degraded
        return {"identity": (loss, {"cos_clean": 1 - clean.detach(), "cos_degraded": 1 - degraded.detach()})}

    def make_grid(self, models, frozen, batch: dict[str, Tensor]) -> Tensor:
        """HQ and LQ rows, then the cosine matrix of student(LQ) (rows) against student(HQ) (columns)."""
        hq, lq = batch["hq"][:8], batch["lq"][:8]
        rows = image_rows([hq, lq])
        panel = similarity_panel(models["identity"](lq), models["identity"](hq), rows.shape[-1])
        return torch.cat([rows, panel.to(rows)], dim=1)

    def export(self, models: dict[str, nn.Module], out_dir: Path) -> None:
        save_fp16(models["identity"], out_dir / "identity")
