"""Feetech STS servo bus (STS3215) and a BNO08x RVC IMU as a :class:`~deploy.robot_link.RobotLink`.

The companion computer drives the twelve servos directly over a half-duplex TTL bus (a USB bus
adapter such as Waveshare's "Bus Servo Adapter" or Feetech's FE-URT-1) with Feetech's vendor SDK,
``feetech-servo-sdk`` (``import scservo_sdk``, STS = protocol end 0, as LeRobot uses it). The SDK
is an optional extra: ``pip install 'robotac[sts]'``; it is imported only here, lazily.

Each control period (:meth:`StsBusLink.command`):

1. the target passes a last guard: finite and inside the calibrated joint limits, else nothing is
   written and an ERROR 6 reply comes back (the loop stops on it); ticks are clipped to the ticks
   of the calibrated limits after rounding, so no goal outside them ever reaches the bus;
2. one sync write (instruction 0x83) of the 12 Goal_Position words (address 42);
3. one sync read (0x82) of Present_Position and Present_Speed (56-59), and every
   ``telemetry_every``-th period of 56-63 (plus Present_Load, Present_Voltage,
   Present_Temperature); each status packet's error byte is checked every period;
4. the IMU stream is drained (non-blocking) and the latest orientation mapped to the body frame.

The deploy loop also reads the state at each deadline before it builds the observation
(``LoopConfig.fresh_state``): :meth:`StsBusLink.read`, a sync read of positions and speeds.

Faults returned as :class:`~deploy.robot_link.LinkFault` (the loop stops at once, ESTOP path,
which releases the torque): a servo's error bits (voltage, angle sensor, overheat, over-current,
overload), a temperature above or a voltage below the calibration's limits, a servo that does not
answer within the reply timeout while others do, a status packet with a bad checksum, and an
IMU silent for ``imu_timeout_s``. A sync read that gets no byte at all back (the whole bus
silent: servo power off, or a stalled host) is a missed period (``None``), as on protocol v1: the
loop stops after ``max_consecutive_drops`` of them. A failing or vanished port raises
:class:`~deploy.link.LinkError` with ``port_lost=True``.

Connect (:meth:`StsBusLink.connect`): ping every calibrated ID (bounded tries; a wrong baud rate
or a missing servo is named and nothing moves), check the model number, read the positions (a
joint more than 0.35 rad outside its calibrated limits means a stale calibration: refused; more
than :data:`START_OUTSIDE_TOLERANCE_RAD` (0.03 rad) outside: refused, the operator moves it into
range by hand), write Goal_Position = Present_Position clipped into the calibrated range
(enabling the torque moves a joint at most 0.03 rad: one that sits just outside its range goes
to the limit; no goal outside the range ever reaches the bus), the torque limit, then
Torque_Enable = 1, and wait for the first IMU packet. :meth:`StsBusLink.passive` and
:meth:`StsBusLink.estop` both write Torque_Enable = 0 to every servo (the STS has no damped mode;
the servos go limp), read Torque_Enable back from every servo and write it again until all read
0; a servo that does not is named in a :class:`~deploy.robot_link.LinkFault`. Every SDK call
frees the port in a ``finally:`` (the SDK marks it busy during a request; an interrupt inside
one would otherwise make every later request, the stop's torque-off included, fail as busy).

The SDK's own packet timeout (``PortHandler.setPacketTimeout``: about 35 ms, more for a sync
read, plus a busy wait) is replaced by the link's reply timeout, and its reads wait on ``select``
instead of spinning; its ``GroupSyncRead`` is extended to keep each servo's error byte, which the
stock one drops. Control-table addresses and units: Feetech STS3215 memory table, as in LeRobot's
``lerobot/motors/feetech/tables.py``.
"""

from __future__ import annotations

import math
import select
import time
from typing import Any

import numpy as np

from deploy import protocol as P
from deploy.calibration import TICKS_PER_RAD, Calibration, imu_axes_matrix
from deploy.imu import ImuError, RvcImu
from deploy.link import LinkError
from deploy.robot_link import LinkFault, Reply
from deploy.safety import Fault
from envs.interface import QUADRUPED_INTERFACE, RobotInterface

__all__ = ["StsBusLink", "load_sdk", "ADDR", "BAUD_INDEX", "ERROR_BITS", "describe_error",
           "sign_magnitude", "to_sign_magnitude", "bus_bytes_per_period", "wire_time_s"]

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
#: Sign bit of the sign-magnitude registers.
SPEED_SIGN_BIT = 15
LOAD_SIGN_BIT = 10
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

        def clearPort(self) -> None:  # noqa: N802 - SDK name; called before every request
            self.rx_bytes = 0
            super().clearPort()

        def setPacketTimeout(self, packet_length: int) -> None:  # noqa: N802 - SDK name
            self.packet_start_time = self.getCurrentTime()
            self.packet_timeout = self.budget_ms

        def setPacketTimeoutMillis(self, msec: float) -> None:  # noqa: N802 - SDK name
            self.packet_start_time = self.getCurrentTime()
            self.packet_timeout = min(float(msec), self.budget_ms)

        def readPort(self, length: int) -> bytes:  # noqa: N802 - SDK name
            data = self.ser.read(length)
            self.rx_bytes += len(data)
            if not data:  # wait for bytes instead of spinning; wakes as soon as they come
                select.select([self.ser.fileno()], [], [], 0.0002)
            return data

    class ErrorKeepingSyncRead(sdk.GroupSyncRead):  # type: ignore[misc, name-defined]
        """``GroupSyncRead`` that keeps every status packet's error byte (:attr:`errors`) and the
        ID whose reply failed (:attr:`failed_id`).

        A status packet of another ID or another data length is skipped (the SDK's ``readRx``
        takes any packet of the right ID): a late reply to a request that an exception cut
        short (Ctrl-C) is never read as this one's.
        """

        def rxPacket(self) -> int:  # noqa: N802 - SDK name
            self.errors: dict[int, int] = {}
            self.failed_id: int | None = None
            result = sdk.COMM_RX_FAIL
            for scs_id in self.data_dict:
                while True:  # bounded: the packet timeout runs from the request
                    packet, result = self.ph.rxPacket(self.port)
                    if result != sdk.COMM_SUCCESS or (
                            packet[2] == scs_id and packet[3] == self.data_length + 2):
                        break
                if result != sdk.COMM_SUCCESS:
                    self.failed_id = scs_id
                    return result
                self.data_dict[scs_id] = list(packet[5:5 + self.data_length])
                self.errors[scs_id] = packet[4]
            self.last_result = True
            return result

    return BoundedPortHandler, ErrorKeepingSyncRead


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
        interface: The robot interface (joint order).
        telemetry_every: Read load, voltage and temperature every this many periods.
        imu_timeout_s: Stop when no valid IMU packet came for this long [s].
        ping_timeout_s: Reply timeout of each ping at connect [s].
        health_timeout_s: When a servo reports error bits, its voltage and temperature are read
            at once for the stop reason, within this time [s] (else the reason goes without).

    Raises:
        LinkError: the SDK is missing, the baud rate is not one the servos support, or a port
            cannot be opened.
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
        interface: RobotInterface = QUADRUPED_INTERFACE,
        telemetry_every: int = 10,
        imu_timeout_s: float = 0.03,
        ping_timeout_s: float = 0.03,
        health_timeout_s: float = 0.005,
    ):
        self.port = port
        self.cal = calibration
        self.interface = interface
        self.baud = int(baud or calibration.baud)
        if self.baud not in BAUD_INDEX:
            raise LinkError(
                f"baud rate {self.baud} is not one an STS servo supports "
                f"({sorted(BAUD_INDEX, reverse=True)}); the factory setting is 1000000"
            )
        if telemetry_every < 1:
            raise ValueError(f"telemetry_every must be >= 1, got {telemetry_every}")
        self.telemetry_every = int(telemetry_every)
        self.imu_timeout_s = float(imu_timeout_s)
        self.ping_timeout_s = float(ping_timeout_s)
        self.health_timeout_s = float(health_timeout_s)
        arr = calibration.arrays(interface)
        self.ids = [int(i) for i in arr["ids"]]
        self.names = interface.joint_names
        self.direction = arr["direction"]
        self.zero = arr["zero"]
        self.min_rad, self.max_rad = arr["min_rad"], arr["max_rad"]
        t_lo = self.zero + self.direction * (self.min_rad - math.pi) * TICKS_PER_RAD
        t_hi = self.zero + self.direction * (self.max_rad - math.pi) * TICKS_PER_RAD
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
            "periods": 0, "sync_writes": 0, "sync_reads": 0, "timeouts": 0, "corrupt_replies": 0,
            "servo_error_replies": 0, "refused_targets": 0, "imu_packets": 0,
            "imu_bad_checksums": 0, "max_temperature_c": float("nan"),
            "min_voltage_v": float("nan"), "bytes_tx": 0, "bytes_rx_expected": 0}
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
                raise LinkError(str(exc)) from exc

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

    # ------------------------------------------------------------------ RobotLink
    def connect(self, attempts: int = 3) -> P.Info:
        """Find every calibrated servo, check it, enable the torque holding the present pose.

        Raises:
            LinkError: no servo answers (wrong baud rate, no power: said after a bounded wait of
                at most ``attempts * 12 * 2 * ping_timeout_s``), some servo does not answer
                (named, with its joint; nothing is written), a servo of another model, no IMU
                packet within 0.5 s, or a joint reading more than
                :data:`START_OUTSIDE_TOLERANCE_RAD` outside its calibrated limits (the message
                says: stale calibration, or move it into range by hand); in every case before
                the torque is enabled.
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
                f"{self.cal.servo_model} (STS3215 = 777): another servo type needs another "
                "position scale. Nothing was moved."
            )
        has_imu = 0
        if self.imu is not None:
            if not self.imu.wait_first(0.5):
                raise LinkError(
                    f"no BNO08x RVC packet on the IMU port {self.imu.port!r} within 0.5 s: check "
                    "its wiring (IMU TX -> adapter RX), 115200 baud, and that PS0 is high (RVC "
                    "mode). Nothing was moved."
                )
            has_imu = 1
        state = self._read(0.1, full=True)
        if isinstance(state, LinkFault):
            raise LinkError(f"cannot read the servos at start: {state.detail}. Nothing was moved.")
        if not isinstance(state, P.State):
            raise LinkError("cannot read the servos at start. Nothing was moved.")
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
        self._sync_protection_limits()
        # Goal = present (no jump when the torque goes on), clipped into the calibrated range: a
        # joint at most START_OUTSIDE_TOLERANCE_RAD outside it moves in by that much, no more.
        present = np.clip(self._last_ticks, self.tick_lo, self.tick_hi)
        self._sync_write(42, 2, [int(t) for t in present])
        self._sync_write(48, 2, [int(self.cal.torque_limit)] * len(self.ids))
        self._sync_write(40, 1, [1] * len(self.ids))                  # torque on
        self.armed, self.estopped = True, False
        return P.Info(0, has_imu, 0x0100, 0, self.min_rad, self.max_rad)

    def read(self, timeout_s: float) -> Reply:
        """Sync-read the state: with load, voltage and temperature before the first period
        (:meth:`command`), positions and speeds alone after it (the deploy loop reads every period
        when ``fresh_state`` is on; the telemetry still comes with :meth:`command`'s read every
        ``telemetry_every``-th period), so a READ costs 1.4 ms of wire at 1 Mbaud, not 1.9."""
        return self._read(timeout_s, full=self._k == 0)

    def command(self, target_rad: np.ndarray, timeout_s: float) -> Reply:
        """Guard, sync-write the goals, sync-read the state (see the module docstring)."""
        t = np.asarray(target_rad, dtype=np.float64)
        if (t.shape != self.min_rad.shape or not np.isfinite(t).all()
                or (t < self.min_rad - 1e-5).any() or (t > self.max_rad + 1e-5).any()):
            self.stats["refused_targets"] += 1
            return P.Error(0, int(P.ErrorCode.TARGET_OUT_OF_RANGE))
        ticks = np.rint(self.zero + self.direction * (t - math.pi) * TICKS_PER_RAD)
        ticks = np.clip(ticks.astype(np.int64), self.tick_lo, self.tick_hi)
        t_start = time.perf_counter()
        self._sync_write(42, 2, ticks.tolist())
        self.stats["periods"] += 1
        full = self._k % self.telemetry_every == 0
        self._k += 1
        return self._read(timeout_s, full=full, t_start=t_start)

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
            data, res, _ = self.ph.readTxRx(self.port_handler, sid, 62, 2)
        except _PORT_ERRORS:
            return ""
        finally:
            self.port_handler.is_using = False
        if res != self.sdk.COMM_SUCCESS or len(data) < 2:
            return ""
        self.telemetry["voltage_v"][i], self.telemetry["temperature_c"][i] = data[0] * 0.1, data[1]
        return f"; now {data[1]} C, {data[0] * 0.1:.1f} V"

    def _sync_protection_limits(self) -> None:
        """Make each servo's own Max_Temperature_Limit (13) and Min_Voltage_Limit (15) the
        calibration's, so its status error bits (checked every period) trip at our limits.

        EEPROM is written only where a value differs (unlock, write, lock).

        Raises:
            LinkError: a servo refuses the read or the write.
        """
        want_t = int(round(self.cal.max_temperature_c))
        want_v = int(round(self.cal.min_voltage_v * 10))
        self.port_handler.budget_ms = 50.0
        for sid in self.ids:
            try:
                try:
                    data, res, _ = self.ph.readTxRx(self.port_handler, sid, 13, 3)
                finally:
                    self.port_handler.is_using = False
                if res != self.sdk.COMM_SUCCESS:
                    raise LinkError(f"{self._name(sid)}: cannot read its protection limits "
                                    f"({self.ph.getTxRxResult(res)}). Nothing was moved.")
                if data[0] == want_t and data[2] == want_v:
                    continue
                for addr, value in ((55, 0), (13, want_t), (15, want_v), (55, 1)):
                    try:
                        res, _ = self.ph.write1ByteTxRx(self.port_handler, sid, addr, value)
                    finally:
                        self.port_handler.is_using = False
                    if res != self.sdk.COMM_SUCCESS:
                        raise LinkError(f"{self._name(sid)}: cannot write address {addr} "
                                        f"({self.ph.getTxRxResult(res)}). Nothing was moved.")
            except _PORT_ERRORS as exc:
                raise self._port_failed(exc, "setting the protection limits") from exc

    #: Torque-off writes (each followed by a read-back of Torque_Enable) before a stop gives up.
    release_tries = 3

    def _release(self, timeout_s: float, writes: int) -> Reply:
        unreleased: dict[int, str] = {}
        for attempt in range(self.release_tries):
            for _ in range(writes if attempt == 0 else 1):
                self._torque_off()
            unreleased = self._torque_still_on(timeout_s)
            if not unreleased:
                return self._read(timeout_s, full=False, judge=False)
        names = ", ".join(f"{self._name(sid)} {why}" for sid, why in unreleased.items())
        return LinkFault(Fault.SERVO_SILENT,
                         f"torque release not confirmed after {self.release_tries} torque-off "
                         f"writes: {names}")

    def _torque_still_on(self, timeout_s: float) -> dict[int, str]:
        """Read Torque_Enable (address 40) of every servo with one sync read.

        Returns:
            ``{id: why}`` of the servos not confirmed off: ``"reads Torque_Enable = 1"`` or
            ``"gave no valid reply"`` (silent, or a corrupt status packet). The servos after one
            whose reply failed are read one by one (unless the whole bus is silent).
        """
        group = self._reads.get(1)
        if group is None:
            group = self._sync_read_cls(self.port_handler, self.ph, 40, 1)
            for sid in self.ids:
                group.addParam(sid)
            self._reads[1] = group
        self.port_handler.budget_ms = timeout_s * 1e3
        group.errors = {}  # the servos whose status packet came back (none if the write failed)
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
        for sid in self.ids:
            # The servos after the one whose reply failed were never heard: ask each alone.
            if sid in value or sid == group.failed_id or silent_bus:
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

    def _read(self, timeout_s: float, full: bool, t_start: float | None = None,
              judge: bool = True) -> Reply:
        """Sync read (and IMU poll); a :class:`State`, or a :class:`LinkFault` naming the servo.

        ``judge=False`` (the stop path) returns the state despite error bits, temperature,
        voltage or a silent IMU: the bus answered, which is what a stop needs to confirm.
        """
        sdk = self.sdk
        start, length = _FULL_READ if full else _FAST_READ
        group = self._reads[length]
        t_start = time.perf_counter() if t_start is None else t_start
        self.port_handler.budget_ms = max(timeout_s - (time.perf_counter() - t_start), 1e-4) * 1e3
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
        if res != sdk.COMM_SUCCESS:
            who = self._name(group.failed_id)
            if res == sdk.COMM_RX_CORRUPT:
                self.stats["corrupt_replies"] += 1
                return LinkFault(Fault.CORRUPT_REPLY,
                                 f"{who}: status packet failed its checksum or was cut short")
            self.stats["timeouts"] += 1
            if self.port_handler.rx_bytes == 0:
                # Nothing at all came back: the whole bus is silent (or the host stalled). A
                # missed period, as for protocol v1; the loop stops after several in a row.
                return None
            return LinkFault(Fault.SERVO_SILENT,
                             f"{who} did not answer the sync read within "
                             f"{timeout_s * 1e3:.1f} ms")
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
        q = math.pi + self.direction * (ticks - self.zero) / TICKS_PER_RAD
        dq = self.direction * speed / TICKS_PER_RAD
        if self.imu is not None:
            try:
                self.imu.poll()
            except ImuError as exc:
                if judge:
                    raise LinkError(str(exc)) from exc
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
        return P.State(0, t_us, self.status, q, dq, quat, gyro, accel)
