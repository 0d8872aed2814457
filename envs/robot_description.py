"""A robot is data: the description folder (``robot.yaml`` + MJCF) and its loader.

Everything specific to one robot lives in ``envs/robots/<name>/`` (DESIGN.md contract 9): the
MJCF, and one ``robot.yaml`` with joint order, names, limits and default pose, feet, IMU, mirror
pairs, control period, servo model, command ranges and the bus layout. ``docs/your_robot.md``
describes every field. :mod:`envs.interface` derives the robot interface (joint order, bounds,
observation layout) and the mirror maps from it; :class:`envs.quadruped_sim.QuadrupedSim` applies
its servo model to the MJCF's actuators.

This module is numpy-only, like :mod:`envs.interface` which ``deploy/`` imports: ``pyyaml`` is
not a base dependency, so ``robot.yaml`` is read by :func:`read_yaml`, a reader of the plain YAML
subset the descriptions use (block mappings and sequences, flow ``[...]`` and ``{...}``,
numbers, ``true``/``false``/``null``, plain and quoted strings, ``#`` comments). A test checks
that it agrees with ``yaml.safe_load`` on the shipped descriptions. ``deploy/`` itself never
reads a description: it checks a policy against the interface in the ONNX metadata.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_ROBOT",
    "ROBOTS_DIR",
    "DescriptionError",
    "JointSpec",
    "RobotDescription",
    "ServoModel",
    "load_description",
    "read_yaml",
]

#: Folder of the shipped descriptions, one sub-folder per robot.
ROBOTS_DIR = Path(__file__).resolve().parent / "robots"
#: Name of the robot ``robotac/Quadruped-v0`` builds when no ``robot=`` is given.
DEFAULT_ROBOT = "quadruped"


class DescriptionError(ValueError):
    """A robot description is missing, malformed or inconsistent.

    Attributes:
        field: Dotted path of the ``robot.yaml`` field at fault (e.g. ``"joints[3].range_rad"``),
            or ``""`` for the file as a whole.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


# --------------------------------------------------------------------------------------------
# The YAML subset
# --------------------------------------------------------------------------------------------

_INT = re.compile(r"[-+]?\d+$")
_FLOAT = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")


def _scalar(text: str) -> Any:
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'":
        return t[1:-1]
    if t in ("null", "~", ""):
        return None
    if t in ("true", "false"):
        return t == "true"
    if _INT.match(t):
        return int(t)
    if _FLOAT.match(t):
        return float(t)
    if t in (".inf", "+.inf", "-.inf"):
        return -math.inf if t[0] == "-" else math.inf
    return t


def _strip_comment(line: str) -> str:
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _flow(text: str, pos: int = 0) -> tuple[Any, int]:
    """Parse a flow value starting at ``text[pos]``; returns (value, position after it)."""
    while text[pos] == " ":
        pos += 1
    if text[pos] in "[{":
        close = "]" if text[pos] == "[" else "}"
        items: list[Any] = []
        mapping: dict[str, Any] = {}
        pos += 1
        while True:
            while text[pos] == " ":
                pos += 1
            if text[pos] == close:
                return (items if close == "]" else mapping), pos + 1
            if close == "}":
                colon = text.index(":", pos)
                key = str(_scalar(text[pos:colon]))
                value, pos = _flow(text, colon + 1)
                mapping[key] = value
            else:
                value, pos = _flow(text, pos)
                items.append(value)
            while text[pos] == " ":
                pos += 1
            if text[pos] == ",":
                pos += 1
            elif text[pos] != close:
                raise ValueError(f"expected ',' or {close!r} at {text[pos:]!r}")
    end = pos
    quote = text[pos] if text[pos] in "\"'" else None
    if quote:
        end = text.index(quote, pos + 1) + 1
    else:
        while end < len(text) and text[end] not in ",]}":
            end += 1
    return _scalar(text[pos:end]), end


def _value(text: str) -> Any:
    t = text.strip()
    if t[:1] in ("[", "{"):
        value, end = _flow(t)
        if t[end:].strip():
            raise ValueError(f"text after a flow value: {t[end:]!r}")
        return value
    return _scalar(t)


def _block(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[Any, int]:
    """Parse the block whose lines have indentation ``indent``, from line ``i``."""
    if lines[i][1].startswith("- ") or lines[i][1] == "-":
        seq: list[Any] = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1][:1] == "-":
            body = lines[i][1][1:].strip()
            if not body:
                value, i = _block(lines, i + 1, lines[i + 1][0])
            else:
                value, i = _value(body), i + 1
            seq.append(value)
        return seq, i
    mapping: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent:
        text = lines[i][1]
        m = re.match(r"""("[^"]*"|'[^']*'|[^:#]+?)\s*:(\s|$)""", text)
        if m is None:
            raise ValueError(f"expected 'key: value', got {text!r}")
        key = str(_scalar(m.group(1)))
        rest = text[m.end():].strip()
        if rest:
            mapping[key], i = _value(rest), i + 1
        elif i + 1 < len(lines) and lines[i + 1][0] > indent:
            mapping[key], i = _block(lines, i + 1, lines[i + 1][0])
        elif i + 1 < len(lines) and lines[i + 1][0] == indent and lines[i + 1][1][:1] == "-":
            mapping[key], i = _block(lines, i + 1, indent)
        else:
            mapping[key], i = None, i + 1
    return mapping, i


def read_yaml(text: str) -> Any:
    """Parse the YAML subset of robot descriptions (see the module docstring).

    Raises:
        ValueError: on text outside the subset (tabs, anchors, multi-line strings, ...).
    """
    lines = []
    for raw in text.splitlines():
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ValueError("tabs in indentation are not YAML")
        line = _strip_comment(raw)
        if line.strip() and line.strip() != "---":
            lines.append((len(line) - len(line.lstrip()), line.strip()))
    if not lines:
        return None
    value, i = _block(lines, 0, lines[0][0])
    if i != len(lines):
        raise ValueError(f"unexpected indentation at {lines[i][1]!r}")
    return value


# --------------------------------------------------------------------------------------------
# The description
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JointSpec:
    """One joint of ``robot.yaml``'s ``joints`` list.

    Attributes:
        name: Joint name; the MJCF has a joint, an actuator and the sensors ``<name>_pos``,
            ``<name>_vel`` of this name.
        range_rad: ``(low, high)`` mechanical limits in joint angle q [rad] (MJCF ``range``).
        default_rad: Standing pose in joint angle q [rad].
        servo_id: The servo's ID on the bus (the bus layout template of ``robotac calibrate``).
    """

    name: str
    range_rad: tuple[float, float]
    default_rad: float
    servo_id: int


@dataclass(frozen=True)
class ServoModel:
    """The position servo of every joint (``robot.yaml``'s ``servo``).

    Actuator force ``tau = clip(kp * (a - zero_rad - q) - kv * dq, -torque_limit, torque_limit)``
    with ``a`` the servo angle command; joint damping (the motor's back-EMF), armature and
    friction loss are joint properties. The sim writes these into the MJCF's actuators and joints.

    Attributes:
        name: Servo model, e.g. ``"Feetech STS3215 at 12 V"``.
        kp_nm_rad: Position gain [N m/rad].
        kv_nm_s_rad: Velocity gain of the servo's controller [N m s/rad].
        damping_nm_s_rad: Joint damping [N m s/rad], stall torque / no-load speed.
        armature_kg_m2: Reflected rotor inertia [kg m^2].
        frictionloss_nm: Dry friction of the joint [N m].
        torque_limit_nm: Stall torque [N m].
        no_load_speed_rad_s: No-load speed [rad/s].
        ticks_per_turn: Encoder ticks per turn.
        model_number: The servo's model number on the bus (STS3215: 777).
        zero_rad: Servo angle at joint angle 0 [rad]: ``a = zero_rad + q``.
        range_rad: ``(low, high)`` servo angle range [rad], the action bounds.
        latency_s: Delay [s] from a goal written to the servo to the goal acting on its motor
            (bus, firmware cycle); optional in ``robot.yaml`` (default 0). The sim rounds it to
            whole physics steps (:attr:`envs.quadruped_sim.QuadrupedSim.servo_latency_steps`);
            ``robotac identify`` measures it.
    """

    name: str
    kp_nm_rad: float
    kv_nm_s_rad: float
    damping_nm_s_rad: float
    armature_kg_m2: float
    frictionloss_nm: float
    torque_limit_nm: float
    no_load_speed_rad_s: float
    ticks_per_turn: int
    model_number: int
    zero_rad: float
    range_rad: tuple[float, float]
    latency_s: float = 0.0


@dataclass(frozen=True)
class RobotDescription:
    """A loaded ``robot.yaml`` (see ``docs/your_robot.md`` for every field and its unit).

    Attributes:
        name: Robot name (the interface's and the ONNX metadata's).
        folder: The description folder.
        mjcf_path: The MJCF file.
        control_period_s: Policy control period [s].
        joints: Joints in action order.
        feet: Foot geom names, in the gait clock's leg order.
        base_body: The free-floating body; the IMU site sits at its origin.
        base_geom: The body's collision geom (touching the floor ends an episode).
        floor_geom: The floor geom (its friction is the contact friction).
        imu: ``site``, ``quat_sensor``, ``gyro_sensor``, ``accel_sensor`` names.
        mirror_pairs: Left-right joint pairs ``(right, left)``; joints mapped to themselves are
            on the symmetry plane.
        mirror_negate: Joints whose angle changes sign under the mirror.
        foot_pairs: Left-right foot pairs.
        servo: The servo model.
        command_ranges: Command name -> ``(low, high)`` (vx [m/s], vy [m/s], yaw_rate [rad/s]).
        baud: Bus baud rate.
        sha256: Hex SHA-256 of ``robot.yaml``'s bytes followed by the MJCF's bytes.
        identification: The ``identification`` record ``robotac identify`` wrote (date, servo
            IDs, voltage, RMS errors, standard errors, ``motor_strength_range``), or ``None``.
    """

    name: str
    folder: Path
    mjcf_path: Path
    control_period_s: float
    joints: tuple[JointSpec, ...]
    feet: tuple[str, ...]
    base_body: str
    base_geom: str
    floor_geom: str
    imu: dict[str, str]
    mirror_pairs: tuple[tuple[str, str], ...]
    mirror_negate: tuple[str, ...]
    foot_pairs: tuple[tuple[str, str], ...]
    servo: ServoModel
    command_ranges: dict[str, tuple[float, float]]
    baud: int
    sha256: str
    identification: dict[str, Any] | None = None

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    def mirror_partner(self) -> dict[str, str]:
        """Joint -> its mirror image (both directions of every pair)."""
        out = {n: n for n in self.joint_names}
        for a, b in self.mirror_pairs:
            out[a], out[b] = b, a
        return out

    def servo_angle_rad(self, q_rad: float) -> float:
        """Servo angle [rad] of joint angle ``q_rad``: ``zero_rad + q``."""
        return q_rad + self.servo.zero_rad


#: The value ``robotac robot new`` writes where the builder must give one (refused here).
FILL_IN = "FILL_IN"


def _unfilled(field: str) -> DescriptionError:
    return DescriptionError(field, "is still FILL_IN: give its value (robotac robot new left it "
                            "for you; docs/your_robot.md says what to measure)")


def _get(d: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    field = f"{where}.{key}" if where else key
    if not isinstance(d, dict) or key not in d:
        raise DescriptionError(field, "missing")
    v = d[key]
    if v == FILL_IN:
        raise _unfilled(field)
    if kind is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
        raise DescriptionError(field, f"expected {getattr(kind, '__name__', kind)}, got {v!r}")
    return v


def _pair(v: Any, field: str, kind: type = float) -> tuple[Any, Any]:
    if v == FILL_IN:
        raise _unfilled(field)
    if not (isinstance(v, list) and len(v) == 2):
        raise DescriptionError(field, f"expected a pair [a, b], got {v!r}")
    try:
        return kind(v[0]), kind(v[1])
    except (TypeError, ValueError) as exc:
        raise DescriptionError(field, f"expected two numbers, got {v!r}") from exc


def _resolve(robot: str | Path) -> Path:
    p = Path(robot)
    if p.is_file() and p.name == "robot.yaml":
        return p.parent
    if p.is_dir():
        return p
    if isinstance(robot, str) and "/" not in robot and (ROBOTS_DIR / robot).is_dir():
        return ROBOTS_DIR / robot
    shipped = sorted(q.name for q in ROBOTS_DIR.iterdir() if (q / "robot.yaml").is_file())
    raise DescriptionError(
        "", f"no robot description {str(robot)!r}: give a shipped robot's name ({shipped}) or "
        "a folder holding robot.yaml and its MJCF"
    )


_CACHE: dict[tuple[Path, str], RobotDescription] = {}


def load_description(robot: str | Path = DEFAULT_ROBOT) -> RobotDescription:
    """Load a robot description.

    Args:
        robot: A shipped robot's name (a folder of :data:`ROBOTS_DIR`), or a path to a
            description folder (or to its ``robot.yaml``).

    Returns:
        The description. Only the file's own consistency is checked here (fields, types, joint
        names unique, mirror pairs and feet well-formed); ``robotac robot check`` checks it
        against its MJCF and physics.

    Raises:
        DescriptionError: naming the field at fault.
    """
    folder = _resolve(robot)
    yaml_path = folder / "robot.yaml"
    if not yaml_path.is_file():
        raise DescriptionError("", f"{folder} has no robot.yaml")
    raw = yaml_path.read_bytes()
    try:
        doc = read_yaml(raw.decode("utf-8"))
    except (ValueError, IndexError) as exc:
        raise DescriptionError("", f"{yaml_path} is not readable YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise DescriptionError("", f"{yaml_path} must hold a mapping")
    mjcf_path = folder / _get(doc, "mjcf", "", str)
    if not mjcf_path.is_file():
        raise DescriptionError("mjcf", f"{mjcf_path} does not exist")
    digest = hashlib.sha256(raw + mjcf_path.read_bytes()).hexdigest()
    key = (yaml_path.resolve(), digest)  # an edited file is read again
    if key in _CACHE:
        return _CACHE[key]

    joints = []
    for k, j in enumerate(_get(doc, "joints", "", list)):
        w = f"joints[{k}]"
        joints.append(JointSpec(
            name=_get(j, "name", w, str),
            range_rad=_pair(_get(j, "range_rad", w, list), f"{w}.range_rad"),
            default_rad=_get(j, "default_rad", w, float),
            servo_id=_get(j, "servo_id", w, int),
        ))
    names = [j.name for j in joints]
    if not names:
        raise DescriptionError("joints", "no joints")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DescriptionError("joints", f"joint names {dup} appear more than once")
    for k, j in enumerate(joints):
        if not j.range_rad[0] < j.range_rad[1]:
            raise DescriptionError(f"joints[{k}].range_rad", f"{j.name}: low must be < high, got "
                                   f"{list(j.range_rad)}")
        if not j.range_rad[0] <= j.default_rad <= j.range_rad[1]:
            raise DescriptionError(f"joints[{k}].default_rad", f"{j.name}: {j.default_rad} rad "
                                   f"is outside its range {list(j.range_rad)}")
    ids = [j.servo_id for j in joints]
    dup_ids = sorted({i for i in ids if ids.count(i) > 1})
    if dup_ids:
        raise DescriptionError("joints.servo_id", f"servo IDs {dup_ids} are given twice")

    feet = tuple(str(f) for f in _get(doc, "feet", "", list))
    if not feet:
        raise DescriptionError("feet", "no feet")
    base = _get(doc, "base", "", dict)
    imu = _get(doc, "imu", "", dict)
    imu_names = {k: _get(imu, k, "imu", str)
                 for k in ("site", "quat_sensor", "gyro_sensor", "accel_sensor")}
    mirror = _get(doc, "mirror", "", dict)
    pairs = tuple(_pair(p, f"mirror.joint_pairs[{k}]", str)
                  for k, p in enumerate(_get(mirror, "joint_pairs", "mirror", list)))
    seen = [n for p in pairs for n in p]
    for n in seen:
        if n not in names:
            raise DescriptionError("mirror.joint_pairs", f"{n!r} is not a joint of 'joints'")
    twice = sorted({n for n in seen if seen.count(n) > 1})
    if twice:
        raise DescriptionError("mirror.joint_pairs", f"joints {twice} are in more than one pair")
    negate = tuple(str(n) for n in _get(mirror, "negate", "mirror", list))
    for n in negate:
        if n not in names:
            raise DescriptionError("mirror.negate", f"{n!r} is not a joint of 'joints'")
    foot_pairs = tuple(_pair(p, f"mirror.foot_pairs[{k}]", str)
                       for k, p in enumerate(_get(mirror, "foot_pairs", "mirror", list)))
    for p in foot_pairs:
        for f in p:
            if f not in feet:
                raise DescriptionError("mirror.foot_pairs", f"{f!r} is not one of 'feet'")

    s = _get(doc, "servo", "", dict)
    servo = ServoModel(
        name=_get(s, "name", "servo", str),
        kp_nm_rad=_get(s, "kp_nm_rad", "servo", float),
        kv_nm_s_rad=_get(s, "kv_nm_s_rad", "servo", float),
        damping_nm_s_rad=_get(s, "damping_nm_s_rad", "servo", float),
        armature_kg_m2=_get(s, "armature_kg_m2", "servo", float),
        frictionloss_nm=_get(s, "frictionloss_nm", "servo", float),
        torque_limit_nm=_get(s, "torque_limit_nm", "servo", float),
        no_load_speed_rad_s=_get(s, "no_load_speed_rad_s", "servo", float),
        ticks_per_turn=_get(s, "ticks_per_turn", "servo", int),
        model_number=_get(s, "model_number", "servo", int),
        zero_rad=_get(s, "zero_rad", "servo", float),
        range_rad=_pair(_get(s, "range_rad", "servo", list), "servo.range_rad"),
        latency_s=_get(s, "latency_s", "servo", float) if "latency_s" in s else 0.0,
    )
    for f in ("kp_nm_rad", "torque_limit_nm", "no_load_speed_rad_s", "ticks_per_turn"):
        if not getattr(servo, f) > 0:
            raise DescriptionError(f"servo.{f}", f"must be > 0, got {getattr(servo, f)}")
    for f in ("kv_nm_s_rad", "damping_nm_s_rad", "armature_kg_m2", "frictionloss_nm",
              "latency_s"):
        if not getattr(servo, f) >= 0:
            raise DescriptionError(f"servo.{f}", f"must be >= 0, got {getattr(servo, f)}")
    cmd = _get(doc, "command_ranges", "", dict)
    command_ranges = {str(k): _pair(v, f"command_ranges.{k}") for k, v in cmd.items()}
    period = _get(doc, "control_period_s", "", float)
    if not period > 0:
        raise DescriptionError("control_period_s", f"must be > 0, got {period}")
    desc = RobotDescription(
        name=_get(doc, "name", "", str),
        folder=folder,
        mjcf_path=mjcf_path,
        control_period_s=period,
        joints=tuple(joints),
        feet=feet,
        base_body=_get(base, "body", "base", str),
        base_geom=_get(base, "geom", "base", str),
        floor_geom=_get(doc, "floor_geom", "", str),
        imu=imu_names,
        mirror_pairs=pairs,
        mirror_negate=negate,
        foot_pairs=foot_pairs,
        servo=servo,
        command_ranges=command_ranges,
        baud=_get(_get(doc, "bus", "", dict), "baud", "bus", int),
        sha256=digest,
        identification=doc.get("identification") if isinstance(
            doc.get("identification"), dict) else None,
    )
    _CACHE[key] = desc
    return desc
