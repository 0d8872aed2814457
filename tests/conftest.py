"""Session-wide test set-up.

Headless rendering: MuJoCo picks its OpenGL backend when it is first imported, so MUJOCO_GL must
be set before any test module imports it (`make test` sets it too).
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
