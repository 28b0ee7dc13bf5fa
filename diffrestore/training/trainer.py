"""The generic training loop: one code path for CPU, one GPU and many (DDP) through HuggingFace Accelerate.

What a stage can rely on (gradient isolation between optimizers, DDP rules, what must be seeded for
an exact resume) is documented in :mod:`diffrestore.training.stage`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import signal
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Iterator, Optional

import torch
from accelerate import Accelerator
from accelerate.utils import (DistributedDataParallelKwargs, GradientAccumulationPlugin, ProjectConfiguration,
                              set_seed)
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..config import ConfigError
from ..data.datasets import ResidentFaces
from ..io import save_image
from . import checkpoint as ckpt
from .batches import ResidentBatches, epoch_loader, first_items
from .records import append_json_line, drop_rows_after, weights_digest
from .schema import TrainConfig, check_config
from .setup import ema_applied, speed_up, warm_start
from .stage import Stage

logger = logging.getLogger(__name__)

GRID_ITEMS = 8  # images in a sample grid


class TrainingInterrupted(Exception):
    """SIGINT / SIGTERM stopped training; the state at ``step`` is saved in the checkpoint ``path``."""

    def __init__(self, step: int, path: Optional[Path], signal_name: str) -> None:
        super().__init__(f"{signal_name} at step {step}")
        self.step, self.path, self.signal_name = step, path, signal_name


@contextlib.contextmanager
def stop_signals_caught(caught: list[str]) -> Iterator[None]:
    """While the block runs, SIGINT / SIGTERM append their name to ``caught`` instead of killing the
    process, so the loop stops at the next step boundary with a consistent state to save."""
    handled = (signal.SIGINT, signal.SIGTERM)
    try:
        previous = {sig: signal.signal(sig, lambda num, _: caught.append(signal.Signals(num).name))
                    for sig in handled}
    except ValueError:  # not the main thread: signals stay as they are
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Trainer:
    """Trains ``stage`` as configured by ``cfg``; :meth:`train` returns the export folder."""

    def __init__(self, cfg: TrainConfig | DictConfig, stage: Stage) -> None:
        self.cfg = cfg
        self.stage = stage
        check_config(cfg)
        self.output_dir = Path(cfg.output_dir)
        self.ckpt_root = self.output_dir / "checkpoints"
        self.accum = cfg.gradient_accumulation_steps
        self.accelerator = Accelerator(
            mixed_precision=cfg.mixed_precision,
            gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=self.accum, sync_with_dataloader=False),
            log_with=None if cfg.log_with == "none" else cfg.log_with,
            project_config=ProjectConfiguration(project_dir=str(self.output_dir),
                                                logging_dir=str(self.output_dir / "tb")),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=stage.find_unused_parameters)],
            step_scheduler_with_optimizer=False,
        )
        # Different seeds per process: the data differs anyway, and noise in compute_losses should too.
        # Initial weights are broadcast from process 0 when the models are wrapped in DDP.
        set_seed(cfg.seed, device_specific=True)
        if self.accelerator.device.type == "cuda":  # the fp32 parts (degradations, losses) on tensor cores
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        self.step = 0
        self._build()

    # ---------------------------------------------------------------- setup
    def _build(self) -> None:
        acc, cfg, stage = self.accelerator, self.cfg, self.stage
        models = stage.build_models()
        if not models:
            raise ValueError(f"stage {cfg.stage!r}: build_models() returned no models")
        warm_start(models, cfg.init, cfg.stage)
        unknown = set(stage.ema_names) - set(models)
        if unknown:
            raise ValueError(f"stage {cfg.stage!r}: ema_names {sorted(unknown)} are not trainable models")
        self.frozen = {name: m.eval().requires_grad_(False).to(acc.device) for name, m in stage.build_frozen().items()}
        speed_up(models, self.frozen, cfg.channels_last, cfg.compile)

        unknown = set(cfg.optim.lr_scale) - set(models)
        if unknown:
            raise ConfigError(f"config key 'optim.lr_scale': {sorted(unknown)} are not trainable models of stage "
                              f"{cfg.stage!r} (they are {sorted(models)})")
        optimizers = [torch.optim.AdamW([p for p in m.parameters() if p.requires_grad],
                                        lr=cfg.optim.lr * cfg.optim.lr_scale.get(name, 1.0),
                                        betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay,
                                        fused=acc.device.type == "cuda")
                      for name, m in models.items()]
        self.schedulers = [get_scheduler(cfg.optim.lr_schedule, opt, num_warmup_steps=cfg.optim.warmup_steps,
                                         num_training_steps=cfg.max_steps) for opt in optimizers]

        self.train_set = stage.train_dataset()
        self.resident: ResidentBatches | None = None
        if cfg.data.resident:
            self.resident = ResidentBatches(self._resident_faces(), cfg.batch_size, cfg.seed, acc.process_index,
                                            acc.num_processes)
            prepared = acc.prepare(*models.values(), *optimizers)
            self.loader = None
        else:
            loader, self.sampler, self.loader_generator = epoch_loader(self.train_set, cfg.batch_size, cfg.seed,
                                                                       cfg.data.num_workers, acc.device.type == "cuda")
            prepared = acc.prepare(*models.values(), *optimizers, loader)
            self.loader = prepared[-1]
        n = len(models)
        self.models: dict[str, nn.Module] = dict(zip(models, prepared[:n]))
        self.optimizers = dict(zip(models, prepared[n:2 * n]))
        self.batches_per_epoch = len(self.resident if self.resident is not None else self.loader)
        if self.batches_per_epoch < 1:
            raise ValueError(f"{cfg.data.hq_dir}: {len(self.train_set)} training images are fewer than one batch of "
                             f"{cfg.batch_size} per process x {acc.num_processes} processes")
        self.params = {name: [p for p in m.parameters() if p.requires_grad] for name, m in self.models.items()}
        self.emas = {name: EMAModel(self.params[name], decay=cfg.ema_decay, foreach=True) for name in stage.ema_names}
        acc.register_for_checkpointing(*self.schedulers, *self.emas.values(), stage)
        self.grid_batch = self._fixed_batch()

    def _resident_faces(self) -> ResidentFaces:
        """The training set decoded into device memory; the stage precomputes what depends on it alone."""
        if not hasattr(self.train_set, "resident"):
            raise ConfigError(f"config key 'data.resident': the {self.cfg.stage} stage's training set "
                              f"({type(self.train_set).__name__}) cannot be held on the device")
        tic = time.perf_counter()
        faces = self.train_set.resident(self.accelerator.device)
        with torch.no_grad(), self.accelerator.autocast():
            self.stage.prepare_resident(faces, self.frozen)
        self.accelerator.print(f"{len(faces)} training faces resident on {faces.device} "
                               f"({faces.images.nbytes / 2**30:.2f} GiB, {time.perf_counter() - tic:.1f} s)")
        return faces

    def _fixed_batch(self) -> dict[str, Tensor]:
        """The images of every sample grid: the first items of the validation set, else of the training set."""
        dataset: Dataset | None = self.stage.val_dataset()
        return first_items(dataset if dataset is not None and len(dataset) else self.train_set, GRID_ITEMS,
                           self.accelerator.device)

    def unwrap(self, name: str) -> nn.Module:
        return self.accelerator.unwrap_model(self.models[name])

    # ---------------------------------------------------------------- checkpoints
    def _resume(self) -> None:
        acc, cfg = self.accelerator, self.cfg
        if acc.is_main_process:
            removed = ckpt.remove_partial(self.ckpt_root)
            if removed:
                logger.warning("removed interrupted checkpoint saves: %s", ", ".join(p.name for p in removed))
        acc.wait_for_everyone()
        if cfg.resume is None:
            if ckpt.list_checkpoints(self.ckpt_root):
                raise ConfigError(f"{self.ckpt_root}: holds checkpoints of an earlier run; pass --resume latest "
                                  f"(resume=latest) to continue it, or choose another output_dir")
            return
        if cfg.resume == "latest":
            path = ckpt.latest_checkpoint(self.ckpt_root)
            if path is None:
                acc.print(f"no checkpoint in {self.ckpt_root}: starting from scratch")
                return
        else:
            path = Path(cfg.resume)
        state = ckpt.read_state(path)
        if state["num_processes"] != acc.num_processes or state["batch_size"] != cfg.batch_size \
                or state["gradient_accumulation_steps"] != self.accum:
            logger.warning("%s: saved with a different batch layout %s; the data order will not resume exactly",
                           path, {k: state[k] for k in ("num_processes", "batch_size", "gradient_accumulation_steps")})
        acc.load_state(str(path))
        for ema in self.emas.values():
            ema.to(acc.device)  # accelerate loads custom states on the CPU
        self.step = state["step"]
        acc.step = self.step * self.accum  # micro-batch counter that drives accumulation
        acc.print(f"resumed from {path} at step {self.step}")
        for key, before, after in ckpt.schedule_changes(state["config"], OmegaConf.structured(cfg)):
            logger.warning("%s: saved with %s=%s, resumed with %s: the learning-rate schedule changes from here on",
                           path, key, before, after)
        if acc.is_main_process:
            drop_rows_after(self.output_dir / "log.jsonl", self.step)
        self._event(f"resumed from {path}")

    def _save(self) -> Path:
        acc, cfg = self.accelerator, self.cfg
        state = {"step": self.step, "num_processes": acc.num_processes, "batch_size": cfg.batch_size,
                 "gradient_accumulation_steps": self.accum, "stage": cfg.stage,
                 "config": OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)}
        path = ckpt.save_checkpoint(self.ckpt_root, self.step, state,
                                    write=lambda tmp: acc.save_state(str(tmp)), barrier=acc.wait_for_everyone,
                                    is_main=acc.is_main_process)
        if acc.is_main_process:
            ckpt.prune(self.ckpt_root, cfg.keep_last)
        acc.wait_for_everyone()
        return path

    # ---------------------------------------------------------------- one step
    def micro_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Forward and backward on one micro-batch and, when the accumulation window closes, the optimizer,
        LR and EMA steps; returns the scalars to log. ``train`` calls it; benchmarks call it on fixed batches."""
        acc = self.accelerator
        with acc.accumulate(*self.models.values()):
            with acc.autocast():
                losses = self.stage.compute_losses(self.models, self.frozen, batch, self.step)
            unknown = set(losses) - set(self.models)
            if unknown:
                raise KeyError(f"stage {self.cfg.stage!r}: losses for unknown models {sorted(unknown)}")
            todo = [(name, loss) for name, (loss, _) in losses.items() if loss.requires_grad]
            for i, (name, loss) in enumerate(todo):
                # Each loss reaches only its own model's parameters (see stage.py); the graph is kept
                # for the later losses that share parts of it.
                acc.backward(loss, inputs=self.params[name], retain_graph=i < len(todo) - 1)
            if acc.sync_gradients:
                scalars = self._optimizer_step()
            else:
                scalars = {}
        for name, (loss, logged) in losses.items():
            scalars[f"loss/{name}"] = loss.detach().float()
            for key, value in logged.items():
                scalars[f"{name}/{key}"] = torch.as_tensor(value).detach().float()
        return scalars

    def _optimizer_step(self) -> dict[str, Tensor]:
        acc, max_norm = self.accelerator, self.cfg.optim.max_grad_norm
        scalars = {}
        # A model that got no gradient this step (a discriminator before it starts) is not stepped.
        active = {name: opt for name, opt in self.optimizers.items()
                  if any(p.grad is not None for p in self.params[name])}
        for name, opt in active.items():
            if max_norm > 0:
                if acc.scaler is not None:
                    acc.scaler.unscale_(opt.optimizer)
                scalars[f"grad_norm/{name}"] = torch.nn.utils.clip_grad_norm_(self.params[name], max_norm).detach()
        for name, opt in active.items():
            if acc.scaler is not None:
                # One scaler for all optimizers: step each, then update once (AcceleratedOptimizer.step would
                # update after every optimizer and unscale the next one's gradients with the wrong scale).
                acc.scaler.step(opt.optimizer)
            else:
                opt.step()
        if acc.scaler is not None and active:
            acc.scaler.update()
        for name, scheduler in zip(self.optimizers, self.schedulers):
            with warnings.catch_warnings():
                if name not in active:  # a model that has not started yet keeps its schedule in step
                    warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)`")
                scheduler.step()
        for name, ema in self.emas.items():
            ema.step(self.params[name])
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        return scalars

    # ---------------------------------------------------------------- logging, samples
    def _log(self, window: dict[str, list[Tensor]], images: int, seconds: float) -> dict[str, float]:
        acc = self.accelerator
        keys = sorted(window)
        means = torch.stack([torch.stack([v.to(acc.device) for v in window[k]]).mean() for k in keys])
        means = acc.reduce(means, reduction="mean")
        values = {k: float(v) for k, v in zip(keys, means.tolist())}
        for name, scheduler in zip(self.optimizers, self.schedulers):
            values[f"lr/{name}"] = scheduler.get_last_lr()[0]
        values["img_per_s"] = images * acc.num_processes / max(seconds, 1e-9)
        acc.log(values, step=self.step)
        if acc.is_main_process:
            append_json_line(self.output_dir / "log.jsonl", {"step": self.step, "time": time.time(), **values})
        return values

    def _event(self, text: str) -> None:
        if self.accelerator.is_main_process:
            append_json_line(self.output_dir / "log.jsonl", {"step": self.step, "time": time.time(), "event": text})

    def _sample(self) -> None:
        """Main process only: no collective calls in here."""
        models = {name: self.unwrap(name) for name in self.models}
        # Eager: a compiled model would recompile for no_grad (110 s for the 256 px UNet) to save milliseconds.
        with ema_applied(self.emas, self.params), torch.no_grad(), self.accelerator.autocast(), \
                torch.compiler.set_stance("force_eager"):
            for m in models.values():
                m.eval()
            try:
                grid = self.stage.make_grid(models, self.frozen, self.grid_batch)
            finally:
                for m in models.values():
                    m.train()
        save_image(grid.float(), self.output_dir / "samples" / f"{ckpt.checkpoint_name(self.step)}.png",
                   overwrite=True)

    def _out_of_time(self, started: float) -> bool:
        """True once ``time_limit_minutes`` have passed, decided together by all processes (checked
        every ``log_every`` steps): a run on a rented GPU then still checkpoints and exports."""
        limit = self.cfg.time_limit_minutes
        if not limit or self.step % self.cfg.log_every:
            return False
        late = torch.tensor(float(time.monotonic() - started > 60 * limit), device=self.accelerator.device)
        return bool(self.accelerator.reduce(late, reduction="max").item())

    def _export(self) -> Path:
        out = self.output_dir / "export"
        models = {}
        for name in self.models:
            model = copy.deepcopy(self.unwrap(name)).eval()
            if name in self.emas:
                self.emas[name].copy_to([p for p in model.parameters() if p.requires_grad])
            models[name] = model
        out.mkdir(parents=True, exist_ok=True)
        self.stage.export(models, out)
        return out

    def _record(self, batch: dict[str, Tensor], micro: int) -> None:
        """Debug: which samples this process consumed (``debug_record_indices``)."""
        if "index" not in batch:
            raise KeyError(f"stage {self.cfg.stage!r}: debug_record_indices needs an 'index' entry in each item")
        append_json_line(self.output_dir / "debug" / f"indices_rank{self.accelerator.process_index}.jsonl",
                         {"step": self.step, "micro_batch": micro, "indices": batch["index"].flatten().tolist()})

    def _record_weights(self) -> None:
        """Debug: a digest of every model's weights (and EMA) on this process, to compare processes."""
        digests = {name: weights_digest(self.unwrap(name), self.emas.get(name)) for name in self.models}
        path = self.output_dir / "debug" / f"weights_rank{self.accelerator.process_index}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"step": self.step, "sha256": digests}))

    # ---------------------------------------------------------------- the loop
    def batches(self) -> Iterator[dict[str, Tensor]]:
        """Micro-batches from the current position on, across epochs, for ever."""
        epoch, skip = divmod(self.step * self.accum, self.batches_per_epoch)
        while True:
            if self.resident is not None:
                yield from map(self._memory_format, self.resident.epoch(epoch, skip))
                epoch, skip = epoch + 1, 0
                continue
            loader = self.accelerator.skip_first_batches(self.loader, skip) if skip else self.loader
            # accelerate's loader re-applies its own epoch counter to the sampler on iter().
            loader.set_epoch(epoch)
            self.sampler.set_epoch(epoch)
            self.loader_generator.manual_seed(self.cfg.seed * 1_000_003 + epoch)
            yield from map(self._memory_format, loader)
            epoch, skip = epoch + 1, 0

    def _memory_format(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        if not self.cfg.channels_last:
            return batch
        return {k: v.contiguous(memory_format=torch.channels_last) if isinstance(v, Tensor) and v.dim() == 4 else v
                for k, v in batch.items()}

    def _stop_requested(self, caught: list[str]) -> bool:
        """A stop signal reached this process, or (several processes) any of them: all stop at one step."""
        acc = self.accelerator
        if acc.num_processes == 1:
            return bool(caught)
        flag = torch.tensor([float(bool(caught))], device=acc.device)
        return bool(acc.reduce(flag, reduction="sum").item() > 0)

    def train(self) -> Path:
        """Train to ``max_steps`` (or the time limit), checkpoint, export; returns the export folder.
        SIGINT / SIGTERM save a checkpoint at the current step and raise ``TrainingInterrupted``."""
        acc, cfg = self.accelerator, self.cfg
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        acc.wait_for_everyone()
        self._resume()
        if acc.is_main_process:
            (self.output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
        acc.init_trackers(cfg.stage)
        for m in self.models.values():
            m.train()
        # redirected to a file (a GPU run's log), the bar writes a line every 30 s, not every step
        bar = tqdm(total=cfg.max_steps, initial=self.step, disable=not acc.is_local_main_process,
                   desc=f"{cfg.stage}", dynamic_ncols=True, mininterval=0.1 if sys.stderr.isatty() else 30.0)
        window: dict[str, list[Tensor]] = defaultdict(list)
        tic, images = time.perf_counter(), 0
        last_saved = self.step
        micro = self.step * self.accum
        batches = self.batches()
        started = time.monotonic()
        caught: list[str] = []
        with stop_signals_caught(caught):
            while self.step < cfg.max_steps and not self._out_of_time(started):
                try:
                    batch = next(batches)
                except RuntimeError:
                    if caught:  # Ctrl-C also stopped the data loader's workers: stop at this step
                        break
                    raise
                if cfg.debug_record_indices:
                    self._record(batch, micro)
                scalars = self.micro_step(batch)
                micro += 1
                images += cfg.batch_size
                for key, value in scalars.items():
                    window[key].append(value)
                if not acc.sync_gradients:
                    continue
                self.step += 1
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                    values = self._log(window, images, time.perf_counter() - tic)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in values.items() if k.startswith("loss/")})
                    window.clear()
                    tic, images = time.perf_counter(), 0
                if (self.step % cfg.sample_every == 0 or self.step == cfg.max_steps) and acc.is_main_process:
                    self._sample()
                if self.step % cfg.checkpoint_every == 0:
                    self._save()
                    last_saved = self.step
                if self._stop_requested(caught):  # at a step boundary: no gradients half accumulated
                    break
        bar.close()
        if last_saved != self.step:
            self._save()
        if caught:
            raise TrainingInterrupted(self.step, ckpt.latest_checkpoint(self.ckpt_root), caught[0])
        if cfg.debug_record_indices:
            self._record_weights()
        out = self.output_dir / "export"
        if acc.is_main_process:
            out = self._export()
        acc.wait_for_everyone()
        acc.end_training()
        return out
