"""Virtual robot: protocol v1 on MuJoCo physics, behind a pseudo-terminal.

``python -m deploy.sim.virtual_robot`` opens a pty (``os.openpty``, raw mode), prints the port path
as its first stdout line (``PORT /dev/pts/N``), and answers frames on it exactly as a robot
controller following ``shared/protocol.md`` must, driving :class:`envs.quadruped_sim.QuadrupedSim`
(the physics the policy was trained on):

- HELLO -> INFO (the robot's joint count, has IMU, firmware version, ``watchdog_ms``, the joint
  limits of its interface: ``QUADRUPED_INTERFACE``, or that of ``--robot NAME|PATH``'s
  description), and arms (clears the e-stop and watchdog bits);
- COMMAND mode 0 -> servos passive (damped); mode 1 -> position targets, only when armed
  (else ERROR 5), and only when every target lies inside the joint limits (else ERROR 6 and
  nothing moves); either mode feeds the watchdog; reply STATE;
- READ -> STATE (does not feed the watchdog); ESTOP -> disarm, passive, status bit0, STATE;
- watchdog: armed and no valid COMMAND for ``watchdog_ms`` -> passive, status bit1, disarmed;
- undecodable frames -> ERROR 1 (bad CRC, ``seq`` 0), 2 (version), 3 (length), 4 (type: also
  robot -> host types), each with the frame's ``seq`` when its header could be read.

Physics runs in real time (``--mode realtime``: advanced with the wall clock between frames) or
one control period per valid COMMAND (``--mode stepped``: deterministic, matches the gym env
step for step). Fault injection: drop or corrupt a share of frames, add reply latency, raise the
servo-fault bit after a time, inject garbage bytes.

The robot records what it received (:class:`RobotRecord`: counts, min/max position targets,
refusals) and writes it as JSON to ``--report`` on exit, so tests can check on the robot side
that no out-of-limit target ever arrived.

Part of :mod:`deploy.sim`: it imports mujoco (through ``envs.quadruped_sim``), so the robot's
computer never runs it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import select
import signal
import sys
import time
import tty
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploy import protocol as P
from envs.quadruped_sim import QuadrupedSim

__all__ = ["FaultInjection", "RobotRecord", "VirtualRobot", "InProcessLink", "main"]

FIRMWARE_VERSION = 0x0100


@dataclass
class FaultInjection:
    """Faults the virtual robot injects (all off by default).

    Attributes:
        drop_rate: Share of received frames lost before the robot sees them (no reply).
        corrupt_rx_rate: Share of received frames with one byte flipped before decoding.
        corrupt_tx_rate: Share of reply frames with one byte flipped on the way out.
        garbage_rate: Share of replies preceded by a few random non-zero bytes and a delimiter.
        latency_s: Added delay before every reply [s].
        servo_fault_after_s: Raise status bit2 (servo fault) this long after the first HELLO [s].
        seed: Seed of the injection's random generator.
    """

    drop_rate: float = 0.0
    corrupt_rx_rate: float = 0.0
    corrupt_tx_rate: float = 0.0
    garbage_rate: float = 0.0
    latency_s: float = 0.0
    servo_fault_after_s: float | None = None
    seed: int = 0


@dataclass
class RobotRecord:
    """What the virtual robot saw and did (written as JSON by ``--report``)."""

    frames_rx: int = 0
    frames_by_type: dict[str, int] = field(default_factory=dict)
    decode_errors: dict[str, int] = field(default_factory=dict)
    errors_sent: dict[str, int] = field(default_factory=dict)
    position_commands: int = 0
    passive_commands: int = 0
    #: Element-wise min/max of the position targets applied (accepted COMMANDs only).
    target_min_rad: list[float] | None = None
    target_max_rad: list[float] | None = None
    #: COMMANDs received (either mode, armed or not) with a target outside the joint limits or
    #: non-finite: what a host must never send (position mode refuses them with ERROR 6).
    targets_out_of_range_received: int = 0
    #: COMMANDs received (either mode) with a NaN/inf target.
    non_finite_targets: int = 0
    watchdog_trips: int = 0
    estops: int = 0
    hellos: int = 0
    dropped_injected: int = 0
    corrupted_rx_injected: int = 0
    corrupted_tx_injected: int = 0
    garbage_injected: int = 0
    servo_fault: bool = False
    estop_after_servo_fault: bool = False
    armed: bool = False
    passive: bool = True
    status: int = 0
    physics_steps: int = 0
    sim_time_s: float = 0.0
    base_x_m: float = 0.0
    joint_low_rad: list[float] = field(default_factory=list)
    joint_high_rad: list[float] = field(default_factory=list)
    #: Body-frame forward velocity [m/s] at each accepted position COMMAND (privileged state,
    #: for sim-to-sim comparisons; the host never sees it).
    vx_body_m_s: list[float] = field(default_factory=list)
    #: Body-frame lateral velocity [m/s] and yaw rate (body z angular velocity) [rad/s] at the
    #: same moments as ``vx_body_m_s`` (privileged, as it).
    vy_body_m_s: list[float] = field(default_factory=list)
    yaw_rate_body_rad_s: list[float] = field(default_factory=list)

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1


class VirtualRobot:
    """A protocol v1 robot controller on MuJoCo physics.

    Args:
        mode: ``"realtime"`` (physics follows the wall clock) or ``"stepped"`` (one control
            period of physics per valid COMMAND).
        watchdog_ms: Watchdog timeout reported in INFO and enforced [ms].
        faults: :class:`FaultInjection`.
        sim: The physics; a fresh :class:`QuadrupedSim` (standing, servos passive) by default.

    Raises:
        ValueError: on an unknown mode or a watchdog outside ``[1, 65535]`` ms.
    """

    def __init__(
        self,
        mode: str = "realtime",
        watchdog_ms: int = 100,
        faults: FaultInjection | None = None,
        sim: QuadrupedSim | None = None,
    ):
        if mode not in ("realtime", "stepped"):
            raise ValueError(f"mode must be 'realtime' or 'stepped', got {mode!r}")
        if not 1 <= watchdog_ms <= 0xFFFF:
            raise ValueError(f"watchdog_ms must be in [1, 65535], got {watchdog_ms}")
        self.mode = mode
        self.watchdog_s = watchdog_ms / 1000.0
        self.watchdog_ms = int(watchdog_ms)
        self.faults = faults or FaultInjection()
        self.sim = sim or QuadrupedSim()
        self.sim.reset()
        arr = self.sim.interface.arrays()
        self.low32 = arr["joint_low_rad"].astype(np.float32)
        self.high32 = arr["joint_high_rad"].astype(np.float32)
        self.n = self.sim.interface.n_joints
        self.rng = np.random.default_rng(self.faults.seed)
        self.record = RobotRecord(
            joint_low_rad=self.low32.astype(float).tolist(),
            joint_high_rad=self.high32.astype(float).tolist(),
        )
        self.armed = False
        self.estopped = False
        self.watchdog_tripped = False
        self.servo_fault = False
        self._set_passive(True)
        self.t_boot = time.monotonic()
        self.t_hello: float | None = None
        self.last_feed = self.t_boot
        self.t_phys_anchor = self.t_boot
        self.sim_t_anchor = self.sim.time_s
        self.splitter = P.FrameSplitter()

    # ------------------------------------------------------------------ state
    def _set_passive(self, passive: bool) -> None:
        self.sim.set_passive(passive)
        self.record.passive = passive

    @property
    def status(self) -> int:
        s = 0
        s |= P.Status.ESTOPPED if self.estopped else 0
        s |= P.Status.WATCHDOG_TRIPPED if self.watchdog_tripped else 0
        s |= P.Status.SERVO_FAULT if self.servo_fault else 0
        s |= P.Status.ARMED if self.armed else 0
        return int(s)

    def _state(self, seq: int) -> P.State:
        r = self.sim.sensors()
        t_us = int((time.monotonic() - self.t_boot) * 1e6) & 0xFFFFFFFF
        return P.State(seq, t_us, self.status, r.q_servo_rad, r.dq_rad_s, r.quat_wxyz,
                       r.gyro_rad_s, r.accel_m_s2)

    def _info(self, seq: int) -> P.Info:
        return P.Info(seq, 0x01, FIRMWARE_VERSION, self.watchdog_ms, self.low32, self.high32)

    def _error(self, seq: int, code: P.ErrorCode) -> P.Error:
        self.record.count(self.record.errors_sent, code.name)
        return P.Error(seq, int(code))

    def tick(self, now: float | None = None) -> None:
        """Advance the clock-driven parts: watchdog, injected servo fault, real-time physics."""
        now = time.monotonic() if now is None else now
        if self.armed and now - self.last_feed > self.watchdog_s:
            self.armed = False
            self.watchdog_tripped = True
            self.record.watchdog_trips += 1
            self._set_passive(True)
        f = self.faults.servo_fault_after_s
        if f is not None and self.t_hello is not None and now - self.t_hello >= f:
            if not self.servo_fault:
                self.servo_fault = True
                self.record.servo_fault = True
        if self.mode == "realtime":
            target = self.sim_t_anchor + (now - self.t_phys_anchor)
            n = int((target - self.sim.time_s) / self.sim.physics_dt_s)
            if n > 200:  # fell far behind (e.g. the process was stopped): skip, do not burst
                self.t_phys_anchor = now
                self.sim_t_anchor = self.sim.time_s
                n = 0
            if n > 0:
                self.sim.step_physics(n)
                self.record.physics_steps += n

    def next_tick_in_s(self) -> float:
        """Time until the physics or the watchdog next needs :meth:`tick` [s]."""
        if self.mode == "realtime":
            return self.sim.physics_dt_s / 2
        return min(0.005, self.watchdog_s / 4)

    # ------------------------------------------------------------------ frames
    def handle_frame(self, raw: bytes, now: float | None = None) -> P.Message | None:
        """Answer one received frame (without delimiter).

        Returns:
            The reply message, or ``None`` when the frame is lost to an injected drop.
        """
        self.record.frames_rx += 1
        if self.faults.drop_rate and self.rng.random() < self.faults.drop_rate:
            self.record.dropped_injected += 1
            return None
        if self.faults.corrupt_rx_rate and self.rng.random() < self.faults.corrupt_rx_rate:
            self.record.corrupted_rx_injected += 1
            raw = _flip_byte(raw, self.rng)
        self.tick(now)
        try:
            msg = P.decode(raw, self.n)
        except P.ProtocolError as exc:
            self.record.count(self.record.decode_errors, type(exc).__name__)
            return self._error(exc.seq if exc.seq is not None else 0, exc.code)
        self.record.count(self.record.frames_by_type, msg.TYPE.name)
        if isinstance(msg, P.Hello):
            self.record.hellos += 1
            self.armed = True
            self.estopped = False
            self.watchdog_tripped = False
            self.last_feed = time.monotonic() if now is None else now
            if self.t_hello is None:
                self.t_hello = self.last_feed
            return self._info(msg.seq)
        if isinstance(msg, P.Read):
            return self._state(msg.seq)
        if isinstance(msg, P.Estop):
            self.record.estops += 1
            if self.servo_fault:
                self.record.estop_after_servo_fault = True
            self.armed = False
            self.estopped = True
            self._set_passive(True)
            return self._state(msg.seq)
        if isinstance(msg, P.Command):
            return self._command(msg, now)
        # INFO, STATE, ERROR travel robot -> host only.
        return self._error(msg.seq, P.ErrorCode.UNKNOWN_TYPE)

    def _command(self, msg: P.Command, now: float | None) -> P.Message:
        target = msg.target_rad
        r = self.record
        finite = bool(np.isfinite(target).all())
        inside = finite and bool((target >= self.low32).all() and (target <= self.high32).all())
        r.non_finite_targets += not finite
        r.targets_out_of_range_received += not inside
        if msg.mode == P.Mode.POSITION:
            if not self.armed:
                return self._error(msg.seq, P.ErrorCode.NOT_ARMED)
            if not inside:
                return self._error(msg.seq, P.ErrorCode.TARGET_OUT_OF_RANGE)
            r.position_commands += 1
            r.target_min_rad = (target.astype(float).tolist() if r.target_min_rad is None
                                else np.minimum(r.target_min_rad, target).astype(float).tolist())
            r.target_max_rad = (target.astype(float).tolist() if r.target_max_rad is None
                                else np.maximum(r.target_max_rad, target).astype(float).tolist())
            self.sim.set_targets(target.astype(np.float64))
            self._set_passive(False)
        else:
            self.record.passive_commands += 1
            self._set_passive(True)
        self.last_feed = time.monotonic() if now is None else now
        if self.mode == "stepped":
            self.sim.step_physics(self.sim.n_substeps)
            self.record.physics_steps += self.sim.n_substeps
        if msg.mode == P.Mode.POSITION and len(self.record.vx_body_m_s) < 1_000_000:
            v = self.sim.base_lin_vel_body_m_s
            self.record.vx_body_m_s.append(float(v[0]))
            self.record.vy_body_m_s.append(float(v[1]))
            self.record.yaw_rate_body_rad_s.append(float(self.sim.base_ang_vel_body_rad_s[2]))
        return self._state(msg.seq)

    def feed(self, data: bytes, now: float | None = None) -> bytes:
        """Process received bytes; return the bytes to send back (frames, maybe corrupted)."""
        out = bytearray()
        frames = self.splitter.feed(data)
        for raw in frames:
            reply = self.handle_frame(raw, now)
            if reply is None:
                continue
            if self.faults.garbage_rate and self.rng.random() < self.faults.garbage_rate:
                self.record.garbage_injected += 1
                out += bytes(self.rng.integers(1, 256, size=int(self.rng.integers(1, 20)))) + b"\0"
            frame = P.encode(reply)
            if self.faults.corrupt_tx_rate and self.rng.random() < self.faults.corrupt_tx_rate:
                self.record.corrupted_tx_injected += 1
                frame = _flip_byte(frame[:-1], self.rng) + P.DELIMITER
            out += frame
        return bytes(out)

    def snapshot(self) -> dict[str, Any]:
        """The record, with the current status and physics figures filled in."""
        r = self.record
        r.armed, r.status = self.armed, self.status
        r.sim_time_s = self.sim.time_s
        r.base_x_m = float(self.sim.base_pos_m[0])
        return asdict(r)

    # ------------------------------------------------------------------ pty server
    def serve(self, master_fd: int, duration_s: float | None = None,
              stop: list[bool] | None = None) -> None:
        """Answer frames on ``master_fd`` until ``duration_s`` passes or ``stop[0]`` is set."""
        t_end = None if duration_s is None else time.monotonic() + duration_s
        stop = stop if stop is not None else [False]
        while not stop[0] and (t_end is None or time.monotonic() < t_end):
            try:
                ready, _, _ = select.select([master_fd], [], [], self.next_tick_in_s())
            except InterruptedError:
                continue
            if ready:
                try:
                    data = os.read(master_fd, 4096)
                except OSError:  # no process holds the slave side right now
                    data = b""
                    time.sleep(0.001)
                if data:
                    reply = self.feed(data)
                    if reply:
                        if self.faults.latency_s > 0:
                            time.sleep(self.faults.latency_s)
                        os.write(master_fd, reply)
            self.tick()


class InProcessLink:
    """The virtual robot in this process, as a :class:`~deploy.robot_link.RobotLink`.

    No pty and no second process: each request is encoded with :mod:`deploy.protocol` and
    handed to :meth:`VirtualRobot.handle_frame`, so the robot's behaviour (arming, limits,
    watchdog, faults) is exactly the one the pty serves. With a ``"stepped"`` robot (the default)
    a run is deterministic, one control period of physics per COMMAND.

    Args:
        robot: The :class:`VirtualRobot`; a stepped one by default.
    """

    kind = "virtual"

    def __init__(self, robot: VirtualRobot | None = None):
        self.robot = robot or VirtualRobot(mode="stepped")
        self.port = "in-process virtual robot"
        self.last_rtt_s = float("nan")
        self._seq = 0
        self.stats = {"exchanges": 0, "replies": 0}

    def _exchange(self, msg: P.Message) -> P.Message | None:
        self._seq = self._seq % 0xFFFF + 1
        msg.seq = self._seq
        t0 = time.perf_counter()
        self.robot.tick()
        self.stats["exchanges"] += 1
        reply = self.robot.handle_frame(P.encode(msg)[:-1])
        if reply is None:
            return None
        self.stats["replies"] += 1
        self.last_rtt_s = time.perf_counter() - t0
        return P.decode(P.encode(reply), self.robot.n)

    def connect(self, attempts: int = 3) -> P.Info:
        for _ in range(attempts):
            reply = self._exchange(P.Hello())
            if isinstance(reply, P.Info):
                return reply
        raise RuntimeError("the in-process virtual robot did not answer HELLO")

    def read(self, timeout_s: float) -> P.Message | None:
        return self._exchange(P.Read())

    def command(self, target_rad: np.ndarray, timeout_s: float) -> P.Message | None:
        return self._exchange(P.Command(0, P.Mode.POSITION, target_rad))

    def passive(self, target_rad: np.ndarray, timeout_s: float) -> P.Message | None:
        return self._exchange(P.Command(0, P.Mode.PASSIVE, target_rad))

    def estop(self, timeout_s: float) -> P.Message | None:
        return self._exchange(P.Estop())

    def stats_dict(self) -> dict[str, Any]:
        return dict(self.stats)

    def close(self) -> None:
        pass


def _flip_byte(frame: bytes, rng: np.random.Generator) -> bytes:
    """Replace one byte of ``frame`` by a different non-zero byte."""
    if not frame:
        return frame
    b = bytearray(frame)
    i = int(rng.integers(len(b)))
    b[i] = (b[i] + int(rng.integers(1, 255))) % 256 or 1
    return bytes(b)


def open_pty() -> tuple[int, int, str]:
    """Open a pseudo-terminal in raw mode.

    Returns:
        ``(master_fd, slave_fd, slave_path)``; keep ``slave_fd`` open so the master does not
        read EIO while no host is connected.
    """
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    return master, slave, os.ttyname(slave)


def _write_report(path: str | None, robot: VirtualRobot) -> None:
    if not path:
        return
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(robot.snapshot(), indent=1))
    os.replace(tmp, p)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m deploy.sim.virtual_robot",
        description="Virtual quadruped speaking robot link protocol v1 on a pseudo-terminal.",
    )
    ap.add_argument("--mode", choices=("realtime", "stepped"), default="realtime",
                    help="physics follows the wall clock, or one control period per COMMAND")
    ap.add_argument("--watchdog-ms", type=int, default=100, help="watchdog timeout [ms]")
    ap.add_argument("--duration-s", type=float, default=None, help="exit after this long [s]")
    ap.add_argument("--report", default=None, help="write the robot-side record here (JSON)")
    ap.add_argument("--report-every-s", type=float, default=0.0,
                    help="also rewrite the report this often [s] (0: only on exit)")
    ap.add_argument("--drop", type=float, default=0.0, help="share of received frames lost")
    ap.add_argument("--corrupt", type=float, default=0.0,
                    help="share of frames corrupted, in each direction")
    ap.add_argument("--garbage", type=float, default=0.0,
                    help="share of replies preceded by garbage bytes")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="added reply latency [ms]")
    ap.add_argument("--servo-fault-after-s", type=float, default=None,
                    help="raise the servo-fault status bit this long after the first HELLO [s]")
    ap.add_argument("--seed", type=int, default=0, help="seed of the fault injection")
    ap.add_argument("--robot", default=None,
                    help="the robot simulated: a shipped description's name or a description "
                         "folder (docs/your_robot.md); default: the default quadruped")
    ap.add_argument("--rt-priority", type=int, default=0,
                    help="serve under SCHED_FIFO at this priority (Linux, root); 0 = default")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the virtual robot until SIGTERM/SIGINT or ``--duration-s``; print ``PORT <path>``."""
    args = build_parser().parse_args(argv)
    faults = FaultInjection(
        drop_rate=args.drop, corrupt_rx_rate=args.corrupt, corrupt_tx_rate=args.corrupt,
        garbage_rate=args.garbage, latency_s=args.latency_ms / 1000.0,
        servo_fault_after_s=args.servo_fault_after_s, seed=args.seed,
    )
    try:
        sim = QuadrupedSim(robot=args.robot)
    except ValueError as exc:  # a description that does not load (DescriptionError is one)
        print(f"virtual robot: --robot {args.robot}: {exc}", file=sys.stderr)
        return 2
    robot = VirtualRobot(args.mode, args.watchdog_ms, faults, sim=sim)
    master, slave, path = open_pty()
    if args.rt_priority > 0:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.rt_priority))
        except (AttributeError, OSError) as exc:
            print(f"virtual robot: SCHED_FIFO refused ({exc}); default scheduler",
                  file=sys.stderr)
    stop = [False]

    def _on_signal(signum: int, frame: object) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    gc.collect()
    gc.freeze()  # keep collections short while serving
    print(f"PORT {path}", flush=True)
    try:
        if args.report_every_s > 0:
            t_end = None if args.duration_s is None else time.monotonic() + args.duration_s
            while not stop[0] and (t_end is None or time.monotonic() < t_end):
                robot.serve(master, args.report_every_s, stop)
                _write_report(args.report, robot)
        else:
            robot.serve(master, args.duration_s, stop)
    finally:
        _write_report(args.report, robot)
        os.close(master)
        os.close(slave)
    snap = robot.snapshot()
    print(f"virtual robot: {snap['frames_rx']} frames, {snap['position_commands']} position "
          f"commands, errors {snap['errors_sent']}, watchdog trips {snap['watchdog_trips']}, "
          f"estops {snap['estops']}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
