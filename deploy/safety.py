"""The one safety layer between the policy and the link (DESIGN.md contract 7).

Every servo target the host sends goes through :class:`SafetyLayer`:

1. NaN/inf guard: a non-finite action is never used; the last safe target is held and a fault
   is raised for the loop to stop on.
2. Clamp the policy's action to the safe bounds: the intersection of the policy's action
   bounds and the robot's joint limits (from INFO), per joint.
3. Rate limit: each joint's target moves at most ``max_step_rad`` per control step, from the
   first target on. The ramp starts at the *measured* pose, clipped only to the robot's own
   joint limits (not to the policy's bounds: a leg hanging outside them would otherwise get the
   bound as its first target, a jump at full servo speed); the policy's bounds apply from the
   run phase on, reached at the rate limit when the ramp left a joint outside them.
4. Wire guard (:meth:`SafetyLayer.guard`): a last check right before encoding; a target outside
   the robot's joint limits raises :class:`SafetyViolation` instead of reaching the wire.

:meth:`SafetyLayer.check_state` turns a STATE into a stop reason: robot status bits (e-stopped,
watchdog tripped, servo fault), a tilt beyond the limit (from the IMU orientation), or a
non-finite reading. The phases (connect and HELLO -> read pose -> ramp -> hold -> run -> passive
or ESTOP in ``finally:``) are driven by :func:`deploy.loop.run_deploy`; the ramp targets come
from :meth:`SafetyLayer.ramp_target`.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from deploy import protocol as P
from envs.interface import projected_gravity

__all__ = ["Fault", "LOWER_FAULTS", "SafetyFault", "SafetyViolation", "SafetyConfig", "SafetyLayer",
           "tilt_rad"]


class Fault(enum.Enum):
    """Why the loop stops. ``None`` everywhere else means: no fault."""

    NON_FINITE_ACTION = "policy returned a non-finite action (NaN/inf); last safe target held"
    NON_FINITE_STATE = "robot reported a non-finite reading"
    TILT = "body tilt beyond the limit"
    ROBOT_ESTOPPED = "robot reports e-stop (status bit0)"
    WATCHDOG = "robot watchdog tripped (status bit1): the host stalled or the link dropped frames"
    SERVO_FAULT = "robot reports a servo fault (status bit2)"
    NOT_ARMED = "robot refused a position COMMAND with ERROR 5 (not armed)"
    OUT_OF_RANGE = "robot refused a COMMAND with ERROR 6 (target out of range)"
    LINK_LOST = "no valid reply from the robot for too many control periods"
    LINK_ERROR = "serial port failed or vanished"
    SERVO_ALARM = "a servo reports a fault (error bits, temperature or supply voltage)"
    SERVO_SILENT = "a servo stopped answering on the bus"
    CORRUPT_REPLY = "a reply from the robot failed its checksum"
    IMU_LOST = "the IMU stopped sending (or sent only corrupt packets)"


#: Faults after which the host sends ESTOP (rather than a passive COMMAND) when stopping.
ESTOP_FAULTS = frozenset(
    {Fault.TILT, Fault.SERVO_FAULT, Fault.NON_FINITE_STATE, Fault.OUT_OF_RANGE, Fault.LINK_LOST,
     Fault.NON_FINITE_ACTION, Fault.SERVO_SILENT, Fault.CORRUPT_REPLY, Fault.IMU_LOST,
     Fault.SERVO_ALARM}
)


#: Faults that leave the bus working (one servo hot or its supply low, the IMU lost, a bad action):
#: the stop first lowers the body to its rest pose over ``SafetyConfig.lower_s``, then releases
#: torque, so the robot does not drop. Every other fault (the bus or a servo lost, the robot's own
#: e-stop or watchdog, a refused target, a fall beyond the tilt limit) releases torque at once.
LOWER_FAULTS = frozenset({Fault.SERVO_ALARM, Fault.IMU_LOST, Fault.NON_FINITE_ACTION})


class SafetyFault(RuntimeError):
    """A fault that stops the run; :attr:`fault` says which."""

    def __init__(self, fault: Fault, detail: str = ""):
        super().__init__(f"{fault.value}{': ' + detail if detail else ''}")
        self.fault = fault
        self.detail = detail


class SafetyViolation(AssertionError):
    """A target outside the limits reached the wire guard (a bug: it is never sent)."""


@dataclass(frozen=True)
class SafetyConfig:
    """Settings of the safety layer.

    Attributes:
        max_rate_rad_s: Largest target speed per joint [rad/s]; per step it is
            ``max_rate_rad_s * control_period_s`` rad.
        tilt_limit_rad: Largest angle between the body's z axis and the vertical [rad] before
            ESTOP (from the IMU quaternion).
        ramp_s: Time to move from the measured pose to the default pose [s].
        hold_s: Time to hold the default pose before the policy starts [s].
        max_consecutive_drops: Missed replies in a row before the link counts as lost.
        lower_s: Time to lower the body to its rest pose (the pose measured before the ramp:
            lying, or hanging on the stand) before torque is released, on a stop that leaves the
            bus working (the end of the run, a stop signal, :data:`LOWER_FAULTS`) [s]; 0 releases
            at once.
    """

    max_rate_rad_s: float = 15.0
    tilt_limit_rad: float = math.radians(60.0)
    ramp_s: float = 2.0
    hold_s: float = 1.0
    max_consecutive_drops: int = 5
    lower_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.max_rate_rad_s > 0:
            raise ValueError(f"max_rate_rad_s must be > 0, got {self.max_rate_rad_s}")
        if not 0 < self.tilt_limit_rad <= math.pi:
            raise ValueError(f"tilt_limit_rad must be in (0, pi], got {self.tilt_limit_rad}")
        if self.ramp_s < 0 or self.hold_s < 0:
            raise ValueError(f"ramp_s and hold_s must be >= 0, got {self.ramp_s}, {self.hold_s}")
        if self.max_consecutive_drops < 1:
            raise ValueError("max_consecutive_drops must be >= 1")
        if not 0 <= self.lower_s <= 10:
            raise ValueError(f"lower_s must be in [0, 10] s, got {self.lower_s}")


def tilt_rad(quat_wxyz: np.ndarray) -> float:
    """Angle between the body's z axis and the world vertical [rad], from a ``(4,)`` quaternion."""
    g = projected_gravity(np.asarray(quat_wxyz, dtype=np.float64))
    return float(np.arccos(np.clip(-g[2], -1.0, 1.0)))


class SafetyLayer:
    """Clamp, rate-limit and guard servo targets; judge robot states.

    Args:
        low, high: ``(n_joints,)`` safe bounds [rad]: the intersection of the policy's action
            bounds and the robot's limits (``OnnxPolicy.safe_bounds``); policy actions are
            clamped to them.
        default_pose_rad: ``(n_joints,)`` pose of the ramp and hold phases [rad].
        control_period_s: Control period [s] (sets the per-step rate limit).
        config: :class:`SafetyConfig`.
        limit_low, limit_high: ``(n_joints,)`` the robot's own joint limits [rad] (INFO,
            rounded inward to float32), which must contain ``[low, high]``: the box of the ramp
            (which starts at the measured pose) and of the wire guard. Default: ``low, high``.

    Raises:
        ValueError: on shape mismatches, empty bounds, safe bounds outside the joint limits,
            or a default pose outside the safe bounds.
    """

    def __init__(
        self,
        low: np.ndarray,
        high: np.ndarray,
        default_pose_rad: np.ndarray,
        control_period_s: float,
        config: SafetyConfig | None = None,
        limit_low: np.ndarray | None = None,
        limit_high: np.ndarray | None = None,
    ):
        self.low = np.asarray(low, dtype=np.float64).copy()
        self.high = np.asarray(high, dtype=np.float64).copy()
        self.limit_low = (self.low if limit_low is None
                          else np.asarray(limit_low, dtype=np.float64)).copy()
        self.limit_high = (self.high if limit_high is None
                           else np.asarray(limit_high, dtype=np.float64)).copy()
        self.default_pose_rad = np.asarray(default_pose_rad, dtype=np.float64).copy()
        self.config = config or SafetyConfig()
        if not (self.low.shape == self.high.shape == self.default_pose_rad.shape):
            raise ValueError(
                f"shapes differ: low {self.low.shape}, high {self.high.shape}, "
                f"default pose {self.default_pose_rad.shape}"
            )
        if not (np.isfinite(self.low).all() and np.isfinite(self.high).all()):
            raise ValueError("safe bounds must be finite")
        if not (self.low <= self.high).all():
            raise ValueError(f"empty safe bounds at joints {np.flatnonzero(self.low > self.high)}")
        if self.limit_low.shape != self.low.shape or self.limit_high.shape != self.low.shape:
            raise ValueError(f"joint limits have shapes {self.limit_low.shape}, "
                             f"{self.limit_high.shape}; expected {self.low.shape}")
        outside = (self.low < self.limit_low) | (self.high > self.limit_high)
        if outside.any():
            raise ValueError(f"safe bounds exceed the robot's joint limits at joints "
                             f"{np.flatnonzero(outside).tolist()}: intersect them first "
                             "(OnnxPolicy.safe_bounds)")
        if not ((self.default_pose_rad >= self.low) & (self.default_pose_rad <= self.high)).all():
            raise ValueError(
                f"default pose {np.round(self.default_pose_rad, 4).tolist()} lies outside the "
                f"safe bounds [{np.round(self.low, 4).tolist()}, {np.round(self.high, 4).tolist()}]"
            )
        if not control_period_s > 0:
            raise ValueError(f"control_period_s must be > 0, got {control_period_s}")
        self.control_period_s = float(control_period_s)
        self.max_step_rad = self.config.max_rate_rad_s * self.control_period_s
        self.n_clamped = 0
        self.n_rate_limited = 0
        self.n_non_finite = 0

    @property
    def n_joints(self) -> int:
        return int(self.low.size)

    def clamp(self, target_rad: np.ndarray) -> np.ndarray:
        """Clip a finite ``(n_joints,)`` target into the safe bounds ``[low, high]`` (float64)."""
        return np.clip(np.asarray(target_rad, dtype=np.float64), self.low, self.high)

    def clamp_to_limits(self, target_rad: np.ndarray) -> np.ndarray:
        """Clip a finite ``(n_joints,)`` target into the robot's joint limits (float64 copy)."""
        return np.clip(np.asarray(target_rad, dtype=np.float64), self.limit_low,
                       self.limit_high)

    def filter(self, action_rad: np.ndarray, last_target_rad: np.ndarray) -> np.ndarray:
        """Turn a policy action into the next safe target.

        Args:
            action_rad: ``(n_joints,)`` action from the policy [rad], any float dtype.
            last_target_rad: ``(n_joints,)`` the target sent last step (already safe) [rad].

        Returns:
            ``(n_joints,)`` float64 target inside ``[low, high]`` and within ``max_step_rad`` of
            ``last_target_rad`` per joint.

        Raises:
            SafetyFault: ``Fault.NON_FINITE_ACTION`` if any entry is NaN or inf (the caller
                keeps ``last_target_rad``).
            ValueError: on a wrong shape.
        """
        a = np.asarray(action_rad, dtype=np.float64)
        if a.shape != self.low.shape:
            raise ValueError(f"action has shape {a.shape}, expected {self.low.shape}")
        if not np.isfinite(a).all():
            self.n_non_finite += 1
            raise SafetyFault(
                Fault.NON_FINITE_ACTION, f"joints {np.flatnonzero(~np.isfinite(a)).tolist()}"
            )
        clamped = self.clamp(a)
        self.n_clamped += int(np.any(clamped != a))
        return self.rate_limit(clamped, last_target_rad)

    def rate_limit(self, target_rad: np.ndarray, last_target_rad: np.ndarray) -> np.ndarray:
        """Move at most ``max_step_rad`` per joint from ``last_target_rad`` toward ``target_rad``.

        Both inputs must lie in the joint limits; so does the result (a convex combination). The
        last target is never moved into ``[low, high]`` first: that would be a jump of any size.
        A target in ``[low, high]`` from a last target outside them is reached at the rate limit.
        """
        last = self.clamp_to_limits(last_target_rad)
        step = np.clip(np.asarray(target_rad, dtype=np.float64) - last, -self.max_step_rad,
                       self.max_step_rad)
        out = last + step
        self.n_rate_limited += int(np.any(out != target_rad))
        return self.clamp_to_limits(out)

    def ramp_target(self, start_rad: np.ndarray, t_s: float) -> np.ndarray:
        """Target of the ramp phase at time ``t_s`` after its start.

        Linear interpolation from ``start_rad`` (the measured pose, clipped only to the robot's
        joint limits) to the default pose over ``config.ramp_s``; the default pose afterwards.
        The loop rate-limits it from the measured pose, so no step exceeds ``max_step_rad``.
        """
        start = self.clamp_to_limits(start_rad)
        ramp_s = self.config.ramp_s
        frac = 1.0 if ramp_s <= 0 else min(max(t_s / ramp_s, 0.0), 1.0)
        return self.clamp_to_limits(start + frac * (self.default_pose_rad - start))

    def guard(self, target_rad: np.ndarray) -> np.ndarray:
        """Last check before a target is encoded: return it as float32 or refuse it.

        Raises:
            SafetyViolation: if the shape is not ``(n_joints,)``, or any entry is non-finite or
                outside the joint limits after the float32 conversion of the wire.
        """
        t32 = np.asarray(target_rad, dtype=np.float32)
        if t32.shape != self.low.shape:
            raise SafetyViolation(
                f"target has shape {t32.shape}, the robot has {self.n_joints} joints; it was not "
                "sent"
            )
        t64 = t32.astype(np.float64)
        ok = np.isfinite(t64) & (t64 >= self.limit_low) & (t64 <= self.limit_high)
        if not ok.all():
            raise SafetyViolation(
                f"target {np.round(t64, 4).tolist()} violates the joint limits at joints "
                f"{np.flatnonzero(~ok).tolist()}; it was not sent"
            )
        return t32

    def check_state(self, state: P.State) -> None:
        """Judge one STATE from the robot.

        Raises:
            SafetyFault: ``SERVO_FAULT``, ``ROBOT_ESTOPPED`` or ``WATCHDOG`` from the status bits;
                ``NON_FINITE_STATE`` for a NaN/inf reading; ``TILT`` when the body tilts beyond
                ``config.tilt_limit_rad``.
        """
        if state.has(P.Status.SERVO_FAULT):
            raise SafetyFault(Fault.SERVO_FAULT, f"status 0x{state.status:02X}")
        if state.has(P.Status.ESTOPPED):
            raise SafetyFault(Fault.ROBOT_ESTOPPED, f"status 0x{state.status:02X}")
        if state.has(P.Status.WATCHDOG_TRIPPED):
            raise SafetyFault(Fault.WATCHDOG, f"status 0x{state.status:02X}")
        arrays = (state.q_rad, state.dq_rad_s, state.quat_wxyz, state.gyro_rad_s)
        if not all(np.isfinite(a).all() for a in arrays) or not np.any(state.quat_wxyz):
            raise SafetyFault(Fault.NON_FINITE_STATE)
        tilt = tilt_rad(state.quat_wxyz)
        if tilt > self.config.tilt_limit_rad:
            raise SafetyFault(
                Fault.TILT,
                f"{math.degrees(tilt):.1f} deg > "
                f"{math.degrees(self.config.tilt_limit_rad):.1f} deg",
            )
