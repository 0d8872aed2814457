"""Feetech STS servo bus (STS3215) and a BNO08x RVC IMU as a :class:`~deploy.robot_link.RobotLink`.

The companion computer drives the twelve servos directly over a half-duplex TTL bus (a USB bus
adapter such as Waveshare's "Bus Servo Adapter" or Feetech's FE-URT-1) with Feetech's vendor SDK,
``feetech-servo-sdk`` (``import scservo_sdk``, STS = protocol end 0, as LeRobot uses it). The SDK
is an optional extra: ``pip install 'robotac[sts]'``; it is imported only here, lazily.

Each control period, as the deploy loop drives it (``LoopConfig.fresh_state``, the default):

1. :meth:`StsBusLink.read` at the deadline: one sync read (0x82) of Present_Position and
   Present_Speed (56-59), every ``telemetry_every``-th period of 56-63 (plus Present_Load,
   Present_Voltage, Present_Temperature); each status packet's error byte is checked; the IMU
   stream is drained (non-blocking) and the latest orientation mapped to the body frame;
2. :meth:`StsBusLink.command`: the target passes a last guard (finite and inside the
   calibrated joint limits, else nothing is written and an ERROR 6 reply comes back; the loop
   stops on it); ticks are clipped to the ticks of the calibrated limits after rounding, so no
   goal outside them ever reaches the bus; one sync write (0x83) of the 12 Goal_Position words
   (address 42). The state that answers it is the one step 1 read in this period (no second
   sync read: the bus carries one sync write and one sync read a period). When no READ gave
   this period's state (``fresh_state=False``, the ramp and hold phases, or a READ that failed)
   :meth:`~StsBusLink.command` sync-reads after the write, as a protocol-v1 STATE answers a
   COMMAND.

Transient bus errors are retried, counted, and ride through (DESIGN.md contract 7): a sync read
whose status packet fails its checksum, is cut short, or is missing (a later servo's came
instead, or none came within the reply timeout) is read again, after the rest of its replies
have passed, while the call's reply timeout leaves time for another (at most
:data:`READ_ATTEMPTS` sync reads a call; at 50 Hz 2-3 fit in the loop's READ). A period whose
reads all fail is a missed period: the reply is ``None``, the loop holds the last state, and the
link notes it (``stats_dict()["failed_period_events"]``). Only persistent loss stops the
robot, with a :class:`~deploy.robot_link.LinkFault` naming the servo, the error and the figures:
:data:`MAX_FAILED_PERIODS` (5) failed periods in a row, or :data:`MAX_FAILED_IN_WINDOW` (10) of
the last :data:`ERROR_WINDOW_PERIODS` (50). Why these figures: see :data:`MAX_FAILED_PERIODS`.

Faults returned as :class:`~deploy.robot_link.LinkFault` at once (the loop stops, ESTOP path,
which releases the torque): a servo's error bits (voltage, angle sensor, overheat, over-current,
overload), a temperature above or a voltage below the calibration's limits, an IMU silent for
``imu_timeout_s``. A failing or vanished port raises :class:`~deploy.link.LinkError` with
``port_lost=True``, at once (no retry: the adapter is gone).

Connect (:meth:`StsBusLink.connect`), every refusal before the torque goes on: ping every
calibrated ID (bounded tries; a wrong baud rate or a missing servo is named and nothing moves),
check the model number, read each servo's configuration (addresses 3-33): Operating_Mode (33)
must be 0 (position mode; in step mode, 3, Goal_Position is a relative move, so the goal =
present write at torque-on would move the joint by about its present position, ~2,000 ticks);
wait for the first IMU packet; read the positions (a joint more than 0.35 rad outside its
calibrated limits means a stale calibration: refused; more than
:data:`START_OUTSIDE_TOLERANCE_RAD` (0.03 rad) outside: refused, the operator moves it into
range by hand), the supply voltage and temperature against the calibration's limits (the policy
was trained for the 12 V STS3215; the bus cannot tell the 7.4 V variant, same model number 777,
but a 2S supply reads below the 10 V limit and a 7.4 V servo on 12 V raises its input-voltage
error bit: both refused); Min/Max_Position_Limit (9/11) must be the calibrated range in ticks
(within :data:`LIMIT_TOLERANCE_TICKS`; ``robotac calibrate`` writes them: other values mean a
replaced or reset servo, or a calibration of another robot). Then the EEPROM, where it differs:
Return_Delay_Time (7) = 0 (the factory's 250 = 500 us per reply is 6 ms a sync read of 12; a
servo that refuses it is a warning, not a stop), the temperature and voltage limits of the
calibration; the USB adapter's latency timer is checked (:func:`latency_timer_warning`); then
Goal_Position = Present_Position clipped into the calibrated range (enabling the torque moves a
joint at most 0.03 rad), the torque limit, Torque_Enable = 1. :meth:`StsBusLink.passive` and
:meth:`StsBusLink.estop` both write Torque_Enable = 0 to every servo (the STS has no damped
mode; the servos go limp), read Torque_Enable back from every servo and write it again until all
read 0; a servo that does not is named in a :class:`~deploy.robot_link.LinkFault`. Every SDK
call frees the port in a ``finally:`` (the SDK marks it busy during a request; an interrupt
inside one would otherwise make every later request, the stop's torque-off included, fail as
busy).

The SDK's own packet timeout (``PortHandler.setPacketTimeout``: about 35 ms, more for a sync
read, plus a busy wait) is replaced by the link's reply timeout, and its reads wait on ``select``
instead of spinning; its ``GroupSyncRead`` is extended to keep each servo's error byte, which the
stock one drops, and to tell a lost reply at once (the servos answer in the order asked).
Control-table addresses and units: Feetech STS3215 memory table, as in LeRobot's
``lerobot/motors/feetech/tables.py``.
"""

from __future__ import annotations

import math
import os
import select
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deploy import protocol as P
from deploy.calibration import Calibration, imu_axes_matrix
from deploy.imu import ImuError, RvcImu
from deploy.link import LinkError
from deploy.robot_link import LinkFault, Reply
from deploy.safety import Fault
from envs.interface import RobotInterface

__all__ = ["StsBusLink", "load_sdk", "ADDR", "BAUD_INDEX", "ERROR_BITS", "OPERATING_MODES",
           "describe_error", "sign_magnitude", "to_sign_magnitude", "bus_bytes_per_period",
           "wire_time_s", "latency_timer_warning", "MAX_FAILED_PERIODS", "ERROR_WINDOW_PERIODS",
           "MAX_FAILED_IN_WINDOW", "READ_ATTEMPTS"]

#: STS3215 control table: name -> (address, bytes).
ADDR: dict[str, tuple[int, int]] = {
    "Model_Number": (3, 2), "ID": (5, 1), "Baud_Rate": (6, 1), "Return_Delay_Time": (7, 1),
    "Min_Position_Limit": (9, 2), "Max_Position_Limit": (11, 2),
    "Max_Temperature_Limit": (13, 1), "Max_Voltage_Limit": (14, 1), "Min_Voltage_Limit": (15, 1),
    "Max_Torque_Limit": (16, 2), "Homing_Offset": (31, 2), "Operating_Mode": (33, 1),
    "Torque_Enable": (40, 1), "Acceleration": (41, 1), "Goal_Position": (42, 2),
    "Goal_Time": (44, 2), "Goal_Velocity": (46, 2), "Torque_Limit": (48, 2), "Lock": (55, 1),
    "Present_Position": (56, 2), "Present_Velocity": (58, 2), "Present_Load": (60, 2),
    "Present_Voltage": (62, 1), "Present_Temperature": (63, 1), "Status": (65, 1),
    "Moving": (66, 1), "Present_Current": (69, 2),
}
#: Baud_Rate register value per baud rate.
BAUD_INDEX = {1_000_000: 0, 500_000: 1, 250_000: 2, 128_000: 3, 115_200: 4, 57_600: 5,
              38_400: 6, 19_200: 7}
#: Status-packet error bits (``scservo_sdk.protocol_packet_handler.ERRBIT_*``).
ERROR_BITS = {0x01: "input voltage", 0x02: "angle sensor", 0x04: "overheat",
              0x08: "over-current", 0x20: "overload"}
#: Operating_Mode (address 33) values; only 0 makes Goal_Position an absolute position.
OPERATING_MODES = {0: "position mode", 1: "wheel mode (constant speed)",
                   2: "PWM mode (open loop)", 3: "step mode (Goal_Position is a relative move)"}
#: Sign bit of the sign-magnitude registers.
SPEED_SIGN_BIT = 15
LOAD_SIGN_BIT = 10
#: Control periods in a row without a valid state after which the link reports persistent loss
#: (a :class:`LinkFault`); fewer are missed periods (``None``: the loop holds the last state).
#: 5 periods = 100 ms at 50 Hz, the loop's ``max_consecutive_drops`` for protocol v1. Long
#: enough: at 1 % of status packets corrupt, a sync read of 12 fails with 1 - 0.99^12 = 11 %;
#: with one retry in the READ and one sync read after the write a period fails with at most
#: 0.11^3 = 0.15 % (less with the retries that fit), and 5 in a row with 7e-15. Short enough: a
#: period without a state still sends a target, from the held state, so the robot walks blind
#: (no tilt check, no reaction to a push); the shipped policy at 0.5 m/s on flat ground, its
#: state held for 5 to 150 periods mid-walk, did not fall in the emulator (so falls do not
#: bound N there), and a dead servo or a cut bus stops the robot within 100 ms, while it still
#: stands (docs/deploy.md, "Transient bus errors").
MAX_FAILED_PERIODS = 5
#: The other persistent-loss rule: :data:`MAX_FAILED_IN_WINDOW` failed periods among the last
#: :data:`ERROR_WINDOW_PERIODS` (20 % over 1 s at 50 Hz) stop the robot, even with no 5 in a
#: row: a bus that loses a state every few periods leaves the policy on held states too often.
#: At a 0.15 % period failure rate (1 % corrupt status packets), 10 of 50 has a probability of
#: about 1e-19 per window; at 8 % corrupt packets (two thirds of the sync reads fail) the run
#: still completed with 33 failed periods in 500 (docs/deploy.md).
ERROR_WINDOW_PERIODS = 50
MAX_FAILED_IN_WINDOW = 10
#: Sync reads per call at most (the first and its retries). The reply timeout bounds them first:
#: a retry starts only while a typical sync read (a running mean of the successful ones) still
#: fits before the call's deadline (at 50 Hz, 2-3 fit in the loop's 6 ms READ, 4-5 in a
#: COMMAND's 12 ms; more in the 100-200 ms reads at start).
READ_ATTEMPTS = 10
#: A retry starts only when this many typical sync reads' time is left before the deadline.
RETRY_MARGIN = 1.0
#: A servo's Min/Max_Position_Limit may differ from the calibrated range's ticks by this much
#: (the calibration file keeps zero offsets to 0.01 tick; ``robotac calibrate`` rounds inward).
LIMIT_TOLERANCE_TICKS = 2
#: After a failed sync read, its other replies are let pass before the retry's request (the bus
#: is half-duplex): until they are in, or the bus has been quiet this long [s] (longer than a USB
#: adapter's 1 ms latency timer).
DRAIN_QUIET_S = 0.0015
#: Where Linux shows a USB serial adapter's latency timer (FTDI: ``ftdi_sio``).
USB_SERIAL_SYSFS = Path("/sys/bus/usb-serial/devices")
#: Failed-period notes kept in the stats (the first ones; the count is always kept).
MAX_EVENTS = 20
try:
    from termios import error as _TermiosError
except ImportError:  # not POSIX
    _TermiosError = OSError  # type: ignore[misc, assignment]

#: What a failing or vanished port raises through pyserial and the SDK.
_PORT_ERRORS = (OSError, _TermiosError)
_FAST_READ = (56, 4)   # Present_Position, Present_Velocity
#: A joint read further outside its calibrated limits at connect means a stale calibration [rad].
STALE_CALIBRATION_RAD = 0.35
#: A joint read at most this far outside its calibrated limits at connect is accepted: enabling
#: the torque moves it to the limit, a jump of at most this much [rad]; further out is refused.
START_OUTSIDE_TOLERANCE_RAD = 0.03
_FULL_READ = (56, 8)   # ... Present_Load, Present_Voltage, Present_Temperature


def describe_error(bits: int) -> str:
    """``"overheat, overload"`` for error byte ``0x24``."""
    names = [n for b, n in ERROR_BITS.items() if bits & b]
    return ", ".join(names) if names else f"unknown error bits 0x{bits:02X}"


def sign_magnitude(v: int, sign_bit: int) -> int:
    """Decode a Feetech sign-magnitude register value (bit ``sign_bit`` = negative)."""
    return -(v & ((1 << sign_bit) - 1)) if v & (1 << sign_bit) else v & ((1 << sign_bit) - 1)


def to_sign_magnitude(v: int, sign_bit: int) -> int:
    """Encode ``v`` as a Feetech sign-magnitude value (saturating at ``2**sign_bit - 1``)."""
    mag = min(abs(int(v)), (1 << sign_bit) - 1)
    return mag | (1 << sign_bit) if v < 0 else mag


def bus_bytes_per_period(n_servos: int, read_len: int = 4) -> dict[str, int]:
    """Bytes on the wire of one period: sync write of 2-byte goals, sync read instruction, and
    the ``n_servos`` status packets of ``read_len`` data bytes.

    Packet = ``FF FF ID LEN INST/ERR params CHK``: sync write ``8 + 3 n``, sync read ``8 + n``,
    status ``6 + read_len`` each.
    """
    sync_write = 8 + 3 * n_servos
    sync_read = 8 + n_servos
    status = (6 + read_len) * n_servos
    return {"sync_write": sync_write, "sync_read": sync_read, "status": status,
            "total": sync_write + sync_read + status}


def wire_time_s(n_bytes: int, baud: int) -> float:
    """Time of ``n_bytes`` on an 8N1 wire (10 bits per byte) [s]."""
    return n_bytes * 10.0 / baud


def latency_timer_warning(port: str, sysfs: Path = USB_SERIAL_SYSFS) -> str | None:
    """A warning with the fix when the USB adapter of ``port`` has a latency timer other than 1 ms.

    An FTDI adapter holds received bytes up to ``latency_timer`` ms (16 by default) before it
    sends them over USB: each sync read waits that long. ``port`` may be a symlink
    (``/dev/serial/by-id/...``); the file is ``<sysfs>/<tty>/latency_timer``.

    Returns:
        ``None`` when it is 1, or when there is no such file (not a USB serial adapter, e.g. a
        pty, or another OS): nothing to check.
    """
    tty = os.path.basename(os.path.realpath(port))
    path = Path(sysfs) / tty / "latency_timer"
    try:
        value = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    if value == 1:
        return None
    return (f"the USB adapter of the servo bus {port!r} ({tty}) has latency_timer = {value} ms: "
            f"each sync read waits up to {value} ms in the adapter. Set it to 1 ms: "
            f"echo 1 | sudo tee {path} (to keep it, the udev rule in docs/hardware.md)")


def load_sdk() -> Any:
    """Import ``scservo_sdk`` (the ``feetech-servo-sdk`` package).

    Raises:
        LinkError: when it is not installed, naming the extra to install.
    """
    try:
        import scservo_sdk
    except ModuleNotFoundError as exc:
        raise LinkError(
            "the STS backend needs Feetech's SDK (module scservo_sdk): pip install "
            "'robotac[sts]' (or pip install feetech-servo-sdk==1.0.0)"
        ) from exc
    return scservo_sdk


def _sdk_classes(sdk: Any) -> tuple[type, type]:
    """A PortHandler with a bounded, select-based wait and a GroupSyncRead keeping error bytes."""

    class BoundedPortHandler(sdk.PortHandler):  # type: ignore[misc, name-defined]
        """``PortHandler`` whose packet timeout is :attr:`budget_ms` (set per request)."""

        budget_ms = 10.0
        #: Bytes read since the last :meth:`clearPort` (0 after a timeout: nothing came at all).
        rx_bytes = 0
        #: Whether the reply timeout ended a wait since the last :meth:`clearPort`. The SDK
        #: reports a status packet that timed out half-received as ``COMM_RX_CORRUPT``, as it
        #: does a failed checksum; this tells the two apart (a reply still arriving when the
        #: deadline came, e.g. on a late host, is a late reply, not a corrupt one).
        timed_out = False

        def clearPort(self) -> None:  # noqa: N802 - SDK name; called before every request
            self.rx_bytes = 0
            self.timed_out = False
            super().clearPort()

        def isPacketTimeout(self) -> bool:  # noqa: N802 - SDK name
            if super().isPacketTimeout():
                self.timed_out = True
                return True
            return False

        def setPacketTimeout(self, packet_length: int) -> None:  # noqa: N802 - SDK name
            self.packet_start_time = self.getCurrentTime()
            self.packet_timeout = self.budget_ms

        def setPacketTimeoutMillis(self, msec: float) -> None:  # noqa: N802 - SDK name
            self.packet_start_time = self.getCurrentTime()
            self.packet_timeout = min(float(msec), self.budget_ms)

        def readPort(self, length: int) -> bytes:  # noqa: N802 - SDK name
            data = self.ser.read(length)
            self.rx_bytes += len(data)
            if not data:
                # Wait for bytes instead of spinning, until the reply timeout: select wakes as
                # soon as they come. (A 0.2 ms wait, as before, spun the CPU through the whole
                # timeout: on a busy machine it took the CPU from the rest of the host, and a
                # thread of the same process, e.g. the bus emulator of the tests, found no
                # moment to take the GIL and answered late, after the timeout.)
                left_s = (self.packet_timeout - self.getTimeSinceStart()) * 1e-3
                select.select([self.ser.fileno()], [], [], min(max(left_s, 0.0), 1.0))
            return data

    class ErrorKeepingSyncRead(sdk.GroupSyncRead):  # type: ignore[misc, name-defined]
        """``GroupSyncRead`` that keeps every status packet's error byte (:attr:`errors`), the
        ID whose reply failed (:attr:`failed_id`) and whether that reply was lost
        (:attr:`lost`: a later servo's came in its place).

        The servos answer in the order asked. A status packet of another data length, of an ID
        not asked, or of an ID already read is skipped (the SDK's ``readRx`` takes any packet of
        the right ID): a late reply to a request that an exception cut short (Ctrl-C) is never
        read as this one's. One of an ID asked later means the awaited servo's reply is lost:
        the read fails at once (``COMM_RX_TIMEOUT``) instead of waiting out the timeout. A
        status packet the reply timeout cut short is a timeout too, not ``COMM_RX_CORRUPT`` as
        the SDK reports it: it was late (a host descheduled past the deadline), its checksum
        never failed.
        """

        def rxPacket(self) -> int:  # noqa: N802 - SDK name
            self.errors: dict[int, int] = {}
            self.failed_id: int | None = None
            self.lost = False
            order = {sid: i for i, sid in enumerate(self.data_dict)}
            result = sdk.COMM_RX_FAIL
            for i, scs_id in enumerate(self.data_dict):
                while True:  # bounded: the packet timeout runs from the request
                    packet, result = self.ph.rxPacket(self.port)
                    if result != sdk.COMM_SUCCESS:
                        break
                    if packet[3] == self.data_length + 2 and order.get(packet[2], -1) >= i:
                        break
                if result == sdk.COMM_SUCCESS and packet[2] != scs_id:
                    self.failed_id, self.lost = scs_id, True
                    return sdk.COMM_RX_TIMEOUT
                if result != sdk.COMM_SUCCESS:
                    self.failed_id = scs_id
                    if result == sdk.COMM_RX_CORRUPT and getattr(self.port, "timed_out", False):
                        # Cut short by the reply timeout, not a failed checksum: late.
                        return sdk.COMM_RX_TIMEOUT
                    return result
                self.data_dict[scs_id] = list(packet[5:5 + self.data_length])
                self.errors[scs_id] = packet[4]
            self.last_result = True
            return result

    return BoundedPortHandler, ErrorKeepingSyncRead


@dataclass(frozen=True)
class _Miss:
    """One failed sync read: ``kind`` ``"corrupt"`` (bad checksum), ``"lost"`` (the servo's reply
    missing, later ones came), ``"late"`` (no whole reply within the timeout, others came),
    ``"silent"`` (no byte at all: the whole bus silent), ``"cut"`` (a reply missing from a read
    that had less time than one sync read takes: the host was late, e.g. on a busy machine,
    which says nothing of the bus); the servo, and one line."""

    kind: str
    sid: int | None
    detail: str


class _Failed(list):
    """The :class:`_Miss` of every sync read of a call that got no valid state."""


class StsBusLink:
    """Twelve Feetech STS servos on one bus, plus a BNO08x RVC IMU, as a robot link.

    Args:
        port: Bus adapter device (``/dev/ttyUSB0``, ``/dev/serial/by-id/...``) or the emulator's
            pty.
        calibration: A checked :class:`~deploy.calibration.Calibration` (IDs, directions, zero
            offsets, limits, IMU axes).
        imu_port: Serial device of the IMU in RVC mode; ``None``: no IMU (the state then carries
            an upright orientation and ``has_imu`` is false; for bench tests only).
        baud: Bus baud rate; default the calibration's.
        interface: The robot interface (joint order); default: the calibration's
            (:attr:`deploy.calibration.Calibration.robot_interface`).
        telemetry_every: Read load, voltage and temperature every this many periods.
        imu_timeout_s: Stop when no valid IMU packet came for this long [s].
        ping_timeout_s: Reply timeout of each ping and register read at connect [s]; the
            start's state read gets at least this long too.
        health_timeout_s: When a servo reports error bits, its voltage and temperature are read
            at once for the stop reason, within this time [s] (else the reason goes without).
        max_failed_periods: Periods in a row without a valid state that stop the robot
            (:data:`MAX_FAILED_PERIODS`).
        error_window_periods, max_failed_in_window: ``max_failed_in_window`` failed periods
            among the last ``error_window_periods`` stop it too (:data:`ERROR_WINDOW_PERIODS`).
        read_attempts: Sync reads per call at most (:data:`READ_ATTEMPTS`).
        latency_sysfs: Where the USB serial adapters' latency timers are
            (:func:`latency_timer_warning`).

    Attributes:
        warnings: What connect found worth saying but not refusing (a latency timer other than
            1 ms, a servo that keeps its return delay); also printed to stderr and in
            :meth:`stats_dict`.

    Raises:
        LinkError: the SDK is missing, the baud rate is not one the servos support, a port
            cannot be opened (the IMU's included).
    """

    kind = "sts"
    #: How the robot is left when the bus adapter vanished (reported by the loop).
    port_lost_note = ("none (bus adapter gone: STS servos have no link watchdog and hold their "
                      "last goal with torque on; cut the servo power, see docs/hardware.md)")
    #: Appended to a stop the servos did not confirm (reported by the loop).
    stop_unconfirmed_note = ("; STS servos have no link watchdog: a servo may still hold its "
                             "goal with torque on; cut the servo power, see docs/hardware.md")

    def __init__(
        self,
        port: str,
        calibration: Calibration,
        imu_port: str | None = None,
        *,
        baud: int | None = None,
        interface: RobotInterface | None = None,
        telemetry_every: int = 10,
        imu_timeout_s: float = 0.03,
        ping_timeout_s: float = 0.03,
        health_timeout_s: float = 0.005,
        max_failed_periods: int = MAX_FAILED_PERIODS,
        error_window_periods: int = ERROR_WINDOW_PERIODS,
        max_failed_in_window: int = MAX_FAILED_IN_WINDOW,
        read_attempts: int = READ_ATTEMPTS,
        latency_sysfs: Path = USB_SERIAL_SYSFS,
    ):
        self.port = port
        self.cal = calibration
        interface = interface or calibration.robot_interface
        self.interface = interface
        #: Encoder ticks per radian: the calibration's ``ticks_per_turn`` / (2 pi).
        self.ticks_per_rad = calibration.ticks_per_rad
        self.baud = int(baud or calibration.baud)
        if self.baud not in BAUD_INDEX:
            raise LinkError(
                f"baud rate {self.baud} is not one an STS servo supports "
                f"({sorted(BAUD_INDEX, reverse=True)}); the factory setting is 1000000"
            )
        if telemetry_every < 1:
            raise ValueError(f"telemetry_every must be >= 1, got {telemetry_every}")
        self.telemetry_every = int(telemetry_every)
        if not 1 <= max_failed_in_window <= error_window_periods or max_failed_periods < 1:
            raise ValueError(
                f"need max_failed_periods >= 1 and 1 <= max_failed_in_window <= "
                f"error_window_periods, got {max_failed_periods}, {max_failed_in_window}, "
                f"{error_window_periods}")
        if read_attempts < 1:
            raise ValueError(f"read_attempts must be >= 1, got {read_attempts}")
        self.max_failed_periods = int(max_failed_periods)
        self.max_failed_in_window = int(max_failed_in_window)
        self.read_attempts = int(read_attempts)
        self.latency_sysfs = Path(latency_sysfs)
        self.warnings: list[str] = []
        #: Outcome of the last ``error_window_periods`` periods (1: failed).
        self._window: deque[int] = deque(maxlen=int(error_window_periods))
        self._failed_in_row = 0
        self._streak: list[_Miss] = []        # the sync reads that failed in those periods
        self._period_misses: list[_Miss] = []  # this period's READ, when it failed
        self._fresh: tuple[P.State, float] | None = None  # this period's READ and its time
        self._last_state: P.State | None = None
        self.imu_timeout_s = float(imu_timeout_s)
        self.ping_timeout_s = float(ping_timeout_s)
        self.health_timeout_s = float(health_timeout_s)
        arr = calibration.arrays(interface)
        self.ids = [int(i) for i in arr["ids"]]
        self.names = interface.joint_names
        self.direction = arr["direction"]
        self.zero = arr["zero"]
        self.min_rad, self.max_rad = arr["min_rad"], arr["max_rad"]
        t_lo = self.zero + self.direction * (self.min_rad - math.pi) * self.ticks_per_rad
        t_hi = self.zero + self.direction * (self.max_rad - math.pi) * self.ticks_per_rad
        #: Tick range of the calibrated limits, rounded inward: no goal outside reaches the bus.
        self.tick_lo = np.ceil(np.minimum(t_lo, t_hi) - 1e-9).astype(np.int64)
        self.tick_hi = np.floor(np.maximum(t_lo, t_hi) + 1e-9).astype(np.int64)
        self.last_rtt_s = float("nan")
        self.armed = False
        self.estopped = False
        self._k = 0
        self._t0 = time.perf_counter()
        self.telemetry: dict[str, np.ndarray] = {
            "load_permille": np.zeros(len(self.ids)), "voltage_v": np.full(len(self.ids), np.nan),
            "temperature_c": np.full(len(self.ids), np.nan)}
        self.stats: dict[str, Any] = {
            "periods": 0, "sync_writes": 0, "sync_reads": 0, "timeouts": 0, "deadline_cut_reads": 0,
            "corrupt_replies": 0,
            "lost_replies": 0, "read_retries": 0, "failed_reads": 0, "failed_periods": 0,
            "max_failed_periods_in_row": 0, "failed_period_events": [],
            "sync_reads_per_period": 0.0,
            "servo_error_replies": 0, "refused_targets": 0, "imu_packets": 0,
            "imu_bad_checksums": 0, "max_temperature_c": float("nan"),
            "min_voltage_v": float("nan"), "bytes_tx": 0, "bytes_rx_expected": 0,
            "warnings": self.warnings}
        #: Typical duration of one sync read [s] per data length (a running estimate): a retry
        #: starts only when at least this much of the reply timeout is left.
        self._attempt_s = {length: wire_time_s(bus_bytes_per_period(len(self.ids), length)[
            "sync_read"] + bus_bytes_per_period(len(self.ids), length)["status"], self.baud)
            + 0.0005 for length in (_FAST_READ[1], _FULL_READ[1])}
        self.sdk = load_sdk()
        port_cls, self._sync_read_cls = _sdk_classes(self.sdk)
        self.ph = self.sdk.PacketHandler(0)
        self.port_handler = port_cls(port)
        try:
            ok = self.port_handler.setBaudRate(self.baud)  # opens the port
        except (OSError, ValueError) as exc:  # serial.SerialException is an OSError
            raise LinkError(
                f"cannot open the servo bus port {port!r} at {self.baud} baud: {exc}. Check the "
                "device path (ls /dev/ttyUSB* /dev/ttyACM* /dev/serial/by-id), that your user may "
                "open it (group 'dialout'), and that no other program holds it."
            ) from exc
        if not ok:
            raise LinkError(f"the SDK cannot set {self.baud} baud on {port!r}")
        self._fd = self.port_handler.ser.fileno()
        self._write_goal = self.sdk.GroupSyncWrite(self.port_handler, self.ph, 42, 2)
        for sid in self.ids:
            self._write_goal.addParam(sid, [0, 0])
        self._reads = {}
        for start, length in (_FAST_READ, _FULL_READ):
            g = self._sync_read_cls(self.port_handler, self.ph, start, length)
            for sid in self.ids:
                g.addParam(sid)
            self._reads[length] = g
        self.imu: RvcImu | None = None
        if imu_port is not None:
            try:
                self.imu = RvcImu(imu_port, imu_axes_matrix(calibration.imu_axes))
            except ImuError as exc:
                self.port_handler.closePort()
                raise LinkError(f"{exc}. Nothing was moved.") from exc

    # ------------------------------------------------------------------ helpers
    def _name(self, sid: int | None) -> str:
        if sid is None or sid not in self.ids:
            return f"servo {sid}"
        return f"servo {sid} ({self.names[self.ids.index(sid)]})"

    def _port_failed(self, exc: BaseException, doing: str) -> LinkError:
        self.port_handler.is_using = False
        return LinkError(
            f"servo bus port {self.port!r} failed while {doing}: {exc} (adapter unplugged?)",
            port_lost=True,
        )

    def _sync_write(self, start: int, length: int, values: list[int]) -> None:
        """One sync write of ``values`` (one per servo, in joint order) at ``start``."""
        if start == 42:
            group = self._write_goal
            for sid, v in zip(self.ids, values, strict=True):
                group.changeParam(sid, [v & 0xFF, (v >> 8) & 0xFF])
        else:
            group = self.sdk.GroupSyncWrite(self.port_handler, self.ph, start, length)
            for sid, v in zip(self.ids, values, strict=True):
                group.addParam(sid, [(v >> (8 * i)) & 0xFF for i in range(length)])
        try:
            res = group.txPacket()
        except _PORT_ERRORS as exc:
            raise self._port_failed(exc, "writing") from exc
        finally:
            self.port_handler.is_using = False
        if res != self.sdk.COMM_SUCCESS:
            raise LinkError(f"sync write to {self.port!r} failed: {self.ph.getTxRxResult(res)}")
        self.stats["sync_writes"] += 1
        self.stats["bytes_tx"] += 8 + (1 + length) * len(self.ids)

    def _ping(self, sid: int) -> tuple[int, bool]:
        self.port_handler.budget_ms = self.ping_timeout_s * 1e3
        try:
            self.port_handler.ser.reset_input_buffer()
            model, res, _ = self.ph.ping(self.port_handler, sid)
        except _PORT_ERRORS as exc:
            raise self._port_failed(exc, "pinging") from exc
        finally:
            self.port_handler.is_using = False
        return int(model), res == self.sdk.COMM_SUCCESS

    def _read_register_block(self, sid: int, addr: int, n: int, tries: int = 3) -> list[int]:
        """Read ``n`` bytes from ``addr`` of one servo (connect), retried ``tries`` times.

        Raises:
            LinkError: no valid reply after ``tries`` (named; nothing was moved).
        """
        res = self.sdk.COMM_RX_FAIL
        for _ in range(tries):
            self.port_handler.budget_ms = max(self.ping_timeout_s, 0.02) * 1e3
            try:
                self.port_handler.ser.reset_input_buffer()
                data, res, _ = self.ph.readTxRx(self.port_handler, sid, addr, n)
            except _PORT_ERRORS as exc:
                raise self._port_failed(exc, f"reading {self._name(sid)}") from exc
            finally:
                self.port_handler.is_using = False
            if res == self.sdk.COMM_SUCCESS and len(data) == n:
                return list(data)
        raise LinkError(f"{self._name(sid)}: no valid reply to a read of addresses {addr}-"
                        f"{addr + n - 1} in {tries} tries ({self.ph.getTxRxResult(res)}). "
                        "Nothing was moved.")

    def _write_register(self, sid: int, addr: int, value: int, tries: int = 3) -> bool:
        """Write one byte (acknowledged), retried ``tries`` times; True when acknowledged."""
        for _ in range(tries):
            self.port_handler.budget_ms = 50.0
            try:
                self.port_handler.ser.reset_input_buffer()
                res, err = self.ph.write1ByteTxRx(self.port_handler, sid, addr, value)
            except _PORT_ERRORS as exc:
                raise self._port_failed(exc, f"writing {self._name(sid)}") from exc
            finally:
                self.port_handler.is_using = False
            if res == self.sdk.COMM_SUCCESS:
                return True
        return False

    def _check_operating_modes(self) -> dict[int, list[int]]:
        """Read addresses 3-33 of every servo; refuse one not in position mode.

        Returns:
            ``{id: bytes of addresses 3..33}`` (for :meth:`_check_angle_limits` and the EEPROM
            settings).

        Raises:
            LinkError: a servo not in position mode (Operating_Mode, address 33; named with its
                mode); nothing has been written.
        """
        config = {sid: self._read_register_block(sid, 3, 31) for sid in self.ids}
        for sid, d in config.items():
            mode = d[33 - 3]
            if mode != 0:
                raise LinkError(
                    f"{self._name(sid)} is in operating mode {mode} "
                    f"({OPERATING_MODES.get(mode, 'unknown')}), not 0 (position mode): its "
                    "Goal_Position would not be the position the policy means (in step mode it "
                    "is a move relative to the present position, so the torque-on would jump "
                    "the joint). Set Operating_Mode (address 33) to 0 (EEPROM: Lock, address "
                    "55 = 0, then 33 = 0, then 55 = 1; Feetech's FD software does it) and start "
                    "again. Nothing was moved.")
        return config

    def _check_angle_limits(self, config: dict[int, list[int]]) -> None:
        """Refuse Min/Max_Position_Limit (9/11) other than the calibrated range in ticks (within
        :data:`LIMIT_TOLERANCE_TICKS`), naming the servo, its limits and the calibration's.

        Raises:
            LinkError: nothing has been written.
        """
        for i, sid in enumerate(self.ids):
            d = config[sid]
            lo, hi = d[9 - 3] | d[10 - 3] << 8, d[11 - 3] | d[12 - 3] << 8
            want_lo, want_hi = int(self.tick_lo[i]), int(self.tick_hi[i])
            if (abs(lo - want_lo) > LIMIT_TOLERANCE_TICKS
                    or abs(hi - want_hi) > LIMIT_TOLERANCE_TICKS):
                why = (" (both 0: multi-turn, the position is no longer absolute)"
                       if lo == hi == 0 else " (the factory setting: a replaced or reset servo?)"
                       if (lo, hi) == (0, self.cal.max_tick) else "")
                raise LinkError(
                    f"{self._name(sid)}: its angle limits Min/Max_Position_Limit (addresses 9/"
                    f"11) are [{lo}, {hi}] ticks{why}, the calibration's range "
                    f"[{self.min_rad[i]:.3f}, {self.max_rad[i]:.3f}] rad is [{want_lo}, "
                    f"{want_hi}] ticks: the servo was replaced, reset or re-mounted since "
                    "`robotac calibrate`, or the calibration is for another robot. Run "
                    "`robotac calibrate` (it writes the limits). Nothing was moved.")

    def _configure_eeprom(self, config: dict[int, list[int]]) -> None:
        """Return_Delay_Time 0 (a warning where a servo refuses it), and the calibration's
        Max_Temperature_Limit (13) and Min_Voltage_Limit (15), so the servos' own status error
        bits (checked every period) trip at our limits. EEPROM is written only where a value
        differs (unlock, write, lock).

        Raises:
            LinkError: a servo refuses the temperature or voltage limit.
        """
        want_t = int(round(self.cal.max_temperature_c))
        want_v = int(round(self.cal.min_voltage_v * 10))
        for sid in self.ids:
            d = config[sid]
            writes = {a: v for a, v in ((7, 0), (13, want_t), (15, want_v)) if d[a - 3] != v}
            if not writes:
                continue
            unlocked = self._write_register(sid, 55, 0)
            for addr, value in writes.items():
                if unlocked and self._write_register(sid, addr, value):
                    continue
                if addr == 7:
                    self.warnings.append(
                        f"{self._name(sid)} keeps Return_Delay_Time = {d[7 - 3]} "
                        f"({d[7 - 3] * 2} us before each reply): it refused 0")
                    continue
                raise LinkError(f"{self._name(sid)}: cannot write address {addr} (its "
                                f"{'temperature' if addr == 13 else 'voltage'} limit). Nothing "
                                "was moved.")
            if unlocked:
                self._write_register(sid, 55, 1)

    # ------------------------------------------------------------------ RobotLink
    def connect(self, attempts: int = 3) -> P.Info:
        """Find every calibrated servo, check it, enable the torque holding the present pose.

        Raises:
            LinkError: no servo answers (wrong baud rate, no power: said after a bounded wait of
                at most ``attempts * 12 * 2 * ping_timeout_s``), some servo does not answer
                (named, with its joint; nothing is written), a servo of another model, a servo
                not in position mode (named, with its mode), angle limits other than the
                calibration's, no IMU packet within 0.5 s or a failing IMU port, a supply
                voltage or temperature outside the calibration's limits, or a joint reading
                more than :data:`START_OUTSIDE_TOLERANCE_RAD` outside its calibrated limits
                (the message says: stale calibration, or move it into range by hand); in every
                case before the torque is enabled.
        """
        t0 = time.perf_counter()
        models: dict[int, int] = {}
        missing = list(self.ids)
        for _ in range(max(1, attempts)):
            for sid in list(missing):
                model, ok = self._ping(sid)
                if ok:
                    models[sid] = model
                    missing.remove(sid)
            if not missing:
                break
        waited = time.perf_counter() - t0
        if len(missing) == len(self.ids):
            raise LinkError(
                f"no servo answered on {self.port!r} at {self.baud} baud ({len(self.ids)} IDs, "
                f"{attempts} tries each, {waited:.2f} s): wrong baud rate (STS3215 factory "
                f"setting 1000000; the calibration says {self.cal.baud}), no servo power, or "
                "wrong wiring. Nothing was moved."
            )
        if missing:
            names = ", ".join(self._name(s) for s in missing)
            raise LinkError(
                f"{names} did not answer on {self.port!r} at {self.baud} baud ({attempts} tries): "
                "check its cable, power and ID (`robotac calibrate --scan-only`). Nothing was "
                "moved."
            )
        wrong = {s: m for s, m in models.items() if m != self.cal.servo_model}
        if wrong:
            s, m = next(iter(wrong.items()))
            raise LinkError(
                f"{self._name(s)} reports model {m}, the calibration expects "
                f"{self.cal.servo_model} (its servo_model; STS3215 = 777, STS3250 = 2825): "
                "another servo type needs another calibration (`robotac calibrate --robot` "
                "with its description). Nothing was moved."
            )
        config = self._check_operating_modes()
        has_imu = 0
        if self.imu is not None:
            try:
                arrived = self.imu.wait_first(0.5)
            except (ImuError, OSError, ValueError) as exc:
                raise LinkError(
                    f"the IMU port {self.imu.port!r} failed at start ({exc}): check that its "
                    "USB-UART adapter is plugged in and --imu-port names it (ls "
                    "/dev/serial/by-id). Nothing was moved.") from exc
            if not arrived:
                raise LinkError(
                    f"no BNO08x RVC packet on the IMU port {self.imu.port!r} within 0.5 s: check "
                    "its wiring (IMU TX -> adapter RX), 115200 baud, and that PS0 is high (RVC "
                    "mode). Nothing was moved."
                )
            has_imu = 1
        t_read = time.perf_counter()
        # At least 0.1 s (retries included), and no less than a ping gets: at start nothing
        # is powered, so waiting longer costs nothing, and a refusal must not come from a host
        # that was late (as for the pings and the register reads before).
        state = self._read_state(t_read + max(0.1, self.ping_timeout_s), full=True,
                                 t_start=t_read)
        if isinstance(state, LinkFault):
            hint = (" The policy was trained for the 12 V STS3215: a 2S (7.4 V) supply, or a "
                    "7.4 V servo variant on 12 V (its input-voltage bit), does not fit it."
                    if "voltage" in state.detail or "supply" in state.detail else "")
            raise LinkError(f"cannot start: {state.detail}.{hint} Nothing was moved.")
        if not isinstance(state, P.State):
            raise LinkError(f"cannot read the servos at start ({self._describe(state or [])}). "
                            "Nothing was moved.")
        q = state.q_rad.astype(np.float64)
        off = np.maximum(self.min_rad - q, q - self.max_rad)
        j = int(np.argmax(off))
        where = (f"joint {self.names[j]!r} ({self._name(self.ids[j])}) reads {q[j]:.3f} rad, "
                 f"{off[j]:.2f} rad outside its calibrated limits [{self.min_rad[j]:.3f}, "
                 f"{self.max_rad[j]:.3f}]")
        if off[j] > STALE_CALIBRATION_RAD:
            raise LinkError(f"{where}: the calibration is stale or for another robot (run "
                            "`robotac calibrate`). Nothing was moved.")
        if off[j] > START_OUTSIDE_TOLERANCE_RAD:
            limit = "min" if q[j] < self.min_rad[j] else "max"
            raise LinkError(
                f"{where}: enabling the torque would move it {off[j]:.2f} rad into range at "
                f"full speed. With the torque off, move it by hand past its {limit} limit "
                f"into the range (at most {START_OUTSIDE_TOLERANCE_RAD} rad outside is "
                "accepted), then start again. Nothing was moved."
            )
        self._check_angle_limits(config)
        self._configure_eeprom(config)
        latency = latency_timer_warning(self.port, self.latency_sysfs)
        if latency is not None and latency not in self.warnings:
            self.warnings.append(latency)
        for text in self.warnings:
            print(f"warning: {text}", file=sys.stderr, flush=True)
        # Goal = present (no jump when the torque goes on), clipped into the calibrated range: a
        # joint at most START_OUTSIDE_TOLERANCE_RAD outside it moves in by that much, no more.
        present = np.clip(self._last_ticks, self.tick_lo, self.tick_hi)
        self._sync_write(42, 2, [int(t) for t in present])
        self._sync_write(48, 2, [int(self.cal.torque_limit)] * len(self.ids))
        self._sync_write(40, 1, [1] * len(self.ids))                  # torque on
        self.armed, self.estopped = True, False
        return P.Info(0, has_imu, 0x0100, 0, self.min_rad, self.max_rad)

    def read(self, timeout_s: float) -> Reply:
        """Sync-read the state (retried within ``timeout_s``, see the module docstring): with
        load, voltage and temperature before the first period and every ``telemetry_every``-th
        period, else positions and speeds (1.4 ms of wire at 1 Mbaud, not 1.9).

        Returns:
            The :class:`State` (the next :meth:`command` within its reply timeout answers with
            it, without a sync read of its own); a :class:`LinkFault` (error bits, temperature,
            voltage, IMU); ``None`` when every sync read failed (counted; the period is judged
            by :meth:`command`).
        """
        t_start = time.perf_counter()
        reply = self._read_state(t_start + timeout_s, self._k % self.telemetry_every == 0,
                                 t_start=t_start)
        if isinstance(reply, _Failed):
            self.stats["failed_reads"] += 1
            self._period_misses.extend(reply)
            self._fresh = None
            return None
        if isinstance(reply, P.State):
            self._fresh = (reply, time.perf_counter())
        return reply

    def command(self, target_rad: np.ndarray, timeout_s: float) -> Reply:
        """Guard, sync-write the goals; answer with this period's state (see the module
        docstring).

        Returns:
            The state a :meth:`read` got within ``timeout_s`` before this call; else the state
            of a sync read after the write (retried within ``timeout_s`` from the write); an
            :class:`~deploy.protocol.Error` (code 6) for a target outside the limits (nothing
            written); ``None`` for a missed period (no valid state this period; the loop holds
            the last one); a :class:`LinkFault` for persistent loss
            (:data:`MAX_FAILED_PERIODS` in a row or :data:`MAX_FAILED_IN_WINDOW` of the last
            :data:`ERROR_WINDOW_PERIODS`) or a servo alarm.
        """
        t = np.asarray(target_rad, dtype=np.float64)
        if (t.shape != self.min_rad.shape or not np.isfinite(t).all()
                or (t < self.min_rad - 1e-5).any() or (t > self.max_rad + 1e-5).any()):
            self.stats["refused_targets"] += 1
            return P.Error(0, int(P.ErrorCode.TARGET_OUT_OF_RANGE))
        ticks = np.rint(self.zero + self.direction * (t - math.pi) * self.ticks_per_rad)
        ticks = np.clip(ticks.astype(np.int64), self.tick_lo, self.tick_hi)
        t_start = time.perf_counter()
        self._sync_write(42, 2, ticks.tolist())
        self.stats["periods"] += 1
        full = self._k % self.telemetry_every == 0
        self._k += 1
        fresh, self._fresh = self._fresh, None
        misses, self._period_misses = self._period_misses, []
        if fresh is not None and t_start - fresh[1] <= timeout_s:
            reply: Reply | _Failed = fresh[0]  # this period's READ: no second sync read
        else:
            reply = self._read_state(t_start + timeout_s, full, t_start=t_start)
        self.stats["sync_reads_per_period"] = self.stats["sync_reads"] / self.stats["periods"]
        if isinstance(reply, _Failed):
            return self._period_failed(_Failed(misses + reply))
        if isinstance(reply, P.State):
            self._failed_in_row = 0
            self._streak.clear()
            self._window.append(0)
        return reply

    def write_goals(self, target_rad: np.ndarray) -> bool:
        """Guard and sync-write the 12 goals, with no read (``robotac identify`` reads one servo
        after it, :meth:`read_servo`).

        The guard is :meth:`command`'s: finite and inside the calibrated limits, else nothing
        is written; ticks are clipped to the calibrated tick range after rounding.

        Returns:
            ``False`` (nothing written, counted in ``stats["refused_targets"]``) for a target
            outside the limits or not finite, ``True`` once written.

        Raises:
            LinkError: the port failed.
        """
        t = np.asarray(target_rad, dtype=np.float64)
        if (t.shape != self.min_rad.shape or not np.isfinite(t).all()
                or (t < self.min_rad - 1e-5).any() or (t > self.max_rad + 1e-5).any()):
            self.stats["refused_targets"] += 1
            return False
        ticks = np.rint(self.zero + self.direction * (t - math.pi) * self.ticks_per_rad)
        ticks = np.clip(ticks.astype(np.int64), self.tick_lo, self.tick_hi)
        self._sync_write(42, 2, ticks.tolist())
        return True

    def read_servo(self, sid: int, addr: int, n: int,
                   timeout_s: float) -> tuple[list[int], int] | None:
        """One READ of ``n`` bytes from ``addr`` of servo ``sid`` (no retry: the caller counts
        misses).

        Returns:
            ``(bytes as ints, the status packet's error byte)``, or ``None`` when no valid reply
            came within ``timeout_s`` (counted in ``stats["failed_reads"]``).

        Raises:
            LinkError: the port failed.
        """
        self.port_handler.budget_ms = timeout_s * 1e3
        try:
            self.port_handler.ser.reset_input_buffer()
            data, res, err = self.ph.readTxRx(self.port_handler, sid, addr, n)
        except _PORT_ERRORS as exc:
            raise self._port_failed(exc, f"reading {self._name(sid)}") from exc
        finally:
            self.port_handler.is_using = False
        if res != self.sdk.COMM_SUCCESS or len(data) != n:
            self.stats["failed_reads"] += 1
            return None
        self.stats["bytes_tx"] += 8
        self.stats["bytes_rx_expected"] += 6 + n
        return [int(b) for b in data], int(err)

    def passive(self, target_rad: np.ndarray, timeout_s: float) -> Reply:
        """Torque off on every servo (they go limp), confirmed by reading it back.

        Returns:
            The state (:meth:`_read` without judging it) once every servo reads
            Torque_Enable = 0; a :class:`LinkFault` naming the servos that still read 1 or did
            not answer after :attr:`release_tries` torque-off writes.
        """
        return self._release(timeout_s, writes=1)

    def estop(self, timeout_s: float) -> Reply:
        """As :meth:`passive`, the first torque-off written twice (a broadcast has no reply)."""
        self.estopped = True
        return self._release(timeout_s, writes=2)

    def stats_dict(self) -> dict[str, Any]:
        return dict(self.stats)

    def close(self) -> None:
        try:
            self.port_handler.closePort()
        except Exception:  # noqa: BLE001 - closing a dead port must not mask the original error
            pass
        if self.imu is not None:
            self.imu.close()

    def __enter__(self) -> StsBusLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _read_health(self, sid: int, i: int) -> str:
        """``"; now 80 C, 12.0 V"`` read from one servo right away (for the stop reason)."""
        self.port_handler.budget_ms = self.health_timeout_s * 1e3
        try:
            # No stale reply of this servo (a late sync read's, of another length: the SDK's
            # readTxRx takes any packet of the ID) is read as this one's.
            self.port_handler.ser.reset_input_buffer()
            data, res, _ = self.ph.readTxRx(self.port_handler, sid, 62, 2)
        except _PORT_ERRORS:
            return ""
        finally:
            self.port_handler.is_using = False
        if res != self.sdk.COMM_SUCCESS or len(data) < 2:
            return ""
        self.telemetry["voltage_v"][i], self.telemetry["temperature_c"][i] = data[0] * 0.1, data[1]
        return f"; now {data[1]} C, {data[0] * 0.1:.1f} V"

    #: Torque-off writes (each followed by a read-back of Torque_Enable) before a stop gives up.
    release_tries = 3

    def _release(self, timeout_s: float, writes: int) -> Reply:
        unreleased: dict[int, str] = {}
        for attempt in range(self.release_tries):
            for _ in range(writes if attempt == 0 else 1):
                self._torque_off()
            unreleased = self._torque_still_on(timeout_s)
            if not unreleased:
                t_start = time.perf_counter()
                state = self._read_state(t_start + timeout_s, full=False, t_start=t_start,
                                         judge=False)
                if isinstance(state, P.State):
                    return state
                if self._last_state is not None:  # released and confirmed: the last state
                    last = self._last_state
                    return P.State(0, last.t_us, self.status, last.q_rad, last.dq_rad_s,
                                   last.quat_wxyz, last.gyro_rad_s, last.accel_m_s2)
                return None
        names = ", ".join(f"{self._name(sid)} {why}" for sid, why in unreleased.items())
        return LinkFault(Fault.SERVO_SILENT,
                         f"torque release not confirmed after {self.release_tries} torque-off "
                         f"writes: {names}")

    def _torque_still_on(self, timeout_s: float) -> dict[int, str]:
        """Read Torque_Enable (address 40) of every servo with one sync read.

        Returns:
            ``{id: why}`` of the servos not confirmed off: ``"reads Torque_Enable = 1"`` or
            ``"gave no valid reply"`` (silent, or a corrupt status packet). The servo whose reply
            failed and those after it are read one by one (unless the whole bus is silent).
        """
        group = self._reads.get(1)
        if group is None:
            group = self._sync_read_cls(self.port_handler, self.ph, 40, 1)
            for sid in self.ids:
                group.addParam(sid)
            self._reads[1] = group
        self.port_handler.budget_ms = timeout_s * 1e3
        group.errors = {}  # the servos whose status packet came back (none if the write failed)
        group.failed_id = None
        try:
            self.port_handler.ser.reset_input_buffer()
            group.txRxPacket()
        except _PORT_ERRORS as exc:
            raise self._port_failed(exc, "reading the torque state") from exc
        finally:
            self.port_handler.is_using = False
        self.stats["sync_reads"] += 1
        value = {sid: group.getData(sid, 40, 1) for sid in group.errors}
        silent_bus = group.failed_id == self.ids[0] and self.port_handler.rx_bytes == 0
        if not silent_bus and len(value) < len(self.ids):
            # What is left of the failed sync read's replies passes first (half-duplex bus).
            self._drain(len(self.ids) * 7, time.perf_counter() + self.ping_timeout_s)
        for sid in self.ids:
            # The servos from the one whose reply failed on were never heard: ask each alone.
            if sid in value or silent_bus:
                continue
            self.port_handler.budget_ms = self.ping_timeout_s * 1e3
            try:
                self.port_handler.ser.reset_input_buffer()
                v, res, _ = self.ph.read1ByteTxRx(self.port_handler, sid, 40)
            except _PORT_ERRORS as exc:
                raise self._port_failed(exc, "reading the torque state") from exc
            finally:
                self.port_handler.is_using = False
            if res == self.sdk.COMM_SUCCESS:
                value[sid] = v
        return {sid: ("gave no valid reply" if sid not in value else "reads Torque_Enable = 1")
                for sid in self.ids if value.get(sid, 1) != 0}

    def _torque_off(self) -> None:
        # The port may still be marked busy by an SDK call that an exception (Ctrl-C) cut short.
        self.port_handler.is_using = False
        self._sync_write(40, 1, [0] * len(self.ids))
        self.armed = False

    @property
    def status(self) -> int:
        s = P.Status.ARMED if self.armed else 0
        s |= P.Status.ESTOPPED if self.estopped else 0
        return int(s)

    # ------------------------------------------------------------------ reads and retries
    def _drain(self, expect: int, deadline: float) -> None:
        """Read and drop up to ``expect`` bytes: the rest of a failed sync read's replies, so the
        retry's request does not collide with them on the half-duplex bus; stop when they are
        in, when the bus has been quiet for :data:`DRAIN_QUIET_S`, or at ``deadline``."""
        ser = self.port_handler.ser
        got = 0
        try:
            while got < expect:
                wait = min(DRAIN_QUIET_S, deadline - time.perf_counter())
                if wait <= 0 or not select.select([self._fd], [], [], wait)[0]:
                    return
                data = ser.read(max(1, min(ser.in_waiting, expect - got)))
                if not data:
                    return
                got += len(data)
        except _PORT_ERRORS as exc:
            raise self._port_failed(exc, "reading") from exc

    def _attempt(self, length: int, deadline: float) -> _Miss | None:
        """One sync read of the ``length``-byte block; ``None`` when every servo's status packet
        came back valid (in ``self._reads[length]``), else what failed.

        Raises:
            LinkError: the port failed or vanished (``port_lost``).
        """
        sdk = self.sdk
        group = self._reads[length]
        budget_s = max(deadline - time.perf_counter(), 1e-4)
        self.port_handler.budget_ms = budget_s * 1e3
        t0 = time.perf_counter()
        try:
            self.port_handler.ser.reset_input_buffer()  # no stale reply is taken for this one
            res = group.txRxPacket()
        except _PORT_ERRORS as exc:
            raise self._port_failed(exc, "reading") from exc
        finally:
            # Also after KeyboardInterrupt inside the SDK call: else the SDK answers every later
            # request (the torque-off of the stop included) with COMM_PORT_BUSY.
            self.port_handler.is_using = False
        self.stats["sync_reads"] += 1
        self.stats["bytes_tx"] += 8 + len(self.ids)
        self.stats["bytes_rx_expected"] += (6 + length) * len(self.ids)
        if res == sdk.COMM_SUCCESS:
            # A running estimate of one sync read, for the decision to retry.
            self._attempt_s[length] += 0.1 * (time.perf_counter() - t0 - self._attempt_s[length])
            return None
        sid = group.failed_id
        who = self._name(sid)
        if res == sdk.COMM_RX_CORRUPT:
            self.stats["corrupt_replies"] += 1
            return _Miss("corrupt", sid, f"{who}: status packet failed its checksum")
        if getattr(group, "lost", False):
            self.stats["lost_replies"] += 1
            return _Miss("lost", sid, f"{who} did not answer the sync read (the servos after "
                                      "it did)")
        self.stats["timeouts"] += 1
        if budget_s < self._attempt_s[length]:
            # The call began too close to its deadline for a whole sync read (the host was
            # descheduled between the retry decision and the request): a reply missing by then
            # is no evidence against the bus or a servo, so it is counted as neither.
            self.stats["deadline_cut_reads"] += 1
            return _Miss("cut", None, f"the sync read had {budget_s * 1e3:.2f} ms, less than one "
                                      f"takes ({self._attempt_s[length] * 1e3:.2f} ms): cut short "
                                      "by the period's deadline")
        if self.port_handler.rx_bytes == 0:
            # Nothing at all came back: the whole bus is silent (servo power, or a stalled host).
            return _Miss("silent", None, f"no servo answered the sync read within "
                                         f"{budget_s * 1e3:.1f} ms (servo power off?)")
        return _Miss("late", sid, f"{who} did not answer the sync read within "
                                  f"{budget_s * 1e3:.1f} ms")

    def _read_state(self, deadline: float, full: bool, t_start: float,
                    judge: bool = True, attempts: int | None = None) -> Reply | _Failed:
        """Sync-read the state, retried while the time to ``deadline`` allows another read (at
        most ``attempts``, default :attr:`read_attempts`).

        Returns:
            A :class:`State` (``t_start``: when the period's bus traffic began, for
            :attr:`last_rtt_s`), a :class:`LinkFault` from :meth:`_state` (servo alarm, IMU), or
            :class:`_Failed` with every failed sync read.
        """
        length = (_FULL_READ if full else _FAST_READ)[1]
        expected = (6 + length) * len(self.ids)
        failed = _Failed()
        for attempt in range(attempts or self.read_attempts):
            if attempt:
                miss = failed[-1]
                rest = expected - self.port_handler.rx_bytes - (
                    6 + length if miss.kind == "lost" else 0)
                if miss.kind != "silent" and rest > 0:
                    self._drain(rest, deadline)
                if deadline - time.perf_counter() < RETRY_MARGIN * self._attempt_s[length]:
                    break  # no time for another whole sync read in this call
                self.stats["read_retries"] += 1
            miss = self._attempt(length, deadline)
            if miss is None:
                return self._state(full, judge, t_start)
            failed.append(miss)
            if miss.kind in ("silent", "cut") and deadline - time.perf_counter() <= 0:
                break
        return failed

    def _period_failed(self, misses: _Failed) -> Reply:
        """Count a period without a valid state; ``None`` (the loop holds the last state), or a
        :class:`LinkFault` when the loss is persistent."""
        self.stats["failed_periods"] += 1
        self._failed_in_row += 1
        self.stats["max_failed_periods_in_row"] = max(self.stats["max_failed_periods_in_row"],
                                                      self._failed_in_row)
        self._window.append(1)
        self._streak.extend(misses)
        events = self.stats["failed_period_events"]
        if len(events) < MAX_EVENTS:
            events.append(f"t={time.perf_counter() - self._t0:.2f} s, period {self._k}: no valid "
                          f"state after {len(misses)} sync read(s) ({self._describe(misses)}); "
                          "the last state is held")
        if self._failed_in_row >= self.max_failed_periods:
            # The fault is named by the servo the misses name, when they name one servo and one
            # fault: reads that got no byte at all (a whole-bus silence, or a read cut short by
            # the deadline on a late host) say nothing about which servo, so a few of them
            # among a servo's misses do not hide it. Only silence alone is a lost bus.
            fault_of = {"corrupt": Fault.CORRUPT_REPLY, "lost": Fault.SERVO_SILENT,
                        "late": Fault.SERVO_SILENT}
            named = [m for m in self._streak if m.kind in fault_of]
            kinds = {(fault_of[m.kind], m.sid) for m in named}
            tail = (f"in each of {len(self._streak)} sync reads over {self._failed_in_row} "
                    "control periods in a row: persistent, not a transient error")
            if len(kinds) == 1:
                return LinkFault(next(iter(kinds))[0], f"{named[-1].detail}, {tail}")
            if not named and all(m.kind == "silent" for m in self._streak):
                return LinkFault(Fault.LINK_LOST, f"{self._streak[-1].detail}, {tail}")
            return LinkFault(Fault.LINK_LOST,
                             f"no valid state in {self._failed_in_row} control periods in a row "
                             f"({len(self._streak)} sync reads: {self._describe(self._streak)})")
        failed = sum(self._window)
        if failed >= self.max_failed_in_window:
            return LinkFault(Fault.LINK_LOST,
                             f"{failed} of the last {len(self._window)} control periods without "
                             f"a valid state (limit {self.max_failed_in_window}): the bus loses "
                             f"too many replies ({self.stats['corrupt_replies']} corrupt, "
                             f"{self.stats['lost_replies'] + self.stats['timeouts']} missing of "
                             f"{self.stats['sync_reads']} sync reads so far; last: "
                             f"{self._describe(misses)})")
        return None

    def _describe(self, misses: list[_Miss]) -> str:
        """``"servo 5 (fl_hip_flexion) checksum x2, servo 9 (rr_knee) no reply x1"``."""
        words = {"corrupt": "checksum", "lost": "no reply", "late": "no reply",
                 "silent": "no reply"}
        counts: dict[str, int] = {}
        for m in misses:
            key = ("sync read cut short by the deadline" if m.kind == "cut" else
                   (f"{self._name(m.sid)} " if m.sid is not None else "every servo ")
                   + words[m.kind])
            counts[key] = counts.get(key, 0) + 1
        return ", ".join(f"{k} x{n}" for k, n in counts.items()) or "no sync read"

    def _state(self, full: bool, judge: bool, t_start: float) -> Reply:
        """The :class:`State` from the sync read just made (and the IMU), or a
        :class:`LinkFault` naming the servo.

        ``judge=False`` (the stop path) returns the state despite error bits, temperature,
        voltage or a silent IMU: the bus answered, which is what a stop needs to confirm.

        Raises:
            LinkError: the IMU port failed (while judging).
        """
        group = self._reads[(_FULL_READ if full else _FAST_READ)[1]]
        self.last_rtt_s = time.perf_counter() - t_start
        n = len(self.ids)
        ticks = np.empty(n)
        speed = np.empty(n)
        for i, sid in enumerate(self.ids):
            ticks[i] = group.getData(sid, 56, 2)
            speed[i] = sign_magnitude(group.getData(sid, 58, 2), SPEED_SIGN_BIT)
        self._last_ticks = ticks.astype(np.int64)
        bad = [(sid, e) for sid, e in group.errors.items() if e]
        if full:
            for i, sid in enumerate(self.ids):
                self.telemetry["load_permille"][i] = sign_magnitude(group.getData(sid, 60, 2),
                                                                    LOAD_SIGN_BIT)
                self.telemetry["voltage_v"][i] = group.getData(sid, 62, 1) * 0.1
                self.telemetry["temperature_c"][i] = group.getData(sid, 63, 1)
            v, temp = self.telemetry["voltage_v"], self.telemetry["temperature_c"]
            self.stats["max_temperature_c"] = float(np.nanmax([self.stats["max_temperature_c"],
                                                               temp.max()]))
            self.stats["min_voltage_v"] = float(np.nanmin([self.stats["min_voltage_v"], v.min()]))
        if bad and judge:
            self.stats["servo_error_replies"] += 1
            sid, e = bad[0]
            i = self.ids.index(sid)
            figures = self._read_health(sid, i)
            more = f" (and {len(bad) - 1} more servo(s))" if len(bad) > 1 else ""
            return LinkFault(Fault.SERVO_ALARM, f"{self._name(sid)} reports {describe_error(e)} "
                                                f"(error bits 0x{e:02X}){figures}{more}")
        if full and judge:
            hot = np.flatnonzero(self.telemetry["temperature_c"] > self.cal.max_temperature_c)
            if hot.size:
                i = int(hot[0])
                return LinkFault(Fault.SERVO_ALARM,
                                 f"{self._name(self.ids[i])}: temperature "
                                 f"{self.telemetry['temperature_c'][i]:.0f} C > limit "
                                 f"{self.cal.max_temperature_c:.0f} C")
            low = np.flatnonzero(self.telemetry["voltage_v"] < self.cal.min_voltage_v)
            if low.size:
                i = int(low[0])
                return LinkFault(Fault.SERVO_ALARM,
                                 f"{self._name(self.ids[i])}: supply "
                                 f"{self.telemetry['voltage_v'][i]:.1f} V < limit "
                                 f"{self.cal.min_voltage_v:.1f} V (battery low?)")
        q = math.pi + self.direction * (ticks - self.zero) / self.ticks_per_rad
        dq = self.direction * speed / self.ticks_per_rad
        if self.imu is not None:
            try:
                self.imu.poll()
            except ImuError as exc:
                if judge:
                    raise LinkError(f"{exc}: check the IMU's USB-UART adapter and cable "
                                    "(--imu-port)") from exc
                # The stop path: the bus answered; the last IMU reading is reported as it is.
            quat, gyro, accel, age = self.imu.body_reading()
            self.stats["imu_packets"] = self.imu.parser.packets
            self.stats["imu_bad_checksums"] = self.imu.parser.bad_checksums
            if age > self.imu_timeout_s and judge:
                return LinkFault(Fault.IMU_LOST,
                                 f"no valid IMU packet on {self.imu.port!r} for "
                                 f"{min(age, 99.0) * 1e3:.0f} ms "
                                 f"({self.imu.parser.bad_checksums} corrupt packets so far)")
        else:
            quat, gyro, accel = np.array([1.0, 0, 0, 0]), np.zeros(3), np.array([0, 0, 9.81])
        t_us = int((time.perf_counter() - self._t0) * 1e6) & 0xFFFFFFFF
        state = P.State(0, t_us, self.status, q, dq, quat, gyro, accel)
        self._last_state = state
        return state
