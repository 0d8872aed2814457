"""The calibration file: round trip, and refusals that name the joint and the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deploy.calibration import (
    TICKS_PER_RAD,
    Calibration,
    CalibrationError,
    JointCalibration,
    imu_axes_matrix,
)
from envs.interface import QUADRUPED_INTERFACE


def _cal() -> Calibration:
    arr = QUADRUPED_INTERFACE.arrays()
    joints = {n: JointCalibration(k + 1, 1 if k % 2 else -1, 2048.0 + 10 * k,
                                  float(arr["joint_low_rad"][k]), float(arr["joint_high_rad"][k]))
              for k, n in enumerate(QUADRUPED_INTERFACE.joint_names)}
    return Calibration(joints=joints, imu_axes=("+y", "-x", "+z"))


def test_round_trip_and_mapping(tmp_path):
    cal = _cal()
    path = cal.save(tmp_path / "cal.json")
    back = Calibration.load(path)
    assert back == cal and back.path == path
    arr = back.arrays()
    assert arr["ids"].tolist() == list(range(1, 13))
    # Servo angle pi (joint angle 0) is the zero offset; 0.1 rad is 65.2 ticks in its direction.
    assert TICKS_PER_RAD == pytest.approx(651.898, abs=1e-3)
    j = back.joints["fr_hip_abduction"]
    assert (j.direction, j.zero_offset_ticks) == (-1, 2048.0)


def _edit(tmp_path, fn) -> str:
    doc = _cal().to_dict()
    fn(doc)
    p = tmp_path / "cal.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(CalibrationError) as info:
        Calibration.load(p)
    return str(info.value)


def test_refusals_name_the_joint(tmp_path):
    msg = _edit(tmp_path, lambda d: d["joints"].pop("rl_knee"))
    assert "no entry for joint 'rl_knee'" in msg and "robotac calibrate" in msg

    def so101(d):  # an arm's calibration: its joints are not the quadruped's
        d["joints"]["shoulder_pan"] = d["joints"].pop("fr_hip_abduction")
    msg = _edit(tmp_path, so101)
    assert "joint 'shoulder_pan'" in msg and "another robot" in msg
    msg = _edit(tmp_path, lambda d: d.update(robot="so101_follower"))
    assert "for robot 'so101_follower'" in msg
    msg = _edit(tmp_path, lambda d: d["joints"]["fl_knee"].update(id=1))
    assert "servo id 1 is given to joints" in msg
    msg = _edit(tmp_path, lambda d: d["joints"]["fl_knee"].update(direction=0))
    assert "'fl_knee' direction must be +1 or -1" in msg
    # A horn mounted so the joint's range crosses the servo's 4095 -> 0 wrap.
    msg = _edit(tmp_path, lambda d: d["joints"]["rr_knee"].update(zero_offset_ticks=3900))
    assert "'rr_knee'" in msg and "outside the servo's 0..4095" in msg
    msg = _edit(tmp_path, lambda d: d["joints"]["rr_knee"].update(max_rad=3.0))
    assert "'rr_knee'" in msg and "exceed the robot's mechanical limits" in msg
    msg = _edit(tmp_path, lambda d: d.update(imu={"axes": ["+x", "+y", "-z"]}))
    assert "right-handed" in msg
    msg = _edit(tmp_path, lambda d: d.update(format="lerobot"))
    assert "robotac calibrate" in msg


def test_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(CalibrationError, match="robotac calibrate --port"):
        Calibration.load(tmp_path / "none.json")


def test_imu_axes_matrix():
    m = imu_axes_matrix(["+y", "-x", "+z"])
    # Body x is the IMU's +y: an IMU reading along +y is a body reading along +x.
    np.testing.assert_array_equal(m @ np.array([0.0, 1.0, 0.0]), [1.0, 0.0, 0.0])
    assert round(np.linalg.det(m)) == 1
    with pytest.raises(CalibrationError, match="like"):
        imu_axes_matrix(["x", "y", "z"])
    with pytest.raises(CalibrationError, match="right-handed"):
        imu_axes_matrix(["+x", "+x", "+z"])


def test_another_robot_and_servo_travel_in_the_file(tmp_path):
    """issue 23: a calibration for another robot carries its interface, servo model and ticks
    per turn; deploy checks against those (it never reads the robot's description)."""
    from envs.interface import interface_from_description
    from envs.robot_description import load_description

    itf = interface_from_description(load_description("quadruped_xl"))
    arr = itf.arrays()
    joints = {n: JointCalibration(10 * (k // 3 + 1) + k % 3 + 1, 1, 512.0,
                                  float(arr["joint_low_rad"][k]), float(arr["joint_high_rad"][k]))
              for k, n in enumerate(itf.joint_names)}
    cal = Calibration(joints=joints, servo_model=2825, ticks_per_turn=1024, robot=itf.name,
                      interface=itf)
    back = Calibration.load(cal.save(tmp_path / "xl.json"))
    assert back == cal and back.robot_interface == itf
    assert back.ticks_per_rad == pytest.approx(1024 / (2 * np.pi)) and back.max_tick == 1023
    assert back.arrays()["ids"].tolist()[:3] == [11, 12, 13]
    doc = json.loads((tmp_path / "xl.json").read_text())
    assert doc["ticks_per_turn"] == 1024 and doc["servo_model"] == 2825
    # the default robot's file is unchanged: no interface, no ticks_per_turn
    assert "interface" not in _cal().to_dict() and "ticks_per_turn" not in _cal().to_dict()
    # another robot's interface is refused, naming both
    with pytest.raises(CalibrationError, match="is for robot 'quadruped_xl', this is "
                                               "'quadruped'"):
        back.check(QUADRUPED_INTERFACE)
    # 1024 ticks per turn: lf_kfe's 2.1 rad range is 342 ticks, from 512 + 0.5 rad = 593
    # to 855; a zero offset of 900 puts the top at 1243 > 1023
    doc["joints"]["lf_kfe"]["zero_offset_ticks"] = 900
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(CalibrationError, match=r"joint 'lf_kfe' range .* outside the servo's "
                                               r"0\.\.1023"):
        Calibration.load(tmp_path / "bad.json")
