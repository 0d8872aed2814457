"""``robotac identify``: fit the description's servo model to the robot's own servos.

The bus side (:mod:`deploy.identify`) excites each joint of the robot on its stand and records
goal, present position, speed, load and voltage. This module replays the recorded goals in
MuJoCo on the robot-on-stand model (the description's MJCF, the body held in the air as the
emulator's and the operator's stand hold it) and fits, with ``scipy.optimize.least_squares``
(trust-region reflective, bounded, finite-difference Jacobian), the servo parameters that
minimise the position error summed over every joint's samples:

=================== ===================================== =================================
parameter            model term (``ServoModel``)           excitation that determines it
=================== ===================================== =================================
``kp_nm_rad``        actuator gain                         holds against gravity, small steps
``damping_nm_s_rad`` joint damping (the motor's back-EMF)  large steps, the chirp
``armature_kg_m2``   reflected rotor inertia               the chirp (high frequencies)
``frictionloss_nm``  dry friction                          holds approached from both sides
``torque_limit_nm``  actuator force range                  large steps (torque saturates)
``latency_s``        goal-to-motor delay                   steps and the chirp
=================== ===================================== =================================

The speed limit is not a free parameter of this servo model: the no-load speed is
``torque_limit / damping`` (a DC motor's stall torque over its back-EMF constant), written to
``no_load_speed_rad_s``. The latency is continuous: the goal acting in physics step ``i`` is the
recorded goal signal (zero-order hold) at ``t_i - latency``, interpolated linearly between the
physics steps around it, so the residual is differentiable in the latency.

A fit is refused when the data do not determine a parameter: from the Jacobian ``J`` at the
solution, the parameter covariance ``s^2 (J^T J)^+`` (Gauss-Newton; Bard 1974, Nonlinear
Parameter Estimation, ch. 7), with ``s`` the residual RMS but at least one encoder tick (the data
cannot resolve less), gives each parameter's standard error; a relative standard error above
``max_rel_std`` refuses the fit and names the parameter and the excitation it needs.

Outputs (``--out``): the recording (``recording.npz``), ``fit.json``, a plot of measured against
simulated for each joint, before and after (``fit.png``), and a copy of the description with the
fitted ``servo:`` block, a ``latency_s`` field and an ``identification:`` record (date, servo
IDs, voltage, RMS error per joint before and after, standard errors, a suggested
``motor_strength_range``); ``--in-place`` writes the description itself.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
from scipy.optimize import least_squares

from deploy.identify import (
    CHIRP,
    HOLD,
    PHASES,
    STEP,
    ExcitationConfig,
    IdentifyError,
    Recording,
    add_excitation_args,
    excitation_config,
)
from envs.interface import interface_from_description
from envs.quadruped_sim import QuadrupedSim
from envs.robot_description import RobotDescription, ServoModel, load_description

__all__ = ["PARAMS", "FitResult", "StandReplay", "fit_servo_model", "write_description",
           "plot_fit", "identify_virtual", "main"]

#: The fitted parameters (fields of :class:`envs.robot_description.ServoModel`).
PARAMS = ("kp_nm_rad", "damping_nm_s_rad", "armature_kg_m2", "frictionloss_nm",
          "torque_limit_nm", "latency_s")
#: Scale of each parameter (the optimizer works on value / scale) and the floor of the
#: relative standard error's denominator (a parameter near 0 is judged against this).
_SCALE = {"kp_nm_rad": 8.0, "damping_nm_s_rad": 0.62, "armature_kg_m2": 0.005,
          "frictionloss_nm": 0.05, "torque_limit_nm": 2.9, "latency_s": 0.02}
_FLOOR = {"kp_nm_rad": 1.0, "damping_nm_s_rad": 0.05, "armature_kg_m2": 0.002,
          "frictionloss_nm": 0.02, "torque_limit_nm": 0.3, "latency_s": 0.005}
_BOUNDS = {"kp_nm_rad": (0.5, 100.0), "damping_nm_s_rad": (0.01, 10.0),
           "armature_kg_m2": (1e-5, 0.2), "frictionloss_nm": (0.0, 1.0),
           "torque_limit_nm": (0.3, 20.0), "latency_s": (0.0, 0.1)}
#: The excitation phases that determine each parameter, and what to tell the operator.
_NEEDS = {
    "kp_nm_rad": ((HOLD, STEP), "holds against the leg's weight at several angles, small steps"),
    "damping_nm_s_rad": ((STEP, CHIRP), "large steps (the servo at speed) and the chirp"),
    "armature_kg_m2": ((CHIRP,), "the chirp up to about 10 Hz"),
    "frictionloss_nm": ((HOLD, STEP), "holds approached from both sides and small steps"),
    "torque_limit_nm": ((STEP,), "large steps (the servo's torque saturates)"),
    "latency_s": ((STEP, CHIRP), "steps and the chirp"),
}
#: Residuals before this time in each joint's recording are not fitted [s] (the replay starts
#: from the goals; the legs sag under gravity in the first tenths of a second).
SKIP_S = 0.2


@dataclass
class FitResult:
    """What :func:`fit_servo_model` found.

    Attributes:
        before, after: Parameter name -> value of the description and of the fit.
        std: Parameter -> standard error (same unit); ``rel_std``: over max(|value|, floor).
        fitted: The parameters fitted (the others keep the description's value).
        corr: ``(p, p)`` correlation matrix of the fitted parameters (``fitted`` order).
        rms_before_rad, rms_after_rad: Joint -> position RMS error [rad] of the replay.
        refused: Why the fit is refused (a parameter not determined), or ``None``.
        nfev: Residual evaluations; ``fit_wall_s``: wall time of the fit [s].
        q_before, q_after: Joint -> ``(n,)`` simulated servo angles at the read times (plots).
        no_load_speed_rad_s: ``torque_limit / damping`` of the fit [rad/s].
    """

    before: dict[str, float]
    after: dict[str, float]
    fitted: tuple[str, ...]
    std: dict[str, float]
    rel_std: dict[str, float]
    corr: np.ndarray
    rms_before_rad: dict[str, float]
    rms_after_rad: dict[str, float]
    refused: str | None
    nfev: int
    fit_wall_s: float
    q_before: dict[str, np.ndarray] = field(repr=False)
    q_after: dict[str, np.ndarray] = field(repr=False)

    @property
    def no_load_speed_rad_s(self) -> float:
        return self.after["torque_limit_nm"] / self.after["damping_nm_s_rad"]

    @property
    def rms_cut(self) -> float:
        """Share of the total position RMS error the fit removed (1 = all)."""
        b = math.sqrt(np.mean(np.square(list(self.rms_before_rad.values()))))
        a = math.sqrt(np.mean(np.square(list(self.rms_after_rad.values()))))
        return 1.0 - a / b if b > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("q_before", "q_after", "corr")}
        d["corr"] = np.round(self.corr, 4).tolist()
        d["no_load_speed_rad_s"] = self.no_load_speed_rad_s
        d["rms_cut"] = self.rms_cut
        return d


def _servo_params(s: ServoModel) -> dict[str, float]:
    return {p: float(getattr(s, p)) for p in PARAMS}


class StandReplay:
    """Replay a :class:`~deploy.identify.Recording` in MuJoCo, the body held on a stand.

    Args:
        description: The robot description (MJCF, joints, the servo model's fixed fields:
            kv, zero, range).
        recording: The recording (its joint names must be the description's).

    Raises:
        ValueError: the recording's joints are not the description's.
    """

    def __init__(self, description: RobotDescription, recording: Recording) -> None:
        if tuple(recording.joint_names) != description.joint_names:
            raise ValueError(f"the recording's joints {list(recording.joint_names)} are not the "
                             f"description's {list(description.joint_names)}")
        self.description = description
        self.recording = recording
        self.sim = QuadrupedSim(robot=description)
        self.dt = self.sim.physics_dt_s
        self.zero = description.servo.zero_rad
        self._grid: list[np.ndarray] = []
        for j in recording.joints:
            n_steps = int(math.ceil(float(np.nanmax(j.t_read_s)) / self.dt - 1e-9)) + 1
            t = np.arange(n_steps) * self.dt
            idx = np.searchsorted(j.t_goal_s, t + 1e-9, side="right") - 1
            self._grid.append(j.goal_rad[np.maximum(idx, 0)])      # (n_steps, n_joints) ZOH

    def simulate(self, params: dict[str, float],
                 until_s: list[float] | None = None) -> list[np.ndarray]:
        """Simulated servo angle [rad] of each recorded joint at its read times.

        Args:
            params: Values of :data:`PARAMS` (the description's kv, zero and range stay).
            until_s: Per joint, simulate only this far [s] (later samples hold the last value).

        Returns:
            One ``(n,)`` float64 array per recorded joint.
        """
        sim, m, d = self.sim, self.sim.model, self.sim.data
        act, dof, qadr = sim.actuator_ids, sim.joint_dof_adr, sim.joint_qpos_adr
        kp, kv = params["kp_nm_rad"], self.description.servo.kv_nm_s_rad
        m.actuator_gainprm[act, 0] = kp
        m.actuator_biasprm[act, :3] = (-kp * self.zero, -kp, -kv)
        m.actuator_forcerange[act] = (-params["torque_limit_nm"], params["torque_limit_nm"])
        m.dof_damping[dof] = params["damping_nm_s_rad"]
        m.dof_armature[dof] = params["armature_kg_m2"]
        m.dof_frictionloss[dof] = params["frictionloss_nm"]
        mujoco.mj_setConst(m, d)
        lat = params["latency_s"] / self.dt
        n_lat, frac = int(math.floor(lat)), lat - math.floor(lat)
        out = []
        for k, (j, grid) in enumerate(zip(self.recording.joints, self._grid, strict=True)):
            n_steps = len(grid) if until_s is None else min(
                len(grid), int(math.ceil(until_s[k] / self.dt)) + 1)
            i = np.arange(n_steps)
            g0 = grid[np.clip(i - n_lat, 0, None)]
            g1 = grid[np.clip(i - n_lat - 1, 0, None)]
            ctrl = (1.0 - frac) * g0 + frac * g1
            mujoco.mj_resetData(m, d)
            d.qpos[qadr] = j.start_rad - self.zero
            first = np.flatnonzero(np.isfinite(j.present_rad))
            if first.size:
                d.qpos[qadr[j.index]] = j.present_rad[first[0]] - self.zero
            q = np.empty(n_steps + 1)
            q[0] = d.qpos[qadr[j.index]]
            a = qadr[j.index]
            for s in range(n_steps):
                d.qpos[0:3] = (0.0, 0.0, 0.4)
                d.qpos[3:7] = (1.0, 0.0, 0.0, 0.0)
                d.qvel[0:6] = 0.0
                d.ctrl[act] = ctrl[s]
                mujoco.mj_step(m, d)
                q[s + 1] = d.qpos[a]
            t = np.arange(n_steps + 1) * self.dt
            out.append(np.interp(j.t_read_s, t, q) + self.zero)
        return out

    def residuals(self, params: dict[str, float], phases: tuple[int, ...] | None = None
                  ) -> np.ndarray:
        """Simulated minus measured position [rad], every joint's valid samples after
        :data:`SKIP_S` (only those of ``phases``, when given), concatenated."""
        parts = []
        keep = [np.isfinite(j.present_rad) & (j.t_read_s >= SKIP_S)
                & (True if phases is None else np.isin(j.phase, phases))
                for j in self.recording.joints]
        until = None if phases is None else [
            float(j.t_read_s[ok][-1]) if ok.any() else 0.0
            for j, ok in zip(self.recording.joints, keep, strict=True)]
        for j, q, ok in zip(self.recording.joints, self.simulate(params, until), keep,
                            strict=True):
            parts.append(q[ok] - j.present_rad[ok])
        return np.concatenate(parts)

    def rms(self, q_sim: list[np.ndarray]) -> dict[str, float]:
        out = {}
        for j, q in zip(self.recording.joints, q_sim, strict=True):
            ok = np.isfinite(j.present_rad) & (j.t_read_s >= SKIP_S)
            out[j.name] = float(np.sqrt(np.mean((q[ok] - j.present_rad[ok]) ** 2)))
        return out


def fit_servo_model(description: RobotDescription, recording: Recording,
                    max_rel_std: float = 0.1, max_nfev: int = 60,
                    fixed: tuple[str, ...] = ("torque_limit_nm",),
                    progress: Any = None) -> FitResult:
    """Fit :data:`PARAMS` to the recording (see the module docstring).

    Args:
        description: The robot description; its servo model is the start and "before".
        recording: The recording.
        max_rel_std: Refuse when a parameter's standard error exceeds this share of its value.
        max_nfev: Residual evaluations at most, per stage (each costs one replay of the
            recording; the finite-difference Jacobian adds one per parameter and iteration).
        fixed: Parameters kept at the description's value (default the torque limit, the
            datasheet's stall torque: with it free, kp, damping, armature, friction and torque
            limit scale together and the position data barely tell the scale).
        progress: Called with a line of text now and then.

    Returns:
        :class:`FitResult` (``refused`` set when poorly conditioned; the caller must not
        write it).

    Raises:
        ValueError: a recording without a valid sample.
    """
    t0 = time.perf_counter()
    replay = StandReplay(description, recording)
    before = _servo_params(description.servo)
    for p, (lo, hi) in _BOUNDS.items():
        before[p] = min(max(before[p], lo), hi)
    names = [p for p in PARAMS if p not in fixed]
    scale = np.array([_SCALE[p] for p in names])

    def params_of(x: np.ndarray) -> dict[str, float]:
        out = dict(before)
        out.update({p: float(v) for p, v in zip(names, x * scale, strict=True)})
        return out

    def fun(x: np.ndarray) -> np.ndarray:
        return replay.residuals(params_of(x))

    x0 = np.array([before[p] for p in names]) / scale
    lo = np.array([_BOUNDS[p][0] for p in names]) / scale
    hi = np.array([_BOUNDS[p][1] for p in names]) / scale
    r0 = fun(x0)
    if r0.size <= len(names):
        raise ValueError(f"the recording has {r0.size} valid samples after {SKIP_S} s: too few "
                         "to fit six parameters")
    if progress:
        progress(f"fitting {len(names)} parameters to {r0.size} samples of "
                 f"{len(recording.joints)} joint(s); RMS before {np.sqrt(np.mean(r0**2)):.4f} rad")
    opts = dict(bounds=(lo, hi), method="trf", x_scale=1.0, diff_step=1e-3, ftol=1e-8,
                xtol=1e-8, gtol=1e-8, max_nfev=max_nfev)
    # Stage 1 on the dynamic samples (steps, chirp) only: with dry friction, where a hold stops
    # depends sharply on the parameters (stick-slip), which makes the holds' residual a narrow
    # valley a local search from the description's model does not find (measured: from kp 8,
    # three joints stopped at kp 9.7 with the truth at 14.4). The dynamic samples lead near
    # it; stage 2 then fits every sample from there.
    nfev = 0
    dyn = np.concatenate([
        np.isin(j.phase, (STEP, CHIRP))[np.isfinite(j.present_rad) & (j.t_read_s >= SKIP_S)]
        for j in recording.joints])
    if dyn.sum() > len(names) and not dyn.all():
        res1 = least_squares(lambda x: replay.residuals(params_of(x), (STEP, CHIRP)), x0,
                             **opts)
        x0, nfev = res1.x, res1.nfev
        if progress:
            progress(f"stage 1 (steps and chirp): RMS {np.sqrt(np.mean(res1.fun**2)):.5f} rad, "
                     f"{res1.nfev} evaluations")
    res = least_squares(fun, x0, **opts)
    nfev += res.nfev
    after = params_of(res.x)
    # Conditioning: Gauss-Newton covariance with the residual RMS, floored at one tick.
    tick = 2 * math.pi / description.servo.ticks_per_turn
    m = res.fun.size
    s2 = max(float(np.sum(res.fun**2)) / max(1, m - len(names)), tick**2)
    jac = res.jac  # d residual / d (value / scale)
    cov_x = s2 * np.linalg.pinv(jac.T @ jac)
    std_x = np.sqrt(np.clip(np.diag(cov_x), 0, None))
    std = {p: float(std_x[i] * scale[i]) for i, p in enumerate(names)}
    rel = {p: std[p] / max(abs(after[p]), _FLOOR[p]) for p in names}
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov_x / np.outer(std_x, std_x)
    corr = np.nan_to_num(corr)
    refused = _judge(rel, corr, names, recording, max_rel_std)
    q_before = replay.simulate(before)
    q_after = replay.simulate(after)
    return FitResult(
        before=before, after=after, fitted=tuple(names), std=std, rel_std=rel, corr=corr,
        rms_before_rad=replay.rms(q_before), rms_after_rad=replay.rms(q_after),
        refused=refused, nfev=int(nfev), fit_wall_s=time.perf_counter() - t0,
        q_before={j.name: q for j, q in zip(recording.joints, q_before, strict=True)},
        q_after={j.name: q for j, q in zip(recording.joints, q_after, strict=True)})


def _judge(rel: dict[str, float], corr: np.ndarray, names: list[str], recording: Recording,
           max_rel_std: float) -> str | None:
    """The refusal message for parameters the data do not determine, or ``None``."""
    bad = [p for p in names if not rel[p] <= max_rel_std]
    if not bad:
        return None
    present = set()
    for j in recording.joints:
        present.update(int(c) for c in np.unique(j.phase))
    lines = []
    for p in bad:
        i = names.index(p)
        partner = max((k for k in range(len(names)) if k != i), key=lambda k: abs(corr[i, k]))
        phases, what = _NEEDS[p]
        missing = [PHASES[c] for c in phases if c not in present]
        why = (f"the recording has no {' and no '.join(missing)} phase: record with {what}"
               if missing else f"record more of {what} (a longer --time-scale, larger steps)")
        lines.append(f"{p}: standard error {rel[p]:.0%} of its value (> {max_rel_std:.0%}), "
                     f"correlation {corr[i, partner]:+.2f} with {names[partner]}; {why}")
    return "the fit does not determine " + "; ".join(lines)


# ------------------------------------------------------------------ writing the description
_MARK = "# identification: written by robotac identify"


def _format(v: float) -> str:
    return f"{v:.5g}"


def write_description(description: RobotDescription, fit: FitResult, recording: Recording,
                      out_dir: Path | None, in_place: bool = False) -> Path:
    """Write the fitted servo model into a copy of the description (or the description itself).

    The ``servo:`` block's values are rewritten line by line (comments and the rest of the file
    stay), ``latency_s`` is added when missing, and the ``identification:`` record replaces any
    earlier one at the end of the file. The result is loaded again with
    :func:`envs.robot_description.load_description` and compared with the fit.

    Args:
        out_dir: Folder that receives a copy of the description folder (``<out_dir>/<name>``);
            ignored with ``in_place``.
        in_place: Rewrite the description's own ``robot.yaml``.

    Returns:
        The written description folder.

    Raises:
        ValueError: a refused fit, or the written file does not load back to the fitted values.
    """
    if fit.refused:
        raise ValueError(f"not writing a refused fit: {fit.refused}")
    if in_place:
        folder = description.folder
    else:
        if out_dir is None:
            raise ValueError("give out_dir or in_place=True")
        folder = Path(out_dir) / description.folder.name
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(description.folder, folder)
    path = folder / "robot.yaml"
    text = path.read_text()
    values = dict(fit.after)
    values["no_load_speed_rad_s"] = fit.no_load_speed_rad_s
    text = _rewrite_servo(text, values)
    text = _strip_identification(text).rstrip("\n") + "\n\n" + _identification_yaml(
        fit, recording) + "\n"
    tmp = path.with_name("robot.yaml.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    back = load_description(folder)
    for p, v in values.items():
        got = getattr(back.servo, p)
        if not math.isclose(got, float(_format(v)), rel_tol=1e-9, abs_tol=1e-12):
            raise ValueError(f"{path}: servo.{p} reads back {got}, expected {_format(v)}")
    return folder


def _rewrite_servo(text: str, values: dict[str, float]) -> str:
    lines = text.split("\n")
    try:
        start = next(i for i, ln in enumerate(lines) if re.match(r"servo:\s*(#.*)?$", ln))
    except StopIteration:
        raise ValueError("robot.yaml has no top-level 'servo:' block") from None
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end][:1] == " "):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    block = lines[start + 1:end]
    indent = None
    seen = set()
    for k, ln in enumerate(block):
        m = re.match(r"^(\s+)([A-Za-z_]\w*):(\s*)([^#]*?)(\s*)(#.*)?$", ln)
        if not m:
            continue
        indent = indent or m.group(1)
        key = m.group(2)
        if key in values:
            new = _format(values[key])
            pad = max(1, len(m.group(4)) + len(m.group(5)) - len(new)) if m.group(6) else 0
            block[k] = f"{m.group(1)}{key}:{m.group(3)}{new}{' ' * pad}{m.group(6) or ''}"
            seen.add(key)
    indent = indent or "  "
    for key in values:
        if key not in seen:
            block.append(f"{indent}{key}: {_format(values[key])}"
                         + ("   # [s] goal-to-motor delay, measured by robotac identify"
                            if key == "latency_s" else ""))
    return "\n".join(lines[:start + 1] + block + lines[end:])


def _strip_identification(text: str) -> str:
    lines = text.split("\n")
    out, skip = [], False
    for ln in lines:
        if ln.startswith(_MARK) or re.match(r"identification:\s*(#.*)?$", ln):
            skip = True
            continue
        if skip and (not ln.strip() or ln[:1] == " "):
            continue
        skip = False
        out.append(ln)
    return "\n".join(out)


def _identification_yaml(fit: FitResult, recording: Recording) -> str:
    def flow(d: dict[str, float]) -> str:
        return "{" + ", ".join(f"{k}: {_format(v)}" for k, v in d.items()) + "}"

    spread = max(0.05, 2.0 * fit.rel_std["kp_nm_rad"])
    return "\n".join([
        f"{_MARK} (docs/hardware.md); the servo block above holds its fit",
        "identification:",
        f"  date: \"{recording.date}\"",
        f"  source: \"{recording.source}\"",
        f"  joints: [{', '.join(j.name for j in recording.joints)}]",
        f"  servo_ids: [{', '.join(str(s) for s in recording.servo_ids)}]",
        f"  voltage_v: {_format(recording.voltage_v)}",
        f"  sample_rate_hz: {_format(recording.rate_hz)}",
        f"  rms_before_rad: {flow(fit.rms_before_rad)}",
        f"  rms_after_rad: {flow(fit.rms_after_rad)}",
        f"  before: {flow(fit.before)}",
        f"  std_error: {flow(fit.std)}",
        f"  motor_strength_range: [{_format(1 - spread)}, {_format(1 + spread)}]   "
        "# 1 +- max(5 %, 2 standard errors of kp), for the env's motor_strength_range",
    ])


# ------------------------------------------------------------------ plots
def plot_fit(recording: Recording, fit: FitResult, path: Path) -> Path:
    """Measured against simulated servo angle for each joint, before and after the fit (PNG).

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(recording.joints)
    fig, axes = plt.subplots(n, 2, figsize=(15, 2.4 * n + 0.8), squeeze=False,
                             gridspec_kw={"width_ratios": (2.2, 1)})
    for row, j in zip(axes, recording.joints, strict=True):
        for ax in row:
            ax.plot(j.t_read_s, j.goal_rad[:, j.index], color="0.75", lw=0.8, label="goal")
            ax.plot(j.t_read_s, j.present_rad, color="k", lw=2.2, label="measured")
            ax.plot(j.t_read_s, fit.q_before[j.name], color="tab:red", lw=0.9, ls="--",
                    label=f"before (RMS {fit.rms_before_rad[j.name] * 1e3:.1f} mrad)")
            ax.plot(j.t_read_s, fit.q_after[j.name], color="tab:blue", lw=0.9,
                    label=f"after (RMS {fit.rms_after_rad[j.name] * 1e3:.1f} mrad)")
        row[0].set_ylabel(f"{j.name}\nservo angle [rad]")
        row[0].legend(loc="upper right", fontsize=7, ncol=4)
        # Zoom: the largest step (or the first second of whatever was recorded).
        steps = np.flatnonzero(j.phase == STEP)
        t0 = j.t_read_s[steps[len(steps) * 2 // 3]] if steps.size else j.t_read_s[0]
        row[1].set_xlim(t0, t0 + 1.2)
        sel = (j.t_read_s >= t0) & (j.t_read_s <= t0 + 1.2)
        if sel.any():
            vals = np.concatenate([j.goal_rad[sel, j.index], fit.q_before[j.name][sel],
                                   j.present_rad[sel][np.isfinite(j.present_rad[sel])]])
            pad = 0.05 * (np.ptp(vals) + 1e-3)
            row[1].set_ylim(vals.min() - pad, vals.max() + pad)
        row[1].set_title("zoom: a large step", fontsize=8)
    axes[-1, 0].set_xlabel("time [s]")
    axes[-1, 1].set_xlabel("time [s]")
    fig.suptitle(f"robotac identify: {recording.source}, {recording.date}; "
                 f"RMS cut {fit.rms_cut:.0%}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (2.4 * n + 0.8)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# ------------------------------------------------------------------ recording
def identify_virtual(cfg: ExcitationConfig, servo_truth: str = "pd-away",
                     joints: list[str] | None = None, robot: str | Path = "quadruped",
                     signals: Any = None, faults: Any = None, progress: Any = None,
                     emulator_out: list | None = None, read_timeout_s: float = 0.25
                     ) -> Recording:
    """Record on the STS bus emulator: robot on its stand, stepped physics (one physics step a
    goal write, so samples come at the physics rate of simulated time), the servo truth of
    :data:`deploy.sim.sts_emulator.SERVO_TRUTHS`.

    Args:
        emulator_out: A list that receives the emulator (tests read its bus record).
        read_timeout_s: Reply timeout of each read [s]: generous, as the stepped physics does
            not run on without the host, and a busy machine may hold the emulator's thread.

    Raises:
        IdentifyError: as :func:`deploy.identify.run_identification`.
    """
    from deploy.identify import SteppedClock, run_identification
    from deploy.sim.sts_emulator import SERVO_TRUTHS, StsBusEmulator
    from deploy.sts import StsBusLink

    if servo_truth not in SERVO_TRUTHS:
        raise ValueError(f"servo_truth must be one of {sorted(SERVO_TRUTHS)}, got {servo_truth!r}")
    desc = load_description(robot)
    emu = StsBusEmulator(stand=True, mode="stepped", calibrated=True,
                         servo_truth=SERVO_TRUTHS[servo_truth], steps_per_write=1,
                         sim=QuadrupedSim(robot=desc), faults=faults)
    if emulator_out is not None:
        emulator_out.append(emu)
    port, _imu, stop = emu.start_thread()
    cal = emu.truth.calibration()
    link = StsBusLink(port, cal, None, interface=emu.sim.interface)
    try:
        return run_identification(
            link, cal, cfg, SteppedClock(emu.sim.physics_dt_s), joints=joints,
            interface=emu.sim.interface, signals=signals, read_timeout_s=read_timeout_s,
            source=f"virtual (STS bus emulator, servo truth {servo_truth})", progress=progress)
    finally:
        link.close()
        stop.set()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="robotac identify",
        description="Identify the servo model of a robot on its stand (Feetech STS bus, or the "
                    "bus emulator with --virtual) and write it into a copy of its description.")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--virtual", action="store_true",
                     help="the STS bus emulator fed by MuJoCo, with a servo truth unknown to the "
                          "fit (--servo-truth)")
    src.add_argument("--port", default=None, help="servo bus device, e.g. /dev/ttyUSB0")
    src.add_argument("--recording", type=Path, default=None,
                     help="fit a recording made before (python -m deploy.identify)")
    ap.add_argument("--servo-truth", default="pd-away",
                    help="with --virtual: description, pd-away (default) or dc-motor")
    ap.add_argument("--calibration", type=Path, default=None,
                    help="with --port: calibration file (default: robotac calibrate's)")
    ap.add_argument("--robot", default="quadruped",
                    help="robot description: a shipped name or a folder (default quadruped)")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default runs/identify/<UTC date-time>)")
    ap.add_argument("--in-place", action="store_true",
                    help="write the fitted servo model into the description itself")
    ap.add_argument("--max-rel-std", type=float, default=0.1,
                    help="refuse a parameter whose standard error exceeds this share")
    ap.add_argument("--max-nfev", type=int, default=60, help="fit evaluations at most")
    add_excitation_args(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``robotac identify``; returns the exit status (1: stopped or refused)."""
    args = build_parser().parse_args(argv)
    desc = load_description(args.robot)
    out = args.out or Path("runs/identify") / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out.mkdir(parents=True, exist_ok=True)
    try:
        cfg = excitation_config(args, desc.servo.no_load_speed_rad_s)
    except ValueError as exc:
        print(f"robotac identify: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        if args.recording is not None:
            rec = Recording.load(args.recording)
        elif args.virtual:
            from deploy.loop import StopSignals

            with StopSignals() as signals:
                rec = identify_virtual(cfg, args.servo_truth, args.joints, desc.folder,
                                       signals=signals, progress=print)
        else:
            from deploy.identify import record_on_port

            rec = record_on_port(args, cfg, interface_from_description(desc))
    except IdentifyError as exc:
        print(f"robotac identify: {exc}", file=sys.stderr)
        if exc.recording is not None and exc.recording.joints:
            p = exc.recording.save(out / "recording_partial.npz")
            print(f"robotac identify: what was recorded: {p}", file=sys.stderr)
        return 1
    t_rec = time.perf_counter() - t0
    rec.save(out / "recording.npz")
    excitation_s = sum(float(j.t_goal_s[-1] - j.t_goal_s[0]) for j in rec.joints)
    print(f"recorded {len(rec.joints)} joint(s): {rec.rate_hz:.0f} samples/s "
          f"({'simulated time; ' if args.virtual else ''}{rec.wall_rate_hz:.0f} per wall "
          f"second), {excitation_s:.1f} s of excitation, {t_rec:.1f} s wall")
    fit = fit_servo_model(desc, rec, max_rel_std=args.max_rel_std, max_nfev=args.max_nfev,
                          progress=print)
    (out / "fit.json").write_text(json.dumps(fit.to_json(), indent=1))
    png = plot_fit(rec, fit, out / "fit.png")
    print(f"{'parameter':18s} {'before':>10s} {'after':>10s} {'std err':>10s}")
    for p in PARAMS:
        std = f"{fit.std[p]:10.2g}" if p in fit.std else "     fixed"
        print(f"{p:18s} {fit.before[p]:10.4g} {fit.after[p]:10.4g} {std}")
    print(f"{'no_load_speed':18s} {desc.servo.no_load_speed_rad_s:10.4g} "
          f"{fit.no_load_speed_rad_s:10.4g}")
    for name in fit.rms_before_rad:
        print(f"  {name:18s} RMS {fit.rms_before_rad[name] * 1e3:7.2f} -> "
              f"{fit.rms_after_rad[name] * 1e3:7.2f} mrad")
    print(f"RMS cut {fit.rms_cut:.0%} ({fit.nfev} evaluations, {fit.fit_wall_s:.1f} s); "
          f"plot: {png}")
    if fit.refused:
        print(f"robotac identify: refused: {fit.refused}", file=sys.stderr)
        return 1
    folder = write_description(desc, fit, rec, out, in_place=args.in_place)
    print(f"wrote the identified description: {folder / 'robot.yaml'}")
    print(f"train on it: robotac train ... with the env's robot={folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

