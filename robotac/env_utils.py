"""Env construction for the trainers: checks, seeded resets and exact env restore.

Every env comes from ``envs.registration.make_env`` (the project's registry, which also knows the
Gymnasium ids); ``register_envs()`` runs first, also inside ``AsyncVectorEnv`` subprocesses.

Exact resume (DESIGN.md contract 5) needs the envs' state too, which a MuJoCo env cannot hand
over in general. :class:`SeededResets` makes it reconstructible instead: the ``k``-th reset of env
``i`` is seeded with a seed derived from ``(seed, i, k)``, and the actions taken since that reset
are recorded. Restoring = reset with the same derived seed, then replay the recorded actions
(the simulators are deterministic given seed and actions).
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = [
    "EnvError",
    "make_env",
    "SeededResets",
    "make_train_env",
    "make_vector_env",
    "check_spaces",
    "env_interface",
]


class EnvError(ValueError):
    """An env id is unknown, or its spaces do not suit the trainers."""


def _registration():
    """The project's env registry module, or ``None`` while it does not exist."""
    import importlib

    try:
        return importlib.import_module("envs.registration")
    except ModuleNotFoundError as e:
        if e.name not in ("envs", "envs.registration"):
            raise
        return None


def make_env(env_id: str, **env_kwargs: Any) -> gym.Env:
    """Create one env by id through the project's registry.

    Raises:
        EnvError: if the id is unknown (the message names it) or the constructor fails on the
            given keyword arguments.
    """
    reg = _registration()
    try:
        if reg is not None:
            return reg.make_env(env_id, **env_kwargs)
        return gym.make(env_id, **env_kwargs)
    except (gym.error.NameNotFound, gym.error.NamespaceNotFound, gym.error.VersionNotFound,
            gym.error.UnregisteredEnv, gym.error.DeprecatedEnv) as e:
        raise EnvError(
            f"unknown environment id {env_id!r} ({e}). Use a registered id such as "
            "'Pendulum-v1', 'HalfCheetah-v5' or 'robotac/Quadruped-v0'."
        ) from e
    except TypeError as e:
        raise EnvError(f"env {env_id!r} rejected env_kwargs {env_kwargs}: {e}") from e


def check_spaces(env: gym.Env, env_id: str) -> tuple[int, np.ndarray, np.ndarray]:
    """Check the spaces and return ``(obs_dim, action_low, action_high)`` (float32 arrays).

    Raises:
        EnvError: if the action space is not a 1-D ``Box``, has an infinite or empty bound in
            some dimension, or the observation space is not a 1-D ``Box``.
    """
    a_space, o_space = env.action_space, env.observation_space
    if not isinstance(a_space, gym.spaces.Box) or len(a_space.shape) != 1:
        raise EnvError(
            f"env {env_id!r} has action space {a_space}; the trainers need a 1-D Box "
            "(continuous actions). Discrete or dict action spaces are not supported."
        )
    low = np.asarray(a_space.low, dtype=np.float32)
    high = np.asarray(a_space.high, dtype=np.float32)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        bad = np.flatnonzero(~(np.isfinite(low) & np.isfinite(high))).tolist()
        raise EnvError(
            f"env {env_id!r} has an unbounded action space (dimensions {bad} are infinite); "
            "squashed actors need finite per-dimension bounds: wrap the env with "
            "gymnasium.wrappers.RescaleAction or declare the actuators' ctrlrange."
        )
    if not np.all(high > low):
        bad = np.flatnonzero(~(high > low)).tolist()
        raise EnvError(
            f"env {env_id!r} action space has high <= low in dimensions {bad} ({a_space}); "
            "squashed actors need high > low in every dimension: fix the env's action bounds "
            "(the actuators' ctrlrange)"
        )
    if not isinstance(o_space, gym.spaces.Box) or len(o_space.shape) != 1:
        raise EnvError(
            f"env {env_id!r} has observation space {o_space}; the trainers need a flat 1-D Box "
            "(wrap it with gymnasium.wrappers.FlattenObservation)."
        )
    return int(o_space.shape[0]), low, high


def actor_bounds(
    env: gym.Env,
    env_id: str,
    which: str,
    action_low: np.ndarray,
    action_high: np.ndarray,
    radius: float = 0.6,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension bounds the actor squashes into (``TrainConfig.actor_bounds``).

    Args:
        env: The env (its ``unwrapped.interface`` is read for ``"joint_limits"``).
        env_id: For error messages.
        which: ``"action_space"`` (the Box bounds) or ``"joint_limits"`` (the robot interface's
            ``joint_low_rad``/``joint_high_rad``, intersected with the Box bounds), or
            ``"default_pose"`` (the joint limits intersected with
            ``default_pose_rad +- radius``).
        action_low, action_high: ``(act_dim,)`` float32 Box bounds.
        radius: Half-width around the default pose for ``"default_pose"`` [action units].

    Returns:
        ``(low, high)`` float32 arrays of shape ``(act_dim,)``.

    Raises:
        EnvError: if ``"joint_limits"`` is asked of an env without a robot interface, or the
            interface's joint count differs from the action size.
    """
    if which == "action_space":
        return action_low, action_high
    interface = getattr(env.unwrapped, "interface", None)
    if interface is None:
        raise EnvError(
            f"actor_bounds={which!r} needs a robot interface, and env {env_id!r} has none "
            "(env.unwrapped.interface); use --actor-bounds action_space"
        )
    low = np.asarray(interface.joint_low_rad, dtype=np.float32)
    high = np.asarray(interface.joint_high_rad, dtype=np.float32)
    if low.shape != action_low.shape:
        raise EnvError(
            f"env {env_id!r}: interface has {low.shape[0]} joints but the action space has "
            f"{action_low.shape[0]} dimensions; use --actor-bounds action_space"
        )
    low, high = np.maximum(low, action_low), np.minimum(high, action_high)
    if which == "default_pose":
        default = np.asarray(interface.default_pose_rad, dtype=np.float32)
        low, high = np.maximum(low, default - radius), np.minimum(high, default + radius)
    if not np.all(high > low):
        bad = np.flatnonzero(~(high > low)).tolist()
        raise EnvError(
            f"env {env_id!r}: actor_bounds={which!r} leaves an empty range in dimensions {bad} "
            "(the robot's joint limits and the action space do not overlap there); use "
            "--actor-bounds action_space"
        )
    return low, high


def env_interface(env: gym.Env) -> dict | None:
    """``env.unwrapped.interface.to_dict()`` when the env publishes a robot interface, else None."""
    interface = getattr(env.unwrapped, "interface", None)
    return None if interface is None else interface.to_dict()


def episode_seed(seed: int, env_index: int, episode: int) -> int:
    """Seed of reset number ``episode`` of env ``env_index``: ``SeedSequence((seed, i, k))``."""
    return int(np.random.SeedSequence([seed, env_index, episode]).generate_state(1)[0])


class SeededResets(gym.Wrapper):
    """Seeds every reset from ``(seed, index, reset count)``; records actions since the reset.

    It also counts this env's steps and, before each reset, tells an env that has a curriculum
    (``env.unwrapped.set_curriculum_step``) the global step, ``steps * num_envs`` (a vector env
    steps its envs in lockstep), so the curriculum stage is part of the reconstructible state.

    Args:
        env: The env to wrap.
        seed: Run seed.
        index: Index of this env in its vector env.
        num_envs: Number of envs in the vector env.
    """

    def __init__(self, env: gym.Env, seed: int, index: int, num_envs: int = 1):
        super().__init__(env)
        self.base_seed = int(seed)
        self.index = int(index)
        self.num_envs = int(num_envs)
        self.episode = 0
        self.steps = 0
        self.actions: list[np.ndarray] = []
        self._set_step = getattr(env.unwrapped, "set_curriculum_step", None)

    def reset(self, *, seed=None, options=None):
        """Reset with the derived seed (a ``seed`` argument is ignored on purpose)."""
        s = episode_seed(self.base_seed, self.index, self.episode)
        self.episode += 1
        self.actions = []
        if self._set_step is not None:
            self._set_step(self.steps * self.num_envs)
        return self.env.reset(seed=s, options=options)

    def step(self, action):
        self.actions.append(np.array(action, copy=True))
        self.steps += 1
        return self.env.step(action)

    def robotac_state(self) -> dict:
        """Reset count, steps so far and the actions since the last reset: enough to rebuild the
        env's state."""
        return {"episode": self.episode, "steps": self.steps,
                "actions": [a.tolist() for a in self.actions]}

    def robotac_restore(self, states: list[dict]) -> np.ndarray:
        """Rebuild the state of :meth:`robotac_state` ``states[self.index]``; return the obs.

        A state saved before step counting existed (no ``"steps"``) restarts the count at the
        replayed actions, which only matters for an env with a curriculum.
        """
        st = states[self.index]
        self.episode = int(st["episode"]) - 1
        self.steps = int(st.get("steps", len(st["actions"]))) - len(st["actions"])
        obs, _ = self.reset()
        dtype = self.action_space.dtype
        for a in st["actions"]:
            obs, *_ = self.step(np.asarray(a, dtype=dtype))
        return obs


def make_train_env(
    env_id: str, env_kwargs: dict, seed: int, index: int, num_envs: int = 1
) -> gym.Env:
    """Env factory for vector envs (module level, so ``AsyncVectorEnv`` can pickle it)."""
    return SeededResets(make_env(env_id, **env_kwargs), seed, index, num_envs)


def make_vector_env(
    env_id: str, env_kwargs: dict, num_envs: int, seed: int, mode: str = "sync"
) -> gym.vector.VectorEnv:
    """``num_envs`` envs with same-step autoreset (the final obs is in ``info["final_obs"]``).

    Raises:
        EnvError: for an unknown id or unsuitable spaces (checked on the first env).
    """
    fns = [
        functools.partial(make_train_env, env_id, dict(env_kwargs), seed, i, num_envs)
        for i in range(num_envs)
    ]
    kw = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
    if mode == "async":
        probe = make_env(env_id, **env_kwargs)  # fail fast in this process with a clear error
        check_spaces(probe, env_id)
        probe.close()
        return gym.vector.AsyncVectorEnv(fns, **kw)
    return gym.vector.SyncVectorEnv(fns, **kw)
