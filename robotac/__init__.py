"""robotac: off-policy actor-critic trainers (SAC, TD3, DDPG), checkpoints and CLI."""

__version__ = "0.1.0"
