"""The contract between the generic :class:`~diffrestore.training.trainer.Trainer` and a training stage.

A stage says *what* is trained (models, data, losses, how to look at it, how to save it); the trainer
does everything else (devices, DDP, mixed precision, accumulation, optimizers, LR schedules, clipping,
EMA, checkpoints, resume, logging). Stages are registered by name in
``diffrestore.training.stages.STAGES``.

How the trainer runs one step (a stage may rely on all of this)
---------------------------------------------------------------
1. ``losses = stage.compute_losses(models, frozen, batch, step)`` is called ONCE per micro-batch,
   inside ``accelerator.autocast()``, with every trainable model in ``train()`` mode.
2. For each ``(name, (loss, scalars))`` in the dict's order, ``loss`` is back-propagated into the
   parameters of ``models[name]`` ONLY (``backward(inputs=<those parameters>)``). So a generator's
   adversarial term, computed through the discriminator, leaves no gradient in the discriminator,
   and a discriminator loss computed on a non-detached fake leaves none in the generator.
   (Detaching the fake for the discriminator loss is still cheaper.) A model that is absent from
   the dict, or whose loss does not require grad, gets no gradient and is not updated that step
   (e.g. a discriminator before it starts: leave it out and do not call it).
3. Only after all backward passes, each model's gradients are clipped to ``optim.max_grad_norm`` and
   every optimizer and LR scheduler steps (on the last micro-batch of an accumulation window). All
   losses therefore see the same pre-step weights: the update is simultaneous, not alternating.
4. The EMA of each model in ``ema_names`` is updated after its optimizer step.

Data parallelism (DDP) rules
----------------------------
* ``models[name]`` may be a ``DistributedDataParallel`` wrapper. Gradients are averaged across
  processes only for computation that goes through its ``forward``: call trainable models as
  ``models[name](...)``. For attributes or other methods (``.config``, ``.encode``) of the *same*
  model outside the gradient path use ``self.unwrap(models[name])``. A call that needs gradients
  through a method other than ``forward`` must be exposed through ``forward`` instead.
* A trainable model's forward may be called several times per step (real and fake through a
  discriminator), and every one of its parameters must receive a gradient from its own loss each
  step; set ``find_unused_parameters = True`` on the stage class where that is not true.
* ``frozen`` models are never wrapped: call any method. They are in ``eval()`` mode with
  ``requires_grad_(False)`` (gradients still flow *through* them to trainable inputs).

Exact resume
------------
The trainer restores the global RNGs (python, numpy, torch, CUDA) and the data order, and skips the
micro-batches already seen. Randomness *inside* a dataset item (degradation parameters, crops,
flips) must be a function of ``(seed, epoch, index)`` — seed a generator from them in
``__getitem__`` and take the epoch from ``set_epoch`` — because DataLoader worker RNG streams are not
restored. Randomness in ``compute_losses`` (noise, timesteps) may use the global torch RNG.
Items are dicts of tensors; include ``"index": torch.tensor(i)`` so runs can be audited.
State the stage itself keeps across steps must go through ``state_dict``/``load_state_dict``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelerate.utils import extract_model_from_parallel
from torch import Tensor, nn
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from ..data.datasets import ResidentFaces
    from .schema import TrainConfig

Losses = dict[str, tuple[Tensor, dict[str, float]]]


class Stage:
    """Base class of a training stage; see the module docstring for the trainer's guarantees."""

    #: trainable models that keep an EMA; ``export`` receives them with the EMA weights applied
    ema_names: tuple[str, ...] = ()
    #: pass ``find_unused_parameters=True`` to DDP (slower; only where some parameters get no gradient)
    find_unused_parameters: bool = False

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    def build_models(self) -> dict[str, nn.Module]:
        """Trainable models, freshly initialised; one AdamW each (``cfg.optim``). Order = step order."""
        raise NotImplementedError

    def build_frozen(self) -> dict[str, nn.Module]:
        """Pretrained models used as fixed functions (from ``cfg.pretrained``); the trainer puts them
        in ``eval()`` mode, ``requires_grad_(False)`` and on the device."""
        return {}

    def train_dataset(self) -> Dataset:
        """Items are dicts of tensors; the dataset may define ``set_epoch(epoch)``."""
        raise NotImplementedError

    def val_dataset(self) -> Dataset | None:
        """Fixed images for the sample grids; ``None`` uses a fixed batch of the training data."""
        return None

    def prepare_resident(self, faces: ResidentFaces, frozen: dict[str, nn.Module]) -> None:
        """With ``data.resident``: called once with the training faces on the device (under
        ``no_grad`` and autocast), to precompute what depends on them alone (e.g. frozen encodings).
        Batches then carry ``"index"`` and ``"flipped"``, which such caches are read with."""

    def compute_losses(self, models: dict[str, nn.Module], frozen: dict[str, nn.Module], batch: dict[str, Tensor],
                       step: int) -> Losses:
        """``{model name: (loss to minimise for that model, {scalar name: value to log})}``.

        Called inside ``accelerator.autocast()``; ``step`` is the optimizer step being computed
        (0-based), e.g. for a discriminator that starts late.
        """
        raise NotImplementedError

    def make_grid(self, models: dict[str, nn.Module], frozen: dict[str, nn.Module], batch: dict[str, Tensor]) -> Tensor:
        """A ``(3, H, W)`` image in [-1, 1] (e.g. rows LQ | output | HQ). Called under ``torch.no_grad()``
        on the main process only, with unwrapped models in ``eval()`` mode and EMA weights applied."""
        raise NotImplementedError

    def export(self, models: dict[str, nn.Module], out_dir: Path) -> None:
        """Save the trained components (unwrapped, EMA weights applied) with ``save_pretrained``."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """State the stage keeps between steps (counters, running statistics), saved in checkpoints so
        a resume stays exact. Called on every process at each save (collectives are allowed); the main
        process's dict is written, and every process gets it back in :meth:`load_state_dict`."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` on resume (on every process, before the first step)."""

    @staticmethod
    def unwrap(model: nn.Module) -> nn.Module:
        """The model inside a DDP / compile wrapper (for ``.config`` and methods other than ``forward``)."""
        return extract_model_from_parallel(model)
