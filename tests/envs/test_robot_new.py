"""``robotac robot new`` (issue 23): a description folder from an MJCF or a URDF export."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from envs.robot_check import check_robot
from envs.robot_description import ROBOTS_DIR, DescriptionError, load_description
from envs.robot_new import ScaffoldError, scaffold
from robotac.cli import main

#: The servo block and command ranges a builder writes over the FILL_IN values.
STS3215 = {"name": "Feetech STS3215 at 12 V", "kp_nm_rad": "8.0", "kv_nm_s_rad": "0.05",
           "damping_nm_s_rad": "0.62", "armature_kg_m2": "0.005", "frictionloss_nm": "0.0",
           "torque_limit_nm": "2.9", "no_load_speed_rad_s": "4.7", "ticks_per_turn": "4096",
           "model_number": "777"}
STS3250 = dict(STS3215, name="Feetech STS3250 at 12 V", kp_nm_rad="13.5", kv_nm_s_rad="0.08",
               armature_kg_m2="0.006", torque_limit_nm="4.9", no_load_speed_rad_s="7.9",
               model_number="2825")
COMMANDS = {"vx": "[-0.3, 0.6]", "vy": "[-0.2, 0.2]", "yaw_rate": "[-1.0, 1.0]"}


def fill_in(folder: Path, pose: dict[str, float], servo: dict[str, str]) -> None:
    """Replace every FILL_IN of robot.yaml as a builder would: the default pose by joint role
    (the role words of the scaffold's comments), the servo and the command ranges."""
    lines = []
    for line in (folder / "robot.yaml").read_text().splitlines():
        m = re.match(r"\s*- \{name: .*default_rad: FILL_IN.*\((.+)\)$", line)
        if m:
            line = line.replace("default_rad: FILL_IN", f"default_rad: {pose[m.group(1)]}")
        m = re.match(r"\s+(\w+): FILL_IN", line)
        if m and m.group(1) in servo:
            line = line.replace("FILL_IN", servo[m.group(1)], 1)
        elif m and m.group(1) in COMMANDS:
            line = line.replace("FILL_IN", COMMANDS[m.group(1)], 1)
        lines.append(line)
    assert not [line for line in lines if "FILL_IN" in line.split("#")[0]]
    (folder / "robot.yaml").write_text("\n".join(lines) + "\n")


def cad_export_of_quadruped_xl(tmp_path: Path) -> Path:
    """quadruped_xl's MJCF as a CAD export: no actuators, sensors or IMU site, other joint
    names (hip_x / thigh / knee)."""
    text = (ROBOTS_DIR / "quadruped_xl" / "quadruped_xl.xml").read_text()
    text = re.sub(r"<actuator>.*?</actuator>|<sensor>.*?</sensor>", "", text, flags=re.S)
    text = re.sub(r'<site name="imu"[^>]*/>', "", text)
    for old, new in (("_haa", "_hip_x"), ("_hfe", "_thigh"), ("_kfe", "_knee")):
        text = text.replace(old, new)
    path = tmp_path / "cad.xml"
    path.write_text(text)
    return path


def quadruped_urdf() -> str:
    """A small 12-joint quadruped as a CAD exporter writes it: links with collision shapes and
    inertials, revolute joints with limits, feet on fixed joints; no actuators, sensors, IMU,
    floor or free joint. Its legs are the default quadruped's."""
    def inertial(m: float, i: float = 1e-4) -> str:
        return (f'<inertial><mass value="{m}"/><inertia ixx="{i}" ixy="0" ixz="0" iyy="{i}" '
                f'iyz="0" izz="{i}"/></inertial>')

    parts = ['<robot name="cadbot">',
             f'<link name="trunk">{inertial(1.1, 3e-3)}<collision><geometry>'
             '<box size="0.26 0.12 0.06"/></geometry></collision></link>']
    for leg, (sx, sy) in {"front_right": (1, -1), "front_left": (1, 1),
                          "rear_right": (-1, -1), "rear_left": (-1, 1)}.items():
        parts += [
            f'<link name="{leg}_hip">{inertial(0.07)}<collision><origin rpy="0 1.5708 0"/>'
            '<geometry><cylinder radius="0.022" length="0.04"/></geometry></collision></link>',
            f'<joint name="{leg}_hip_abduction" type="revolute"><parent link="trunk"/>'
            f'<child link="{leg}_hip"/><origin xyz="{0.11 * sx} {0.06 * sy} 0"/>'
            '<axis xyz="1 0 0"/><limit lower="-0.6" upper="0.6" effort="2.9" velocity="4.7"/>'
            '</joint>',
            f'<link name="{leg}_thigh">{inertial(0.10)}<collision><origin xyz="0 0 -0.05"/>'
            '<geometry><cylinder radius="0.014" length="0.1"/></geometry></collision></link>',
            f'<joint name="{leg}_thigh_joint" type="revolute"><parent link="{leg}_hip"/>'
            f'<child link="{leg}_thigh"/><origin xyz="0 {0.035 * sy} 0"/><axis xyz="0 1 0"/>'
            '<limit lower="-0.8" upper="2.2" effort="2.9" velocity="4.7"/></joint>',
            f'<link name="{leg}_calf">{inertial(0.035)}<collision><origin xyz="0 0 -0.0425"/>'
            '<geometry><cylinder radius="0.009" length="0.085"/></geometry></collision></link>',
            f'<joint name="{leg}_knee" type="revolute"><parent link="{leg}_thigh"/>'
            f'<child link="{leg}_calf"/><origin xyz="0 0 -0.1"/><axis xyz="0 1 0"/>'
            '<limit lower="-2.6" upper="-0.6" effort="2.9" velocity="4.7"/></joint>',
            f'<link name="{leg}_toe">{inertial(0.015, 1e-6)}<collision><geometry>'
            '<sphere radius="0.015"/></geometry></collision></link>',
            f'<joint name="{leg}_toe_fixed" type="fixed"><parent link="{leg}_calf"/>'
            f'<child link="{leg}_toe"/><origin xyz="0 0 -0.1"/></joint>',
        ]
    return "\n".join([*parts, "</robot>"])


def test_an_mjcf_without_actuators_becomes_a_description_that_passes(tmp_path, capsys):
    out = tmp_path / "mybot"
    assert main(["robot", "new", "mybot", "--from", str(cad_export_of_quadruped_xl(tmp_path)),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # the legs by their names (lf/rf/lh/rh), joints down each chain, feet, what was added
    assert "legs: fl (by names), fr (by names), rl (by names), rr (by names)" in printed
    assert "joints (12): rf_hip_x, rf_thigh, rf_knee, lf_hip_x, lf_thigh, lf_knee, rh_hip_x" \
        in printed
    assert "feet: rf_foot, lf_foot, rh_foot, lh_foot" in printed
    assert "12 position actuator(s) named like their joints" in printed
    assert "an IMU site 'imu' at the base's origin" in printed
    # unfilled: refused, naming the field; the check says it too
    assert "joints[0].default_rad: is still FILL_IN" in printed
    with pytest.raises(DescriptionError, match=r"^joints\[0\]\.default_rad: is still FILL_IN"):
        load_description(out)
    fill_in(out, {"hip abduction": 0.0, "hip flexion": -0.7, "knee": 1.4}, STS3250)
    report = check_robot(out)
    assert report.ok, report.problems
    assert report.total_mass_kg == pytest.approx(3.44)
    d = report.description
    assert d.mirror_negate == ("rf_hip_x", "lf_hip_x", "rh_hip_x", "lh_hip_x")
    assert [j.servo_id for j in d.joints] == list(range(1, 13))


def test_a_urdf_becomes_a_description_that_passes(tmp_path):
    urdf = tmp_path / "cadbot.urdf"
    urdf.write_text(quadruped_urdf())
    made = scaffold("cadbot", urdf, tmp_path / "cadbot")
    assert made.legs == {"fr": "names", "fl": "names", "rr": "names", "rl": "names"}
    assert made.joints[:3] == ["front_right_hip_abduction", "front_right_thigh_joint",
                               "front_right_knee"]
    assert made.feet == ["fr_foot", "fl_foot", "rr_foot", "rl_foot"]  # the toes' spheres
    assert any("free joint 'root' on the base body 'trunk'" in a for a in made.added)
    assert any("floor plane" in a for a in made.added)
    assert "servo.torque_limit_nm" in made.fill_in and "command_ranges.vx" in made.fill_in
    report = check_robot(made.folder)
    assert not report.ok and report.problems[0].startswith("joints[0].default_rad: is still "
                                                           "FILL_IN")
    fill_in(made.folder, {"hip abduction": 0.0, "hip flexion": 0.8, "knee": -1.5}, STS3215)
    report = check_robot(made.folder)
    assert report.ok, report.problems
    assert report.total_mass_kg == pytest.approx(1.98)
    assert report.leg_length_m == pytest.approx((0.035**2 + 0.2**2) ** 0.5 + 0.015)


def test_legs_told_apart_by_position_when_names_do_not_say(tmp_path):
    urdf = tmp_path / "anon.urdf"
    text = quadruped_urdf()
    for k, leg in enumerate(("front_right", "front_left", "rear_right", "rear_left")):
        text = text.replace(leg, f"leg{k}")
    urdf.write_text(text)
    made = scaffold("anon", urdf, tmp_path / "anon")
    assert made.legs == {"fr": "position", "fl": "position", "rr": "position",
                         "rl": "position"}
    assert made.joints[3:6] == ["leg1_hip_abduction", "leg1_thigh_joint", "leg1_knee"]


def test_bad_sources_are_refused(tmp_path):
    with pytest.raises(ScaffoldError, match="no such file"):
        scaffold("x", tmp_path / "missing.urdf", tmp_path / "x")
    bad = tmp_path / "bad.xml"
    bad.write_text("<mujoco><worldbody><body name='b'><joint type='hinge'/>"
                   "<geom size='0.1'/></body></worldbody></mujoco>")
    with pytest.raises(ScaffoldError, match="the root body 'b' has joints of its own"):
        scaffold("x", bad, tmp_path / "x")
    bad.write_text("<mujoco><worldbody><body name='b'><geom size='0.1'/><body name='fl_leg'>"
                   "<joint type='hinge'/><geom size='0.05'/></body></body></worldbody></mujoco>")
    with pytest.raises(ScaffoldError, match=r"found legs \['fl'\] below 'b': a quadruped has "
                                            "four"):
        scaffold("x", bad, tmp_path / "x")
    shutil.copytree(ROBOTS_DIR / "quadruped", tmp_path / "q")
    with pytest.raises(ScaffoldError, match="exists; pass --force"):
        scaffold("q", tmp_path / "q" / "quadruped.xml", tmp_path / "q")
