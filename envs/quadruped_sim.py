"""MuJoCo simulation core of the robotac quadruped (numpy + mujoco only, no gymnasium, no torch).

The Gymnasium env (``envs.quadruped``) and the virtual robot of ``deploy/`` both drive this class,
so the policy is trained and tested against the exact same physics.

Model (``envs/robots/quadruped/quadruped.xml``, described by ``robot.yaml`` beside it): a 1.98 kg
body-and-four-legs quadruped, three joints per leg (hip abduction about x, hip flexion about y,
knee about y), joint order, limits and default pose from
:data:`envs.interface.QUADRUPED_INTERFACE` (derived from ``robot.yaml``). Each joint is driven by
the description's servo model, written into the MJCF's actuators and joints at load; for the
quadruped a Feetech STS3215 at 12 V (stall torque about 2.9 N m, no-load speed about 4.7 rad/s)::

    tau = clip(kp * (a - pi - q) - kv * dq, -tau_max, tau_max)     [N m]
    kp = 8 N m/rad, kv = 0.05 N m s/rad, tau_max = 2.9 N m, a = servo angle in [0, 2 pi]

plus joint damping 0.62 N m s/rad (= stall torque / no-load speed, the DC motor's back-EMF, which
caps the joint speed at full torque at 4.7 rad/s) and armature 0.005 kg m^2. The servo angle ``a``
drives the joint angle ``q = a - pi``.

Timing: physics step 0.005 s (``implicitfast`` integrator), control period 0.02 s (50 Hz), so one
control step is 4 physics steps.

Sensors a real robot of this kind has: an IMU at the body centre (orientation quaternion, gyro,
accelerometer) and the servos' position and velocity read-back, see :class:`SensorReadings`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from envs.interface import (
    QUADRUPED_DESCRIPTION,
    QUADRUPED_INTERFACE,
    RobotInterface,
    interface_from_description,
)
from envs.robot_description import DEFAULT_ROBOT, RobotDescription, load_description

__all__ = ["DEFAULT_XML_PATH", "QuadrupedSim", "SensorReadings"]

#: The default robot's MJCF, shipped as package data in its description folder.
DEFAULT_XML_PATH = str(load_description(DEFAULT_ROBOT).mjcf_path)


@dataclass
class SensorReadings:
    """One reading of the robot's own sensors (what the real robot can measure).

    All arrays are float64 copies; joint arrays are in ``QUADRUPED_INTERFACE.joint_names`` order.

    Attributes:
        quat_wxyz: ``(4,)`` IMU orientation quaternion, body -> world, (w, x, y, z).
        gyro_rad_s: ``(3,)`` IMU angular velocity in the body frame [rad/s].
        accel_m_s2: ``(3,)`` IMU specific force in the body frame [m/s^2]; ``(0, 0, +9.81)`` at
            rest and upright.
        q_servo_rad: ``(12,)`` joint positions as servo angles ``q + pi`` [rad].
        dq_rad_s: ``(12,)`` joint velocities [rad/s].
    """

    quat_wxyz: np.ndarray
    gyro_rad_s: np.ndarray
    accel_m_s2: np.ndarray
    q_servo_rad: np.ndarray
    dq_rad_s: np.ndarray


class QuadrupedSim:
    """The quadruped's physics: servo targets in, sensor readings and privileged state out.

    Args:
        xml_path: MJCF file; ``None`` loads the description's MJCF (:data:`DEFAULT_XML_PATH` for
            the default robot). The model must have the description's joints, one actuator per
            joint named like the joint, the IMU site and sensors named in its ``imu``, the
            sensors ``<joint>_pos``, ``<joint>_vel``, and the geoms of ``floor_geom``,
            ``base.geom`` and ``feet``.
        robot: The robot description (:class:`envs.robot_description.RobotDescription`), a
            shipped robot's name or a description folder; ``None``: the default quadruped.

    Attributes:
        description: The robot description.
        interface: The interface derived from it (:data:`QUADRUPED_INTERFACE` for the default
            robot: joint order, limits, default pose, obs layout).
        model: The ``mujoco.MjModel``, with the description's servo model written into its
            actuators and joints; domain randomization edits it in place through the ``set_*``
            methods, which keep the nominal values to restore.
        data: The ``mujoco.MjData``.
        control_period_s: Control period [s], 0.02.
        physics_dt_s: Physics step [s], the model's ``opt.timestep`` (0.005).
        n_substeps: Physics steps per control step, ``control_period_s / physics_dt_s`` (4).
        stand_height_m: Body-centre height [m] with all feet touching the floor at the default
            pose (computed from the kinematics at construction).

    Raises:
        ValueError: at construction, if the model's joints, ranges or actuators disagree with the
            description, or the control period is not a whole number of physics steps.
    """

    def __init__(self, xml_path: str | None = None,
                 robot: RobotDescription | str | Path | None = None) -> None:
        desc = robot if isinstance(robot, RobotDescription) else load_description(
            DEFAULT_ROBOT if robot is None else robot)
        self.description: RobotDescription = desc
        self.interface: RobotInterface = (QUADRUPED_INTERFACE if desc == QUADRUPED_DESCRIPTION
                                          else interface_from_description(desc))
        xml = str(xml_path or desc.mjcf_path)
        self.model = mujoco.MjModel.from_xml_path(xml)
        self.data = mujoco.MjData(self.model)
        m = self.model
        names = self.interface.joint_names
        self.control_period_s = float(self.interface.control_period_s)
        self.physics_dt_s = float(m.opt.timestep)
        n_sub = self.control_period_s / self.physics_dt_s
        if abs(n_sub - round(n_sub)) > 1e-9:
            raise ValueError(
                f"control_period_s: {self.control_period_s} s is not a whole number of physics "
                f"steps of {self.physics_dt_s} s; change <option timestep> in the MJCF"
            )
        self.n_substeps = int(round(n_sub))
        #: The servo model's latency (``servo.latency_s``) in whole physics steps: a target
        #: acts on the motors this many physics steps after :meth:`step` or :meth:`set_targets`
        #: gave it (0: at once, the MJCF's behaviour).
        self.servo_latency_steps = int(round(desc.servo.latency_s / self.physics_dt_s))
        self._pending: deque[np.ndarray] = deque()
        self._commanded: np.ndarray | None = None

        def _id(objtype: mujoco.mjtObj, name: str, field: str) -> int:
            i = mujoco.mj_name2id(m, objtype, name)
            if i < 0:
                kind = objtype.name.removeprefix("mjOBJ_").lower()
                raise ValueError(f"{field}: model {xml} has no {kind} {name!r}")
            return i

        jnt = np.array([_id(mujoco.mjtObj.mjOBJ_JOINT, n, "joints") for n in names])
        self._qadr = m.jnt_qposadr[jnt].copy()
        self._dadr = m.jnt_dofadr[jnt].copy()
        self._act = np.array([_id(mujoco.mjtObj.mjOBJ_ACTUATOR, n, "joints (actuator)")
                              for n in names])
        #: ``(12,)`` actuator ids, qpos and qvel addresses of the joints, in joint order.
        self.actuator_ids = self._act
        self.joint_qpos_adr = self._qadr
        self.joint_dof_adr = self._dadr
        if not np.array_equal(m.actuator_trnid[self._act, 0], jnt):
            raise ValueError("joints (actuator): each actuator must drive the joint of the same "
                             "name")
        arr = self.interface.arrays()
        rng = m.jnt_range[jnt]
        zero = desc.servo.zero_rad
        for k, n in enumerate(names):
            want = (arr["joint_low_rad"][k] - zero, arr["joint_high_rad"][k] - zero)
            if not (m.jnt_limited[jnt[k]] and np.allclose(rng[k], want, atol=1e-6)):
                raise ValueError(
                    f"joints[{k}].range_rad: joint {n!r} range {rng[k].tolist()} rad in the MJCF "
                    f"differs from robot.yaml's {list(want)}"
                )
        self._apply_servo_model(jnt)

        def _sensor(name: str, field: str) -> slice:
            i = _id(mujoco.mjtObj.mjOBJ_SENSOR, name, field)
            a = int(m.sensor_adr[i])
            return slice(a, a + int(m.sensor_dim[i]))

        imu = _id(mujoco.mjtObj.mjOBJ_SITE, desc.imu["site"], "imu.site")
        torso = _id(mujoco.mjtObj.mjOBJ_BODY, desc.base_body, "base.body")
        if (
            m.site_bodyid[imu] != torso
            or m.jnt_type[m.body_jntadr[torso]] != mujoco.mjtJoint.mjJNT_FREE
            or np.abs(m.site_pos[imu]).max() > 0
            or not np.allclose(m.site_quat[imu], (1, 0, 0, 0))
        ):
            raise ValueError(
                f"imu.site: the IMU site must sit at the origin of the free-floating body "
                f"{desc.base_body!r}, aligned with its frame (sensors() reads the IMU from the "
                "free joint's state)"
            )
        self._s_quat = _sensor(desc.imu["quat_sensor"], "imu.quat_sensor")
        self._s_gyro = _sensor(desc.imu["gyro_sensor"], "imu.gyro_sensor")
        self._s_accel = _sensor(desc.imu["accel_sensor"], "imu.accel_sensor")
        self._s_q = np.array([_sensor(f"{n}_pos", "joints (sensor <joint>_pos)").start
                              for n in names])
        self._s_dq = np.array([_sensor(f"{n}_vel", "joints (sensor <joint>_vel)").start
                               for n in names])

        self._floor = _id(mujoco.mjtObj.mjOBJ_GEOM, desc.floor_geom, "floor_geom")
        self._torso_geom = _id(mujoco.mjtObj.mjOBJ_GEOM, desc.base_geom, "base.geom")
        self._torso_body = torso
        self._feet = np.array([_id(mujoco.mjtObj.mjOBJ_GEOM, n, "feet") for n in desc.feet])
        self.foot_names: tuple[str, ...] = desc.feet

        # Nominal parameters, restored by reset_randomization().
        self._gain0 = m.actuator_gainprm[self._act].copy()
        self._bias0 = m.actuator_biasprm[self._act].copy()
        self._force0 = m.actuator_forcerange[self._act].copy()
        self._mass0 = float(m.body_mass[self._torso_body])
        self._inertia0 = m.body_inertia[self._torso_body].copy()
        self._friction0 = m.geom_friction[self._floor].copy()
        self._strength = np.ones(len(names))
        self._passive = False

        self.default_servo_rad = arr["default_pose_rad"]
        self.stand_height_m = self._compute_stand_height()
        self._fresh = False
        self.reset()

    def _apply_servo_model(self, jnt: np.ndarray) -> None:
        """Write the description's servo model into the actuators and joints (the MJCF's own
        actuator and joint defaults are replaced)."""
        m, sv = self.model, self.description.servo
        act, dof = self._act, m.jnt_dofadr[jnt]
        before = [a.copy() for a in (m.actuator_gainprm, m.actuator_biasprm, m.dof_armature,
                                     m.dof_damping, m.dof_frictionloss, m.actuator_ctrlrange)]
        m.actuator_gaintype[act] = mujoco.mjtGain.mjGAIN_FIXED
        m.actuator_biastype[act] = mujoco.mjtBias.mjBIAS_AFFINE
        m.actuator_gainprm[act] = 0.0
        m.actuator_gainprm[act, 0] = sv.kp_nm_rad
        m.actuator_biasprm[act] = 0.0
        m.actuator_biasprm[act, :3] = (-sv.kp_nm_rad * sv.zero_rad, -sv.kp_nm_rad,
                                       -sv.kv_nm_s_rad)
        m.actuator_ctrllimited[act] = 1
        m.actuator_ctrlrange[act] = sv.range_rad
        m.actuator_forcelimited[act] = 1
        m.actuator_forcerange[act] = (-sv.torque_limit_nm, sv.torque_limit_nm)
        m.dof_damping[dof] = sv.damping_nm_s_rad
        m.dof_armature[dof] = sv.armature_kg_m2
        m.dof_frictionloss[dof] = sv.frictionloss_nm
        after = (m.actuator_gainprm, m.actuator_biasprm, m.dof_armature, m.dof_damping,
                 m.dof_frictionloss, m.actuator_ctrlrange)
        if not all(np.array_equal(a, b) for a, b in zip(before, after, strict=True)):
            # The MJCF said otherwise: recompute what compilation derived from these
            # (armature enters dof_invweight0, the gains actuator_acc0).
            mujoco.mj_setConst(m, self.data)

    # ------------------------------------------------------------------ state
    def _compute_stand_height(self) -> float:
        """Body-centre height [m] at which the lowest foot touches the floor at the default pose."""
        d = mujoco.MjData(self.model)
        d.qpos[2] = 1.0
        d.qpos[3] = 1.0
        d.qpos[self._qadr] = self.default_servo_rad - np.pi
        mujoco.mj_kinematics(self.model, d)
        foot_bottom = d.geom_xpos[self._feet, 2] - self.model.geom_size[self._feet, 0]
        return 1.0 - float(foot_bottom.min())

    def reset(self, rng: np.random.Generator | None = None, qpos_noise_rad: float = 0.0) -> None:
        """Stand the robot at the default pose on the floor, at rest, servos holding the pose.

        Args:
            rng: Generator for the perturbation; required when ``qpos_noise_rad > 0``.
            qpos_noise_rad: Half-width [rad] of a uniform perturbation added to every joint
                angle (clipped to the joint limits). The servo targets stay at the default pose.

        Raises:
            ValueError: if ``qpos_noise_rad`` is negative, or positive without ``rng``.
        """
        if qpos_noise_rad < 0:
            raise ValueError(f"qpos_noise_rad must be >= 0, got {qpos_noise_rad}")
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        q = self.default_servo_rad - np.pi
        if qpos_noise_rad > 0:
            if rng is None:
                raise ValueError("reset(qpos_noise_rad > 0) needs rng=np.random.Generator")
            q = q + rng.uniform(-qpos_noise_rad, qpos_noise_rad, size=q.shape)
            lo, hi = m.jnt_range[m.actuator_trnid[self._act, 0]].T
            q = np.clip(q, lo, hi)
        d.qpos[0:3] = (0.0, 0.0, self.stand_height_m)
        d.qpos[3:7] = (1.0, 0.0, 0.0, 0.0)
        d.qpos[self._qadr] = q
        # Lift so that the lowest foot just touches the floor after the perturbation.
        mujoco.mj_kinematics(m, d)
        low = float((d.geom_xpos[self._feet, 2] - m.geom_size[self._feet, 0]).min())
        d.qpos[2] -= low
        d.ctrl[self._act] = self.default_servo_rad
        self._pending = deque([self.default_servo_rad.copy()] * self.servo_latency_steps)
        self._commanded = None
        mujoco.mj_forward(m, d)
        self._fresh = True

    @property
    def nominal_body_mass_kg(self) -> float:
        """Nominal mass of the body (without legs) [kg], 1.10 for the default model."""
        return self._mass0

    def set_passive(self, passive: bool) -> None:
        """Switch the servos off (``True``: no position torque, only the joint damping remains,
        as a disarmed servo's back-EMF) or back on (``False``)."""
        self._passive = bool(passive)
        self._apply_actuator_params()

    @property
    def passive(self) -> bool:
        """Whether the servos are off (see :meth:`set_passive`)."""
        return self._passive

    def step(self, target_servo_rad: np.ndarray) -> None:
        """Command the 12 servo targets and advance one control period (``n_substeps`` steps).

        Args:
            target_servo_rad: ``(12,)`` servo angles [rad] in joint order; MuJoCo clamps them to
                the ``ctrlrange`` [0, 2 pi].

        Raises:
            ValueError: on a wrong shape or a non-finite entry (naming the indices).
        """
        target = np.asarray(target_servo_rad, dtype=np.float64)
        if target.shape != (self.interface.n_joints,):
            raise ValueError(
                f"target_servo_rad has shape {target.shape}, expected ({self.interface.n_joints},)"
            )
        bad = ~np.isfinite(target)
        if bad.any():
            raise ValueError(
                f"target_servo_rad has non-finite entries at indices {np.flatnonzero(bad).tolist()}"
            )
        if self.servo_latency_steps:
            self._commanded = target.copy()
            self._delayed_steps(self.n_substeps)
        else:
            self.data.ctrl[self._act] = target
            mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)
        self._fresh = False

    def step_physics(self, n: int = 1) -> None:
        """Advance ``n`` physics steps (``physics_dt_s`` each) with the current servo targets."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if self.servo_latency_steps and self._commanded is not None:
            self._delayed_steps(int(n))
        else:
            mujoco.mj_step(self.model, self.data, nstep=int(n))
        self._fresh = False

    def _delayed_steps(self, n: int) -> None:
        """``n`` physics steps, each acting on the target commanded ``servo_latency_steps``
        physics steps before it (a FIFO of the commanded targets, one entry a physics step)."""
        for _ in range(n):
            self._pending.append(self._commanded)
            self.data.ctrl[self._act] = self._pending.popleft()
            mujoco.mj_step(self.model, self.data)

    def set_targets(self, target_servo_rad: np.ndarray) -> None:
        """Set the servo targets without stepping (for :meth:`step_physics` callers).

        Raises:
            ValueError: as :meth:`step`.
        """
        target = np.asarray(target_servo_rad, dtype=np.float64)
        if target.shape != (self.interface.n_joints,) or not np.isfinite(target).all():
            raise ValueError(
                f"target_servo_rad must be ({self.interface.n_joints},) finite, got {target}"
            )
        if self.servo_latency_steps:
            self._commanded = target.copy()
        else:
            self.data.ctrl[self._act] = target

    def forward(self) -> None:
        """Recompute sensors and derived quantities for the current state (after stepping,
        MuJoCo's sensor data still describe the state before the last physics step)."""
        if not self._fresh:
            mujoco.mj_forward(self.model, self.data)
            self._fresh = True

    def sensors(self) -> SensorReadings:
        """Read the IMU and the servos at the current state.

        Orientation, gyro, joint positions and velocities are exact at the current state (the
        IMU site sits at the body origin, aligned with the body frame, so MuJoCo's ``framequat``
        and ``gyro`` sensors equal the free joint's quaternion and body-frame angular velocity; a
        test checks this against the MJCF sensors). The accelerometer is MuJoCo's
        ``accelerometer`` sensor as computed in the last physics step, i.e. up to one physics
        step (5 ms) old, which spares a full ``mj_forward`` per control step.

        Returns:
            :class:`SensorReadings` (float64 copies).
        """
        d = self.data
        return SensorReadings(
            quat_wxyz=d.qpos[3:7].copy(),
            gyro_rad_s=d.qvel[3:6].copy(),
            accel_m_s2=d.sensordata[self._s_accel].copy(),
            q_servo_rad=d.qpos[self._qadr] + np.pi,
            dq_rad_s=d.qvel[self._dadr],
        )

    def mujoco_sensors(self) -> SensorReadings:
        """The same readings from the MJCF's sensors after a full ``mj_forward`` (slower; for
        tests and for checking :meth:`sensors`)."""
        mujoco.mj_forward(self.model, self.data)
        self._fresh = True
        s = self.data.sensordata
        return SensorReadings(
            quat_wxyz=s[self._s_quat].copy(),
            gyro_rad_s=s[self._s_gyro].copy(),
            accel_m_s2=s[self._s_accel].copy(),
            q_servo_rad=s[self._s_q] + np.pi,
            dq_rad_s=s[self._s_dq].copy(),
        )

    # -------------------------------------------------------- privileged state
    @property
    def time_s(self) -> float:
        """Simulated time [s] since the last reset."""
        return float(self.data.time)

    @property
    def base_pos_m(self) -> np.ndarray:
        """``(3,)`` body-centre position in the world frame [m] (copy)."""
        return self.data.qpos[0:3].copy()

    @property
    def base_quat_wxyz(self) -> np.ndarray:
        """``(4,)`` body orientation, body -> world (copy)."""
        return self.data.qpos[3:7].copy()

    @property
    def body_height_m(self) -> float:
        """Body-centre height above the floor [m]."""
        return float(self.data.qpos[2])

    def _rot(self) -> np.ndarray:
        mat = np.empty(9)
        mujoco.mju_quat2Mat(mat, self.data.qpos[3:7])
        return mat.reshape(3, 3)

    @property
    def base_lin_vel_world_m_s(self) -> np.ndarray:
        """``(3,)`` body-centre linear velocity in the world frame [m/s]."""
        return self.data.qvel[0:3].copy()

    @property
    def base_lin_vel_body_m_s(self) -> np.ndarray:
        """``(3,)`` body-centre linear velocity in the body frame [m/s] (``R^T v``)."""
        return self._rot().T @ self.data.qvel[0:3]

    @property
    def base_ang_vel_body_rad_s(self) -> np.ndarray:
        """``(3,)`` body angular velocity in the body frame [rad/s] (MuJoCo's free-joint
        angular velocity is already in the body frame)."""
        return self.data.qvel[3:6].copy()

    @property
    def q_joint_rad(self) -> np.ndarray:
        """``(12,)`` joint angles q [rad] (servo angle minus pi), joint order."""
        return self.data.qpos[self._qadr].copy()

    @property
    def dq_joint_rad_s(self) -> np.ndarray:
        """``(12,)`` joint velocities [rad/s], joint order."""
        return self.data.qvel[self._dadr].copy()

    @property
    def joint_torques_nm(self) -> np.ndarray:
        """``(12,)`` servo output torques [N m] of the last physics step, joint order."""
        return self.data.actuator_force[self._act].copy()

    @property
    def ctrl_servo_rad(self) -> np.ndarray:
        """``(12,)`` current servo targets [rad] (after MuJoCo's ctrlrange clamp is applied
        at the next step, the raw stored value here)."""
        return self.data.ctrl[self._act].copy()

    def foot_contacts(self) -> np.ndarray:
        """``(4,)`` bool, whether each foot (fr, fl, rr, rl) touches the floor."""
        return self._touching()[self._feet]

    def torso_contact(self) -> bool:
        """Whether the body box touches the floor."""
        return bool(self._touching()[self._torso_geom])

    def _touching(self) -> np.ndarray:
        """``(ngeom,)`` bool, geoms in at least one contact (the robot collides with the floor
        only, so this is "touches the floor"), from the collision detection of the last physics
        step (up to 5 ms old)."""
        touching = np.zeros(self.model.ngeom, dtype=bool)
        touching[self.data.contact.geom[: self.data.ncon].ravel()] = True
        touching[self._floor] = False
        return touching

    def push(self, delta_vel_m_s: np.ndarray) -> None:
        """Add ``(3,)`` world-frame linear velocity [m/s] to the body (an impulsive push)."""
        self.data.qvel[0:3] += np.asarray(delta_vel_m_s, dtype=np.float64)
        self._fresh = False

    # ------------------------------------------------- domain randomization hooks
    def set_floor_friction(self, mu: float) -> None:
        """Set the floor's sliding friction coefficient (the contact friction: the floor geom has
        priority over the feet)."""
        if not mu > 0:
            raise ValueError(f"friction must be > 0, got {mu}")
        self.model.geom_friction[self._floor, 0] = float(mu)

    @property
    def floor_friction(self) -> float:
        """The floor's sliding friction coefficient."""
        return float(self.model.geom_friction[self._floor, 0])

    def set_added_mass(self, added_mass_kg: float) -> None:
        """Add mass [kg] to the body (a payload at its centre); the body's inertia scales with
        its mass. ``0`` restores the nominal 1.10 kg."""
        new = self._mass0 + float(added_mass_kg)
        if not new > 0:
            raise ValueError(f"body mass would be {new} kg; added_mass_kg={added_mass_kg}")
        self.model.body_mass[self._torso_body] = new
        self.model.body_inertia[self._torso_body] = self._inertia0 * (new / self._mass0)

    @property
    def body_mass_kg(self) -> float:
        """Mass of the body (without the legs) [kg]."""
        return float(self.model.body_mass[self._torso_body])

    @property
    def total_mass_kg(self) -> float:
        """Mass of the whole robot [kg]."""
        return float(self.model.body_mass.sum())

    def set_motor_strength(self, scale: float | np.ndarray) -> None:
        """Scale each servo's gains kp, kv and torque limit by ``scale`` (scalar or ``(12,)``),
        e.g. 0.8 for a weak battery. ``1`` restores the nominal servo."""
        s = np.broadcast_to(np.asarray(scale, dtype=np.float64), (self.interface.n_joints,))
        if not (s > 0).all():
            raise ValueError(f"motor strength scale must be > 0, got {s.tolist()}")
        self._strength = s.copy()
        self._apply_actuator_params()

    @property
    def motor_strength(self) -> np.ndarray:
        """``(12,)`` current motor strength scale."""
        return self._strength.copy()

    def _apply_actuator_params(self) -> None:
        m = self.model
        k = 0.0 if self._passive else 1.0
        s = self._strength[:, None] * k
        m.actuator_gainprm[self._act] = self._gain0 * np.where(np.arange(10) == 0, s, 1.0)
        m.actuator_biasprm[self._act] = self._bias0 * np.where(np.arange(10) < 3, s, 1.0)
        m.actuator_forcerange[self._act] = self._force0 * self._strength[:, None]

    def reset_randomization(self) -> None:
        """Restore the nominal floor friction, body mass and motor strength."""
        self.model.geom_friction[self._floor] = self._friction0
        self.set_added_mass(0.0)
        self.set_motor_strength(1.0)
