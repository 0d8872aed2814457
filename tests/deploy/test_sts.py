"""The STS bus backend on the real SDK against the bus emulator (in this process, on ptys).

Covers the bytes of the bus (wire bound), the tick mapping, the last guard before the bus, and
the start-up refusals: a missing servo, a wrong baud rate, a stale calibration, a missing SDK.
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
from deploy.sts import (
    StsBusLink,
    bus_bytes_per_period,
    describe_error,
    sign_magnitude,
    to_sign_magnitude,
    wire_time_s,
)
from deploy.sts_emulator import (
    EmulatorFaults,
    StsBusEmulator,
    checksum,
    instruction_packet,
    status_packet,
)
from envs.interface import QUADRUPED_INTERFACE

DEFAULT = QUADRUPED_INTERFACE.arrays()["default_pose_rad"]


def settle() -> None:
    """Let the emulator thread take in broadcast writes (they have no reply to wait for)."""
    time.sleep(0.05)


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
    with StsBusLink(bus, cal, imu) as link:
        assert isinstance(link, RobotLink) and link.kind == "sts"
        info = link.connect()
        assert info.n_joints == 12 and info.has_imu
        np.testing.assert_allclose(info.joint_min_rad, cal.arrays()["min_rad"], atol=1e-6)
        # Torque on, holding the pose read at start: goal = present, no jump.
        settle()
        assert all(emu.record.torque_on)
        for _ in range(30):
            state = link.command(DEFAULT.astype(np.float32), 0.03)
            time.sleep(0.01)
        assert isinstance(state, P.State) and state.has(P.Status.ARMED)
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
        assert isinstance(link.passive(DEFAULT, 0.05), P.State)
        settle()
        assert not any(emu.record.torque_on)
        assert link.stats["timeouts"] == 0 and link.stats["imu_packets"] >= 20
    assert emu.record.goals_outside_limits == 0


def test_no_target_outside_the_calibrated_limits_reaches_the_bus(emulator):
    emu, bus, imu = emulator()
    cal = emu.truth.calibration()
    with StsBusLink(bus, cal, imu) as link:
        link.connect()
        settle()
        writes = emu.record.goal_writes
        arr = cal.arrays()
        for bad in (arr["max_rad"] + 0.01, arr["min_rad"] - 0.01, np.full(12, np.nan),
                    DEFAULT[:6]):
            t = DEFAULT.copy() if bad.size == 12 else bad
            if bad.size == 12:
                t[4] = bad[4]
            reply = link.command(np.asarray(t, dtype=np.float32), 0.012)
            assert isinstance(reply, P.Error) and reply.code == P.ErrorCode.TARGET_OUT_OF_RANGE
        settle()
        assert emu.record.goal_writes == writes  # nothing reached the bus
        assert link.stats["refused_targets"] == 4
        # Exactly at the limits (float32, as the safety layer sends them): accepted, and the
        # ticks are clipped inward, never outside.
        for edge in (arr["max_rad"], arr["min_rad"]):
            assert isinstance(link.command(edge.astype(np.float32), 0.012), P.State)
    settle()
    assert emu.record.goals_outside_limits == 0
    assert emu.record.goal_writes == writes + 24


def test_a_missing_servo_is_named_and_nothing_moves(emulator):
    emu, bus, imu = emulator()
    cal = emu.truth.calibration()
    cal.joints["rl_knee"] = dataclasses.replace(cal.joints["rl_knee"], servo_id=21)
    t0 = time.perf_counter()
    with StsBusLink(bus, cal, imu) as link, pytest.raises(LinkError) as info:
        link.connect()
    msg = str(info.value)
    assert "servo 21 (rl_knee) did not answer" in msg and "Nothing was moved" in msg
    assert time.perf_counter() - t0 < 1.0
    settle()
    assert emu.record.goal_writes == 0 and not any(emu.record.torque_on)
    assert "SYNC_WRITE" not in emu.record.by_instruction


def test_wrong_baud_rate_is_a_clear_error_after_a_bounded_wait(emulator):
    emu, bus, imu = emulator(baud=500_000)  # servos set to 500 kbaud, host at 1 Mbaud
    cal = emu.truth.calibration()
    t0 = time.perf_counter()
    with StsBusLink(bus, cal, imu, baud=1_000_000) as link, pytest.raises(LinkError) as info:
        link.connect(attempts=3)
    waited = time.perf_counter() - t0
    assert "no servo answered" in str(info.value) and "wrong baud rate" in str(info.value)
    assert waited < 12 * 3 * 2 * 0.03 + 0.5  # bounded: tries x ping timeout, never a hang
    assert emu.record.wrong_baud_bytes > 0 and emu.record.goal_writes == 0
    with pytest.raises(LinkError, match="not one an STS servo supports"):
        StsBusLink(bus, cal, imu, baud=921_600)


def test_a_stale_calibration_is_refused_before_anything_moves(emulator):
    emu, bus, imu = emulator()
    cal = emu.truth.calibration()
    j = cal.joints["fr_knee"]
    cal.joints["fr_knee"] = JointCalibration(j.servo_id, -j.direction, j.zero_offset_ticks,
                                             j.min_rad, j.max_rad)
    with StsBusLink(bus, cal, imu) as link, pytest.raises(LinkError) as info:
        link.connect()
    assert "joint 'fr_knee'" in str(info.value) and "calibration is stale" in str(info.value)
    assert emu.record.goal_writes == 0 and not any(emu.record.torque_on)


@pytest.mark.parametrize(("kind", "fault", "words"), [
    ("overheat", Fault.SERVO_ALARM, "overheat (error bits 0x04); now 80 C"),
    ("undervolt", Fault.SERVO_ALARM, "input voltage (error bits 0x01); now 38 C, 8.0 V"),
    ("overload", Fault.SERVO_ALARM, "overload (error bits 0x20)"),
    ("silent", Fault.SERVO_SILENT, "did not answer the sync read within 20.0 ms"),
    ("checksum", Fault.CORRUPT_REPLY, "failed its checksum"),
    ("imu_silent", Fault.IMU_LOST, "no valid IMU packet"),
    ("imu_checksum", Fault.IMU_LOST, "corrupt packets so far"),
])
def test_faults_come_back_named_in_the_period_they_appear(emulator, kind, fault, words):
    emu, bus, imu = emulator(faults=EmulatorFaults(kind, servo_id=5, after_s=0.2))
    # A generous time for the health read that puts the figures into the reason (default 5 ms).
    with StsBusLink(bus, emu.truth.calibration(), imu, health_timeout_s=0.05) as link:
        link.connect()
        replies = []
        for _ in range(40):
            replies.append(link.command(DEFAULT.astype(np.float32), 0.02))
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
        # Stop: torque off reaches every servo, even the faulty one's neighbours; a servo whose
        # torque cannot be read back is named, and only that one.
        stopped = link.estop(0.02)
        if kind in ("silent", "checksum"):
            assert isinstance(stopped, LinkFault), stopped
            assert stopped.detail.endswith(": servo 5 (fl_hip_flexion) gave no valid reply")
        else:
            assert isinstance(stopped, P.State), stopped
        settle()
        assert not any(emu.record.torque_on)


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
    with StsBusLink(bus, emu.truth.calibration(), imu) as link:
        link.connect()
        time.sleep(0.2)
        t0 = time.perf_counter()
        reply = link.command(DEFAULT.astype(np.float32), 0.012)
        assert emu.fault_on and reply is None and time.perf_counter() - t0 < 0.03
        assert link.stats["timeouts"] == 1


def test_a_silent_imu_at_start_is_refused_before_the_torque_goes_on(emulator):
    import os

    from deploy.sts_emulator import open_pty

    emu, bus, _ = emulator()
    master, slave, quiet = open_pty()  # an IMU port where nothing is sent
    try:
        t0 = time.perf_counter()
        with StsBusLink(bus, emu.truth.calibration(), quiet) as link, \
                pytest.raises(LinkError, match="no BNO08x RVC packet") as info:
            link.connect()
        assert "Nothing was moved" in str(info.value) and time.perf_counter() - t0 < 1.5
        settle()
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
    with StsBusLink(bus, emu.truth.calibration(), imu) as link:
        link.connect()
        settle()
        assert all(emu.record.torque_on)
        _interrupt_next_read(link)
        with pytest.raises(KeyboardInterrupt):
            link.command(DEFAULT.astype(np.float32), 0.02)
        assert not link.port_handler.is_using
        assert _stop(link, True, False, DEFAULT, None, QUADRUPED_INTERFACE) == "passive"
        settle()
        assert not any(emu.record.torque_on)
        # A port left marked busy by any other cut-short SDK call: the torque-off still goes out.
        link.connect()
        settle()
        link.port_handler.is_using = True
        assert _stop(link, True, True, DEFAULT, None, QUADRUPED_INTERFACE) == "estop"
        settle()
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
    with StsBusLink(bus, emu.truth.calibration(), imu) as link:
        link.connect()
        settle()
        left = _drop_torque_off(emu, 5, 1)
        writes = link.stats["sync_writes"]
        assert isinstance(link.passive(DEFAULT, 0.05), P.State)
        assert left == [0] and link.stats["sync_writes"] == writes + 2  # resent once
        settle()
        assert not any(emu.record.torque_on)
        link.connect()
        settle()
        _drop_torque_off(emu, 5, 100)
        reply = link.estop(0.05)
        assert isinstance(reply, LinkFault) and reply.fault == Fault.SERVO_SILENT
        assert "servo 5 (fl_hip_flexion) reads Torque_Enable = 1" in reply.detail
        assert "after 3 torque-off writes" in reply.detail
        stopped = _stop(link, True, True, DEFAULT, None, QUADRUPED_INTERFACE)
        assert stopped.startswith("estop sent, not confirmed: torque release not confirmed")
        assert "servo 5 (fl_hip_flexion)" in stopped and "no link watchdog" in stopped


def test_an_imu_error_while_stopping_does_not_hide_the_released_torque(emulator):
    """S7: the stop's read does not judge the IMU; its error is no port failure."""
    from deploy.imu import ImuError

    emu, bus, imu = emulator()
    with StsBusLink(bus, emu.truth.calibration(), imu) as link:
        link.connect()

        def broken():
            raise ImuError("IMU port failed: [Errno 5] Input/output error")

        link.imu.poll = broken
        with pytest.raises(LinkError):  # in the run: a link error, as before
            link.command(DEFAULT.astype(np.float32), 0.02)
        assert _stop(link, True, False, DEFAULT, None, QUADRUPED_INTERFACE) == "passive"
        settle()
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
    with StsBusLink(bus, cal, imu) as link:
        if refused:
            with pytest.raises(LinkError) as info:
                link.connect()
            msg = str(info.value)
            assert f"joint {name!r}" in msg and "0.15 rad outside" in msg
            assert "move it by hand past its min limit into the range" in msg
            assert "Nothing was moved" in msg
            settle()
            assert emu.record.goal_writes == 0 and not any(emu.record.torque_on)
        else:
            link.connect()
            settle()
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
    with StsBusLink(bus, emu.truth.calibration(), imu) as link:
        def on_step(k, phase):
            if phase == Phase.RUN:
                _interrupt_next_read(link)

        cfg = LoopConfig(rate_hz=50, duration_s=1.0, reply_timeout_s=0.015,
                         safety=SafetyConfig(ramp_s=0.1, hold_s=0.1))
        res = run_deploy(link, OnnxPolicy(standing_policy), cfg, on_step=on_step)
    assert res.stop_reason == "interrupted by the operator (Ctrl-C)"
    assert res.stopped_with == "passive"
    settle()
    assert not any(emu.record.torque_on) and emu.record.torque_off_events_s


def test_read_takes_the_telemetry_before_the_first_period_and_positions_after_it(emulator):
    """The deploy loop READs every period (fresh_state): after the first COMMAND a READ is the
    fast sync read (positions, speeds), the telemetry stays with command()'s cadence."""
    emu, bus, imu = emulator()
    with StsBusLink(bus, emu.truth.calibration(), imu, telemetry_every=10) as link:
        link.connect()
        link.telemetry["voltage_v"][:] = np.nan  # (connect read it too)
        assert isinstance(link.read(0.03), P.State)  # before the first period: full
        assert np.isfinite(link.telemetry["voltage_v"]).all()
        assert isinstance(link.command(DEFAULT.astype(np.float32), 0.03), P.State)
        link.telemetry["voltage_v"][:] = np.nan
        state = link.read(0.03)  # after it: positions and speeds only
        assert isinstance(state, P.State) and np.isnan(link.telemetry["voltage_v"]).all()
        assert np.abs(state.q_rad - (emu.sim.q_joint_rad + np.pi)).max() < 0.05
        for _ in range(9):  # periods 2-10 (k = 1-9): positions and speeds only
            link.command(DEFAULT.astype(np.float32), 0.03)
        assert np.isnan(link.telemetry["voltage_v"]).all()
        link.command(DEFAULT.astype(np.float32), 0.03)  # period 11 (k = 10): telemetry again
        assert np.isfinite(link.telemetry["voltage_v"]).all()
        link.passive(DEFAULT, 0.05)
