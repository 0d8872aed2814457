"""The virtual robot implements protocol v1: arming, watchdog, ESTOP, limits, every ERROR code."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from cobs import cobs

from deploy import protocol as P
from deploy.sim.virtual_robot import FaultInjection, VirtualRobot
from envs.interface import QUADRUPED_INTERFACE

ARR = QUADRUPED_INTERFACE.arrays()
DEFAULT = ARR["default_pose_rad"].astype(np.float32)


@pytest.fixture(scope="module")
def robot() -> VirtualRobot:
    return VirtualRobot(mode="stepped", watchdog_ms=100)


def ask(robot: VirtualRobot, msg: P.Message, now: float) -> P.Message:
    return P.decode(P.encode(robot.handle_frame(P.encode(msg)[:-1], now)))


def test_protocol_v1_state_machine(robot: VirtualRobot):
    t = 1000.0
    # Not armed after power-up: position mode refused with ERROR 5, passive accepted.
    assert ask(robot, P.Command(1, 1, DEFAULT), t) == P.Error(1, P.ErrorCode.NOT_ARMED)
    reply = ask(robot, P.Command(2, 0, DEFAULT), t)
    assert isinstance(reply, P.State) and reply.seq == 2 and not reply.has(P.Status.ARMED)
    # HELLO arms and reports INFO with the interface's limits and the watchdog.
    info = ask(robot, P.Hello(3), t)
    assert isinstance(info, P.Info) and info.seq == 3 and info.n_joints == 12 and info.has_imu
    assert info.watchdog_ms == 100
    np.testing.assert_allclose(info.joint_min_rad, ARR["joint_low_rad"], atol=1e-6)
    np.testing.assert_allclose(info.joint_max_rad, ARR["joint_high_rad"], atol=1e-6)
    st = ask(robot, P.Command(4, 1, DEFAULT), t + 0.02)
    assert isinstance(st, P.State) and st.has(P.Status.ARMED) and not robot.sim.passive
    # Out of range: ERROR 6, refused whole, nothing moves (targets unchanged).
    before = robot.sim.ctrl_servo_rad
    bad = DEFAULT.copy()
    bad[2] = ARR["joint_low_rad"][2] - 0.01
    assert ask(robot, P.Command(5, 1, bad), t + 0.04) == P.Error(5, 6)
    nan = DEFAULT.copy()
    nan[0] = np.nan
    assert ask(robot, P.Command(6, 1, nan), t + 0.05) == P.Error(6, 6)
    np.testing.assert_array_equal(robot.sim.ctrl_servo_rad, before)
    assert robot.record.targets_out_of_range_received == 2
    assert robot.record.non_finite_targets == 1
    # The accepted COMMAND at t + 0.02 fed the watchdog: 110 ms after HELLO it is still armed.
    # READ does not feed it, nor do the refused COMMANDs at t + 0.04 and t + 0.05: 110 ms after
    # the last accepted COMMAND it has tripped.
    st = ask(robot, P.Read(7), t + 0.11)
    assert st.has(P.Status.ARMED) and not st.has(P.Status.WATCHDOG_TRIPPED)
    st = ask(robot, P.Read(12), t + 0.13)
    assert st.has(P.Status.WATCHDOG_TRIPPED) and not st.has(P.Status.ARMED)
    assert robot.sim.passive and robot.record.watchdog_trips == 1
    assert ask(robot, P.Command(8, 1, DEFAULT), t + 0.21) == P.Error(8, 5)
    # HELLO clears it; ESTOP disarms at once and goes passive.
    assert isinstance(ask(robot, P.Hello(9), t + 0.22), P.Info)
    st = ask(robot, P.Estop(10), t + 0.23)
    assert st.has(P.Status.ESTOPPED) and not st.has(P.Status.ARMED) and robot.sim.passive
    assert ask(robot, P.Command(11, 1, DEFAULT), t + 0.24) == P.Error(11, 5)
    assert robot.record.estops == 1


def test_watchdog_counts_from_hello_and_passive_commands_feed_it():
    robot = VirtualRobot(mode="stepped", watchdog_ms=100)
    t = 50.0
    assert isinstance(ask(robot, P.Hello(1), t), P.Info)
    assert ask(robot, P.Read(2), t + 0.09).has(P.Status.ARMED)
    st = ask(robot, P.Read(3), t + 0.11)  # 110 ms after HELLO, nothing fed it
    assert st.has(P.Status.WATCHDOG_TRIPPED) and not st.has(P.Status.ARMED)
    assert isinstance(ask(robot, P.Hello(4), t + 0.2), P.Info)
    st = ask(robot, P.Command(5, 0, DEFAULT), t + 0.28)  # mode 0: passive, still armed
    assert st.has(P.Status.ARMED) and robot.sim.passive
    st = ask(robot, P.Read(6), t + 0.36)  # 160 ms after HELLO, 80 ms after the COMMAND
    assert st.has(P.Status.ARMED) and not st.has(P.Status.WATCHDOG_TRIPPED)
    assert robot.record.watchdog_trips == 1


@pytest.mark.parametrize(
    ("raw", "code", "seq"),
    [
        (b"\x02\x03\x07\x00", P.ErrorCode.BAD_CRC, 0),  # CRC replaced below
        (struct.pack("<BBH", 2, 3, 7), P.ErrorCode.BAD_VERSION, 7),
        (struct.pack("<BBH", 1, 3, 7) + b"\x00", P.ErrorCode.BAD_LENGTH, 7),
        (struct.pack("<BBH", 1, 0x02, 7) + b"\x01" + b"\x00" * 44, P.ErrorCode.BAD_LENGTH, 7),
        (struct.pack("<BBH", 1, 0x55, 7), P.ErrorCode.UNKNOWN_TYPE, 7),
        (struct.pack("<BBH", 1, 0xFF, 7) + b"\x01", P.ErrorCode.UNKNOWN_TYPE, 7),  # robot->host
    ],
    ids=["crc", "version", "length", "joints", "type", "direction"],
)
def test_every_decode_error_code(robot: VirtualRobot, raw, code, seq):
    frame = P.encode_payload(raw)[:-1]
    if code == P.ErrorCode.BAD_CRC:
        data = bytearray(cobs.decode(frame))
        data[-1] ^= 0xFF
        frame = cobs.encode(bytes(data))
    reply = robot.handle_frame(frame, 2000.0)
    assert reply == P.Error(seq, int(code))


def test_fault_injection_drops_and_corrupts():
    r = VirtualRobot(mode="stepped", faults=FaultInjection(drop_rate=0.5, corrupt_tx_rate=0.5,
                                                           seed=1))
    out = b"".join(r.feed(P.encode(P.Read(i + 1))) for i in range(200))
    frames = P.FrameSplitter().feed(out)
    ok = 0
    for f in frames:
        try:
            P.decode(f)
            ok += 1
        except P.ProtocolError:
            pass
    rec = r.record
    assert 70 < rec.dropped_injected < 130
    assert len(frames) == 200 - rec.dropped_injected
    assert ok <= len(frames) - rec.corrupted_tx_injected + 2  # a flip may hit a harmless byte
    assert rec.corrupted_tx_injected > 30


def test_servo_fault_bit_after_time():
    r = VirtualRobot(mode="stepped", faults=FaultInjection(servo_fault_after_s=0.5))
    r.handle_frame(P.encode(P.Hello(1))[:-1], 10.0)
    assert not P.decode(P.encode(r.handle_frame(P.encode(P.Read(2))[:-1], 10.1))).has(
        P.Status.SERVO_FAULT)
    st = r.handle_frame(P.encode(P.Read(3))[:-1], 10.6)
    assert st.has(P.Status.SERVO_FAULT)


def test_stepped_mode_matches_sim_step():
    from envs.quadruped_sim import QuadrupedSim

    r = VirtualRobot(mode="stepped")
    sim = QuadrupedSim()
    r.handle_frame(P.encode(P.Hello(1))[:-1], 0.0)
    target = DEFAULT + np.float32(0.1)
    for k in range(5):
        st = r.handle_frame(P.encode(P.Command(k + 2, 1, target))[:-1], 0.01 * k)
        sim.step(target.astype(np.float64))
    np.testing.assert_allclose(st.q_rad, sim.sensors().q_servo_rad, atol=1e-5)
    # The privileged body velocities are recorded after each COMMAND's physics step.
    rec = r.snapshot()
    assert len(rec["vx_body_m_s"]) == len(rec["vy_body_m_s"]) == 5
    np.testing.assert_allclose([rec["vx_body_m_s"][-1], rec["vy_body_m_s"][-1],
                                rec["yaw_rate_body_rad_s"][-1]],
                               [*sim.base_lin_vel_body_m_s[:2], sim.base_ang_vel_body_rad_s[2]],
                               atol=1e-9)


def test_in_process_link_runs_the_loop_deterministically(standing_policy):
    """The virtual robot behind RobotLink in this process: the same loop, no pty."""
    from deploy.loop import LoopConfig, run_deploy
    from deploy.policy import OnnxPolicy
    from deploy.robot_link import RobotLink
    from deploy.safety import SafetyConfig
    from deploy.sim.virtual_robot import InProcessLink

    link = InProcessLink()
    assert isinstance(link, RobotLink) and link.kind == "virtual"
    cfg = LoopConfig(rate_hz=50, duration_s=1.0, safety=SafetyConfig(ramp_s=0.3, hold_s=0.2))
    res = run_deploy(link, OnnxPolicy(standing_policy), cfg)
    rec = link.robot.snapshot()
    assert res.ok and res.stopped_with == "passive" and res.summary["link_kind"] == "virtual"
    # Steps, not a rate: at most one per period of the 1 s run (+1 at the phase edge), fewer
    # when a busy machine skips periods.
    assert 1 <= res.summary["steps"] <= 51 and res.summary["drops"] == 0
    # Stepped physics: one control period per COMMAND, so simulated time = commands x 20 ms.
    n_cmd = rec["position_commands"] + rec["passive_commands"]
    assert rec["sim_time_s"] == pytest.approx(0.02 * n_cmd, abs=1e-9)
    assert rec["passive"] and rec["targets_out_of_range_received"] == 0
