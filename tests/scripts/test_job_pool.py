"""scripts/job_pool.py: jobs start in order, at most ``parallel`` at a time; an interruption
stops the ones still running."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from job_pool import run_jobs  # noqa: E402


@dataclass
class _Job:
    name: str
    kind: str = "robotac"
    recipe: str = "r.yaml"
    flags: list = field(default_factory=list)
    seed: int = 0
    status: str = "pending"


class _Handle:
    def __init__(self, job, log, polls):
        self.job, self.log, self.left = job, log, polls
        log.append(("start", job.name))

    def poll(self) -> bool:
        self.left -= 1
        if self.left <= 0:
            self.log.append(("done", self.job.name))
        return self.left > 0

    def stop(self, reason: str) -> None:
        self.log.append(("stop", self.job.name, reason))


def test_at_most_parallel_jobs_run_and_each_starts_in_order(capsys):
    log: list = []
    jobs = [_Job(n) for n in "abcd"]
    polls = {"a": 3, "b": 1, "c": 1, "d": 1}
    run_jobs(jobs, 2, lambda j: _Handle(j, log, polls[j.name]), poll_s=0.0)
    running, most = set(), 0
    for event in log:
        (running.add if event[0] == "start" else running.discard)(event[1])
        most = max(most, len(running))
    assert most == 2
    assert [e[1] for e in log if e[0] == "start"] == list("abcd")
    assert {e[1] for e in log if e[0] == "done"} == set("abcd")
    assert all(j.status == "running" for j in jobs)
    assert capsys.readouterr().out.count("start ") == 4


def test_an_interruption_stops_the_running_jobs():
    log: list = []

    def start(job):
        if job.name == "c":
            raise KeyboardInterrupt
        return _Handle(job, log, 100)

    with pytest.raises(KeyboardInterrupt):
        run_jobs([_Job(n) for n in "abc"], 3, start, poll_s=0.0)
    assert [e for e in log if e[0] == "stop"] == [("stop", "a", "interrupted"),
                                                 ("stop", "b", "interrupted")]
