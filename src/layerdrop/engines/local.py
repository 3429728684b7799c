"""The default engine: runs on this machine, in this process for one worker, in a process pool for more.

Pool workers are spawned (fork is unsafe once torch or CUDA are loaded) and each is pinned to one
GPU before anything can initialise CUDA: worker i sees GPU i mod n.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from layerdrop.engines import base
from layerdrop.engines.base import Finished, Runner, Spec

if TYPE_CHECKING:
    from layerdrop.engines import ExecutionSettings


class Engine(base.Engine):
    """Runs in this process when one worker is asked for (or one run given), else in a spawned process pool."""

    def __init__(self, settings: ExecutionSettings, runner: Runner, runs: int) -> None:
        """Start the pool, if any: min(workers, runs) processes."""
        super().__init__(settings, runner, runs)
        self.workers = max(1, min(settings.workers, runs))
        self.queue: deque[tuple[str, Spec]] = deque()  # in-process: run one at a time when asked
        self.futures: dict[Future, str] = {}
        self.pool: ProcessPoolExecutor | None = None
        if self.workers > 1:
            context = multiprocessing.get_context("spawn")
            self.pool = ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_pin_gpu, initargs=(context.Value("i", 0), visible_gpus())
            )

    def submit(self, key: str, spec: Spec) -> None:
        """Queue the run: in this process it starts when `next_finished` asks for it."""
        if self.pool is None:
            self.queue.append((key, spec))
        else:
            self.futures[self.pool.submit(self.runner, spec)] = key

    def next_finished(self) -> Finished:
        """In this process: run the next queued run now. In the pool: wait for the first to finish."""
        if self.pool is None:
            key, spec = self.queue.popleft()
            try:
                return Finished(key, result=self.runner(spec))
            except Exception as err:
                return Finished.failed(key, err)
        wait(self.futures, return_when=FIRST_COMPLETED)
        future = next(f for f in self.futures if f.done())  # the earliest submitted of those done
        key = self.futures.pop(future)
        error = future.exception()
        return Finished.failed(key, error) if error is not None else Finished(key, result=future.result())

    def slots(self) -> int:
        """The worker processes (1: this process)."""
        return self.workers

    def describe(self) -> str:
        """This process, or the pool and the GPUs its workers are pinned to."""
        if self.pool is None:
            return "this process"
        gpus = visible_gpus()
        return f"{self.workers} local worker processes" + (f" on GPUs {','.join(gpus)}" if gpus else "")

    def close(self) -> None:
        """Cancel queued runs and wait for the pool's running ones to end."""
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def visible_gpus() -> list[str]:
    """GPU ids workers may be pinned to: CUDA_VISIBLE_DEVICES when set, else all torch can see."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [device.strip() for device in visible.split(",") if device.strip()]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


def _pin_gpu(counter: Any, gpus: list[str]) -> None:
    """Pool initializer: worker i sees only GPU i mod n, before anything initialises CUDA."""
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
