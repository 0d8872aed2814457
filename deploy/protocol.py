"""Codec of the robot link protocol v1 (``shared/protocol.md``): the only code that touches bytes.

A frame on the wire is ``COBS(payload || crc16_le) || 0x00``. The payload is a 4-byte header
(``u8 version``, ``u8 type``, ``u16 seq``) and a body whose layout depends on the type. Every
integer and float is little-endian; floats are IEEE-754 binary32.

This module turns typed messages (:class:`Hello`, :class:`Info`, :class:`Command`, :class:`Read`,
:class:`Estop`, :class:`State`, :class:`Error`) into frames and back. Decoding never returns a
corrupt message: every malformed frame raises a subclass of :class:`ProtocolError` that carries
the ERROR code a robot answers it with and the ``seq`` when the header could be read.

:class:`FrameSplitter` cuts a byte stream into frames at ``0x00`` delimiters, so a reader
resynchronises at the next delimiter after garbage.

Sources: ``shared/protocol.md`` (robot link protocol v1); COBS: Cheshire & Baker (1999),
"Consistent Overhead Byte Stuffing", IEEE/ACM Trans. Networking 7(2), via the ``cobs`` package;
CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor) is exactly
``binascii.crc_hqx(data, 0xFFFF)``.
"""

from __future__ import annotations

import binascii
import enum
import struct
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
from cobs import cobs

__all__ = [
    "PROTOCOL_VERSION",
    "MIN_FRAME_BYTES",
    "MAX_FRAME_BYTES",
    "DELIMITER",
    "MsgType",
    "ErrorCode",
    "Status",
    "ProtocolError",
    "FramingError",
    "CrcError",
    "FrameTooShortError",
    "FrameTooLongError",
    "VersionError",
    "UnknownTypeError",
    "BodyLengthError",
    "FieldValueError",
    "Hello",
    "Info",
    "Command",
    "Read",
    "Estop",
    "State",
    "Error",
    "Message",
    "crc16",
    "encode",
    "encode_payload",
    "decode",
    "FrameSplitter",
    "command_frame_bytes",
    "state_frame_bytes",
]

PROTOCOL_VERSION = 1
#: A decoded frame (payload + CRC) shorter than this is dropped: 4 header + 2 CRC bytes.
MIN_FRAME_BYTES = 6
#: A decoded frame (payload + CRC) longer than this is dropped (one COBS block, no split).
MAX_FRAME_BYTES = 254
#: Ends every frame on the wire.
DELIMITER = b"\x00"

_HEADER = struct.Struct("<BBH")
_INFO_HEAD = struct.Struct("<BBHH")
_STATE_HEAD = struct.Struct("<IB")
_U16_MAX = 0xFFFF


class MsgType(enum.IntEnum):
    """Message ``type`` byte."""

    HELLO = 0x01
    COMMAND = 0x02
    READ = 0x03
    ESTOP = 0x04
    INFO = 0x81
    STATE = 0x82
    ERROR = 0xFF


class ErrorCode(enum.IntEnum):
    """``code`` of an ERROR reply."""

    BAD_CRC = 1
    BAD_VERSION = 2
    BAD_LENGTH = 3
    UNKNOWN_TYPE = 4
    NOT_ARMED = 5
    TARGET_OUT_OF_RANGE = 6


class Status(enum.IntFlag):
    """``status`` bits of a STATE reply (bits 4-7 are zero)."""

    ESTOPPED = 0x01
    WATCHDOG_TRIPPED = 0x02
    SERVO_FAULT = 0x04
    ARMED = 0x08


class Mode(enum.IntEnum):
    """``mode`` of a COMMAND."""

    PASSIVE = 0
    POSITION = 1


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ProtocolError(ValueError):
    """A frame that cannot be decoded.

    Attributes:
        code: The :class:`ErrorCode` a robot answers this frame with.
        seq: The frame's ``seq`` when its header could be read, else ``None`` (a robot then
            answers with ``seq`` 0).
    """

    code: ErrorCode = ErrorCode.BAD_LENGTH

    def __init__(self, message: str, seq: int | None = None):
        super().__init__(message)
        self.seq = seq


class FramingError(ProtocolError):
    """The bytes between two delimiters are not valid COBS (a corrupted frame)."""

    code = ErrorCode.BAD_CRC


class CrcError(ProtocolError):
    """The CRC-16 of the payload does not match the two trailing bytes."""

    code = ErrorCode.BAD_CRC


class FrameTooShortError(ProtocolError):
    """The decoded frame has fewer than 6 bytes (4 header + 2 CRC)."""

    code = ErrorCode.BAD_LENGTH


class FrameTooLongError(ProtocolError):
    """The decoded frame (or the bytes before a delimiter) exceed 254 bytes."""

    code = ErrorCode.BAD_LENGTH


class VersionError(ProtocolError):
    """The header's ``version`` is not 1."""

    code = ErrorCode.BAD_VERSION


class UnknownTypeError(ProtocolError):
    """The header's ``type`` is not a message type of protocol v1."""

    code = ErrorCode.UNKNOWN_TYPE


class BodyLengthError(ProtocolError):
    """The body length does not fit the message type (or the expected joint count)."""

    code = ErrorCode.BAD_LENGTH


class FieldValueError(ProtocolError):
    """A field holds a value the protocol does not define (e.g. COMMAND mode 2).

    Answered like a malformed body (ERROR 3), the closest code protocol v1 has.
    """

    code = ErrorCode.BAD_LENGTH


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


def _f32(x: object, n: int | None, name: str) -> np.ndarray:
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(-1))
    if n is not None and a.shape != (n,):
        raise ValueError(f"{name} must have {n} entries, got shape {np.shape(x)}")
    return a


class _MessageBase:
    """Equality over fields, with numpy arrays compared bitwise (NaN == NaN)."""

    TYPE: ClassVar[MsgType]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        for f in fields(self):  # type: ignore[arg-type]
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray):
                if a.shape != b.shape or a.tobytes() != np.asarray(b, a.dtype).tobytes():
                    return False
            elif a != b:
                return False
        return True

    __hash__ = None  # type: ignore[assignment]


@dataclass(eq=False)
class Hello(_MessageBase):
    """HELLO (host -> robot): arm the robot and ask for INFO. Empty body."""

    TYPE: ClassVar[MsgType] = MsgType.HELLO
    seq: int = 0


@dataclass(eq=False)
class Read(_MessageBase):
    """READ (host -> robot): ask for STATE without commanding (does not feed the watchdog)."""

    TYPE: ClassVar[MsgType] = MsgType.READ
    seq: int = 0


@dataclass(eq=False)
class Estop(_MessageBase):
    """ESTOP (host -> robot): disarm at once, go passive/damped, set status bit0."""

    TYPE: ClassVar[MsgType] = MsgType.ESTOP
    seq: int = 0


@dataclass(eq=False)
class Info(_MessageBase):
    """INFO (robot -> host), the reply to HELLO.

    Attributes:
        seq: ``seq`` of the HELLO answered.
        flags: bit0 = has IMU; other bits as reported.
        firmware_version: u16.
        watchdog_ms: u16 watchdog timeout [ms].
        joint_min_rad, joint_max_rad: ``(n_joints,)`` float32 joint limits, servo angles [rad].
    """

    TYPE: ClassVar[MsgType] = MsgType.INFO
    seq: int
    flags: int
    firmware_version: int
    watchdog_ms: int
    joint_min_rad: np.ndarray
    joint_max_rad: np.ndarray

    def __post_init__(self) -> None:
        self.joint_min_rad = _f32(self.joint_min_rad, None, "joint_min_rad")
        self.joint_max_rad = _f32(self.joint_max_rad, self.joint_min_rad.size, "joint_max_rad")

    @property
    def n_joints(self) -> int:
        return int(self.joint_min_rad.size)

    @property
    def has_imu(self) -> bool:
        return bool(self.flags & 0x01)


@dataclass(eq=False)
class Command(_MessageBase):
    """COMMAND (host -> robot).

    Attributes:
        seq: Host frame number.
        mode: 0 = passive/damped (targets ignored), 1 = position.
        target_rad: ``(n_joints,)`` float32 servo targets [rad], joint order.
    """

    TYPE: ClassVar[MsgType] = MsgType.COMMAND
    seq: int
    mode: int
    target_rad: np.ndarray

    def __post_init__(self) -> None:
        self.target_rad = _f32(self.target_rad, None, "target_rad")


@dataclass(eq=False)
class State(_MessageBase):
    """STATE (robot -> host), the reply to COMMAND, READ and ESTOP.

    Attributes:
        seq: ``seq`` of the frame answered.
        t_us: u32 robot clock [us] (wraps).
        status: :class:`Status` bits.
        q_rad: ``(n_joints,)`` float32 servo angles [rad].
        dq_rad_s: ``(n_joints,)`` float32 joint velocities [rad/s].
        quat_wxyz: ``(4,)`` float32 IMU orientation, body -> world.
        gyro_rad_s: ``(3,)`` float32 body angular velocity [rad/s].
        accel_m_s2: ``(3,)`` float32 specific force [m/s^2].
    """

    TYPE: ClassVar[MsgType] = MsgType.STATE
    seq: int
    t_us: int
    status: int
    q_rad: np.ndarray
    dq_rad_s: np.ndarray
    quat_wxyz: np.ndarray
    gyro_rad_s: np.ndarray
    accel_m_s2: np.ndarray

    def __post_init__(self) -> None:
        self.q_rad = _f32(self.q_rad, None, "q_rad")
        self.dq_rad_s = _f32(self.dq_rad_s, self.q_rad.size, "dq_rad_s")
        self.quat_wxyz = _f32(self.quat_wxyz, 4, "quat_wxyz")
        self.gyro_rad_s = _f32(self.gyro_rad_s, 3, "gyro_rad_s")
        self.accel_m_s2 = _f32(self.accel_m_s2, 3, "accel_m_s2")

    @property
    def n_joints(self) -> int:
        return int(self.q_rad.size)

    def has(self, bit: Status) -> bool:
        """Whether status ``bit`` is set."""
        return bool(self.status & bit)


@dataclass(eq=False)
class Error(_MessageBase):
    """ERROR (robot -> host): the frame with this ``seq`` could not be honoured.

    Attributes:
        seq: ``seq`` of the refused frame, 0 when its header could not be read.
        code: :class:`ErrorCode` value.
    """

    TYPE: ClassVar[MsgType] = MsgType.ERROR
    seq: int
    code: int


Message = Hello | Info | Command | Read | Estop | State | Error

_BY_TYPE: dict[int, type] = {
    int(c.TYPE): c for c in (Hello, Info, Command, Read, Estop, State, Error)
}


# --------------------------------------------------------------------------------------------
# Encode / decode
# --------------------------------------------------------------------------------------------


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF); ``crc16(b"123456789") == 0x29B1``."""
    return binascii.crc_hqx(data, 0xFFFF)


def _u8(x: int, name: str) -> int:
    if not 0 <= int(x) <= 0xFF:
        raise ValueError(f"{name} must fit in u8, got {x}")
    return int(x)


def _body(msg: Message) -> bytes:
    if isinstance(msg, Hello | Read | Estop):
        return b""
    if isinstance(msg, Info):
        n = msg.n_joints
        limits = np.empty((n, 2), dtype="<f4")
        limits[:, 0], limits[:, 1] = msg.joint_min_rad, msg.joint_max_rad
        if not 0 <= msg.firmware_version <= _U16_MAX or not 0 <= msg.watchdog_ms <= _U16_MAX:
            raise ValueError("firmware_version and watchdog_ms must fit in u16")
        return (
            _INFO_HEAD.pack(_u8(n, "n_joints"), _u8(msg.flags, "flags"), msg.firmware_version,
                            msg.watchdog_ms)
            + limits.tobytes()
        )
    if isinstance(msg, Command):
        return bytes([_u8(msg.mode, "mode")]) + msg.target_rad.astype("<f4").tobytes()
    if isinstance(msg, State):
        if not 0 <= msg.t_us <= 0xFFFFFFFF:
            raise ValueError(f"t_us must fit in u32, got {msg.t_us}")
        arrays = (msg.q_rad, msg.dq_rad_s, msg.quat_wxyz, msg.gyro_rad_s, msg.accel_m_s2)
        return _STATE_HEAD.pack(msg.t_us, _u8(msg.status, "status")) + b"".join(
            a.astype("<f4").tobytes() for a in arrays
        )
    if isinstance(msg, Error):
        return bytes([_u8(msg.code, "code")])
    raise TypeError(f"not a protocol v1 message: {type(msg).__name__}")


def encode(msg: Message) -> bytes:
    """Encode ``msg`` into a complete frame, delimiter included.

    Args:
        msg: Any message of protocol v1; ``seq`` must be in ``[0, 65535]``.

    Returns:
        ``COBS(payload || crc16_le) || b"\\x00"``.

    Raises:
        ValueError: if a field does not fit its wire type, or the frame would exceed 254 bytes
            before encoding (e.g. more than 29 joints in a STATE).
        TypeError: if ``msg`` is not a protocol message.
    """
    if not 0 <= msg.seq <= _U16_MAX:
        raise ValueError(f"seq must be in [0, 65535], got {msg.seq}")
    payload = _HEADER.pack(PROTOCOL_VERSION, int(msg.TYPE), msg.seq) + _body(msg)
    raw = payload + struct.pack("<H", crc16(payload))
    if len(raw) > MAX_FRAME_BYTES:
        raise ValueError(
            f"{type(msg).__name__} frame is {len(raw)} bytes before encoding, the protocol "
            f"allows {MAX_FRAME_BYTES}"
        )
    return cobs.encode(raw) + DELIMITER


def encode_payload(payload: bytes) -> bytes:
    """Frame arbitrary payload bytes (append CRC, COBS-encode, add the delimiter), unchecked.

    For tests and fault injection that need malformed frames (a wrong version, an unknown type,
    a bad body length); :func:`encode` is the way to build valid frames.

    Raises:
        ValueError: if the framed payload would exceed 254 bytes before encoding.
    """
    raw = bytes(payload) + struct.pack("<H", crc16(bytes(payload)))
    if len(raw) > MAX_FRAME_BYTES:
        raise ValueError(f"payload of {len(payload)} bytes does not fit one frame")
    return cobs.encode(raw) + DELIMITER


def _floats(body: bytes, offset: int, n: int) -> tuple[np.ndarray, int]:
    end = offset + 4 * n
    return np.frombuffer(body[offset:end], dtype="<f4").astype(np.float32), end


def decode(frame: bytes, n_joints: int | None = None) -> Message:
    """Decode one frame.

    Args:
        frame: The COBS-encoded bytes of one frame, with or without the trailing ``0x00``.
        n_joints: When given, COMMAND, INFO and STATE bodies must carry this many joints.

    Returns:
        The typed message.

    Raises:
        FramingError: not valid COBS (ERROR code 1).
        FrameTooShortError / FrameTooLongError: fewer than 6 or more than 254 decoded bytes
            (code 3).
        CrcError: CRC mismatch (code 1).
        VersionError: version is not 1 (code 2).
        UnknownTypeError: unknown ``type`` (code 4).
        BodyLengthError: body length wrong for the type or for ``n_joints`` (code 3).
        FieldValueError: an undefined field value, e.g. COMMAND mode other than 0/1 (code 3).
    """
    frame = bytes(frame)
    if frame.endswith(DELIMITER):
        frame = frame[:-1]
    if DELIMITER in frame:
        raise FramingError("frame contains a 0x00 byte before its end (two frames run together)")
    if len(frame) > MAX_FRAME_BYTES + 1:  # COBS adds one code byte to <= 254 data bytes
        raise FrameTooLongError(f"encoded frame is {len(frame)} bytes, at most 255 allowed")
    try:
        raw = cobs.decode(frame)
    except cobs.DecodeError as exc:
        raise FramingError(f"invalid COBS encoding: {exc}") from None
    if len(raw) < MIN_FRAME_BYTES:
        raise FrameTooShortError(
            f"decoded frame is {len(raw)} bytes, at least {MIN_FRAME_BYTES} needed"
        )
    if len(raw) > MAX_FRAME_BYTES:
        raise FrameTooLongError(f"decoded frame is {len(raw)} bytes, at most {MAX_FRAME_BYTES}")
    payload, (crc_rx,) = raw[:-2], struct.unpack("<H", raw[-2:])
    crc_calc = crc16(payload)
    if crc_rx != crc_calc:
        raise CrcError(f"CRC mismatch: frame says 0x{crc_rx:04X}, payload gives 0x{crc_calc:04X}")
    version, mtype, seq = _HEADER.unpack_from(payload)
    if version != PROTOCOL_VERSION:
        raise VersionError(f"protocol version {version}, this host speaks {PROTOCOL_VERSION}", seq)
    cls = _BY_TYPE.get(mtype)
    if cls is None:
        raise UnknownTypeError(f"unknown message type 0x{mtype:02X}", seq)
    return _decode_body(cls, seq, payload[_HEADER.size :], n_joints)


def _need(cond: bool, cls: type, what: str, body: bytes, seq: int) -> None:
    if not cond:
        raise BodyLengthError(f"{cls.__name__} body of {len(body)} bytes: {what}", seq)


def _decode_body(cls: type, seq: int, body: bytes, n_joints: int | None) -> Message:
    if cls in (Hello, Read, Estop):
        _need(len(body) == 0, cls, "expected an empty body", body, seq)
        return cls(seq=seq)
    if cls is Error:
        _need(len(body) == 1, cls, "expected 1 byte", body, seq)
        if body[0] not in ErrorCode._value2member_map_:
            raise FieldValueError(f"ERROR code {body[0]} is not defined by protocol v1", seq)
        return Error(seq=seq, code=body[0])
    if cls is Command:
        n, rem = divmod(len(body) - 1, 4)
        _need(len(body) >= 1 and rem == 0, cls, "expected 1 + 4 * n_joints", body, seq)
        _need(n_joints is None or n == n_joints, cls, f"expected {n_joints} joints", body, seq)
        if body[0] not in (Mode.PASSIVE, Mode.POSITION):
            raise FieldValueError(f"COMMAND mode {body[0]} is not 0 (passive) or 1 (position)", seq)
        target, _ = _floats(body, 1, n)
        return Command(seq=seq, mode=body[0], target_rad=target)
    if cls is Info:
        _need(len(body) >= _INFO_HEAD.size, cls, "shorter than the INFO head", body, seq)
        n, flags, fw, wd = _INFO_HEAD.unpack_from(body)
        _need(len(body) == _INFO_HEAD.size + 8 * n, cls, f"expected 6 + 8 * {n}", body, seq)
        _need(n_joints is None or n == n_joints, cls, f"expected {n_joints} joints", body, seq)
        limits = np.frombuffer(body[_INFO_HEAD.size :], dtype="<f4").reshape(n, 2)
        return Info(seq, flags, fw, wd, limits[:, 0].copy(), limits[:, 1].copy())
    if cls is State:
        n, rem = divmod(len(body) - _STATE_HEAD.size - 40, 8)
        _need(len(body) >= _STATE_HEAD.size + 40 and rem == 0, cls, "expected 45 + 8 * n_joints",
              body, seq)
        _need(n_joints is None or n == n_joints, cls, f"expected {n_joints} joints", body, seq)
        t_us, status = _STATE_HEAD.unpack_from(body)
        if status & 0xF0:
            raise FieldValueError(f"STATE status 0x{status:02X} sets reserved bits 4-7", seq)
        off = _STATE_HEAD.size
        q, off = _floats(body, off, n)
        dq, off = _floats(body, off, n)
        quat, off = _floats(body, off, 4)
        gyro, off = _floats(body, off, 3)
        accel, off = _floats(body, off, 3)
        return State(seq, t_us, status, q, dq, quat, gyro, accel)
    raise UnknownTypeError(f"unknown message class {cls.__name__}", seq)  # pragma: no cover


def command_frame_bytes(n_joints: int) -> int:
    """Upper bound of a COMMAND frame's size on the wire, delimiter included."""
    raw = _HEADER.size + 1 + 4 * n_joints + 2
    return raw + raw // 254 + 2


def state_frame_bytes(n_joints: int) -> int:
    """Upper bound of a STATE frame's size on the wire, delimiter included."""
    raw = _HEADER.size + _STATE_HEAD.size + 8 * n_joints + 40 + 2
    return raw + raw // 254 + 2


class FrameSplitter:
    """Cut a byte stream into frames at ``0x00`` delimiters.

    Bytes after the last delimiter are kept until more arrive. A run of more than 255 bytes
    without a delimiter cannot be a valid frame: it is discarded up to the next delimiter and
    counted in :attr:`overflows`; empty frames (two delimiters in a row) are skipped.

    Attributes:
        overflows: Number of oversized runs discarded.
    """

    #: The longest valid encoded frame (without delimiter): 254 data bytes + 1 COBS code byte.
    MAX_ENCODED = MAX_FRAME_BYTES + 1

    def __init__(self) -> None:
        self._buf = bytearray()
        self._discarding = False
        self.overflows = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the complete frames (without delimiter) now available."""
        out: list[bytes] = []
        self._buf += data
        while True:
            i = self._buf.find(0)
            if i < 0:
                if len(self._buf) > self.MAX_ENCODED and not self._discarding:
                    self._discarding = True
                    self.overflows += 1
                if self._discarding:
                    self._buf.clear()
                return out
            chunk = bytes(self._buf[:i])
            del self._buf[: i + 1]
            if self._discarding:
                self._discarding = False
                continue
            if len(chunk) > self.MAX_ENCODED:
                self.overflows += 1
                continue
            if chunk:
                out.append(chunk)

    def clear(self) -> None:
        """Drop buffered bytes (e.g. after reopening a port)."""
        self._buf.clear()
        self._discarding = False

    @property
    def pending(self) -> int:
        """Bytes buffered without a delimiter yet."""
        return len(self._buf)
