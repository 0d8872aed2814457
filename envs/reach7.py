"""``robotac/Reach7-v0``: a 7-joint arm moves its fingertip to a sampled 3D target."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from envs.interface import ObsBlock, ObsLayout, RobotInterface
from envs.rendering import close_renderer, render_rgb_array

__all__ = ["REACH7_OBS_LAYOUT", "Reach7Env", "reach7_interface"]

_XML_PATH = str(Path(__file__).resolve().parent / "assets" / "reach7.xml")

REACH7_OBS_LAYOUT = ObsLayout(
    version="reach7-obs-v1",
    blocks=(
        ObsBlock("joint_pos", 7, "rad", 1.0, "joint angles, joint order"),
        ObsBlock("joint_vel", 7, "rad/s", 0.1, "joint angular velocities, joint order"),
        ObsBlock("fingertip_pos", 3, "m", 1.0, "fingertip position, world frame"),
        ObsBlock("target_pos", 3, "m", 1.0, "target position, world frame"),
        ObsBlock("target_minus_fingertip", 3, "m", 1.0, "target - fingertip, world frame"),
    ),
)


def reach7_interface(model: mujoco.MjModel) -> RobotInterface:
    """The arm's :class:`RobotInterface`, read from the model.

    Unlike the quadruped, the action is the joint angle target itself (no ``pi`` offset): the
    ``extra["angle_convention"]`` entry says so.
    """
    names = tuple(model.actuator(i).name for i in range(model.nu))
    jnt = model.actuator_trnid[:, 0]
    lo, hi = model.actuator_ctrlrange.T
    jlo, jhi = model.jnt_range[jnt].T
    default = np.clip(np.zeros(model.nu), jlo + 0.5, jhi - 0.5)  # the env's start pose
    return RobotInterface(
        name="reach7",
        joint_names=names,
        action_low_rad=tuple(float(x) for x in lo),
        action_high_rad=tuple(float(x) for x in hi),
        joint_low_rad=tuple(float(x) for x in model.jnt_range[jnt, 0]),
        joint_high_rad=tuple(float(x) for x in model.jnt_range[jnt, 1]),
        default_pose_rad=tuple(float(x) for x in default),
        obs_layout=REACH7_OBS_LAYOUT,
        control_period_s=0.02,
        extra={"angle_convention": "action = joint angle target q [rad], no offset"},
    )


class Reach7Env(gym.Env):
    """Move the fingertip of a 7-joint arm to a target sampled in its workspace.

    ## Description
    A gravity-compensated 7-joint arm (Panda-like joint layout and limits, 0.1 m base, links of
    0.2, 0.16, 0.16, 0.15, 0.15, 0.08 m, fingertip 0.06 m past the last joint; MJCF in
    ``envs/assets/reach7.xml``). Each joint is a position actuator (kp 60 N m/rad on joints 1-4,
    15 on 5-7). Control period 0.02 s (4 physics steps of 0.005 s).

    ## Action Space
    ``Box(low, high, (7,), float32)`` from the actuators' ``ctrlrange`` = the joint ranges, which
    differ per joint: joint angle targets [rad].

    | Index | Joint | Min | Max | Unit |
    |---|---|---|---|---|
    | 0 | j1_base_yaw | -2.8973 | 2.8973 | rad |
    | 1 | j2_shoulder_pitch | -1.7628 | 1.7628 | rad |
    | 2 | j3_upper_arm_roll | -2.8973 | 2.8973 | rad |
    | 3 | j4_elbow_pitch | -3.0718 | -0.0698 | rad |
    | 4 | j5_forearm_roll | -2.8973 | 2.8973 | rad |
    | 5 | j6_wrist_pitch | -0.0175 | 3.7525 | rad |
    | 6 | j7_wrist_roll | -2.8973 | 2.8973 | rad |

    ## Observation Space
    ``Box(-inf, inf, (23,), float32)``, layout :data:`REACH7_OBS_LAYOUT` (``scale * raw``):

    | Index | Block | Size | Unit | Scale |
    |---|---|---|---|---|
    | 0-6 | joint_pos | 7 | rad | 1 |
    | 7-13 | joint_vel | 7 | rad/s | 0.1 |
    | 14-16 | fingertip_pos | 3 | m | 1 |
    | 17-19 | target_pos | 3 | m | 1 |
    | 20-22 | target_minus_fingertip | 3 | m | 1 |

    ## Rewards
    ``reward = reward_dist + reward_ctrl`` (both in ``info`` and ``info["reward_terms"]``):
    ``reward_dist = -|target - fingertip|`` [m]; ``reward_ctrl = -ctrl_cost_weight *
    sum(((action - previous action) / (high - low))^2)``, a small penalty on the normalised
    action change (``ctrl_cost_weight`` 0.1). ``info["is_success"]`` is ``True`` when the
    distance is below ``success_distance_m`` (0.05 m); ``info["distance_m"]`` holds the distance.

    ## Starting State
    Joint angles ``U(-reset_noise_rad, reset_noise_rad)`` around 0 clipped to at least 0.5 rad
    inside each joint's range (so joint 4 starts near -0.57 rad, joint 6 near 0.48 rad), at rest.
    The target is the fingertip position of a uniformly random joint
    configuration, redrawn until it is at least 0.1 m above the floor (so it is reachable).

    ## Episode End
    Never terminated; truncated by ``TimeLimit`` after 200 steps (4 s).

    ## Arguments
    ``gymnasium.make("robotac/Reach7-v0", **kwargs)`` after ``import robotac`` (which registers
    the ``robotac/`` ids). ``render_mode`` (``None`` or ``"rgb_array"``), ``width``, ``height``,
    ``ctrl_cost_weight`` (0.1), ``success_distance_m`` (0.05), ``reset_noise_rad`` (0.1). Unknown
    keywords raise ``TypeError`` listing these.

    ## Version History
    - v0: initial release (robotac 0.1.0).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        width: int = 480,
        height: int = 480,
        ctrl_cost_weight: float = 0.1,
        success_distance_m: float = 0.05,
        reset_noise_rad: float = 0.1,
        **unknown: Any,
    ) -> None:
        if unknown:
            valid = [p for p in inspect.signature(type(self).__init__).parameters][1:-1]
            raise TypeError(
                f"Reach7Env got unknown keyword arguments {sorted(unknown)}; valid: {valid}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r} is not supported; use 'rgb_array'")
        if ctrl_cost_weight < 0 or success_distance_m <= 0 or reset_noise_rad < 0:
            raise ValueError(
                "need ctrl_cost_weight >= 0, success_distance_m > 0, reset_noise_rad >= 0; got "
                f"{ctrl_cost_weight}, {success_distance_m}, {reset_noise_rad}"
            )
        self.render_mode = render_mode
        self.width, self.height = int(width), int(height)
        self.ctrl_cost_weight = float(ctrl_cost_weight)
        self.success_distance_m = float(success_distance_m)
        self.reset_noise_rad = float(reset_noise_rad)

        self.model = mujoco.MjModel.from_xml_path(_XML_PATH)
        self.data = mujoco.MjData(self.model)
        self.n_substeps = 4
        self.interface = reach7_interface(self.model)
        lo, hi = self.model.actuator_ctrlrange.T
        self._low, self._high = lo.copy(), hi.copy()
        self.action_space = spaces.Box(lo.astype(np.float32), hi.astype(np.float32))
        self.observation_space = spaces.Box(
            -np.inf, np.inf, shape=(REACH7_OBS_LAYOUT.dim,), dtype=np.float32
        )
        self._tip = self.model.site("fingertip").id
        self._mocap = self.model.body("target").mocapid[0]
        jnt = self.model.actuator_trnid[:, 0]
        self._jlo, self._jhi = self.model.jnt_range[jnt].T
        self._centre = np.asarray(self.interface.default_pose_rad, dtype=np.float64)
        self._prev_action = self._centre.copy()
        self._renderer: Any = None

    @property
    def dt(self) -> float:
        """Control period [s]."""
        return self.model.opt.timestep * self.n_substeps

    def _observe(self) -> np.ndarray:
        d = self.data
        tip = d.site_xpos[self._tip]
        target = d.mocap_pos[self._mocap]
        return REACH7_OBS_LAYOUT.assemble(
            {
                "joint_pos": d.qpos,
                "joint_vel": d.qvel,
                "fingertip_pos": tip,
                "target_pos": target,
                "target_minus_fingertip": target - tip,
            }
        )

    def _sample_target(self) -> np.ndarray:
        d = mujoco.MjData(self.model)
        for _ in range(100):
            d.qpos[:] = self.np_random.uniform(self._jlo, self._jhi)
            mujoco.mj_kinematics(self.model, d)
            p = d.site_xpos[self._tip].copy()
            if p[2] > 0.1:
                return p
        return np.array([0.4, 0.0, 0.5])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Redraw the target and the start pose.

        Args:
            seed: Seeds ``self.np_random``.
            options: Optional ``{"target": (x, y, z)}`` [m] for this episode.

        Returns:
            ``(obs, info)``: ``(23,)`` float32 observation, ``info`` with the distance.
        """
        super().reset(seed=seed)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        target = self._sample_target()
        if options and "target" in options:
            target = np.asarray(options["target"], dtype=np.float64).reshape(3)
        d.mocap_pos[self._mocap] = target
        q = self._centre + self.np_random.uniform(-1, 1, m.nq) * self.reset_noise_rad
        d.qpos[:] = np.clip(q, self._jlo, self._jhi)
        d.ctrl[:] = d.qpos
        self._prev_action = d.qpos.copy()
        mujoco.mj_forward(m, d)
        dist = float(np.linalg.norm(target - d.site_xpos[self._tip]))
        return self._observe(), {"distance_m": dist, "is_success": dist < self.success_distance_m}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Set the 7 joint angle targets [rad] and advance 0.02 s.

        Raises:
            ValueError: on a wrong shape (stating the expected one) or NaN/inf entries (naming
                the indices). Finite actions outside the bounds are clipped to them.
        """
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action has shape {a.shape}, expected {self.action_space.shape}")
        bad = ~np.isfinite(a)
        if bad.any():
            raise ValueError(f"action has NaN/inf at indices {np.flatnonzero(bad).tolist()}")
        a = np.clip(a, self._low, self._high)
        self.data.ctrl[:] = a
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)
        mujoco.mj_kinematics(self.model, self.data)
        dist = float(
            np.linalg.norm(self.data.mocap_pos[self._mocap] - self.data.site_xpos[self._tip])
        )
        change = (a - self._prev_action) / (self._high - self._low)
        terms = {
            "reward_dist": -dist,
            "reward_ctrl": -self.ctrl_cost_weight * float(np.sum(change**2)),
        }
        self._prev_action = a
        reward = float(sum(terms.values()))
        info = {
            **terms,
            "reward_terms": dict(terms),
            "distance_m": dist,
            "is_success": dist < self.success_distance_m,
        }
        return self._observe(), reward, False, False, info

    def render(self) -> np.ndarray | None:
        """``(height, width, 3)`` uint8 RGB from the ``side`` camera.

        Raises:
            RuntimeError: when no OpenGL backend is available, naming the fix.
        """
        return render_rgb_array(self, self.model, self.data, "side")

    def close(self) -> None:
        close_renderer(self)
