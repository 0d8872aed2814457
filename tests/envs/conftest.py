"""Shared fixtures for the env tests."""

from __future__ import annotations

import os

# Headless rendering: must be set before mujoco is first imported in this process.
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
