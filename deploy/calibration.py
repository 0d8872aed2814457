"""Hardware calibration of a servo-bus robot: one JSON file, checked when a link connects.

The file (written by ``robotac calibrate``, see ``docs/hardware.md``) holds, per joint of the
robot interface, the servo ID on the bus, the direction (+1: servo ticks grow with the joint
angle, -1: they shrink) and the zero offset (the raw position in ticks at joint angle ``q = 0``,
i.e. servo angle ``a = pi``), the calibrated joint limits (servo angles [rad]), and the IMU axis
mapping (which IMU axis, with which sign, is each body axis). Example::

    {"format": "robotac-sts-calibration-1", "robot": "quadruped", "baud": 1000000,
     "servo_model": 777, "ticks_per_turn": 4096,
     "joints": {"fr_hip_abduction": {"id": 1, "direction": -1, "zero_offset_ticks": 2071,
                                      "min_rad": 2.5416, "max_rad": 3.7416}, ...},
     "imu": {"axes": ["+y", "-x", "+z"]},
     "limits": {"max_temperature_c": 65, "min_voltage_v": 10.0, "torque_limit": 1000},
     "interface": {...}}

``interface`` is the robot interface ``robotac calibrate`` took from the robot's description
(joint order, limits, default pose; ``RobotInterface.to_dict``): the deploy host checks the
policy against it and never reads the description itself. A file without one (written before
issue 23) is the default quadruped's. ``servo_model`` and ``ticks_per_turn`` are the servo's
(the description's ``servo.model_number`` and ``servo.ticks_per_turn``; STS3215 and STS3250:
4096, so 0-4095 covers the servo angle ``[0, 2*pi]`` rad). Position mapping, ``N`` ticks per
turn::

    ticks = zero_offset_ticks + direction * (a - pi) * N / (2 pi)      (rounded)
    a     = pi + direction * (ticks - zero_offset_ticks) * 2 pi / N

A calibration whose joint range would map outside ``0..N-1`` (the servo's position wraps there)
is refused, as are files for another robot, with a missing or unknown joint, duplicate IDs, a
direction other than +-1, or an IMU mapping that is not a right-handed signed permutation.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envs.interface import QUADRUPED_INTERFACE, RobotInterface

__all__ = ["CALIBRATION_FORMAT", "TICKS_PER_TURN", "TICKS_PER_RAD", "CalibrationError",
           "JointCalibration", "Calibration", "imu_axes_matrix", "DEFAULT_CALIBRATION_PATH"]

CALIBRATION_FORMAT = "robotac-sts-calibration-1"
#: Ticks per turn of an STS3215 (12-bit magnetic encoder): a calibration file's default (the
#: file's ``ticks_per_turn``, :attr:`Calibration.ticks_per_rad`, is what the link uses).
TICKS_PER_TURN = 4096
TICKS_PER_RAD = TICKS_PER_TURN / (2.0 * math.pi)
MAX_TICK = TICKS_PER_TURN - 1
#: Model number of the STS3215 (control-table address 3).
STS3215_MODEL = 777
#: Where ``robotac calibrate`` writes and ``robotac deploy --link sts`` reads by default.
DEFAULT_CALIBRATION_PATH = Path("calibration") / "sts_quadruped.json"

_AXES = ("x", "y", "z")


class CalibrationError(ValueError):
    """The calibration file is missing, malformed, or made for another robot."""


@dataclass(frozen=True)
class JointCalibration:
    """One joint's servo.

    Attributes:
        servo_id: ID on the bus (1-252).
        direction: +1 or -1.
        zero_offset_ticks: Raw position at joint angle 0 (servo angle pi) [ticks].
        min_rad, max_rad: Calibrated limits as servo angles [rad].
    """

    servo_id: int
    direction: int
    zero_offset_ticks: float
    min_rad: float
    max_rad: float


def imu_axes_matrix(axes: list[str] | tuple[str, ...]) -> np.ndarray:
    """``(3, 3)`` matrix ``M`` with ``v_body = M @ v_imu`` from ``["+y", "-x", "+z"]``.

    Entry ``i`` names the IMU axis (with its sign) that points along body axis ``i`` (x forward,
    y left, z up).

    Raises:
        CalibrationError: unless it is a right-handed signed permutation.
    """
    if len(axes) != 3:
        raise CalibrationError(f"imu axes must name 3 axes (body x, y, z), got {axes!r}")
    m = np.zeros((3, 3))
    for i, a in enumerate(axes):
        a = str(a).strip().lower()
        if len(a) != 2 or a[0] not in "+-" or a[1] not in _AXES:
            raise CalibrationError(f"imu axis {a!r} (body {_AXES[i]}) must be like '+x' or '-z'")
        m[i, _AXES.index(a[1])] = 1.0 if a[0] == "+" else -1.0
    if not np.allclose(np.abs(m).sum(axis=0), 1.0) or round(float(np.linalg.det(m))) != 1:
        raise CalibrationError(
            f"imu axes {list(axes)} are not a right-handed permutation of the IMU axes (each "
            "IMU axis once, determinant +1)"
        )
    return m


@dataclass
class Calibration:
    """A robot's servo-bus calibration, checked against its robot interface.

    Attributes:
        joints: Per joint name, in the interface's joint order.
        imu_axes: Body axis -> IMU axis, e.g. ``("+y", "-x", "+z")``.
        baud: Bus baud rate.
        servo_model: Model number every servo must report (777 = STS3215).
        max_temperature_c: Stop above this servo temperature [C].
        min_voltage_v: Stop below this servo supply voltage [V].
        torque_limit: Torque limit written at start (0-1000, 0.1 % of the stall torque).
        robot: Name of the robot interface it was made for.
        path: The file it came from, if any.
        ticks_per_turn: Encoder ticks per turn of the servos.
        interface: The robot's interface as ``robotac calibrate`` took it from the description;
            ``None`` (files written before issue 23): the default quadruped's.
    """

    joints: dict[str, JointCalibration]
    imu_axes: tuple[str, str, str] = ("+x", "+y", "+z")
    baud: int = 1_000_000
    servo_model: int = STS3215_MODEL
    max_temperature_c: float = 65.0
    min_voltage_v: float = 10.0
    torque_limit: int = 1000
    robot: str = "quadruped"
    path: Path | None = field(default=None, compare=False)
    ticks_per_turn: int = TICKS_PER_TURN
    interface: RobotInterface | None = None

    @property
    def robot_interface(self) -> RobotInterface:
        """The robot this calibration is for: :attr:`interface`, or the default quadruped's."""
        return self.interface if self.interface is not None else QUADRUPED_INTERFACE

    @property
    def ticks_per_rad(self) -> float:
        """Encoder ticks per radian, ``ticks_per_turn / (2 pi)``."""
        return self.ticks_per_turn / (2.0 * math.pi)

    @property
    def max_tick(self) -> int:
        """The largest position, ``ticks_per_turn - 1``."""
        return self.ticks_per_turn - 1

    # ----------------------------------------------------------------- checks
    def check(self, interface: RobotInterface | None = None) -> None:
        """Refuse a calibration that does not fit ``interface`` (default: its own
        :attr:`robot_interface`).

        Raises:
            CalibrationError: another robot, a missing or unknown joint (named), duplicate IDs,
                a bad direction, limits that do not fit the servo's 0..4095 ticks or lie outside
                the interface's joint limits, or a bad IMU mapping.
        """
        interface = interface or self.robot_interface
        src = f"calibration {str(self.path)!r}" if self.path else "calibration"
        if not self.ticks_per_turn > 1:
            raise CalibrationError(f"{src}: ticks_per_turn must be > 1, got {self.ticks_per_turn}")
        if self.robot != interface.name:
            raise CalibrationError(
                f"{src} is for robot {self.robot!r}, this is {interface.name!r}: run "
                "`robotac calibrate` on this robot"
            )
        for name in self.joints:
            if name not in interface.joint_names:
                raise CalibrationError(
                    f"{src} has joint {name!r}, which robot {interface.name!r} does not have "
                    f"(its joints: {', '.join(interface.joint_names)}): a calibration for "
                    "another robot?"
                )
        for name in interface.joint_names:
            if name not in self.joints:
                raise CalibrationError(
                    f"{src} has no entry for joint {name!r}: run `robotac calibrate` again"
                )
        ids = [j.servo_id for j in self.joints.values()]
        for name, j in self.joints.items():
            if not 0 <= j.servo_id <= 252:
                raise CalibrationError(f"{src}: joint {name!r} servo id {j.servo_id} not in 0..252")
            if ids.count(j.servo_id) > 1:
                others = [n for n, k in self.joints.items() if k.servo_id == j.servo_id]
                raise CalibrationError(f"{src}: servo id {j.servo_id} is given to joints {others}")
            if j.direction not in (1, -1):
                raise CalibrationError(
                    f"{src}: joint {name!r} direction must be +1 or -1, got {j.direction}"
                )
            if not (math.isfinite(j.min_rad) and math.isfinite(j.max_rad)
                    and j.min_rad < j.max_rad):
                raise CalibrationError(
                    f"{src}: joint {name!r} limits [{j.min_rad}, {j.max_rad}] rad are empty"
                )
            ticks = sorted(self._ticks_f(j, np.array([j.min_rad, j.max_rad])))
            if ticks[0] < 0 or ticks[1] > self.max_tick:
                raise CalibrationError(
                    f"{src}: joint {name!r} range [{j.min_rad:.4f}, {j.max_rad:.4f}] rad maps to "
                    f"ticks [{ticks[0]:.0f}, {ticks[1]:.0f}], outside the servo's "
                    f"0..{self.max_tick} "
                    "(its position wraps there): re-mount the horn nearer the middle of the "
                    "servo's travel and run `robotac calibrate` again"
                )
        arr = interface.arrays()
        k = interface.joint_names
        lo = np.array([self.joints[n].min_rad for n in k])
        hi = np.array([self.joints[n].max_rad for n in k])
        bad = np.flatnonzero((lo < arr["joint_low_rad"] - 1e-6)
                             | (hi > arr["joint_high_rad"] + 1e-6))
        if bad.size:
            j = int(bad[0])
            raise CalibrationError(
                f"{src}: joint {k[j]!r} limits [{lo[j]:.4f}, {hi[j]:.4f}] rad exceed the "
                f"robot's mechanical limits [{arr['joint_low_rad'][j]:.4f}, "
                f"{arr['joint_high_rad'][j]:.4f}] rad"
            )
        imu_axes_matrix(self.imu_axes)
        if not 0 < self.torque_limit <= 1000:
            raise CalibrationError(
                f"{src}: torque_limit must be in 1..1000, got {self.torque_limit}"
            )

    # ---------------------------------------------------------------- mapping
    def ordered(self, interface: RobotInterface | None = None) -> list[JointCalibration]:
        """The joints in the interface's (default: :attr:`robot_interface`'s) joint order."""
        return [self.joints[n] for n in (interface or self.robot_interface).joint_names]

    def _ticks_f(self, j: JointCalibration, a_rad: np.ndarray) -> np.ndarray:
        return j.zero_offset_ticks + j.direction * (np.asarray(a_rad) - math.pi) * \
            self.ticks_per_rad

    def arrays(self, interface: RobotInterface | None = None) -> dict[str, np.ndarray]:
        """Per-joint arrays in joint order: ``ids`` (n,) int, ``direction`` (n,), ``zero`` (n,)
        [ticks], ``min_rad``, ``max_rad`` (n,)."""
        js = self.ordered(interface)
        return {
            "ids": np.array([j.servo_id for j in js], dtype=np.int64),
            "direction": np.array([j.direction for j in js], dtype=np.float64),
            "zero": np.array([j.zero_offset_ticks for j in js], dtype=np.float64),
            "min_rad": np.array([j.min_rad for j in js], dtype=np.float64),
            "max_rad": np.array([j.max_rad for j in js], dtype=np.float64),
        }

    # ----------------------------------------------------------------- files
    def to_dict(self, interface: RobotInterface | None = None) -> dict[str, Any]:
        interface = interface or self.robot_interface
        d = {
            "format": CALIBRATION_FORMAT,
            "robot": self.robot,
            "baud": self.baud,
            "servo_model": self.servo_model,
            "joints": {
                n: {"id": j.servo_id, "direction": j.direction,
                    "zero_offset_ticks": round(float(j.zero_offset_ticks), 2),
                    "min_rad": float(j.min_rad), "max_rad": float(j.max_rad)}
                for n, j in ((n, self.joints[n]) for n in interface.joint_names
                             if n in self.joints)
            },
            "imu": {"axes": list(self.imu_axes)},
            "limits": {"max_temperature_c": self.max_temperature_c,
                       "min_voltage_v": self.min_voltage_v, "torque_limit": self.torque_limit},
        }
        if self.ticks_per_turn != TICKS_PER_TURN:
            d["ticks_per_turn"] = self.ticks_per_turn
        if self.interface is not None:
            d["interface"] = self.interface.to_dict()
        return d

    def save(self, path: str | Path, interface: RobotInterface | None = None) -> Path:
        """Write the file atomically (temporary file, then rename); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(interface), indent=1) + "\n")
        os.replace(tmp, path)
        self.path = path
        return path

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: Path | None = None) -> Calibration:
        """Parse (not yet :meth:`check`) a calibration document.

        Raises:
            CalibrationError: wrong format tag or a missing/ill-typed field (named).
        """
        src = f"calibration {str(path)!r}" if path else "calibration"
        if d.get("format") != CALIBRATION_FORMAT:
            raise CalibrationError(
                f"{src}: format {d.get('format')!r} is not {CALIBRATION_FORMAT!r}; write it with "
                "`robotac calibrate`"
            )
        try:
            joints = {
                str(n): JointCalibration(int(j["id"]), int(j["direction"]),
                                         float(j["zero_offset_ticks"]), float(j["min_rad"]),
                                         float(j["max_rad"]))
                for n, j in d["joints"].items()
            }
            limits = d.get("limits", {})
            return cls(
                joints=joints,
                imu_axes=tuple(d.get("imu", {}).get("axes", ("+x", "+y", "+z"))),  # type: ignore[arg-type]
                baud=int(d.get("baud", 1_000_000)),
                servo_model=int(d.get("servo_model", STS3215_MODEL)),
                max_temperature_c=float(limits.get("max_temperature_c", 65.0)),
                min_voltage_v=float(limits.get("min_voltage_v", 10.0)),
                torque_limit=int(limits.get("torque_limit", 1000)),
                robot=str(d["robot"]),
                path=path,
                ticks_per_turn=int(d.get("ticks_per_turn", TICKS_PER_TURN)),
                interface=(RobotInterface.from_dict(d["interface"]) if d.get("interface")
                           else None),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CalibrationError(f"{src} is malformed ({type(exc).__name__}: {exc})") from exc

    @classmethod
    def load(cls, path: str | Path, interface: RobotInterface | None = None) -> Calibration:
        """Read and :meth:`check` a calibration file (against ``interface``, default: the
        robot interface it carries, else the default quadruped's).

        Raises:
            CalibrationError: the file is missing (saying how to make one), not JSON, or fails
                :meth:`check`.
        """
        path = Path(path)
        if not path.is_file():
            raise CalibrationError(
                f"no calibration file {str(path)!r}: the STS backend needs one (servo IDs, "
                "directions, zero offsets, IMU axes). Make it with `robotac calibrate --port "
                "/dev/ttyUSB0 --imu-port /dev/ttyUSB1 --out " + str(path) + "` (robot on a "
                "stand; docs/hardware.md), then pass --calibration " + str(path)
            )
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CalibrationError(
                f"calibration {str(path)!r} is not readable JSON: {exc}"
            ) from exc
        cal = cls.from_dict(doc, path)
        cal.check(interface)
        return cal
