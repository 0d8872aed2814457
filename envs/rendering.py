"""Offscreen ``rgb_array`` rendering shared by the project's MuJoCo envs."""

from __future__ import annotations

import os
import sys
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from envs.gl import GL_FIX, gl_problem

__all__ = ["render_rgb_array", "close_renderer", "gl_backend_problem"]


def gl_backend_problem() -> str | None:
    """Why MuJoCo cannot open an OpenGL context here, if that is known before trying.

    Two cases are known: the backend chosen at import (:func:`envs.gl.configure_gl`) found no
    usable GL library; or MuJoCo's backend is GLFW and there is no display, where creating a
    ``mujoco.Renderer`` would abort the whole process instead of raising.

    Returns:
        A message naming the problem and the fix, or ``None`` when no problem is known.
    """
    problem = gl_problem()
    if problem is not None:
        return problem
    backend = os.environ.get("MUJOCO_GL", "").strip().lower()
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if sys.platform.startswith("linux") and backend in ("", "glfw", "glx") and headless:
        return (
            f"MuJoCo's OpenGL backend is GLFW (MUJOCO_GL={backend or 'unset'}) and there is no "
            f"display (DISPLAY is unset), so rendering cannot work; {GL_FIX}"
        )
    return None


def render_rgb_array(
    env: Any, model: mujoco.MjModel, data: mujoco.MjData, camera: str
) -> np.ndarray | None:
    """Render ``camera`` of ``env`` as ``(env.height, env.width, 3)`` uint8 RGB.

    The ``mujoco.Renderer`` is created on the first call and kept in ``env._renderer``
    (:func:`close_renderer` frees it).

    Args:
        env: The env: ``render_mode``, ``width``, ``height`` [px] and ``_renderer`` attributes.
        model, data: The MuJoCo model and its current data.
        camera: Name of the camera in the MJCF.

    Returns:
        The image, or ``None`` (with a warning) when ``env.render_mode`` is ``None``.

    Raises:
        RuntimeError: when no OpenGL backend is available, naming the fix.
    """
    if env.render_mode is None:
        gym.logger.warn("render() called without render_mode; pass render_mode='rgb_array'")
        return None
    if env._renderer is None:
        problem = gl_backend_problem()
        if problem is not None:
            raise RuntimeError(problem)
        try:
            env._renderer = mujoco.Renderer(model, env.height, env.width)
        except Exception as e:  # noqa: BLE001 (GL backends fail with many types)
            raise RuntimeError(
                f"MuJoCo could not create an OpenGL context ({type(e).__name__}: {e}); {GL_FIX}"
            ) from e
    env._renderer.update_scene(data, camera=camera)
    return env._renderer.render()


def close_renderer(env: Any) -> None:
    """Free ``env._renderer`` if :func:`render_rgb_array` created one."""
    if env._renderer is not None:
        env._renderer.close()
        env._renderer = None
