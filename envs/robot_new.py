"""``robotac robot new NAME --from FILE.xml|FILE.urdf``: a description folder from a CAD export.

:func:`scaffold` reads an MJCF or a URDF (MuJoCo compiles URDF; ``onshape-to-robot`` and most
CAD exporters write one of the two) with :class:`mujoco.MjSpec`, and writes
``envs/robots/NAME/`` (or ``--out``): ``NAME.xml`` (the MJCF, with what the stack needs added
where the export lacks it) and ``robot.yaml``. It finds what it can:

- the base: the body with a free joint, else the first body under the world (a URDF's root
  link), which gets a free joint ``root``;
- the legs: the subtrees below the base that hold hinge joints. Each is named from its joint and
  body names where they say it (``fl``/``fr``/``rl``/``rr``, ``lf``/``rf``/``lh``/``rh``,
  ``front``/``back``/``rear``/``hind`` with ``left``/``right``), else from where its first joint
  sits in the base frame (x > 0 front, y > 0 left). Joints are ordered leg by leg (front right,
  front left, rear right, rear left: the gait clock's trot pairs legs 0 + 3 and 1 + 2) and down
  each leg's chain (hip abduction, hip flexion, knee for a 12-joint quadruped);
- the feet: per leg, the geom lowest at joint angles 0 in the leg's subtree; a foot that is not a
  sphere gets a small sphere ``<leg>_foot`` at its lowest point (the stack measures foot height
  and contacts on spheres);
- the mirror: legs left and right of the same end are pairs, joint by joint along the chain; a
  pair whose axes are mirror images up to a sign (rotations about x) is negated;
- joint ranges from the MJCF/URDF limits;
- what the stack needs and the export lacks: a floor plane and a light, one position actuator
  per joint named like it, ``<joint>_pos`` / ``<joint>_vel`` sensors, an IMU site at the base's
  origin with its ``imu_quat``, ``imu_gyro``, ``imu_accel`` sensors.

What it cannot know (the default pose, the servo, the command ranges; a joint range the export
lacks) is written as ``FILL_IN``, a value the loader refuses with a line naming the field
(``robotac robot check`` then says which), each with a ``# FILL IN:`` comment saying what to
measure. Meshes the model references are copied beside the MJCF.
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np

from envs.robot_description import FILL_IN as FILL_IN_VALUE

__all__ = ["FILL_IN", "Scaffold", "ScaffoldError", "scaffold"]

#: The placeholder of a value to fill in; the loader refuses it naming the field.
FILL_IN = FILL_IN_VALUE

_LEG_ORDER = ("fr", "fl", "rr", "rl")
_PATTERNS = {  # leg -> name tokens that say it (matched on '_'/'-'/digit-separated words)
    "fr": (("fr",), ("rf",), ("front", "right"), ("right", "front")),
    "fl": (("fl",), ("lf",), ("front", "left"), ("left", "front")),
    "rr": (("rr",), ("rh",), ("br",), ("hr",), ("rear", "right"), ("back", "right"),
           ("hind", "right"), ("right", "rear"), ("right", "back"), ("right", "hind")),
    "rl": (("rl",), ("lh",), ("bl",), ("hl",), ("rear", "left"), ("back", "left"),
           ("hind", "left"), ("left", "rear"), ("left", "back"), ("left", "hind")),
}
_ROLES = (  # role of the k-th joint down a 3-joint leg, and the words that name it
    ("hip abduction", ("abduction", "abad", "haa", "hip_x", "roll", "hipx", "adduction")),
    ("hip flexion", ("flexion", "hfe", "thigh", "hip_y", "pitch", "upper", "hipy")),
    ("knee", ("knee", "kfe", "calf", "shank", "lower", "tibia", "shin")),
)
_REFLECT_AXIAL = np.array([-1.0, 1.0, -1.0])


class ScaffoldError(ValueError):
    """The source cannot be made into a description (the message says why)."""


@dataclass
class Scaffold:
    """What :func:`scaffold` wrote and found.

    Attributes:
        folder: The description folder.
        joints: Joint names in action order.
        feet: Foot geom names, leg order.
        legs: Leg -> how it was identified (``"names"`` or ``"position"``).
        added: What was added to the MJCF (one phrase each).
        fill_in: The ``robot.yaml`` fields left ``FILL_IN``.
    """

    folder: Path
    joints: list[str] = field(default_factory=list)
    feet: list[str] = field(default_factory=list)
    legs: dict[str, str] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)
    fill_in: list[str] = field(default_factory=list)

    def message(self) -> str:
        lines = [f"wrote {self.folder / 'robot.yaml'} and its MJCF",
                 "  legs: " + ", ".join(f"{k} (by {v})" for k, v in self.legs.items()),
                 f"  joints ({len(self.joints)}): {', '.join(self.joints)}",
                 f"  feet: {', '.join(self.feet)}"]
        if self.added:
            lines.append("  added to the MJCF: " + "; ".join(self.added))
        if self.fill_in:
            lines.append(f"  to fill in ({len(self.fill_in)}, marked FILL_IN in robot.yaml): "
                         + ", ".join(self.fill_in))
        return "\n".join(lines)


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[_\-\s.0-9]+", name.lower()) if w]


def _leg_from_names(names: list[str]) -> str | None:
    for leg in _LEG_ORDER:
        for name in names:
            w = _words(name)
            for pat in _PATTERNS[leg]:
                if len(pat) == 1 and pat[0] in w:
                    return leg
                if len(pat) == 2 and all(p in w for p in pat):
                    return leg
                if len(pat) == 1 and name.lower().startswith(pat[0] + "_"):
                    return leg
    return None


def _leg_from_position(p: np.ndarray) -> str:
    return ("f" if p[0] > 0 else "r") + ("l" if p[1] > 0 else "r")


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def scaffold(name: str, source: str | Path, out: str | Path | None = None,
             force: bool = False) -> Scaffold:
    """Write a description folder for the robot in ``source`` (see the module docstring).

    Args:
        name: The robot's name (``robot.yaml``'s ``name``, the MJCF file's stem).
        source: An MJCF (``.xml``) or URDF (``.urdf``) file.
        out: The folder to write; default ``envs/robots/NAME``.
        force: Overwrite an existing folder's ``robot.yaml`` and MJCF.

    Returns:
        The :class:`Scaffold`.

    Raises:
        ScaffoldError: the file does not load, has no legs with hinge joints, a leg cannot be
            told apart, or the folder exists (without ``force``).
    """
    from envs.robot_description import ROBOTS_DIR

    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-]*", name):
        raise ScaffoldError(f"robot name {name!r}: use letters, digits, '_' and '-', starting "
                            "with a letter")
    source = Path(source)
    if not source.is_file():
        raise ScaffoldError(f"--from {source}: no such file")
    folder = Path(out) if out is not None else ROBOTS_DIR / name
    if (folder / "robot.yaml").exists() and not force:
        raise ScaffoldError(f"{folder / 'robot.yaml'} exists; pass --force to overwrite it")
    try:
        spec = mujoco.MjSpec.from_file(str(source))
        # A URDF's root link has no joint: static fusing would merge it into the world.
        spec.compiler.fusestatic = False
        model = spec.compile()
    except Exception as exc:  # noqa: BLE001  (MuJoCo raises ValueError; one line either way)
        raise ScaffoldError(f"MuJoCo cannot load {source}: {' '.join(str(exc).split())}") from exc
    result = Scaffold(folder)
    added = result.added

    # ---------------------------------------------------------------- the base
    O = mujoco.mjtObj
    base = None
    for b in spec.bodies:
        if any(j.type == mujoco.mjtJoint.mjJNT_FREE for j in b.joints):
            base = b
            break
    if base is None:
        base = next((b for b in spec.bodies[1:] if b.parent.name == "world"), None)
        if base is None:
            raise ScaffoldError(f"{source} has no body under the world")
        if base.joints:
            raise ScaffoldError(f"the root body {base.name!r} has joints of its own: the base "
                                "must be a body without joints (a free joint is added to it)")
        base.add_freejoint(name="root")
        added.append(f"a free joint 'root' on the base body {base.name!r}")
    if not base.name:
        base.name = "base"
    base_name = base.name
    # the base's collision geom: its largest geom
    base_geoms = [g for g in base.geoms]
    if not base_geoms:
        raise ScaffoldError(f"the base body {base_name!r} has no geom to collide with")

    # ---------------------------------------------------------------- names for unnamed geoms
    generated = set()
    for k, g in enumerate(spec.geoms):
        if not g.name:
            g.name = f"{g.parent.name or 'body'}_geom{k}"
            generated.add(g.name)
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    b_id = mujoco.mj_name2id(model, O.mjOBJ_BODY, base_name)
    rot, origin = data.xmat[b_id].reshape(3, 3), data.xpos[b_id]

    base_geom = max(base_geoms, key=lambda g: float(np.prod(
        model.geom_size[mujoco.mj_name2id(model, O.mjOBJ_GEOM, g.name)][:3] + 1e-9)))

    # ---------------------------------------------------------------- legs and their joints
    def top_child(body: int) -> int:
        while model.body_parentid[body] != b_id:
            if body == 0:
                return -1
            body = model.body_parentid[body]
        return body

    legs: dict[int, list[int]] = {}
    for j in range(model.njnt):
        if model.jnt_type[j] != mujoco.mjtJoint.mjJNT_HINGE:
            continue
        top = top_child(int(model.jnt_bodyid[j]))
        if top >= 0:
            legs.setdefault(top, []).append(j)
    if not legs:
        raise ScaffoldError(f"{source} has no hinge joints below the base {base_name!r}")
    by_leg: dict[str, tuple[int, list[int]]] = {}
    for top, joints in legs.items():
        names = [model.body(top).name] + [model.joint(j).name for j in joints]
        leg = _leg_from_names(names)
        how = "names"
        if leg is None or leg in by_leg:
            anchor = rot.T @ (data.xanchor[joints[0]] - origin)
            leg, how = _leg_from_position(anchor), "position"
        if leg in by_leg:
            raise ScaffoldError(f"two legs are both {leg!r} (bodies {model.body(top).name!r} "
                                f"and {model.body(by_leg[leg][0]).name!r}): name them with "
                                "fl/fr/rl/rr (or front/rear + left/right)")
        # down the chain: joints in body depth order (the tree order of their bodies)
        joints = sorted(joints, key=lambda j: (_depth(model, int(model.jnt_bodyid[j])), j))
        by_leg[leg] = (top, joints)
        result.legs[leg] = how
    order = [leg for leg in _LEG_ORDER if leg in by_leg]
    if len(order) != 4:
        raise ScaffoldError(f"found legs {order} below {base_name!r}: a quadruped has four")
    counts = {len(by_leg[leg][1]) for leg in order}
    if len(counts) != 1:
        raise ScaffoldError(f"the legs have different joint counts "
                            f"{ {leg: len(by_leg[leg][1]) for leg in order} }")
    joint_ids = [j for leg in order for j in by_leg[leg][1]]
    joint_names = [model.joint(j).name or f"joint{j}" for j in joint_ids]
    for j, n in zip(joint_ids, joint_names, strict=True):
        if not model.joint(j).name:
            spec.joints[j].name = n

    # ---------------------------------------------------------------- feet
    def subtree(top: int) -> list[int]:
        return [b for b in range(model.nbody) if top_child(b) == top]

    feet: list[str] = []
    for leg in order:
        bodies = set(subtree(by_leg[leg][0]))
        geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] in bodies]
        if not geoms:
            raise ScaffoldError(f"leg {leg} has no geoms: no foot to find")

        def bottom(g: int) -> float:
            return float(data.geom_xpos[g, 2]) - bottom_offset(model, data, g)

        named = [g for g in geoms if "foot" in model.geom(g).name.lower()]
        g = min(named or geoms, key=bottom)
        if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_SPHERE:
            gname = model.geom(g).name
            if gname in generated and mujoco.mj_name2id(model, O.mjOBJ_GEOM,
                                                        f"{leg}_foot") < 0:
                spec.geoms[g].name = gname = f"{leg}_foot"  # a URDF's geoms have no names
            feet.append(gname)
            continue
        # a small sphere at the lowest point of the foot geom's bounding box, in its body
        body = spec.bodies[int(model.geom_bodyid[g])]
        lowest_w = data.geom_xpos[g] - np.array([0.0, 0.0, bottom_offset(model, data, g)])
        b = int(model.geom_bodyid[g])
        r_b = data.xmat[b].reshape(3, 3)
        radius = 0.01
        pos_b = r_b.T @ (lowest_w + np.array([0.0, 0.0, radius]) - data.xpos[b])
        fname = f"{leg}_foot" if mujoco.mj_name2id(model, O.mjOBJ_GEOM, f"{leg}_foot") < 0 \
            else f"{leg}_foot_sphere"
        body.add_geom(name=fname, type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[radius, 0, 0],
                      pos=pos_b.tolist(), mass=0.001)
        added.append(f"a sphere foot {fname!r} (r {radius} m) under {model.geom(g).name!r}")
        feet.append(fname)

    # ---------------------------------------------------------------- floor, light, actuators
    has_floor = [g for g in spec.worldbody.geoms if g.type == mujoco.mjtGeom.mjGEOM_PLANE]
    if has_floor:
        floor = has_floor[0].name
    else:
        spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE,
                                size=[0, 0, 0.05], contype=1, conaffinity=1, priority=1)
        spec.worldbody.add_light(name="sun", pos=[0, 0, 3], dir=[0, 0, -1])
        spec.worldbody.lights[-1].type = mujoco.mjtLightType.mjLIGHT_DIRECTIONAL
        floor = "floor"
        added.append("a floor plane 'floor' and a light")
    act_by_joint: dict[str, object] = {}
    for a in spec.actuators:
        if a.trntype == mujoco.mjtTrn.mjTRN_JOINT:
            act_by_joint[a.target] = a
    new_acts = 0
    for n in joint_names:
        a = act_by_joint.get(n)
        if a is None:
            a = spec.add_actuator(name=n, target=n, trntype=mujoco.mjtTrn.mjTRN_JOINT)
            new_acts += 1
        elif a.name != n:
            a.name = n
        # a position servo about a = pi + q; robot.yaml's servo model replaces the figures
        a.gaintype, a.biastype = mujoco.mjtGain.mjGAIN_FIXED, mujoco.mjtBias.mjBIAS_AFFINE
        a.gainprm[0], a.biasprm[:3] = 1.0, [-math.pi, -1.0, 0.0]
        a.ctrllimited, a.ctrlrange = 1, [0.0, 2.0 * math.pi]
    if new_acts:
        added.append(f"{new_acts} position actuator(s) named like their joints")
    have = {s.name for s in spec.sensors}
    new_sensors = 0
    for n in joint_names:
        for suffix, kind in (("_pos", mujoco.mjtSensor.mjSENS_JOINTPOS),
                             ("_vel", mujoco.mjtSensor.mjSENS_JOINTVEL)):
            if n + suffix not in have:
                spec.add_sensor(name=n + suffix, type=kind, objtype=O.mjOBJ_JOINT, objname=n)
                new_sensors += 1
    if new_sensors:
        added.append(f"{new_sensors} joint position/velocity sensor(s)")
    imu = next((s for s in base.sites if np.allclose(s.pos, 0) and np.allclose(
        s.quat, [1, 0, 0, 0])), None)
    if imu is None:
        imu = base.add_site(name="imu", pos=[0, 0, 0], size=[0.01, 0, 0])
        added.append("an IMU site 'imu' at the base's origin")
    elif not imu.name:
        imu.name = "imu"
    imu_sensors = {}
    for key, kind, sname in (("quat_sensor", mujoco.mjtSensor.mjSENS_FRAMEQUAT, "imu_quat"),
                             ("gyro_sensor", mujoco.mjtSensor.mjSENS_GYRO, "imu_gyro"),
                             ("accel_sensor", mujoco.mjtSensor.mjSENS_ACCELEROMETER,
                              "imu_accel")):
        found = next((s for s in spec.sensors if s.type == kind and s.objname == imu.name),
                     None)
        if found is None:
            spec.add_sensor(name=sname, type=kind, objtype=O.mjOBJ_SITE, objname=imu.name)
            found_name = sname
            added.append(f"sensor {sname!r}")
        else:
            found_name = found.name
        imu_sensors[key] = found_name
    if not any(c.name == "track" for c in spec.cameras):
        base.add_camera(name="track", mode=mujoco.mjtCamLight.mjCAMLIGHT_TRACKCOM,
                        pos=[0.0, -1.0, 0.4], xyaxes=[1, 0, 0, 0, 0.36, 0.93])

    # ---------------------------------------------------------------- meshes, then the MJCF
    folder.mkdir(parents=True, exist_ok=True)
    src_dir = source.resolve().parent
    meshdir = Path(spec.meshdir) if spec.meshdir else Path()
    for mesh in spec.meshes:
        if not mesh.file:
            continue
        f = Path(re.sub(r"^package://[^/]+/", "", mesh.file))
        cands = [f, src_dir / meshdir / f, src_dir / f, src_dir / f.name]
        found_f = next((c for c in cands if c.is_file()), None)
        if found_f is None:
            raise ScaffoldError(f"mesh {mesh.file!r} is not found next to {source}")
        (folder / "meshes").mkdir(exist_ok=True)
        shutil.copyfile(found_f, folder / "meshes" / found_f.name)
        mesh.file = f"meshes/{found_f.name}"
    spec.meshdir = ""
    spec.modelname = name
    model = spec.compile()  # fails here, not in the file, if an addition is wrong
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    mjcf = folder / f"{name}.xml"
    mjcf.write_text(spec.to_xml())

    # ---------------------------------------------------------------- the mirror
    jid = {n: mujoco.mj_name2id(model, O.mjOBJ_JOINT, n) for n in joint_names}
    per_leg = {leg: [joint_names[joint_ids.index(j)] for j in by_leg[leg][1]] for leg in order}
    pairs, negate = [], []
    for right, left in (("fr", "fl"), ("rr", "rl")):
        for a, b in zip(per_leg[right], per_leg[left], strict=True):
            pairs.append((a, b))
            ax_a = rot.T @ data.xaxis[jid[a]]
            ax_b = rot.T @ data.xaxis[jid[b]]
            if np.allclose(ax_a, -_REFLECT_AXIAL * ax_b, atol=1e-6):
                negate += [a, b]
    foot_pairs = [(feet[order.index("fr")], feet[order.index("fl")]),
                  (feet[order.index("rr")], feet[order.index("rl")])]

    # ---------------------------------------------------------------- robot.yaml
    fill: list[str] = []
    lines = [
        f"# robotac robot description: {name}, scaffolded by `robotac robot new` from "
        f"{source.name}.",
        "# Every value marked FILL_IN is one the scaffold cannot know: replace it (the loader and",
        "# `robotac robot check` refuse it, naming the field). Every field: docs/your_robot.md.",
        f"# Check it with: robotac robot check {folder}",
        f"name: {name}",
        f"mjcf: {mjcf.name}",
        f"control_period_s: {_control_period(model)}   # [s] a whole number of MJCF timesteps "
        f"({_fmt(model.opt.timestep)} s)",
        "",
        "# Joints in action order (leg by leg: front right, front left, rear right, rear left;",
        "# each down its chain). servo_id: the bus layout `robotac calibrate` proposes.",
        "joints:",
    ]
    n_per_leg = len(per_leg[order[0]])
    for k, n in enumerate(joint_names):
        j = jid[n]
        role = _ROLES[k % n_per_leg][0] if n_per_leg == 3 else f"joint {k % n_per_leg + 1}"
        if model.jnt_limited[j]:
            rng = f"[{_fmt(model.jnt_range[j, 0])}, {_fmt(model.jnt_range[j, 1])}]"
        else:
            rng = FILL_IN
            fill.append(f"joints[{k}].range_rad")
        fill.append(f"joints[{k}].default_rad")
        lines.append(f"  - {{name: {n}, range_rad: {rng}, default_rad: {FILL_IN}, "
                     f"servo_id: {k + 1}}}   # FILL IN: the standing angle [rad] ({role})")
    lines += [
        "",
        "# Foot geoms (spheres) in the gait clock's leg order (the trot pairs feet 0 + 3, 1 + 2).",
        f"feet: [{', '.join(feet)}]",
        f"base: {{body: {base_name}, geom: {base_geom.name}}}",
        f"floor_geom: {floor}",
        f"imu: {{site: {imu.name}, quat_sensor: {imu_sensors['quat_sensor']}, "
        f"gyro_sensor: {imu_sensors['gyro_sensor']}, accel_sensor: {imu_sensors['accel_sensor']}}}",
        "",
        "# Left-right mirror (found from the legs and the joint axes; robot check verifies it).",
        "mirror:",
        "  joint_pairs:",
        *[f"    - [{a}, {b}]" for a, b in pairs],
        f"  negate: [{', '.join(negate)}]",
        f"  foot_pairs: [{', '.join(f'[{a}, {b}]' for a, b in foot_pairs)}]",
        "",
        "# The servo of every joint: from its datasheet (and a measurement of its speed).",
        "servo:",
    ]
    for key, unit, hint in (
        ("name", "", "the servo, e.g. Feetech STS3215 at 12 V"),
        ("kp_nm_rad", "[N m/rad]", "position gain (STS3215: 8)"),
        ("kv_nm_s_rad", "[N m s/rad]", "velocity gain (STS3215: 0.05)"),
        ("damping_nm_s_rad", "[N m s/rad]", "stall torque / no-load speed"),
        ("armature_kg_m2", "[kg m^2]", "reflected rotor inertia (STS3215: 0.005)"),
        ("frictionloss_nm", "[N m]", "dry friction (0 if unknown)"),
        ("torque_limit_nm", "[N m]", "stall torque"),
        ("no_load_speed_rad_s", "[rad/s]", "no-load speed (measure it)"),
        ("ticks_per_turn", "", "encoder ticks per turn (STS: 4096)"),
        ("model_number", "", "model number on the bus (STS3215: 777, STS3250: 2825)"),
    ):
        fill.append(f"servo.{key}")
        lines.append(f"  {key}: {FILL_IN}   # FILL IN: {unit + ' ' if unit else ''}{hint}")
    lines += [
        f"  zero_rad: {math.pi!r}    # [rad] servo angle at joint angle 0 (pi: mid-travel)",
        f"  range_rad: [0.0, {2 * math.pi!r}]   # [rad] servo angle range = action bounds",
        "",
        "# Velocity commands to train for: [low, high] each.",
        "command_ranges:",
    ]
    for key, unit in (("vx", "[m/s] forward"), ("vy", "[m/s] left"),
                      ("yaw_rate", "[rad/s] counter-clockwise")):
        fill.append(f"command_ranges.{key}")
        lines.append(f"  {key}: {FILL_IN}   # FILL IN: {unit}, e.g. [-0.3, 0.6] for a 0.2 m leg")
    lines += ["", "bus:", "  baud: 1000000                  # servo IDs: joints[*].servo_id", ""]
    (folder / "robot.yaml").write_text("\n".join(lines))
    result.joints, result.feet, result.fill_in = joint_names, feet, fill
    return result


def bottom_offset(model: mujoco.MjModel, data: mujoco.MjData, g: int) -> float:
    """Depth [m] of a geom's lowest point below its centre (its axis-aligned box half-height in
    the world frame)."""
    r = data.geom_xmat[g].reshape(3, 3)
    t = model.geom_type[g]
    s = model.geom_size[g]
    G = mujoco.mjtGeom
    if t == G.mjGEOM_BOX:
        return float(np.abs(r[2]) @ s)
    if t == G.mjGEOM_CAPSULE:
        return float(abs(r[2, 2]) * s[1] + s[0])
    if t == G.mjGEOM_CYLINDER:
        return float(abs(r[2, 2]) * s[1] + math.hypot(r[2, 0], r[2, 1]) * s[0])
    if t == G.mjGEOM_ELLIPSOID:
        return float(np.linalg.norm(r[2] * s))
    return float(model.geom_rbound[g])


def _depth(model: mujoco.MjModel, body: int) -> int:
    d = 0
    while body > 0:
        body = int(model.body_parentid[body])
        d += 1
    return d


def _control_period(model: mujoco.MjModel) -> str:
    """50 Hz when 0.02 s is a whole number of timesteps, else the nearest whole number."""
    dt = float(model.opt.timestep)
    n = max(1, round(0.02 / dt))
    return _fmt(n * dt)
