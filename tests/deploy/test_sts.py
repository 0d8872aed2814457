"""The STS bus backend on the real SDK against the bus emulator (in this process, on ptys).

Covers the bytes of the bus (wire bound), the tick mapping, the last guard before the bus, the
start-up refusals (a missing servo, a wrong baud rate, a stale calibration, a missing SDK, a
servo in another operating mode, angle limits other than the calibration's, a failing IMU
port), the bus settings at start (return delay, the adapter's latency timer), transient bus
errors retried and counted, persistent loss stopped, and one sync read a period.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time

import numpy as np
import pytest

from deploy import protocol as P
from deploy.calibration import JointCalibration
from deploy.link import LinkError
from deploy.loop import _stop
from deploy.robot_link import LinkFault, RobotLink
from deploy.safety import Fault
from deploy.sim.sts_emulator import (
    EmulatorFaults,
    StsBusEmulator,
    checksum,
    instruction_packet,
    status_packet,
)
from deploy.sts import (
    MAX_FAILED_PERIODS,
    StsBusLink,
    bus_bytes_per_period,
    describe_error,
    latency_timer_warning,
    sign_magnitude,
    to_sign_magnitude,
    wire_time_s,
)
from envs.interface import QUADRUPED_INTERFACE

DEFAULT = QUADRUPED_INTERFACE.arrays()["default_pose_rad"]
#: Reply timeout [s] where a test is not about timing. The emulator is a thread of this process
#: (it shares the GIL and the CPU): on a busy machine its replies come late, which real servos,
#: answering in silicon, do not; a generous timeout keeps such tests about what they check.
T = 0.5


def sts_link(bus: str, cal, imu: str | None, **kw) -> StsBusLink:
    """An :class:`StsBusLink` with generous timeouts (:data:`T`) for its pings and register
    reads at connect, the stop's read-back, the health read of an alarm and the IMU's silence;
    ``kw`` overrides them (a test about one of those timeouts sets it)."""
    kw = {"ping_timeout_s": T, "health_timeout_s": T, "imu_timeout_s": T, **kw}
    return StsBusLink(bus, cal, imu, **kw)


#: A marker packet for :func:`settle`: an instruction no STS servo has (0x55), to an ID no servo
#: has (253). The emulator counts it (``by_instruction["0x55"]``) and answers nothing.
_MARKER = instruction_packet(0xFD, 0x55)


def settle(emu: StsBusEmulator, bus: str) -> None:
    """Wait until the emulator thread has taken in every byte written to the bus so far (a
    broadcast or sync write has no reply to wait for; a fixed sleep raced a busy machine).

    The emulator handles the bus's bytes in order, so once it has counted a marker packet
    written after them, they are in (a "nothing reached the bus" check can trust it too). The
    10 s give-up time only bounds a hang.
    """
    import os

    seen = emu.record.by_instruction.get("0x55", 0)
    fd = os.open(bus, os.O_WRONLY | os.O_NOCTTY)
    try:
        os.write(fd, _MARKER)
    finally:
        os.close(fd)
    give_up = time.monotonic() + 10.0
    while emu.record.by_instruction.get("0x55", 0) == seen:
        assert time.monotonic() < give_up, "the emulator did not take in the bus's bytes"
        time.sleep(0.002)


@pytest.fixture
def emulator():
    """Factory: ``emulator(**kw) -> (emu, bus_path, imu_path)``; stopped at teardown."""
    started = []

    def start(**kw):
        emu = StsBusEmulator(**kw)
        bus, imu, ev = emu.start_thread()
        started.append(ev)
        return emu, bus, imu

    yield start
    for ev in started:
        ev.set()


def test_wire_bound_of_one_period():
    b = bus_bytes_per_period(12, read_len=4)
    # Sync write: FF FF FE LEN 83 2A 02 + 12 x (ID lo hi) + CHK; sync read: FF FF FE LEN 82 38 04
    # + 12 IDs + CHK; 12 status packets FF FF ID LEN ERR p p v v CHK.
    assert (b["sync_write"], b["sync_read"], b["status"], b["total"]) == (44, 20, 120, 184)
    assert wire_time_s(b["total"], 1_000_000) == pytest.approx(1.84e-3)
    assert sign_magnitude(to_sign_magnitude(-300, 15), 15) == -300
    assert to_sign_magnitude(-5, 10) == 0x405
    assert describe_error(0x24) == "overheat, overload"
    pkt = status_packet(3, 0x04, b"\x10\x20")
    assert pkt == bytes([0xFF, 0xFF, 3, 4, 4, 0x10, 0x20, checksum(pkt[2:-1])])


def test_runs_the_emulated_robot(emulator):
    emu, bus, imu = emulator()
    cal = emu.truth.calibration()
    with sts_link(bus, cal, imu) as link:
        assert isinstance(link, RobotLink) and link.kind == "sts"
        info = link.connect()
        assert info.n_joints == 12 and info.has_imu
        np.testing.assert_allclose(info.joint_min_rad, cal.arrays()["min_rad"], atol=1e-6)
        # Torque on, holding the pose read at start: goal = present, no jump.
        settle(emu, bus)
        assert all(emu.record.torque_on)
        replies = []
        for _ in range(30):
            replies.append(link.command(DEFAULT.astype(np.float32), T))
            time.sleep(0.01)
        # Every period got its state (a late emulator thread is waited for: T, not 30 ms).
        assert all(isinstance(r, P.State) for r in replies), (replies, link.stats)
        state = replies[-1]
        assert state.has(P.Status.ARMED)
        # Positions come back through the mapping to within a tick (1.5e-3 rad) of the physics.
        q_sim = emu.sim.q_joint_rad + np.pi
        assert np.abs(state.q_rad - q_sim).max() < 0.05
        # The IMU is mounted rotated (body x = IMU +y); the body frame comes back upright.
        g = emu.sim.base_quat_wxyz
        np.testing.assert_allclose(np.abs(state.quat_wxyz), np.abs(g), atol=0.02)
        assert state.accel_m_s2[2] > 8.0
        # Goals on the bus in ticks: the truth's mapping of the default pose, per servo.
        want = np.rint(emu.zero + emu.dir * (DEFAULT - np.pi) * 4096 / (2 * math.pi))
        for sid, k in emu.joint_of.items():
            assert int.from_bytes(emu.mem[sid][42:44], "little") == want[k]
        assert isinstance(link.passive(DEFAULT, T), P.State)
        settle(emu, bus)
        assert not any(emu.record.torque_on)
        assert link.stats["failed_periods"] == 0 and link.stats["imu_packets"] >= 20
    assert emu.record.goals_outside_limits == 0


def test_no_target_outside_the_calibrated_limits_reaches_the_bus(emulator):
    emu, bus, imu = emulator()
    cal = emu.truth.calibration()
    with sts_link(bus, cal, imu) as link:
        link.connect()
        settle(emu, bus)
        writes = emu.record.goal_writes
        arr = cal.arrays()
        for bad in (arr["max_rad"] + 0.01, arr["min_rad"] - 0.01, np.full(12, np.nan),
                    DEFAULT[:6]):
            t = DEFAULT.copy() if bad.size == 12 else bad
            if bad.size == 12:
                t[4] = bad[4]
            reply = link.command(np.asarray(t, dtype=np.float32), T)
            assert isinstance(reply, P.Error) and reply.code == P.ErrorCode.TARGET_OUT_OF_RANGE
        settle(emu, bus)
        assert emu.record.goal_writes == writes  # nothing reached the bus
        assert link.stats["refused_targets"] == 4
        # Exactly at the limits (float32, as the safety layer sends them): accepted, and the
        # ticks are clipped inward, never outside.
        for edge in (arr["max_rad"], arr["min_rad"]):
            assert isinstance(link.command(edge.astype(np.float32), T), P.State)
    settle(emu, bus)
    assert emu.record.goals_outside_limits == 0
    assert emu.record.goal_writes == writes + 24


def test_a_missing_servo_is_named_and_nothing_moves(emulator):
    emu, bus, imu = emulator()
    cal = emu.truth.calibration()
    cal.joints["rl_knee"] = dataclasses.replace(cal.joints["rl_knee"], servo_id=21)
    with sts_link(bus, cal, imu) as link, pytest.raises(LinkError) as info:
        link.connect()
    msg = str(info.value)
    assert "servo 21 (rl_knee) did not answer" in msg and "Nothing was moved" in msg
    settle(emu, bus)
    # A bounded wait, in pings, not seconds: servo 21 was asked in each of the 3 tries, no
    # servo more often (a reply late on a busy machine costs another try, no more).
    assert 12 + 2 <= emu.record.by_instruction["PING"] <= 3 * 12
    assert emu.record.goal_writes == 0 and not any(emu.record.torque_on)
    assert "SYNC_WRITE" not in emu.record.by_instruction


def test_wrong_baud_rate_is_a_clear_error_after_a_bounded_wait(emulator):
    emu, bus, imu = emulator(baud=500_000)  # servos set to 500 kbaud, host at 1 Mbaud
    cal = emu.truth.calibration()
    # The default ping timeout: the bounded wait in pings is what this test checks.
    with StsBusLink(bus, cal, imu, baud=1_000_000) as link, pytest.raises(LinkError) as info:
        link.connect(attempts=3)
    assert "no servo answered" in str(info.value) and "wrong baud rate" in str(info.value)
    # Bounded, in pings, not seconds: 3 tries x 12 IDs, one ping each, then it gave up (the
    # emulator drops the bytes at the wrong rate and counts them; the 10 s only bound a hang).
    pings = 3 * 12 * len(instruction_packet(1, 0x01))
    give_up = time.monotonic() + 10.0
    while emu.record.wrong_baud_bytes < pings and time.monotonic() < give_up:
        time.sleep(0.002)
    assert emu.record.wrong_baud_bytes == pings and emu.record.goal_writes == 0
    with pytest.raises(LinkError, match="not one an STS servo supports"):
        StsBusLink(bus, cal, imu, baud=921_600)


def test_a_stale_calibration_is_refused_before_anything_moves(emulator):
    emu, bus, imu = emulator()
    cal = emu.truth.calibration()
    j = cal.joints["fr_knee"]
    cal.joints["fr_knee"] = JointCalibration(j.servo_id, -j.direction, j.zero_offset_ticks,
                                             j.min_rad, j.max_rad)
    with sts_link(bus, cal, imu) as link, pytest.raises(LinkError) as info:
        link.connect()
    assert "joint 'fr_knee'" in str(info.value) and "calibration is stale" in str(info.value)
    assert emu.record.goal_writes == 0 and not any(emu.record.torque_on)


@pytest.mark.parametrize(("kind", "fault", "words"), [
    ("overheat", Fault.SERVO_ALARM, "overheat (error bits 0x04); now 80 C"),
    ("undervolt", Fault.SERVO_ALARM, "input voltage (error bits 0x01); now 38 C, 8.0 V"),
    ("overload", Fault.SERVO_ALARM, "overload (error bits 0x20)"),
    ("imu_silent", Fault.IMU_LOST, "no valid IMU packet"),
    ("imu_checksum", Fault.IMU_LOST, "corrupt packets so far"),
])
def test_faults_come_back_named_in_the_period_they_appear(emulator, kind, fault, words):
    emu, bus, imu = emulator(faults=EmulatorFaults(kind, servo_id=5, after_s=0.2))
    # Generous times (T) for the health read that puts the figures into the reason (default
    # 5 ms) and the replies; the IMU's silence is judged after 0.1 s (the fault is what this
    # test checks, not how soon in seconds).
    with sts_link(bus, emu.truth.calibration(), imu,
                  imu_timeout_s=0.1 if kind.startswith("imu") else T) as link:
        link.connect()
        replies = []
        give_up = time.monotonic() + 10.0  # bounds a hang only
        while time.monotonic() < give_up:
            replies.append(link.command(DEFAULT.astype(np.float32), T))
            if isinstance(replies[-1], LinkFault):
                break
            time.sleep(0.01)
        assert emu.fault_on
        last = replies[-1]
        assert isinstance(last, LinkFault) and last.fault == fault, last
        assert words in last.detail
        if kind == "imu_checksum":
            assert link.imu.parser.bad_checksums >= 2
        if not kind.startswith("imu"):
            assert "servo 5 (fl_hip_flexion)" in last.detail
        # Stop: torque off reaches every servo, and is confirmed.
        assert isinstance(link.estop(T), P.State)
        settle(emu, bus)
        assert not any(emu.record.torque_on)


@pytest.mark.parametrize(("kind", "fault", "words"), [
    ("silent", Fault.SERVO_SILENT, "servo 5 (fl_hip_flexion) did not answer the sync read"),
    ("checksum", Fault.CORRUPT_REPLY,
     "servo 5 (fl_hip_flexion): status packet failed its checksum"),
])
def test_a_servo_that_stays_silent_or_corrupt_stops_after_the_failed_periods(emulator, kind,
                                                                             fault, words):
    """A failed sync read is retried within the period; a period whose reads all fail is a
    missed period (None: the loop holds the last state); MAX_FAILED_PERIODS of them in a row
    are persistent loss, named."""
    emu, bus, imu = emulator(faults=EmulatorFaults(kind, servo_id=5, after_s=0.2))
    with sts_link(bus, emu.truth.calibration(), imu) as link:
        link.connect()
        replies = []
        for _ in range(60):
            # As the loop does each period (fresh_state), with reply timeouts long enough for a
            # late emulator thread: the servo's misses, not the host's, fail these periods.
            link.read(T / 2)
            replies.append(link.command(DEFAULT.astype(np.float32), T))
            if isinstance(replies[-1], LinkFault):
                break
            time.sleep(0.01)
        # It ends with 4 missed periods (None: the state held), then the fault: counted from the
        # end, since a reply late on a busy machine before the fault is a missed period too.
        assert replies[-MAX_FAILED_PERIODS:-1] == [None] * (MAX_FAILED_PERIODS - 1)
        last = replies[-1]
        assert isinstance(last, LinkFault) and last.fault == fault, last
        assert words in last.detail and "5 control periods in a row" in last.detail
        assert link.stats["max_failed_periods_in_row"] == MAX_FAILED_PERIODS
        assert link.stats["failed_periods"] == replies.count(None) + 1
        # Each failed period was retried: more sync reads than its READ's and its COMMAND's
        # first before it gave up (how many more fit depends on the machine, up to
        # read_attempts in each).
        events = link.stats["failed_period_events"]
        assert len(events) == link.stats["failed_periods"]
        assert all("the last state is held" in e for e in events)
        tries = [int(e.split("no valid state after ")[1].split(" ")[0]) for e in events]
        assert min(tries) >= 3, events
        assert link.stats["read_retries"] >= MAX_FAILED_PERIODS
        # The stop: torque off reaches every servo; the one whose torque cannot be read back
        # is named, and only that one.
        stopped = link.estop(T)
        assert isinstance(stopped, LinkFault), stopped
        assert stopped.detail.endswith(": servo 5 (fl_hip_flexion) gave no valid reply")
        settle(emu, bus)
        assert not any(emu.record.torque_on)


def _run_periods(link: StsBusLink, n: int, fresh_state: bool = True,
                 timeout_s: float = T) -> list:
    """``n`` control periods as the deploy loop drives them (READ at the deadline when
    ``fresh_state``, then COMMAND), 5 ms apart; the COMMAND replies. The READ has half of
    ``timeout_s``, the COMMAND all of it, as in the loop (6 and 12 ms at 50 Hz); the default is
    generous (:data:`T`): the bus's errors, not the host's lateness, fail these periods."""
    replies = []
    for _ in range(n):
        if fresh_state:
            link.read(timeout_s / 2)
        replies.append(link.command(DEFAULT.astype(np.float32), timeout_s))
        time.sleep(0.005)
    return replies


def test_transient_bus_errors_are_retried_and_counted_not_faults(emulator):
    """Issue 22, hole 3: 2 % of status packets corrupt and 1 % lost (a sync read of 12 fails
    about 30 % of the time): retried within the period; no fault, few periods without a state."""
    emu, bus, imu = emulator(faults=EmulatorFaults(corrupt_rate=0.02, drop_rate=0.01, seed=3))
    with sts_link(bus, emu.truth.calibration(), imu) as link:
        link.connect()
        replies = _run_periods(link, 150)
        assert not any(isinstance(r, LinkFault) for r in replies), replies
        st = link.stats
        assert emu.record.corrupted_replies > 0 and emu.record.dropped_replies > 0
        assert st["corrupt_replies"] > 0 and st["lost_replies"] + st["timeouts"] > 0
        assert st["read_retries"] > 0
        assert st["max_failed_periods_in_row"] < MAX_FAILED_PERIODS
        assert sum(r is None for r in replies) == st["failed_periods"] <= 15
        assert isinstance(link.passive(DEFAULT, T), P.State)
    settle(emu, bus)
    assert not any(emu.record.torque_on)


def test_a_bus_losing_a_state_every_few_periods_stops_on_the_window_rule(emulator):
    """No 5 failed periods in a row needed: 10 of the last 50 stop it too (LINK_LOST)."""
    emu, bus, imu = emulator(faults=EmulatorFaults(seed=1))
    # 3 sync reads a call at most, as fit in the loop's READ at 50 Hz (the timeouts here are
    # generous, so the bus's errors, not the host's lateness, fail the periods).
    with sts_link(bus, emu.truth.calibration(), imu, max_failed_periods=1000,
                  read_attempts=3) as link:
        link.connect()
        # Then a quarter of the status packets corrupt: most sync reads fail, not every one.
        emu.faults.corrupt_rate = 0.25
        replies = _run_periods(link, 200)
        faults = [r for r in replies if isinstance(r, LinkFault)]
        assert faults and faults[0].fault == Fault.LINK_LOST, faults
        assert "10 of the last" in faults[0].detail and "(limit 10)" in faults[0].detail
        assert "checksum" in faults[0].detail
        assert 0 < link.stats["max_failed_periods_in_row"] and replies.count(None) >= 9


def test_missing_sdk_names_the_extra(monkeypatch, emulator):
    monkeypatch.setitem(sys.modules, "scservo_sdk", None)
    emu, bus, imu = emulator()
    with pytest.raises(LinkError, match=r"pip install 'robotac\[sts\]'"):
        StsBusLink(bus, emu.truth.calibration(), imu)


def test_emulator_ignores_a_corrupt_instruction_and_answers_a_ping():
    emu = StsBusEmulator(wire_baud=0)
    ping = instruction_packet(3, 0x01)
    assert emu.feed(ping) == status_packet(3, 0)
    bad = ping[:-1] + bytes([ping[-1] ^ 1])
    assert emu.feed(bad) == b"" and emu.record.bad_checksums_rx == 1
    # Sync read of the model number answers in the order asked.
    out = emu.feed(instruction_packet(0xFE, 0x82, bytes([3, 2, 7, 2])))
    assert out == status_packet(7, 0, (777).to_bytes(2, "little")) + status_packet(
        2, 0, (777).to_bytes(2, "little"))


def test_a_silent_bus_is_a_missed_period_not_a_named_servo(emulator):
    """No byte at all back (servo power cut, host stall): ``None``, as a v1 drop; the loop then
    stops after ``max_consecutive_drops`` periods in a row (test_sts_deploy)."""
    emu, bus, imu = emulator(faults=EmulatorFaults("power_off", after_s=0.1))
    with sts_link(bus, emu.truth.calibration(), imu) as link:
        link.connect()
        give_up = time.monotonic() + 10.0  # the cut comes 0.1 s after the torque-on
        while not emu.fault_on and time.monotonic() < give_up:
            time.sleep(0.005)
        reply = link.command(DEFAULT.astype(np.float32), 0.012)
        # One sync read waited out its timeout, not retried past it (a count, not seconds).
        assert emu.fault_on and reply is None and link.stats["timeouts"] == 1
        # The wait blocks (select until the timeout), it does not spin: this thread's CPU time
        # over a 1 s wait is a few ms (0.2 ms selects, as before, took tens of ms, and the GIL
        # from the emulator's thread on a busy machine).
        cpu = time.thread_time()
        assert link.command(DEFAULT.astype(np.float32), 1.0) is None
        assert time.thread_time() - cpu < 0.02


def test_a_reply_cut_short_by_the_timeout_is_late_not_corrupt(emulator):
    """The SDK reports a status packet still arriving at the timeout as COMM_RX_CORRUPT, as a
    failed checksum; the link counts it as a missing reply (a late host cuts it so), never as a
    corrupt one, and a servo whose replies are all cut short is named silent, not corrupt."""
    emu, bus, imu = emulator()
    real = emu._reply

    def cut(sid, data=b""):  # servo 12 (the last asked) sends 4 bytes of its status packet
        pkt = real(sid, data)
        return pkt[:4] if sid == 12 and emu.fault_on else pkt

    emu._reply = cut
    with sts_link(bus, emu.truth.calibration(), imu) as link:
        link.connect()
        emu.fault_on = True
        replies = _run_periods(link, MAX_FAILED_PERIODS, timeout_s=0.05)
        assert replies[:-1] == [None] * (MAX_FAILED_PERIODS - 1)
        assert isinstance(replies[-1], LinkFault) and replies[-1].fault == Fault.SERVO_SILENT
        assert "servo 12 (rl_knee) did not answer the sync read within" in replies[-1].detail
        assert link.stats["corrupt_replies"] == 0
        assert link.stats["timeouts"] == link.stats["sync_reads"] - 1  # all but the connect's


def test_a_silent_imu_at_start_is_refused_before_the_torque_goes_on(emulator):
    import os

    from deploy.sim.sts_emulator import open_pty

    emu, bus, _ = emulator()
    master, slave, quiet = open_pty()  # an IMU port where nothing is sent
    try:
        with sts_link(bus, emu.truth.calibration(), quiet) as link, \
                pytest.raises(LinkError, match="no BNO08x RVC packet") as info:
            link.connect()
        # The wait it gave the IMU, as it says (a wall-clock bound measured the machine's load).
        assert "within 0.5 s" in str(info.value) and "Nothing was moved" in str(info.value)
        settle(emu, bus)
        assert emu.record.first_torque_on_s is None and emu.record.goal_writes == 0
    finally:
        os.close(master)
        os.close(slave)


def _interrupt_next_read(link: StsBusLink) -> None:
    """Ctrl-C arrives inside the SDK's next read (the SDK marks the port busy meanwhile)."""
    real = link.port_handler.readPort

    def interrupted(length):
        link.port_handler.readPort = real
        raise KeyboardInterrupt

    link.port_handler.readPort = interrupted


def test_ctrl_c_inside_the_bus_read_still_releases_the_torque(emulator):
    """S1: an interrupt inside ``txRxPacket`` left ``is_using`` set; the stop's torque-off then
    got COMM_PORT_BUSY and the servos stayed powered, reported as a watchdog stop."""
    emu, bus, imu = emulator()
    with sts_link(bus, emu.truth.calibration(), imu) as link:
        link.connect()
        settle(emu, bus)
        assert all(emu.record.torque_on)
        _interrupt_next_read(link)
        with pytest.raises(KeyboardInterrupt):
            link.command(DEFAULT.astype(np.float32), T)
        assert not link.port_handler.is_using
        assert _stop(link, True, False, DEFAULT, None, QUADRUPED_INTERFACE)[0] == "passive"
        settle(emu, bus)
        assert not any(emu.record.torque_on)
        # A port left marked busy by any other cut-short SDK call: the torque-off still goes out.
        link.connect()
        settle(emu, bus)
        link.port_handler.is_using = True
        assert _stop(link, True, True, DEFAULT, None, QUADRUPED_INTERFACE)[0] == "estop"
        settle(emu, bus)
        assert not any(emu.record.torque_on)


def _drop_torque_off(emu: StsBusEmulator, sid: int, times: int) -> list[int]:
    """Servo ``sid`` misses the next ``times`` torque-off writes (a lost broadcast)."""
    real, left = emu._write, [times]

    def write(s, addr, data, now):
        if s == sid and addr == 40 and data[0] == 0 and left[0] > 0:
            left[0] -= 1
            return
        real(s, addr, data, now)

    emu._write = write
    return left


def test_stop_confirms_the_torque_is_off_by_reading_it_back(emulator):
    """S2: passive/estop read Torque_Enable (40) back from every servo and write the torque-off
    again until all read 0; a servo that never releases is named."""
    emu, bus, imu = emulator()
    with sts_link(bus, emu.truth.calibration(), imu) as link:
        link.connect()
        settle(emu, bus)
        left = _drop_torque_off(emu, 5, 1)
        writes = link.stats["sync_writes"]
        assert isinstance(link.passive(DEFAULT, T), P.State)
        assert left == [0] and link.stats["sync_writes"] == writes + 2  # resent once
        settle(emu, bus)
        assert not any(emu.record.torque_on)
        link.connect()
        settle(emu, bus)
        _drop_torque_off(emu, 5, 100)
        reply = link.estop(T)
        assert isinstance(reply, LinkFault) and reply.fault == Fault.SERVO_SILENT
        assert "servo 5 (fl_hip_flexion) reads Torque_Enable = 1" in reply.detail
        assert "after 3 torque-off writes" in reply.detail
        stopped = _stop(link, True, True, DEFAULT, None, QUADRUPED_INTERFACE)[0]
        assert stopped.startswith("estop sent, not confirmed: torque release not confirmed")
        assert "servo 5 (fl_hip_flexion)" in stopped and "no link watchdog" in stopped


def test_an_imu_error_while_stopping_does_not_hide_the_released_torque(emulator):
    """S7: the stop's read does not judge the IMU; its error is no port failure."""
    from deploy.imu import ImuError

    emu, bus, imu = emulator()
    with sts_link(bus, emu.truth.calibration(), imu) as link:
        link.connect()

        def broken():
            raise ImuError("IMU port failed: [Errno 5] Input/output error")

        link.imu.poll = broken
        with pytest.raises(LinkError):  # in the run: a link error, as before
            link.command(DEFAULT.astype(np.float32), T)
        assert _stop(link, True, False, DEFAULT, None, QUADRUPED_INTERFACE)[0] == "passive"
        settle(emu, bus)
        assert not any(emu.record.torque_on)


@pytest.mark.parametrize(("outside_rad", "refused"), [(0.15, True), (0.02, False)])
def test_a_joint_outside_its_range_at_start_is_refused_unless_barely(emulator, outside_rad,
                                                                      refused):
    """S5: torque-on would move a joint up to 0.35 rad outside its range into it at full speed;
    more than 0.03 rad outside is refused (move it by hand), less moves at most that far."""
    emu, bus, imu = emulator(mode="stepped")  # no physics before the first goal write
    cal = emu.truth.calibration()
    k, name = 2, QUADRUPED_INTERFACE.joint_names[2]
    q = math.pi + float(emu.sim.q_joint_rad[k])
    cal.joints[name] = dataclasses.replace(cal.joints[name], min_rad=q + outside_rad,
                                           max_rad=q + outside_rad + 0.5)
    emu.apply_calibration(cal)  # the servos' own limits as `robotac calibrate` wrote them
    with sts_link(bus, cal, imu) as link:
        if refused:
            with pytest.raises(LinkError) as info:
                link.connect()
            msg = str(info.value)
            assert f"joint {name!r}" in msg and "0.15 rad outside" in msg
            assert "move it by hand past its min limit into the range" in msg
            assert "Nothing was moved" in msg
            settle(emu, bus)
            assert emu.record.goal_writes == 0 and not any(emu.record.torque_on)
        else:
            link.connect()
            settle(emu, bus)
            assert all(emu.record.torque_on)
            jump = abs(emu.target[k] - q)
            assert outside_rad - 0.002 < jump <= 0.03  # to the limit (ticks inward), no more


def test_ctrl_c_inside_a_bus_read_of_the_loop_ends_passive_with_the_torque_off(emulator,
                                                                               standing_policy):
    """S1 end to end: the loop's finally: after Ctrl-C inside the SDK's read releases every
    servo and says so (it said "none (port failed while stopping; the robot's watchdog ...)")."""
    from deploy.loop import LoopConfig, Phase, run_deploy
    from deploy.policy import OnnxPolicy
    from deploy.safety import SafetyConfig

    emu, bus, imu = emulator()
    with sts_link(bus, emu.truth.calibration(), imu) as link:
        def on_step(k, phase):
            if phase == Phase.RUN:
                _interrupt_next_read(link)

        # 10 Hz, 90 ms replies: a late emulator thread (same process) must not end the run
        # before the interrupt does; the rate is not what this test checks.
        cfg = LoopConfig(rate_hz=10, duration_s=1.0, reply_timeout_s=0.09,
                         safety=SafetyConfig(ramp_s=0.1, hold_s=0.1))
        res = run_deploy(link, OnnxPolicy(standing_policy), cfg, on_step=on_step)
    assert res.stop_reason == "interrupted by the operator (Ctrl-C)"
    assert res.stopped_with == "passive"
    settle(emu, bus)
    assert not any(emu.record.torque_on) and emu.record.torque_off_events_s


def test_the_telemetry_comes_with_the_first_read_of_every_tenth_period(emulator):
    """Positions and speeds every period; load, voltage and temperature with the period's
    first sync read (the READ when the loop reads, else the COMMAND's) every 10th period."""
    emu, bus, imu = emulator()
    with sts_link(bus, emu.truth.calibration(), imu, telemetry_every=10) as link:
        link.connect()
        link.telemetry["voltage_v"][:] = np.nan  # (connect read it too)
        assert isinstance(link.read(T), P.State)  # period 1 (k = 0): full
        assert np.isfinite(link.telemetry["voltage_v"]).all()
        assert isinstance(link.command(DEFAULT.astype(np.float32), T), P.State)
        link.telemetry["voltage_v"][:] = np.nan
        state = link.read(T)  # period 2: positions and speeds only
        assert isinstance(state, P.State) and np.isnan(link.telemetry["voltage_v"]).all()
        assert np.abs(state.q_rad - (emu.sim.q_joint_rad + np.pi)).max() < 0.05
        link.command(DEFAULT.astype(np.float32), T)
        for _ in range(8):  # periods 3-10 (k = 2-9), COMMAND alone: positions and speeds only
            link.command(DEFAULT.astype(np.float32), T)
        assert np.isnan(link.telemetry["voltage_v"]).all()
        link.command(DEFAULT.astype(np.float32), T)  # period 11 (k = 10): telemetry again
        assert np.isfinite(link.telemetry["voltage_v"]).all()
        link.passive(DEFAULT, T)


def test_one_sync_read_a_period_with_or_without_the_loops_read(emulator):
    """Bus hygiene: the COMMAND after this period's READ answers with the READ's state (no
    second sync read); without a READ (fresh_state=False, ramp, hold) it reads after the write."""
    emu, bus, imu = emulator()
    with sts_link(bus, emu.truth.calibration(), imu) as link:
        link.connect()
        for fresh_state in (True, False):
            reads, periods = link.stats["sync_reads"], link.stats["periods"]
            replies = _run_periods(link, 20, fresh_state)
            assert all(isinstance(r, P.State) for r in replies), (replies, link.stats)
            assert link.stats["sync_reads"] - reads == link.stats["periods"] - periods == 20
        state = link.read(T / 2)
        assert link.command(DEFAULT.astype(np.float32), T) is state
        link.passive(DEFAULT, T)


def test_a_servo_in_step_mode_is_refused_before_the_torque_goes_on(emulator):
    """Issue 22, hole 4: in step mode (Operating_Mode 3) Goal_Position is a relative move, so
    the goal = present write at torque-on would move the joint by its whole present position."""
    emu, bus, imu = emulator(mode="stepped")
    emu.set_register(9, "Operating_Mode", 3)
    with sts_link(bus, emu.truth.calibration(), imu) as link, \
            pytest.raises(LinkError) as info:
        link.connect()
    msg = str(info.value)
    assert "servo 9 (rr_knee) is in operating mode 3 (step mode" in msg
    assert "Operating_Mode (address 33) to 0" in msg and "Nothing was moved" in msg
    settle(emu, bus)
    assert emu.record.first_torque_on_s is None and emu.record.goal_writes == 0
    # What it would have done: a goal = present write (about 2,000 ticks) moves a step-mode
    # servo that far from where it is, here to the end of its range (its limits clip it).
    present = int.from_bytes(emu.mem[9][56:58], "little")
    k = emu.joint_of[9]
    before = emu.target[k]
    emu.feed(instruction_packet(9, 0x03, bytes([42]) + present.to_bytes(2, "little")))
    assert present > 1000 and abs(emu.target[k] - before) > 0.5


@pytest.mark.parametrize(("lo", "hi", "words"), [
    (0, 4095, "are [0, 4095] ticks (the factory setting"),
    (None, -300, "ticks: the servo was replaced, reset or re-mounted"),
])
def test_angle_limits_other_than_the_calibrations_are_refused(emulator, lo, hi, words):
    emu, bus, imu = emulator()
    cal = emu.truth.calibration()
    with sts_link(bus, cal, imu) as link:
        i = link.ids.index(6)
        lo = lo if lo is not None else int(link.tick_lo[i])
        hi = hi if hi > 0 else int(link.tick_hi[i]) + hi  # 300 ticks short of the range
        emu.set_register(6, "Min_Position_Limit", lo)
        emu.set_register(6, "Max_Position_Limit", hi)
        with pytest.raises(LinkError) as info:
            link.connect()
    msg = str(info.value)
    assert "servo 6 (fl_knee): its angle limits Min/Max_Position_Limit" in msg and words in msg
    assert f"[{link.tick_lo[i]}, {link.tick_hi[i]}] ticks" in msg
    assert "Run `robotac calibrate`" in msg and "Nothing was moved" in msg
    settle(emu, bus)
    assert emu.record.first_torque_on_s is None and emu.record.goal_writes == 0


def test_connect_sets_the_return_delay_to_zero(emulator):
    """Bus hygiene: the factory's Return_Delay_Time 250 (500 us before each reply) becomes 0."""
    emu, bus, imu = emulator()
    for sid in emu.mem:
        emu.set_register(sid, "Return_Delay_Time", 250)
    with sts_link(bus, emu.truth.calibration(), imu) as link:
        link.connect()
        assert link.warnings == []
        link.passive(DEFAULT, T)
    assert [emu.mem[sid][7] for sid in sorted(emu.mem)] == [0] * 12
    assert all(emu.mem[sid][55] == 1 for sid in emu.mem)  # EEPROM locked again


def test_an_imu_error_at_connect_is_a_clean_link_error(emulator):
    """An ImuError (the IMU's adapter unplugged) during connect is a LinkError naming the IMU
    port and the fix, not a traceback; nothing moved."""
    from deploy.imu import ImuError

    emu, bus, imu = emulator()
    with sts_link(bus, emu.truth.calibration(), imu) as link:
        def broken():
            raise ImuError(f"IMU port {imu!r} failed: [Errno 5] Input/output error")

        link.imu.poll = broken
        with pytest.raises(LinkError) as info:
            link.connect()
    msg = str(info.value)
    assert type(info.value) is LinkError and f"the IMU port {imu!r} failed at start" in msg
    assert "plugged in" in msg and "Nothing was moved" in msg
    settle(emu, bus)
    assert emu.record.first_torque_on_s is None


def test_the_adapters_latency_timer_is_checked(tmp_path, emulator):
    """1 ms: nothing said; another value: a warning with the command that fixes it; no such
    file (a pty, not an FTDI adapter): nothing, silently."""
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "ttyUSB0").touch()
    (dev / "by-id").symlink_to(dev / "ttyUSB0")
    sysfs = tmp_path / "sys"
    (sysfs / "ttyUSB0").mkdir(parents=True)
    (sysfs / "ttyUSB0" / "latency_timer").write_text("16\n")
    text = latency_timer_warning(str(dev / "by-id"), sysfs)
    assert "latency_timer = 16 ms" in text
    assert f"echo 1 | sudo tee {sysfs / 'ttyUSB0' / 'latency_timer'}" in text
    (sysfs / "ttyUSB0" / "latency_timer").write_text("1\n")
    assert latency_timer_warning(str(dev / "ttyUSB0"), sysfs) is None
    assert latency_timer_warning("/dev/pts/7", sysfs) is None
    # At connect: the emulator's pty, given a latency timer of 16 in a fake sysfs.
    emu, bus, imu = emulator()
    (sysfs / bus.rsplit("/", 1)[1]).mkdir()
    (sysfs / bus.rsplit("/", 1)[1] / "latency_timer").write_text("16\n")
    with sts_link(bus, emu.truth.calibration(), imu, latency_sysfs=sysfs) as link:
        link.connect()
        assert len(link.warnings) == 1 and "latency_timer = 16 ms" in link.warnings[0]
        assert link.stats_dict()["warnings"] == link.warnings
        link.passive(DEFAULT, T)


@pytest.mark.parametrize(("register", "value", "words"), [
    ("Model_Number", 2825, "servo 7 (rr_hip_abduction) reports model 2825, the calibration "
                           "expects 777"),
    # Under the servo's own Min_Voltage_Limit (10 V, from the calibration): its voltage bit.
    ("Present_Voltage", 74, "servo 7 (rr_hip_abduction) reports input voltage (error bits "
                            "0x01); now 38 C, 7.4 V"),
])
def test_a_servo_or_supply_other_than_the_trained_one_is_refused(emulator, register, value,
                                                                 words):
    """What the bus can tell of the servo the policy was trained for (the 12 V STS3215): its
    model number, and its supply (a 2S battery, or the 7.4 V variant's, reads under 10 V)."""
    emu, bus, imu = emulator()
    emu.set_register(7, register, value)
    with sts_link(bus, emu.truth.calibration(), imu) as link, \
            pytest.raises(LinkError) as info:
        link.connect()
    msg = str(info.value)
    assert words in msg and "Nothing was moved" in msg
    if register == "Present_Voltage":
        assert "trained for the 12 V STS3215" in msg
    settle(emu, bus)
    assert emu.record.first_torque_on_s is None and emu.record.goal_writes == 0
