"""``robotac calibrate``: the interactive procedure that writes the STS calibration file.

    robotac calibrate --port /dev/ttyUSB0 --imu-port /dev/ttyUSB1 \\
                      [--out calibration/sts_quadruped.json] [--baud 1000000] [--scan-ids 1-20]
    robotac calibrate --port /dev/ttyUSB0 --scan-only        # list the servos on the bus
    robotac calibrate --port /dev/ttyUSB0 --set-id 7         # one servo on the bus: ID 7
    robotac calibrate --virtual                              # the procedure on the emulator
    robotac calibrate --robot quadruped_xl ...               # another robot's description

The robot sits on a stand, feet off the ground. Steps (``docs/hardware.md`` has photos-to-be and
the default pose drawn):

The robot is a description (``--robot NAME|PATH``, default the default quadruped;
``docs/your_robot.md``): its joints, default pose and limits, its servo (model number, ticks per
turn) and its bus layout (``joints[*].servo_id``) come from there (:class:`BusLayout`), and the
file written carries the robot's interface, so the deploy host never reads the description.

1. **Scan** the bus: ping IDs (default 1-20, or up to the description's highest servo ID), read
   each servo's model number. The default quadruped needs 12 STS3215 (model 777).
2. **Assign** IDs to joints: the proposal is the description's ``servo_id`` of each joint when
   the bus holds exactly those IDs, else the IDs in increasing order in the robot's joint order
   (``fr_hip_abduction`` = lowest ID ... ``rl_knee`` = highest, as ``docs/hardware.md`` says to
   set them); answer ``n`` to type the ID of each joint instead.
3. **Zero offsets**: torque off; you put every joint in the default pose (the default
   quadruped: hip abduction 0, hip flexion +0.8 rad, knee -1.5 rad); the raw positions are
   recorded.
4. **Directions**, one joint at a time: the servo is powered alone, moves its raw position up by
   ``--step-rad`` (0.15 rad, 9 deg) and back; you say whether the joint moved the way its
   positive direction is described (``y``: +1, ``n``: -1). A servo that does not follow is an
   error.
5. **IMU axes**: robot level, then tilted nose down by 20-30 deg; the accelerometer gives body
   z (level) and body x (the change when tilted); body y completes the right-handed frame. The
   orientation the RVC angles give, mapped the same way, must agree with the accelerometer's
   gravity within 5 deg, level and tilted, or the calibration is refused.
6. The servos' own protection registers are written (Min/Max_Position_Limit = the calibrated
   joint range, Max_Temperature_Limit, Min_Voltage_Limit, Return_Delay_Time 0), so a servo
   refuses a goal outside the range even if the host sent one; then the file is written.

Every answer comes through ``ask(key, prompt)``, so the procedure runs scripted against the bus
emulator (``--virtual`` and the tests use :class:`deploy.sim.sts_emulator.EmulatedOperator`).
Exit status: 0 written (or scan listed), 1 refused or failed (the message says why).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.calibration import (
    DEFAULT_CALIBRATION_PATH,
    STS3215_MODEL,
    TICKS_PER_TURN,
    Calibration,
    CalibrationError,
    JointCalibration,
)
from deploy.imu import RvcImu, euler_zyx_to_matrix
from deploy.link import LinkError
from deploy.sts import _PORT_ERRORS, BAUD_INDEX, _sdk_classes, load_sdk
from envs.interface import QUADRUPED_INTERFACE, RobotInterface

__all__ = ["BusLayout", "Calibrator", "CalibrateError", "main", "build_parser", "POSITIVE_MOTION"]

Ask = Callable[[str, str], str]

#: What a positive joint angle does, per part (the conventions of ``envs/interface.py``).
POSITIVE_MOTION = {
    "hip_abduction": "the foot swings toward the robot's LEFT",
    "hip_flexion": "the foot swings BACKWARD",
    "knee": "the knee STRAIGHTENS (the foot swings backward)",
}


class CalibrateError(RuntimeError):
    """The procedure cannot go on (the message says what to fix)."""


@dataclass(frozen=True)
class BusLayout:
    """What calibration needs to know of a robot: its interface, servo and bus layout template.

    Attributes:
        interface: The robot interface (joint order, limits, default pose).
        servo_ids: Joint -> the servo ID the description proposes (``joints[*].servo_id``), or
            ``None``: propose the IDs found in increasing order.
        model_number: The model number every servo must report (control-table address 3).
        ticks_per_turn: Encoder ticks per turn.
        servo_name: The servo's name, for messages.
    """

    interface: RobotInterface = QUADRUPED_INTERFACE
    servo_ids: dict[str, int] | None = None
    model_number: int = STS3215_MODEL
    ticks_per_turn: int = TICKS_PER_TURN
    servo_name: str = "STS3215"

    @classmethod
    def from_description(cls, robot: str | Path) -> BusLayout:
        """The layout of a robot description (a shipped robot's name or a folder).

        Raises:
            CalibrateError: the description does not load (the message names the field).
        """
        from envs.interface import interface_from_description
        from envs.robot_description import DescriptionError, load_description

        try:
            desc = load_description(robot)
        except DescriptionError as exc:
            raise CalibrateError(f"robot description {str(robot)!r}: {exc}") from exc
        return cls(interface_from_description(desc),
                   {j.name: j.servo_id for j in desc.joints},
                   desc.servo.model_number, desc.servo.ticks_per_turn, desc.servo.name)


def _yes(answer: str, default: bool = True) -> bool:
    a = answer.strip().lower()
    return default if not a else a in ("y", "yes")


class Calibrator:
    """The calibration procedure on an open bus (and IMU).

    Args:
        port: Servo bus device.
        imu_port: IMU device (RVC); ``None`` skips step 5 (the file keeps ``+x +y +z``).
        ask: ``ask(key, prompt) -> answer``; keys: ``assign``, ``id:<joint>``, ``default_pose``,
            ``clear:<joint>``, ``moved:<joint>``, ``level``, ``tilt``.
        say: Prints one line.
        baud: Bus baud rate.
        interface: The robot (when ``layout`` is not given).
        step_rad: Direction-check motion [rad].
        ping_timeout_s: Per ping [s].
        settle_s: Wait after each direction-check move [s].
        layout: The robot's :class:`BusLayout` (interface, proposed IDs, servo model and ticks
            per turn); default: ``interface`` with the STS3215's figures.

    Raises:
        LinkError: the SDK is missing or a port cannot be opened.
    """

    def __init__(self, port: str, imu_port: str | None, ask: Ask,
                 say: Callable[[str], None] = print, baud: int = 1_000_000,
                 interface: RobotInterface = QUADRUPED_INTERFACE, step_rad: float = 0.15,
                 ping_timeout_s: float = 0.02, settle_s: float = 0.6,
                 layout: BusLayout | None = None):
        if baud not in BAUD_INDEX:
            raise LinkError(f"baud rate {baud} is not one an STS servo supports")
        self.ask, self.say = ask, say
        self.baud = baud
        self.layout = layout or BusLayout(interface)
        self.itf = self.layout.interface
        #: Encoder ticks per radian of the robot's servo.
        self.ticks_per_rad = self.layout.ticks_per_turn / (2.0 * math.pi)
        self.step_rad = float(step_rad)
        self.ping_timeout_s = ping_timeout_s
        self.settle_s = settle_s
        self.sdk = load_sdk()
        port_cls, _ = _sdk_classes(self.sdk)
        self.ph = self.sdk.PacketHandler(0)
        self.port = port_cls(port)
        self.port_name = port
        try:
            ok = self.port.setBaudRate(baud)
        except (OSError, ValueError) as exc:
            raise LinkError(f"cannot open the servo bus port {port!r}: {exc}") from exc
        if not ok:
            raise LinkError(f"the SDK cannot set {baud} baud on {port!r}")
        self.imu = RvcImu(imu_port) if imu_port else None

    def torque_off_all(self) -> None:
        """Broadcast Torque_Enable = 0 (every servo on the bus; no reply). Never raises."""
        try:
            self.port.is_using = False  # a request cut short (Ctrl-C) leaves it set
            self.ph.write1ByteTxOnly(self.port, self.sdk.BROADCAST_ID, 40, 0)
        except Exception:  # noqa: BLE001 - a last resort on the way out must not mask the error
            pass
        finally:
            self.port.is_using = False

    def close(self) -> None:
        try:
            self.port.closePort()
        except Exception:  # noqa: BLE001 - closing must not mask the original error
            pass
        if self.imu is not None:
            self.imu.close()

    # ------------------------------------------------------------------ bus access
    def _call(self, fn: Callable, *args: object, budget_s: float = 0.05) -> tuple:
        self.port.budget_ms = budget_s * 1e3
        try:
            self.port.ser.reset_input_buffer()
            out = fn(self.port, *args)
        except _PORT_ERRORS as exc:
            raise CalibrateError(f"servo bus port {self.port_name!r} failed: {exc}") from exc
        finally:
            self.port.is_using = False
        return out if isinstance(out, tuple) else (out,)

    def _read(self, sid: int, addr: int, n: int) -> int:
        fn = self.ph.read1ByteTxRx if n == 1 else self.ph.read2ByteTxRx
        value, res, _ = self._call(fn, sid, addr)
        if res != self.sdk.COMM_SUCCESS:
            raise CalibrateError(f"servo {sid} did not answer a read of address {addr}")
        return int(value)

    def _write(self, sid: int, addr: int, value: int, n: int = 1) -> None:
        fn = self.ph.write1ByteTxRx if n == 1 else self.ph.write2ByteTxRx
        res, _ = self._call(fn, sid, addr, int(value))
        if res != self.sdk.COMM_SUCCESS:
            raise CalibrateError(f"servo {sid} did not acknowledge a write of address {addr}")

    def position(self, sid: int, n: int = 3) -> float:
        """Mean raw position over ``n`` reads [ticks]."""
        return float(np.mean([self._read(sid, 56, 2) for _ in range(n)]))

    # ------------------------------------------------------------------ steps
    def set_id(self, new_id: int, scan_ids: range) -> int:
        """Give the only servo on the bus the ID ``new_id`` (EEPROM: unlock, write, lock).

        Returns:
            The servo's old ID.

        Raises:
            CalibrateError: not exactly one servo found, or it does not answer at the new ID.
        """
        if not 1 <= new_id <= 252:
            raise CalibrateError(f"--set-id must be in 1..252, got {new_id}")
        found = self.scan(scan_ids)
        if len(found) != 1:
            raise CalibrateError(
                f"found {len(found)} servo(s) (IDs {sorted(found)}): connect exactly one servo "
                "to set its ID (new servos all have ID 1)"
            )
        old = next(iter(found))
        if old != new_id:
            self._write(old, 55, 0)
            # The reply (if any) comes from the new ID, which the SDK does not wait for.
            self._call(self.ph.write1ByteTxRx, old, 5, new_id, budget_s=0.01)
            time.sleep(0.05)
            self._write(new_id, 55, 1)
        if not self.scan(range(new_id, new_id + 1)):
            raise CalibrateError(f"the servo does not answer at its new ID {new_id}")
        return old

    def scan(self, ids: range) -> dict[int, int]:
        """Ping ``ids``; return ``{id: model}`` of the servos that answered."""
        found = {}
        for sid in ids:
            model, res, _ = self._call(self.ph.ping, sid, budget_s=self.ping_timeout_s)
            if res == self.sdk.COMM_SUCCESS:
                found[sid] = int(model)
        return found

    def assign(self, found: dict[int, int]) -> dict[str, int]:
        """Joint -> servo ID (step 2).

        Raises:
            CalibrateError: not exactly one servo per joint, or a servo of another model.
        """
        names = self.itf.joint_names
        if len(found) != len(names):
            raise CalibrateError(
                f"found {len(found)} servo(s) on {self.port_name!r} at {self.baud} baud "
                f"(IDs {sorted(found)}); the {self.itf.name} needs {len(names)}. Check cables and "
                "power; servos fresh from the factory all have ID 1: give each its own ID first "
                "(docs/hardware.md, 'Servo IDs and baud rate')"
            )
        lay = self.layout
        other = {s: m for s, m in found.items() if m != lay.model_number}
        if other:
            raise CalibrateError(f"servos {other} are not {lay.servo_name} (model "
                                 f"{lay.model_number}), the servo of robot {self.itf.name!r}")
        if lay.servo_ids is not None and sorted(lay.servo_ids.values()) == sorted(found):
            proposal = {n: lay.servo_ids[n] for n in names}  # the description's bus layout
        else:
            proposal = dict(zip(names, sorted(found), strict=True))
        table = ", ".join(f"{n}={s}" for n, s in proposal.items())
        if _yes(self.ask("assign", f"Joint -> servo ID: {table}. Use this? [Y/n] ")):
            return proposal
        out: dict[str, int] = {}
        for n in names:
            a = self.ask(f"id:{n}", f"ID of {n}? ")
            try:
                sid = int(a)
            except ValueError as exc:
                raise CalibrateError(f"{a!r} is not a servo ID") from exc
            if sid not in found or sid in out.values():
                raise CalibrateError(f"ID {sid} for {n} was not found or is already used")
            out[n] = sid
        return out

    def zero(self, ids: dict[str, int]) -> dict[str, float]:
        """Raw positions at the default pose, torque off (step 3)."""
        for sid in ids.values():
            self._write(sid, 40, 0)
        q = self.itf.arrays()["default_pose_rad"] - math.pi
        pose = ", ".join(f"{n} {q[k]:+.2f} rad ({math.degrees(q[k]):+.0f} deg)"
                         for k, n in enumerate(self.itf.joint_names[:3]))
        self.ask("default_pose", f"Torque is off. Put every leg in the default pose ({pose}; "
                                 "the same on every leg), then press Enter ")
        return {n: self.position(sid, 5) for n, sid in ids.items()}

    def direction(self, name: str, sid: int) -> int:
        """Move one joint by ``+step_rad`` in raw ticks and back; the operator says which way
        it went (step 4). Returns +1 or -1.

        Raises:
            CalibrateError: the servo did not follow (blocked, torque limit, broken).
        """
        part = name.split("_", 1)[-1]
        motion = POSITIVE_MOTION.get(part, f"the joint angle of {name} GROWS (its positive "
                                           "direction about its axis in the MJCF)")
        self.ask(f"clear:{name}", f"{name} (servo {sid}) will move about "
                                  f"{math.degrees(self.step_rad):.0f} deg and back. Clear the "
                                  "leg, press Enter ")
        start = round(self.position(sid))
        step = int(round(self.step_rad * self.ticks_per_rad))
        self._write(sid, 42, start, 2)
        self._write(sid, 40, 1)
        try:
            self._write(sid, 42, start + step, 2)
            time.sleep(self.settle_s)
            moved = self.position(sid) - start
            answer = self.ask(f"moved:{name}", f"Did {name} move so that "
                                               f"{motion}? [y/n] ")
        finally:
            try:
                self._write(sid, 42, start, 2)
                time.sleep(self.settle_s)
            finally:
                self._write(sid, 40, 0)  # torque off even when the goal write-back failed
        if moved < 0.5 * step:
            raise CalibrateError(
                f"{name} (servo {sid}) moved {moved:.0f} ticks of the {step} commanded: blocked, "
                "torque limit too low, or no servo power"
            )
        return 1 if _yes(answer, default=False) else -1

    def _accel(self, n: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """Mean accelerometer [m/s^2] and last orientation matrix over ``n`` packets."""
        assert self.imu is not None
        acc = []
        t_end = time.perf_counter() + 2.0
        while len(acc) < n and time.perf_counter() < t_end:
            if self.imu.poll():
                acc.append(self.imu.last.accel_m_s2)
            time.sleep(0.005)
        if len(acc) < n:
            raise CalibrateError(f"the IMU on {self.imu.port!r} sent {len(acc)} packets in 2 s "
                                 "(RVC sends 100/s): wiring, baud 115200, PS0 high?")
        r = self.imu.last
        r_wi = euler_zyx_to_matrix(math.radians(r.yaw_deg), math.radians(r.pitch_deg),
                                   math.radians(r.roll_deg))
        return np.mean(acc, axis=0), r_wi

    def imu_axes(self) -> tuple[str, str, str]:
        """Body axes in IMU axes from a level and a nose-down reading (step 5).

        Raises:
            CalibrateError: not level enough, not tilted enough, or the RVC orientation
                disagrees with the accelerometer (another Euler convention or mode).
        """
        self.ask("level", "Put the robot level (stand on a flat table), press Enter ")
        a_level, r_level = self._accel()
        g = float(np.linalg.norm(a_level))
        iz = int(np.argmax(np.abs(a_level)))
        if not 8.8 < g < 10.8 or abs(a_level[iz]) < 0.9 * g:
            raise CalibrateError(f"level reading {np.round(a_level, 2).tolist()} m/s^2 is not "
                                 "about 9.8 m/s^2 along one IMU axis: level the robot")
        self.ask("tilt", "Tilt the robot NOSE DOWN by 20-30 deg and hold it, press Enter ")
        a_tilt, r_tilt = self._accel()
        d = a_tilt - a_level
        d[iz] = 0.0
        ix = int(np.argmax(np.abs(d)))
        if abs(d[ix]) < 9.8 * math.sin(math.radians(10)):
            raise CalibrateError(f"the tilt changed the accelerometer by only {abs(d[ix]):.2f} "
                                 "m/s^2: tilt nose down by 20-30 deg")
        m = np.zeros((3, 3))
        m[2, iz] = np.sign(a_level[iz])           # specific force points up at rest
        m[0, ix] = -np.sign(d[ix])                # nose down: the body x axis sees -g sin(tilt)
        m[1] = np.cross(m[2], m[0])
        names = []
        for row in m:
            j = int(np.argmax(np.abs(row)))
            names.append(("+" if row[j] > 0 else "-") + "xyz"[j])
        for what, a, r_wi in (("level", a_level, r_level), ("tilted", a_tilt, r_tilt)):
            g_acc = m @ a / np.linalg.norm(a)                  # 'up' in the body frame
            g_rvc = (r_wi @ m.T).T @ np.array([0.0, 0.0, 1.0])  # world up in the body frame
            err = math.degrees(math.acos(float(np.clip(g_acc @ g_rvc, -1, 1))))
            if err > 5.0:
                raise CalibrateError(
                    f"{what}: the IMU's orientation and its accelerometer disagree by {err:.1f} "
                    "deg about where 'up' is: is the sensor in UART-RVC mode with the Euler "
                    "convention deploy/imu.py assumes?"
                )
        return tuple(names)  # type: ignore[return-value]

    def protect(self, cal: Calibration) -> None:
        """Write the servos' own limits (step 6): position range, temperature, voltage."""
        arr = cal.arrays(self.itf)
        for k, sid in enumerate(arr["ids"].tolist()):
            t = sorted(arr["zero"][k] + arr["direction"][k] * (np.array(
                [arr["min_rad"][k], arr["max_rad"][k]]) - math.pi) * self.ticks_per_rad)
            self._write(sid, 55, 0)
            self._write(sid, 7, 0)
            self._write(sid, 9, int(math.ceil(t[0])), 2)
            self._write(sid, 11, int(math.floor(t[1])), 2)
            self._write(sid, 13, int(round(cal.max_temperature_c)))
            self._write(sid, 15, int(round(cal.min_voltage_v * 10)))
            self._write(sid, 55, 1)

    def run(self, scan_ids: range) -> Calibration:
        """Steps 1-6; returns the checked calibration (not yet saved).

        Raises:
            CalibrateError: at the first step that cannot be completed.
        """
        found = self.scan(scan_ids)
        self.say(f"found {len(found)} servo(s): " + ", ".join(
            f"ID {s} (model {m})" for s, m in sorted(found.items())))
        ids = self.assign(found)
        raw = self.zero(ids)
        direction = {n: self.direction(n, sid) for n, sid in ids.items()}
        arr = self.itf.arrays()
        joints = {}
        for k, n in enumerate(self.itf.joint_names):
            zero = raw[n] - direction[n] * (arr["default_pose_rad"][k] - math.pi) * \
                self.ticks_per_rad
            joints[n] = JointCalibration(ids[n], direction[n], round(zero, 1),
                                         float(arr["joint_low_rad"][k]),
                                         float(arr["joint_high_rad"][k]))
        axes = self.imu_axes() if self.imu is not None else ("+x", "+y", "+z")
        cal = Calibration(joints=joints, imu_axes=axes, baud=self.baud, robot=self.itf.name,
                          servo_model=self.layout.model_number,
                          ticks_per_turn=self.layout.ticks_per_turn,
                          interface=None if self.itf == QUADRUPED_INTERFACE else self.itf)
        try:
            cal.check(self.itf)
        except CalibrationError as exc:
            raise CalibrateError(str(exc)) from exc
        self.protect(cal)
        return cal


def _range(text: str) -> range:
    a, _, b = text.partition("-")
    try:
        lo, hi = int(a), int(b or a)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--scan-ids must be like 1-20, got {text!r}") from exc
    if not 0 <= lo <= hi <= 252:
        raise argparse.ArgumentTypeError(f"--scan-ids must lie in 0-252, got {text!r}")
    return range(lo, hi + 1)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="robotac calibrate",
        description="Calibrate a Feetech STS servo-bus robot (IDs per joint, directions, zero "
                    "offsets, IMU axes) and write the calibration file. Robot on a stand.",
    )
    ap.add_argument("--port", default=None, help="servo bus device, e.g. /dev/ttyUSB0")
    ap.add_argument("--imu-port", default=None, help="BNO08x RVC device, e.g. /dev/ttyUSB1")
    ap.add_argument("--baud", type=int, default=1_000_000, help="bus baud rate")
    ap.add_argument("--out", type=Path, default=DEFAULT_CALIBRATION_PATH,
                    help=f"calibration file to write (default {DEFAULT_CALIBRATION_PATH})")
    ap.add_argument("--robot", default=None,
                    help="the robot: a shipped description's name or a description folder "
                         "(docs/your_robot.md); default: the default quadruped")
    ap.add_argument("--scan-ids", type=_range, default=None,
                    help="IDs to scan, e.g. 1-20 (default: 1-20, or 1 to the description's "
                         "highest servo ID)")
    ap.add_argument("--scan-only", action="store_true", help="list the servos found and exit")
    ap.add_argument("--set-id", type=int, default=None,
                    help="give the only servo on the bus this ID (servo set-up) and exit")
    ap.add_argument("--step-rad", type=float, default=0.15,
                    help="direction-check motion [rad] (default 0.15)")
    ap.add_argument("--ping-timeout-s", type=float, default=0.02,
                    help="reply timeout of each ping of the scan [s] (default 0.02)")
    ap.add_argument("--settle-s", type=float, default=0.6,
                    help="wait after each direction-check move [s] (default 0.6)")
    ap.add_argument("--virtual", action="store_true",
                    help="run the procedure on the STS bus emulator (robot on an emulated "
                         "stand) with a scripted operator; needs mujoco")
    return ap


def main(argv: list[str] | None = None, ask: Ask | None = None) -> int:
    """Entry point of ``robotac calibrate``; returns the exit status."""
    args = build_parser().parse_args(argv)
    stop = None
    port, imu_port = args.port, args.imu_port
    try:
        layout = BusLayout() if args.robot is None else BusLayout.from_description(args.robot)
    except CalibrateError as exc:
        print(f"robotac calibrate: {exc}", file=sys.stderr)
        return 1
    if args.scan_ids is None:
        args.scan_ids = range(1, max(20, *(layout.servo_ids or {0: 0}).values()) + 1)
    if args.virtual:
        from deploy.sim.sts_emulator import EmulatedOperator, StsBusEmulator

        emu = StsBusEmulator(stand=True, robot=args.robot)
        port, imu_port, stop = emu.start_thread()
        operator = EmulatedOperator(emu)
        ask = ask or operator.ask
        print(f"STS bus emulator (robot on a stand) on {port}, IMU on {imu_port}")
    if port is None:
        print("robotac calibrate: give --port DEVICE (e.g. /dev/ttyUSB0) or --virtual",
              file=sys.stderr)
        return 1
    if ask is None:
        def ask(key: str, prompt: str) -> str:
            return input(prompt)
    try:
        cal_ = Calibrator(port, imu_port, ask, baud=args.baud, step_rad=args.step_rad,
                          settle_s=args.settle_s, ping_timeout_s=args.ping_timeout_s,
                          layout=layout)
    except LinkError as exc:
        print(f"robotac calibrate: {exc}", file=sys.stderr)
        return 1
    try:
        if args.set_id is not None:
            old = cal_.set_id(args.set_id, args.scan_ids)
            print(f"servo ID {old} -> {args.set_id} on {port}")
            return 0
        if args.scan_only:
            found = cal_.scan(args.scan_ids)
            for s, m in sorted(found.items()):
                mark = f" ({layout.servo_name})" if m == layout.model_number else ""
                print(f"ID {s}: model {m}{mark}")
            print(f"{len(found)} servo(s) on {port} at {args.baud} baud")
            return 0
        cal = cal_.run(args.scan_ids)
        path = cal.save(args.out)
    except CalibrateError as exc:
        print(f"robotac calibrate: {exc}", file=sys.stderr)
        return 1
    finally:
        cal_.torque_off_all()  # whatever happened (an error, Ctrl-C), leave every servo limp
        cal_.close()
        if stop is not None:
            stop.set()
    print(f"wrote {path}")
    for n, j in cal.joints.items():
        print(f"  {n:18s} ID {j.servo_id:3d}  direction {j.direction:+d}  zero "
              f"{j.zero_offset_ticks:7.1f} ticks")
    print(f"  IMU axes (body x, y, z): {' '.join(cal.imu_axes)}")
    print(f"next: robotac deploy --link sts --port {port} --imu-port {imu_port} "
          f"--calibration {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
