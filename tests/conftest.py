"""Session-wide test set-up.

Headless rendering: MuJoCo picks its OpenGL backend when it is first imported. ``import envs``
chooses it for this machine (:func:`envs.gl.configure_gl`: OSMesa when its library loads, else
EGL with a GPU, else none) before any test module imports mujoco, exactly as the CLI does.
"""

from __future__ import annotations

import envs  # noqa: F401  (chooses MUJOCO_GL before mujoco is imported)
