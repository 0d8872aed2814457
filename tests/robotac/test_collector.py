"""collector=process: the envs step in a worker process (robotac.collector).

Exact resume on the same code path, a clean shutdown of the worker whatever stops the learner,
a clear error naming the worker when it dies, and the lock-step schedule's learning sanity.
"""

import dataclasses
import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pytest
import torch
from test_resume import _all_tensors

from robotac.checkpoint import load_checkpoint, load_policy
from robotac.collector import CollectorError
from robotac.config import ConfigError, TrainConfig, resolved, validate
from robotac.env_utils import make_env
from robotac.train import evaluate, train


def _cfg(run_dir, algo="sac", **kw) -> TrainConfig:
    base = dict(
        env_id="Pendulum-v1", algo=algo, seed=3, total_steps=900, learning_starts=300,
        batch_size=64, hidden=(32, 32), eval_every=400, eval_episodes=2, checkpoint_every=500,
        log_every=100, run_dir=str(run_dir), progress=False, video=False, export=False,
        collector="process",
    )
    base.update(kw)
    return TrainConfig(**base)


def _workers() -> list[mp.process.BaseProcess]:
    return [p for p in mp.active_children() if p.name == "robotac-collector"]


def _gone(pid: int, within_s: float = 10.0) -> bool:
    """True once ``pid`` is no longer a live process (reaped, or a zombie at worst)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.numeric
@pytest.mark.parametrize("algo,num_envs,chunk,extra", [
    ("sac", 1, 1, {}),
    # Two envs, chunks of 3 steps (checkpoints fall inside a round: taken at its end), colored
    # noise whose per-env sequences live in the worker (150-step sequences run out within
    # Pendulum's 200-step episodes).
    ("sac", 2, 3, {"action_noise_beta": 1.0, "action_noise_seq_len": 150}),
    # CrossQ: 100 critic updates by the kill at 300, past its 50-update batch-norm warm-up.
    ("crossq", 1, 2, {"critic_hidden": (64, 64), "batch_renorm_warmup": 50}),
])
def test_process_collector_resumes_bitwise(tmp_path, algo, num_envs, chunk, extra):
    """600 steps straight == 300 steps, killed, resumed to 600: every network, optimizer and
    buffer tensor, the episode history and the final evaluation are bitwise equal."""
    kw = {"num_envs": num_envs, "collector_chunk": chunk, "total_steps": 600,
          "learning_starts": 200, "checkpoint_every": 300, "eval_every": 250, **extra}
    straight = train(_cfg(tmp_path / "a", algo, **kw))
    killed = train(_cfg(tmp_path / "b", algo, stop_after_steps=300, **kw))
    assert killed.stopped_early and 300 <= killed.global_step < 300 + chunk * num_envs
    ck = load_checkpoint(tmp_path / "b" / "checkpoints" / "latest.pt")
    assert ck["loop"]["collector"]["steps"] == killed.global_step  # the worker's state is in
    resumed = train(dataclasses.replace(_cfg(tmp_path / "b", algo, **kw),
                                        resume=str(tmp_path / "b"), run_dir=None))
    assert resumed.global_step == straight.global_step == 600
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "latest.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "latest.pt")
    ta, tb = _all_tensors(a), _all_tensors(b)
    assert ta.keys() == tb.keys() and len(ta) > 20
    assert [k for k in ta if not torch.equal(ta[k], tb[k])] == []
    # Every owed update ran: one per env step after learning starts, as inline.
    assert a["algo"]["n_updates"] == b["algo"]["n_updates"] == 600 - 200 + num_envs
    assert a["loop"]["state"]["train_history"] == b["loop"]["state"]["train_history"]
    assert a["loop"]["state"]["train_history"]  # episodes ended (200-step Pendulum)
    assert straight.final_eval_return == resumed.final_eval_return
    assert _workers() == []


@pytest.mark.numeric
def test_process_collector_final_checkpoint_continues_like_a_longer_run(tmp_path):
    """A run that ended at 400 steps (its last chunk's updates flushed before the final
    evaluation), resumed with total_steps 600, equals a 600-step run: the checkpoint keeps the
    weights the next chunk is acted with, from before the flush."""
    kw = {"learning_starts": 200, "checkpoint_every": 10_000, "eval_every": 0}
    train(_cfg(tmp_path / "a", total_steps=600, **kw))
    train(_cfg(tmp_path / "b", total_steps=400, **kw))
    train(dataclasses.replace(_cfg(tmp_path / "b", total_steps=600, **kw),
                              resume=str(tmp_path / "b"), run_dir=None))
    ta = _all_tensors(load_checkpoint(tmp_path / "a" / "checkpoints" / "latest.pt"))
    tb = _all_tensors(load_checkpoint(tmp_path / "b" / "checkpoints" / "latest.pt"))
    assert [k for k in ta if not torch.equal(ta[k], tb[k])] == []


@pytest.mark.numeric
def test_warm_up_phase_collects_what_inline_collects(tmp_path):
    """Before learning starts the worker draws the inline loop's uniform actions from the same
    generator on the same seeded envs: the first 300 transitions are identical (the same
    numpy and MuJoCo code in both processes)."""
    kw = dict(total_steps=300, learning_starts=300, eval_every=0)
    train(_cfg(tmp_path / "p", **kw))
    train(_cfg(tmp_path / "i", collector="inline", **kw))
    p = load_checkpoint(tmp_path / "p" / "checkpoints" / "latest.pt")["buffer"]
    i = load_checkpoint(tmp_path / "i" / "checkpoints" / "latest.pt")["buffer"]
    for k in ("obs", "action", "reward", "next_obs"):
        assert torch.equal(p[k][:300], i[k][:300]), k


def test_worker_stops_when_the_learner_raises(tmp_path):
    """An exception in the learner (here from on_eval) stops the worker: no orphan process."""
    seen = []

    def boom(step, ret):
        seen.extend(p.pid for p in _workers())
        raise RuntimeError("learner failure")

    with pytest.raises(RuntimeError, match="learner failure"):
        train(_cfg(tmp_path / "r", total_steps=600, eval_every=200, learning_starts=100),
              on_eval=boom)
    assert len(seen) == 1 and _gone(seen[0])
    assert _workers() == []


def test_worker_stops_on_keyboard_interrupt(tmp_path):
    """Ctrl-C in the learner: the worker ignores SIGINT itself, and the learner stops it."""
    seen = []

    def interrupt(step, ret):
        seen.extend(p.pid for p in _workers())
        os.kill(seen[0], signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path / "r", total_steps=600, eval_every=200, learning_starts=100),
              on_eval=interrupt)
    assert len(seen) == 1 and _gone(seen[0])
    assert _workers() == []


def test_learner_names_a_dead_worker(tmp_path):
    """A worker killed mid-run: the learner raises CollectorError naming the worker process,
    its pid and exit code, and how to go on."""
    seen = []

    def kill_worker(step, ret):
        seen.extend(p.pid for p in _workers())
        os.kill(seen[0], signal.SIGKILL)
        return False

    with pytest.raises(CollectorError, match=r"collector worker process \(robotac-collector, "
                       r"pid \d+\) .*exit code -9.*--resume"):
        train(_cfg(tmp_path / "r", total_steps=600, eval_every=200, learning_starts=100),
              on_eval=kill_worker)
    assert len(seen) == 1 and _gone(seen[0])
    assert _workers() == []


def test_worker_failure_is_reported_with_its_traceback(tmp_path):
    """An env that fails inside the worker: the learner's error carries the worker's
    traceback."""
    with pytest.raises(CollectorError, match=r"(?s)failed:.*Traceback"):
        train(_cfg(tmp_path / "r", total_steps=600, env_kwargs={"g": "not a number"}))
    assert _workers() == []


def test_config_refuses_async_envs_and_bad_chunks():
    with pytest.raises(ConfigError, match="vector_mode=sync"):
        validate(resolved(_cfg("x", vector_mode="async")))
    with pytest.raises(ConfigError, match="collector_chunk"):
        validate(resolved(_cfg("x", collector_chunk=0)))


def test_resume_keeps_the_collector(tmp_path):
    """collector changes the trajectory: a resume that switches it is refused."""
    train(_cfg(tmp_path / "b", total_steps=600, stop_after_steps=500, collector="inline"))
    with pytest.raises(ConfigError, match=r"collector='process' \(run has 'inline'\)"):
        train(dataclasses.replace(_cfg(tmp_path / "b"), resume=str(tmp_path / "b"),
                                  run_dir=None))


@pytest.mark.pendulum
def test_process_collector_solves_pendulum_within_inline_budget(tmp_path):
    """Sanity of the lagged schedule: SAC with the worker collecting chunks of 4 steps (the
    behaviour actor 5-8 steps behind) solves Pendulum-v1 within inline SAC's budget of
    tests/robotac/test_pendulum_solves.py, by the same criterion: the best checkpoint's mean
    deterministic return over 10 fresh episodes >= -250."""
    result = train(_cfg(tmp_path / "r", seed=1, total_steps=6000, learning_starts=1000,
                        batch_size=256, hidden=(256, 256), eval_every=1000, eval_episodes=10,
                        checkpoint_every=6000, collector_chunk=4))
    bundle = load_policy(tmp_path / "r", "best")
    env = make_env("Pendulum-v1")
    returns = evaluate(bundle.actor, bundle.obs_norm, env, episodes=10, seed=123_456)
    env.close()
    print(f"process collector: best in-training eval {result.best_eval_return:.1f} at step "
          f"{bundle.global_step}; fresh 10-episode mean {np.mean(returns):.1f}")
    assert np.mean(returns) >= -250, returns
