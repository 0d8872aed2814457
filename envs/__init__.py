"""envs: robotac's MuJoCo robots as Gymnasium envs, and the numpy-only robot interface.

Importing ``envs`` stays light (``deploy/`` imports ``envs.interface`` on the robot's computer,
without gymnasium or MuJoCo). It does one thing first: :func:`envs.gl.configure_gl` picks
MuJoCo's OpenGL backend for this machine before any module here imports ``mujoco``, so a missing
GL library turns rendering off with a message instead of crashing the import.

The Gymnasium ids (``robotac/Quadruped-v0``, ``robotac/Reach7-v0``) are registered by
``import robotac``, the package that owns the ``robotac/`` namespace (as ``import shimmy``
registers ``dm_control/``), or by :func:`envs.registration.register_envs`.
"""

from envs.gl import configure_gl

configure_gl()
