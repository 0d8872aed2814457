"""A second core for one run: the training envs step in a worker process (``collector=process``).

The worker holds the training vector env, a copy of the actor (the behaviour policy) and of the
observation normalizer, and the exploration state (its own torch generator, the uniform warm-up
actions' numpy generator, colored or Ornstein-Uhlenbeck noise). The learner (:func:`robotac.train.
train`) keeps the replay buffer, the networks and the optimizers.

Schedule (lock-step, so a run is the same whatever the timing, and resumes bitwise)::

    round r:  learner sends the behaviour weights    -> worker collects chunk r (k steps/env)
              learner runs the updates owed for chunk r-1   (both cores busy)
              learner receives chunk r, inserts it, updates the normalizer, counts the updates
              it owes for chunk r

Chunk ``r`` is collected with the actor after the updates for chunks ``<= r-2`` and the
normalizer after chunks ``<= r-1``: with ``collector_chunk = K`` the behaviour policy lags the
learner by ``K + 1`` to ``2K`` env steps (one with ``collector=inline``). Acting with slightly
stale weights is what distributed off-policy learners do (Ape-X, Horgan et al. 2018, sec. 3:
actors periodically copy the learner's latest parameters; R2D2, Kapturowski et al. 2019, with
parameters hundreds of steps old); the lag here is short and fixed, not timing-dependent.

The worker's state between rounds (env reset counts and actions since the reset, current
observations, generator states, noise state, step count) is sent to the learner for each
checkpoint; the behaviour weights of the next chunk are the learner's current actor and
normalizer, or, after the final flush of owed updates, a snapshot saved with the checkpoint.
No transition is ever in flight at a checkpoint (checkpoints are taken between rounds).

Both processes run one torch thread. The worker is started with the ``forkserver`` context
(``spawn`` where there is none); it ignores SIGINT (the learner stops it) and exits when the
learner's end of the pipe closes.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import signal
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["CollectorError", "ProcessCollector", "Chunk", "WORKER_SEED_INDEX"]

#: ``episode_seed(cfg.seed, WORKER_SEED_INDEX, 0)`` seeds the worker's torch generator (the
#: exploration noise), a stream apart from the learner's (minibatch indices).
WORKER_SEED_INDEX = 30_000


class CollectorError(RuntimeError):
    """The collector worker process died, failed, or answered out of protocol."""


@dataclass
class Chunk:
    """``k`` steps of ``n`` envs collected by the worker (arrays are ``(k, n, ...)``).

    ``next_obs`` is what the vector env returned (the reset observation where an episode
    ended); ``real_next_obs`` the transition's next observation
    (:func:`robotac.train.transition_next_obs`).
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    real_next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


def _numpy_state(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def _load_numpy_state(module: torch.nn.Module, state: dict[str, np.ndarray]) -> None:
    module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})


def behaviour_snapshot(actor: torch.nn.Module, obs_norm: torch.nn.Module) -> dict[str, Any]:
    """The weights the worker acts with: ``{"actor": ..., "obs_norm": ...}`` as numpy copies."""
    return {"actor": _numpy_state(actor), "obs_norm": _numpy_state(obs_norm)}


def to_checkpoint(tree: Any) -> Any:
    """``tree`` with numpy arrays as torch tensors (``torch.load(weights_only=True)`` reads
    tensors, not arrays)."""
    if isinstance(tree, dict):
        return {k: to_checkpoint(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [to_checkpoint(v) for v in tree]
    if isinstance(tree, np.ndarray):
        return torch.from_numpy(tree.copy())
    return tree


def from_checkpoint(tree: Any) -> Any:
    """The inverse of :func:`to_checkpoint` for the worker's side (tensors to numpy)."""
    if isinstance(tree, dict):
        return {k: from_checkpoint(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [from_checkpoint(v) for v in tree]
    if isinstance(tree, torch.Tensor):
        return tree.numpy().copy()
    return tree


class _Worker:
    """The worker's side: builds the envs and the behaviour actor, answers the learner."""

    def __init__(self, cfg, obs_dim: int, action_low: np.ndarray, action_high: np.ndarray,
                 obs_clip: float, skip: list[int], skip_std: list[float]):
        from policies.networks import RunningNorm
        from robotac.algos import make_algo
        from robotac.env_utils import episode_seed, make_vector_env

        torch.set_num_threads(1)
        self.cfg = cfg
        self.n = cfg.num_envs
        self.low, self.high = action_low, action_high
        self.envs = make_vector_env(cfg.env_id, cfg.env_kwargs, cfg.num_envs, cfg.seed, "sync")
        # The algorithm object only for its act() and exploration noise; the critics it builds
        # are never used here.
        cpu_cfg = dataclasses.replace(cfg, device="cpu", compile=False)
        self.algo = make_algo(cpu_cfg, obs_dim, action_low, action_high, self.n)
        self.obs_norm = RunningNorm(obs_dim, clip=obs_clip, skip=skip, skip_std=skip_std)
        self.gen_seed = episode_seed(cfg.seed, WORKER_SEED_INDEX, 0) % 2**63
        torch.manual_seed(self.gen_seed)
        self.np_rng = np.random.default_rng(cfg.seed)  # the inline loop's warm-up stream
        self.steps = 0  # global env steps collected (summed over envs)
        self.obs: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        self.obs, _ = self.envs.reset()
        return self.obs

    def collect(self, k: int, behaviour: dict[str, Any]) -> Chunk:
        from robotac.train import transition_next_obs

        _load_numpy_state(self.algo.actor, behaviour["actor"])
        _load_numpy_state(self.obs_norm, behaviour["obs_norm"])
        n, obs_dim, act_dim = self.n, self.obs.shape[1], len(self.low)
        out = Chunk(np.empty((k, n, obs_dim), np.float32), np.empty((k, n, act_dim), np.float32),
                    np.empty((k, n)), np.empty((k, n, obs_dim), np.float32),
                    np.empty((k, n, obs_dim), np.float32), np.empty((k, n), bool),
                    np.empty((k, n), bool))
        for j in range(k):
            if self.steps < self.cfg.learning_starts:
                action = self.low + (self.high - self.low) * self.np_rng.random(
                    (n, act_dim), dtype=np.float32)
            else:
                obs_t = torch.as_tensor(self.obs, dtype=torch.float32)
                action = self.algo.act(self.obs_norm(obs_t), explore=True).numpy()
            next_obs, reward, terminated, truncated, info = self.envs.step(action)
            out.obs[j], out.action[j], out.reward[j] = self.obs, action, reward
            out.next_obs[j] = next_obs
            out.real_next_obs[j] = transition_next_obs(next_obs, info)
            out.terminated[j], out.truncated[j] = terminated, truncated
            self.steps += n
            done = np.logical_or(terminated, truncated)
            if done.any():
                self.algo.reset_noise(torch.as_tensor(done))
            self.obs = next_obs
        return out

    def state(self) -> dict[str, Any]:
        algo = self.algo
        return {
            "envs": list(self.envs.call("robotac_state")),
            "obs": np.array(self.obs, copy=True),
            "steps": self.steps,
            "np_rng": self.np_rng.bit_generator.state,
            "torch_rng": torch.get_rng_state().numpy().copy(),
            "noise": {k: v.numpy().copy() for k, v in {**algo._noise_state(),
                                                       **algo._extra_state()}.items()},
        }

    def restore(self, state: dict[str, Any]) -> np.ndarray:
        self.obs = np.stack(self.envs.call("robotac_restore", state["envs"]))
        self.steps = int(state["steps"])
        self.np_rng.bit_generator.state = state["np_rng"]
        torch.set_rng_state(torch.from_numpy(state["torch_rng"]))
        noise = {k: torch.from_numpy(v) for k, v in state["noise"].items()}
        self.algo._load_extra_state(noise)
        self.algo._load_noise_state(noise)
        return self.obs


def _worker_main(conn, args: tuple) -> None:
    """Entry point of the worker process: build, then serve requests until ``close`` or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the learner decides when the worker stops
    try:
        worker = _Worker(*args)
        conn.send(("ready", None))
        while True:
            try:
                msg = conn.recv()
            except EOFError:  # the learner is gone
                return
            op = msg[0]
            if op == "close":
                return
            if op == "reset":
                conn.send(("obs", worker.reset()))
            elif op == "restore":
                conn.send(("obs", worker.restore(msg[1])))
            elif op == "collect":
                conn.send(("chunk", worker.collect(msg[1], msg[2])))
            elif op == "state":
                conn.send(("state", worker.state()))
            else:
                raise CollectorError(f"unknown request {op!r}")
    except BaseException:  # noqa: BLE001 - report anything to the learner, then exit
        try:
            conn.send(("error", traceback.format_exc()))
        except (OSError, EOFError):
            pass
    finally:
        conn.close()


def _context() -> mp.context.BaseContext:
    """``forkserver`` (fork from a clean server: no learner threads or state copied), else
    ``spawn``. The server preloads the worker's imports once per learner process."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # torch._dynamo: the first torch.optim.Adam imports it (seconds), in every child.
        ctx.set_forkserver_preload(["envs", "robotac.collector", "robotac.algos",
                                   "robotac.env_utils", "robotac.train", "torch._dynamo"])
        return ctx
    return mp.get_context("spawn")


class ProcessCollector:
    """The learner's handle on the worker process (see the module docstring for the schedule).

    Args:
        cfg: The resolved :class:`~robotac.config.TrainConfig` (env, seed, ``num_envs``,
            ``learning_starts``, exploration settings).
        obs_dim, action_low, action_high: As the learner's actor.
        obs_clip, skip, skip_std: The learner's normalizer's settings
            (:class:`policies.networks.RunningNorm`).
        timeout_s: Longest wait for one answer before the worker counts as hung.

    Raises:
        CollectorError: if the worker fails to start (with its traceback).
    """

    def __init__(self, cfg, obs_dim: int, action_low: np.ndarray, action_high: np.ndarray,
                 obs_clip: float, skip: list[int], skip_std: list[float],
                 timeout_s: float = 600.0):
        self.timeout_s = timeout_s
        ctx = _context()
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_worker_main, name="robotac-collector", daemon=True,
            args=(child, (cfg, obs_dim, np.asarray(action_low), np.asarray(action_high),
                          obs_clip, list(skip), list(skip_std))))
        self.proc.start()
        child.close()  # only the worker holds its end: EOF reaches us when it dies
        self._pending: str | None = None
        self._expect("ready")

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def _died(self, detail: str) -> CollectorError:
        self.proc.join(1.0)
        code = self.proc.exitcode
        return CollectorError(
            f"the collector worker process (robotac-collector, pid {self.proc.pid}) {detail}"
            f"{'' if code is None else f' (exit code {code})'}; the run stopped. Resume it "
            f"from its last checkpoint with --resume, or train with collector=inline")

    def _expect(self, kind: str) -> Any:
        waited = 0.0
        while True:
            try:
                if self.conn.poll(0.5):
                    got, payload = self.conn.recv()
                    break
            except (EOFError, OSError):
                raise self._died("closed its pipe") from None
            if not self.proc.is_alive() and not self.conn.poll(0):
                raise self._died("died")
            waited += 0.5
            if waited >= self.timeout_s:
                raise self._died(f"gave no answer in {self.timeout_s:.0f} s")
        if got == "error":
            raise CollectorError(f"the collector worker process (pid {self.proc.pid}) failed:\n"
                                 f"{payload}")
        if got != kind:
            raise CollectorError(f"collector protocol: expected {kind!r}, got {got!r}")
        return payload

    def _send(self, msg: tuple) -> None:
        try:
            self.conn.send(msg)
        except (BrokenPipeError, OSError):
            raise self._died("closed its pipe") from None

    def reset(self) -> np.ndarray:
        """Reset the envs (a fresh run); returns ``(num_envs, obs_dim)`` observations."""
        self._send(("reset",))
        return self._expect("obs")

    def restore(self, state: dict[str, Any]) -> np.ndarray:
        """Rebuild the worker's state from :meth:`state`'s dict; returns the observations."""
        self._send(("restore", from_checkpoint(state)))
        return self._expect("obs")

    def start_collect(self, k: int, behaviour: dict[str, Any]) -> None:
        """Ask for ``k`` steps per env acted with ``behaviour`` (:func:`behaviour_snapshot`, or
        its :func:`to_checkpoint` form); returns at once. Collect the result with
        :meth:`finish_collect`."""
        if self._pending is not None:
            raise CollectorError("start_collect called twice without finish_collect")
        self._send(("collect", int(k), from_checkpoint(behaviour)))
        self._pending = "chunk"

    def finish_collect(self) -> Chunk:
        """Wait for the chunk of the last :meth:`start_collect`.

        Raises:
            CollectorError: naming the worker when it died or failed meanwhile.
        """
        if self._pending is None:
            raise CollectorError("finish_collect called without start_collect")
        self._pending = None
        return self._expect("chunk")

    def state(self) -> dict[str, Any]:
        """The worker's state between rounds, in :func:`to_checkpoint` form: ``envs`` (reset
        counts, steps, actions since the reset), ``obs``, ``steps``, ``np_rng``, ``torch_rng``,
        ``noise``."""
        if self._pending is not None:
            raise CollectorError("the worker's state is read between rounds only")
        self._send(("state",))
        return to_checkpoint(self._expect("state"))

    def close(self) -> None:
        """Stop the worker: ask, then terminate, then kill; never leaves it running."""
        if self.proc.is_alive():
            try:
                self.conn.send(("close",))
            except (BrokenPipeError, OSError):
                pass
            self.proc.join(5.0)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(2.0)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(2.0)
        self.conn.close()
