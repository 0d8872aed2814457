"""QuadrupedSim: the model agrees with the interface, stands, and its servo model behaves."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import pytest

from envs.interface import QUADRUPED_INTERFACE, projected_gravity
from envs.quadruped_sim import DEFAULT_XML_PATH, QuadrupedSim


@pytest.fixture()
def sim() -> QuadrupedSim:
    return QuadrupedSim()


def test_model_matches_interface(sim: QuadrupedSim) -> None:
    m = sim.model
    arr = QUADRUPED_INTERFACE.arrays()
    names = [m.joint(int(j)).name for j in m.actuator_trnid[sim.actuator_ids, 0]]
    assert names == list(QUADRUPED_INTERFACE.joint_names)
    np.testing.assert_allclose(m.actuator_ctrlrange[sim.actuator_ids, 0], 0.0)
    np.testing.assert_allclose(m.actuator_ctrlrange[sim.actuator_ids, 1], 2 * np.pi)
    jr = m.jnt_range[m.actuator_trnid[sim.actuator_ids, 0]]
    np.testing.assert_allclose(jr[:, 0], arr["joint_low_rad"] - np.pi, atol=1e-9)
    np.testing.assert_allclose(jr[:, 1], arr["joint_high_rad"] - np.pi, atol=1e-9)
    # q = a - pi: a servo command a gives a force kp * (a - pi - q) at rest.
    kp = m.actuator_gainprm[sim.actuator_ids, 0]
    np.testing.assert_allclose(m.actuator_biasprm[sim.actuator_ids, 0], -kp * np.pi)
    np.testing.assert_allclose(m.actuator_biasprm[sim.actuator_ids, 1], -kp)
    np.testing.assert_allclose(m.actuator_forcerange[sim.actuator_ids], [[-2.9, 2.9]] * 12)
    assert 1.5 <= sim.total_mass_kg <= 3.0
    assert sim.n_substeps * sim.physics_dt_s == pytest.approx(0.02)


def test_mismatching_model_is_refused(tmp_path: Path) -> None:
    xml = Path(DEFAULT_XML_PATH).read_text()
    bad = xml.replace('range="-2.6 -0.6"', 'range="-2.5 -0.6"')
    assert bad != xml
    p = tmp_path / "quadruped.xml"
    p.write_text(bad)
    with pytest.raises(ValueError, match=r"joints\[2\].range_rad: joint .fr_knee.*robot.yaml"):
        QuadrupedSim(str(p))


def test_stands_two_seconds_at_default_pose(sim: QuadrupedSim) -> None:
    sim.reset()
    h0 = sim.body_height_m
    assert h0 == pytest.approx(0.161, abs=0.005)
    for _ in range(100):  # 2 s
        sim.step(sim.default_servo_rad)
    assert sim.body_height_m > 0.14
    assert np.linalg.norm(sim.base_pos_m[:2]) < 0.02
    g = projected_gravity(sim.base_quat_wxyz)
    assert g[2] < -0.998  # tilt below 3.6 degrees
    assert sim.foot_contacts().all()
    assert not sim.torso_contact()
    # The servos carry the weight well inside their 2.9 N m.
    assert np.abs(sim.joint_torques_nm).max() < 1.0
    assert np.abs(sim.dq_joint_rad_s).max() < 0.05


@pytest.mark.numeric
def test_sensors_equal_the_mjcf_sensors(sim: QuadrupedSim) -> None:
    rng = np.random.default_rng(1)
    sim.reset(rng, 0.1)
    for _ in range(10):
        sim.step(sim.default_servo_rad + rng.uniform(-0.3, 0.3, 12))
    fast = sim.sensors()
    ref = sim.mujoco_sensors()
    for f in ("quat_wxyz", "gyro_rad_s", "q_servo_rad", "dq_rad_s"):
        np.testing.assert_allclose(getattr(fast, f), getattr(ref, f), atol=1e-10, err_msg=f)
    assert np.linalg.norm(np.abs(fast.gyro_rad_s)) > 1e-3  # the robot is moving
    # At rest on the floor the accelerometer reads +g upward.
    sim.reset()
    for _ in range(50):
        sim.step(sim.default_servo_rad)
    np.testing.assert_allclose(sim.sensors().accel_m_s2, [0, 0, 9.81], atol=0.1)


def test_passive_servos_give_no_torque_and_the_robot_sinks(sim: QuadrupedSim) -> None:
    sim.reset()
    sim.set_passive(True)
    for _ in range(50):  # 1 s: the legs fold slowly against the back-EMF damping
        sim.step(sim.default_servo_rad)
    assert np.abs(sim.joint_torques_nm).max() == 0.0
    assert sim.body_height_m < 0.13
    sim.set_passive(False)
    sim.step(sim.default_servo_rad)
    assert np.abs(sim.joint_torques_nm).max() > 0.1


def test_servo_speed_saturates_near_no_load_speed() -> None:
    """A free knee (robot hung in the air, gravity off) driven to a far target turns at about
    the STS3215's no-load speed of 4.7 rad/s."""
    sim = QuadrupedSim()
    sim.model.opt.gravity[:] = 0
    sim.reset()
    sim.data.qpos[2] = 1.0  # in the air
    target = sim.default_servo_rad.copy()
    target[2] = QUADRUPED_INTERFACE.joint_high_rad[2]  # knee: -1.5 -> -0.6 rad
    peak = 0.0
    for _ in range(15):
        sim.step(target)
        peak = max(peak, abs(sim.dq_joint_rad_s[2]))
    assert 4.2 < peak < 5.0  # measured 4.68 rad/s


def test_randomization_hooks_and_restore(sim: QuadrupedSim) -> None:
    m = sim.model
    gain0 = m.actuator_gainprm[sim.actuator_ids, 0].copy()
    sim.set_floor_friction(0.4)
    sim.set_added_mass(0.5)
    sim.set_motor_strength(0.8)
    assert sim.floor_friction == 0.4
    assert sim.body_mass_kg == pytest.approx(1.6)
    np.testing.assert_allclose(m.actuator_gainprm[sim.actuator_ids, 0], 0.8 * gain0)
    np.testing.assert_allclose(m.actuator_forcerange[sim.actuator_ids, 1], 0.8 * 2.9)
    sim.reset_randomization()
    assert sim.floor_friction == 1.0
    assert sim.body_mass_kg == pytest.approx(1.1)
    np.testing.assert_allclose(m.actuator_gainprm[sim.actuator_ids, 0], gain0)
    with pytest.raises(ValueError, match="friction"):
        sim.set_floor_friction(0.0)


def test_step_rejects_bad_targets(sim: QuadrupedSim) -> None:
    with pytest.raises(ValueError, match=r"expected \(12,\)"):
        sim.step(np.zeros(11))
    t = sim.default_servo_rad.copy()
    t[[1, 5]] = np.nan
    with pytest.raises(ValueError, match=r"\[1, 5\]"):
        sim.step(t)


def test_step_physics_matches_step(sim: QuadrupedSim) -> None:
    other = QuadrupedSim()
    rng = np.random.default_rng(0)
    for _ in range(5):
        t = sim.default_servo_rad + rng.uniform(-0.2, 0.2, 12)
        sim.step(t)
        other.set_targets(t)
        other.step_physics(other.n_substeps)
    np.testing.assert_array_equal(sim.data.qpos, other.data.qpos)
    assert isinstance(sim.model, mujoco.MjModel)


def test_open_loop_trot_walks_forward(sim: QuadrupedSim) -> None:
    """A gait is physically possible: a 2.5 Hz open-loop trot (diagonal pairs in antiphase, hip
    flexion +-0.35 rad, knee folded up to 0.6 rad more during swing) walks forward at about
    0.3 m/s for 4 s without falling."""
    sim.reset()
    phase = np.array([0.0, np.pi, np.pi, 0.0])  # fr, fl, rr, rl
    for k in range(200):
        p = 2 * np.pi * 2.5 * k * sim.control_period_s + phase
        target = sim.default_servo_rad.copy()
        target[1::3] -= 0.35 * np.sin(p)
        target[2::3] -= 0.6 * np.maximum(0.0, np.cos(p))
        sim.step(target)
        assert sim.body_height_m > 0.1
    vx = sim.base_pos_m[0] / 4.0
    assert vx > 0.2
    assert abs(sim.base_pos_m[1]) < 0.5
    assert projected_gravity(sim.base_quat_wxyz)[2] < -0.95


@pytest.mark.numeric
def test_servo_latency_delays_the_targets_by_whole_physics_steps() -> None:
    """``servo.latency_s`` (robotac identify's) delays each target by that many physics steps."""
    from dataclasses import replace

    from envs.robot_description import load_description

    desc = load_description()
    late = QuadrupedSim(robot=replace(desc, servo=replace(desc.servo, latency_s=0.011)))
    now = QuadrupedSim()
    assert now.servo_latency_steps == 0
    assert late.servo_latency_steps == 2  # 0.011 s / 0.005 s rounds to 2
    target = late.default_servo_rad + 0.2
    late.set_targets(target)
    late.step_physics(1)
    np.testing.assert_array_equal(late.ctrl_servo_rad, late.default_servo_rad)
    late.step_physics(1)
    np.testing.assert_array_equal(late.ctrl_servo_rad, late.default_servo_rad)
    late.step_physics(1)  # the third physics step acts on the target
    np.testing.assert_array_equal(late.ctrl_servo_rad, target)
    # Through step(): the same target two physics steps later than without latency.
    late.reset()
    now.reset()
    late.step(target)
    now.step_physics(2)
    now.set_targets(target)
    now.step_physics(2)
    # Same physics, one mj_step at a time against nstep=2: equal up to float rounding.
    np.testing.assert_allclose(late.q_joint_rad, now.q_joint_rad, atol=1e-9)
