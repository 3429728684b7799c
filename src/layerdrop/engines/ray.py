"""Runs on a Ray cluster: one Ray task per run, asking for one GPU where the cluster has GPUs, one CPU otherwise.

Without an address a Ray instance is started on this machine for the sweep and stopped after it;
`address: auto` (or HOST:PORT) joins a running cluster, whose nodes need layerdrop and the models'
dependencies installed (the same image or environment as the driver). Results travel back to the
driver, which alone writes the database. A task whose worker or node dies is restarted by Ray up
to `retries` times; a run that raises is not (it would fail again): it comes back as failed, is
recorded, and runs again on the next resume. Workers' output goes to the Ray session's log folder.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import ray

from layerdrop.engines import base
from layerdrop.engines.base import Finished, Runner, Spec

if TYPE_CHECKING:
    from layerdrop.engines import ExecutionSettings


def task_options(cluster: dict[str, float], retries: int) -> dict[str, Any]:
    """Ray task options for one run on a cluster with these resources: one GPU each if it has GPUs.

    A GPU task gets a fresh worker process per run (max_calls=1), so each run's GPU memory is
    returned when it ends; CPU workers are reused.
    """
    resources: dict[str, Any] = {"num_gpus": 1, "max_calls": 1} if cluster.get("GPU", 0) >= 1 else {"num_cpus": 1}
    return {**resources, "max_retries": retries, "retry_exceptions": False}


def _call(runner: Runner, spec: Spec) -> Any:
    """What each task runs: the sweep's runner (any picklable callable) on one run's spec."""
    return runner(spec)


class Engine(base.Engine):
    """Runs as Ray tasks; the cluster's scheduler decides where and when."""

    def __init__(self, settings: ExecutionSettings, runner: Runner, runs: int) -> None:
        """Join the cluster at `settings.address` (or this process's Ray, or a new local one) and size the tasks."""
        super().__init__(settings, runner, runs)
        self.started_ray = not ray.is_initialized()
        if self.started_ray:
            ray.init(address=settings.address, log_to_driver=False, logging_level=logging.WARNING)
        options = task_options(ray.cluster_resources(), settings.retries)
        self.resource = "GPU" if "num_gpus" in options else "CPU"
        self.remote = ray.remote(**options)(_call)
        self.pending: dict[ray.ObjectRef, str] = {}

    def submit(self, key: str, spec: Spec) -> None:
        """Submit the run as a task; Ray queues it until a GPU (or CPU) is free."""
        self.pending[self.remote.remote(self.runner, spec)] = key

    def next_finished(self) -> Finished:
        """Wait for any task to end; its result, its own exception, or why its worker died."""
        ready, _ = ray.wait(list(self.pending), num_returns=1)
        key = self.pending.pop(ready[0])
        try:
            return Finished(key, result=ray.get(ready[0]))
        except ray.exceptions.RayTaskError as err:  # the run raised: hand back its own exception
            return Finished.failed(key, err.cause or err, detail=_plain(str(err)))
        except ray.exceptions.RayError as err:  # its worker or node died, more times than `retries`
            return Finished.failed(key, err, detail=_plain(str(err)))

    def slots(self) -> int:
        """The cluster's GPUs (or CPUs) now: it may grow or shrink while the sweep runs."""
        return int(ray.cluster_resources().get(self.resource, 0))

    def describe(self) -> str:
        """The cluster's address and size."""
        address = ray.get_runtime_context().gcs_address
        return f"Ray at {address}: {self.slots()} {self.resource}s, one per run (worker logs: the Ray session's folder)"

    def close(self) -> None:
        """Cancel the tasks still pending; stop Ray if this engine started it."""
        for ref in self.pending:
            ray.cancel(ref, force=True)
        self.pending.clear()
        if self.started_ray:
            ray.shutdown()


def _plain(text: str) -> str:
    """Ray's error text without its terminal colour codes, for the failures table."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
