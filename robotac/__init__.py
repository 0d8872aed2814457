"""robotac: off-policy actor-critic trainers (SAC, TD3, DDPG), checkpoints and CLI.

``import robotac`` registers the ``robotac/`` Gymnasium ids, as ``import shimmy`` registers
``dm_control/``::

    import gymnasium
    import robotac

    env = gymnasium.make("robotac/Quadruped-v0")

On the robot's computer, which has only the base dependencies (no gymnasium), the import still
works and registers nothing.
"""

__version__ = "0.1.0"

try:
    import gymnasium as _gymnasium  # noqa: F401  (extra "train")
except ImportError:  # base install: deploy only
    pass
else:
    from envs.registration import register_envs as _register_envs

    _register_envs(dm_control=False)
