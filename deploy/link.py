"""Serial link to the robot: one request/reply exchange of protocol v1 at a time, over pyserial.

The host is the master (``shared/protocol.md``): it numbers its frames with ``seq`` and every frame
gets one reply carrying that ``seq``. :meth:`SerialLink.exchange` sends one frame and waits, up to
a timeout, for the reply with the matching ``seq``:

- garbage and corrupt frames are dropped and the reader resynchronises at the next ``0x00``
  (counted in :attr:`LinkStats.crc_errors` / :attr:`LinkStats.decode_errors`);
- replies to earlier frames (a late reply after a timeout) are dropped (``stale_replies``);
- no reply within the timeout returns ``None`` (``timeouts``); the caller decides what a missed
  exchange means;
- an ERROR reply is returned as an :class:`~deploy.protocol.Error` (``error_replies``);
- a port that vanishes (``SerialException`` / ``OSError``) raises :class:`LinkError` at once, it
  never hangs: every read is bounded by ``select`` with the remaining timeout and every write by
  pyserial's ``write_timeout``.

All bytes are built and parsed by :mod:`deploy.protocol`.
"""

from __future__ import annotations

import select
import time
from dataclasses import asdict, dataclass

import serial

from deploy import protocol as P

__all__ = ["LinkError", "LinkStats", "SerialLink", "DEFAULT_BAUD"]

#: Default baud rate of protocol v1.
DEFAULT_BAUD = 1_000_000


class LinkError(RuntimeError):
    """The serial port cannot be opened, or it failed or vanished during a run.

    Attributes:
        port_lost: ``True`` when the port itself failed (no frame can be sent any more).
    """

    def __init__(self, message: str, port_lost: bool = False):
        super().__init__(message)
        self.port_lost = port_lost


@dataclass
class LinkStats:
    """Counters of a link, all since it was opened."""

    exchanges: int = 0
    replies: int = 0
    timeouts: int = 0
    crc_errors: int = 0
    decode_errors: int = 0
    error_replies: int = 0
    stale_replies: int = 0
    overflows: int = 0
    bytes_tx: int = 0
    bytes_rx: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class SerialLink:
    """Request/reply link over a serial port (UART, USB-CDC or a pty).

    Args:
        port: Device path, e.g. ``/dev/ttyACM0`` or the pty printed by the virtual robot.
        baud: Baud rate (protocol default 1,000,000).
        timeout_s: Default time to wait for a reply [s].
        n_joints: When known, replies must carry this many joints (else a decode error).
        write_timeout_s: Bound on a blocked write [s]; past it the link is declared failed.

    Raises:
        LinkError: if the port cannot be opened (missing device, permissions, busy).
    """

    def __init__(
        self,
        port: str,
        baud: int = DEFAULT_BAUD,
        timeout_s: float = 0.05,
        n_joints: int | None = None,
        write_timeout_s: float = 0.5,
    ):
        self.port = port
        self.timeout_s = float(timeout_s)
        self.n_joints = n_joints
        self.stats = LinkStats()
        self.last_rtt_s = float("nan")
        self._seq = 0
        self._splitter = P.FrameSplitter()
        try:
            self._serial = serial.Serial(
                port,
                baudrate=baud,
                bytesize=serial.EIGHTBITS,
                parity=serial.PARITY_NONE,
                stopbits=serial.STOPBITS_ONE,
                timeout=0,
                write_timeout=write_timeout_s,
                xonxoff=False,
                rtscts=False,
                dsrdtr=False,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(
                f"cannot open serial port {port!r} at {baud} baud: {exc}. Check the device path "
                "(ls /dev/ttyACM* /dev/ttyUSB*), that your user may open it (group 'dialout'), "
                "and that no other program holds it."
            ) from exc
        self._fd = self._serial.fileno()
        self._drain()

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Close the port; never raises."""
        try:
            self._serial.close()
        except Exception:  # noqa: BLE001 - closing a dead port must not mask the original error
            pass

    def __enter__(self) -> SerialLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return bool(self._serial.is_open)

    # ---------------------------------------------------------------- exchange
    def next_seq(self) -> int:
        """The next host ``seq``: 1..65535, wrapping; 0 is kept for ERRORs whose header was lost."""
        self._seq = self._seq % 0xFFFF + 1
        return self._seq

    def exchange(self, msg: P.Message, timeout_s: float | None = None) -> P.Message | None:
        """Send ``msg`` with a fresh ``seq`` and return the reply carrying that ``seq``.

        Args:
            msg: A host -> robot message (HELLO, COMMAND, READ or ESTOP); its ``seq`` is set here.
            timeout_s: Time to wait for the reply [s]; default :attr:`timeout_s`.

        Returns:
            The reply (INFO, STATE or ERROR), or ``None`` after a timeout. An ERROR with ``seq``
            0 (the robot could not read some frame's header) is returned only if no reply with
            our ``seq`` arrives before the timeout, as it may answer garbage rather than us.

        Raises:
            LinkError: the port failed or vanished.
        """
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        msg.seq = self.next_seq()
        frame = P.encode(msg)
        self._collect(0.0, None)  # consume anything left from earlier exchanges, as stale
        t0 = time.perf_counter()
        self._write(frame)
        self.stats.exchanges += 1
        reply = self._collect(timeout_s, msg.seq, t0)
        if reply is None:
            self.stats.timeouts += 1
            return None
        self.last_rtt_s = time.perf_counter() - t0
        self.stats.replies += 1
        if isinstance(reply, P.Error):
            self.stats.error_replies += 1
        return reply

    # ---------------------------------------------------------------- internals
    def _write(self, frame: bytes) -> None:
        try:
            n = self._serial.write(frame)
            self._serial.flush()
        except (serial.SerialException, OSError) as exc:
            raise LinkError(
                f"serial port {self.port!r} failed while writing: {exc}", port_lost=True
            ) from exc
        self.stats.bytes_tx += n or 0

    def _read_available(self, wait_s: float) -> bytes:
        try:
            ready, _, _ = select.select([self._fd], [], [], max(0.0, wait_s))
            if not ready:
                return b""
            data = self._serial.read(4096)
        except (serial.SerialException, OSError, ValueError, TypeError) as exc:
            raise LinkError(
                f"serial port {self.port!r} vanished or failed while reading: {exc}",
                port_lost=True,
            ) from exc
        if not data:  # readable but empty: the device is gone (pyserial usually raises first)
            raise LinkError(
                f"serial port {self.port!r} reports data but returns none: unplugged?",
                port_lost=True,
            )
        self.stats.bytes_rx += len(data)
        return data

    def _drain(self) -> None:
        try:
            self._serial.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"serial port {self.port!r} failed: {exc}", port_lost=True) from exc
        self._splitter.clear()

    def _collect(
        self, timeout_s: float, want_seq: int | None, t0: float | None = None
    ) -> P.Message | None:
        """Read frames until one answers ``want_seq`` or the time is up; others are dropped.

        Args:
            timeout_s: Time to wait, counted from ``t0`` (default: now) [s].
            want_seq: The ``seq`` of the pending request; ``None`` drains (all frames stale).
            t0: ``time.perf_counter()`` when the request was sent.

        Returns:
            The matching reply; else an ERROR with ``seq`` 0 if one came; else ``None``.
        """
        start = time.perf_counter() if t0 is None else t0
        deadline = start + timeout_s
        fallback: P.Message | None = None
        while True:
            data = self._read_available(deadline - time.perf_counter())
            overflows_before = self._splitter.overflows
            frames = self._splitter.feed(data)
            self.stats.overflows += self._splitter.overflows - overflows_before
            for raw in frames:
                try:
                    reply = P.decode(raw, self.n_joints)
                except (P.CrcError, P.FramingError):
                    self.stats.crc_errors += 1
                    continue
                except P.ProtocolError:
                    self.stats.decode_errors += 1
                    continue
                if want_seq is not None and reply.seq == want_seq:
                    return reply
                if want_seq is not None and isinstance(reply, P.Error) and reply.seq == 0:
                    # The robot could not read some header: ours if nothing better arrives.
                    fallback = reply
                    continue
                self.stats.stale_replies += 1
            if time.perf_counter() >= deadline:
                return fallback
