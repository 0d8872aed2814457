"""Run benchmark jobs a few at a time: the scheduler of ``bench_time_to_walk.py`` and
``bench_time_to_steer.py``, whose jobs each train (and evaluate) in processes of their own."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol


class Handle(Protocol):
    """A started job: ``poll()`` says whether it still runs (and does its periodic work),
    ``stop(reason)`` ends it."""

    def poll(self) -> bool: ...

    def stop(self, reason: str) -> None: ...


def run_jobs(jobs: Sequence[Any], parallel: int, start: Callable[[Any], Handle],
             poll_s: float) -> None:
    """Start ``jobs`` in order, at most ``parallel`` at a time, until every one has finished.

    Each job (with ``name``, ``kind``, ``recipe``, ``flags``, ``seed`` and ``status``) is marked
    ``"running"``, announced on stdout and handed to ``start``; its handle is polled every
    ``poll_s`` seconds until ``poll()`` returns False. On any exit (Ctrl-C included) the jobs
    still running are stopped with the reason ``"interrupted"``.
    """
    pending, running = list(jobs), []
    try:
        while pending or running:
            while pending and len(running) < parallel:
                job = pending.pop(0)
                job.status = "running"
                print(f"start {job.name} ({job.kind}, {' '.join([job.recipe, *job.flags])}) "
                      f"seed {job.seed}", flush=True)
                running.append(start(job))
            running = [r for r in running if r.poll()]
            time.sleep(poll_s)
    finally:
        for r in running:
            r.stop("interrupted")
