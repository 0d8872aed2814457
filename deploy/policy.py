"""The exported policy on the robot: an onnxruntime session plus the metadata it carries.

The ONNX file written by ``policies.export`` holds one graph, raw observation -> normalizer ->
actor -> deterministic action in robot units (DESIGN.md contract 3), input ``obs``
``(batch, obs_dim)`` float32, output ``action`` ``(batch, act_dim)`` float32, and a JSON document
under the ``metadata_props`` key :data:`METADATA_KEY` (env id, robot interface with joint names,
bounds, default pose, observation layout, control period, training algorithm, robotac version).

:meth:`OnnxPolicy.check_robot` compares that metadata with the robot this host is connected to
(its INFO reply and the host's model of the robot, a :class:`~envs.interface.RobotInterface`) and
refuses a mismatch with a message that names both sides.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from deploy import protocol as P
from envs.interface import (
    QUADRUPED_INTERFACE,
    QUADRUPED_OBS_LAYOUT,
    QUADRUPED_OBS_LAYOUT_CLOCK,
    InterfaceMismatchError,
    RobotInterface,
    quadruped_obs_layout,
)
from envs.robot_description import DEFAULT_ROBOT

__all__ = ["METADATA_KEY", "PolicyError", "PolicyMismatchError", "OnnxPolicy", "joint_limits"]

#: ``metadata_props`` key of the JSON metadata (same value as ``policies.export.METADATA_KEY``).
METADATA_KEY = "robotac"
#: Tolerance [rad] when comparing float32 limits from the wire with float64 metadata.
LIMIT_ATOL_RAD = 1e-4


class PolicyError(RuntimeError):
    """The policy file cannot be loaded or lacks what deploy needs."""


class PolicyMismatchError(PolicyError):
    """The policy was made for another robot (joints, bounds or observation layout differ)."""


class OnnxPolicy:
    """An exported robotac policy run with onnxruntime (CPU, one intra-op thread).

    Args:
        path: The ``.onnx`` file written by ``robotac export``.
        intra_op_threads: onnxruntime intra-op threads; 1 keeps the control loop's latency
            predictable on a small computer.

    Attributes:
        path: The file.
        metadata: The parsed metadata JSON.
        interface: The policy's :class:`RobotInterface` (what it was trained for).
        obs_dim, action_dim: Input and output sizes.
        action_low, action_high: ``(act_dim,)`` float64 action bounds the graph squashes to.

    Raises:
        PolicyError: if the file is missing, not an ONNX model onnxruntime can load, lacks the
            robotac metadata or a robot interface, or its input/output do not match the metadata.
    """

    def __init__(self, path: str | Path, intra_op_threads: int = 1):
        self.path = Path(path)
        if not self.path.is_file():
            raise PolicyError(
                f"policy file {str(self.path)!r} does not exist; export one with "
                "`robotac export --run RUN_DIR` or pass --policy FILE"
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(intra_op_threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several private types
            raise PolicyError(f"onnxruntime cannot load {str(self.path)!r}: {exc}") from exc
        props = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise PolicyError(
                f"{str(self.path)!r} has no {METADATA_KEY!r} metadata: it was not written by "
                f"`robotac export` (metadata keys found: {sorted(props)})"
            )
        try:
            self.metadata: dict[str, Any] = json.loads(props[METADATA_KEY])
        except json.JSONDecodeError as exc:
            raise PolicyError(f"{str(self.path)!r}: metadata is not valid JSON: {exc}") from exc
        if not self.metadata.get("interface"):
            raise PolicyError(
                f"{str(self.path)!r} (env {self.metadata.get('env_id')!r}) carries no robot "
                "interface: it cannot drive a robot"
            )
        self.interface = RobotInterface.from_dict(self.metadata["interface"])
        robot_meta = self.metadata.get("robot") or {}
        #: The robot the policy was trained for (``metadata["robot"]["name"]``); a policy exported
        #: before robots were descriptions (issue 23, e.g. the shipped ``policies/pretrained``
        #: files) names none and was trained for the default robot, ``"quadruped"``.
        self.robot_name: str = str(robot_meta.get("name") or DEFAULT_ROBOT)
        #: SHA-256 of the robot's description (``robot.yaml`` + MJCF bytes), or ``None``.
        self.robot_sha256: str | None = robot_meta.get("description_sha256")
        self.action_low = np.asarray(self.metadata["action_low"], dtype=np.float64)
        self.action_high = np.asarray(self.metadata["action_high"], dtype=np.float64)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != ["obs"] or [o.name for o in outputs] != ["action"]:
            raise PolicyError(
                f"{str(self.path)!r}: expected input 'obs' and output 'action', got "
                f"{[i.name for i in inputs]} -> {[o.name for o in outputs]}"
            )
        self.obs_dim = int(self.metadata["obs_dim"])
        self.action_dim = int(self.metadata["action_dim"])
        if inputs[0].shape[-1] != self.obs_dim or outputs[0].shape[-1] != self.action_dim:
            raise PolicyError(
                f"{str(self.path)!r}: graph shapes {inputs[0].shape} -> {outputs[0].shape} "
                f"disagree with metadata obs_dim={self.obs_dim}, action_dim={self.action_dim}"
            )
        if self.obs_dim != self.interface.obs_layout.dim:
            raise PolicyError(
                f"{str(self.path)!r}: obs_dim {self.obs_dim} differs from its layout "
                f"{self.interface.obs_layout.version!r} of size {self.interface.obs_layout.dim}"
            )
        self._feed = np.zeros((1, self.obs_dim), dtype=np.float32)

    def robot_interface(self) -> RobotInterface:
        """The interface of the robot this policy was trained for, as the host models it.

        The default quadruped's is :data:`envs.interface.QUADRUPED_INTERFACE` (so the policy's
        metadata is checked against it); any other robot's is the metadata's own (the host
        never reads a robot description), its layout without the gait clock the loop adds
        (:func:`deploy.loop.policy_robot_interface`). The robot-side checks are then INFO's
        joint count and limits (protocol v1) or the calibration (an STS bus, whose file
        carries the robot's interface).
        """
        if self.robot_name == QUADRUPED_INTERFACE.name:
            return QUADRUPED_INTERFACE
        if self.interface.obs_layout.version in (QUADRUPED_OBS_LAYOUT.version,
                                                 QUADRUPED_OBS_LAYOUT_CLOCK.version):
            return replace(self.interface,
                           obs_layout=quadruped_obs_layout(self.interface.n_joints))
        return self.interface

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action for one observation.

        Args:
            obs: ``(obs_dim,)`` raw observation (as ``envs.interface.quadruped_obs`` builds it).

        Returns:
            ``(act_dim,)`` float32 action in robot units (servo angles [rad]); may be non-finite
            if the observation is, which the safety layer catches.
        """
        self._feed[0] = obs
        return self.session.run(None, {"obs": self._feed})[0][0]

    def batch(self, obs: np.ndarray) -> np.ndarray:
        """Actions for a batch: ``(batch, obs_dim) -> (batch, act_dim)`` float32."""
        return self.session.run(None, {"obs": np.ascontiguousarray(obs, dtype=np.float32)})[0]

    def check_robot(self, info: P.Info, robot: RobotInterface) -> None:
        """Refuse to drive a robot this policy was not made for.

        Checks, naming both sides on a mismatch:

        0. the robot: the robot the policy names (:attr:`robot_name`) is the host's
           ``robot.name``;
        1. joint count: robot INFO ``n_joints`` vs the policy's joints and action size;
        2. the host's robot interface vs the policy's: joint order, observation layout (version
           and blocks), action bounds and default pose (``RobotInterface.check_matches``);
        3. limits: the joint range the policy was trained with lies inside the limits the robot
           reports in INFO, and so does the default pose (so the ramp and the clamp can reach
           every pose the policy expects).

        Raises:
            PolicyMismatchError: on the first difference found.
        """
        name = str(self.path)
        if self.robot_name != robot.name:
            raise PolicyMismatchError(
                f"policy {name!r} was trained for robot {self.robot_name!r}, but this is robot "
                f"{robot.name!r}: export a policy trained for {robot.name!r}"
            )
        n_pol = self.interface.n_joints
        if info.n_joints != n_pol or self.action_dim != n_pol:
            raise PolicyMismatchError(
                f"joint count differs: robot reports {info.n_joints} joints in INFO, policy "
                f"{name!r} has {n_pol} joints and {self.action_dim} actions "
                f"(env {self.metadata.get('env_id')!r})"
            )
        if robot.obs_layout.version != self.interface.obs_layout.version:
            raise PolicyMismatchError(
                f"observation layout version differs: robot {robot.name!r} uses "
                f"{robot.obs_layout.version!r}, policy {name!r} expects "
                f"{self.interface.obs_layout.version!r}"
            )
        try:
            robot.check_matches(self.interface)
        except InterfaceMismatchError as exc:
            raise PolicyMismatchError(
                f"policy {name!r} does not fit robot {robot.name!r}: {exc}"
            ) from exc
        lo_r = info.joint_min_rad.astype(np.float64)
        hi_r = info.joint_max_rad.astype(np.float64)
        pol = self.interface.arrays()
        for key_lo, key_hi in (("joint_low_rad", "joint_high_rad"),
                               ("default_pose_rad", "default_pose_rad")):
            bad = np.flatnonzero(
                (pol[key_lo] < lo_r - LIMIT_ATOL_RAD) | (pol[key_hi] > hi_r + LIMIT_ATOL_RAD)
            )
            if bad.size:
                j = int(bad[0])
                raise PolicyMismatchError(
                    f"policy {name!r} {key_lo.replace('_low', '')} of joint "
                    f"{self.interface.joint_names[j]!r} [{pol[key_lo][j]:.4f}, "
                    f"{pol[key_hi][j]:.4f}] rad lies outside the robot's INFO limits "
                    f"[{lo_r[j]:.4f}, {hi_r[j]:.4f}] rad ({bad.size} joint(s) affected)"
                )
        low, high = self.safe_bounds(info)
        if not (low <= high).all():
            raise PolicyMismatchError(
                f"policy {name!r} action bounds and the robot's limits do not overlap at joints "
                f"{np.flatnonzero(low > high).tolist()}"
            )

    def safe_bounds(self, info: P.Info) -> tuple[np.ndarray, np.ndarray]:
        """Intersection of the policy's action bounds and the robot's INFO limits.

        Returns:
            ``(low, high)``, each ``(n_joints,)`` float64 servo angles [rad], rounded inward to
            float32 so a target clamped to them stays inside after the float32 wire encoding.
        """
        low = np.maximum(self.action_low, info.joint_min_rad.astype(np.float64))
        high = np.minimum(self.action_high, info.joint_max_rad.astype(np.float64))
        return _inward_float32(low, high)


def _inward_float32(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` rounded one float32 step inward, as float64: a target clamped to them
    stays inside after the float32 wire encoding."""
    low32 = np.nextafter(np.asarray(low).astype(np.float32), np.float32(np.inf))
    high32 = np.nextafter(np.asarray(high).astype(np.float32), np.float32(-np.inf))
    return low32.astype(np.float64), high32.astype(np.float64)


def joint_limits(info: P.Info) -> tuple[np.ndarray, np.ndarray]:
    """The robot's own joint limits from its INFO, as the safety layer's outer box.

    Returns:
        ``(low, high)``, each ``(n_joints,)`` float64 servo angles [rad], rounded inward to
        float32 like :meth:`OnnxPolicy.safe_bounds` (so they contain the safe bounds).
    """
    return _inward_float32(info.joint_min_rad.astype(np.float64),
                           info.joint_max_rad.astype(np.float64))
