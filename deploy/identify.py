"""``robotac identify``, the bus side: excite each joint of a robot on its stand, record the answer.

The robot hangs on its stand (legs free). For each joint in turn, the other joints holding their
default pose, the host writes goals at the highest rate the bus sustains and reads the excited
servo back after every write (one READ of Present_Position, Present_Speed, Present_Load,
Present_Voltage, Present_Temperature, addresses 56-63). The excitation (:func:`excitation`):

1. ``settle``: hold the default pose;
2. ``step``: position steps of several sizes (default 0.05, 0.15, 0.3 rad), each up and down
   from the default, both directions;
3. ``chirp``: a linear chirp from 0.5 Hz to about 10 Hz about the default, its amplitude capped
   so its peak speed stays within the speed fraction;
4. ``hold``: holds against the leg's own weight at several angles across the joint's range,
   visited upwards then downwards (approached from both sides: friction shows as the gap).

Safety (DESIGN.md contract 7, as ``robotac deploy``): every goal lies inside the calibrated
limits less a margin and passes :meth:`deploy.sts.StsBusLink.write_goals`'s guard; goals move at
most ``speed_fraction`` of the servo's no-load speed (a slew limit; a "step" is a ramp at that
speed); the temperature and voltage of the excited servo are read every sample and every servo's
between joints, and the run stops above ``max_temperature_c - temperature_margin_c`` or below the
calibration's voltage limit, on a servo error bit, on :data:`MAX_MISSES_IN_ROW` missed reads in a
row, on Ctrl-C, SIGHUP or SIGTERM (:class:`deploy.loop.StopSignals`: a signal only requests the
stop, checked every sample); every exit path, an exception included, ends with the torque off
(:meth:`~deploy.sts.StsBusLink.estop`, confirmed by reading Torque_Enable back).

The recording (:class:`Recording`, one ``.npz``) goes to the fit, :mod:`robotac.identify`, which
replays the goals in MuJoCo. This module is numpy-only (the robot's computer can record; the
fit needs the ``train`` extra): ``python -m deploy.identify --port /dev/ttyUSB0 --out rec.npz``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploy.calibration import Calibration
from deploy.link import LinkError
from deploy.loop import StopRequested, StopSignals
from deploy.robot_link import LinkFault
from deploy.sts import LOAD_SIGN_BIT, SPEED_SIGN_BIT, StsBusLink, describe_error, sign_magnitude
from envs.interface import QUADRUPED_INTERFACE, RobotInterface

__all__ = ["ExcitationConfig", "Recording", "JointRecording", "IdentifyError", "excitation",
           "run_identification", "SteppedClock", "WallClock", "probe_period_s", "PHASES",
           "add_excitation_args", "excitation_config", "record_on_port",
           "MAX_MISSES_IN_ROW", "main"]

#: Phase codes of a sample (``JointRecording.phase``).
PHASES = ("settle", "step", "chirp", "hold")
SETTLE, STEP, CHIRP, HOLD = range(4)
#: Missed reads in a row that stop the run (a servo that stopped answering).
MAX_MISSES_IN_ROW = 5


class IdentifyError(RuntimeError):
    """The identification stopped (a fault, a signal, a refused start); the torque is off.

    Attributes:
        recording: What was recorded before the stop (joints completed), or ``None``.
    """

    def __init__(self, message: str, recording: Recording | None = None) -> None:
        super().__init__(message)
        self.recording = recording


@dataclass(frozen=True)
class ExcitationConfig:
    """What each joint is put through (see the module docstring). Times in seconds.

    Attributes:
        step_sizes_rad: Step sizes [rad], each up and down from the default, both directions.
        step_hold_s: Hold after each step [s].
        chirp_f0_hz, chirp_f1_hz, chirp_duration_s: Linear chirp from f0 to f1 over the duration.
        chirp_amplitude_rad: Chirp amplitude [rad] (capped by the speed fraction at high f).
        hold_angles: Number of hold angles across the joint's range (visited up then down).
        hold_span: Share of the joint's range (about its default) the holds span, in (0, 1].
        hold_s: Duration of each hold [s].
        settle_s: Hold at the default before the excitation [s].
        speed_fraction: Goals move at most this share of the servo's no-load speed.
        no_load_speed_rad_s: The servo's no-load speed [rad/s] (the description's).
        limit_margin_rad: Goals stay this far inside the calibrated limits [rad].
        steps, chirp, holds: Include the part (a fit without one is refused for the
            parameters that need it; tests drop one on purpose).
        time_scale: Scales every duration (short excitations for tests, e.g. 0.3).
    """

    step_sizes_rad: tuple[float, ...] = (0.05, 0.15, 0.3)
    step_hold_s: float = 0.4
    chirp_f0_hz: float = 0.5
    chirp_f1_hz: float = 10.0
    chirp_duration_s: float = 6.0
    chirp_amplitude_rad: float = 0.15
    hold_angles: int = 4
    hold_span: float = 0.6
    hold_s: float = 0.8
    settle_s: float = 0.5
    speed_fraction: float = 0.8
    no_load_speed_rad_s: float = 4.7
    limit_margin_rad: float = 0.1
    steps: bool = True
    chirp: bool = True
    holds: bool = True
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.speed_fraction <= 1:
            raise ValueError(f"speed_fraction must be in (0, 1], got {self.speed_fraction}")
        if not 0 < self.hold_span <= 1:
            raise ValueError(f"hold_span must be in (0, 1], got {self.hold_span}")
        if not self.time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {self.time_scale}")
        if not (self.steps or self.chirp or self.holds):
            raise ValueError("an excitation needs at least one of steps, chirp, holds")


def excitation(center_rad: float, low_rad: float, high_rad: float, period_s: float,
               cfg: ExcitationConfig) -> tuple[np.ndarray, np.ndarray]:
    """The goal sequence of one joint, one goal a sample period.

    Args:
        center_rad: The joint's default (servo angle [rad]); the excitation starts and ends there.
        low_rad, high_rad: Calibrated limits (servo angles [rad]).
        period_s: Sample period [s].
        cfg: :class:`ExcitationConfig`.

    Returns:
        ``(goal_rad, phase)``: ``(n,)`` float64 servo angles, inside ``[low + margin,
        high - margin]`` and slew-limited to ``speed_fraction * no_load_speed_rad_s``; ``(n,)``
        int8 phase codes (:data:`PHASES`).

    Raises:
        ValueError: limits narrower than twice the margin, or a non-positive period.
    """
    if not period_s > 0:
        raise ValueError(f"period_s must be > 0, got {period_s}")
    lo, hi = low_rad + cfg.limit_margin_rad, high_rad - cfg.limit_margin_rad
    if not lo < hi:
        raise ValueError(f"limits [{low_rad}, {high_rad}] leave no room inside the margin "
                         f"{cfg.limit_margin_rad} rad")
    c = min(max(center_rad, lo), hi)
    s = cfg.time_scale
    v_max = cfg.speed_fraction * cfg.no_load_speed_rad_s
    raw: list[np.ndarray] = []
    phase: list[np.ndarray] = []

    def hold(value: float, duration_s: float, code: int) -> None:
        n = max(1, int(round(duration_s * s / period_s)))
        raw.append(np.full(n, value))
        phase.append(np.full(n, code, dtype=np.int8))

    hold(c, cfg.settle_s, SETTLE)
    if cfg.steps:
        for size in cfg.step_sizes_rad:
            for sign in (1.0, -1.0):
                hold(min(max(c + sign * size, lo), hi), cfg.step_hold_s, STEP)
                hold(c, cfg.step_hold_s, STEP)
    if cfg.chirp:
        t = np.arange(int(round(cfg.chirp_duration_s * s / period_s))) * period_s
        dur = cfg.chirp_duration_s * s
        f = cfg.chirp_f0_hz + (cfg.chirp_f1_hz - cfg.chirp_f0_hz) * t / dur
        ph = 2 * np.pi * (cfg.chirp_f0_hz * t + (cfg.chirp_f1_hz - cfg.chirp_f0_hz) * t**2
                          / (2 * dur))
        amp = np.minimum(cfg.chirp_amplitude_rad, v_max / (2 * np.pi * f))
        amp = np.minimum(amp, min(c - lo, hi - c))
        raw.append(c + amp * np.sin(ph))
        phase.append(np.full(len(t), CHIRP, dtype=np.int8))
        hold(c, cfg.step_hold_s, CHIRP)
    if cfg.holds and cfg.hold_angles > 0:
        half = 0.5 * cfg.hold_span * (hi - lo)
        mid = 0.5 * (lo + hi)
        angles = np.linspace(mid - half, mid + half, cfg.hold_angles)
        for a in list(angles) + list(angles[-2::-1]):  # up, then down: both approaches
            hold(float(a), cfg.hold_s, HOLD)
        hold(c, cfg.step_hold_s, HOLD)
    goal = np.concatenate(raw)
    code = np.concatenate(phase)
    # Slew limit (a step is a ramp at the speed fraction), then the limits.
    dmax = v_max * period_s
    out = np.empty_like(goal)
    prev = c
    for i, g in enumerate(goal):
        prev = prev + min(max(g - prev, -dmax), dmax)
        out[i] = prev
    return np.clip(out, lo, hi), code


@dataclass
class JointRecording:
    """One joint's excitation and the servo's answer, one entry a sample.

    Attributes:
        name: Joint name; ``index``: its index in joint order; ``servo_id``: its servo.
        t_goal_s: ``(n,)`` time the goals were written [s] from the joint's first sample.
        goal_rad: ``(n, n_joints)`` goals written (servo angles [rad]); the others hold.
        t_read_s: ``(n,)`` time the reading refers to [s], same origin.
        present_rad: ``(n,)`` Present_Position as a servo angle [rad] (NaN: read missed).
        speed_rad_s: ``(n,)`` Present_Speed [rad/s].
        load: ``(n,)`` Present_Load as a share of the torque limit, signed like the angle.
        voltage_v: ``(n,)`` Present_Voltage [V]; ``temperature_c``: ``(n,)`` [C].
        phase: ``(n,)`` int8 phase codes (:data:`PHASES`).
        start_rad: ``(n_joints,)`` servo angles of every joint at the joint's first sample.
    """

    name: str
    index: int
    servo_id: int
    t_goal_s: np.ndarray
    goal_rad: np.ndarray
    t_read_s: np.ndarray
    present_rad: np.ndarray
    speed_rad_s: np.ndarray
    load: np.ndarray
    voltage_v: np.ndarray
    temperature_c: np.ndarray
    phase: np.ndarray
    start_rad: np.ndarray

    _ARRAYS = ("t_goal_s", "goal_rad", "t_read_s", "present_rad", "speed_rad_s", "load",
               "voltage_v", "temperature_c", "phase", "start_rad")


@dataclass
class Recording:
    """An identification recording: every joint excited, and how.

    Attributes:
        joints: The :class:`JointRecording` of each joint excited, in order.
        joint_names: All joints of the robot, in joint order.
        period_s: Sample period [s] asked for; ``rate_hz``: samples per second achieved (the
            bus's rate; for the stepped emulator, per second of simulated time).
        wall_rate_hz: Samples per wall-clock second (the same on a real bus).
        source: ``"port /dev/ttyUSB0"`` or ``"virtual (servo truth ...)"``.
        date: ISO date-time (UTC) of the recording.
        robot: Robot name.
        excitation: The :class:`ExcitationConfig` as a dict.
        wall_time_s: Wall time of the whole recording [s].
        notes: What happened (stops, misses).
    """

    joints: list[JointRecording]
    joint_names: tuple[str, ...]
    period_s: float
    rate_hz: float
    wall_rate_hz: float
    source: str
    date: str
    robot: str
    excitation: dict[str, Any]
    wall_time_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def servo_ids(self) -> list[int]:
        return [j.servo_id for j in self.joints]

    @property
    def voltage_v(self) -> float:
        """Median supply voltage over the recording [V] (NaN if none read)."""
        v = np.concatenate([j.voltage_v for j in self.joints]) if self.joints else np.array([])
        v = v[np.isfinite(v)]
        return float(np.median(v)) if v.size else float("nan")

    def save(self, path: str | Path) -> Path:
        """Write one ``.npz`` (arrays per joint, metadata as JSON); atomic (temp + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        meta = {k: v for k, v in asdict(self).items() if k != "joints"}
        meta["joints"] = [{"name": j.name, "index": j.index, "servo_id": j.servo_id}
                          for j in self.joints]
        for j in self.joints:
            for a in JointRecording._ARRAYS:
                arrays[f"{j.name}/{a}"] = np.asarray(getattr(j, a))
        arrays["meta"] = np.array(json.dumps(meta))
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recording:
        """Read a recording written by :meth:`save`.

        Raises:
            ValueError: not a recording (no metadata, or a joint's arrays missing).
        """
        with np.load(Path(path), allow_pickle=False) as z:
            if "meta" not in z:
                raise ValueError(f"{path} is not an identification recording (no 'meta')")
            meta = json.loads(str(z["meta"]))
            joints = []
            for jm in meta.pop("joints"):
                try:
                    arrs = {a: z[f"{jm['name']}/{a}"] for a in JointRecording._ARRAYS}
                except KeyError as exc:
                    raise ValueError(f"{path}: joint {jm['name']!r} lacks {exc}") from exc
                joints.append(JointRecording(name=jm["name"], index=jm["index"],
                                             servo_id=jm["servo_id"], **arrs))
        meta["joint_names"] = tuple(meta["joint_names"])
        return cls(joints=joints, **meta)


class SteppedClock:
    """Sample times for the stepped emulator: sample ``i`` at ``i * period_s`` of simulated
    time, no waiting (each goal sync write advances the physics by one period)."""

    stepped = True

    def __init__(self, period_s: float) -> None:
        self.period_s = float(period_s)

    def start(self) -> None:
        pass

    def wait(self, i: int) -> float:
        return i * self.period_s

    def read_time(self, i: int) -> float:
        return (i + 1) * self.period_s


class WallClock:
    """Sample times on a real bus: sample ``i`` is due at ``t0 + i * period_s`` (scheduled
    against the deadline, not ``sleep(period)`` after the work); times are measured.

    Args:
        period_s: Sample period [s]; ``None``: :func:`run_identification` probes the shortest
            the bus sustains (:func:`probe_period_s`) once the robot holds its pose, and ramps
            to that pose at :attr:`ramp_period_s`.
    """

    stepped = False
    ramp_period_s = 0.01

    def __init__(self, period_s: float | None = None) -> None:
        self.period_s = float(period_s) if period_s is not None else self.ramp_period_s
        self.probe = period_s is None
        self.t0 = time.perf_counter()

    def start(self) -> None:
        self.t0 = time.perf_counter()

    def wait(self, i: int) -> float:
        due = self.t0 + i * self.period_s
        while True:
            left = due - time.perf_counter()
            if left <= 0:
                break
            if left > 0.002:
                time.sleep(left - 0.001)
        return time.perf_counter() - self.t0

    def read_time(self, i: int) -> float:
        return time.perf_counter() - self.t0


def probe_period_s(link: StsBusLink, sid: int, hold_rad: np.ndarray, n: int = 40,
                   timeout_s: float = 0.01) -> float:
    """The shortest sample period the bus sustains: a goal write and one servo read, ``n``
    times; the 90th percentile of the cycle time plus 15 %, rounded up to 0.5 ms.

    Raises:
        IdentifyError: most reads failed.
    """
    times = []
    for _ in range(n):
        t = time.perf_counter()
        link.write_goals(hold_rad)
        got = link.read_servo(sid, 56, 8, timeout_s)
        if got is not None:
            times.append(time.perf_counter() - t)
    if len(times) < n // 2:
        raise IdentifyError(f"servo {sid} answered {len(times)} of {n} reads while probing the "
                            "bus rate: check its cable")
    p90 = float(np.percentile(times, 90)) * 1.15
    return math.ceil(p90 / 5e-4) * 5e-4


def _decode(data: list[int], direction: float, zero: float,
            ticks_per_rad: float) -> tuple[float, ...]:
    """``(servo angle rad, speed rad/s, load share, voltage V, temperature C)`` of 56-63
    (``ticks_per_rad``: the calibration's, :attr:`deploy.calibration.Calibration.ticks_per_rad`)."""
    ticks = data[0] | data[1] << 8
    speed = sign_magnitude(data[2] | data[3] << 8, SPEED_SIGN_BIT)
    load = sign_magnitude(data[4] | data[5] << 8, LOAD_SIGN_BIT)
    return (math.pi + direction * (ticks - zero) / ticks_per_rad,
            direction * speed / ticks_per_rad, direction * load / 1000.0, data[6] * 0.1,
            float(data[7]))


def run_identification(
    link: StsBusLink,
    cal: Calibration,
    cfg: ExcitationConfig,
    clock: SteppedClock | WallClock,
    *,
    joints: list[str] | None = None,
    interface: RobotInterface = QUADRUPED_INTERFACE,
    signals: StopSignals | None = None,
    temperature_margin_c: float = 5.0,
    read_timeout_s: float = 0.01,
    source: str = "",
    progress: Callable[[str], None] | None = None,
) -> Recording:
    """Excite and record each joint in turn (robot on its stand); torque off at the end.

    Args:
        link: A :class:`StsBusLink` (not yet connected: :meth:`~StsBusLink.connect` runs here,
            with every check of ``robotac deploy`` before the torque goes on).
        cal: The calibration (IDs, directions, offsets, limits, temperature and voltage limits).
        cfg: The excitation.
        clock: :class:`WallClock` (a real bus) or :class:`SteppedClock` (stepped emulator).
        joints: Joint names to excite (default all, in joint order).
        interface: The robot interface (joint order, default pose).
        signals: Stop signals (installed by the caller; checked every sample).
        temperature_margin_c: Stop at ``cal.max_temperature_c`` minus this [C].
        read_timeout_s: Reply timeout of each read [s].
        source: Recorded as :attr:`Recording.source`.
        progress: Called with a line per joint.

    Returns:
        The :class:`Recording`.

    Raises:
        IdentifyError: a fault (servo error bit, temperature, voltage, missed reads, a goal the
            link refused), a stop signal, or a failed start; the torque is off (or the message
            says the release was not confirmed) and ``recording`` holds the joints completed.
        LinkError: the port failed (the torque-off was still tried).
    """
    names = list(interface.joint_names)
    joints = names if joints is None else list(joints)
    unknown = [n for n in joints if n not in names]
    if unknown:
        raise ValueError(f"unknown joints {unknown}; the robot's joints are {names}")
    arr = cal.arrays(interface)
    default = interface.arrays()["default_pose_rad"].astype(np.float64)
    lo = arr["min_rad"] + cfg.limit_margin_rad
    hi = arr["max_rad"] - cfg.limit_margin_rad
    hold_pose = np.clip(default, lo, hi)
    t_limit = cal.max_temperature_c - temperature_margin_c
    say = progress or (lambda line: None)
    done: list[JointRecording] = []
    notes: list[str] = []
    t_wall0 = time.perf_counter()
    n_samples = 0
    sim_time = 0.0

    def recording() -> Recording:
        wall = time.perf_counter() - t_wall0
        return Recording(
            joints=list(done), joint_names=tuple(names), period_s=clock.period_s,
            rate_hz=(n_samples / sim_time if clock.stepped and sim_time > 0
                     else n_samples / wall if wall > 0 else 0.0),
            wall_rate_hz=n_samples / wall if wall > 0 else 0.0, source=source,
            date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), robot=interface.name,
            excitation=asdict(cfg), wall_time_s=wall, notes=notes)

    def check(i_joint: int, data: tuple[list[int], int] | None) -> None:
        sid = int(arr["ids"][i_joint])
        if data is None:
            return
        raw, err = data
        if err:
            raise IdentifyError(f"servo {sid} ({names[i_joint]}) reports {describe_error(err)}")
        if raw[7] > t_limit:
            raise IdentifyError(f"servo {sid} ({names[i_joint]}) at {raw[7]} C, above the "
                                f"identification's limit {t_limit:.0f} C: let it cool")
        if raw[6] * 0.1 < cal.min_voltage_v:
            raise IdentifyError(f"servo {sid} ({names[i_joint]}) reads {raw[6] * 0.1:.1f} V, "
                                f"below the calibration's {cal.min_voltage_v} V: charge the "
                                "battery")

    def read_all_health() -> None:
        for k in range(len(names)):
            got = link.read_servo(int(arr["ids"][k]), 56, 8, read_timeout_s)
            check(k, got)

    stopped: str | None = None
    try:
        try:
            link.connect()
        except LinkError as exc:
            raise IdentifyError(f"cannot start: {exc}") from exc
        # Ramp every joint from where it is to the hold pose, at the speed fraction.
        present = np.array([_decode(g[0], arr["direction"][k], arr["zero"][k],
                                    link.ticks_per_rad)[0]
                            if (g := link.read_servo(int(arr["ids"][k]), 56, 8, 0.05)) else
                            hold_pose[k] for k in range(len(names))])
        present = np.clip(present, arr["min_rad"], arr["max_rad"])
        dmax = cfg.speed_fraction * cfg.no_load_speed_rad_s * clock.period_s
        n_ramp = int(np.ceil(np.abs(hold_pose - present).max() / dmax)) + 1
        clock.start()
        for i in range(n_ramp):
            if signals is not None:
                signals.check()
            clock.wait(i)
            x = min(1.0, (i + 1) / max(1, n_ramp - 1))
            if not link.write_goals(present + x * (hold_pose - present)):
                raise IdentifyError("the link refused a ramp goal (outside the calibrated "
                                    "limits): check the calibration")
        read_all_health()
        if getattr(clock, "probe", False):  # the goals hold the pose: probing moves nothing
            clock.period_s = probe_period_s(link, int(arr["ids"][0]), hold_pose,
                                            timeout_s=read_timeout_s)
            clock.probe = False
            say(f"the bus sustains a goal write + one servo read every "
                f"{clock.period_s * 1e3:.1f} ms ({1 / clock.period_s:.0f} Hz)")
        for name in joints:
            k = names.index(name)
            sid = int(arr["ids"][k])
            goal_k, phase = excitation(float(hold_pose[k]), float(arr["min_rad"][k]),
                                       float(arr["max_rad"][k]), clock.period_s, cfg)
            n = len(goal_k)
            goals = np.repeat(hold_pose[None, :], n, axis=0)
            goals[:, k] = goal_k
            rec = {a: np.full(n, np.nan) for a in ("t_goal_s", "t_read_s", "present_rad",
                                                  "speed_rad_s", "load", "voltage_v",
                                                  "temperature_c")}
            misses = 0
            say(f"{name} (servo {sid}): {n} samples, {n * clock.period_s:.1f} s")
            clock.start()
            for i in range(n):
                if signals is not None:
                    signals.check()
                rec["t_goal_s"][i] = clock.wait(i)
                if not link.write_goals(goals[i]):
                    raise IdentifyError(f"the link refused goal {goals[i].tolist()} (outside "
                                        "the calibrated limits)")
                got = link.read_servo(sid, 56, 8, read_timeout_s)
                rec["t_read_s"][i] = clock.read_time(i)
                check(k, got)
                if got is None:
                    misses += 1
                    if misses >= MAX_MISSES_IN_ROW:
                        raise IdentifyError(f"servo {sid} ({name}) missed {misses} reads in a "
                                            "row: check its cable")
                    continue
                misses = 0
                (rec["present_rad"][i], rec["speed_rad_s"][i], rec["load"][i],
                 rec["voltage_v"][i], rec["temperature_c"][i]) = _decode(
                    got[0], arr["direction"][k], arr["zero"][k], link.ticks_per_rad)
            n_samples += n
            sim_time += n * clock.period_s
            missed = int(np.isnan(rec["present_rad"]).sum())
            if missed:
                notes.append(f"{name}: {missed} of {n} reads missed")
            done.append(JointRecording(
                name=name, index=k, servo_id=sid, goal_rad=goals, phase=phase,
                start_rad=hold_pose.copy(), **rec))
            read_all_health()
    except StopRequested as exc:
        stopped = f"stopped by {exc}"
    except IdentifyError as exc:
        stopped = str(exc)
    finally:
        try:
            reply = link.estop(0.05)
            if isinstance(reply, LinkFault):
                notes.append(f"torque release not confirmed: {reply.detail}")
        except LinkError as exc:
            notes.append(f"torque off failed ({exc}): cut the servo power")
    if stopped is not None:
        extra = f" ({notes[-1]})" if notes and "torque" in notes[-1] else " (torque off)"
        raise IdentifyError(stopped + extra, recording())
    return recording()


def build_parser(prog: str = "python -m deploy.identify") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=prog,
        description="Record a servo identification on a Feetech STS robot on its stand: each "
                    "joint in turn through steps, a chirp and holds; the fit runs on the "
                    "training machine (robotac identify --recording FILE).")
    ap.add_argument("--port", required=True, help="servo bus device, e.g. /dev/ttyUSB0")
    ap.add_argument("--calibration", type=Path, default=None,
                    help="calibration file (default: robotac calibrate's)")
    ap.add_argument("--out", type=Path, default=Path("identify_recording.npz"),
                    help="recording file to write")
    add_excitation_args(ap)
    return ap


def add_excitation_args(ap: argparse.ArgumentParser) -> None:
    """The excitation and safety options, shared with ``robotac identify``."""
    ap.add_argument("--joints", nargs="+", default=None, help="joints to excite (default all)")
    ap.add_argument("--speed-fraction", type=float, default=0.8,
                    help="goals move at most this share of the servo's no-load speed")
    ap.add_argument("--time-scale", type=float, default=1.0,
                    help="scale every duration of the excitation (0.3: a short test)")
    ap.add_argument("--period-ms", type=float, default=None,
                    help="sample period [ms] (default: the shortest the bus sustains, probed)")
    ap.add_argument("--read-timeout-ms", type=float, default=10.0,
                    help="reply timeout of each servo read [ms]; 5 misses in a row stop the run")
    ap.add_argument("--temperature-margin-c", type=float, default=5.0,
                    help="stop this far below the calibration's temperature limit [C]")
    ap.add_argument("--skip", nargs="+", choices=("steps", "chirp", "holds"), default=[],
                    help="leave a part of the excitation out (the fit then refuses the "
                         "parameters that need it)")
    ap.add_argument("--yes", action="store_true", help="do not ask before moving")


def excitation_config(args: argparse.Namespace, no_load_speed_rad_s: float = 4.7
                      ) -> ExcitationConfig:
    """The :class:`ExcitationConfig` of the options of :func:`add_excitation_args`."""
    return ExcitationConfig(speed_fraction=args.speed_fraction, time_scale=args.time_scale,
                            no_load_speed_rad_s=no_load_speed_rad_s,
                            steps="steps" not in args.skip, chirp="chirp" not in args.skip,
                            holds="holds" not in args.skip)


def record_on_port(args: argparse.Namespace, cfg: ExcitationConfig,
                   interface: RobotInterface = QUADRUPED_INTERFACE) -> Recording:
    """The real-bus recording of ``args`` (``--port``, ``--calibration``, excitation options):
    asks the operator, probes the rate, records with the stop signals installed.

    Raises:
        IdentifyError, LinkError: as :func:`run_identification`; a calibration that does not
            load.
    """
    from deploy.calibrate import DEFAULT_CALIBRATION_PATH

    cal = Calibration.load(args.calibration or DEFAULT_CALIBRATION_PATH, interface)
    if not args.yes:
        answer = input("Robot on its stand, legs free to swing through their range, servo "
                       "power on? Every joint will move in turn; Ctrl-C stops with the torque "
                       "off. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise IdentifyError("not started: the operator did not confirm")
    with StopSignals() as signals:
        link = StsBusLink(args.port, cal, None, interface=interface)
        try:
            return run_identification(
                link, cal, cfg, WallClock(None if args.period_ms is None
                                          else args.period_ms * 1e-3),
                joints=args.joints, interface=interface, signals=signals,
                temperature_margin_c=args.temperature_margin_c, source=f"port {args.port}",
                read_timeout_s=args.read_timeout_ms * 1e-3,
                progress=print)
        finally:
            link.close()


def main(argv: list[str] | None = None) -> int:
    """Record on a real bus (the robot's computer; numpy only). Returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        cfg = excitation_config(args)
        rec = record_on_port(args, cfg)
    except (IdentifyError, LinkError, ValueError) as exc:
        print(f"identify: {exc}", file=sys.stderr)
        rec = getattr(exc, "recording", None)
        if rec is not None and rec.joints:
            path = rec.save(args.out)
            print(f"identify: the {len(rec.joints)} joint(s) recorded before the stop: {path}",
                  file=sys.stderr)
        return 1
    path = rec.save(args.out)
    print(f"wrote {path}: {len(rec.joints)} joints, {rec.rate_hz:.0f} samples/s, "
          f"{rec.wall_time_s:.0f} s; fit it with: robotac identify --recording {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
