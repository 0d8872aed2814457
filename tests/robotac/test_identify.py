"""robotac identify: the fit against the STS bus emulator's servo truths, the conditioning
refusal, the description it writes, and ``robotac identify --virtual`` end to end.

Short excitations (``time_scale`` 0.2-0.3: 3-5 s of simulated time a joint) keep these fast; the
full-length targets (every parameter within 10 %, RMS cut >= 50 % for both truth forms, 12
joints) are measured by ``scripts/bench_identify.py`` (docs/benchmarks.md).
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from deploy.identify import ExcitationConfig
from envs.quadruped_sim import QuadrupedSim
from envs.robot_description import load_description, read_yaml
from robotac.identify import (
    fit_servo_model,
    identify_virtual,
    main,
    write_description,
)

#: The emulator's "pd-away" truth (deploy.sim.sts_emulator.SERVO_TRUTHS), unknown to the fit.
TRUTH = {"kp_nm_rad": 8.0 * 1.8, "damping_nm_s_rad": 0.62, "armature_kg_m2": 0.025,
         "frictionloss_nm": 0.06, "latency_s": 0.02}


@pytest.fixture(scope="module")
def pd_recording():
    return identify_virtual(ExcitationConfig(time_scale=0.25), "pd-away", ["fr_knee"])


@pytest.fixture(scope="module")
def pd_fit(pd_recording):
    return fit_servo_model(load_description(), pd_recording)


@pytest.mark.numeric
def test_fit_recovers_the_pd_truth_on_a_short_excitation(pd_fit):
    desc = load_description()
    fit = pd_fit
    assert fit.refused is None
    for p, want in TRUTH.items():
        # Noise-free but quantized data (one encoder tick, 1.5 mrad): a few percent at most.
        assert fit.after[p] == pytest.approx(want, rel=0.05), p
    assert fit.after["torque_limit_nm"] == desc.servo.torque_limit_nm  # fixed: the datasheet's
    assert fit.rms_cut > 0.9
    assert fit.rms_after_rad["fr_knee"] < 2e-3


@pytest.mark.numeric
def test_fit_cuts_the_error_of_a_servo_of_another_form():
    rec = identify_virtual(ExcitationConfig(time_scale=0.25), "dc-motor", ["fr_hip_flexion"])
    fit = fit_servo_model(load_description(), rec)
    assert fit.refused is None
    assert fit.rms_cut >= 0.5


@pytest.mark.numeric
def test_a_fit_without_dynamic_excitation_is_refused_naming_what_is_missing(tmp_path):
    # Slow holds only: the torque never saturates and nothing moves fast, so kp, damping,
    # armature and friction scale together and the chirp and the steps are missing.
    cfg = ExcitationConfig(time_scale=0.3, steps=False, chirp=False, speed_fraction=0.05)
    rec = identify_virtual(cfg, "pd-away", ["fr_knee"])
    desc = load_description()
    fit = fit_servo_model(desc, rec)
    assert fit.refused is not None
    assert "armature_kg_m2" in fit.refused and "chirp" in fit.refused
    assert "no step" in fit.refused
    with pytest.raises(ValueError, match="refused"):
        write_description(desc, fit, rec, tmp_path)
    assert not (tmp_path / "quadruped").exists()


@pytest.mark.numeric
def test_written_description_keeps_the_file_and_reloads(pd_recording, pd_fit, tmp_path):
    desc = load_description()
    fit = pd_fit
    folder = write_description(desc, fit, pd_recording, tmp_path)
    text = (folder / "robot.yaml").read_text()
    original = (desc.folder / "robot.yaml").read_text()
    # Every comment line of the shipped file is still there; only servo values changed.
    for line in original.splitlines():
        if line.lstrip().startswith("#"):
            assert line in text
    back = load_description(folder)
    assert back.servo.kp_nm_rad == pytest.approx(fit.after["kp_nm_rad"], rel=1e-4)
    assert back.servo.latency_s == pytest.approx(fit.after["latency_s"], rel=1e-4)
    assert back.servo.no_load_speed_rad_s == pytest.approx(
        fit.after["torque_limit_nm"] / fit.after["damping_nm_s_rad"], rel=1e-4)
    assert back.joints == desc.joints and back.servo.kv_nm_s_rad == desc.servo.kv_nm_s_rad
    ident = read_yaml(text)["identification"]
    assert ident["servo_ids"] == [3]  # fr_knee is servo 3
    assert ident["voltage_v"] == pytest.approx(12.0)
    assert set(ident["rms_before_rad"]) == {"fr_knee"}
    assert ident["rms_after_rad"]["fr_knee"] < ident["rms_before_rad"]["fr_knee"]
    lo, hi = ident["motor_strength_range"]
    assert lo < 1 < hi
    # Written twice (in place on the copy): one identification record, not two.
    write_description(back, fit, pd_recording, None, in_place=True)
    assert (folder / "robot.yaml").read_text().count("\nidentification:") == 1
    # The sim (hence the env) takes the servo model, latency included, from it.
    sim = QuadrupedSim(robot=folder)
    assert sim.servo_latency_steps == round(fit.after["latency_s"] / sim.physics_dt_s) == 4
    np.testing.assert_allclose(sim.model.dof_armature[sim.joint_dof_adr],
                               back.servo.armature_kg_m2)


@pytest.mark.numeric
def test_robotac_identify_virtual_end_to_end(tmp_path, capsys):
    out = tmp_path / "identify"
    code = main(["--virtual", "--time-scale", "0.2", "--joints", "fl_knee", "--out", str(out)])
    captured = capsys.readouterr()
    printed = captured.out
    assert code == 0, printed + captured.err
    assert (out / "fit.png").stat().st_size > 10_000
    assert (out / "recording.npz").is_file()
    fit = json.loads((out / "fit.json").read_text())
    assert fit["refused"] is None and fit["rms_cut"] > 0.5
    desc = load_description(out / "quadruped")
    assert desc.servo.kp_nm_rad == pytest.approx(TRUTH["kp_nm_rad"], rel=0.1)
    assert "samples/s" in printed and "RMS cut" in printed
    # The env builds on it unchanged.
    import gymnasium as gym

    import envs  # noqa: F401 - registers the envs

    env = gym.make("robotac/Quadruped-v0", robot=str(out / "quadruped"))
    try:
        env.reset(seed=0)
        assert env.unwrapped.sim.servo_latency_steps == 4
        assert env.unwrapped.sim.model.actuator_gainprm[0, 0] == pytest.approx(
            desc.servo.kp_nm_rad)
    finally:
        env.close()


def test_robotac_identify_refuses_a_skipped_excitation_with_exit_1(tmp_path, capsys):
    code = main(["--virtual", "--time-scale", "0.3", "--joints", "fr_knee", "--skip", "steps",
                 "chirp", "--speed-fraction", "0.05", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "refused" in err and "chirp" in err
    assert not (tmp_path / "quadruped").exists()
    assert (tmp_path / "fit.png").is_file()  # the picture shows what went wrong


def test_servo_truths_differ_from_the_description():
    from deploy.sim.sts_emulator import SERVO_TRUTHS

    desc = load_description()
    s = SERVO_TRUTHS["pd-away"].servo_model(desc.servo)
    assert s.kp_nm_rad == pytest.approx(1.8 * desc.servo.kp_nm_rad)
    assert s.armature_kg_m2 == pytest.approx(5 * desc.servo.armature_kg_m2)
    assert s.frictionloss_nm == 0.06 and SERVO_TRUTHS["pd-away"].latency_s == 0.02
    assert SERVO_TRUTHS["description"].servo_model(desc.servo) == desc.servo
    assert replace(desc.servo) == desc.servo


@pytest.mark.numeric
def test_env_randomization_centred_on_the_identified_model(pd_recording, pd_fit, tmp_path):
    import gymnasium as gym

    import envs  # noqa: F401 - registers the envs

    desc = load_description()
    fit = pd_fit
    folder = write_description(desc, fit, pd_recording, tmp_path)
    ident = load_description(folder).identification
    env = gym.make("robotac/Quadruped-v0", robot=str(folder), motor_strength_range="identified")
    try:
        assert env.unwrapped.motor_strength_range == tuple(ident["motor_strength_range"])
        env.reset(seed=1)
        kp = env.unwrapped.sim.model.actuator_gainprm[env.unwrapped.sim.actuator_ids, 0]
        lo, hi = ident["motor_strength_range"]
        assert (kp >= lo * fit.after["kp_nm_rad"] * 0.9999).all()
        assert (kp <= hi * fit.after["kp_nm_rad"] * 1.0001).all()
        assert np.ptp(kp) > 0  # drawn per servo
    finally:
        env.close()
    with pytest.raises(ValueError, match="identification record"):
        gym.make("robotac/Quadruped-v0", motor_strength_range="identified")


@pytest.mark.numeric
def test_robotac_identify_fits_a_saved_recording(pd_recording, tmp_path, capsys):
    """The robot's computer records (python -m deploy.identify), the training machine fits."""
    path = pd_recording.save(tmp_path / "rec.npz")
    code = main(["--recording", str(path), "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    desc = load_description(tmp_path / "out" / "quadruped")
    assert desc.identification["source"] == pd_recording.source
    assert desc.servo.armature_kg_m2 == pytest.approx(TRUTH["armature_kg_m2"], rel=0.05)
