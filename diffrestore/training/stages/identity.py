"""Stage ``identity``: the compact identity network phi (``IdentityNet``) distilled from the SFace
teacher: ``1 - cos(student(x), teacher(x_HQ))`` on the clean face and on a degraded version of it,
so that the student recognises a person in a bad photo as well.

``loss.adversarial_weight`` adds the same loss on both faces moved, within an RMS ball of
``loss.adversarial_epsilon``, to where the student's embedding leaves the teacher's fastest (L2 PGD of
``loss.adversarial_steps`` steps): adversarial training. The sampler's identity guidance follows the
student's gradient, and robust networks' input gradients are known to carry the features that humans
and other networks see; an arm to try once plain distillation generalises (research/LOG.md).

The export writes ``identity/heldout.json`` (``identity_report``): the student's cosine to the teacher on
the validation faces, clean and degraded, which the training log cannot show. A student distilled
from a few thousand faces can match the teacher on them and not on anyone else: the bundled 256 px phi,
trained on 2,558 faces, scores 0.95 on them and 0.32 on the validation faces, what two different people
score (research/LOG.md, session 7).

Teacher embeddings of the HQ training faces are computed once (``diffrestore.training.teacher``) into
``data.teacher_embeddings``, by the main process when the file is missing. Flipped faces keep the
teacher embedding of the unflipped face (identity is mirror-invariant; the student learns it so).

``loss.student: facenet`` is refused: facenet-pytorch's InceptionResnetV1 has published vggface2
weights and needs no distillation. Users who have them pass ``pretrained.identity=facenet`` (weights
in the torch hub cache) or ``facenet:/path/to/weights.pt`` to the irn and mask stages instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ...sampling.guidance import identity_loss, per_sample_rms, unit_rms

from ...models.builders import build_identity, load_template
from ...data.datasets import ResidentFaces
from ...config import ConfigError
from ...models import SFaceIdentity
from ..stage import Losses, Stage
from ..teacher import compute_teacher_embeddings, load_teacher_embeddings
from ._common import image_rows, loss_config, paired_dataset, paired_val_dataset, save_fp16, similarity_panel

STUDENTS = ("compact", "facenet")
HELDOUT_FACES = 200


@dataclass
class IdentityLoss:
    student: str = "compact"  # compact (IdentityNet) | facenet (refused: use its published weights)
    clean_weight: float = 1.0
    degraded_weight: float = 1.0
    adversarial_weight: float = 0.0  # the loss on adversarially moved clean and degraded faces; 0 = off
    adversarial_epsilon: float = 0.03  # RMS radius of the move, in image units ([-1, 1])
    adversarial_steps: int = 1


def adversarial_faces(student: nn.Module, faces: Tensor, teacher: Tensor, epsilon: float, steps: int) -> Tensor:
    """``faces`` moved within an RMS ball of ``epsilon`` (per face) to lower ``student``'s cosine to
    ``teacher`` (L2 projected gradient ascent of the loss, step 2.5 epsilon / steps), clamped to [-1, 1].
    The ascent starts from a random point at half the radius: where the student already matches the
    teacher, the cosine is at its maximum and its gradient zero. The noise comes from the global CPU
    stream (the trainer checkpoints it); the student runs in eval mode, so its BatchNorm statistics stay."""
    was_training = student.training
    student.eval()
    delta = 0.5 * epsilon * unit_rms(torch.randn(faces.shape)).to(faces.device)
    for _ in range(steps):
        delta.requires_grad_(True)
        with torch.enable_grad():
            loss = identity_loss(student(faces + delta.to(faces.dtype)), teacher).sum()
            (gradient,) = torch.autograd.grad(loss, delta)
        delta = clip_rms(delta.detach() + 2.5 * epsilon / steps * unit_rms(gradient), epsilon)
    student.train(was_training)
    return (faces.float() + delta).clamp(-1, 1).to(faces.dtype).detach()


@torch.no_grad()
def identity_report(student: nn.Module, pairs: Dataset, teacher: SFaceIdentity, limit: int = HELDOUT_FACES) -> dict:
    """On the first ``limit`` pairs of ``pairs``: the student's mean cosine to the teacher's embedding
    of the HQ face, for the clean and the degraded face, and the mean cosine between the student's
    embeddings of different clean faces beside the teacher's (how much it tells people apart)."""
    n = min(limit, len(pairs))
    weights = next(student.parameters())
    rows = {"clean": [], "degraded": [], "student": [], "teacher": []}
    for batch in DataLoader(torch.utils.data.Subset(pairs, range(n)), batch_size=min(50, n)):
        target = teacher(batch["hq"])
        clean, degraded = (student(batch[k].to(weights)).float().cpu() for k in ("hq", "lq"))
        rows["clean"].append((clean * target).sum(-1))
        rows["degraded"].append((degraded * target).sum(-1))
        rows["student"].append(clean)
        rows["teacher"].append(target)
    off_diagonal = ~torch.eye(n, dtype=torch.bool)
    embeddings = {k: torch.cat(rows[k]) for k in ("student", "teacher")}
    between = {k: float((e @ e.T)[off_diagonal].mean()) for k, e in embeddings.items()}
    return {"faces": n, "cos_clean": float(torch.cat(rows["clean"]).mean()),
            "cos_degraded": float(torch.cat(rows["degraded"]).mean()),
            "cos_between_faces_student": between["student"], "cos_between_faces_teacher": between["teacher"]}


def clip_rms(delta: Tensor, radius: float) -> Tensor:
    """``delta`` scaled down, per sample, to a root-mean-square of at most ``radius``."""
    return delta * (radius / per_sample_rms(delta).clamp_min(1e-12)).clamp(max=1.0)


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
        if self.loss_cfg.adversarial_weight < 0 or self.loss_cfg.adversarial_epsilon < 0:
            raise ConfigError("config keys 'loss.adversarial_weight', 'loss.adversarial_epsilon': must be >= 0")
        if self.loss_cfg.adversarial_steps < 1:
            raise ConfigError(f"config key 'loss.adversarial_steps': must be at least 1, "
                              f"got {self.loss_cfg.adversarial_steps}")
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
        # One pass over clean, degraded (and attacked) faces: the BatchNorm statistics then cover all.
        faces, teacher = torch.cat([batch["hq"], batch["lq"]]), batch["teacher"].repeat(2, 1)
        if lc.adversarial_weight:  # attacked through the unwrapped network: no DDP forward without a backward
            moved = adversarial_faces(self.unwrap(models["identity"]), faces, teacher, lc.adversarial_epsilon,
                                      lc.adversarial_steps)
            faces, teacher = torch.cat([faces, moved]), teacher.repeat(2, 1)
        distances = identity_loss(models["identity"](faces), teacher)
        clean, degraded = distances[:n].mean(), distances[n:2 * n].mean()
        loss = lc.clean_weight * clean + lc.degraded_weight * degraded
        logs = {"cos_clean": 1 - clean.detach(), "cos_degraded": 1 - degraded.detach()}
        if lc.adversarial_weight:
            adversarial = distances[2 * n:].mean()
            loss = loss + lc.adversarial_weight * adversarial
            logs["cos_adversarial"] = 1 - adversarial.detach()
        return {"identity": (loss, logs)}

    def make_grid(self, models, frozen, batch: dict[str, Tensor]) -> Tensor:
        """HQ and LQ rows, then the cosine matrix of student(LQ) (rows) against student(HQ) (columns)."""
        hq, lq = batch["hq"][:8], batch["lq"][:8]
        rows = image_rows([hq, lq])
        panel = similarity_panel(models["identity"](lq), models["identity"](hq), rows.shape[-1])
        return torch.cat([rows, panel.to(rows)], dim=1)

    def export(self, models: dict[str, nn.Module], out_dir: Path) -> None:
        save_fp16(models["identity"], out_dir / "identity")
        pairs = self.val_dataset()
        if pairs is not None:
            cfg = self.cfg.model
            teacher = SFaceIdentity(load_template(cfg.template, cfg.resolution), cfg.resolution)
            report = identity_report(models["identity"], pairs, teacher)
            (out_dir / "identity" / "heldout.json").write_text(json.dumps(report, indent=1) + "\n")
