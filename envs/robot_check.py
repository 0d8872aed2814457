"""``robotac robot check``: is a robot description fit to train on? (numpy + mujoco)

:func:`check_robot` loads a description (``envs/robots/<name>/``, see ``docs/your_robot.md``) and
reports every problem as one line that starts with the ``robot.yaml`` field at fault:

1. ``robot.yaml`` reads, with every field present and well-formed;
2. the MJCF loads in MuJoCo;
3. the joints, their actuators and ``<joint>_pos`` / ``<joint>_vel`` sensors, the IMU site and
   sensors, the base body and geom, the floor and the feet named in ``robot.yaml`` exist, and the
   MJCF's joint ranges are ``joints[*].range_rad``;
4. every joint range maps inside the servo's range (``servo.zero_rad + range_rad`` within
   ``servo.range_rad``, itself within ``[0, 2*pi]``, one turn of the encoder);
5. the mirror pairs mirror the model: at the default pose the two joints of a pair move the same
   mass (the subtree below each), sit at mirrored positions (``y -> -y`` in the base frame), turn
   about mirrored axes (with ``mirror.negate`` saying which change sign), and the paired feet sit
   at mirrored positions; the default pose is left-right symmetric;
6. the default pose stands: held for :data:`STAND_S` s from the reset, all feet stay on the floor,
   the base never touches it, and from 1 s on the base drifts less than
   :data:`MAX_DRIFT_M` sideways and :data:`MAX_SINK_M` in height.

It also measures the total mass and the leg length (hip joint to the sole of the foot at joint
angles 0, the longest leg). ``robotac train`` refuses a ``robot=`` that fails, with these lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np

from envs.robot_description import DescriptionError, RobotDescription, load_description

__all__ = ["MAX_DRIFT_M", "MAX_SINK_M", "STAND_S", "RobotCheck", "check_robot", "render_robot"]

#: How long the default pose must stand [s].
STAND_S = 5.0
#: Largest horizontal drift of the base from 1 s to the end of the stand [m].
MAX_DRIFT_M = 0.02
#: Largest change of the base height from 1 s to the end of the stand [m].
MAX_SINK_M = 0.01
#: Mass and position tolerances of the mirror check [kg], [m].
_MASS_RTOL, _POS_TOL_M, _AXIS_TOL = 1e-3, 1e-3, 1e-6
_REFLECT = np.array([1.0, -1.0, 1.0])  # a polar vector (position) in the x-z mirror
_REFLECT_AXIAL = np.array([-1.0, 1.0, -1.0])  # an axial vector (rotation axis)


@dataclass
class RobotCheck:
    """What :func:`check_robot` found.

    Attributes:
        robot: The name or path checked.
        problems: One line per problem, each starting with the ``robot.yaml`` field at fault.
        description: The loaded description (``None`` when ``robot.yaml`` did not load).
        total_mass_kg: Mass of the whole model [kg] (``None`` when the MJCF did not load).
        leg_length_m: Hip joint to the sole of the foot at joint angles 0, the longest leg [m].
        stand_height_m: Base height at the end of the stand [m].
    """

    robot: str
    problems: list[str] = field(default_factory=list)
    description: RobotDescription | None = None
    total_mass_kg: float | None = None
    leg_length_m: float | None = None
    stand_height_m: float | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self) -> str:
        """The report: the problems, one a line, or the robot's figures when there are none."""
        if self.problems:
            return (f"robot description {self.robot} fails the check "
                    f"({len(self.problems)} problem(s)):\n"
                    + "\n".join(f"  {p}" for p in self.problems))
        d = self.description
        assert d is not None
        return (f"robot {d.name!r} ({d.folder}): ok\n"
                f"  joints {len(d.joints)}, feet {len(d.feet)}, control period "
                f"{d.control_period_s} s, servo {d.servo.name}\n"
                f"  total mass {self.total_mass_kg:.3f} kg, leg length {self.leg_length_m:.3f} m "
                f"(hip joint to sole at q = 0)\n"
                f"  stands {STAND_S:g} s at the default pose, base height "
                f"{self.stand_height_m:.3f} m\n"
                f"  description sha256 {d.sha256}")


def check_robot(robot: str | Path | RobotDescription) -> RobotCheck:
    """Check a robot description (see the module docstring for what is checked).

    Args:
        robot: A shipped robot's name, a description folder, or a loaded description.

    Returns:
        The :class:`RobotCheck`; ``ok`` when it found no problem.
    """
    report = RobotCheck(str(robot.folder if isinstance(robot, RobotDescription) else robot))
    try:
        desc = robot if isinstance(robot, RobotDescription) else load_description(robot)
    except DescriptionError as exc:
        report.problems.append(str(exc).splitlines()[0] if str(exc) else repr(exc))
        return report
    report.description = desc
    try:
        model = mujoco.MjModel.from_xml_path(str(desc.mjcf_path))
    except Exception as exc:  # noqa: BLE001  (MuJoCo raises ValueError; any failure is one line)
        first = " ".join(str(exc).split())
        report.problems.append(f"mjcf: MuJoCo cannot load {desc.mjcf_path}: {first}")
        return report
    report.total_mass_kg = float(model.body_mass.sum())
    p = report.problems
    _check_names(desc, model, p)
    _check_servo_range(desc, p)
    if p:  # the rest needs every name
        return report
    _check_mirror(desc, model, p)
    report.leg_length_m = _leg_length(desc, model)
    if not p:
        _check_stand(desc, report)
    return report


def _id(model: mujoco.MjModel, kind: mujoco.mjtObj, name: str) -> int:
    return mujoco.mj_name2id(model, kind, name)


def _check_names(desc: RobotDescription, model: mujoco.MjModel, p: list[str]) -> None:
    O = mujoco.mjtObj
    for k, j in enumerate(desc.joints):
        w = f"joints[{k}].name"
        jid = _id(model, O.mjOBJ_JOINT, j.name)
        if jid < 0:
            p.append(f"{w}: the MJCF has no joint {j.name!r}")
            continue
        aid = _id(model, O.mjOBJ_ACTUATOR, j.name)
        if aid < 0:
            p.append(f"{w}: the MJCF has no actuator {j.name!r} (one per joint, named like it)")
        elif model.actuator_trnid[aid, 0] != jid:
            p.append(f"{w}: actuator {j.name!r} does not drive joint {j.name!r}")
        for suffix in ("_pos", "_vel"):
            if _id(model, O.mjOBJ_SENSOR, j.name + suffix) < 0:
                p.append(f"{w}: the MJCF has no sensor {j.name + suffix!r}")
        lo, hi = model.jnt_range[jid]
        if not model.jnt_limited[jid] or not np.allclose((lo, hi), j.range_rad, atol=1e-6):
            p.append(f"joints[{k}].range_rad: {list(j.range_rad)} differs from the MJCF joint "
                     f"{j.name!r}'s range {[float(lo), float(hi)]}")
    for k, f in enumerate(desc.feet):
        if _id(model, O.mjOBJ_GEOM, f) < 0:
            p.append(f"feet[{k}]: the MJCF has no geom {f!r}")
    if _id(model, O.mjOBJ_SITE, desc.imu["site"]) < 0:
        p.append(f"imu.site: the MJCF has no site {desc.imu['site']!r}")
    for key in ("quat_sensor", "gyro_sensor", "accel_sensor"):
        if _id(model, O.mjOBJ_SENSOR, desc.imu[key]) < 0:
            p.append(f"imu.{key}: the MJCF has no sensor {desc.imu[key]!r}")
    body = _id(model, O.mjOBJ_BODY, desc.base_body)
    if body < 0:
        p.append(f"base.body: the MJCF has no body {desc.base_body!r}")
    elif model.body_jntnum[body] < 1 or model.jnt_type[model.body_jntadr[body]] != \
            mujoco.mjtJoint.mjJNT_FREE:
        p.append(f"base.body: body {desc.base_body!r} has no free joint")
    if _id(model, O.mjOBJ_GEOM, desc.base_geom) < 0:
        p.append(f"base.geom: the MJCF has no geom {desc.base_geom!r}")
    if _id(model, O.mjOBJ_GEOM, desc.floor_geom) < 0:
        p.append(f"floor_geom: the MJCF has no geom {desc.floor_geom!r}")
    n_sub = desc.control_period_s / float(model.opt.timestep)
    if abs(n_sub - round(n_sub)) > 1e-9 or round(n_sub) < 1:
        p.append(f"control_period_s: {desc.control_period_s} s is not a whole number of the "
                 f"MJCF's timesteps ({model.opt.timestep} s)")


def _check_servo_range(desc: RobotDescription, p: list[str]) -> None:
    s = desc.servo
    lo, hi = s.range_rad
    if not (0.0 <= lo < hi <= 2.0 * math.pi + 1e-9):
        p.append(f"servo.range_rad: {list(s.range_rad)} rad is not inside one turn [0, 2*pi]")
    if not lo <= s.zero_rad <= hi:
        p.append(f"servo.zero_rad: {s.zero_rad} rad is outside servo.range_rad {list(s.range_rad)}")
    elif abs(s.zero_rad - math.pi) > 1e-9:
        # the sim's sensors and the calibration's position mapping take a = pi + q
        p.append(f"servo.zero_rad: {s.zero_rad} rad; only pi (mid-travel) is supported: set the "
                 "MJCF's joint angle 0 where the servo is at mid-travel")
    for k, j in enumerate(desc.joints):
        a_lo, a_hi = j.range_rad[0] + s.zero_rad, j.range_rad[1] + s.zero_rad
        if a_lo < lo - 1e-9 or a_hi > hi + 1e-9:
            p.append(f"joints[{k}].range_rad: {j.name} {list(j.range_rad)} rad maps to servo "
                     f"angles [{a_lo:.4f}, {a_hi:.4f}], outside the servo's range "
                     f"servo.range_rad [{lo:.4f}, {hi:.4f}]")


def _default_pose_data(desc: RobotDescription, model: mujoco.MjModel) -> mujoco.MjData:
    d = mujoco.MjData(model)
    for j in desc.joints:
        d.qpos[model.jnt_qposadr[_id(model, mujoco.mjtObj.mjOBJ_JOINT, j.name)]] = j.default_rad
    mujoco.mj_kinematics(model, d)
    return d


def _check_mirror(desc: RobotDescription, model: mujoco.MjModel, p: list[str]) -> None:
    d = _default_pose_data(desc, model)
    O = mujoco.mjtObj
    base = _id(model, O.mjOBJ_BODY, desc.base_body)
    rot, origin = d.xmat[base].reshape(3, 3), d.xpos[base]

    def local(v: np.ndarray, point: bool = True) -> np.ndarray:
        return rot.T @ (v - origin if point else v)

    def subtree_mass(body: int) -> float:
        return float(model.body_subtreemass[body])

    defaults = {j.name: j.default_rad for j in desc.joints}
    for k, (a, b) in enumerate(desc.mirror_pairs):
        w = f"mirror.joint_pairs[{k}]"
        ja, jb = _id(model, O.mjOBJ_JOINT, a), _id(model, O.mjOBJ_JOINT, b)
        ba, bb = model.jnt_bodyid[ja], model.jnt_bodyid[jb]
        ma, mb = subtree_mass(ba), subtree_mass(bb)
        if not math.isclose(ma, mb, rel_tol=_MASS_RTOL):
            p.append(f"{w}: {a} moves {ma:.4f} kg, {b} {mb:.4f} kg: not mirror images")
            continue
        pa, pb = local(d.xanchor[ja]), local(d.xanchor[jb])
        if np.abs(pa - _REFLECT * pb).max() > _POS_TOL_M:
            p.append(f"{w}: {a} sits at {np.round(pa, 4).tolist()} m, {b} at "
                     f"{np.round(pb, 4).tolist()} m in the base frame: not mirrored in y")
            continue
        neg_a, neg_b = a in desc.mirror_negate, b in desc.mirror_negate
        if neg_a != neg_b:
            p.append(f"mirror.negate: {a} and {b} are a pair; negate both or neither")
            continue
        sign = -1.0 if neg_a else 1.0
        axa, axb = local(d.xaxis[ja], False), local(d.xaxis[jb], False)
        if np.abs(sign * axa - _REFLECT_AXIAL * axb).max() > _AXIS_TOL:
            want = "negated" if not neg_a else "not negated"
            p.append(f"mirror.negate: {a} turns about {np.round(axa, 4).tolist()}, {b} about "
                     f"{np.round(axb, 4).tolist()}: their angles are mirror images {want}")
            continue
        if not math.isclose(defaults[a], sign * defaults[b], abs_tol=1e-9):
            p.append(f"joints.default_rad: {a} {defaults[a]} and {b} {defaults[b]} rad are not "
                     "a mirrored pose")
    for k, (f, g) in enumerate(desc.foot_pairs):
        gf, gg = _id(model, O.mjOBJ_GEOM, f), _id(model, O.mjOBJ_GEOM, g)
        pf, pg = local(d.geom_xpos[gf]), local(d.geom_xpos[gg])
        if np.abs(pf - _REFLECT * pg).max() > _POS_TOL_M:
            p.append(f"mirror.foot_pairs[{k}]: {f} sits at {np.round(pf, 4).tolist()} m, {g} at "
                     f"{np.round(pg, 4).tolist()} m in the base frame: not mirrored in y")


def _leg_length(desc: RobotDescription, model: mujoco.MjModel) -> float:
    """Longest distance from a foot's first joint below the base to its sole, at q = 0."""
    d = mujoco.MjData(model)
    mujoco.mj_kinematics(model, d)
    base = _id(model, mujoco.mjtObj.mjOBJ_BODY, desc.base_body)
    longest = 0.0
    for f in desc.feet:
        g = _id(model, mujoco.mjtObj.mjOBJ_GEOM, f)
        body, hip = model.geom_bodyid[g], -1
        while body != base and body > 0:
            if model.body_jntnum[body] > 0:
                hip = model.body_jntadr[body]
            body = model.body_parentid[body]
        if hip < 0:
            continue
        sole = float(model.geom_size[g, 0]) if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_SPHERE \
            else 0.0
        longest = max(longest, float(np.linalg.norm(d.geom_xpos[g] - d.xanchor[hip])) + sole)
    return longest


def _check_stand(desc: RobotDescription, report: RobotCheck) -> None:
    from envs.quadruped_sim import QuadrupedSim

    try:
        sim = QuadrupedSim(robot=desc)
    except ValueError as exc:
        report.problems.append(str(exc).splitlines()[0])
        return
    sim.reset()
    steps = int(round(STAND_S / sim.control_period_s))
    settle = int(round(1.0 / sim.control_period_s))
    ref = None
    for k in range(steps):
        sim.step(sim.default_servo_rad)
        if k + 1 == settle:
            ref = sim.base_pos_m
        t_s = (k + 1) * sim.control_period_s
        lifted = [f for f, c in zip(desc.feet, sim.foot_contacts(), strict=True) if not c]
        if k >= settle and lifted:
            report.problems.append(f"joints[*].default_rad: the default pose does not stand: at "
                                   f"{t_s:.2f} s feet {lifted} are off the floor")
            return
        if sim.torso_contact():
            report.problems.append(f"joints[*].default_rad: the default pose does not stand: the "
                                   f"base {desc.base_geom!r} touches the floor at {t_s:.2f} s")
            return
    assert ref is not None
    end = sim.base_pos_m
    drift, sink = float(np.linalg.norm(end[:2] - ref[:2])), float(abs(end[2] - ref[2]))
    if drift > MAX_DRIFT_M or sink > MAX_SINK_M:
        report.problems.append(
            f"joints[*].default_rad: the default pose does not hold still: from 1 s to "
            f"{STAND_S:g} s the base moves {drift:.3f} m sideways and {sink:.3f} m in height "
            f"(limits {MAX_DRIFT_M} m, {MAX_SINK_M} m)")
    report.stand_height_m = float(end[2])


def render_robot(desc: RobotDescription, path: str | Path, width: int = 640,
                 height: int = 480) -> str:
    """Render the robot standing at its default pose (after 1 s held) to a PNG.

    The camera looks at the base from its front left, at a distance of four leg lengths. Needs an
    OpenGL backend (``MUJOCO_GL=egl`` or ``osmesa`` where there is no display) and matplotlib
    for the PNG.

    Returns:
        One line: where the image went, or why there is none (no OpenGL: the backend problem
        and its fix); this never raises for a missing GL.
    """
    from envs.quadruped_sim import QuadrupedSim
    from envs.rendering import gl_backend_problem

    problem = gl_backend_problem()
    if problem is not None:
        return f"no image of the robot: {problem}"
    sim = QuadrupedSim(robot=desc)
    sim.reset()
    for _ in range(int(round(1.0 / sim.control_period_s))):
        sim.step(sim.default_servo_rad)
    model = sim.model
    w = min(width, int(model.vis.global_.offwidth))
    h = min(height, int(model.vis.global_.offheight))
    cam = mujoco.MjvCamera()
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
    cam.lookat[:] = sim.base_pos_m
    cam.distance = 4.0 * max(_leg_length(desc, model), 0.1)
    cam.azimuth, cam.elevation = 135.0, -20.0
    try:
        with mujoco.Renderer(model, height=h, width=w) as renderer:
            renderer.update_scene(sim.data, camera=cam)
            rgb = renderer.render()
    except Exception as exc:  # noqa: BLE001  (a GL context that fails to open: say so)
        return f"no image of the robot: rendering failed ({' '.join(str(exc).split())})"
    import matplotlib.image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    matplotlib.image.imsave(str(path), rgb)
    return f"image of the robot standing: {path} ({w} x {h} px)"
