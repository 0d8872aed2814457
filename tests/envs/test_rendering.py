"""``rgb_array`` rendering of the project's MuJoCo envs, or an error that names the GL fix."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from envs.quadruped import QuadrupedEnv
from envs.reach7 import Reach7Env

ENVS = [QuadrupedEnv, Reach7Env]


@pytest.mark.parametrize("cls", ENVS, ids=lambda c: c.__name__)
def test_render_rgb_array_or_clear_gl_error(cls) -> None:
    env = cls(render_mode="rgb_array", width=160, height=120)
    env.reset(seed=0)
    try:
        img = env.render()
    except RuntimeError as e:
        assert "MUJOCO_GL" in str(e) and "libosmesa6" in str(e)
        pytest.skip(f"no OpenGL backend here: {e}")
    assert img.shape == (120, 160, 3) and img.dtype == np.uint8
    assert img.std() > 5  # not a blank frame
    env.close()
    assert env._renderer is None


@pytest.mark.parametrize("cls", ENVS, ids=lambda c: c.__name__)
def test_render_without_gl_backend_names_the_fix(cls, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_gl(*args: object, **kwargs: object) -> None:
        raise mujoco.FatalError("gladLoadGL error")

    monkeypatch.setattr(mujoco, "Renderer", no_gl)
    env = cls(render_mode="rgb_array")
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match=r"MUJOCO_GL=osmesa.*libosmesa6"):
        env.render()


@pytest.mark.parametrize("cls", ENVS, ids=lambda c: c.__name__)
def test_render_without_render_mode_warns_and_returns_none(cls) -> None:
    env = cls()
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None


@pytest.mark.parametrize("cls", ENVS, ids=lambda c: c.__name__)
def test_render_with_glfw_and_no_display_raises_instead_of_aborting(
    cls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GLFW without a display aborts the process inside mujoco.Renderer: never get there."""

    def must_not_be_called(*args: object, **kwargs: object) -> None:
        raise AssertionError("mujoco.Renderer was created without a usable GL backend")

    monkeypatch.setattr(mujoco, "Renderer", must_not_be_called)
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    env = cls(render_mode="rgb_array")
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match=r"no display.*MUJOCO_GL=osmesa.*libosmesa6"):
        env.render()
