"""``robotac robot check`` (issue 23): a broken description is refused, naming the field."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from envs.robot_check import check_robot
from envs.robot_description import ROBOTS_DIR


def broken(tmp_path: Path, yaml_edits=(), xml_edits=()) -> Path:
    """A copy of the quadruped's description with ``(old, new)`` text replacements."""
    dst = tmp_path / "robot"
    shutil.copytree(ROBOTS_DIR / "quadruped", dst)
    for name, edits in (("robot.yaml", yaml_edits), ("quadruped.xml", xml_edits)):
        text = (dst / name).read_text()
        for old, new in edits:
            assert old in text, old
            text = text.replace(old, new)
        (dst / name).write_text(text)
    return dst


def assert_refused(report, field_pattern: str) -> None:
    assert not report.ok
    assert all("\n" not in p for p in report.problems)  # one line each
    assert any(re.match(field_pattern, p) for p in report.problems), report.problems
    assert report.message().count("\n") == len(report.problems)


def test_the_shipped_quadruped_passes():
    report = check_robot("quadruped")
    assert report.ok, report.problems
    assert report.total_mass_kg == pytest.approx(1.98)
    # hip abduction axis to the sole: sqrt(0.035^2 + 0.2^2) + 0.015 (foot radius)
    assert report.leg_length_m == pytest.approx((0.035**2 + 0.2**2) ** 0.5 + 0.015)
    assert 0.15 < report.stand_height_m < 0.17


def test_the_second_robot_passes():
    """quadruped_xl (envs/robots/quadruped_xl) is only data: other names, IDs, leg lengths,
    knees pointing forward, another servo; the check passes on it with its own figures."""
    report = check_robot("quadruped_xl")
    assert report.ok, report.problems
    d = report.description
    assert report.total_mass_kg == pytest.approx(3.44)
    # hip abduction axis to the sole: sqrt(0.045^2 + 0.26^2) + 0.018 (foot radius)
    assert report.leg_length_m == pytest.approx((0.045**2 + 0.26**2) ** 0.5 + 0.018)
    assert 0.19 < report.stand_height_m < 0.23
    knees = [j for j in d.joints if j.name.endswith("_kfe")]
    assert len(knees) == 4 and all(j.default_rad > 0 for j in knees)  # folds backward
    assert d.servo.model_number == 2825 and d.servo.torque_limit_nm == 4.9
    assert [j.servo_id for j in d.joints][:3] == [11, 12, 13]


def test_a_missing_foot_is_refused(tmp_path):
    bot = broken(tmp_path, xml_edits=[('<geom name="rl_foot" class="foot"/>', "")])
    report = check_robot(bot)
    assert_refused(report, r"feet\[3\]: the MJCF has no geom 'rl_foot'")


def test_limits_beyond_the_servo_range_are_refused(tmp_path):
    bot = broken(tmp_path,
                 yaml_edits=[("range_rad: [-2.6, -0.6]", "range_rad: [-3.3, -0.6]")],
                 xml_edits=[('range="-2.6 -0.6"', 'range="-3.3 -0.6"')])
    report = check_robot(bot)
    knees = [p for p in report.problems if "outside the servo's range servo.range_rad" in p]
    assert [p.split(":")[0] for p in knees] == [f"joints[{k}].range_rad" for k in (2, 5, 8, 11)]
    assert_refused(report, r"joints\[2\]\.range_rad: fr_knee \[-3\.3, -0\.6\] rad maps to servo "
                           r"angles \[-0\.1584, 2\.5416\]")


def test_a_limit_that_differs_from_the_mjcf_is_refused(tmp_path):
    bot = broken(tmp_path, yaml_edits=[("{name: fr_knee,          range_rad: [-2.6, -0.6]",
                                        "{name: fr_knee,          range_rad: [-2.5, -0.6]")])
    assert_refused(check_robot(bot), r"joints\[2\]\.range_rad: .* differs from the MJCF")


def test_mirror_pairs_that_do_not_mirror_are_refused(tmp_path):
    bot = broken(tmp_path, yaml_edits=[("- [fr_knee, fl_knee]", "- [fr_knee, rl_knee]"),
                                       ("- [rr_knee, rl_knee]", "- [rr_knee, fl_knee]")])
    assert_refused(check_robot(bot), r"mirror\.joint_pairs\[2\]: fr_knee sits at .* rl_knee at "
                                     r".* not mirrored in y")


def test_mirror_pairs_of_unequal_mass_are_refused(tmp_path):
    bot = broken(tmp_path, xml_edits=[('<geom name="fl_thigh" class="thigh"/>',
                                       '<geom name="fl_thigh" class="thigh" mass="0.2"/>')])
    assert_refused(check_robot(bot), r"mirror\.joint_pairs\[1\]: fr_hip_flexion moves 0\.1500 kg, "
                                     r"fl_hip_flexion 0\.2500 kg: not mirror images")


def test_a_wrong_negation_is_refused(tmp_path):
    bot = broken(tmp_path, yaml_edits=[(
        "negate: [fr_hip_abduction, fl_hip_abduction, rr_hip_abduction, rl_hip_abduction]",
        "negate: [rr_hip_abduction, rl_hip_abduction]")])
    assert_refused(check_robot(bot), r"mirror\.negate: fr_hip_abduction turns about .* negated")


def test_a_default_pose_that_falls_is_refused(tmp_path):
    bot = broken(tmp_path, yaml_edits=[("default_rad: 0.8,", "default_rad: 2.0,"),
                                       ("default_rad: -1.5,", "default_rad: -0.6,")])
    assert_refused(check_robot(bot), r"joints\[\*\]\.default_rad: the default pose does not stand")


def test_a_servo_too_weak_to_hold_the_pose_is_refused(tmp_path):
    bot = broken(tmp_path, yaml_edits=[("kp_nm_rad: 8.0", "kp_nm_rad: 0.3")])
    assert_refused(check_robot(bot), r"joints\[\*\]\.default_rad: the default pose does not")


def test_a_malformed_description_names_the_field(tmp_path):
    bot = broken(tmp_path, yaml_edits=[("  torque_limit_nm: 2.9 ", "  torque_limit: 2.9 ")])
    assert_refused(check_robot(bot), r"servo\.torque_limit_nm: missing")
    bot = tmp_path / "no_mjcf"
    bot.mkdir()
    (bot / "robot.yaml").write_text((ROBOTS_DIR / "quadruped" / "robot.yaml").read_text())
    assert_refused(check_robot(bot), r"mjcf: .*quadruped\.xml does not exist")


def test_an_image_of_the_robot_or_a_clear_note_without_gl(tmp_path):
    """``robotac robot check --image``: the robot standing as a PNG where rendering works; where
    it cannot, one line saying why and how to fix it, and no file."""
    from envs.rendering import gl_backend_problem
    from envs.robot_check import render_robot
    from envs.robot_description import load_description

    out = tmp_path / "xl.png"
    line = render_robot(load_description("quadruped_xl"), out, width=160, height=120)
    if gl_backend_problem() is not None:
        assert line.startswith("no image of the robot: ") and "MUJOCO_GL" in line
        assert not out.exists()
        return
    assert line == f"image of the robot standing: {out} (160 x 120 px)", line
    import matplotlib.image

    img = matplotlib.image.imread(str(out))
    assert img.shape[:2] == (120, 160) and float(img[..., :3].std()) > 0.01  # not blank


def test_a_servo_zero_other_than_mid_travel_is_refused(tmp_path):
    bot = broken(tmp_path, yaml_edits=[("zero_rad: 3.141592653589793", "zero_rad: 3.0")])
    assert_refused(check_robot(bot), r"servo\.zero_rad: 3\.0 rad; only pi \(mid-travel\)")
