"""Gymnasium registration of robotac's envs, and :func:`make_env`, the one way trainers build envs.

Following Gymnasium's convention (``import shimmy``, ``import ale_py``), the package that owns the
``robotac/`` namespace registers its ids on import::

    import gymnasium
    import robotac  # registers robotac/Quadruped-v0 and robotac/Reach7-v0

    env = gymnasium.make("robotac/Quadruped-v0")

(``gymnasium.make("robotac:robotac/Quadruped-v0")`` does the import itself.) ``envs/__init__.py``
stays import-light (``deploy/`` imports ``envs.interface`` on a machine without gymnasium or
MuJoCo), so ``import envs`` registers nothing; :func:`register_envs` and :func:`make_env` do.

Ids:

- ``robotac/Quadruped-v0``: :class:`envs.quadruped.QuadrupedEnv`, ``max_episode_steps=1000`` (20 s).
- ``robotac/Reach7-v0``: :class:`envs.reach7.Reach7Env`, ``max_episode_steps=200`` (4 s).
- ``dm_control/<domain>-<task>-v0`` (e.g. ``dm_control/walker-walk-v0``): the dm_control suite
  through shimmy, registered by ``import shimmy``. Their observations are dicts of float64 arrays;
  :func:`make_env` flattens them into one float32 ``Box`` (``FlattenObservation`` then a float32
  cast), in the order of shimmy's ``Dict`` space (keys sorted).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["ENV_IDS", "make_env", "register_envs"]

#: robotac's own env ids.
ENV_IDS: tuple[str, ...] = ("robotac/Quadruped-v0", "robotac/Reach7-v0")

_DM_CONTROL_PREFIX = "dm_control/"


def register_envs(dm_control: bool = True) -> None:
    """Register ``robotac/Quadruped-v0``, ``robotac/Reach7-v0`` and shimmy's dm_control ids.

    Idempotent: a second call does nothing. Registering imports no MuJoCo (entry points are
    strings, resolved by ``gymnasium.make``).

    Args:
        dm_control: Also ``import shimmy``, which registers the ``dm_control/`` ids when shimmy
            and dm_control are installed (extra ``train``). ``import robotac`` passes ``False``:
            that namespace is shimmy's, and importing dm_control costs seconds.
    """
    registry = gym.envs.registration.registry
    if "robotac/Quadruped-v0" not in registry:
        gym.register(
            id="robotac/Quadruped-v0",
            entry_point="envs.quadruped:QuadrupedEnv",
            max_episode_steps=1000,
        )
    if "robotac/Reach7-v0" not in registry:
        gym.register(
            id="robotac/Reach7-v0",
            entry_point="envs.reach7:Reach7Env",
            max_episode_steps=200,
        )
    if dm_control and "dm_control/walker-walk-v0" not in registry:
        try:
            import shimmy  # noqa: F401  (registers the dm_control ids on import)
        except ImportError:
            pass


def _float32_box(space: gym.Space) -> gym.spaces.Box:
    """The ``Box`` ``space`` with float32 bounds and dtype."""
    assert isinstance(space, gym.spaces.Box)
    return gym.spaces.Box(
        low=space.low.astype(np.float32),
        high=space.high.astype(np.float32),
        shape=space.shape,
        dtype=np.float32,
    )


class _Float32Observation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Cast a ``Box`` observation (and its space) to float32."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        self.observation_space = _float32_box(env.observation_space)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.asarray(observation, dtype=np.float32)


class _Float32Action(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """Expose a ``Box`` action space with float32 bounds; pass float64 actions to the env."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        self.action_space = _float32_box(env.action_space)

    def action(self, action: np.ndarray) -> np.ndarray:
        return np.asarray(action, dtype=self.env.action_space.dtype)


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """Build an env by id, with flat float32 observations for every id trainers use.

    Registers the ids first (:func:`register_envs`). For ``dm_control/...`` ids, wraps the env in
    ``FlattenObservation`` and a float32 cast, and its action space is cast to float32 bounds.

    Args:
        env_id: e.g. ``"robotac/Quadruped-v0"``, ``"robotac/Reach7-v0"``,
            ``"dm_control/walker-walk-v0"``, or any other registered Gymnasium id.
        **kwargs: Passed to ``gymnasium.make`` (env keyword arguments, ``render_mode``,
            ``max_episode_steps``).

    Returns:
        The env; ``env.observation_space`` is a float32 ``Box`` for the ids above.

    Raises:
        gymnasium.error.Error: for an unknown id (Gymnasium's message lists close matches).
        TypeError: for keyword arguments the env does not take (listing the valid ones).
    """
    register_envs(dm_control=env_id.startswith(_DM_CONTROL_PREFIX))
    env = gym.make(env_id, **kwargs)
    if env_id.startswith(_DM_CONTROL_PREFIX):
        if isinstance(env.observation_space, gym.spaces.Dict):
            env = gym.wrappers.FlattenObservation(env)
        env = _Float32Observation(env)
        if isinstance(env.action_space, gym.spaces.Box) and env.action_space.dtype != np.float32:
            env = _Float32Action(env)
    return env
