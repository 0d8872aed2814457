"""Robot interfaces: joint order, bounds, default pose and observation layout, as data.

This module is numpy-only on purpose: ``deploy/`` (which runs on the robot's companion computer
with only numpy, onnxruntime and pyserial installed) imports it, and so does the simulated
environment. Both therefore build the policy observation with the *same* function, so simulation
and hardware cannot drift apart (DESIGN.md contract 2).

The interface also travels inside the exported ONNX file as JSON (``RobotInterface.to_dict``), so
``deploy/`` can refuse a policy whose joint order, bounds or observation layout do not match the
robot it is connected to.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from envs.robot_description import DEFAULT_ROBOT, RobotDescription, load_description

__all__ = [
    "ActionFilter",
    "ObsBlock",
    "ObsLayout",
    "RobotInterface",
    "InterfaceMismatchError",
    "MirrorMaps",
    "QUADRUPED_COMMAND_RANGES",
    "QUADRUPED_DESCRIPTION",
    "QUADRUPED_INTERFACE",
    "QUADRUPED_OBS_LAYOUT",
    "QUADRUPED_OBS_LAYOUT_CLOCK",
    "STANDING_LIN_VEL_M_S",
    "STANDING_YAW_RATE_RAD_S",
    "TROT_PHASE_OFFSETS",
    "desired_foot_contacts",
    "gait_clock",
    "gait_phase",
    "has_gait_clock",
    "interface_from_description",
    "is_standing_command",
    "mirror_maps",
    "projected_gravity",
    "quadruped_obs_layout",
    "quadruped_obs",
    "with_gait_clock",
]


class InterfaceMismatchError(ValueError):
    """A policy and a robot (or two interfaces) disagree on joints, bounds or layout."""


@dataclass(frozen=True)
class ObsBlock:
    """One named block of an observation vector.

    Attributes:
        name: Block name, e.g. ``"gyro"``.
        size: Number of float entries in the block.
        unit: Physical unit of the raw quantity before scaling, e.g. ``"rad/s"``.
        scale: Multiplier applied to the raw quantity; the observation holds ``scale * raw``.
        description: One line saying what the block is and in which frame.
    """

    name: str
    size: int
    unit: str
    scale: float
    description: str = ""


@dataclass(frozen=True)
class ObsLayout:
    """An ordered list of observation blocks, with a version.

    The version changes whenever the meaning of any entry changes; ``deploy/`` refuses a
    policy trained for a different version.
    """

    version: str
    blocks: tuple[ObsBlock, ...]

    @property
    def dim(self) -> int:
        """Total observation size (sum of block sizes)."""
        return sum(b.size for b in self.blocks)

    def slices(self) -> dict[str, slice]:
        """Map each block name to its slice in the observation vector."""
        out: dict[str, slice] = {}
        start = 0
        for b in self.blocks:
            out[b.name] = slice(start, start + b.size)
            start += b.size
        return out

    def assemble(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """Concatenate ``scale * raw`` for every block, in layout order.

        Args:
            values: Block name -> raw value, shape ``(..., size)``; every block must be present.

        Returns:
            ``(..., dim)`` float32 observation.

        Raises:
            ValueError: if a block is missing, unknown, or has the wrong trailing size.
        """
        missing = [b.name for b in self.blocks if b.name not in values]
        unknown = sorted(set(values) - {b.name for b in self.blocks})
        if missing or unknown:
            raise ValueError(
                f"observation blocks do not match layout {self.version!r}: "
                f"missing {missing}, unknown {unknown}"
            )
        parts = []
        for b in self.blocks:
            v = np.asarray(values[b.name], dtype=np.float64)
            if v.shape[-1:] != (b.size,):
                raise ValueError(
                    f"observation block {b.name!r} has shape {v.shape}, expected (..., {b.size})"
                )
            parts.append(v * b.scale)
        return np.concatenate(parts, axis=-1).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "blocks": [
                {
                    "name": b.name,
                    "size": b.size,
                    "unit": b.unit,
                    "scale": b.scale,
                    "description": b.description,
                }
                for b in self.blocks
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ObsLayout:
        return cls(version=d["version"], blocks=tuple(ObsBlock(**b) for b in d["blocks"]))


@dataclass(frozen=True)
class RobotInterface:
    """What a policy needs to know about a robot, and what the robot must match.

    All angles are *servo angles* in rad, the action convention of the env and of the serial
    protocol (``shared/protocol.md``): a servo angle ``a`` drives joint angle ``q = a - pi``.

    Attributes:
        name: Robot name, e.g. ``"quadruped"``.
        joint_names: Joint order of actions, targets and readings, length ``n_joints``.
        action_low_rad, action_high_rad: ``(n_joints,)`` action-space bounds (the actuators'
            ``ctrlrange``), servo angle [rad].
        joint_low_rad, joint_high_rad: ``(n_joints,)`` mechanical joint limits expressed as servo
            angles [rad]; narrower than the action bounds.
        default_pose_rad: ``(n_joints,)`` standing pose, servo angles [rad].
        obs_layout: Observation layout of the actor's input.
        control_period_s: Policy control period [s].
    """

    name: str
    joint_names: tuple[str, ...]
    action_low_rad: tuple[float, ...]
    action_high_rad: tuple[float, ...]
    joint_low_rad: tuple[float, ...]
    joint_high_rad: tuple[float, ...]
    default_pose_rad: tuple[float, ...]
    obs_layout: ObsLayout
    control_period_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        for fname in (
            "action_low_rad",
            "action_high_rad",
            "joint_low_rad",
            "joint_high_rad",
            "default_pose_rad",
        ):
            if len(getattr(self, fname)) != n:
                raise ValueError(f"{fname} has {len(getattr(self, fname))} entries, expected {n}")

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    def arrays(self) -> dict[str, np.ndarray]:
        """The numeric fields as ``(n_joints,)`` float64 arrays."""
        return {
            k: np.asarray(getattr(self, k), dtype=np.float64)
            for k in (
                "action_low_rad",
                "action_high_rad",
                "joint_low_rad",
                "joint_high_rad",
                "default_pose_rad",
            )
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "joint_names": list(self.joint_names),
            "action_low_rad": list(self.action_low_rad),
            "action_high_rad": list(self.action_high_rad),
            "joint_low_rad": list(self.joint_low_rad),
            "joint_high_rad": list(self.joint_high_rad),
            "default_pose_rad": list(self.default_pose_rad),
            "obs_layout": self.obs_layout.to_dict(),
            "control_period_s": self.control_period_s,
            "extra": dict(self.extra),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RobotInterface:
        return cls(
            name=d["name"],
            joint_names=tuple(d["joint_names"]),
            action_low_rad=tuple(float(x) for x in d["action_low_rad"]),
            action_high_rad=tuple(float(x) for x in d["action_high_rad"]),
            joint_low_rad=tuple(float(x) for x in d["joint_low_rad"]),
            joint_high_rad=tuple(float(x) for x in d["joint_high_rad"]),
            default_pose_rad=tuple(float(x) for x in d["default_pose_rad"]),
            obs_layout=ObsLayout.from_dict(d["obs_layout"]),
            control_period_s=float(d["control_period_s"]),
            extra=dict(d.get("extra", {})),
        )

    @classmethod
    def from_json(cls, s: str) -> RobotInterface:
        return cls.from_dict(json.loads(s))

    def check_matches(self, other: RobotInterface, *, atol: float = 1e-6) -> None:
        """Raise if ``other`` (e.g. a policy's interface) differs from this one.

        Compares name, joint order, observation layout (version and blocks), default pose and
        action bounds.

        Raises:
            InterfaceMismatchError: naming the first field that differs and both values.
        """
        if self.joint_names != other.joint_names:
            raise InterfaceMismatchError(
                f"joint order differs: robot {list(self.joint_names)} vs "
                f"policy {list(other.joint_names)}"
            )
        if self.obs_layout != other.obs_layout:
            raise InterfaceMismatchError(
                f"observation layout differs: robot {self.obs_layout.version!r} "
                f"{[(b.name, b.size) for b in self.obs_layout.blocks]} vs policy "
                f"{other.obs_layout.version!r} "
                f"{[(b.name, b.size) for b in other.obs_layout.blocks]}"
            )
        mine, theirs = self.arrays(), other.arrays()
        for k in ("action_low_rad", "action_high_rad", "default_pose_rad"):
            if not np.allclose(mine[k], theirs[k], atol=atol):
                raise InterfaceMismatchError(
                    f"{k} differs: robot {np.round(mine[k], 4).tolist()} vs "
                    f"policy {np.round(theirs[k], 4).tolist()}"
                )


# --------------------------------------------------------------------------------------------
# The quadruped: its figures come from its description, envs/robots/quadruped/robot.yaml
# --------------------------------------------------------------------------------------------

#: The default robot's description (``envs/robots/quadruped/``), the source of
#: :data:`QUADRUPED_INTERFACE`, :data:`QUADRUPED_COMMAND_RANGES` and the default mirror maps.
QUADRUPED_DESCRIPTION: RobotDescription = load_description(DEFAULT_ROBOT)

QUADRUPED_OBS_LAYOUT = ObsLayout(
    version="quadruped-obs-v1",
    blocks=(
        ObsBlock("projected_gravity", 3, "1", 1.0, "unit gravity vector in the body frame"),
        ObsBlock("gyro", 3, "rad/s", 0.25, "body angular velocity from the IMU gyro, body frame"),
        ObsBlock("joint_pos", 12, "rad", 1.0, "joint angle minus default pose, joint order"),
        ObsBlock("joint_vel", 12, "rad/s", 0.05, "joint angular velocity, joint order"),
        ObsBlock("prev_action", 12, "rad", 1.0, "previous servo target minus default pose"),
        ObsBlock("command", 3, "m/s, m/s, rad/s", 1.0, "velocity command (vx, vy, yaw rate)"),
    ),
)

#: The quadruped's layout with a gait clock (a policy trained with ``gait_frequency_hz``): the
#: v1 blocks, then the phase of a periodic trot reference, which the deploy loop computes from
#: its own step count exactly as the env does (:func:`gait_phase`).
QUADRUPED_OBS_LAYOUT_CLOCK = ObsLayout(
    version="quadruped-obs-v2-clock",
    blocks=QUADRUPED_OBS_LAYOUT.blocks + (
        ObsBlock("gait_clock", 2, "1", 1.0,
                 "sin and cos of 2 pi x the gait phase (0 at the start of the episode)"),
    ),
)

#: Phase offsets of the trot the gait clock schedules, in joint (leg) order fr, fl, rr, rl: the
#: diagonal pairs fr + rl and fl + rr swing together, half a cycle apart.
TROT_PHASE_OFFSETS: tuple[float, float, float, float] = (0.0, 0.5, 0.5, 0.0)


#: Left-right mirror of each observation block's entries (reflection in the body's x-z plane):
#: the sign of each entry, or ``"joints"`` for a block in joint order (legs swapped, abduction
#: negated). A polar vector (gravity, velocity) keeps x and z and negates y; an axial one (the
#: angular velocity) keeps y and negates x and z; the yaw rate of the command is a z component.
#: The gait clock's trot reference is mirrored by half a period (:func:`mirror_maps`).
_MIRROR_BLOCK_SIGNS: dict[str, tuple[float, ...] | str] = {
    "projected_gravity": (1.0, -1.0, 1.0),
    "gyro": (-1.0, 1.0, -1.0),
    "joint_pos": "joints",
    "joint_vel": "joints",
    "prev_action": "joints",
    "command": (1.0, -1.0, -1.0),
    "gait_clock": (-1.0, -1.0),
}
@dataclass(frozen=True)
class MirrorMaps:
    """The left-right mirror image of a robot's observations and actions, as index maps.

    A transition ``(obs, action, reward, next_obs)`` of a left-right symmetric robot and task
    has a mirror image ``(obs(obs), action(action), reward, obs(next_obs))`` that is equally a
    transition of the task; training on both is symmetry data augmentation (Abdolhosseini et
    al. 2019, "On Learning Symmetric Locomotion", the DUP method; Mittal et al. 2024, "Symmetry
    Considerations for Learning Task Symmetric Robot Policies", ICRA). Both maps are
    involutions: applied twice they give the input back.

    Attributes:
        obs_index: ``(obs_dim,)`` int; entry ``i`` of the mirrored observation is
            ``obs_sign[i] * obs[obs_index[i]]``.
        obs_sign: ``(obs_dim,)`` float64, +-1.
        action_index: ``(n_joints,)`` int, the joint that entry ``i`` of the mirrored action
            comes from.
        action_sign: ``(n_joints,)`` float64, +-1.
        action_center: ``(n_joints,)`` float64 [rad], the default pose, about which actions (servo
            angles) are mirrored: ``center + sign * (a[index] - center[index])``.
    """

    obs_index: np.ndarray
    obs_sign: np.ndarray
    action_index: np.ndarray
    action_sign: np.ndarray
    action_center: np.ndarray

    def obs(self, obs: np.ndarray) -> np.ndarray:
        """Mirror ``(..., obs_dim)`` observations (raw, before any normalization)."""
        return np.asarray(obs)[..., self.obs_index] * self.obs_sign

    def action(self, action: np.ndarray) -> np.ndarray:
        """Mirror ``(..., n_joints)`` actions in servo angles [rad]."""
        a = np.asarray(action, dtype=np.float64)
        c = self.action_center
        return c + self.action_sign * (a[..., self.action_index] - c[self.action_index])


def mirror_maps(interface: RobotInterface,
                description: RobotDescription | None = None) -> MirrorMaps:
    """The left-right mirror maps of ``interface``'s observation layout and joints.

    The robot's description says which joints are mirror images (``mirror.joint_pairs``; a joint
    in no pair is its own image) and which change sign (``mirror.negate``, a rotation about the
    body's x axis), about the default pose. A ``gait_clock`` block is mirrored by half a period,
    which is exact for the trot reference (:data:`TROT_PHASE_OFFSETS`: swapping the feet of
    ``mirror.foot_pairs`` swaps the two diagonal pairs, half a cycle apart).

    Args:
        interface: The robot interface (joint order, default pose, layout).
        description: Its description; ``None`` loads the shipped robot named
            ``interface.name``.

    Raises:
        ValueError: naming the block or joint the mirror cannot map (a block it has no rule
            for, a joint of the interface the description does not have, a default pose that is
            not symmetric).
    """
    desc = description if description is not None else load_description(interface.name)
    names = list(interface.joint_names)
    partner_of = desc.mirror_partner()
    index, sign = [], []
    for name in names:
        partner = partner_of.get(name)
        if partner not in names:
            raise ValueError(f"joint {name!r} has no left-right partner in robot "
                             f"{desc.name!r}'s mirror.joint_pairs: this robot cannot be mirrored")
        index.append(names.index(partner))
        sign.append(-1.0 if name in desc.mirror_negate else 1.0)
    a_index, a_sign = np.array(index), np.array(sign)
    center = np.asarray(interface.default_pose_rad, dtype=np.float64)
    if not np.allclose(center[a_index], center):
        raise ValueError(f"the default pose is not left-right symmetric: {center.tolist()}")
    offsets = np.asarray(TROT_PHASE_OFFSETS)
    feet = list(desc.feet)
    foot_partner = {f: f for f in feet}
    for f, g in desc.foot_pairs:
        foot_partner[f], foot_partner[g] = g, f
    if has_gait_clock(interface.obs_layout) and not (len(feet) == len(offsets) and all(
            np.isclose((offsets[feet.index(foot_partner[f])] - offsets[i]) % 1.0, 0.5)
            for i, f in enumerate(feet))):
        raise ValueError("the gait clock's reference is not mirrored by half a period")
    o_index, o_sign = [], []
    for block, sl in interface.obs_layout.slices().items():
        rule = _MIRROR_BLOCK_SIGNS.get(block)
        if rule is None:
            raise ValueError(f"observation block {block!r} of layout "
                             f"{interface.obs_layout.version!r} has no mirror rule")
        if rule == "joints":
            o_index += (sl.start + a_index).tolist()
            o_sign += a_sign.tolist()
        else:
            o_index += list(range(sl.start, sl.stop))
            o_sign += list(rule)
    return MirrorMaps(np.array(o_index), np.array(o_sign), a_index, a_sign, center)


def with_gait_clock(interface: RobotInterface) -> RobotInterface:
    """``interface`` observed with a gait clock: its layout followed by the ``gait_clock`` block.

    Args:
        interface: A robot interface with layout ``quadruped-obs-v1`` (or already
            ``quadruped-obs-v2-clock``, returned as is).

    Raises:
        ValueError: for any other layout, which has no gait-clock variant.
    """
    layout = interface.obs_layout
    if layout.version == QUADRUPED_OBS_LAYOUT_CLOCK.version and has_gait_clock(layout):
        return interface
    if layout.version != QUADRUPED_OBS_LAYOUT.version:
        raise ValueError(
            f"observation layout {layout.version!r} has no gait-clock variant "
            f"(only {QUADRUPED_OBS_LAYOUT.version!r} does)"
        )
    return replace(interface, obs_layout=ObsLayout(
        QUADRUPED_OBS_LAYOUT_CLOCK.version, layout.blocks + QUADRUPED_OBS_LAYOUT_CLOCK.blocks[-1:]))


def has_gait_clock(layout: ObsLayout) -> bool:
    """Whether ``layout`` has the ``gait_clock`` block (its observation needs a gait phase)."""
    return any(b.name == "gait_clock" for b in layout.blocks)


def gait_phase(step: int, frequency_hz: float, control_period_s: float) -> float:
    """The gait clock's phase in ``[0, 1)`` after ``step`` control steps since the start.

    Args:
        step: Control steps since the episode (env) or the run phase (deploy) began, >= 0.
        frequency_hz: Gait cycles per second.
        control_period_s: Control period [s].

    Returns:
        ``(step * frequency_hz * control_period_s) mod 1``, computed from the step count (not
        accumulated), so the env and the deploy loop agree to the last bit after any number of
        steps.
    """
    return math.fmod(step * frequency_hz * control_period_s, 1.0)


#: The standing band (one definition for every reward term, the gait clock's stand and deploy):
#: a command asks the robot to stand when its horizontal speed ``hypot(vx, vy)`` is below this
#: [m/s] ...
STANDING_LIN_VEL_M_S = 0.1
#: ... and its yaw rate's magnitude is below this [rad/s]. (legged_gym's ``_reward_stand_still``
#: and ``_reward_feet_air_time`` use 0.1 m/s on ``cmd_xy`` alone; the yaw bound makes a turn on the
#: spot a moving command.)
STANDING_YAW_RATE_RAD_S = 0.1


def is_standing_command(command: Any) -> bool:
    """Whether ``command`` asks the robot to stand: ``hypot(vx, vy) < STANDING_LIN_VEL_M_S`` and
    ``|yaw rate| < STANDING_YAW_RATE_RAD_S``.

    The env's ``stand_still``, ``feet_air_time``, ``gait_contacts`` and standing-only terms all
    decide with this, so none asks for a step where another asks to stand still; so does the gait
    clock's stand (``quadruped_obs(..., clock_stands=True)``) in the env and in ``deploy``.

    Args:
        command: ``(3,)`` ``(vx [m/s], vy [m/s], yaw rate [rad/s])``.
    """
    vx, vy, yaw = (float(c) for c in command)
    return math.hypot(vx, vy) < STANDING_LIN_VEL_M_S and abs(yaw) < STANDING_YAW_RATE_RAD_S


def gait_clock(phase: float) -> np.ndarray:
    """The ``gait_clock`` observation block: ``(2,)`` float64 ``(sin 2 pi phase, cos 2 pi
    phase)``."""
    return np.array([math.sin(2.0 * math.pi * phase), math.cos(2.0 * math.pi * phase)])


def desired_foot_contacts(phase: float, duty: float = 0.5) -> np.ndarray:
    """Which feet the trot reference has on the ground at gait phase ``phase``.

    Foot ``i`` is in stance while ``(phase + TROT_PHASE_OFFSETS[i]) mod 1 < duty``.

    Args:
        phase: Gait phase in ``[0, 1)``.
        duty: Stance share of a cycle, in ``(0, 1)`` (0.5: a trot, two feet always down).

    Returns:
        ``(4,)`` bool, legs in joint order (fr, fl, rr, rl).
    """
    return np.array([math.fmod(phase + o, 1.0) < duty for o in TROT_PHASE_OFFSETS])


def quadruped_obs_layout(n_joints: int) -> ObsLayout:
    """The ``quadruped-obs-v1`` layout for a robot of ``n_joints`` joints (the joint blocks have
    ``n_joints`` entries); :data:`QUADRUPED_OBS_LAYOUT` for 12."""
    sizes = {"joint_pos": n_joints, "joint_vel": n_joints, "prev_action": n_joints}
    return ObsLayout(QUADRUPED_OBS_LAYOUT.version, tuple(
        replace(b, size=sizes.get(b.name, b.size)) for b in QUADRUPED_OBS_LAYOUT.blocks))


def interface_from_description(description: RobotDescription) -> RobotInterface:
    """The robot interface derived from a description.

    Servo angles are ``servo.zero_rad + q`` for the joint angles ``q`` of ``joints``; the action
    bounds are the servo's range ``servo.range_rad``; the layout is :func:`quadruped_obs_layout`.
    """
    zero = description.servo.zero_rad
    js = description.joints
    return RobotInterface(
        name=description.name,
        joint_names=description.joint_names,
        action_low_rad=tuple(description.servo.range_rad[0] for _ in js),
        action_high_rad=tuple(description.servo.range_rad[1] for _ in js),
        joint_low_rad=tuple(j.range_rad[0] + zero for j in js),
        joint_high_rad=tuple(j.range_rad[1] + zero for j in js),
        default_pose_rad=tuple(j.default_rad + zero for j in js),
        obs_layout=quadruped_obs_layout(len(js)),
        control_period_s=description.control_period_s,
    )


#: The quadruped's interface, shared by ``envs.quadruped`` and ``deploy``: derived from
#: ``envs/robots/quadruped/robot.yaml``.
QUADRUPED_INTERFACE: RobotInterface = interface_from_description(QUADRUPED_DESCRIPTION)


def projected_gravity(quat_wxyz: np.ndarray) -> np.ndarray:
    """World gravity direction ``(0, 0, -1)`` expressed in the body frame.

    Args:
        quat_wxyz: ``(..., 4)`` body orientation (body -> world), need not be normalised.

    Returns:
        ``(..., 3)`` float64 unit vector, ``R^T @ (0, 0, -1)``; ``(0, 0, -1)`` when upright.
    """
    q = np.asarray(quat_wxyz, dtype=np.float64)
    if q.shape == (4,):  # fast path for one reading (the 50 Hz loop), same formula
        w, x, y, z = (q / np.sqrt(q @ q)).tolist()
        return np.array(
            [-2.0 * (x * z - w * y), -2.0 * (y * z + w * x), -(1.0 - 2.0 * (x * x + y * y))]
        )
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    # Third row of R (world z in body coords is the third row of R, i.e. R^T e_z), negated.
    gx = -2.0 * (x * z - w * y)
    gy = -2.0 * (y * z + w * x)
    gz = -(1.0 - 2.0 * (x * x + y * y))
    return np.stack([gx, gy, gz], axis=-1)


def quadruped_obs(
    quat_wxyz: np.ndarray,
    gyro_rad_s: np.ndarray,
    q_servo_rad: np.ndarray,
    dq_rad_s: np.ndarray,
    prev_action_rad: np.ndarray,
    command: np.ndarray,
    interface: RobotInterface = QUADRUPED_INTERFACE,
    phase: float | None = None,
    clock_stands: bool = False,
) -> np.ndarray:
    """Build the quadruped's policy observation from sensor readings (sim and robot alike).

    Args:
        quat_wxyz: ``(4,)`` IMU orientation quaternion, body -> world.
        gyro_rad_s: ``(3,)`` IMU angular velocity, body frame [rad/s].
        q_servo_rad: ``(12,)`` joint positions as servo angles [rad], joint order.
        dq_rad_s: ``(12,)`` joint velocities [rad/s].
        prev_action_rad: ``(12,)`` previous servo targets [rad].
        command: ``(3,)`` velocity command (vx [m/s], vy [m/s], yaw rate [rad/s]).
        interface: Robot interface (default pose and layout).
        phase: Gait phase in ``[0, 1)`` (:func:`gait_phase`); required when the layout has a
            ``gait_clock`` block (:data:`QUADRUPED_OBS_LAYOUT_CLOCK`), refused otherwise.
        clock_stands: The gait clock stands at a standing command (env kwarg
            ``gait_clock_stands``, issue 26): when ``command`` is inside the standing band
            (:func:`is_standing_command`), the ``gait_clock`` block reads ``(0, 0)``, a value no
            running clock takes (its ``(sin, cos)`` lie on the unit circle), instead of the phase.
            A standing robot then sees no clock to step to (walk-these-ways, Margolis and Agrawal,
            CoRL 2022, drives its gait from the command; here a standing command has no gait).
            The phase itself runs on (a function of the step count), so the clock resumes where
            the step count says when the command leaves the band. ``False`` (the default, and
            every policy exported before 2026-12-07): the clock always reads the phase.

    Returns:
        ``(interface.obs_layout.dim,)`` float32 observation (45 for the quadruped, 47 with the
        gait clock).

    Raises:
        ValueError: if any input has the wrong shape, or ``phase`` is missing for a layout with
            a gait clock (or given for one without).
    """
    default = np.asarray(interface.default_pose_rad, dtype=np.float64)
    values = {
        "projected_gravity": projected_gravity(quat_wxyz),
        "gyro": np.asarray(gyro_rad_s, dtype=np.float64),
        "joint_pos": np.asarray(q_servo_rad, dtype=np.float64) - default,
        "joint_vel": np.asarray(dq_rad_s, dtype=np.float64),
        "prev_action": np.asarray(prev_action_rad, dtype=np.float64) - default,
        "command": np.asarray(command, dtype=np.float64),
    }
    has_clock = has_gait_clock(interface.obs_layout)
    if has_clock != (phase is not None):
        raise ValueError(
            f"observation layout {interface.obs_layout.version!r} "
            + ("has a gait_clock block: pass the gait phase" if has_clock
               else "has no gait_clock block: a gait phase was passed for a clock-free policy")
        )
    if phase is not None:
        values["gait_clock"] = (np.zeros(2) if clock_stands and is_standing_command(command)
                                else gait_clock(phase))
    return interface.obs_layout.assemble(values)


@dataclass(frozen=True)
class ActionFilter:
    """What shapes a policy's servo targets, the same in training and at deploy (contract 8).

    One step, per joint: a first-order low-pass towards the policy action, then a slew-rate limit,
    ``y = prev + clip(alpha * (action - prev), -max_rate_rad_s * dt, +max_rate_rad_s * dt)``
    (an exponential moving average, i.e. a discrete first-order low-pass with
    ``alpha = dt / (tau + dt)``, followed by a rate limiter). ``prev`` is the target sent last
    step. With the defaults it is the identity.

    The env applies it to every action before the servos see it (``QuadrupedEnv`` keywords
    ``action_filter_alpha``, ``action_max_rate_rad_s``), and the deploy loop applies this same
    function with the settings read from the policy's ONNX metadata (its ``env_kwargs``), before
    the safety layer. A filter that keeps targets within the servo's no-load speed (4.7 rad/s for
    the STS3215) makes targets a real servo can follow, and leaves the deploy rate limit idle.

    Attributes:
        alpha: Low-pass weight of the new action, in ``(0, 1]`` (1 = no low-pass).
        max_rate_rad_s: Slew limit of each target [rad/s], ``None`` = none.
    """

    alpha: float = 1.0
    max_rate_rad_s: float | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.alpha) and 0.0 < self.alpha <= 1.0):
            raise ValueError(f"action filter alpha must be in (0, 1], got {self.alpha!r}")
        if self.max_rate_rad_s is not None and not (
            np.isfinite(self.max_rate_rad_s) and self.max_rate_rad_s > 0
        ):
            raise ValueError(
                f"action filter max_rate_rad_s must be > 0 or None, got {self.max_rate_rad_s!r}"
            )

    @property
    def is_identity(self) -> bool:
        """Whether :meth:`apply` returns the action unchanged."""
        return self.alpha == 1.0 and self.max_rate_rad_s is None

    @classmethod
    def from_env_kwargs(cls, env_kwargs: dict[str, Any] | None) -> ActionFilter:
        """The filter an env built with ``env_kwargs`` applies (the ONNX metadata's copy)."""
        kw = env_kwargs or {}
        rate = kw.get("action_max_rate_rad_s")
        return cls(float(kw.get("action_filter_alpha", 1.0)),
                   None if rate is None else float(rate))

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "max_rate_rad_s": self.max_rate_rad_s}

    def apply(
        self, action_rad: np.ndarray, prev_target_rad: np.ndarray, control_period_s: float
    ) -> np.ndarray:
        """The next target.

        Args:
            action_rad: ``(n_joints,)`` policy action [rad].
            prev_target_rad: ``(n_joints,)`` target sent last control period [rad].
            control_period_s: Control period ``dt`` [s].

        Returns:
            ``(n_joints,)`` float64 target [rad], between ``prev_target_rad`` and ``action_rad``
            per joint.
        """
        a = np.asarray(action_rad, dtype=np.float64)
        prev = np.asarray(prev_target_rad, dtype=np.float64)
        if self.is_identity:
            return a.copy()
        delta = self.alpha * (a - prev)
        if self.max_rate_rad_s is not None:
            step = self.max_rate_rad_s * control_period_s
            delta = np.clip(delta, -step, step)
        return prev + delta


#: Velocity command ranges of ``robotac/Quadruped-v0`` as plain data (deploy reads them
#: without importing the env): vx [m/s], vy [m/s], yaw rate [rad/s], from the description's
#: ``command_ranges``. The env samples from them (``envs.quadruped.DEFAULT_COMMAND_RANGES`` is
#: this table); a policy's ``command_ranges`` env kwarg is merged over them.
QUADRUPED_COMMAND_RANGES: dict[str, tuple[float, float]] = dict(
    QUADRUPED_DESCRIPTION.command_ranges)
