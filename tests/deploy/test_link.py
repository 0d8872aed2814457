"""Serial link over a real pty: exchange, seq matching, resync, counters, vanished port."""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from deploy import protocol as P
from deploy.link import LinkError, SerialLink
from deploy.sim.virtual_robot import FaultInjection, VirtualRobot, open_pty
from envs.interface import QUADRUPED_INTERFACE

DEFAULT = QUADRUPED_INTERFACE.arrays()["default_pose_rad"].astype(np.float32)


class PtyRobot:
    """A VirtualRobot serving a pty from a thread of this process."""

    def __init__(self, faults: FaultInjection | None = None):
        self.robot = VirtualRobot(mode="stepped", faults=faults)
        self.master, self.slave, self.port = open_pty()
        self.stop = [False]
        self.thread = threading.Thread(target=self.robot.serve,
                                       kwargs={"master_fd": self.master, "stop": self.stop},
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop[0] = True
        self.thread.join(timeout=5)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def pty_robot() -> Iterator:
    robots: list[PtyRobot] = []

    def start(faults: FaultInjection | None = None) -> PtyRobot:
        robots.append(PtyRobot(faults))
        return robots[-1]

    yield start
    for r in robots:
        r.close()


def test_exchange_handshake_and_seq(pty_robot):
    r = pty_robot()
    with SerialLink(r.port, timeout_s=0.5) as link:
        info = link.exchange(P.Hello())
        assert isinstance(info, P.Info) and info.n_joints == 12 and info.seq == 1
        st = link.exchange(P.Command(0, 1, DEFAULT))
        assert isinstance(st, P.State) and st.seq == 2 and st.has(P.Status.ARMED)
        assert link.stats.replies == 2 and link.stats.timeouts == 0
        # The round trip is measured (how long it took is the machine's load, not a test).
        assert np.isfinite(link.last_rtt_s) and link.last_rtt_s > 0


def test_late_reply_is_dropped_as_stale(pty_robot):
    r = pty_robot(FaultInjection(latency_s=0.03))
    with SerialLink(r.port) as link:
        assert link.exchange(P.Read(), timeout_s=0.01) is None  # reply comes after the timeout
        # Wait until the late reply is in the port (not a fixed sleep: 10 s only bounds a hang),
        # so the next exchange finds it there.
        assert select.select([r.slave], [], [], 10.0)[0]
        st = link.exchange(P.Read(), timeout_s=0.5)
        assert isinstance(st, P.State) and st.seq == 2
        assert link.stats.timeouts == 1 and link.stats.stale_replies == 1


def test_resync_after_garbage_and_corruption(pty_robot):
    r = pty_robot(FaultInjection(garbage_rate=0.5, corrupt_tx_rate=0.2, seed=3))
    with SerialLink(r.port, timeout_s=0.05) as link:
        got = sum(isinstance(link.exchange(P.Read()), P.State) for _ in range(100))
    s = link.stats
    # Every reply that was not corrupted arrived despite the garbage before it.
    assert got == 100 - r.robot.record.corrupted_tx_injected
    assert s.crc_errors + s.decode_errors >= r.robot.record.garbage_injected > 30
    assert s.timeouts == r.robot.record.corrupted_tx_injected > 5


def test_error_reply_counted(pty_robot):
    r = pty_robot()
    with SerialLink(r.port, timeout_s=0.5) as link:
        reply = link.exchange(P.Command(0, 1, DEFAULT))  # not armed: no HELLO yet
        assert reply == P.Error(1, P.ErrorCode.NOT_ARMED)
        assert link.stats.error_replies == 1


def test_vanished_port_is_a_clear_error_not_a_hang(pty_robot):
    r = pty_robot()
    link = SerialLink(r.port, timeout_s=0.5)
    assert isinstance(link.exchange(P.Hello()), P.Info)
    r.close()  # the robot side of the pty disappears
    with pytest.raises(LinkError, match="vanished|failed") as info:
        for _ in range(5):
            link.exchange(P.Read())
    assert info.value.port_lost
    # Not a hang: found at once, no exchange waited out its 0.5 s timeout (a wall-clock bound
    # would measure the machine's load instead).
    assert link.stats.timeouts == 0
    link.close()


def test_missing_port_names_the_path():
    with pytest.raises(LinkError, match="/dev/does-not-exist.*dialout"):
        SerialLink("/dev/does-not-exist")
