"""envs.gl: MuJoCo's OpenGL backend is chosen at run time, and a missing GL library never crashes.

The subprocess test reproduces what a fresh machine without ``libosmesa6`` saw: PyOpenGL cannot
find ``libOSMesa`` (here: ``ctypes.util.find_library`` is made to find no GL library at all, by a
``sitecustomize`` on ``PYTHONPATH``), and ``MUJOCO_GL=osmesa`` names that backend. Before
``envs.gl`` this crashed every import of ``mujoco``, ``envs`` and ``robotac`` with
``AttributeError: 'NoneType' object has no attribute 'glGetError'``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from envs.gl import GL_FIX, PROBLEM_VAR, choose_gl_backend

ROOT = Path(__file__).resolve().parents[2]


def _choose(env: dict[str, str], libs: tuple[str, ...] = (), gpu: bool = False):
    return choose_gl_backend(env, library_loads=lambda name: name in libs,
                             has_gpu_device=lambda: gpu, platform="linux")


@pytest.mark.parametrize(
    ("env", "libs", "gpu", "backend", "works"),
    [
        ({}, ("OSMesa", "EGL"), True, "osmesa", True),  # OSMesa first: always works headless
        ({}, ("EGL",), True, "egl", True),
        ({}, ("EGL",), False, "disable", False),  # libEGL without a GPU fails on these machines
        ({"DISPLAY": ":0"}, (), False, "glfw", True),
        ({}, (), False, "disable", False),
        ({"MUJOCO_GL": "osmesa"}, ("OSMesa",), False, "osmesa", True),
        ({"MUJOCO_GL": "osmesa"}, ("EGL",), True, "disable", False),  # named but cannot load
        ({"MUJOCO_GL": "EGL "}, (), True, "disable", False),
        ({"MUJOCO_GL": "egl"}, ("EGL",), True, "egl", True),
        ({"MUJOCO_GL": "glfw"}, ("OSMesa",), False, "glfw", False),  # no display
        ({"MUJOCO_GL": "glfw", "DISPLAY": ":1"}, (), False, "glfw", True),
        ({"MUJOCO_GL": "disable"}, ("OSMesa",), False, "disable", False),
    ],
)
def test_choice_table(env, libs, gpu, backend, works) -> None:
    choice = _choose(env, libs, gpu)
    assert choice.backend == backend
    assert (choice.problem is None) == works
    if not works:
        assert GL_FIX in choice.problem and "apt-get install libosmesa6" in choice.problem


def test_a_child_process_inherits_the_reason_rendering_is_off() -> None:
    first = _choose({}, ())
    child = _choose({"MUJOCO_GL": first.backend, PROBLEM_VAR: first.problem})
    assert child.backend == "disable" and child.problem == first.problem


_NO_GL_LIBRARIES = """
import ctypes.util

_find_library = ctypes.util.find_library


def _find_no_gl(name):
    if name in ("OSMesa", "EGL", "GL", "GLESv2"):
        return None
    return _find_library(name)


ctypes.util.find_library = _find_no_gl
"""

_CHILD = """
import json, sys
import gymnasium
import robotac  # registers robotac/Quadruped-v0
import mujoco  # noqa: F401  (must not crash either)

env = gymnasium.make("robotac/Quadruped-v0", render_mode="rgb_array")
env.reset(seed=0)
for _ in range(20):
    env.step(env.action_space.sample())
try:
    env.render()
    rendered = "image"
except RuntimeError as e:
    rendered = str(e)
env.close()
from envs.gl import gl_problem
print(json.dumps({"rendered": rendered, "problem": gl_problem()}))
"""


@pytest.fixture
def no_gl_env(tmp_path: Path) -> dict[str, str]:
    """Environment of a process where no GL library can be found, with MUJOCO_GL=osmesa."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_NO_GL_LIBRARIES)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY",
                                                            "PYOPENGL_PLATFORM", PROBLEM_VAR)}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    env["MUJOCO_GL"] = "osmesa"
    return env


def test_env_and_render_without_the_gl_library(no_gl_env: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, "-c", _CHILD], env=no_gl_env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["problem"].startswith("MUJOCO_GL=osmesa but libOSMesa cannot be loaded")
    assert out["rendered"] == out["problem"]  # render() raises the same one line, with the fix
    assert "apt-get install libosmesa6" in out["rendered"]


def test_training_without_the_gl_library_skips_the_video_in_one_line(
    no_gl_env: dict[str, str], tmp_path: Path
) -> None:
    """A short training through the CLI, as the demo runs it, including its render step."""
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "robotac.cli", "train", "--env", "robotac/Quadruped-v0",
         "--total-steps", "300", "--learning-starts", "100", "--eval-every", "300",
         "--eval-episodes", "1", "--batch-size", "32", "--hidden", "32", "32", "--video",
         "--no-export", "--run-dir", str(run_dir), "--no-progress"],
        env=no_gl_env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (run_dir / "checkpoints" / "latest.pt").is_file()
    assert not (run_dir / "videos").exists()
    skipped = [line for line in proc.stdout.splitlines() if "no evaluation video" in line]
    assert len(skipped) == 1, proc.stdout
    assert "libOSMesa cannot be loaded" in skipped[0] and "apt-get install libosmesa6" in skipped[0]
    assert "Traceback" not in proc.stderr
