"""deploy.identify: the excitation, and identification on the STS bus emulator (robot on its
stand): limits respected, torque off on a stop signal and on a fault, the recording round trip.
"""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

from deploy.identify import (
    CHIRP,
    HOLD,
    PHASES,
    STEP,
    ExcitationConfig,
    IdentifyError,
    Recording,
    SteppedClock,
    excitation,
    run_identification,
)
from deploy.loop import StopSignals
from deploy.sim.sts_emulator import SERVO_TRUTHS, EmulatorFaults, StsBusEmulator
from deploy.sts import StsBusLink
from envs.interface import QUADRUPED_INTERFACE

_ARR = QUADRUPED_INTERFACE.arrays()
_SHORT = ExcitationConfig(time_scale=0.15)


def test_excitation_stays_inside_the_limits_at_the_speed_fraction():
    cfg = ExcitationConfig()
    dt = 0.005
    for k, name in enumerate(QUADRUPED_INTERFACE.joint_names):
        lo, hi = float(_ARR["joint_low_rad"][k]), float(_ARR["joint_high_rad"][k])
        goal, phase = excitation(float(_ARR["default_pose_rad"][k]), lo, hi, dt, cfg)
        assert goal.min() >= lo + cfg.limit_margin_rad - 1e-12, name
        assert goal.max() <= hi - cfg.limit_margin_rad + 1e-12, name
        v = np.abs(np.diff(goal)) / dt
        assert v.max() <= cfg.speed_fraction * cfg.no_load_speed_rad_s + 1e-9, name
        assert set(np.unique(phase).tolist()) == set(range(len(PHASES))), name
        # Starts and ends at the default; holds on both sides of the range.
        assert goal[0] == pytest.approx(_ARR["default_pose_rad"][k], abs=1e-12)
        assert goal[-1] == pytest.approx(_ARR["default_pose_rad"][k], abs=1e-12)
        held = goal[phase == HOLD]
        assert held.max() - held.min() > 0.4 * cfg.hold_span * (hi - lo - 2 * cfg.limit_margin_rad)
        # Steps of the largest size both ways (within the ramp's reach).
        steps = goal[phase == STEP] - _ARR["default_pose_rad"][k]
        assert steps.max() > 0.29 and steps.min() < -0.29, name
    # Under 5 minutes for 12 joints at full length (with the ramps between parts).
    n = sum(len(excitation(float(_ARR["default_pose_rad"][k]), float(_ARR["joint_low_rad"][k]),
                           float(_ARR["joint_high_rad"][k]), dt, cfg)[0]) for k in range(12))
    assert n * dt < 240.0


def test_excitation_chirp_reaches_10_hz_and_parts_can_be_left_out():
    dt = 0.002
    goal, phase = excitation(3.14, 2.0, 4.3, dt, ExcitationConfig(steps=False, holds=False))
    cfg = ExcitationConfig()
    chirp = goal[phase == CHIRP][: int(round(cfg.chirp_duration_s / dt))]  # then a hold
    last_second = chirp[-int(0.5 / dt):] - 3.14
    crossings = np.count_nonzero(np.diff(np.sign(last_second)) != 0)
    assert crossings / 2 / 0.5 > 8.5  # ~9.6 Hz over the last half second of a 0.5-10 Hz sweep
    assert not np.isin(phase, (STEP, HOLD)).any()
    with pytest.raises(ValueError, match="at least one"):
        ExcitationConfig(steps=False, chirp=False, holds=False)
    with pytest.raises(ValueError, match="no room"):
        excitation(3.0, 2.95, 3.05, dt, ExcitationConfig())


def _emulator(**kw) -> tuple[StsBusEmulator, StsBusLink, threading.Event]:
    emu = StsBusEmulator(stand=True, mode="stepped", calibrated=True, steps_per_write=1,
                         servo_truth=SERVO_TRUTHS["pd-away"], **kw)
    port, _imu, stop = emu.start_thread()
    link = StsBusLink(port, emu.truth.calibration(), None)
    return emu, link, stop


def test_identify_on_the_emulator_stays_inside_the_limits_and_ends_limp(tmp_path):
    emu, link, stop = _emulator()
    cal = emu.truth.calibration()
    try:
        rec = run_identification(link, cal, _SHORT, SteppedClock(emu.sim.physics_dt_s),
                                 joints=["fr_hip_flexion", "rl_knee"], source="test",
                                 read_timeout_s=0.25)
    finally:
        link.close()
        stop.set()
    r = emu.record
    assert r.goals_outside_limits == 0
    arr = cal.arrays()
    assert (np.array(r.goal_min_rad) >= arr["min_rad"] - 1e-6).all()
    assert (np.array(r.goal_max_rad) <= arr["max_rad"] + 1e-6).all()
    assert not emu.torque.any(), "the torque must be off at the end"
    assert r.torque_off_events_s, "torque off was written"
    assert [j.name for j in rec.joints] == ["fr_hip_flexion", "rl_knee"]
    assert rec.servo_ids == [2, 12]
    assert rec.rate_hz == pytest.approx(1 / emu.sim.physics_dt_s)
    assert rec.voltage_v == pytest.approx(12.0)
    j = rec.joints[0]
    ok = np.isfinite(j.present_rad)
    assert ok.mean() > 0.95
    # The servo followed its goals (within the lag of a latency and a PD servo).
    assert np.abs(j.present_rad[ok] - j.goal_rad[ok, j.index]).max() < 0.4
    # The other joints held their goals.
    others = np.delete(j.goal_rad, j.index, axis=1)
    assert np.ptp(others, axis=0).max() == 0.0
    # Round trip through the file.
    back = Recording.load(rec.save(tmp_path / "rec.npz"))
    assert back.joint_names == rec.joint_names and back.source == "test"
    np.testing.assert_array_equal(back.joints[1].present_rad, rec.joints[1].present_rad)


def test_a_stop_signal_ends_identification_with_the_torque_off():
    emu, link, stop = _emulator()
    before = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    timer = threading.Timer(0.4, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        with StopSignals() as signals:
            timer.start()
            with pytest.raises(IdentifyError, match="SIGTERM") as info:
                run_identification(link, emu.truth.calibration(), ExcitationConfig(),
                                   SteppedClock(emu.sim.physics_dt_s), signals=signals,
                                   read_timeout_s=0.25)
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, before)
        link.close()
        stop.set()
    assert "torque off" in str(info.value)
    assert not emu.torque.any()
    assert emu.record.torque_off_events_s


@pytest.mark.parametrize("kind", ["overheat", "silent"])
def test_a_fault_ends_identification_with_the_torque_off(kind):
    emu, link, stop = _emulator(faults=EmulatorFaults(kind, servo_id=2, after_s=0.3))
    try:
        with pytest.raises(IdentifyError) as info:
            run_identification(link, emu.truth.calibration(), ExcitationConfig(),
                               SteppedClock(emu.sim.physics_dt_s), joints=["fr_hip_flexion"])
    finally:
        link.close()
        stop.set()
    text = str(info.value)
    assert ("overheat" in text) if kind == "overheat" else ("missed" in text)
    # The healthy servos are limp; the silent one got the torque-off write as well.
    assert emu.record.torque_off_after_fault_s is not None
    assert not emu.torque.any()


def test_record_cli_on_a_real_time_bus_probes_the_rate_and_saves(tmp_path, capsys):
    """``python -m deploy.identify`` (the robot's computer) against the emulator in real time:
    the bus rate is probed, the samples come at it, the recording is written, torque off."""
    from deploy.identify import main

    emu = StsBusEmulator(stand=True, mode="realtime", calibrated=True,
                         servo_truth=SERVO_TRUTHS["pd-away"])
    port, _imu, stop = emu.start_thread()
    cal_path = emu.truth.calibration().save(tmp_path / "cal.json")
    try:
        code = main(["--port", port, "--calibration", str(cal_path), "--out",
                     str(tmp_path / "rec.npz"), "--joints", "fr_knee", "--time-scale", "0.08",
                     "--read-timeout-ms", "100", "--yes"])
    finally:
        stop.set()
    out = capsys.readouterr().out
    assert code == 0, out
    assert "the bus sustains" in out
    rec = Recording.load(tmp_path / "rec.npz")
    j = rec.joints[0]
    assert rec.source == f"port {port}" and rec.rate_hz > 50
    assert np.all(np.diff(j.t_goal_s) > 0)
    assert np.isfinite(j.present_rad).mean() > 0.9
    assert emu.record.goals_outside_limits == 0
    assert not emu.torque.any()
