"""``robotac/Quadruped-v0``: velocity-command tracking on the 12-joint hobby-servo quadruped.

The physics live in :class:`envs.quadruped_sim.QuadrupedSim` (shared with ``deploy``'s virtual
robot); the observation is built by :func:`envs.interface.quadruped_obs` (shared with ``deploy``).
"""

from __future__ import annotations

import inspect
import math
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.interface import (
    QUADRUPED_COMMAND_RANGES,
    QUADRUPED_DESCRIPTION,
    STANDING_LIN_VEL_M_S,
    STANDING_YAW_RATE_RAD_S,
    ActionFilter,
    ObsLayout,
    desired_foot_contacts,
    gait_phase,
    is_standing_command,
    quadruped_obs,
    with_gait_clock,
)
from envs.quadruped_sim import QuadrupedSim
from envs.rendering import close_renderer, render_rgb_array

__all__ = [
    "DEFAULT_COMMAND_RANGES",
    "DEFAULT_REWARD_SCALES",
    "PRIVILEGED_OBS_NAMES",
    "QuadrupedEnv",
    "STANDING_LIN_VEL_M_S",
    "STANDING_YAW_RATE_RAD_S",
    "action_table",
    "is_standing_command",
    "observation_table",
    "reward_table",
]

#: Velocity command ranges sampled uniformly per episode: vx [m/s], vy [m/s], yaw rate [rad/s]
#: (the numpy-only interface's table, which deploy reads too).
DEFAULT_COMMAND_RANGES: dict[str, tuple[float, float]] = QUADRUPED_COMMAND_RANGES

#: Reward term -> weight, per control step (legged_gym's terms, ``LeggedRobotCfg.rewards.scales``;
#: unlike legged_gym the weights are not multiplied by the control period, and the torque weight is
#: rescaled for 2.9 N m servos).
DEFAULT_REWARD_SCALES: dict[str, float] = {
    "tracking_lin_vel": 1.0,
    "tracking_ang_vel": 0.5,
    "lin_vel_z": -2.0,
    "ang_vel_xy": -0.05,
    "torques": -0.002,
    "action_rate": -0.01,
    "joint_limits": -10.0,
    "termination": -2.0,
    "feet_air_time": 0.0,
    "stand_still": 0.0,
    "gait_contacts": 0.0,
    "action_acc": 0.0,
    "stand_joint_vel": 0.0,
    "stand_power": 0.0,
    "action_rate_limit": 0.0,
}

_REWARD_FORMULAS: dict[str, str] = {
    "tracking_lin_vel": "exp(-|cmd_xy - v_xy|^2 / tracking_sigma), v in the body frame [m/s]",
    "tracking_ang_vel": "exp(-(cmd_yaw - w_z)^2 / tracking_sigma), w_z body yaw rate [rad/s]",
    "lin_vel_z": "v_z^2, body-frame vertical velocity [m^2/s^2]",
    "ang_vel_xy": "w_x^2 + w_y^2, roll and pitch rate [rad^2/s^2]",
    "torques": "sum of the 12 servo torques squared [N^2 m^2]",
    "action_rate": "sum of (action - previous action)^2 [rad^2]",
    "joint_limits": "sum of joint-angle excursions beyond the soft limits [rad]",
    "termination": "1 on the step that terminates (fall), else 0",
    "feet_air_time": "sum over touch-downs of min(air, max) - target [s], 0 at a standing cmd",
    "stand_still": "sum of |q - q_default| [rad] at a standing cmd, else 0",
    "gait_contacts": "mean over feet of 1 (contact = the gait reference) or -0.3 (not)",
    "action_acc": "sum of (action - 2 previous action + the one before)^2 [rad^2]",
    "stand_joint_vel": "sum of q_dot^2 [rad^2/s^2] at a standing cmd, else 0",
    "stand_power": "sum of |tau * q_dot| [W] at a standing cmd, else 0",
    "action_rate_limit": "sum of max(|action - previous target| / dt - max rate, 0) [rad/s]",
}


def privileged_obs_names(feet: tuple[str, ...]) -> tuple[str, ...]:
    """Names of the entries of ``info["privileged_obs"]`` (for an asymmetric critic; never the
    actor) of a robot with foot geoms ``feet`` (the description's ``feet``)."""
    return ("base_lin_vel_x_m_s", "base_lin_vel_y_m_s", "base_lin_vel_z_m_s", "base_height_m",
            *(f"contact_{f}" for f in feet))


#: :func:`privileged_obs_names` of the default quadruped.
PRIVILEGED_OBS_NAMES: tuple[str, ...] = privileged_obs_names(QUADRUPED_DESCRIPTION.feet)


def action_table(sim: QuadrupedSim) -> str:
    """The docstring's action table, generated from the model (a test compares the two).

    Args:
        sim: A simulator; its actuators' ``ctrlrange`` and joints' ``range`` are read.

    Returns:
        A reStructuredText-style grid of one line per action index.
    """
    m = sim.model
    act = sim.actuator_ids
    jnt = m.actuator_trnid[act, 0]
    default_q = sim.default_servo_rad - np.pi
    lines = [
        "| Index | Joint | Servo min | Servo max | Joint min q | Joint max q | Default q | Unit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, name in enumerate(sim.interface.joint_names):
        lo, hi = m.actuator_ctrlrange[act[i]]
        qlo, qhi = m.jnt_range[jnt[i]]
        lines.append(
            f"| {i} | {name} | {lo:.4f} | {hi:.4f} | {qlo:.2f} | {qhi:.2f} | "
            f"{default_q[i]:.2f} | rad |"
        )
    return "\n".join(lines)


def observation_table(layout: ObsLayout) -> str:
    """The docstring's observation table, generated from the layout (a test compares the two)."""
    lines = ["| Index | Block | Size | Unit | Scale | Description |", "|---|---|---|---|---|---|"]
    for name, sl in layout.slices().items():
        b = next(b for b in layout.blocks if b.name == name)
        lines.append(
            f"| {sl.start}-{sl.stop - 1} | {name} | {b.size} | {b.unit} | {b.scale:g} | "
            f"{b.description} |"
        )
    return "\n".join(lines)


def reward_table(scales: dict[str, float]) -> str:
    """The docstring's reward table, generated from the default weights (a test compares)."""
    lines = ["| Term | Weight | Quantity |", "|---|---|---|"]
    for k, w in scales.items():
        lines.append(f"| {k} | {w:g} | {_REWARD_FORMULAS[k]} |")
    return "\n".join(lines)


def _range_pair(name: str, value: Any, low_bound: float | None = None) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair, got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ValueError(f"{name} must be finite with low <= high, got {value!r}")
    if low_bound is not None and lo < low_bound:
        raise ValueError(f"{name} low must be >= {low_bound}, got {value!r}")
    return lo, hi


#: Keys a curriculum stage may set (see :class:`QuadrupedEnv`, ``curriculum``).
CURRICULUM_KEYS = (
    "at_step", "command_ranges", "standing_share", "command_zero_prob", "randomization",
    "reward_scales", "tracking_sigma",
)


def _reward_scales(
    base: dict[str, float], overrides: Any, name: str, has_clock: bool, has_slew_limit: bool
) -> dict[str, float]:
    """``base`` with ``overrides`` applied, validated.

    Raises:
        ValueError: naming ``name`` for an unknown term, a non-finite weight, a non-zero
            ``gait_contacts`` without a gait clock or a non-zero ``action_rate_limit`` without a
            slew limit.
    """
    if overrides is not None and not isinstance(overrides, dict):
        raise ValueError(f"{name} must be a mapping term -> weight, got {overrides!r}")
    scales = dict(base)
    for k, v in (overrides or {}).items():
        if k not in DEFAULT_REWARD_SCALES:
            raise ValueError(f"{name} has unknown key {k!r}; valid: {list(DEFAULT_REWARD_SCALES)}")
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not np.isfinite(v):
            raise ValueError(f"{name}[{k!r}] must be a finite number, got {v!r}")
        scales[k] = float(v)
    if scales["gait_contacts"] != 0.0 and not has_clock:
        raise ValueError(
            f"{name}['gait_contacts'] is non-zero but the env has no gait clock: set "
            "gait_frequency_hz (e.g. 3.0) or drop the term"
        )
    if scales["action_rate_limit"] != 0.0 and not has_slew_limit:
        raise ValueError(
            f"{name}['action_rate_limit'] is non-zero but the env has no slew limit: set "
            "action_max_rate_rad_s (e.g. 4.5 rad/s, below the servo's no-load speed), or "
            "drop the term"
        )
    return scales


def _curriculum_stages(
    curriculum: Any, full_ranges: dict[str, tuple[float, float]], full_standing: float,
    full_zero_prob: float = 0.0, full_scales: dict[str, float] | None = None,
    has_clock: bool = False, has_slew_limit: bool = False, full_sigma: float = 0.1,
) -> list[dict[str, Any]]:
    """Validate ``curriculum`` and fill each stage's missing keys with the full task's values.

    Returns:
        Stages sorted by ``at_step``, each ``{"at_step": int, "command_ranges": {k: (lo, hi)},
        "standing_share": float, "command_zero_prob": float, "randomization": float,
        "reward_scales": {term: weight}, "tracking_sigma": float}`` (every term: the stage's
        own weights over ``full_scales``; the sigma: the stage's or ``full_sigma``).

    Raises:
        ValueError: naming the stage and the key for an unknown key, a missing or unordered
            ``at_step``, a first stage not at step 0, a range outside the full task's, a share
            or scale outside [0, 1], a ``tracking_sigma`` that is not a finite number > 0, or a
            reward term that is unknown, not finite or needs what the env lacks (see
            :func:`_reward_scales`).
    """
    if full_scales is None:
        full_scales = dict(DEFAULT_REWARD_SCALES)
    if not isinstance(curriculum, (list, tuple)) or not curriculum:
        raise ValueError(
            f"curriculum must be a non-empty list of stages like {{at_step: 0, "
            f"command_ranges: {{vx: [0.2, 0.6]}}, standing_share: 0, randomization: 0}}, "
            f"got {curriculum!r}"
        )
    stages: list[dict[str, Any]] = []
    prev = -1
    for i, raw in enumerate(curriculum):
        if not isinstance(raw, dict):
            raise ValueError(f"curriculum[{i}] must be a mapping, got {raw!r}")
        unknown = sorted(set(raw) - set(CURRICULUM_KEYS))
        if unknown:
            raise ValueError(
                f"curriculum[{i}] has unknown keys {unknown}; valid: {list(CURRICULUM_KEYS)}"
            )
        if "at_step" not in raw:
            raise ValueError(f"curriculum[{i}] needs at_step (global env steps)")
        at = raw["at_step"]
        if isinstance(at, bool) or not isinstance(at, (int, np.integer)) or at <= prev:
            raise ValueError(
                f"curriculum[{i}].at_step must be an integer greater than the previous stage's "
                f"({prev}), got {at!r}"
            )
        if i == 0 and at != 0:
            raise ValueError(f"curriculum[0].at_step must be 0 (where training starts), got {at}")
        prev = int(at)
        ranges = dict(full_ranges)
        for k, v in (raw.get("command_ranges") or {}).items():
            if k not in full_ranges:
                raise ValueError(
                    f"curriculum[{i}].command_ranges has unknown key {k!r}; "
                    f"valid: {list(full_ranges)}"
                )
            lo, hi = _range_pair(f"curriculum[{i}].command_ranges[{k!r}]", v)
            flo, fhi = full_ranges[k]
            if lo < flo or hi > fhi:
                raise ValueError(
                    f"curriculum[{i}].command_ranges[{k!r}] = {v!r} lies outside the env's "
                    f"command range {[flo, fhi]}; a stage may only narrow the commands"
                )
            ranges[k] = (lo, hi)
        stage: dict[str, Any] = {"at_step": int(at), "command_ranges": ranges}
        for k, default in (("standing_share", full_standing),
                           ("command_zero_prob", full_zero_prob), ("randomization", 1.0)):
            v = float(raw.get(k, default))
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"curriculum[{i}].{k} must be in [0, 1], got {raw[k]!r}")
            stage[k] = v
        stage["reward_scales"] = _reward_scales(
            full_scales, raw.get("reward_scales"), f"curriculum[{i}].reward_scales",
            has_clock, has_slew_limit,
        )
        sigma = full_sigma  # the env's own, validated by the env
        if "tracking_sigma" in raw:
            try:
                sigma = float(raw["tracking_sigma"])
            except (TypeError, ValueError):
                sigma = float("nan")
            if not (np.isfinite(sigma) and sigma > 0.0):
                raise ValueError(f"curriculum[{i}].tracking_sigma must be a finite number > 0, "
                                 f"got {raw['tracking_sigma']!r}")
        stage["tracking_sigma"] = sigma
        stages.append(stage)
    return stages


def _command_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a finite ``(3,)`` float64 ``(vx, vy, yaw_rate)``.

    Raises:
        ValueError: naming ``name`` when ``value`` is not three finite numbers.
    """
    try:
        cmd = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        cmd = np.full(1, np.nan)
    if cmd.shape != (3,) or not np.isfinite(cmd).all():
        raise ValueError(f"{name} must be finite (vx, vy, yaw_rate), shape (3,), got {value!r}")
    return cmd


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


class QuadrupedEnv(gym.Env):
    """Track a (vx, vy, yaw rate) velocity command with a 2 kg, 12-servo quadruped.

    ## Description
    A hobby-servo quadruped (body 0.26 x 0.12 x 0.06 m, 1.98 kg, thigh and shank 0.10 m; MJCF and
    ``robot.yaml`` in ``envs/robots/quadruped/``) walks on flat ground. Each joint is a position
    servo modelled on a Feetech STS3215 (2.9 N m stall, 4.7 rad/s no-load, kp 8 N m/rad; see
    :mod:`envs.quadruped_sim` and ``docs/envs.md``). Control period 0.02 s (50 Hz), physics step
    0.005 s (4 physics steps per env step). The policy sees only what the real robot measures
    (IMU, servo read-back) plus its previous action and the command.

    ## Action Space
    ``Box(0, 2*pi, (12,), float32)``, read from the actuators' ``ctrlrange``: the servo target
    angle ``a`` [rad] of each joint; the joint angle is ``q = a - pi``. Targets beyond the joint's
    mechanical limits are reached only as far as the limit. Joint angles in rad.

    | Index | Joint | Servo min | Servo max | Joint min q | Joint max q | Default q | Unit |
    |---|---|---|---|---|---|---|---|
    | 0 | fr_hip_abduction | 0.0000 | 6.2832 | -0.60 | 0.60 | 0.00 | rad |
    | 1 | fr_hip_flexion | 0.0000 | 6.2832 | -0.80 | 2.20 | 0.80 | rad |
    | 2 | fr_knee | 0.0000 | 6.2832 | -2.60 | -0.60 | -1.50 | rad |
    | 3 | fl_hip_abduction | 0.0000 | 6.2832 | -0.60 | 0.60 | 0.00 | rad |
    | 4 | fl_hip_flexion | 0.0000 | 6.2832 | -0.80 | 2.20 | 0.80 | rad |
    | 5 | fl_knee | 0.0000 | 6.2832 | -2.60 | -0.60 | -1.50 | rad |
    | 6 | rr_hip_abduction | 0.0000 | 6.2832 | -0.60 | 0.60 | 0.00 | rad |
    | 7 | rr_hip_flexion | 0.0000 | 6.2832 | -0.80 | 2.20 | 0.80 | rad |
    | 8 | rr_knee | 0.0000 | 6.2832 | -2.60 | -0.60 | -1.50 | rad |
    | 9 | rl_hip_abduction | 0.0000 | 6.2832 | -0.60 | 0.60 | 0.00 | rad |
    | 10 | rl_hip_flexion | 0.0000 | 6.2832 | -0.80 | 2.20 | 0.80 | rad |
    | 11 | rl_knee | 0.0000 | 6.2832 | -2.60 | -0.60 | -1.50 | rad |

    ## Observation Space
    ``Box(-inf, inf, (45,), float32)``, layout ``quadruped-obs-v1``
    (:data:`envs.interface.QUADRUPED_OBS_LAYOUT`), built by :func:`envs.interface.quadruped_obs`
    from :meth:`QuadrupedSim.sensors` (the same function ``deploy`` runs on the robot). Each block
    holds ``scale * raw``:

    | Index | Block | Size | Unit | Scale | Description |
    |---|---|---|---|---|---|
    | 0-2 | projected_gravity | 3 | 1 | 1 | unit gravity vector in the body frame |
    | 3-5 | gyro | 3 | rad/s | 0.25 | body angular velocity from the IMU gyro, body frame |
    | 6-17 | joint_pos | 12 | rad | 1 | joint angle minus default pose, joint order |
    | 18-29 | joint_vel | 12 | rad/s | 0.05 | joint angular velocity, joint order |
    | 30-41 | prev_action | 12 | rad | 1 | previous servo target minus default pose |
    | 42-44 | command | 3 | m/s, m/s, rad/s | 1 | velocity command (vx, vy, yaw rate) |

    With ``gait_frequency_hz`` set, the layout is ``quadruped-obs-v2-clock``
    (:data:`envs.interface.QUADRUPED_OBS_LAYOUT_CLOCK`, 47 entries): the table's blocks, then
    ``gait_clock`` at 45-46, ``(sin, cos)`` of 2 pi x the gait phase
    (:func:`envs.interface.gait_phase`, 0 at reset, advanced from the step count).

    Privileged state (never in the observation) is in ``info``: ``base_lin_vel_m_s`` (body
    frame), ``base_ang_vel_rad_s``, ``base_height_m``, ``foot_contacts`` (fr, fl, rr, rl),
    ``joint_torques_nm``, and ``privileged_obs``, a float32 vector of
    :data:`PRIVILEGED_OBS_NAMES` for an asymmetric critic.

    ## Rewards
    ``reward = sum_k weight_k * term_k``, every weighted term in ``info["reward_terms"]`` (they sum
    to the reward exactly). Terms and default weights (legged_gym, Rudin et al. 2022,
    ``LeggedRobotCfg.rewards.scales``, without the dt factor); ``tracking_sigma`` defaults to
    0.1; the soft joint limits are the middle 90 % of each joint's range. ``cmd`` is the command
    the action was chosen with (the one in the observation that the action answers; see
    Starting State for a redraw):

    | Term | Weight | Quantity |
    |---|---|---|
    | tracking_lin_vel | 1 | exp(-|cmd_xy - v_xy|^2 / tracking_sigma), v in the body frame [m/s] |
    | tracking_ang_vel | 0.5 | exp(-(cmd_yaw - w_z)^2 / tracking_sigma), w_z body yaw rate [rad/s] |
    | lin_vel_z | -2 | v_z^2, body-frame vertical velocity [m^2/s^2] |
    | ang_vel_xy | -0.05 | w_x^2 + w_y^2, roll and pitch rate [rad^2/s^2] |
    | torques | -0.002 | sum of the 12 servo torques squared [N^2 m^2] |
    | action_rate | -0.01 | sum of (action - previous action)^2 [rad^2] |
    | joint_limits | -10 | sum of joint-angle excursions beyond the soft limits [rad] |
    | termination | -2 | 1 on the step that terminates (fall), else 0 |
    | feet_air_time | 0 | sum over touch-downs of min(air, max) - target [s], 0 at a standing cmd |
    | stand_still | 0 | sum of |q - q_default| [rad] at a standing cmd, else 0 |
    | gait_contacts | 0 | mean over feet of 1 (contact = the gait reference) or -0.3 (not) |
    | action_acc | 0 | sum of (action - 2 previous action + the one before)^2 [rad^2] |
    | stand_joint_vel | 0 | sum of q_dot^2 [rad^2/s^2] at a standing cmd, else 0 |
    | stand_power | 0 | sum of |tau * q_dot| [W] at a standing cmd, else 0 |
    | action_rate_limit | 0 | sum of max(|action - previous target| / dt - max rate, 0) [rad/s] |

    A *standing command* is one inside the standing band, ``hypot(cmd_vx, cmd_vy) < 0.1`` m/s and
    ``|cmd_yaw| < 0.1`` rad/s (:func:`is_standing_command`, :data:`STANDING_LIN_VEL_M_S`,
    :data:`STANDING_YAW_RATE_RAD_S`), the one definition that ``feet_air_time``,
    ``stand_still`` and ``gait_contacts`` share: inside the band all three ask the robot to stand
    (no air time paid, the pose error penalised, a gait reference of all four feet down),
    outside it none does (air time paid, no pose penalty, the gait clock's trot as the
    reference, see ``gait_frequency_hz``). A single sideways key press at deploy
    (0.05 m/s) is inside the band: the robot stands.

    Smoothness and stillness terms (issue 26; weight 0 by default, so a recipe that does not name
    them trains as before):

    - ``action_rate`` (legged_gym's ``_reward_action_rate``) acts on the policy's action, before
      the action filter, on purpose: the filter's slew limit hides a policy that asks for a
      target square wave (it passes a +-0.045 rad one at 25 Hz), and only a cost on what the
      policy asks for makes it stop asking. The same difference after the filter would be
      bounded by the filter and blind to the fight.
    - ``action_acc``: the action's second difference ``a_t - 2 a_{t-1} + a_{t-2}`` squared, the
      discrete action acceleration: walk-these-ways' ``_reward_action_smoothness_2`` (Margolis and
      Agrawal, CoRL 2022) and the second term of Humanoid-Gym's ``_reward_action_smoothness`` (Gu
      et al. 2024). A step's reward uses the actions of this step and the two before (the
      default pose before the first). It penalises a reversal (a zig-zag has twice the step as
      second difference) far more than a steady ramp (second difference 0), which ``action_rate``
      penalises alike.
    - ``action_rate_limit``: the rate the policy asks of each servo beyond the action filter's
      slew limit ``action_max_rate_rad_s`` (which must be set for a non-zero weight), i.e. by how
      much the filter had to cut the step: legged_gym's soft limit ``_reward_dof_vel_limits``
      (``sum (|q_dot| - limit).clip(min=0)``, linear beyond the limit, nothing inside it) applied
      to the commanded target rate ``|a_t - target_{t-1}| / dt``. It is zero for a policy whose
      targets the filter passes unchanged, so it costs a gait that stays within the servo's speed
      nothing, and it is what makes the "filter binds" share fall: ``action_rate`` is quadratic
      and small per step (0.1 rad on one joint: 0.01 rad^2).
    - ``stand_joint_vel``: legged_gym's ``_reward_dof_vel`` (sum of ``q_dot^2``), paid only at a
      standing command, where the robot should not move at all.
    - ``stand_power``: mechanical power ``sum |tau * q_dot|`` (the energy term of Fu, Kumar,
      Malik and Pathak, "Minimizing Energy Consumption Leads to the Emergence of Gaits in Legged
      Robots", CoRL 2021, there at every command), paid only at a standing command; ``tau`` is the
      servo torque of the model at the end of the step, ``q_dot`` the joint velocity there.

    ## Starting State
    Standing at the default pose (the table's "Default q"), feet on the floor, at rest, servos
    holding the default pose; every joint angle perturbed by ``U(-reset_noise_rad,
    reset_noise_rad)``. The command is drawn per episode from ``command_ranges`` (or is
    ``fixed_command``), exactly zero with probability ``standing_share``, each component zeroed
    with probability ``command_zero_prob``, redrawn every
    ``command_resample_s`` within the episode when that is set, and is returned in
    ``info["command"]``: the command the returned observation carries, which the next action is
    chosen with. The reward of a step tracks the command of the observation its action was
    chosen from, ``info["reward_command"]``; the two differ only on a step that redraws the
    command (or follows :meth:`set_command`), whose observation already carries the new one
    (legged_gym resamples after computing the reward). The previous action and the filtered
    servo target start at the default pose.

    ## Episode End
    Terminated when the body centre is lower than ``termination_height_m`` (0.08 m; standing is
    0.16 m) or the body tilts more than ``termination_tilt_rad`` (1.0 rad) from upright.
    Truncated by ``TimeLimit`` after ``max_episode_steps`` (1000 = 20 s, set at registration).

    ## Arguments
    ``gymnasium.make("robotac/Quadruped-v0", **kwargs)`` after ``import robotac`` (which
    registers the ``robotac/`` ids, as ``import shimmy`` registers ``dm_control/``), or
    ``gymnasium.make("robotac:robotac/Quadruped-v0", ...)``; unknown keywords raise
    ``TypeError`` listing these:

    - ``render_mode``: ``None`` or ``"rgb_array"`` (tracking camera ``track``).
    - ``width``, ``height``: image size [px] (default 480 x 480).
    - ``command_ranges``: dict with any of ``vx``, ``vy``, ``yaw_rate`` -> (low, high), merged
      into :data:`DEFAULT_COMMAND_RANGES`.
    - ``fixed_command``: ``(vx, vy, yaw_rate)`` used every episode instead of sampling, e.g.
      ``(0.5, 0, 0)`` to evaluate walking forward at 0.5 m/s.
    - ``reward_scales``: dict overriding entries of :data:`DEFAULT_REWARD_SCALES`.
    - ``tracking_sigma``: width of the tracking kernels (default 0.1).
    - ``feet_air_time_target_s``: swing time that ``feet_air_time`` rewards beyond and
      penalises below (default 0.25 s; legged_gym's ``_reward_feet_air_time`` uses 0.5 s for
      robots twice this size). The term's weight is 0 by default.
    - ``feet_air_time_max_s``: air time beyond which ``feet_air_time`` pays no more (default
      ``None``: unbounded, as legged_gym; MuJoCo Playground's Go1 joystick clips at 0.5 s), so a
      foot held in the air on three legs is not a reward.
    - ``reset_noise_rad``: joint-angle perturbation at reset (default 0.05).
    - ``termination_height_m``, ``termination_tilt_rad``: fall thresholds (0.08 m, 1.0 rad).
    - Domain randomization, all off (``None``) by default, drawn from ``self.np_random``:
      ``friction_range`` (floor sliding friction per episode, e.g. (0.4, 1.2)),
      ``added_mass_range_kg`` (payload on the body per episode, e.g. (-0.2, 0.5)),
      ``motor_strength_range`` (per-servo scale of kp, kv and torque limit per episode, e.g.
      (0.8, 1.2), relative to the description's servo model; ``"identified"``: the range that
      ``robotac identify`` wrote into the description, from the fit's standard error),
      ``action_latency_steps`` (delay in control steps per episode, on top of the
      description's ``servo.latency_s``, (low, high) integers within 0-2), ``obs_noise``
      (dict block name -> standard deviation in the block's
      raw unit, added each step to ``scale * raw``), ``push_interval_s`` with
      ``push_max_vel_m_s`` (every interval, add a uniform random horizontal velocity to the body,
      default maximum 0.3 m/s).
    - ``command_resample_s``: redraw the command every this many seconds within an episode
      (legged_gym: 10 s), so the policy learns transitions; ``None`` (default): once per episode.
    - ``standing_share``: probability that a drawn command is exactly ``(0, 0, 0)`` (default 0).
    - ``command_zero_prob``: probability that each component of a drawn command is set to
      exactly 0, independently (default 0). Uniform draws over three ranges are almost always
      combinations; at 0.5, one command in eight is pure forward/backward, one pure sideways,
      one a pure turn on the spot and one zero, so the moves a person asks for most get trained.
    - ``action_filter_alpha``, ``action_max_rate_rad_s``: the :class:`envs.interface.ActionFilter`
      between the policy and the servos, a low-pass then a slew limit of every target (defaults
      1.0 and ``None``: no filter). The deploy loop applies the same function with these values,
      read from the ONNX metadata. The filtered target is ``info["servo_target_rad"]``; the
      observation's ``prev_action`` and the ``action_rate`` term use the policy's action.
    - ``gait_frequency_hz``, ``gait_duty``: a gait clock (walk-these-ways, Margolis and Agrawal,
      CoRL 2022; Humanoid-Gym, Gu et al. 2024). The observation gains the clock's phase, and the
      ``gait_contacts`` term (give it a weight) rewards feet whose contacts follow a trot
      reference at this frequency: diagonal pairs (fr + rl, fl + rr) half a cycle apart, each
      foot down for ``gait_duty`` of a cycle (default 0.5), all four down at a standing command
      (see Rewards). A reference that keeps stepping at every command outside the standing band
      leaves no reward for freezing in place at a small one; the clock itself runs on at a
      standing command, as the deploy loop's does. Defaults ``None`` (no clock: layout
      ``quadruped-obs-v1``) and 0.5. The deploy loop computes the same phase from its own step
      count.
    - ``gait_clock_stands``: with a gait clock, the observation's ``gait_clock`` block reads
      ``(0, 0)`` while the observation's command is a standing command (issue 26: a clock that
      runs on at a zero command drives stepping in place), the phase otherwise
      (:func:`envs.interface.quadruped_obs`, ``clock_stands``). Default ``False`` (the clock
      always reads its phase, as every policy exported before 2026-12-07 was trained). It travels
      in the ONNX metadata's ``env_kwargs`` and the deploy loop applies the same rule, so a
      policy trained either way deploys as it was trained. ``True`` without
      ``gait_frequency_hz`` raises ``ValueError``.
    - ``curriculum``: a list of stages, each ``{at_step, command_ranges, standing_share,
      command_zero_prob, randomization, reward_scales, tracking_sigma}``, that makes the task
      easier early in training (Rudin et al. 2022 grow legged_gym's command ranges during
      training; here the schedule is fixed in env steps, so a run is reproducible and
      resumable). ``at_step`` counts global env steps, 0 for the first stage;
      ``command_ranges`` narrows the env's (missing keys: the full range); ``standing_share``
      and ``command_zero_prob`` replace the env's; ``randomization`` in [0, 1] scales every
      domain randomization towards the nominal robot (friction towards 1, added mass towards
      0, motor strength towards 1, latency towards its low end, observation noise and pushes
      towards 0);
      ``reward_scales`` replaces the named terms' weights (the others: the env's
      ``reward_scales``), e.g. a smoothness cost that starts at 0 and reaches its weight once
      the gait has formed (the curriculum factor ``k_c`` of Hwangbo et al., "Learning agile and
      dynamic motor skills for legged robots", Science Robotics 2019, which scales the cost
      terms up during training; here a linear schedule in env steps; the new weights apply from
      the next reset); ``tracking_sigma`` replaces the env's tracking kernel width, e.g. a
      sharper kernel once the gait has formed, so that a slower gait than commanded costs more
      against the smoothness terms (at 0.1 the kernel still pays 0.90 of its maximum at
      0.1 m/s of error, at 0.05 it pays 0.82). Between two stages every value moves linearly;
      after the last stage it holds. A missing key means the full task's value (randomization
      1, the env's weights and sigma), so an empty last stage ``{at_step: N}`` reaches the full
      task at step ``N``. The trainer
      reports the step through :meth:`set_curriculum_step` before each reset; an env never
      told a step (evaluation, deploy, scripts) runs the full task.
    - ``xml_path``: another MJCF of the same robot.
    - ``robot``: the robot, a shipped description's name (``"quadruped"``, the default) or the
      path of a description folder (``robot.yaml`` + MJCF, ``docs/your_robot.md``). Its joints,
      limits, default pose, servo model and command ranges replace the quadruped's.

    ## Version History
    - v0: initial release (robotac 0.1.0), observation layout ``quadruped-obs-v1``; the
      ``feet_air_time`` term (weight 0 by default) and ``feet_air_time_target_s`` added in 0.1.0.
      ``feet_air_time`` pays at every non-standing command, turning on the spot included (it was 0
      whenever |cmd_xy| < 0.1, as in legged_gym, which gave no stepping reward to a turn on the
      spot); ``feet_air_time_max_s`` and ``command_zero_prob`` (also a curriculum key) added
      (2026-11-30).
      ``gait_frequency_hz``, ``gait_duty``, the ``gait_contacts`` term and the layout
      ``quadruped-obs-v2-clock`` added (2026-11-30).
      A command redraw (``command_resample_s``) or :meth:`set_command` no longer changes the
      command the same step's reward tracks: the reward uses the command of the observation the
      action was chosen from (it used the new one); ``info["reward_command"]`` added
      (2026-12-07).
      One standing band for the three terms that depend on it (:func:`is_standing_command`):
      ``gait_contacts`` asked for a trot at every non-zero command, inside the band where
      ``stand_still`` asked to stand (2026-12-07).
      The ``action_acc``, ``stand_joint_vel`` and ``stand_power`` terms (weight 0 by default)
      and ``gait_clock_stands`` (default off) added (2026-12-07, issue 26); the
      ``action_rate_limit`` term (weight 0 by default) added (2026-12-07).
      ``tracking_sigma`` as a curriculum key added (2026-12-07; without it, a curriculum keeps
      the env's sigma, as before).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        width: int = 480,
        height: int = 480,
        command_ranges: dict[str, tuple[float, float]] | None = None,
        fixed_command: tuple[float, float, float] | None = None,
        reward_scales: dict[str, float] | None = None,
        tracking_sigma: float = 0.1,
        feet_air_time_target_s: float = 0.25,
        feet_air_time_max_s: float | None = None,
        reset_noise_rad: float = 0.05,
        termination_height_m: float = 0.08,
        termination_tilt_rad: float = 1.0,
        friction_range: tuple[float, float] | None = None,
        added_mass_range_kg: tuple[float, float] | None = None,
        motor_strength_range: tuple[float, float] | str | None = None,
        action_latency_steps: tuple[int, int] | None = None,
        obs_noise: dict[str, float] | None = None,
        push_interval_s: float | None = None,
        push_max_vel_m_s: float = 0.3,
        command_resample_s: float | None = None,
        standing_share: float = 0.0,
        command_zero_prob: float = 0.0,
        action_filter_alpha: float = 1.0,
        action_max_rate_rad_s: float | None = None,
        gait_frequency_hz: float | None = None,
        gait_duty: float = 0.5,
        gait_clock_stands: bool = False,
        curriculum: list[dict[str, Any]] | None = None,
        xml_path: str | None = None,
        robot: str | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            valid = [p for p in inspect.signature(type(self).__init__).parameters][1:-1]
            raise TypeError(
                f"QuadrupedEnv got unknown keyword arguments {sorted(unknown)}; valid: {valid}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported; use None or 'rgb_array'"
            )
        self.render_mode = render_mode
        self.width, self.height = int(width), int(height)

        self.sim = QuadrupedSim(xml_path, robot=robot)
        self.robot = self.sim.description
        if gait_frequency_hz is not None and not (
            math.isfinite(gait_frequency_hz) and gait_frequency_hz > 0
        ):
            raise ValueError(f"gait_frequency_hz must be > 0 or None, got {gait_frequency_hz!r}")
        if not 0.0 < gait_duty < 1.0:
            raise ValueError(f"gait_duty must be in (0, 1), got {gait_duty!r}")
        self.gait_frequency_hz = None if gait_frequency_hz is None else float(gait_frequency_hz)
        self.gait_duty = float(gait_duty)
        if gait_clock_stands and self.gait_frequency_hz is None:
            raise ValueError("gait_clock_stands=True needs a gait clock: set gait_frequency_hz "
                             "(e.g. 3.0) or drop gait_clock_stands")
        self.gait_clock_stands = bool(gait_clock_stands)
        self.interface = (
            self.sim.interface if self.gait_frequency_hz is None
            else with_gait_clock(self.sim.interface)
        )
        self.layout = self.interface.obs_layout
        ctrl = self.sim.model.actuator_ctrlrange[self.sim.actuator_ids]
        self.action_space = spaces.Box(
            low=ctrl[:, 0].astype(np.float32), high=ctrl[:, 1].astype(np.float32), dtype=np.float32
        )
        self._ctrl_low, self._ctrl_high = ctrl[:, 0].copy(), ctrl[:, 1].copy()
        self.observation_space = spaces.Box(
            -np.inf, np.inf, shape=(self.layout.dim,), dtype=np.float32
        )

        default_ranges = self.robot.command_ranges
        ranges = dict(default_ranges)
        for k, v in (command_ranges or {}).items():
            if k not in default_ranges:
                raise ValueError(
                    f"command_ranges has unknown key {k!r}; valid: {list(default_ranges)}"
                )
            ranges[k] = _range_pair(f"command_ranges[{k!r}]", v)
        self.command_ranges = ranges
        if fixed_command is not None:
            fixed_command = _command_array("fixed_command", fixed_command)
        self.fixed_command = fixed_command

        scales = _reward_scales(
            DEFAULT_REWARD_SCALES, reward_scales, "reward_scales",
            has_clock=self.gait_frequency_hz is not None,
            has_slew_limit=action_max_rate_rad_s is not None,
        )
        self.reward_scales = scales
        if not (np.isfinite(tracking_sigma) and tracking_sigma > 0):
            raise ValueError(f"tracking_sigma must be a finite number > 0, got {tracking_sigma}")
        self.tracking_sigma = float(tracking_sigma)
        if not feet_air_time_target_s >= 0:
            raise ValueError(f"feet_air_time_target_s must be >= 0, got {feet_air_time_target_s}")
        self.feet_air_time_target_s = float(feet_air_time_target_s)
        if feet_air_time_max_s is not None and not feet_air_time_max_s > feet_air_time_target_s:
            raise ValueError(
                f"feet_air_time_max_s must be > feet_air_time_target_s "
                f"({feet_air_time_target_s}) or None, got {feet_air_time_max_s}"
            )
        self.feet_air_time_max_s = (
            None if feet_air_time_max_s is None else float(feet_air_time_max_s)
        )
        self._feet_air_time_s = np.zeros(4)
        self._last_contacts = np.zeros(4, dtype=bool)
        if reset_noise_rad < 0:
            raise ValueError(f"reset_noise_rad must be >= 0, got {reset_noise_rad}")
        self.reset_noise_rad = float(reset_noise_rad)
        self.termination_height_m = float(termination_height_m)
        self.termination_tilt_rad = float(termination_tilt_rad)

        self.friction_range = (
            None if friction_range is None else _range_pair("friction_range", friction_range, 1e-3)
        )
        self.added_mass_range_kg = (
            None
            if added_mass_range_kg is None
            else _range_pair(
                "added_mass_range_kg", added_mass_range_kg, -0.5 * self.sim.nominal_body_mass_kg
            )
        )
        if isinstance(motor_strength_range, str):
            motor_strength_range = self._identified_strength_range(motor_strength_range)
        self.motor_strength_range = (
            None
            if motor_strength_range is None
            else _range_pair("motor_strength_range", motor_strength_range, 1e-3)
        )
        if action_latency_steps is None:
            self.action_latency_steps = None
        else:
            lo, hi = _range_pair("action_latency_steps", action_latency_steps, 0)
            if lo != int(lo) or hi != int(hi) or hi > 2:
                raise ValueError(
                    f"action_latency_steps must be integers (low, high) within 0-2, "
                    f"got {action_latency_steps!r}"
                )
            self.action_latency_steps = (int(lo), int(hi))
        self._obs_noise_std = np.zeros(self.layout.dim)
        self.obs_noise = dict(obs_noise or {})
        slices = self.layout.slices()
        for k, std in self.obs_noise.items():
            if k not in slices:
                raise ValueError(f"obs_noise has unknown block {k!r}; valid: {list(slices)}")
            if not (np.isfinite(std) and std >= 0):
                raise ValueError(f"obs_noise[{k!r}] must be a finite std >= 0, got {std!r}")
            block = next(b for b in self.layout.blocks if b.name == k)
            self._obs_noise_std[slices[k]] = float(std) * block.scale
        if push_interval_s is not None and not push_interval_s > 0:
            raise ValueError(f"push_interval_s must be > 0 or None, got {push_interval_s}")
        self.push_interval_s = push_interval_s
        self.push_max_vel_m_s = float(push_max_vel_m_s)
        if command_resample_s is not None and not command_resample_s > 0:
            raise ValueError(f"command_resample_s must be > 0 or None, got {command_resample_s}")
        self._steps_per_command = (
            None
            if command_resample_s is None
            else max(1, round(command_resample_s / self.sim.control_period_s))
        )
        if not 0.0 <= standing_share <= 1.0:
            raise ValueError(f"standing_share must be in [0, 1], got {standing_share}")
        self.standing_share = float(standing_share)
        if not 0.0 <= command_zero_prob <= 1.0:
            raise ValueError(f"command_zero_prob must be in [0, 1], got {command_zero_prob}")
        self.command_zero_prob = float(command_zero_prob)
        self.action_filter = ActionFilter(
            float(action_filter_alpha),
            None if action_max_rate_rad_s is None else float(action_max_rate_rad_s),
        )
        self._full_command_ranges = dict(self.command_ranges)
        self._full_standing_share = self.standing_share
        self._full_command_zero_prob = self.command_zero_prob
        self._full_reward_scales = dict(self.reward_scales)
        self.curriculum = (
            None
            if curriculum is None
            else _curriculum_stages(curriculum, self._full_command_ranges, self.standing_share,
                                    self.command_zero_prob, self._full_reward_scales,
                                    has_clock=self.gait_frequency_hz is not None,
                                    has_slew_limit=action_max_rate_rad_s is not None,
                                    full_sigma=self.tracking_sigma)
        )
        self._full_tracking_sigma = self.tracking_sigma
        self._curriculum_step: int | None = None
        self.randomization_scale = 1.0

        # Soft joint limits for the joint_limits term: middle 90 % of the range (legged_gym's
        # soft_dof_pos_limit = 0.9).
        arr = self.interface.arrays()
        mid = 0.5 * (arr["joint_low_rad"] + arr["joint_high_rad"])
        half = 0.5 * (arr["joint_high_rad"] - arr["joint_low_rad"]) * 0.9
        self._soft_low, self._soft_high = mid - half - np.pi, mid + half - np.pi
        self._default = arr["default_pose_rad"]

        self.command = np.zeros(3)
        # The command of the last observation returned: the one the next action is chosen with,
        # which that step's reward tracks (``self.command`` may change before then).
        self._obs_command = np.zeros(3)
        self._command_fixed_for_episode = False
        self._prev_action = self._default.copy()
        self._prev_prev_action = self._default.copy()
        self._target = self._default.copy()
        self._latency = 0
        self._queue: deque[np.ndarray] = deque(maxlen=3)
        self._steps = 0
        self._steps_per_push = (
            None
            if push_interval_s is None
            else max(1, round(push_interval_s / self.sim.control_period_s))
        )
        self._renderer: Any = None

    # ----------------------------------------------------------------- helpers
    @property
    def dt(self) -> float:
        """Control period [s]."""
        return self.sim.control_period_s

    def _gait_phase(self) -> float | None:
        """The gait clock's phase after this episode's steps; ``None`` without a clock."""
        if self.gait_frequency_hz is None:
            return None
        return gait_phase(self._steps, self.gait_frequency_hz, self.sim.control_period_s)

    def _observe(self) -> np.ndarray:
        self._obs_command = self.command.copy()
        s = self.sim.sensors()
        obs = quadruped_obs(
            s.quat_wxyz, s.gyro_rad_s, s.q_servo_rad, s.dq_rad_s, self._prev_action, self.command,
            self.interface, self._gait_phase(), clock_stands=self.gait_clock_stands,
        )
        if self.obs_noise:
            std = self._obs_noise_std * self.randomization_scale
            obs = obs + (std * self.np_random.standard_normal(obs.shape)).astype(np.float32)
        return obs

    def _info(
        self,
        reward_terms: dict[str, float] | None = None,
        v: np.ndarray | None = None,
        height: float | None = None,
        contacts: np.ndarray | None = None,
    ) -> dict[str, Any]:
        v = self.sim.base_lin_vel_body_m_s if v is None else v
        height = self.sim.body_height_m if height is None else height
        contacts = self.sim.foot_contacts() if contacts is None else contacts
        info: dict[str, Any] = {
            "command": self.command.copy(),
            "base_lin_vel_m_s": v,
            "base_ang_vel_rad_s": self.sim.base_ang_vel_body_rad_s,
            "base_height_m": height,
            "foot_contacts": contacts,
            "joint_torques_nm": self.sim.joint_torques_nm,
            "privileged_obs": np.concatenate([v, [height], contacts]).astype(np.float32),
            "action_latency_steps": self._latency,
        }
        if reward_terms is not None:
            info["reward_terms"] = reward_terms
        return info

    def _randomize(self) -> None:
        # Every draw is made whatever the curriculum's scale ``r``, which then moves the drawn value
        # towards the nominal robot: the random stream does not depend on the stage.
        rng, sim, r = self.np_random, self.sim, self.randomization_scale
        sim.reset_randomization()
        if self.friction_range is not None:
            sim.set_floor_friction(1.0 + r * (rng.uniform(*self.friction_range) - 1.0))
        if self.added_mass_range_kg is not None:
            sim.set_added_mass(r * rng.uniform(*self.added_mass_range_kg))
        if self.motor_strength_range is not None:
            sim.set_motor_strength(
                1.0 + r * (rng.uniform(*self.motor_strength_range, size=self.interface.n_joints)
                           - 1.0)
            )
        lat = self.action_latency_steps
        self._latency = (
            0 if lat is None
            else lat[0] + int(round(r * (int(rng.integers(lat[0], lat[1] + 1)) - lat[0])))
        )

    def _identified_strength_range(self, value: str) -> tuple[float, float]:
        """``motor_strength_range="identified"``: the range ``robotac identify`` wrote into the
        description's ``identification`` record (1 +- max(5 %, 2 standard errors of kp)),
        centred on the fitted servo model the sim already carries."""
        ident = self.robot.identification or {}
        if value != "identified" or "motor_strength_range" not in ident:
            raise ValueError(
                f"motor_strength_range={value!r}: give (low, high), or 'identified' for a "
                f"description written by robotac identify ({self.robot.folder} has "
                f"{'no' if not ident else 'an incomplete'} identification record)")
        lo, hi = ident["motor_strength_range"]
        return float(lo), float(hi)

    def set_curriculum_step(self, global_step: int | None) -> None:
        """Tell the env how far training is; the next :meth:`reset` applies that stage.

        Args:
            global_step: Global env steps taken by the trainer so far (all envs together), or
                ``None`` for the full task.
        """
        self._curriculum_step = None if global_step is None else int(global_step)

    def set_command(self, command: Any) -> None:
        """Change the velocity command mid-episode (a scripted schedule, an evaluation).

        Held like reset's ``options["command"]``: the periodic redraw (``command_resample_s``)
        does not replace it for the rest of the episode; the next :meth:`reset` draws (or takes)
        a command as usual. The observation the next :meth:`step` returns carries it, so the
        action after that is chosen with it and its reward tracks it; the next step's own reward
        still tracks the command its action was chosen with (``info["reward_command"]``).

        Args:
            command: ``(3,)`` ``(vx [m/s], vy [m/s], yaw rate [rad/s])``, body frame.

        Raises:
            ValueError: if ``command`` is not three finite numbers.
        """
        self.command = _command_array("command", command)
        self._command_fixed_for_episode = True

    def curriculum_values(self, global_step: int | None) -> dict[str, Any]:
        """The task at ``global_step``: ``{"command_ranges", "standing_share", "command_zero_prob",
        "randomization", "reward_scales", "tracking_sigma"}``.

        Linear between stages, the last stage's values after it; the full task for ``None`` or
        an env without a curriculum.
        """
        full = {"command_ranges": dict(self._full_command_ranges),
                "standing_share": self._full_standing_share,
                "command_zero_prob": self._full_command_zero_prob, "randomization": 1.0,
                "reward_scales": dict(self._full_reward_scales),
                "tracking_sigma": self._full_tracking_sigma}
        if self.curriculum is None or global_step is None:
            return full
        stages = self.curriculum
        if global_step >= stages[-1]["at_step"]:
            a = b = stages[-1]
            t = 0.0
        else:
            j = next(j for j in range(1, len(stages)) if global_step < stages[j]["at_step"])
            a, b = stages[j - 1], stages[j]
            t = (global_step - a["at_step"]) / (b["at_step"] - a["at_step"])
        return {
            "command_ranges": {
                k: (_lerp(a["command_ranges"][k][0], b["command_ranges"][k][0], t),
                    _lerp(a["command_ranges"][k][1], b["command_ranges"][k][1], t))
                for k in full["command_ranges"]
            },
            "standing_share": _lerp(a["standing_share"], b["standing_share"], t),
            "command_zero_prob": _lerp(a["command_zero_prob"], b["command_zero_prob"], t),
            "randomization": _lerp(a["randomization"], b["randomization"], t),
            "reward_scales": {k: _lerp(a["reward_scales"][k], b["reward_scales"][k], t)
                              for k in full["reward_scales"]},
            "tracking_sigma": _lerp(a["tracking_sigma"], b["tracking_sigma"], t),
        }

    def _apply_curriculum(self) -> None:
        if self.curriculum is None:
            return
        v = self.curriculum_values(self._curriculum_step)
        self.command_ranges = v["command_ranges"]
        self.standing_share = v["standing_share"]
        self.command_zero_prob = v["command_zero_prob"]
        self.randomization_scale = v["randomization"]
        self.reward_scales = v["reward_scales"]
        self.tracking_sigma = v["tracking_sigma"]

    def _sample_command(self) -> np.ndarray:
        """A command drawn from ``command_ranges``, or zero with probability ``standing_share``;
        each component then zeroed with probability ``command_zero_prob``."""
        rng = self.np_random
        if self.standing_share > 0.0 and rng.uniform() < self.standing_share:
            return np.zeros(3)
        cmd = np.array([rng.uniform(*self.command_ranges[k]) for k in ("vx", "vy", "yaw_rate")])
        if self.command_zero_prob > 0.0:  # no extra draw otherwise: same stream as before
            cmd[rng.uniform(size=3) < self.command_zero_prob] = 0.0
        return cmd

    # --------------------------------------------------------------------- API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Stand the robot up, draw the command and the randomization (see the class docstring).

        Args:
            seed: Seeds ``self.np_random`` (all randomness of the env).
            options: Optional ``{"command": (vx, vy, yaw_rate)}`` for this episode only.

        Returns:
            ``(obs, info)``: ``(45,)`` float32 observation and the privileged ``info``.
        """
        super().reset(seed=seed)
        rng = self.np_random
        self._apply_curriculum()
        self._randomize()
        self.sim.reset(rng, self.reset_noise_rad)
        self._command_fixed_for_episode = False
        if options and "command" in options:
            self.command = _command_array("options['command']", options["command"])
            self._command_fixed_for_episode = True
        elif self.fixed_command is not None:
            self.command = self.fixed_command.copy()
        else:
            self.command = self._sample_command()
        self._prev_action = self._default.copy()
        self._prev_prev_action = self._default.copy()
        self._target = self._default.copy()
        self._feet_air_time_s[:] = 0.0
        self._last_contacts[:] = False
        self._queue.clear()
        self._queue.extend([self._default.copy()] * self._latency)
        self._steps = 0
        return self._observe(), self._info()

    def _check_action(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise ValueError(
                f"action has shape {a.shape}, expected {self.action_space.shape} "
                f"(12 servo angles in rad, joint order {list(self.interface.joint_names)})"
            )
        if not np.isfinite(a).all():
            bad = np.flatnonzero(~np.isfinite(a)).tolist()
            raise ValueError(f"action has NaN/inf at indices {bad}: {a.tolist()}")
        return np.minimum(np.maximum(a, self._ctrl_low), self._ctrl_high)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply ``(12,)`` servo targets [rad] for one control period (0.02 s).

        Returns:
            ``(obs, reward, terminated, truncated, info)``; ``truncated`` is always ``False``
            here (``TimeLimit`` truncates). ``info["command"]`` is the command ``obs`` carries,
            ``info["reward_command"]`` the one ``reward`` tracked (the command of the observation
            ``action`` was chosen from; see the class docstring, Starting State).

        Raises:
            ValueError: on a wrong shape (stating the expected one) or NaN/inf entries (naming
                the indices). Finite actions outside ``[0, 2 pi]`` are clipped to the bounds.
        """
        a = self._check_action(action)
        prev_target = self._target
        target = self.action_filter.apply(a, prev_target, self.sim.control_period_s)
        self._target = target
        if self._latency:
            self._queue.append(target)
            applied = self._queue.popleft()
        else:
            applied = target
        sim = self.sim
        self._steps += 1
        # A redraw is for the next action: the observation this step returns carries it, the
        # reward below tracks the command this action was chosen with (legged_gym resamples after
        # the reward). Drawn here, before a push, so the random stream keeps its order.
        if (
            self._steps_per_command is not None
            and self._steps % self._steps_per_command == 0
            and self.fixed_command is None
            and not self._command_fixed_for_episode
        ):
            self.command = self._sample_command()
        pushed = self._steps_per_push is not None and self._steps % self._steps_per_push == 0
        if pushed:
            dv = self.np_random.uniform(-self.push_max_vel_m_s, self.push_max_vel_m_s, size=2)
            dv *= self.randomization_scale
            sim.push(np.array([dv[0], dv[1], 0.0]))
        sim.step(applied)

        v = sim.base_lin_vel_body_m_s
        w = sim.data.qvel[3:6]
        qw, qx, qy, qz = sim.data.qpos[3:7].tolist()
        # cos(tilt) = z-component of the body z axis in the world = 1 - 2 (x^2 + y^2) / |quat|^2.
        cos_tilt = 1.0 - 2.0 * (qx * qx + qy * qy) / (qw * qw + qx * qx + qy * qy + qz * qz)
        tilt = math.acos(min(1.0, max(-1.0, cos_tilt)))
        height = sim.body_height_m
        terminated = height < self.termination_height_m or tilt > self.termination_tilt_rad
        q = sim.data.qpos[sim.joint_qpos_adr]
        dq = sim.data.qvel[sim.joint_dof_adr]
        tau = sim.data.actuator_force[sim.actuator_ids]
        sig = self.tracking_sigma
        # The command this action was chosen with (a redraw above is for the next action).
        cmd = self._obs_command
        wx, wy, wz = w.tolist()
        vx, vy, vz = v.tolist()
        # Feet air time (Rudin et al. 2022, legged_gym ``_reward_feet_air_time``): on touch-down,
        # reward the swing time beyond the target; contacts are OR-ed with the previous step's
        # (the contact of a foot on a hard floor flickers).
        contact = sim.foot_contacts()
        contact_filt = contact | self._last_contacts
        self._last_contacts = contact
        first_contact = (self._feet_air_time_s > 0.0) & contact_filt
        self._feet_air_time_s += sim.control_period_s
        excess = self._feet_air_time_s - self.feet_air_time_target_s
        if self.feet_air_time_max_s is not None:
            excess = np.minimum(excess, self.feet_air_time_max_s - self.feet_air_time_target_s)
        standing_command = is_standing_command(cmd)
        air_time = 0.0 if standing_command else float(np.sum(excess * first_contact))
        self._feet_air_time_s[contact_filt] = 0.0
        # Gait clock: the trot reference's phase after this step; its feet pattern is what the
        # gait_contacts term asks of the contacts this step ended with (all four feet down at a
        # standing command). Humanoid-Gym (Gu et al. 2024, ``_reward_feet_contact_number``): +1 per
        # foot that matches the reference, -0.3 per foot that does not, averaged over the feet.
        gait_match = 0.0
        phase = self._gait_phase()
        if phase is not None:
            desired = (np.ones(4, dtype=bool) if standing_command
                       else desired_foot_contacts(phase, self.gait_duty))
            gait_match = float(np.mean(np.where(contact == desired, 1.0, -0.3)))
        raw = {
            "tracking_lin_vel": math.exp(-((cmd[0] - vx) ** 2 + (cmd[1] - vy) ** 2) / sig),
            "tracking_ang_vel": math.exp(-((cmd[2] - wz) ** 2) / sig),
            "lin_vel_z": vz * vz,
            "ang_vel_xy": wx * wx + wy * wy,
            "torques": float(tau @ tau),
            "action_rate": float(np.sum(np.square(a - self._prev_action))),
            "joint_limits": float(
                np.sum(np.maximum(self._soft_low - q, 0.0) + np.maximum(q - self._soft_high, 0.0))
            ),
            "termination": float(terminated),
            "feet_air_time": air_time,
            "stand_still": (
                float(np.sum(np.abs(q - (self._default - np.pi))))
                if standing_command else 0.0
            ),
            "gait_contacts": gait_match,
            "action_acc": float(np.sum(np.square(a - 2.0 * self._prev_action
                                                 + self._prev_prev_action))),
            "stand_joint_vel": float(dq @ dq) if standing_command else 0.0,
            "stand_power": float(np.sum(np.abs(tau * dq))) if standing_command else 0.0,
            "action_rate_limit": (
                float(np.sum(np.maximum(np.abs(a - prev_target) / sim.control_period_s
                                        - self.action_filter.max_rate_rad_s, 0.0)))
                if self.action_filter.max_rate_rad_s is not None else 0.0
            ),
        }
        terms = {k: float(self.reward_scales[k] * raw[k]) for k in raw}
        reward = float(sum(terms.values()))
        self._prev_prev_action = self._prev_action
        self._prev_action = a
        obs = self._observe()
        info = self._info(terms, v, height, contact.copy())
        info["reward_command"] = cmd.copy()
        info["tilt_rad"] = tilt
        info["servo_target_rad"] = target
        info["pushed"] = bool(pushed)
        if phase is not None:
            info["gait_phase"] = phase
        return obs, reward, terminated, False, info

    def render(self) -> np.ndarray | None:
        """Render the tracking camera as ``(height, width, 3)`` uint8 RGB (``rgb_array`` mode).

        Raises:
            RuntimeError: when no OpenGL backend is available, naming the fix.
        """
        if self.render_mode is not None:
            self.sim.forward()
        return render_rgb_array(self, self.sim.model, self.sim.data, "track")

    def close(self) -> None:
        close_renderer(self)
