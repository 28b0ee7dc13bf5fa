"""The order of the training data: a function of (seed, epoch) only, so that a resumed run sees exactly the
batches it would have seen, on one process or many; batches of a training set held in device memory."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from ..data.datasets import ResidentFaces


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    """The data order of one epoch: a function of ``(seed, epoch)`` only."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


class ResidentBatches:
    """Batches of a :class:`ResidentFaces` set for one process of ``num_processes``: each global batch
    of the epoch's permutation is split between the processes, as accelerate shards a DataLoader, and
    the randomness inside a batch comes from a generator seeded by ``(seed, epoch, batch, process)``,
    so a resumed run sees exactly the batches it would have seen."""

    def __init__(self, faces: ResidentFaces, batch_size: int, seed: int, process_index: int,
                 num_processes: int) -> None:
        self.faces, self.batch_size, self.seed = faces, batch_size, seed
        self.rank, self.world = process_index, num_processes

    def __len__(self) -> int:
        return len(self.faces) // (self.batch_size * self.world)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[dict[str, Tensor]]:
        order = epoch_permutation(len(self.faces), self.seed, epoch).to(self.faces.device)
        for b in range(skip, len(self)):
            start = (b * self.world + self.rank) * self.batch_size
            seed = int(np.random.SeedSequence([self.seed, epoch, b, self.rank]).generate_state(1)[0])
            generator = torch.Generator(self.faces.device).manual_seed(seed)
            yield self.faces.batch(order[start:start + self.batch_size], generator)


class EpochShuffle(Sampler[tuple[int, int]]):
    """``(epoch, index)`` over a permutation of ``range(n)`` that depends only on ``(seed, epoch)``: the
    same on every process (accelerate shards the batches), so the data order survives a restart."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, i) for i in epoch_permutation(self.n, self.seed, self.epoch).tolist()])

    def __len__(self) -> int:
        return self.n


class EpochItems(Dataset):
    """Calls ``dataset.set_epoch`` with the epoch that comes with each index, inside the process that
    loads the item: persistent DataLoader workers hold their own copies of the dataset."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset, self.epoch = dataset, None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if epoch != self.epoch and hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        self.epoch = epoch
        return self.dataset[index]


def first_items(dataset: Dataset, count: int, device: torch.device) -> dict[str, Tensor]:
    """The first ``count`` items of ``dataset`` (at epoch 0) as one batch on ``device``."""
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(0)
    items = [dataset[i] for i in range(min(count, len(dataset)))]
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in default_collate(items).items()}


def epoch_loader(dataset: Dataset, batch_size: int, seed: int, workers: int,
                 pin_memory: bool) -> tuple[DataLoader, EpochShuffle, torch.Generator]:
    """A loader in the order of ``EpochShuffle``, with its sampler and the generator of its workers' seeds
    (re-seeded per epoch by the caller: creating an iterator after a resume then does not shift the global
    random stream)."""
    sampler, generator = EpochShuffle(len(dataset), seed), torch.Generator()
    loader = DataLoader(EpochItems(dataset), batch_size=batch_size, sampler=sampler, drop_last=True,
                        num_workers=workers, persistent_workers=workers > 0, pin_memory=pin_memory,
                        generator=generator)
    return loader, sampler, generator
