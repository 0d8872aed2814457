"""The one robot-link interface of the deploy loop (DESIGN.md contract 6).

The loop (:func:`deploy.loop.run_deploy`), the safety layer and the observation builder talk to a
robot only through :class:`RobotLink`: connect (learn the joint count and limits; arm), read the
state, send one vector of servo targets per control period, go passive, e-stop, close. What comes
back is typed, never bytes:

- :class:`RobotInfo` (``n_joints``, ``joint_min_rad``, ``joint_max_rad``, ``has_imu``,
  ``watchdog_ms``) after :meth:`RobotLink.connect`;
- a :class:`RobotState` (``status`` bits, ``q_rad``, ``dq_rad_s``, ``quat_wxyz``,
  ``gyro_rad_s``, ``accel_m_s2``, ``t_us``), an :class:`~deploy.protocol.Error` (the robot
  refused the request), a :class:`LinkFault` (the link itself saw a fault: a servo over
  temperature, a servo that stopped answering, a corrupt reply, a silent IMU), or ``None`` (no
  reply within the timeout).

``RobotInfo`` and ``RobotState`` are the typed records of protocol v1 (``shared/protocol.md``),
reused as the vocabulary of every link: angles are servo angles in ``[0, 2*pi]`` rad in the
robot's joint order, the status byte has the bits of :class:`~deploy.protocol.Status`.

Implementations:

- :class:`V1Link` (here): protocol v1 over a :class:`~deploy.link.SerialLink`, for a
  microcontroller or the virtual robot process;
- :class:`deploy.sts.StsBusLink`: a Feetech STS servo bus driven directly (vendor SDK) plus a
  BNO08x IMU in UART-RVC mode;
- :class:`deploy.sim.virtual_robot.InProcessLink`: the virtual robot in the same process, no pty.

A Dynamixel X-series backend is one more file with these seven members.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from deploy import protocol as P
from deploy.link import LinkError, SerialLink
from deploy.safety import Fault

__all__ = ["RobotInfo", "RobotState", "LinkFault", "Reply", "RobotLink", "V1Link", "hello",
           "as_robot_link", "LINK_KINDS"]

#: What a link reports after connecting (joint count, limits as servo angles, IMU flag).
RobotInfo = P.Info
#: One reading of the robot: status bits, joint positions/velocities, IMU.
RobotState = P.State

#: Values of ``--link`` and of :attr:`RobotLink.kind` (``virtual`` is the in-process robot).
LINK_KINDS = ("v1", "sts", "virtual")


@dataclass(frozen=True)
class LinkFault:
    """The link saw a fault that must stop the run (the loop raises ``SafetyFault(fault)``).

    Attributes:
        fault: Which :class:`~deploy.safety.Fault`.
        detail: One line naming the servo/joint and the figure, e.g.
            ``"servo 9 (rr_knee): temperature 75 C > 65 C"``.
    """

    fault: Fault
    detail: str


Reply = P.State | P.Error | LinkFault | None


@runtime_checkable
class RobotLink(Protocol):
    """What the deploy loop needs from a robot link.

    Attributes:
        kind: ``"v1"``, ``"sts"`` or ``"virtual"`` (recorded in the summary and the log).
        port: Device path (or a description), for messages.
        last_rtt_s: Round trip of the last answered request [s].
    """

    kind: str
    port: str
    last_rtt_s: float

    def connect(self, attempts: int = 3) -> P.Info:
        """Reach the robot, check it, arm it; return its joint count and limits.

        Raises:
            LinkError: no answer, a missing servo, a wrong baud rate, a bad calibration (the
                message names what and the fix); nothing has moved.
        """
        ...

    def read(self, timeout_s: float) -> Reply:
        """Read the state without commanding anything."""
        ...

    def command(self, target_rad: np.ndarray, timeout_s: float) -> Reply:
        """Send ``(n_joints,)`` float32 servo targets [rad] (position mode) and read the state."""
        ...

    def passive(self, target_rad: np.ndarray, timeout_s: float) -> Reply:
        """Go passive (servos limp or damped); ``target_rad`` is a safe pose for links that
        need one. Returns the state when the robot confirmed."""
        ...

    def estop(self, timeout_s: float) -> Reply:
        """Emergency stop: disarm and go passive at once. Returns the state when confirmed."""
        ...

    def stats_dict(self) -> dict[str, Any]:
        """Counters of the link (exchanges, timeouts, corrupt replies, bytes...)."""
        ...

    def close(self) -> None:
        """Release the port(s); never raises."""
        ...


def hello(link: SerialLink, attempts: int = 3, timeout_s: float = 0.2) -> P.Info:
    """Send HELLO until INFO arrives (this arms a protocol-v1 robot).

    Raises:
        LinkError: if no INFO arrives after ``attempts`` tries, naming what came instead.
    """
    last: object = None
    for _ in range(attempts):
        reply = link.exchange(P.Hello(), timeout_s=timeout_s)
        if isinstance(reply, P.Info):
            return reply
        last = reply
    raise LinkError(
        f"robot on {link.port!r} did not answer HELLO with INFO after {attempts} tries "
        f"(last reply: {last!r}); check power, port, baud rate, and that the firmware speaks "
        "protocol v1"
    )


class V1Link:
    """Protocol v1 (``shared/protocol.md``) behind :class:`RobotLink`.

    Args:
        serial_link: An open :class:`~deploy.link.SerialLink` (or any object with its
            ``exchange(msg, timeout_s)``).
        kind: Recorded name, ``"v1"``.
    """

    def __init__(self, serial_link: SerialLink, kind: str = "v1"):
        self.serial = serial_link
        self.kind = kind

    @property
    def port(self) -> str:
        return str(getattr(self.serial, "port", "?"))

    @property
    def last_rtt_s(self) -> float:
        return float(getattr(self.serial, "last_rtt_s", float("nan")))

    def connect(self, attempts: int = 3) -> P.Info:
        info = hello(self.serial, attempts)  # type: ignore[arg-type]
        if hasattr(self.serial, "n_joints"):
            self.serial.n_joints = info.n_joints
        return info

    def read(self, timeout_s: float) -> Reply:
        return self.serial.exchange(P.Read(), timeout_s=timeout_s)

    def command(self, target_rad: np.ndarray, timeout_s: float) -> Reply:
        return self.serial.exchange(P.Command(0, P.Mode.POSITION, target_rad), timeout_s=timeout_s)

    def passive(self, target_rad: np.ndarray, timeout_s: float) -> Reply:
        return self.serial.exchange(P.Command(0, P.Mode.PASSIVE, target_rad), timeout_s=timeout_s)

    def estop(self, timeout_s: float) -> Reply:
        return self.serial.exchange(P.Estop(), timeout_s=timeout_s)

    def stats_dict(self) -> dict[str, Any]:
        stats = getattr(self.serial, "stats", None)
        return stats.as_dict() if stats is not None else {}

    def close(self) -> None:
        close = getattr(self.serial, "close", None)
        if close is not None:
            close()


def as_robot_link(link: Any) -> RobotLink:
    """``link`` itself when it is a :class:`RobotLink`, else a :class:`V1Link` around it (a
    :class:`~deploy.link.SerialLink` or an object with its ``exchange``)."""
    if isinstance(link, RobotLink):
        return link
    return V1Link(link)
