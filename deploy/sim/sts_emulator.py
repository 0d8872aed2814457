"""Feetech STS servo-bus emulator (12 STS3215 on MuJoCo physics) plus a BNO08x RVC IMU stream.

The robot is the default quadruped, or any robot description (``--robot NAME|PATH``,
``StsBusEmulator(robot=...)``): its servos then report the description's model number, ticks per
turn and stall torque, on the IDs of its bus layout (:meth:`HardwareTruth.for_description`).

``python -m deploy.sim.sts_emulator`` opens two pseudo-terminals and prints their paths, one line
each: ``PORT /dev/pts/N`` (the servo bus) and ``IMU /dev/pts/M`` (the IMU), then
``CALIBRATION <file>`` when ``--write-calibration`` is given. It answers the STS protocol on the
bus exactly as twelve servos would (as far as the host uses it), driving
:class:`envs.quadruped_sim.QuadrupedSim` (the physics the policy was trained on):

- packets ``FF FF ID LEN INST params CHK`` (``CHK = ~sum(ID..params) & 0xFF``); a packet with
  a bad checksum is ignored, as a servo does; status packets ``FF FF ID LEN ERR data CHK``;
- instructions PING, READ, WRITE, SYNC_READ (0x82, replies in the order of the IDs asked),
  SYNC_WRITE (0x83, no reply); broadcast ID 0xFE gets no reply (a broadcast WRITE reaches every
  servo);
- a 256-byte control table per servo: Model_Number (3, 777), ID (5), Baud_Rate (6),
  Return_Delay_Time (7, 2 us a unit: each reply leaves that much later), Min/Max_Position_Limit
  (9/11), temperature and voltage limits (13-15), Operating_Mode (33: 0 position mode, 3 step
  mode, where Goal_Position is a relative move from the present position, sign-magnitude bit 15;
  in 1 (wheel) and 2 (PWM) a goal moves nothing), Torque_Enable (40), Goal_Position (42,
  clipped to the servo's Min/Max_Position_Limit as the servo does), Torque_Limit (48),
  Present_Position (56), Present_Speed (58, sign-magnitude bit 15), Present_Load (60, bit 10),
  Present_Voltage (62, 0.1 V), Present_Temperature (63, C). Any register can be set per servo
  (:meth:`StsBusEmulator.set_register`, ``--register 5:Operating_Mode=3``), so a test can put a
  servo in the wrong mode, with limits that disagree with the calibration, another model or
  supply voltage;
- the servos' EEPROM as ``robotac calibrate`` leaves it (``calibrated``, the default off the
  stand): position limits = the truth's calibrated joint range in ticks, return delay 0,
  temperature and voltage limits of the calibration; on the stand (calibration) the factory
  settings (limits 0-4095);
- the status error byte: voltage outside the voltage limits (bit0), temperature above the limit
  (bit2), injected overload (bit5);
- the mechanical truth (:class:`HardwareTruth`): which servo ID sits on which joint, its direction
  and zero offset, and how the IMU is mounted. ``robotac calibrate`` must find them;
  ``--write-calibration`` writes the exact calibration for ``robotac deploy --virtual --link sts``;
- a wrong baud rate: the host's setting of the pty (termios speed) is compared with the bus's;
  bytes at another rate are dropped, as framing garbage would be on a real bus;
- wire timing (``--wire-baud``, default 1,000,000): replies leave no earlier than the bytes
  would take on a half-duplex 8N1 wire at that rate (10 bits a byte) plus each servo's return
  delay, so round trips through the pty are comparable with a real bus;
- physics in real time (``--mode realtime``) or one control period per goal sync write
  (``--mode stepped``, deterministic);
- the IMU: one RVC packet per 10 ms of simulated time (yaw/pitch/roll and the accelerometer of
  the MuJoCo IMU site, rotated into the IMU's mounting), on the second pty;
- fault injection (``--fault KIND --fault-servo ID --fault-after-s S``, counted from the first
  torque enable): ``silent`` (the servo stops answering), ``checksum`` (its replies carry a bad
  checksum), ``overheat`` (80 C), ``undervolt`` (8.0 V), ``overload`` (error bit 5), ``unplug``
  (both ptys close), ``imu_silent``, ``imu_checksum`` (every IMU packet corrupt), ``power_off``
  (no servo answers any more);
- transient bus errors, from boot: a share of all status packets gets a bad checksum
  (``--corrupt-rate``) or is lost (``--drop-rate``), drawn per packet from a seeded generator
  (``--fault-seed``), so a run's error sequence is reproducible for the same request sequence;
- a stand (:attr:`StsBusEmulator.stand`, for calibration): the body is held in the air (level or
  tilted) and limp joints stay where the "operator" puts them.
- a servo truth (:class:`ServoTruth`, ``--servo-truth``) for ``robotac identify``: by default
  the description's servo model (the physics the policy was trained on); ``pd-away`` the same
  PD form with the parameters moved away from the description's (kp x1.8, armature x5, friction
  loss 0.06 N m, latency one control period); ``dc-motor`` a servo of another form (a DC motor
  behind a saturating firmware P loop, back-EMF, Stribeck friction, computed per physics step);
  ``--steps-per-write`` sets how many physics steps a goal sync write advances in stepped mode.

The report (``--report``, JSON, on exit) records what reached the bus: goal writes per servo,
goals outside the true joint limits (must stay 0), the first torque-off after an injected fault
and its delay, the body's forward velocity per goal write (sim-to-sim), counts per instruction,
the status packets corrupted or dropped on purpose, and whether the body fell (``falls``: its
height under :data:`FALL_HEIGHT_M` or its tilt beyond :data:`FALL_TILT_RAD` while any torque
was on).

Part of :mod:`deploy.sim`: it imports mujoco (through ``envs.quadruped_sim``), so the robot's
computer never runs it.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import select
import signal
import sys
import termios
import threading
import time
import tty
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from deploy.calibration import (
    STS3215_MODEL,
    TICKS_PER_TURN,
    Calibration,
    JointCalibration,
    imu_axes_matrix,
)
from deploy.imu import RVC_PERIOD_S, encode_rvc, matrix_to_euler_zyx, quat_wxyz_to_matrix
from deploy.sts import (
    ADDR,
    BAUD_INDEX,
    LOAD_SIGN_BIT,
    SPEED_SIGN_BIT,
    sign_magnitude,
    to_sign_magnitude,
)
from envs.interface import RobotInterface
from envs.quadruped_sim import QuadrupedSim
from envs.robot_description import RobotDescription, ServoModel, load_description

__all__ = ["HardwareTruth", "ServoTruth", "DcMotorServo", "SERVO_TRUTHS", "EmulatorFaults",
           "StsBusEmulator", "EmulatedOperator", "checksum",
           "status_packet", "instruction_packet", "open_pty", "main", "FAULT_KINDS"]

FAULT_KINDS = ("silent", "checksum", "overheat", "undervolt", "overload", "unplug", "imu_silent",
               "imu_checksum", "power_off")
INST_PING, INST_READ, INST_WRITE, INST_SYNC_READ, INST_SYNC_WRITE = 0x01, 0x02, 0x03, 0x82, 0x83
BROADCAST = 0xFE
#: Stall torque of the STS3215 [N m] (the default hardware's; Present_Load is per mille of it).
STALL_TORQUE_NM = 2.9
#: Present_Voltage and Present_Temperature of a healthy servo on a 12 V supply.
NOMINAL_VOLTAGE_DV = 120
NOMINAL_TEMPERATURE_C = 38
#: Operating_Mode (33) values: position (the only one the deploy drives), wheel, PWM, step.
MODE_POSITION, MODE_WHEEL, MODE_PWM, MODE_STEP = 0, 1, 2, 3
#: The body counts as fallen below this base height [m] or beyond this tilt [rad] (the
#: standing base height is about 0.2 m).
FALL_HEIGHT_M = 0.08
FALL_TILT_RAD = 1.0


def checksum(body: bytes | bytearray) -> int:
    """STS checksum: ``~sum(ID, LEN, INST/ERR, params) & 0xFF``."""
    return (~sum(body)) & 0xFF


def status_packet(sid: int, error: int, data: bytes = b"") -> bytes:
    """A servo's status packet ``FF FF ID LEN ERR data CHK``."""
    body = bytes([sid, len(data) + 2, error]) + bytes(data)
    return b"\xff\xff" + body + bytes([checksum(body)])


def instruction_packet(sid: int, inst: int, params: bytes = b"") -> bytes:
    """A host instruction packet ``FF FF ID LEN INST params CHK`` (for tests)."""
    body = bytes([sid, len(params) + 2, inst]) + bytes(params)
    return b"\xff\xff" + body + bytes([checksum(body)])


@dataclass(frozen=True)
class HardwareTruth:
    """How the emulated robot is built (what calibration must discover).

    Attributes:
        ids: ``(12,)`` servo ID per joint, joint order.
        direction: ``(12,)`` +1 when the servo's ticks grow with the joint angle.
        zero_ticks: ``(12,)`` raw position at joint angle 0 [ticks].
        imu_axes: Body axis -> IMU axis (the IMU's mounting), e.g. ``("+y", "-x", "+z")``.
        model_number: What every servo reports at control-table address 3 (STS3215: 777).
        ticks_per_turn: Encoder ticks per turn.
        stall_torque_nm: Stall torque [N m] (Present_Load is per mille of it).
        interface: The robot's interface; ``None``: the default quadruped's.
    """

    ids: tuple[int, ...] = tuple(range(1, 13))
    direction: tuple[int, ...] = (1, 1, 1, 1, -1, -1, -1, 1, 1, -1, -1, -1)
    zero_ticks: tuple[float, ...] = (2101, 1987, 2130, 1950, 2075, 2011, 2160, 1938, 2049, 2008,
                                     2122, 1969)
    imu_axes: tuple[str, str, str] = ("+y", "-x", "+z")
    model_number: int = STS3215_MODEL
    ticks_per_turn: int = TICKS_PER_TURN
    stall_torque_nm: float = STALL_TORQUE_NM
    interface: RobotInterface | None = None

    @classmethod
    def for_description(cls, desc: RobotDescription) -> HardwareTruth:
        """The hardware of a robot description: its servo IDs (``joints[*].servo_id``), model
        number, ticks per turn and stall torque; directions and zero offsets as the default
        hardware's (repeated over the joints, offsets scaled to the ticks per turn), so that
        calibration has something to discover. The default quadruped gets :class:`HardwareTruth`
        ``()`` itself."""
        from envs.interface import QUADRUPED_DESCRIPTION, interface_from_description

        if desc == QUADRUPED_DESCRIPTION:
            return cls()
        base, n, sv = cls(), len(desc.joints), desc.servo
        scale = sv.ticks_per_turn / TICKS_PER_TURN
        return cls(ids=tuple(j.servo_id for j in desc.joints),
                   direction=tuple(base.direction[k % 12] for k in range(n)),
                   zero_ticks=tuple(round(base.zero_ticks[k % 12] * scale, 1) for k in range(n)),
                   model_number=sv.model_number, ticks_per_turn=sv.ticks_per_turn,
                   stall_torque_nm=sv.torque_limit_nm,
                   interface=interface_from_description(desc))

    @property
    def robot_interface(self) -> RobotInterface:
        """:attr:`interface`, or the default quadruped's."""
        from envs.interface import QUADRUPED_INTERFACE

        return self.interface if self.interface is not None else QUADRUPED_INTERFACE

    def calibration(self) -> Calibration:
        """The exact calibration of this hardware (limits from the robot interface)."""
        itf = self.robot_interface
        arr = itf.arrays()
        joints = {n: JointCalibration(self.ids[k], self.direction[k], float(self.zero_ticks[k]),
                                      float(arr["joint_low_rad"][k]),
                                      float(arr["joint_high_rad"][k]))
                  for k, n in enumerate(itf.joint_names)}
        return Calibration(joints=joints, imu_axes=self.imu_axes, servo_model=self.model_number,
                           ticks_per_turn=self.ticks_per_turn, robot=itf.name,
                           interface=self.interface)


@dataclass(frozen=True)
class DcMotorServo:
    """A servo of another form than the sim's PD model: a DC motor behind a saturating P loop.

    Per physics step, for a powered servo with position error ``e = goal - q`` [rad] and joint
    velocity ``dq`` [rad/s]::

        duty  = clip(gain_per_rad * e, -1, 1)                     (firmware P loop, PWM duty)
        tau_m = stall_torque_nm * (duty - dq / no_load_speed_rad_s)  (DC motor: torque - back-EMF)
        tau_f = -(coulomb_nm + (static_nm - coulomb_nm) * exp(-(dq / stribeck_speed_rad_s)^2))
                * tanh(dq / smooth_speed_rad_s) - viscous_nm_s_rad * dq   (Stribeck friction)

    applied as ``qfrc_applied`` (the MJCF actuators are off); an unpowered servo keeps only its
    back-EMF and friction. Source: the DC motor and Stribeck friction forms of Rhoban's BAM
    (Passault et al. 2024, "Better Actuator Models", models M1-M6); the parameters here are of
    the order BAM reports for the STS3215 (armature 0.027 kg m^2, friction 0.05-0.07 N m).

    Attributes:
        gain_per_rad: Firmware P gain, duty per rad of error [1/rad].
        stall_torque_nm, no_load_speed_rad_s: The motor at the supply voltage [N m], [rad/s].
        coulomb_nm, static_nm: Kinetic and static (breakaway) friction [N m].
        stribeck_speed_rad_s: Speed of the Stribeck dip [rad/s].
        smooth_speed_rad_s: Width of the tanh that smooths the sign at rest [rad/s].
        viscous_nm_s_rad: Viscous friction of the gearbox [N m s/rad].
        armature_kg_m2: Reflected rotor inertia [kg m^2].
    """

    gain_per_rad: float = 4.5
    stall_torque_nm: float = 2.9
    no_load_speed_rad_s: float = 4.7
    coulomb_nm: float = 0.05
    static_nm: float = 0.09
    stribeck_speed_rad_s: float = 0.3
    smooth_speed_rad_s: float = 0.03
    viscous_nm_s_rad: float = 0.02
    armature_kg_m2: float = 0.027

    def torque_nm(self, e_rad: np.ndarray, dq_rad_s: np.ndarray,
                  powered: np.ndarray) -> np.ndarray:
        """``(n,)`` joint torque [N m] of the formula above (``powered``: ``(n,)`` bool)."""
        duty = np.where(powered, np.clip(self.gain_per_rad * e_rad, -1.0, 1.0), 0.0)
        tau_m = self.stall_torque_nm * (duty - dq_rad_s / self.no_load_speed_rad_s)
        stribeck = self.coulomb_nm + (self.static_nm - self.coulomb_nm) * np.exp(
            -(dq_rad_s / self.stribeck_speed_rad_s) ** 2)
        tau_f = -stribeck * np.tanh(dq_rad_s / self.smooth_speed_rad_s) \
            - self.viscous_nm_s_rad * dq_rad_s
        return tau_m + tau_f


@dataclass(frozen=True)
class ServoTruth:
    """The servos the emulator's physics has, unknown to the host (``robotac identify``'s target).

    Attributes:
        kp_scale, armature_kg_m2, frictionloss_nm, damping_nm_s_rad: The PD form (the sim's):
            kp times ``kp_scale`` (kv and the torque limit unchanged); the joint's armature,
            friction loss and damping (``None``: the description's).
        latency_s: A goal acts on the motor this long after it was written [s] (rounded to
            physics steps).
        dc_motor: A servo of another form (:class:`DcMotorServo`); then the PD fields are unused.
    """

    kp_scale: float = 1.0
    armature_kg_m2: float | None = None
    frictionloss_nm: float | None = None
    damping_nm_s_rad: float | None = None
    latency_s: float = 0.0
    dc_motor: DcMotorServo | None = None

    @property
    def is_default(self) -> bool:
        return self == ServoTruth()

    def servo_model(self, base: ServoModel) -> ServoModel:
        """``base`` with this truth's PD parameters (for the DC form: its armature, no joint
        damping or friction loss: they are in the motor model)."""
        if self.dc_motor is not None:
            return replace(base, armature_kg_m2=self.dc_motor.armature_kg_m2,
                           damping_nm_s_rad=0.0, frictionloss_nm=0.0)
        return replace(
            base, kp_nm_rad=base.kp_nm_rad * self.kp_scale,
            armature_kg_m2=(base.armature_kg_m2 if self.armature_kg_m2 is None
                            else self.armature_kg_m2),
            frictionloss_nm=(base.frictionloss_nm if self.frictionloss_nm is None
                             else self.frictionloss_nm),
            damping_nm_s_rad=(base.damping_nm_s_rad if self.damping_nm_s_rad is None
                              else self.damping_nm_s_rad))


#: Named servo truths (``--servo-truth``): the description's; the issue-24 PD form away from the
#: defaults (armature x5 = 0.025 kg m^2, friction loss 0.06 N m, kp x1.8, latency one control
#: period of 0.02 s); a DC motor with a saturating P loop and Stribeck friction (latency 0.01 s).
SERVO_TRUTHS: dict[str, ServoTruth] = {
    "description": ServoTruth(),
    "pd-away": ServoTruth(kp_scale=1.8, armature_kg_m2=0.025, frictionloss_nm=0.06,
                          latency_s=0.02),
    "dc-motor": ServoTruth(dc_motor=DcMotorServo(), latency_s=0.01),
}


@dataclass
class EmulatorFaults:
    """One injected fault (``kind`` in :data:`FAULT_KINDS`, ``None``: none), plus transient bus
    errors at a rate.

    Attributes:
        kind: What goes wrong.
        servo_id: Which servo (for servo faults).
        after_s: When, counted from the first torque enable [s].
        corrupt_rate: Share of status packets (every servo, from boot) sent with a bad checksum.
        drop_rate: Share of status packets lost (never sent).
        seed: Seed of the generator that draws which packets are corrupted or lost.
    """

    kind: str | None = None
    servo_id: int = 5
    after_s: float = 1.0
    corrupt_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {self.kind!r}")
        if not (0.0 <= self.corrupt_rate and 0.0 <= self.drop_rate
                and self.corrupt_rate + self.drop_rate <= 1.0):
            raise ValueError(f"corrupt_rate and drop_rate must be >= 0 with a sum <= 1, got "
                             f"{self.corrupt_rate} and {self.drop_rate}")


@dataclass
class BusRecord:
    """What the emulated bus saw (written as JSON by ``--report``)."""

    packets_rx: int = 0
    bad_checksums_rx: int = 0
    wrong_baud_bytes: int = 0
    by_instruction: dict[str, int] = field(default_factory=dict)
    goal_writes: int = 0
    #: Goal_Position values outside the true joint limits (converted to ticks): must stay 0.
    goals_outside_limits: int = 0
    goal_min_rad: list[float] | None = None
    goal_max_rad: list[float] | None = None
    torque_on: list[bool] = field(default_factory=list)
    first_torque_on_s: float | None = None
    torque_off_events_s: list[float] = field(default_factory=list)
    fault_kind: str | None = None
    fault_active_s: float | None = None
    #: First time after the fault that every servo had its torque off [s since boot].
    torque_off_after_fault_s: float | None = None
    goal_writes_after_fault: int = 0
    imu_packets: int = 0
    #: Status packets given a bad checksum / not sent, by the transient error rates.
    corrupted_replies: int = 0
    dropped_replies: int = 0
    #: Times the body fell (height or tilt past the fall thresholds with torque on), and when.
    falls: int = 0
    fall_times_s: list[float] = field(default_factory=list)
    physics_steps: int = 0
    sim_time_s: float = 0.0
    vx_body_m_s: list[float] = field(default_factory=list)

    def count(self, name: str) -> None:
        self.by_instruction[name] = self.by_instruction.get(name, 0) + 1


class StsBusEmulator:
    """Twelve emulated STS3215 servos and a BNO08x RVC on :class:`QuadrupedSim`.

    Args:
        truth: The hardware (:class:`HardwareTruth`).
        mode: ``"realtime"`` or ``"stepped"`` (one control period per goal sync write).
        baud: The bus's baud rate (host settings at another rate are not understood).
        wire_baud: Pace replies as on a wire at this rate; 0 disables the pacing.
        faults: :class:`EmulatorFaults`.
        stand: Hold the body in the air (calibration); limp joints keep their pose.
        sim: Physics; a fresh standing :class:`QuadrupedSim` of ``robot`` by default.
        calibrated: The servos' EEPROM as ``robotac calibrate`` leaves it for :attr:`truth`
            (:meth:`apply_calibration`); ``False``: factory settings (position limits 0-4095);
            ``None`` (default): factory on the stand, calibrated otherwise.
        servo_truth: The servos' true model (:class:`ServoTruth`); default the description's.
            A non-default truth builds its own :class:`QuadrupedSim` from ``sim``'s description.
        steps_per_write: Physics steps a goal sync write advances in stepped mode (default one
            control period, ``sim.n_substeps``; 1 for identification at the physics rate).
        robot: The robot (a description's name or folder) when ``sim`` is not given; default
            the default quadruped. ``truth`` defaults to its :meth:`HardwareTruth.for_description`.
    """

    def __init__(self, truth: HardwareTruth | None = None, mode: str = "realtime",
                 baud: int = 1_000_000, wire_baud: int = 1_000_000,
                 faults: EmulatorFaults | None = None, stand: bool = False,
                 sim: QuadrupedSim | None = None, calibrated: bool | None = None,
                 robot: str | Path | None = None, servo_truth: ServoTruth | None = None,
                 steps_per_write: int | None = None):
        if mode not in ("realtime", "stepped"):
            raise ValueError(f"mode must be 'realtime' or 'stepped', got {mode!r}")
        if baud not in BAUD_INDEX:
            raise ValueError(f"baud must be one of {sorted(BAUD_INDEX)}, got {baud}")
        self.mode = mode
        self.baud = baud
        self.wire_baud = int(wire_baud)
        self.faults = faults or EmulatorFaults()
        self.servo_truth = servo_truth or ServoTruth()
        self.sim = self._truth_sim(sim, robot)
        self.truth = truth or HardwareTruth.for_description(self.sim.description)
        if self.truth.robot_interface.joint_names != self.sim.interface.joint_names:
            raise ValueError(f"the hardware truth is robot {self.truth.robot_interface.name!r}'s,"
                             f" the physics robot {self.sim.interface.name!r}'s")
        #: Encoder ticks per radian and the largest position of the emulated servos.
        self.ticks_per_rad = self.truth.ticks_per_turn / (2.0 * math.pi)
        self.max_tick = self.truth.ticks_per_turn - 1
        self.sim.reset()
        self.steps_per_write = int(steps_per_write or self.sim.n_substeps)
        if self.steps_per_write < 1:
            raise ValueError(f"steps_per_write must be >= 1, got {steps_per_write}")
        # Goals as written, with the simulated time they were written at (the latency's queue).
        self._goal_log: list[tuple[float, np.ndarray]] = []
        self.n = self.sim.interface.n_joints
        arr = self.sim.interface.arrays()
        self.dir = np.array(self.truth.direction, dtype=np.float64)
        self.zero = np.array(self.truth.zero_ticks, dtype=np.float64)
        lo = self._ticks_of_q(arr["joint_low_rad"] - np.pi)
        hi = self._ticks_of_q(arr["joint_high_rad"] - np.pi)
        self.true_tick_lo, self.true_tick_hi = np.minimum(lo, hi), np.maximum(lo, hi)
        self.imu_m = imu_axes_matrix(self.truth.imu_axes)
        self.lock = threading.RLock()
        self.mem: dict[int, bytearray] = {}
        self.joint_of: dict[int, int] = {}
        for k, sid in enumerate(self.truth.ids):
            self.mem[sid] = self._factory_table(sid)
            self.joint_of[sid] = k
        if calibrated if calibrated is not None else not stand:
            self.apply_calibration(self.truth.calibration())
        self.rng = np.random.default_rng(self.faults.seed)
        self.fallen = False
        self.torque = np.zeros(self.n, dtype=bool)
        self.target = arr["default_pose_rad"].copy()
        self._initial_target = self.target.copy()
        self.sim.set_passive(True)
        self.record = BusRecord(torque_on=[False] * self.n, fault_kind=self.faults.kind)
        self.t_boot = time.monotonic()
        self.fault_on = False
        self._buf = bytearray()
        self.wire_free = 0.0
        self.reply_ready_at = 0.0
        self.imu_out = bytearray()
        self.imu_index = 0
        self.next_imu_sim_t = self.sim.time_s
        self.last_step_wall = -math.inf
        self.last_imu_wall = -math.inf
        self.t_phys_anchor = time.monotonic()
        self.sim_t_anchor = self.sim.time_s
        self.unplugged = False
        # The stand (calibration): body held at this pose; limp joints held at ``hold_q``.
        self.stand = stand
        self.stand_quat = np.array([1.0, 0.0, 0.0, 0.0])
        self.hold_q = self.sim.q_joint_rad.copy()
        if stand:
            self._hold_stand()

    # -------------------------------------------------------------- servo truth
    def _truth_sim(self, sim: QuadrupedSim | None, robot: str | Path | None) -> QuadrupedSim:
        """The physics with the servo truth's model written in (``sim``'s description, or
        ``robot``'s, default the default robot's); ``sim`` itself when the truth is the
        description's."""
        st = self.servo_truth
        if st.is_default:
            return sim or QuadrupedSim(robot=robot)
        if sim is not None:
            desc = sim.description
        else:
            desc = load_description(robot) if robot is not None else load_description()
        return QuadrupedSim(robot=replace(desc, servo=st.servo_model(desc.servo)))

    def _effective_target(self) -> np.ndarray:
        """The goals acting now: those written ``servo_truth.latency_s`` ago (simulated time)."""
        lat = self.servo_truth.latency_s
        if lat <= 0 or not self._goal_log:
            return self.target
        t_now = self.sim.time_s + 1e-9
        log = self._goal_log
        i = len(log) - 1
        while i >= 0 and log[i][0] + lat > t_now:
            i -= 1
        if i > 0:
            del log[:i]                        # older entries are superseded
            i = 0
        return log[i][1] if i >= 0 else self._initial_target

    # -------------------------------------------------------------- control table
    def _factory_table(self, sid: int) -> bytearray:
        m = bytearray(256)
        m[0], m[1] = 3, 10                                   # firmware 3.10
        m[3:5] = self.truth.model_number.to_bytes(2, "little")
        m[5] = sid
        m[6] = BAUD_INDEX[self.baud]
        m[7] = 0                                             # return delay [2 us]
        m[9:11] = (0).to_bytes(2, "little")
        m[11:13] = self.max_tick.to_bytes(2, "little")
        m[13] = 70                                           # max temperature [C]
        m[14] = 140                                          # max voltage [0.1 V]
        m[15] = 40                                           # min voltage [0.1 V]
        m[16:18] = (1000).to_bytes(2, "little")
        m[48:50] = (1000).to_bytes(2, "little")
        m[62] = NOMINAL_VOLTAGE_DV
        m[63] = NOMINAL_TEMPERATURE_C
        return m

    def apply_calibration(self, cal: Calibration) -> None:
        """Write what ``robotac calibrate`` writes into each servo's EEPROM
        (:meth:`deploy.calibrate.Calibrator.protect`): Min/Max_Position_Limit = the calibrated
        joint range in ticks (rounded inward), Return_Delay_Time 0, the temperature and voltage
        limits."""
        arr = cal.arrays(self.sim.interface)
        with self.lock:
            for k, sid in enumerate(arr["ids"].tolist()):
                if sid not in self.mem:
                    continue
                t = sorted(arr["zero"][k] + arr["direction"][k] * (np.array(
                    [arr["min_rad"][k], arr["max_rad"][k]]) - math.pi) * self.ticks_per_rad)
                m = self.mem[sid]
                m[7] = 0
                m[9:11] = max(0, math.ceil(t[0])).to_bytes(2, "little")
                m[11:13] = min(self.max_tick, math.floor(t[1])).to_bytes(2, "little")
                m[13] = int(round(cal.max_temperature_c))
                m[15] = int(round(cal.min_voltage_v * 10))

    def set_register(self, sid: int, name: str | int, value: int) -> None:
        """Set one register of servo ``sid`` (a name of :data:`deploy.sts.ADDR` or an address;
        2-byte registers little-endian), as a test or ``--register`` wants it.

        Raises:
            ValueError: an unknown servo or register name.
        """
        if sid not in self.mem:
            raise ValueError(f"no servo {sid} on the emulated bus (IDs {sorted(self.mem)})")
        if isinstance(name, str) and not name.isdigit():
            if name not in ADDR:
                raise ValueError(f"unknown register {name!r}; one of {sorted(ADDR)}")
            addr, size = ADDR[name]
        else:
            addr, size = int(name), 1
        with self.lock:
            self.mem[sid][addr:addr + size] = int(value).to_bytes(size, "little")

    def _ticks_of_q(self, q: np.ndarray) -> np.ndarray:
        return self.zero + self.dir * np.asarray(q) * self.ticks_per_rad

    def _refresh_present(self) -> None:
        """Write the physics state into every servo's present registers."""
        self.sim.forward()
        q = self.sim.q_joint_rad
        dq = self.sim.dq_joint_rad_s
        tau = (self.sim.joint_torques_nm if self.servo_truth.dc_motor is None
               else self.sim.data.qfrc_applied[self.sim.joint_dof_adr])
        ticks = np.clip(np.rint(self._ticks_of_q(q)), 0, self.max_tick).astype(int)
        speed = np.rint(self.dir * dq * self.ticks_per_rad).astype(int)
        load = np.rint(self.dir * tau / self.truth.stall_torque_nm * 1000).astype(int)
        for sid, k in self.joint_of.items():
            m = self.mem[sid]
            m[56:58] = int(ticks[k]).to_bytes(2, "little")
            m[58:60] = to_sign_magnitude(int(speed[k]), SPEED_SIGN_BIT).to_bytes(2, "little")
            m[60:62] = to_sign_magnitude(int(load[k]), LOAD_SIGN_BIT).to_bytes(2, "little")
            m[66] = int(abs(speed[k]) > 20)

    def _error_byte(self, sid: int) -> int:
        m = self.mem[sid]
        e = 0
        if not m[15] <= m[62] <= m[14]:
            e |= 0x01
        if m[63] > m[13]:
            e |= 0x04
        if self.fault_on and self.faults.kind == "overload" and sid == self.faults.servo_id:
            e |= 0x20
        return e

    def _write(self, sid: int, addr: int, data: bytes, now: float) -> None:
        m = self.mem[sid]
        k = self.joint_of[sid]
        end = addr + len(data)
        m[addr:end] = data
        if addr <= 5 < end and m[5] != sid and m[5] not in self.mem:
            self.mem[m[5]] = self.mem.pop(sid)     # a new ID (EEPROM), effective at once
            self.joint_of[m[5]] = self.joint_of.pop(sid)
            return
        if addr <= 40 < end:
            self._set_torque(k, bool(m[40]), now)
        if addr <= 42 and end >= 44:
            self._goal(k, sid, int.from_bytes(m[42:44], "little"))

    def _goal(self, k: int, sid: int, ticks: int) -> None:
        m = self.mem[sid]
        lo, hi = int.from_bytes(m[9:11], "little"), int.from_bytes(m[11:13], "little")
        r = self.record
        r.goal_writes += 1
        if self.fault_on:
            r.goal_writes_after_fault += 1
        if not self.true_tick_lo[k] - 0.5 <= ticks <= self.true_tick_hi[k] + 0.5:
            r.goals_outside_limits += 1
        mode = m[33]
        if mode == MODE_STEP:  # a relative move from the present position (sign-magnitude)
            ticks = int.from_bytes(m[56:58], "little") + sign_magnitude(ticks, SPEED_SIGN_BIT)
        elif mode != MODE_POSITION:  # wheel or PWM: Goal_Position moves nothing
            return
        ticks = min(max(ticks, lo), hi)                      # the servo's own angle limits
        a = math.pi + self.dir[k] * (ticks - self.zero[k]) / self.ticks_per_rad
        if self.servo_truth.latency_s > 0:
            if not self._goal_log:
                self._initial_target = self.target.copy()
            t = self.sim.time_s
            if self._goal_log and self._goal_log[-1][0] == t:
                self._goal_log[-1][1][k] = a
            else:
                g = (self._goal_log[-1][1] if self._goal_log else self.target).copy()
                g[k] = a
                self._goal_log.append((t, g))
        self.target[k] = a
        r.goal_min_rad = r.goal_min_rad or [math.inf] * self.n
        r.goal_max_rad = r.goal_max_rad or [-math.inf] * self.n
        r.goal_min_rad[k] = min(r.goal_min_rad[k], a)
        r.goal_max_rad[k] = max(r.goal_max_rad[k], a)

    def _set_torque(self, k: int, on: bool, now: float) -> None:
        was_any = bool(self.torque.any())
        self.torque[k] = on
        self.record.torque_on = self.torque.tolist()
        t = now - self.t_boot
        if on and self.record.first_torque_on_s is None:
            self.record.first_torque_on_s = t
        if was_any and not self.torque.any():
            self.record.torque_off_events_s.append(t)
            if self.fault_on and self.record.torque_off_after_fault_s is None:
                self.record.torque_off_after_fault_s = t
        self._apply_torque()

    def _apply_torque(self) -> None:
        if not self.torque.any():
            self.sim.set_passive(True)
            return
        self.sim.set_passive(self.servo_truth.dc_motor is not None)
        target = self._effective_target().copy()
        off = ~self.torque
        # A limp servo among powered ones: emulated by holding its joint where it is.
        target[off] = self.sim.q_joint_rad[off] + np.pi
        self.sim.set_targets(target)

    # -------------------------------------------------------------- packets
    def feed(self, data: bytes, now: float | None = None) -> bytes:
        """Process bytes from the host; return the status packets to send back."""
        now = time.monotonic() if now is None else now
        with self.lock:
            if self.wire_baud:
                self.wire_free = max(self.wire_free, now) + len(data) * 10.0 / self.wire_baud
            self._buf += data
            out = bytearray()
            buf = self._buf
            while True:
                i = buf.find(b"\xff\xff")
                if i < 0:
                    del buf[: max(0, len(buf) - 1)]
                    break
                del buf[:i]
                if len(buf) < 4:
                    break
                length = buf[3]
                if buf[2] == 0xFF or length < 2:
                    del buf[:1]
                    continue
                total = length + 4
                if len(buf) < total:
                    break
                pkt = bytes(buf[:total])
                if checksum(pkt[2:-1]) != pkt[-1]:
                    self.record.bad_checksums_rx += 1
                    del buf[:2]
                    continue
                del buf[:total]
                self.record.packets_rx += 1
                out += self._handle(pkt[2], pkt[4], pkt[5:-1], now)
            if out and self.wire_baud:
                self.wire_free += len(out) * 10.0 / self.wire_baud
                self.reply_ready_at = self.wire_free
            else:
                self.reply_ready_at = now
            return bytes(out)

    def _reply(self, sid: int, data: bytes = b"") -> bytes:
        if self.fault_on and (self.faults.kind == "power_off" or (
                sid == self.faults.servo_id and self.faults.kind == "silent")):
            return b""
        pkt = status_packet(sid, self._error_byte(sid), data)
        f = self.faults
        if f.corrupt_rate or f.drop_rate:
            u = self.rng.random()
            if u < f.drop_rate:
                self.record.dropped_replies += 1
                return b""
            if u < f.drop_rate + f.corrupt_rate:
                self.record.corrupted_replies += 1
                pkt = pkt[:-1] + bytes([pkt[-1] ^ 0x5A])
        if self.wire_baud:
            self.wire_free += self.mem[sid][7] * 2e-6
        if self.fault_on and sid == f.servo_id and f.kind == "checksum":
            pkt = pkt[:-1] + bytes([pkt[-1] ^ 0x5A])
        return pkt

    def _handle(self, sid: int, inst: int, params: bytes, now: float) -> bytes:
        names = {INST_PING: "PING", INST_READ: "READ", INST_WRITE: "WRITE",
                 INST_SYNC_READ: "SYNC_READ", INST_SYNC_WRITE: "SYNC_WRITE"}
        self.record.count(names.get(inst, f"0x{inst:02X}"))
        if inst == INST_SYNC_WRITE and len(params) >= 2:
            addr, n = params[0], params[1]
            goal = False
            for j in range(2, len(params) - n, n + 1):
                s = params[j]
                if s in self.mem:
                    self._write(s, addr, params[j + 1: j + 1 + n], now)
                    goal = goal or addr <= 42 < addr + n
            if goal:
                self._after_goal_sync_write()
            return b""
        if inst == INST_SYNC_READ and len(params) >= 2:
            addr, n = params[0], params[1]
            self._refresh_present()
            return b"".join(self._reply(s, bytes(self.mem[s][addr:addr + n]))
                            for s in params[2:] if s in self.mem)
        if sid == BROADCAST and inst == INST_WRITE and len(params) >= 2:
            for s in list(self.mem):  # every servo takes it; none answers
                self._write(s, params[0], params[1:], now)
            return b""
        if sid not in self.mem:
            return b""
        if inst == INST_PING:
            return self._reply(sid)
        if inst == INST_READ and len(params) == 2:
            self._refresh_present()
            return self._reply(sid, bytes(self.mem[sid][params[0]:params[0] + params[1]]))
        if inst == INST_WRITE and len(params) >= 2:
            self._write(sid, params[0], params[1:], now)
            return self._reply(sid if sid in self.mem else params[1])  # a new ID answers
        return b""

    def _after_goal_sync_write(self) -> None:
        self._apply_torque()
        if self.torque.any() and len(self.record.vx_body_m_s) < 1_000_000:
            self.record.vx_body_m_s.append(float(self.sim.base_lin_vel_body_m_s[0]))
        if self.mode == "stepped":
            for _ in range(self.steps_per_write):
                self._physics_step(1)
            self.last_step_wall = time.monotonic()

    # -------------------------------------------------------------- physics and IMU
    def _hold_stand(self) -> None:
        d = self.sim.data
        d.qpos[0:3] = (0.0, 0.0, 0.4)
        d.qpos[3:7] = self.stand_quat
        d.qvel[0:6] = 0.0
        off = ~self.torque
        if off.any():
            d.qpos[self.sim.joint_qpos_adr[off]] = self.hold_q[off]
            d.qvel[self.sim.joint_dof_adr[off]] = 0.0
        self.hold_q[self.torque] = d.qpos[self.sim.joint_qpos_adr[self.torque]]

    def _physics_step(self, n: int) -> None:
        st = self.servo_truth
        for _ in range(n):
            if st.latency_s > 0 and self.torque.any():
                self._apply_torque()             # the goals that act in this physics step
            if st.dc_motor is not None:
                d, sim = self.sim.data, self.sim
                q, dq = sim.q_joint_rad, sim.dq_joint_rad_s
                e = self._effective_target() - np.pi - q
                d.qfrc_applied[sim.joint_dof_adr] = st.dc_motor.torque_nm(e, dq, self.torque)
            self.sim.step_physics(1)
            self.record.physics_steps += 1
            if self.stand:
                self._hold_stand()
            elif self.torque.all():
                self._check_fall()
            while self.sim.time_s + 1e-9 >= self.next_imu_sim_t:
                self._emit_imu()
                self.next_imu_sim_t += RVC_PERIOD_S

    def _check_fall(self) -> None:
        """Count a fall when the body goes below :data:`FALL_HEIGHT_M` or tilts beyond
        :data:`FALL_TILT_RAD` (the env's termination thresholds) while every servo holds."""
        w, x, y, z = self.sim.base_quat_wxyz
        up_z = 1.0 - 2.0 * (x * x + y * y)  # world z component of the body's z axis
        fallen = (self.sim.body_height_m < FALL_HEIGHT_M
                  or math.acos(max(-1.0, min(1.0, up_z))) > FALL_TILT_RAD)
        if fallen and not self.fallen:
            self.record.falls += 1
            self.record.fall_times_s.append(round(self.sim.time_s, 3))
        self.fallen = fallen

    def _emit_imu(self) -> None:
        if self.fault_on and self.faults.kind == "imu_silent":
            return
        r_wb = quat_wxyz_to_matrix(self.sim.base_quat_wxyz)
        if self.stand:  # held still: the accelerometer reads gravity only
            accel_b = r_wb.T @ np.array([0.0, 0.0, 9.80665])
        else:
            accel_b = self.sim.sensors().accel_m_s2
        r_wi = r_wb @ self.imu_m
        yaw, pitch, roll = matrix_to_euler_zyx(r_wi)
        pkt = encode_rvc(self.imu_index, math.degrees(yaw), math.degrees(pitch),
                         math.degrees(roll), self.imu_m.T @ accel_b)
        if self.fault_on and self.faults.kind == "imu_checksum":
            pkt = pkt[:-1] + bytes([pkt[-1] ^ 0x3C])
        self.imu_out += pkt
        self.imu_index = (self.imu_index + 1) & 0xFF
        self.record.imu_packets += 1
        self.last_imu_wall = time.monotonic()

    def tick(self, now: float | None = None) -> None:
        """Advance the clock-driven parts: faults, real-time physics, the idle IMU stream."""
        now = time.monotonic() if now is None else now
        with self.lock:
            f = self.faults
            t_on = self.record.first_torque_on_s
            if (f.kind and not self.fault_on and t_on is not None
                    and now - self.t_boot >= t_on + f.after_s):
                self.fault_on = True
                self.record.fault_active_s = now - self.t_boot
                if f.kind in ("overheat", "undervolt") and f.servo_id in self.mem:
                    m = self.mem[f.servo_id]
                    if f.kind == "overheat":
                        m[63] = 80
                    else:
                        m[62] = 80
            if self.mode == "realtime":
                target = self.sim_t_anchor + (now - self.t_phys_anchor)
                n = int((target - self.sim.time_s) / self.sim.physics_dt_s)
                if n > 200:  # fell far behind (process stopped): skip, do not burst
                    self.t_phys_anchor, self.sim_t_anchor, n = now, self.sim.time_s, 0
                if n > 0:
                    self._apply_torque()
                    self._physics_step(n)
            elif now - self.last_step_wall > 0.03 and now - self.last_imu_wall >= RVC_PERIOD_S:
                self._emit_imu()  # stepped and idle: keep the stream alive at 100 Hz

    # -------------------------------------------------------------- operator (stand)
    def place_default_pose(self) -> None:
        """The operator puts every joint in the default pose (limp joints keep it)."""
        with self.lock:
            self.hold_q = self.sim.interface.arrays()["default_pose_rad"] - np.pi
            self._hold_stand()
            self.sim.forward()

    def tilt(self, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> None:
        """The operator tilts the stand: nose down for positive ``pitch_deg``."""
        from deploy.imu import euler_zyx_to_matrix, matrix_to_quat_wxyz

        with self.lock:
            r = euler_zyx_to_matrix(0.0, math.radians(pitch_deg), math.radians(roll_deg))
            self.stand_quat = matrix_to_quat_wxyz(r)
            self._hold_stand()
            self.sim.forward()

    # -------------------------------------------------------------- serving
    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            self.record.sim_time_s = self.sim.time_s
            return asdict(self.record)

    def serve(self, bus_fd: int, imu_fd: int, slave_fd: int | None = None,
              duration_s: float | None = None, stop: list[bool] | None = None,
              fds_to_close: tuple[int, ...] = ()) -> None:
        """Answer the bus and stream the IMU until ``duration_s`` or ``stop[0]``.

        Args:
            bus_fd, imu_fd: pty masters of the bus and the IMU.
            slave_fd: the bus pty's slave, kept open here, whose termios speed says at which
                baud rate the host talks (``None``: not checked).
            fds_to_close: closed on an injected ``unplug`` (the adapter disappears).
        """
        stop = stop if stop is not None else [False]
        t_end = None if duration_s is None else time.monotonic() + duration_s
        want_speed = getattr(termios, f"B{self.baud}", None)
        pending: list[tuple[float, bytes]] = []
        os.set_blocking(imu_fd, False)
        while not stop[0] and (t_end is None or time.monotonic() < t_end):
            wait = self.sim.physics_dt_s / 2 if self.mode == "realtime" else 0.002
            if pending:
                wait = max(0.0, min(wait, pending[0][0] - time.monotonic() - 2e-4))
            try:
                ready, _, _ = select.select([bus_fd], [], [], wait)
            except InterruptedError:
                continue
            now = time.monotonic()
            if ready:
                try:
                    data = os.read(bus_fd, 4096)
                except OSError:
                    data = b""
                    time.sleep(0.001)
                if data and slave_fd is not None and want_speed is not None:
                    try:
                        speed = termios.tcgetattr(slave_fd)[4]
                    except termios.error:
                        speed = want_speed
                    if speed != want_speed:
                        self.record.wrong_baud_bytes += len(data)
                        data = b""
                if data:
                    reply = self.feed(data, now)
                    if reply:
                        pending.append((self.reply_ready_at, reply))
            self.tick()
            if self.imu_out:  # before the bus replies: the host reads the IMU after them
                try:
                    n = os.write(imu_fd, bytes(self.imu_out))
                    del self.imu_out[:n]
                except (BlockingIOError, OSError):
                    if len(self.imu_out) > 4096:
                        del self.imu_out[:-4096]
            while pending and time.monotonic() >= pending[0][0] - 2e-4:
                t_ready, reply = pending.pop(0)
                while time.monotonic() < t_ready:
                    pass
                try:
                    os.write(bus_fd, reply)
                except OSError:
                    pass
            if self.fault_on and self.faults.kind == "unplug" and not self.unplugged:
                self.unplugged = True
                for fd in fds_to_close:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                return

    def start_thread(self) -> tuple[str, str, threading.Event]:
        """Serve in a daemon thread (tests, calibration). Returns ``(bus, imu, stop_event)``."""
        bus_m, bus_s, bus_path = open_pty()
        imu_m, imu_s, imu_path = open_pty()
        stop = [False]
        ev = threading.Event()

        def run() -> None:
            try:
                self.serve(bus_m, imu_m, bus_s, stop=stop)
            finally:
                for fd in (bus_m, bus_s, imu_m, imu_s):
                    try:
                        os.close(fd)
                    except OSError:
                        pass

        th = threading.Thread(target=run, daemon=True)
        th.start()

        def watch() -> None:
            ev.wait()
            stop[0] = True

        threading.Thread(target=watch, daemon=True).start()
        return bus_path, imu_path, ev


class EmulatedOperator:
    """A scripted person at the emulated robot, answering ``robotac calibrate``'s prompts.

    They act on the simulation (put the legs in the default pose, level or tilt the stand) and
    look at it (did the joint's angle grow when its servo's ticks grew?), as a person at the
    real robot would. ``transcript`` keeps the dialogue.

    Args:
        emu: The emulator, on its stand.
        tilt_deg: How far they tilt the robot nose down for the IMU check [deg].
        wrong_direction: Joints for which they answer the direction question wrongly (tests).
    """

    def __init__(self, emu: StsBusEmulator, tilt_deg: float = 25.0,
                 wrong_direction: tuple[str, ...] = ()):
        self.emu = emu
        self.tilt_deg = tilt_deg
        self.wrong = set(wrong_direction)
        self.q_before: dict[int, float] = {}
        self.transcript: list[str] = []

    def ask(self, key: str, prompt: str) -> str:
        emu = self.emu
        names = emu.sim.interface.joint_names
        answer = ""
        if key == "assign":
            answer = "y"
        elif key == "default_pose":
            emu.place_default_pose()
        elif key.startswith("clear:"):
            k = names.index(key.split(":", 1)[1])
            with emu.lock:
                self.q_before[k] = float(emu.sim.q_joint_rad[k])
        elif key.startswith("moved:"):
            name = key.split(":", 1)[1]
            k = names.index(name)
            with emu.lock:
                grew = float(emu.sim.q_joint_rad[k]) > self.q_before[k]
            answer = "y" if grew != (name in self.wrong) else "n"
        elif key == "level":
            emu.tilt(0.0, 0.0)
            time.sleep(0.1)
        elif key == "tilt":
            emu.tilt(pitch_deg=self.tilt_deg)
            time.sleep(0.1)
        self.transcript.append(prompt + answer)
        print(prompt + answer, flush=True)
        return answer


def open_pty() -> tuple[int, int, str]:
    """A raw pty: ``(master_fd, slave_fd, slave_path)`` (keep the slave open: no EIO while no
    host is connected)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    return master, slave, os.ttyname(slave)


def _write_report(path: str | None, emu: StsBusEmulator) -> None:
    if not path:
        return
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(emu.snapshot(), indent=1))
    os.replace(tmp, p)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m deploy.sim.sts_emulator",
        description="Emulated Feetech STS servo bus (12 STS3215 on MuJoCo) and BNO08x RVC IMU "
                    "on two pseudo-terminals.",
    )
    ap.add_argument("--mode", choices=("realtime", "stepped"), default="realtime")
    ap.add_argument("--baud", type=int, default=1_000_000, help="the servos' baud rate")
    ap.add_argument("--wire-baud", type=int, default=1_000_000,
                    help="pace replies as on a wire at this rate (0: no pacing)")
    ap.add_argument("--fault", choices=FAULT_KINDS, default=None, help="inject this fault")
    ap.add_argument("--fault-servo", type=int, default=5, help="servo ID of the fault")
    ap.add_argument("--fault-after-s", type=float, default=1.0,
                    help="fault starts this long after the first torque enable [s]")
    ap.add_argument("--corrupt-rate", type=float, default=0.0,
                    help="share of status packets sent with a bad checksum (from boot)")
    ap.add_argument("--drop-rate", type=float, default=0.0,
                    help="share of status packets lost (from boot)")
    ap.add_argument("--fault-seed", type=int, default=0,
                    help="seed of the draws of --corrupt-rate and --drop-rate")
    ap.add_argument("--register", action="append", default=[], metavar="ID:NAME=VALUE",
                    help="set a servo's register before serving, e.g. 5:Operating_Mode=3 or "
                         "5:Min_Position_Limit=0 (names of deploy.sts.ADDR, or an address); "
                         "repeatable")
    ap.add_argument("--stand", action="store_true", help="body held in the air (calibration)")
    ap.add_argument("--robot", default=None,
                    help="the robot: a shipped description's name or a description folder "
                         "(docs/your_robot.md); default: the default quadruped")
    ap.add_argument("--servo-truth", choices=sorted(SERVO_TRUTHS), default="description",
                    help="the servos' true model (robotac identify's target)")
    ap.add_argument("--steps-per-write", type=int, default=None,
                    help="physics steps a goal sync write advances in stepped mode "
                         "(default: one control period)")
    ap.add_argument("--write-calibration", default=None,
                    help="write the exact calibration of the emulated hardware here")
    ap.add_argument("--report", default=None, help="write the bus record here (JSON) on exit")
    ap.add_argument("--duration-s", type=float, default=None, help="exit after this long [s]")
    ap.add_argument("--rt-priority", type=int, default=0,
                    help="serve under SCHED_FIFO at this priority (Linux, root); 0 = default")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT or ``--duration-s``; print ``PORT``, ``IMU`` (and
    ``CALIBRATION``) lines first."""
    args = build_parser().parse_args(argv)
    emu = StsBusEmulator(mode=args.mode, baud=args.baud, wire_baud=args.wire_baud,
                         faults=EmulatorFaults(args.fault, args.fault_servo, args.fault_after_s,
                                               args.corrupt_rate, args.drop_rate,
                                               args.fault_seed),
                         stand=args.stand, robot=args.robot,
                         servo_truth=SERVO_TRUTHS[args.servo_truth],
                         steps_per_write=args.steps_per_write)
    for item in args.register:
        try:
            sid, rest = item.split(":", 1)
            name, value = rest.split("=", 1)
            emu.set_register(int(sid), name.strip(), int(value, 0))
        except ValueError as exc:
            print(f"sts emulator: --register {item!r}: {exc} (expected ID:NAME=VALUE)",
                  file=sys.stderr)
            return 2
    bus_m, bus_s, bus_path = open_pty()
    imu_m, imu_s, imu_path = open_pty()
    stop = [False]
    if args.rt_priority > 0:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.rt_priority))
        except (AttributeError, OSError) as exc:
            print(f"sts emulator: SCHED_FIFO refused ({exc}); default scheduler", file=sys.stderr)

    def _on_signal(signum: int, frame: object) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    gc.collect()
    gc.freeze()
    print(f"PORT {bus_path}", flush=True)
    print(f"IMU {imu_path}", flush=True)
    if args.write_calibration:
        path = emu.truth.calibration().save(args.write_calibration)
        print(f"CALIBRATION {path}", flush=True)
    try:
        emu.serve(bus_m, imu_m, bus_s, args.duration_s, stop,
                  fds_to_close=(bus_m, bus_s, imu_m, imu_s))
    finally:
        _write_report(args.report, emu)
        for fd in (bus_m, bus_s, imu_m, imu_s):
            try:
                os.close(fd)
            except OSError:
                pass
    r = emu.record
    print(f"sts emulator: {r.packets_rx} packets, {r.goal_writes} goal writes, "
          f"{r.goals_outside_limits} outside the limits, fault {r.fault_kind} at "
          f"{r.fault_active_s}, torque off after it at {r.torque_off_after_fault_s}, "
          f"{r.corrupted_replies} replies corrupted and {r.dropped_replies} dropped on purpose, "
          f"{r.falls} falls", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
