"""Shared fixtures for the env tests."""

from __future__ import annotations

import envs  # noqa: F401  (chooses MUJOCO_GL before mujoco is imported)
