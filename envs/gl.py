"""Choose MuJoCo's OpenGL backend at run time, before ``mujoco`` is imported.

MuJoCo picks its OpenGL backend from ``MUJOCO_GL`` once, when ``mujoco`` is first imported, and a
backend whose library cannot load crashes that import (``MUJOCO_GL=osmesa`` without
``libOSMesa`` raises ``AttributeError: 'NoneType' object has no attribute 'glGetError'`` from
PyOpenGL). :func:`configure_gl` runs first (``import envs`` calls it, so every module of
``envs/``, ``robotac/`` and the virtual robot is covered) and makes sure ``MUJOCO_GL`` names a
backend that can at least be imported:

========================  ===========================================================
``MUJOCO_GL`` as found    what is chosen
========================  ===========================================================
unset or empty            ``osmesa`` if ``libOSMesa`` loads; else ``egl`` if ``libEGL``
                          loads and a GPU device node exists (``/dev/dri/renderD*``,
                          ``/dev/nvidia*``); else ``glfw`` (MuJoCo's default) if a display
                          is set; else ``disable`` (no rendering).
``osmesa`` / ``egl``      kept if its library loads; else ``disable``.
anything else             kept as it is (``glfw``, ``glx``, ``disable``, ...).
========================  ===========================================================

When rendering is not possible, :func:`gl_problem` returns one line naming why and the fix;
rendering code raises it (``envs.rendering``) and scripts print it instead of a video. Nothing
here imports ``mujoco`` or OpenGL: it only inspects the environment and loads shared libraries
with ``ctypes``, so it is safe on the robot's computer too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass

__all__ = ["GL_FIX", "GlChoice", "choose_gl_backend", "configure_gl", "gl_problem"]

#: What to do to get headless rendering, named in every message.
GL_FIX = (
    "to render headless, set MUJOCO_GL=osmesa after installing OSMesa (as root: apt-get install "
    "libosmesa6), or MUJOCO_GL=egl on a machine with a GPU"
)

#: Carries the reason to child processes when :func:`configure_gl` turned rendering off.
PROBLEM_VAR = "ROBOTAC_GL_PROBLEM"

_DISABLED = ("disable", "disabled", "off", "false", "0")


@dataclass(frozen=True)
class GlChoice:
    """The backend chosen for ``MUJOCO_GL`` and why rendering cannot work, if it cannot.

    Attributes:
        backend: Value to put in ``MUJOCO_GL`` (``"osmesa"``, ``"egl"``, ``"glfw"``, ``"disable"``
            or the user's own value).
        problem: ``None`` when rendering is expected to work, else one line: what is missing and
            the fix.
    """

    backend: str
    problem: str | None


def _library_loads(name: str) -> bool:
    """Whether the shared library ``name`` (``"OSMesa"``, ``"EGL"``) can be found and loaded.

    Mirrors PyOpenGL's loader: ``ctypes.util.find_library`` then ``ctypes.CDLL``.
    """
    path = ctypes.util.find_library(name)
    if path is None:
        return False
    try:
        ctypes.CDLL(path)
    except OSError:
        return False
    return True


def _has_gpu_device() -> bool:
    return bool(glob.glob("/dev/dri/renderD*") or glob.glob("/dev/nvidia[0-9]*"))


def choose_gl_backend(
    environ: MutableMapping[str, str] | None = None,
    library_loads=_library_loads,
    has_gpu_device=_has_gpu_device,
    platform: str | None = None,
) -> GlChoice:
    """Pick the ``MUJOCO_GL`` backend for this machine (the table in the module docstring).

    Args:
        environ: Environment to read (default ``os.environ``); not modified.
        library_loads: ``name -> bool``, whether a shared library loads (injectable for tests).
        has_gpu_device: ``() -> bool``, whether a GPU device node exists (injectable).
        platform: ``sys.platform`` (injectable).

    Returns:
        The :class:`GlChoice`.
    """
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    requested = env.get("MUJOCO_GL", "").strip().lower()
    if not platform.startswith("linux"):
        return GlChoice(requested, None)  # macOS (CGL) and Windows (WGL) render natively
    if requested in _DISABLED:
        inherited = env.get(PROBLEM_VAR)  # set by configure_gl in a parent process
        return GlChoice(
            requested, inherited or f"rendering is disabled (MUJOCO_GL={requested}); {GL_FIX}"
        )
    if requested in ("osmesa", "egl"):
        lib = "OSMesa" if requested == "osmesa" else "EGL"
        if library_loads(lib):
            return GlChoice(requested, None)
        return GlChoice(
            "disable",
            f"MUJOCO_GL={requested} but lib{lib} cannot be loaded, so rendering is off; {GL_FIX}",
        )
    display = bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))
    if requested:  # glfw, glx, or a value MuJoCo itself will judge
        if requested in ("glfw", "glx") and not display:
            return GlChoice(
                requested,
                f"MuJoCo's OpenGL backend is {requested} (MUJOCO_GL={requested}) and there is no "
                f"display (DISPLAY is unset), so rendering cannot work; {GL_FIX}",
            )
        return GlChoice(requested, None)
    if library_loads("OSMesa"):
        return GlChoice("osmesa", None)
    if library_loads("EGL") and has_gpu_device():
        return GlChoice("egl", None)
    if display:
        return GlChoice("glfw", None)
    return GlChoice(
        "disable",
        f"no OpenGL backend: libOSMesa is not installed, there is no GPU for EGL and no "
        f"display for GLFW, so rendering is off; {GL_FIX}",
    )


_choice: GlChoice | None = None


def configure_gl(environ: MutableMapping[str, str] | None = None) -> GlChoice:
    """Set ``MUJOCO_GL`` (and ``PYOPENGL_PLATFORM``) to the chosen backend, once per process.

    Call before ``mujoco`` is imported; ``import envs`` does. Later calls return the first
    choice. When ``mujoco`` was imported first, its backend is already fixed: the choice is then
    only recorded, and ``MUJOCO_GL`` is left alone.

    Args:
        environ: Environment to read and update (default ``os.environ``).

    Returns:
        The :class:`GlChoice`; its ``problem`` is also what :func:`gl_problem` returns.
    """
    global _choice
    if _choice is not None:
        return _choice
    env = os.environ if environ is None else environ
    choice = choose_gl_backend(env)
    if "mujoco" not in sys.modules and choice.backend:
        env["MUJOCO_GL"] = choice.backend
        if choice.backend in ("osmesa", "egl"):
            env.setdefault("PYOPENGL_PLATFORM", choice.backend)
        if choice.backend in _DISABLED and choice.problem:
            env[PROBLEM_VAR] = choice.problem
    _choice = choice
    return choice


def gl_problem() -> str | None:
    """Why rendering cannot work in this process, with the fix; ``None`` when it should work."""
    return configure_gl().problem
