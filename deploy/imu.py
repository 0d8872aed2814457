"""BNO08x IMU in UART-RVC mode: packet codec, orientation maths, and a non-blocking serial reader.

UART-RVC ("robot vacuum cleaner") mode streams one 19-byte packet every 10 ms (100 Hz) at
115200 baud, 8N1, with no request from the host::

    0xAA 0xAA | index u8 | yaw i16 | pitch i16 | roll i16 | ax i16 | ay i16 | az i16 |
    3 reserved u8 | checksum u8

little-endian; angles in 0.01 deg, accelerations in mg (1 mg = 9.80665e-3 m/s^2, the
accelerometer's specific force, gravity included); ``checksum = sum(bytes[2:18]) % 256``.

Sources: CEVA/Hillcrest "BNO080/BNO085 UART-RVC" application note (1000-4044); the decoding of
Adafruit's ``adafruit_bno08x_rvc.BNO08x_RVC._parse_frame`` (same layout, scale and checksum).

Orientation convention used here (and by the emulator): the RVC angles are Tait-Bryan z-y'-x''
(yaw about z, then pitch about the new y, then roll about the new x), sensor -> world, so
``R_world_imu = Rz(yaw) @ Ry(pitch) @ Rx(roll)``. ``robotac calibrate`` checks this convention
on the real sensor: it compares the gravity direction from the angles with the accelerometer's,
level and tilted, and refuses a calibration where they disagree.

The gyro is not in RVC packets: :class:`RvcImu` differentiates successive orientations (angular
velocity in the body frame, ``2 * vec(q_prev^-1 q_now) / dt`` with ``dt`` from the packet index
at 100 Hz). Its quantisation is 0.01 deg per 10 ms, about 0.017 rad/s.
"""

from __future__ import annotations

import math
import select
import struct
import time
from dataclasses import dataclass

import numpy as np

__all__ = ["RVC_PACKET_BYTES", "RVC_BAUD", "RVC_PERIOD_S", "MG_TO_M_S2", "RvcReading",
           "encode_rvc", "RvcParser", "euler_zyx_to_matrix", "matrix_to_euler_zyx",
           "matrix_to_quat_wxyz", "quat_wxyz_to_matrix", "RvcImu", "ImuError"]

RVC_PACKET_BYTES = 19
RVC_BAUD = 115_200
RVC_PERIOD_S = 0.01
MG_TO_M_S2 = 9.80665e-3
_HEADER = b"\xaa\xaa"
_BODY = struct.Struct("<BhhhhhhBBB")  # index, yaw, pitch, roll, ax, ay, az, 3 reserved


class ImuError(RuntimeError):
    """The IMU port cannot be opened or failed."""


@dataclass(frozen=True)
class RvcReading:
    """One RVC packet.

    Attributes:
        index: Packet counter (wraps at 256).
        yaw_deg, pitch_deg, roll_deg: Orientation [deg] (0.01 deg resolution).
        accel_m_s2: ``(3,)`` specific force in the IMU frame [m/s^2].
    """

    index: int
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    accel_m_s2: np.ndarray


def _i16(x: float) -> int:
    return int(max(-32768, min(32767, round(x))))


def encode_rvc(index: int, yaw_deg: float, pitch_deg: float, roll_deg: float,
               accel_m_s2: np.ndarray) -> bytes:
    """One 19-byte RVC packet (as the sensor sends it); values saturate at the int16 range."""
    a_mg = np.asarray(accel_m_s2, dtype=np.float64) / MG_TO_M_S2
    body = _BODY.pack(index & 0xFF, _i16(yaw_deg * 100), _i16(pitch_deg * 100),
                      _i16(roll_deg * 100), _i16(a_mg[0]), _i16(a_mg[1]), _i16(a_mg[2]), 0, 0, 0)
    return _HEADER + body + bytes([sum(body) % 256])


class RvcParser:
    """Cut an RVC byte stream into readings; resynchronise at the next ``0xAA 0xAA``.

    Attributes:
        bad_checksums: Packets dropped for a checksum mismatch.
        packets: Packets accepted.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.bad_checksums = 0
        self.packets = 0

    def feed(self, data: bytes) -> list[RvcReading]:
        """Append ``data``; return the complete, valid readings found (oldest first)."""
        self._buf += data
        out: list[RvcReading] = []
        buf = self._buf
        while True:
            i = buf.find(_HEADER)
            if i < 0:
                del buf[: max(0, len(buf) - 1)]  # keep a trailing 0xAA
                break
            if i:
                del buf[:i]
            if len(buf) < RVC_PACKET_BYTES:
                break
            body = bytes(buf[2:18])
            if sum(body) % 256 != buf[18]:
                self.bad_checksums += 1
                del buf[:1]  # maybe the header was data: search again from the next byte
                continue
            idx, yaw, pitch, roll, ax, ay, az, _, _, _ = _BODY.unpack(body)
            out.append(RvcReading(idx, yaw * 0.01, pitch * 0.01, roll * 0.01,
                                  np.array([ax, ay, az], dtype=np.float64) * MG_TO_M_S2))
            self.packets += 1
            del buf[:RVC_PACKET_BYTES]
        return out


def euler_zyx_to_matrix(yaw_rad: float, pitch_rad: float, roll_rad: float) -> np.ndarray:
    """``Rz(yaw) @ Ry(pitch) @ Rx(roll)``, ``(3, 3)``."""
    cy, sy = math.cos(yaw_rad), math.sin(yaw_rad)
    cp, sp = math.cos(pitch_rad), math.sin(pitch_rad)
    cr, sr = math.cos(roll_rad), math.sin(roll_rad)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def matrix_to_euler_zyx(r: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`euler_zyx_to_matrix`: ``(yaw, pitch, roll)`` [rad], pitch in
    ``[-pi/2, pi/2]``."""
    pitch = math.asin(max(-1.0, min(1.0, -float(r[2, 0]))))
    yaw = math.atan2(float(r[1, 0]), float(r[0, 0]))
    roll = math.atan2(float(r[2, 1]), float(r[2, 2]))
    return yaw, pitch, roll


def quat_wxyz_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a (not necessarily unit) quaternion ``(w, x, y, z)``."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quat_wxyz(r: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(w, x, y, z)`` with ``w >= 0`` of a rotation matrix (Shepperd's method)."""
    t = float(np.trace(r))
    if t > 0:
        s = math.sqrt(t + 1.0) * 2
        q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
        q = [(r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s]
    elif r[1, 1] > r[2, 2]:
        s = math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
        q = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s]
    else:
        s = math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
        q = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s]
    out = np.array(q, dtype=np.float64)
    out /= np.linalg.norm(out)
    return -out if out[0] < 0 else out


def _reading_matrix(r: RvcReading) -> np.ndarray:
    return euler_zyx_to_matrix(math.radians(r.yaw_deg), math.radians(r.pitch_deg),
                               math.radians(r.roll_deg))


class RvcImu:
    """Non-blocking reader of a BNO08x RVC stream, mapped to the body frame.

    Args:
        port: Serial device (e.g. ``/dev/ttyUSB1``) or the emulator's pty.
        axes_matrix: ``(3, 3)`` ``M`` with ``v_body = M @ v_imu`` (from the calibration file).
        baud: 115200 for RVC.

    Raises:
        ImuError: if the port cannot be opened.
    """

    def __init__(self, port: str, axes_matrix: np.ndarray | None = None, baud: int = RVC_BAUD):
        import serial

        self.port = port
        self.m = np.eye(3) if axes_matrix is None else np.asarray(axes_matrix, dtype=np.float64)
        self.parser = RvcParser()
        self.last: RvcReading | None = None
        self.prev: RvcReading | None = None
        self.t_last = -math.inf
        self._gyro = np.zeros(3)
        try:
            self._serial = serial.Serial(port, baudrate=baud, timeout=0)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ImuError(
                f"cannot open the IMU port {port!r} at {baud} baud: {exc}. Check the device "
                "path and permissions (group 'dialout')"
            ) from exc
        self._fd = self._serial.fileno()
        self._serial.reset_input_buffer()

    def poll(self) -> int:
        """Read what arrived (never blocks); return the number of new packets.

        Raises:
            ImuError: the port failed or vanished.
        """
        n_new = 0
        try:
            while True:
                ready, _, _ = select.select([self._fd], [], [], 0)
                if not ready:
                    break
                data = self._serial.read(4096)
                if not data:
                    raise ImuError(f"IMU port {self.port!r} reports data but returns none")
                for r in self.parser.feed(data):
                    self.prev, self.last = self.last, r
                    n_new += 1
        except (OSError, ValueError, TypeError) as exc:  # SerialException is an OSError
            raise ImuError(f"IMU port {self.port!r} failed: {exc}") from exc
        if n_new:
            self.t_last = time.perf_counter()
            if self.prev is not None:
                steps = (self.last.index - self.prev.index) % 256 or 1
                self._gyro = self._angular_velocity(self.prev, self.last, steps * RVC_PERIOD_S)
        return n_new

    def wait_first(self, timeout_s: float) -> bool:
        """Poll until a packet arrives or ``timeout_s`` passes; True if one did."""
        t_end = time.perf_counter() + timeout_s
        while self.last is None and time.perf_counter() < t_end:
            select.select([self._fd], [], [], 0.005)
            self.poll()
        return self.last is not None

    def _angular_velocity(self, a: RvcReading, b: RvcReading, dt: float) -> np.ndarray:
        """Body-frame angular velocity [rad/s] from orientation a to b over ``dt``."""
        r_rel = _reading_matrix(a).T @ _reading_matrix(b)  # IMU frame, a -> b
        q = matrix_to_quat_wxyz(r_rel)
        angle = 2.0 * math.atan2(float(np.linalg.norm(q[1:])), float(q[0]))
        axis = q[1:] / (np.linalg.norm(q[1:]) or 1.0)
        return self.m @ (axis * angle / dt)

    def body_reading(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """The latest reading in the body frame.

        Returns:
            ``(quat_wxyz (4,), gyro_rad_s (3,), accel_m_s2 (3,), age_s)``; NaN arrays and an
            infinite age before the first packet. The quaternion is body -> world (world z up,
            yaw relative to the sensor's own reference).
        """
        if self.last is None:
            nan = np.full(3, np.nan)
            return np.full(4, np.nan), nan, nan, math.inf
        r_wb = _reading_matrix(self.last) @ self.m.T
        return (matrix_to_quat_wxyz(r_wb), self._gyro.copy(), self.m @ self.last.accel_m_s2,
                time.perf_counter() - self.t_last)

    def close(self) -> None:
        try:
            self._serial.close()
        except Exception:  # noqa: BLE001 - closing a dead port must not mask the original error
            pass
