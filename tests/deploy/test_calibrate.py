"""``robotac calibrate`` against the STS bus emulator on its stand, with a scripted operator.

The emulated robot's build (servo IDs, directions, zero offsets, a rotated IMU) is the truth the
procedure must find; the resulting file then drives the bus.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from deploy import protocol as P
from deploy.calibrate import CalibrateError, Calibrator, main
from deploy.calibration import Calibration
from deploy.sim.sts_emulator import EmulatedOperator, StsBusEmulator
from deploy.sts import StsBusLink
from envs.interface import QUADRUPED_INTERFACE


@pytest.fixture
def stand():
    emu = StsBusEmulator(stand=True)
    bus, imu, stop = emu.start_thread()
    yield emu, bus, imu
    stop.set()


def test_calibration_finds_the_hardware_and_drives_it(stand, tmp_path):
    emu, bus, imu = stand
    op = EmulatedOperator(emu)
    cal_ = Calibrator(bus, imu, op.ask, say=lambda s: None, settle_s=0.25)
    try:
        cal = cal_.run(range(1, 16))
    finally:
        cal_.close()
    truth = emu.truth
    arr = cal.arrays()
    assert arr["ids"].tolist() == list(truth.ids)
    assert arr["direction"].tolist() == list(truth.direction)
    # Zero offsets within 2 ticks (0.003 rad) of the build; the IMU's rotated mounting found.
    assert np.abs(arr["zero"] - np.array(truth.zero_ticks)).max() <= 2.0
    assert cal.imu_axes == truth.imu_axes
    # The servos' own position limits now hold the calibrated range (last line of defence).
    for sid, k in emu.joint_of.items():
        lo = int.from_bytes(emu.mem[sid][9:11], "little")
        hi = int.from_bytes(emu.mem[sid][11:13], "little")
        assert emu.true_tick_lo[k] - 2 <= lo < hi <= emu.true_tick_hi[k] + 2
        assert emu.mem[sid][13] == 65 and emu.mem[sid][15] == 100
    assert not emu.torque.any()  # every servo left limp
    assert sum("Did " in line for line in op.transcript) == 12
    # The written file drives the robot: it reads the default pose it was put in.
    path = cal.save(tmp_path / "cal.json")
    with StsBusLink(bus, Calibration.load(path), imu) as link:
        link.connect()
        state = link.read(0.05)
        assert isinstance(state, P.State)
        default = QUADRUPED_INTERFACE.arrays()["default_pose_rad"]
        assert np.abs(state.q_rad - default).max() < 0.01


def test_a_missing_servo_stops_the_procedure_before_anything_moves(stand):
    emu, bus, imu = stand
    op = EmulatedOperator(emu)
    cal_ = Calibrator(bus, imu, op.ask, say=lambda s: None)
    try:
        with pytest.raises(CalibrateError, match=r"found 11 servo\(s\).*needs 12"):
            cal_.run(range(1, 12))  # ID 12 is not scanned: as if unplugged
    finally:
        cal_.close()
    assert emu.record.goal_writes == 0 and op.transcript == []


def test_cli_scan_only_lists_the_servos(stand, capsys):
    emu, bus, imu = stand
    assert main(["--port", bus, "--scan-only", "--scan-ids", "1-14"]) == 0
    out = capsys.readouterr().out
    assert "ID 1: model 777 (STS3215)" in out and "12 servo(s)" in out
    with pytest.raises(SystemExit) as info:  # argparse refuses an ID range beyond 252
        main(["--scan-ids", "1-300"])
    assert info.value.code == 2
    assert main([]) == 1 and "give --port" in capsys.readouterr().err


def test_set_id_gives_the_only_servo_its_id(capsys):
    """Servo set-up: one servo on the bus (factory ID 1) gets ID 7; with two, it refuses."""
    emu = StsBusEmulator()
    # One servo on the bus: keep servo 1 only.
    for sid in list(emu.mem):
        if sid != 1:
            del emu.mem[sid], emu.joint_of[sid]
    bus, imu, stop = emu.start_thread()
    try:
        assert main(["--port", bus, "--set-id", "7", "--scan-ids", "1-10"]) == 0
        assert "servo ID 1 -> 7" in capsys.readouterr().out
        assert sorted(emu.mem) == [7] and emu.mem[7][5] == 7 and emu.mem[7][55] == 1
    finally:
        stop.set()
    emu2 = StsBusEmulator()
    bus2, _, stop2 = emu2.start_thread()
    try:
        assert main(["--port", bus2, "--set-id", "7", "--scan-ids", "1-3"]) == 1
        assert "found 3 servo(s)" in capsys.readouterr().err
    finally:
        stop2.set()


def test_direction_check_releases_the_torque_even_when_the_goal_write_back_fails(stand):
    """S6: in direction()'s finally:, a failing write-back of the start goal skipped the
    torque-off; the servo stayed powered."""
    emu, bus, imu = stand
    cal_ = Calibrator(bus, imu, lambda key, prompt: "y", say=lambda s: None, settle_s=0.05)
    real, goals = cal_._write, []

    def write(sid, addr, value, n=1):
        if addr == 42:
            goals.append(value)
            if len(goals) == 3:  # start, start + step, then the write-back: fails
                raise CalibrateError(f"servo {sid} did not acknowledge a write of address 42")
        real(sid, addr, value, n)

    cal_._write = write
    try:
        with pytest.raises(CalibrateError, match="address 42"):
            cal_.direction("fl_knee", 3)
    finally:
        cal_.close()
    assert len(goals) == 3 and not emu.torque.any()


def test_cli_leaves_every_servo_limp_whatever_stops_it(stand):
    """S6: main()'s finally: broadcasts Torque_Enable = 0, also after Ctrl-C mid-procedure."""
    from deploy.sim.sts_emulator import INST_WRITE, instruction_packet

    emu, bus, imu = stand

    def ask(key, prompt):
        emu.feed(instruction_packet(3, INST_WRITE, bytes([40, 1])))  # a servo left powered
        assert emu.torque.any()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        main(["--port", bus, "--scan-ids", "1-12"], ask=ask)
    # The broadcast has no reply to wait for: give the emulator thread until it has taken it in
    # (a fixed 50 ms sleep raced a busy machine; 5 s is only the give-up point).
    give_up = time.monotonic() + 5.0
    while emu.torque.any() and time.monotonic() < give_up:
        time.sleep(0.01)
    assert not emu.torque.any()
