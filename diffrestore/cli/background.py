"""Work on background threads whose results come back in the order it was given: the folder loop reads
the next images and writes the last ones while the model runs (``cli.folder``)."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Callable, Iterable, Iterator, TypeVar

Item = TypeVar("Item")


def io_workers() -> int:
    """Threads of each pool: half the cores, 1 to 8 (decoding and PNG / JPEG encoding release the GIL)."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def finished(fn: Callable, *args: object) -> Future:
    """A future already holding ``fn(*args)`` (or its exception), computed in this thread."""
    future: Future = Future()
    try:
        future.set_result(fn(*args))
    except Exception as err:  # noqa: BLE001 - handed to whoever reads the future, as a thread's would be
        future.set_exception(err)
    return future


class OrderedPool:
    """Calls run on ``workers`` threads (0: at once, in the caller's thread); ``next`` hands their futures
    back in the order they were submitted."""

    def __init__(self, workers: int, name: str) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=name) if workers > 0 else None
        self._pending: deque[Future] = deque()

    def submit(self, fn: Callable, *args: object) -> None:
        self._pending.append(self._executor.submit(fn, *args) if self._executor else finished(fn, *args))

    def __len__(self) -> int:
        return len(self._pending)

    def oldest_done(self) -> bool:
        return bool(self._pending) and self._pending[0].done()

    def next(self) -> Future:
        """The oldest future, once it is done."""
        future = self._pending.popleft()
        wait([future])
        return future

    def close(self, cancel: bool = False) -> None:
        """Stop the threads: after the pending calls, or (``cancel``) dropping those not started."""
        if self._executor is not None:
            self._executor.shutdown(wait=not cancel, cancel_futures=cancel)
        if cancel:
            self._pending.clear()


def prefetched(items: Iterable[Item], load: Callable[[Item], object], pool: OrderedPool, depth: int
               ) -> Iterator[tuple[Item, Future]]:
    """``(item, future of load(item))`` in order, each done; ``load`` runs up to ``depth`` items ahead on ``pool``."""
    waiting: deque = deque()
    for item in items:
        pool.submit(load, item)
        waiting.append(item)
        if len(waiting) > depth:
            yield waiting.popleft(), pool.next()
    while waiting:
        yield waiting.popleft(), pool.next()
