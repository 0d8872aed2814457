"""Does a quadruped policy walk? Deterministic episodes at a fixed velocity command.

Runs ``--episodes`` deterministic episodes of ``robotac/Quadruped-v0`` at the command
``--command VX,VY,YAW`` (default 0.5 m/s forward) with either a training run's actor (torch,
``--run DIR``) or an exported ONNX file (onnxruntime, ``--onnx FILE``), and prints per episode and
over all: the mean body-frame forward velocity [m/s] (the quantity the command specifies),
the world-frame forward speed from the displacement [m/s], the episode length, whether the
robot fell (terminated), and the servo, smoothness and stillness figures of the grid (below),
the smoothness ones after the first ``--settle-s`` (1 s) of each episode. The issue-5 criterion
is: mean forward velocity within 0.1 m/s of the command and no falls. Exit status 0 when it is
met, 1 when not.

With ``--grid`` it evaluates a grid of commands that covers the trained ranges instead (forward,
backward, sideways, turning, standing and combinations; :data:`GRID`), with domain randomization
off and then on (the ranges the policy was trained with), ``--episodes`` episodes of
``--episode-s`` (10) s each, and reports per command and setting:

- tracking: the mean body-frame velocity (vx, vy) and yaw rate after a ``--settle-s`` (1 s) start,
  ``|v_xy - cmd_xy|`` [m/s] and ``|w_z - cmd_yaw|`` [rad/s], and falls;
- servo figures: the share of steps in which some servo target moves faster than the servo's
  no-load speed (``--servo-speed-rad-s``, default the robot's ``servo.no_load_speed_rad_s``: 4.7
  rad/s for the STS3215), the share of servo-steps at
  the torque limit (``|tau| >= 0.98 * limit``), and the mean ``|delta target|`` per step [rad],
  over all steps; beside the too-fast share of the filtered servo target, that of the policy's raw
  action (what the policy asks for before the env's action filter);
- smoothness and stillness (issue 26), after ``--settle-s``: the share of steps with all four
  feet down, the mean ``|q dot|`` [rad/s], the mean ``|delta target|`` per step [rad], the share
  of joint-steps in which the target's step reverses direction (both steps over 0.005 rad), the
  share of steps in which the action filter changed the policy's target, the target's spectral
  power above 8 Hz as a share of its power above 0.2 Hz, and the mechanical power
  ``sum |tau * q dot|`` [W] (:func:`smoothness_figures`). The grid's summary gives the zero
  command's figures and the largest reversal, filter-bind and > 8 Hz shares over the grid.

The targets (issue 10): every command tracked within 0.1 m/s and 0.2 rad/s, no falls, too-fast
targets at most 5 % and torque saturation at most 3 %, with randomization off and on. ``--plot``
draws commanded against achieved.

With ``--schedule FILE`` (CSV rows ``t_s,vx,vy,yaw_rate``, the format of ``python -m deploy
--command-schedule``; e.g. ``docs/data/command_schedule_demo.csv``) it runs one episode (seed
``--seed``, randomization off) that follows the schedule: the command changes at the schedule's
times (:meth:`envs.quadruped.QuadrupedEnv.set_command`) and the run lasts until the last row's start
plus ``--schedule-tail-s``. It prints per segment the commanded and the achieved mean (vx, vy,
yaw rate), the first ``--settle-s`` of each segment left out. ``--video OUT.mp4`` also writes a
video of it (every 2nd control step: 25 fps, ``--width`` x ``--height``, default 320 x 240); without
an OpenGL backend it says why in one line and writes none. ``--latency-steps N`` runs it with a
fixed action latency of N control steps (the deploy loop without ``fresh_state`` is N=1).

Usage::

    python scripts/eval_gait.py --onnx policies/pretrained/quadruped_sac.onnx
    python scripts/eval_gait.py --run runs/quadruped-walk-sac --which best --json out.json
    python scripts/eval_gait.py --onnx policy.onnx --grid --json grid.json --plot grid.png
    python scripts/eval_gait.py --onnx policy.onnx --schedule docs/data/command_schedule_demo.csv \
        --video schedule.mp4
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

# scripts/deploy.py would shadow the deploy package: put the repository root first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load_policy_fn(args: argparse.Namespace) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    """Return ``obs (45,) float32 -> action (12,)`` and the env kwargs the policy was trained on.

    For an ONNX file, sets ``args.deploy_ranges`` to its metadata's ``deploy_command_ranges``
    (``None`` without), to which :func:`evaluate_grid` clips the grid.

    Sets ``args.servo_speed_rad_s``, when not given, to the no-load speed of the servo of the
    policy's robot (``servo.no_load_speed_rad_s`` of its description).
    """
    if args.onnx:
        from deploy.policy import OnnxPolicy

        onnx = OnnxPolicy(args.onnx)
        policy, env_kwargs = onnx, dict(onnx.metadata.get("env_kwargs") or {})
        args.deploy_ranges = onnx.metadata.get("deploy_command_ranges")
    else:
        from robotac.checkpoint import load_policy

        bundle = load_policy(args.run, args.which)
        policy, env_kwargs = bundle.act, dict(bundle.env_kwargs)
    if getattr(args, "servo_speed_rad_s", 0.0) is None:
        from envs.robot_description import DEFAULT_ROBOT, load_description

        desc = load_description(env_kwargs.get("robot") or DEFAULT_ROBOT)
        args.servo_speed_rad_s = desc.servo.no_load_speed_rad_s
    return policy, env_kwargs


def _control_period_s(env_kwargs: dict) -> float:
    """The control period [s] of the robot the env kwargs name (its description's)."""
    from envs.robot_description import DEFAULT_ROBOT, load_description

    return load_description(env_kwargs.get("robot") or DEFAULT_ROBOT).control_period_s


#: The env kwargs that choose the command: dropped from a policy's ``env_kwargs`` wherever the
#: evaluation sets the command itself (with ``fixed_command`` the others have no effect).
COMMAND_KWARGS = ("fixed_command", "command_ranges", "command_resample_s", "standing_share")


def too_fast_share(target_rad: np.ndarray, dt_s: float, servo_speed_rad_s: float) -> float:
    """Share of control steps in which some target moves faster than the servo.

    Args:
        target_rad: ``(T + 1, n_joints)`` targets [rad]: the one before the first step, then one
            per step (a filtered servo target or a raw policy action).
        dt_s: Control period [s].
        servo_speed_rad_s: The servo's no-load speed [rad/s] (STS3215: 4.7).

    Returns:
        Steps with ``max_j |target[k, j] - target[k - 1, j]| / dt_s > servo_speed_rad_s``, over
        the ``T`` steps; NaN for ``T = 0``.
    """
    d = np.abs(np.diff(np.asarray(target_rad, dtype=np.float64), axis=0))
    return float(np.mean(np.any(d / dt_s > servo_speed_rad_s, axis=1))) if len(d) else np.nan


def torque_sat_share(torque_nm: np.ndarray, limit_nm: np.ndarray) -> float:
    """Share of servo-steps at the torque limit: ``|tau| >= 0.98 * limit``.

    Args:
        torque_nm: ``(T, n_joints)`` servo output torques [N m].
        limit_nm: ``(n_joints,)`` torque limits [N m].
    """
    return float(np.mean(np.abs(torque_nm) >= 0.98 * np.asarray(limit_nm)))


def mean_abs_dtarget_rad(target_rad: np.ndarray) -> float:
    """Mean ``|delta target|`` per step and joint [rad]: ``mean |target[k] - target[k - 1]|``.

    Args:
        target_rad: ``(T + 1, n_joints)`` consecutive servo targets [rad].
    """
    return float(np.mean(np.abs(np.diff(np.asarray(target_rad, dtype=np.float64), axis=0))))


def all_feet_down_share(contacts: np.ndarray) -> float:
    """Share of control steps that end with all four feet on the floor.

    Args:
        contacts: ``(T, 4)`` bool foot contacts after each step (``info["foot_contacts"]``).
    """
    return float(np.mean(np.all(np.asarray(contacts, dtype=bool), axis=1)))


def mean_abs_joint_vel_rad_s(dq_rad_s: np.ndarray) -> float:
    """Mean ``|q dot|`` over control steps and joints [rad/s].

    Args:
        dq_rad_s: ``(T, n_joints)`` joint velocities at the end of each step [rad/s].
    """
    return float(np.mean(np.abs(dq_rad_s)))


def reversals(target_rad: np.ndarray, min_step_rad: float = 0.005) -> np.ndarray:
    """``(T - 1, n_joints)`` bool: whether step ``k + 1`` of each joint's target reverses step
    ``k`` (opposite signs, both over ``min_step_rad``); :func:`reversal_share` is its mean."""
    d = np.diff(np.asarray(target_rad, dtype=np.float64), axis=0)
    big = np.abs(d) > min_step_rad
    return (np.sign(d[1:]) != np.sign(d[:-1])) & big[1:] & big[:-1]


def reversal_share(target_rad: np.ndarray, min_step_rad: float = 0.005) -> float:
    """Share of joint-steps in which the target's step reverses direction.

    A joint-step ``k`` (step ``d[k] = target[k] - target[k - 1]``) reverses when ``d[k]`` and
    ``d[k - 1]`` have opposite signs and both exceed ``min_step_rad`` in size; the share is over
    all ``(T - 1) * n_joints`` joint-steps that have a previous step, so small jitter counts as no
    reversal and a held target gives 0. A target that alternates between two values (a square
    wave at the Nyquist frequency, 25 Hz at a 50 Hz control rate) gives 1.

    Args:
        target_rad: ``(T + 1, n_joints)`` consecutive servo targets [rad].
        min_step_rad: Steps of this size or less [rad] are not counted (issue 26: 0.005).

    Returns:
        The share in ``[0, 1]``; NaN for ``T < 2``.
    """
    if len(target_rad) < 3:
        return np.nan
    return float(np.mean(reversals(target_rad, min_step_rad)))


def filter_bind_share(action_rad: np.ndarray, target_rad: np.ndarray,
                      tol_rad: float = 1e-6) -> float:
    """Share of control steps in which the action filter changed the policy's target.

    Args:
        action_rad: ``(T, n_joints)`` policy actions as the env takes them (within the action
            bounds), before the filter [rad].
        target_rad: ``(T, n_joints)`` the filtered servo targets of the same steps [rad].
        tol_rad: Differences up to this [rad] are rounding, not the filter.

    Returns:
        Steps with ``max_j |target[k, j] - action[k, j]| > tol_rad``, over the ``T`` steps.
    """
    d = np.abs(np.asarray(target_rad, np.float64) - np.asarray(action_rad, np.float64))
    return float(np.mean(np.any(d > tol_rad, axis=1)))


def high_freq_power_share(target_rad: np.ndarray, dt_s: float, split_hz: float = 8.0,
                          min_hz: float = 0.2) -> float:
    """The servo target's spectral power above ``split_hz``, as a share of that above ``min_hz``.

    Per joint: the target is detrended (its least-squares line removed), its one-sided power
    spectrum is ``|numpy.fft.rfft|^2`` (no window; bin ``i`` at ``i / (T dt_s)`` Hz), and the share
    is ``sum P[f > split_hz] / sum P[f > min_hz]``. The shares are averaged over the joints whose
    target has power above ``min_hz``; a target held by every joint gives 0. At a 50 Hz control
    rate the spectrum ends at 25 Hz: a target alternating between two values gives 1, a sine of
    1 Hz gives about 0.

    Args:
        target_rad: ``(T, n_joints)`` servo targets at consecutive control steps [rad] (one
            episode, e.g. after its first second).
        dt_s: Control period [s].
        split_hz: Power above this frequency is "high" [Hz] (issue 26: 8).
        min_hz: Power at or below this frequency (drift) is left out [Hz].

    Returns:
        The share in ``[0, 1]``; NaN for ``T < 3``.
    """
    x = np.asarray(target_rad, dtype=np.float64)
    n = len(x)
    if n < 3:
        return np.nan
    t = np.arange(n, dtype=np.float64)
    coef = np.polyfit(t, x, 1)  # (2, n_joints): slope and intercept per joint
    x = x - (np.outer(t, coef[0]) + coef[1])
    power = np.abs(np.fft.rfft(x, axis=0)) ** 2
    f = np.fft.rfftfreq(n, dt_s)
    total = power[f > min_hz].sum(axis=0)
    high = power[f > split_hz].sum(axis=0)
    # Below this the target is held (rounding left by the detrend): no power to share out.
    moving = total > 1e-12 * n * n
    return float(np.mean(high[moving] / total[moving])) if moving.any() else 0.0


def mechanical_power_w(torque_nm: np.ndarray, dq_rad_s: np.ndarray) -> float:
    """Mean mechanical power of the servos ``sum_j |tau_j * q dot_j|`` [W].

    Args:
        torque_nm: ``(T, n_joints)`` servo output torques [N m] at the end of each control step.
        dq_rad_s: ``(T, n_joints)`` joint velocities [rad/s] at the same instants.

    Returns:
        The mean over the ``T`` steps of the sum over joints (sampled once per control step).
    """
    return float(np.mean(np.sum(np.abs(np.asarray(torque_nm) * np.asarray(dq_rad_s)), axis=1)))


def run_episode(env, policy: Callable[[np.ndarray], np.ndarray], seed: int) -> dict:
    """One deterministic episode of ``env``, recorded for the gait and servo figures.

    Returns:
        A dict of arrays, one row per control step (``T`` steps): ``target_rad`` ``(T + 1, 12)``
        the servo target before the first step (row 0) and after each step
        (``info["servo_target_rad"]``, the filtered one); ``action_rad`` ``(T + 1, 12)`` the same
        row 0, then each policy action as the env takes it (clipped to the action bounds, before
        the filter); ``torque_nm``, ``dq_rad_s`` ``(T, 12)``; ``contacts`` ``(T, 4)`` bool;
        ``v_body_m_s``, ``w_body_rad_s`` ``(T, 3)``; ``reward`` ``(T,)``; ``pushed`` ``(T,)`` bool,
        the steps on which the env pushed the robot (``info["pushed"]``); ``limit_nm`` ``(12,)``
        the torque limits (they change only at reset); ``x_m`` ``(2,)`` the world x at the start
        and the end; ``fell`` (terminated).
    """
    sim = env.unwrapped.sim
    low, high = env.action_space.low, env.action_space.high
    obs, _ = env.reset(seed=seed)
    x0 = float(sim.data.qpos[0])
    targets, actions = [sim.ctrl_servo_rad.copy()], [sim.ctrl_servo_rad.copy()]
    torque, dq, contacts, v, w, rewards, pushed = [], [], [], [], [], [], []
    while True:
        action = policy(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        actions.append(np.clip(np.asarray(action, dtype=np.float64), low, high))
        targets.append(np.asarray(info["servo_target_rad"], dtype=np.float64))
        torque.append(info["joint_torques_nm"])
        dq.append(sim.dq_joint_rad_s)
        contacts.append(info["foot_contacts"])
        v.append(info["base_lin_vel_m_s"])
        w.append(info["base_ang_vel_rad_s"])
        pushed.append(bool(info.get("pushed", False)))
        rewards.append(float(reward))
        if terminated or truncated:
            break
    return {
        "target_rad": np.array(targets), "action_rad": np.array(actions),
        "torque_nm": np.array(torque), "dq_rad_s": np.array(dq),
        "contacts": np.array(contacts, dtype=bool), "v_body_m_s": np.array(v),
        "w_body_rad_s": np.array(w), "reward": np.array(rewards),
        "pushed": np.array(pushed, dtype=bool),
        "limit_nm": sim.model.actuator_forcerange[sim.actuator_ids, 1].copy(),
        "x_m": np.array([x0, float(sim.data.qpos[0])]), "fell": bool(terminated),
    }


def servo_figures(ep: dict, dt_s: float, servo_speed_rad_s: float) -> dict:
    """One episode's servo figures over all its steps (issue 10's grid columns).

    ``too_fast_share`` of the filtered target and ``too_fast_share_raw`` of the policy's action
    (:func:`too_fast_share`, each step measured from the previous target or action; the first
    from the target before the episode), ``torque_sat_share`` (:func:`torque_sat_share`) and
    ``mean_abs_dtarget_rad`` (:func:`mean_abs_dtarget_rad`).
    """
    return {
        "too_fast_share": too_fast_share(ep["target_rad"], dt_s, servo_speed_rad_s),
        "too_fast_share_raw": too_fast_share(ep["action_rad"], dt_s, servo_speed_rad_s),
        "torque_sat_share": torque_sat_share(ep["torque_nm"], ep["limit_nm"]),
        "mean_abs_dtarget_rad": mean_abs_dtarget_rad(ep["target_rad"]),
    }


#: The smoothness and stillness figures of :func:`smoothness_figures` (issue 26).
SMOOTHNESS_KEYS = ("feet_down_share", "mean_abs_dq_rad_s", "mean_abs_dtarget_rad",
                   "reversal_share", "filter_bind_share", "hf_power_share", "mech_power_w")


def judged_steps(ep: dict, dt_s: float, settle_s: float = 1.0,
                 push_skip_s: float = 1.0) -> np.ndarray:
    """Which of an episode's ``T`` steps the smoothness figures judge.

    The steps after the first ``settle_s``, less the ``push_skip_s`` from each push on (issue 26:
    with randomization on, the second after each push is left out, since a pushed robot may
    step). A push on step ``k`` (``ep["pushed"][k]``) leaves out steps ``k`` to
    ``k + round(push_skip_s / dt_s) - 1``.

    Returns:
        ``(T,)`` bool.
    """
    t = len(ep["reward"])
    keep = np.arange(t) >= round(settle_s / dt_s)
    skip = round(push_skip_s / dt_s)
    for k in np.flatnonzero(ep.get("pushed", np.zeros(t, dtype=bool))):
        keep[k:k + skip] = False
    return keep


def smoothness_figures(ep: dict, dt_s: float, settle_s: float = 1.0,
                       push_skip_s: float = 1.0) -> dict:
    """Smoothness and stillness of one episode (issue 26), after its first ``settle_s``.

    From :func:`run_episode`'s arrays, over the steps :func:`judged_steps` keeps (after
    ``settle_s``, without the ``push_skip_s`` after each push):

    - ``feet_down_share``: :func:`all_feet_down_share`;
    - ``mean_abs_dq_rad_s``: :func:`mean_abs_joint_vel_rad_s` [rad/s];
    - ``mean_abs_dtarget_rad``: :func:`mean_abs_dtarget_rad` of the servo target [rad per step];
    - ``reversal_share``: :func:`reversal_share` of the servo target (steps over 0.005 rad), over
      the joint-steps whose step and previous step are both kept;
    - ``filter_bind_share``: :func:`filter_bind_share`;
    - ``hf_power_share``: :func:`high_freq_power_share` of the servo target (> 8 Hz of > 0.2 Hz),
      a spectrum, so over the whole series after ``settle_s`` (pushes included);
    - ``mech_power_w``: :func:`mechanical_power_w` [W].

    Returns:
        These keys and ``steps``, the number of steps they are taken over (0, and NaN figures,
        for an episode that ended within ``settle_s``).
    """
    settle = round(settle_s / dt_s)
    keep = judged_steps(ep, dt_s, settle_s, push_skip_s)
    n = int(keep.sum())
    if n <= 0 or len(ep["reward"]) <= settle:
        return {**dict.fromkeys(SMOOTHNESS_KEYS, float("nan")), "steps": 0}
    target = np.asarray(ep["target_rad"], dtype=np.float64)  # (T + 1): row k + 1 after step k
    d = np.diff(target, axis=0)  # (T, n_joints): step k's change
    rev = reversals(target)  # (T - 1, n_joints): step k + 1 against step k
    pair = keep[1:] & keep[:-1]
    figures = (
        all_feet_down_share(ep["contacts"][keep]),
        mean_abs_joint_vel_rad_s(ep["dq_rad_s"][keep]),
        float(np.mean(np.abs(d[keep]))),
        float(np.mean(rev[pair])) if pair.any() else float("nan"),
        filter_bind_share(ep["action_rad"][1:][keep], target[1:][keep]),
        high_freq_power_share(target[settle + 1:], dt_s),
        mechanical_power_w(ep["torque_nm"][keep], ep["dq_rad_s"][keep]),
    )
    return {**dict(zip(SMOOTHNESS_KEYS, figures, strict=True)), "steps": n}


def pool_smoothness(per_episode: list[dict]) -> dict:
    """:func:`smoothness_figures` of several episodes: each figure's mean over the episodes,
    weighted by their ``steps`` (NaN figures left out; NaN where none is left)."""
    out: dict = {"steps": int(sum(e["steps"] for e in per_episode))}
    for key in SMOOTHNESS_KEYS:
        x = np.array([e[key] for e in per_episode], dtype=np.float64)
        w = np.array([e["steps"] for e in per_episode], dtype=np.float64)
        ok = np.isfinite(x) & (w > 0)
        out[key] = float(np.average(x[ok], weights=w[ok])) if ok.any() else float("nan")
    return out


def _smoothness_line(s: dict) -> str:
    """One line of :func:`smoothness_figures`."""
    return (f"all feet down {100 * s['feet_down_share']:.1f} %, mean |dq| "
            f"{s['mean_abs_dq_rad_s']:.3f} rad/s, mean |d target| {s['mean_abs_dtarget_rad']:.4f} "
            f"rad, reversals {100 * s['reversal_share']:.1f} %, filter binds "
            f"{100 * s['filter_bind_share']:.1f} %, > 8 Hz {100 * s['hf_power_share']:.1f} %, "
            f"power {s['mech_power_w']:.2f} W")


def evaluate_gait(
    policy: Callable[[np.ndarray], np.ndarray],
    env_kwargs: dict,
    command: tuple[float, float, float],
    episodes: int,
    seed: int,
    servo_speed_rad_s: float = 4.7,
    settle_s: float = 1.0,
) -> list[dict]:
    """Per-episode gait figures (see the module docstring) at a fixed ``command``.

    Each episode's dict also holds the servo figures of :func:`servo_figures` over all its steps
    (``too_fast_share`` of the filtered target and ``too_fast_share_raw`` of the policy's action,
    ``torque_sat_share``, ``mean_abs_dtarget_rad``) and, under ``smoothness``, the figures of
    :func:`smoothness_figures` after ``settle_s``.
    """
    from envs.registration import make_env

    kwargs = {k: v for k, v in env_kwargs.items() if k not in COMMAND_KWARGS}
    env = make_env("robotac/Quadruped-v0", fixed_command=tuple(command), **kwargs)
    dt = env.unwrapped.sim.control_period_s
    out = []
    for k in range(episodes):
        ep = run_episode(env, policy, seed + k)
        steps = len(ep["reward"])
        out.append({
            "episode": k,
            "return": float(ep["reward"].sum()),
            "steps": steps,
            "fell": ep["fell"],
            "mean_vx_body_m_s": float(np.mean(ep["v_body_m_s"][:, 0])),
            "world_x_speed_m_s": float((ep["x_m"][1] - ep["x_m"][0]) / (steps * dt)),
            **servo_figures(ep, dt, servo_speed_rad_s),
            "smoothness": smoothness_figures(ep, dt, settle_s),
        })
    env.close()
    return out


#: The command grid (vx [m/s], vy [m/s], yaw rate [rad/s]) over the trained ranges vx [-0.3, 0.6],
#: vy [-0.2, 0.2], yaw [-1, 1]: standing, forward, backward, sideways, turning, combinations.
GRID: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.0, 0.0),
    (0.2, 0.0, 0.0), (0.4, 0.0, 0.0), (0.6, 0.0, 0.0),
    (-0.2, 0.0, 0.0), (-0.3, 0.0, 0.0),
    (0.0, 0.15, 0.0), (0.0, -0.15, 0.0),
    (0.0, 0.0, 0.5), (0.0, 0.0, -0.5), (0.0, 0.0, 1.0), (0.0, 0.0, -1.0),
    (0.4, 0.0, 0.5), (0.3, 0.1, 0.0), (0.3, -0.1, -0.5), (-0.2, 0.0, 0.5),
)

#: Env keyword arguments that randomize the robot or its sensing (turned off for the "off" runs).
RANDOMIZATION_KWARGS = ("friction_range", "added_mass_range_kg", "motor_strength_range",
                        "action_latency_steps", "obs_noise", "push_interval_s")


def evaluate_command(
    policy: Callable[[np.ndarray], np.ndarray],
    env_kwargs: dict,
    command: tuple[float, float, float],
    episodes: int,
    seed: int,
    episode_s: float = 10.0,
    settle_s: float = 1.0,
    servo_speed_rad_s: float = 4.7,
) -> dict:
    """Tracking and servo figures of ``policy`` at one ``command`` (see the module docstring).

    Returns:
        A dict: ``command``, ``v_xy_m_s`` and ``yaw_rate_rad_s`` (means over episodes, after
        ``settle_s``), ``err_xy_m_s``, ``err_yaw_rad_s``, ``falls``, the servo figures of
        :func:`servo_figures` over all steps (``too_fast_share``, ``too_fast_share_raw``,
        ``torque_sat_share``, ``mean_abs_dtarget_rad``), and ``smoothness``: the figures of
        :func:`smoothness_figures` after ``settle_s``, pooled over the episodes
        (:func:`pool_smoothness`).
    """
    from envs.registration import make_env

    kwargs = {k: v for k, v in env_kwargs.items() if k not in COMMAND_KWARGS}
    env = make_env("robotac/Quadruped-v0", fixed_command=tuple(command),
                   max_episode_steps=round(episode_s / _control_period_s(env_kwargs)),
                   **kwargs)
    dt = env.unwrapped.sim.control_period_s
    settle = round(settle_s / dt)
    eps = [run_episode(env, policy, seed + k) for k in range(episodes)]
    env.close()
    steps = np.array([len(ep["reward"]) for ep in eps])
    servo = [servo_figures(ep, dt, servo_speed_rad_s) for ep in eps]
    # Episodes that fell before the settle time leave no sample: NaN, and the fall is counted.
    v_settled = [ep["v_body_m_s"][settle:, :2] for ep in eps]
    w_settled = [ep["w_body_rad_s"][settle:, 2] for ep in eps]
    n_v = sum(len(x) for x in w_settled)
    v = np.concatenate(v_settled).mean(axis=0) if n_v else np.full(2, np.nan)
    w = float(np.concatenate(w_settled).mean()) if n_v else float("nan")
    return {
        "command": [float(c) for c in command],
        "v_xy_m_s": v.tolist(),
        "yaw_rate_rad_s": w,
        "err_xy_m_s": float(np.hypot(v[0] - command[0], v[1] - command[1])),
        "err_yaw_rad_s": float(abs(w - command[2])),
        "falls": sum(ep["fell"] for ep in eps),
        "episodes": episodes,
        "steps": int(steps.sum()),
        **{key: float(np.average([s[key] for s in servo], weights=steps)) for key in servo[0]},
        "smoothness": pool_smoothness([smoothness_figures(ep, dt, settle_s) for ep in eps]),
    }


def _grid_smoothness(rows: list[dict]) -> dict:
    """The grid's smoothness summary: the zero command's figures (``None`` if the grid has no
    zero command) and the largest reversal, filter-bind and > 8 Hz shares over its commands."""
    zero = [r["smoothness"] for r in rows if not any(r["command"])]
    return {
        "zero_command": pool_smoothness(zero) if zero else None,
        **{f"max_{key}": float(np.nanmax([r["smoothness"][key] for r in rows]))
           for key in ("reversal_share", "filter_bind_share", "hf_power_share")},
    }


#: Issue 10's tracking tolerances of a grid command: ``|v_xy - cmd_xy|`` [m/s] and
#: ``|w_z - cmd_yaw|`` [rad/s], after the settle time.
TOL_XY_M_S, TOL_YAW_RAD_S = 0.1, 0.2

#: Issue 26's smoothness and stillness targets: the zero command's figures (after the first
#: second, with randomization on also without the second after each push) and the largest shares
#: over the grid's commands.
SMOOTH_TARGETS = {"zero_feet_down_share_min": 0.98, "zero_mean_abs_dq_rad_s_max": 0.05,
                  "zero_mean_abs_dtarget_rad_max": 0.005, "max_reversal_share": 0.15,
                  "max_filter_bind_share": 0.05, "max_hf_power_share": 0.10}


def smooth_target_checks(smoothness: dict) -> dict[str, bool]:
    """Which of :data:`SMOOTH_TARGETS` a grid's smoothness summary (:func:`_grid_smoothness`)
    meets, one bool per target (the zero-command ones fail without a zero command in the grid:
    stillness is not shown; a NaN figure fails)."""
    z, t = smoothness["zero_command"], SMOOTH_TARGETS
    return {
        "zero_feet_down_share_min": z is not None
        and z["feet_down_share"] >= t["zero_feet_down_share_min"],
        "zero_mean_abs_dq_rad_s_max": z is not None
        and z["mean_abs_dq_rad_s"] <= t["zero_mean_abs_dq_rad_s_max"],
        "zero_mean_abs_dtarget_rad_max": z is not None
        and z["mean_abs_dtarget_rad"] <= t["zero_mean_abs_dtarget_rad_max"],
        **{k: bool(smoothness[k] <= t[k])
           for k in ("max_reversal_share", "max_filter_bind_share", "max_hf_power_share")},
    }


def smooth_targets_met(smoothness: dict) -> bool:
    """Whether a grid's smoothness summary (:func:`_grid_smoothness`) meets every one of
    :data:`SMOOTH_TARGETS` (:func:`smooth_target_checks`)."""
    return all(smooth_target_checks(smoothness).values())


def grid_commands(env_kwargs: dict, deploy_ranges: dict | None = None
                  ) -> list[tuple[float, float, float]]:
    """:data:`GRID`, each command clipped to the ranges deploy clips live commands to
    (:func:`deploy.commands.command_ranges`: the policy's ``env_kwargs["command_ranges"]`` over
    its robot's, or the narrower ``deploy_ranges`` of its ONNX metadata), so that a policy
    advertised up to vx 0.5 m/s is judged at 0.5, not at 0.6; duplicates that the clip makes are
    dropped.

    Returns:
        ``(vx [m/s], vy [m/s], yaw rate [rad/s])`` tuples in :data:`GRID` order.
    """
    from deploy.commands import command_ranges
    from envs.robot_description import DEFAULT_ROBOT, load_description

    robot = load_description(env_kwargs.get("robot") or DEFAULT_ROBOT)
    low, high = command_ranges(env_kwargs, robot.command_ranges, deploy_ranges)
    out: list[tuple[float, float, float]] = []
    for c in GRID:
        clipped = tuple(float(x) for x in np.clip(c, low, high))
        if clipped not in out:
            out.append(clipped)
    return out


def grid_summary(rows: list[dict]) -> dict:
    """The summary of a grid's :func:`evaluate_command` rows: the largest errors, falls, the
    servo shares over all the grid's steps, the mean ``|delta target|``, :func:`_grid_smoothness`,
    ``targets_met`` (issue 10's: every command within 0.1 m/s and 0.2 rad/s, no falls, too-fast
    targets <= 5 %, torque saturation <= 3 %) and ``smooth_targets_met``
    (:func:`smooth_targets_met`). A NaN error (a command whose every episode fell before the
    settle time) fails ``targets_met``."""
    steps = [r["steps"] for r in rows]  # shares over all steps of the grid
    summary = {
        "max_err_xy_m_s": float(np.max([r["err_xy_m_s"] for r in rows])),
        "max_err_yaw_rad_s": float(np.max([r["err_yaw_rad_s"] for r in rows])),
        "falls": int(sum(r["falls"] for r in rows)),
        **{key: float(np.average([r[key] for r in rows], weights=steps))
           for key in ("too_fast_share", "too_fast_share_raw", "torque_sat_share")},
        "mean_abs_dtarget_rad": float(np.mean([r["mean_abs_dtarget_rad"] for r in rows])),
        "smoothness": _grid_smoothness(rows),
    }
    summary["targets_met"] = bool(
        summary["max_err_xy_m_s"] <= TOL_XY_M_S and summary["max_err_yaw_rad_s"] <= TOL_YAW_RAD_S
        and summary["falls"] == 0 and summary["too_fast_share"] <= 0.05
        and summary["torque_sat_share"] <= 0.03
    )
    summary["smooth_targets_met"] = smooth_targets_met(summary["smoothness"])
    return summary


def evaluate_grid(policy, env_kwargs: dict, args: argparse.Namespace) -> dict:
    """:func:`evaluate_command` over :func:`grid_commands`, randomization off and (if trained)
    on."""
    settings = {"off": {k: v for k, v in env_kwargs.items() if k not in RANDOMIZATION_KWARGS}}
    if any(env_kwargs.get(k) is not None for k in RANDOMIZATION_KWARGS):
        settings["on"] = dict(env_kwargs)
    out: dict = {"settings": {}}
    for name, kwargs in settings.items():
        rows = [evaluate_command(policy, kwargs, c, args.episodes, args.seed, args.episode_s,
                                 args.settle_s, args.servo_speed_rad_s)
                for c in grid_commands(env_kwargs, getattr(args, "deploy_ranges", None))]
        summary = grid_summary(rows)
        out["settings"][name] = {"env_kwargs": kwargs, "rows": rows, "summary": summary}
        print(f"\nrandomization {name}: {args.episodes} x {args.episode_s:g} s per command")
        print("| command (vx, vy, yaw) | achieved (vx, vy, yaw) | err xy [m/s] | err yaw [rad/s] "
              "| falls | too fast | torque sat |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            c, v = r["command"], r["v_xy_m_s"]
            print(f"| ({c[0]:+.2f}, {c[1]:+.2f}, {c[2]:+.2f}) | ({v[0]:+.3f}, {v[1]:+.3f}, "
                  f"{r['yaw_rate_rad_s']:+.3f}) | {r['err_xy_m_s']:.3f} | {r['err_yaw_rad_s']:.3f}"
                  f" | {r['falls']}/{r['episodes']} | {100 * r['too_fast_share']:.1f} % | "
                  f"{100 * r['torque_sat_share']:.2f} % |")
        print("\nsmoothness and stillness after the first "
              f"{args.settle_s:g} s (too fast: all steps, raw policy / filtered target)")
        print("| command (vx, vy, yaw) | all feet down | mean \\|dq\\| [rad/s] | mean "
              "\\|d target\\| [rad] | reversals | filter binds | > 8 Hz | power [W] "
              "| too fast raw / filtered |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            c, m = r["command"], r["smoothness"]
            print(f"| ({c[0]:+.2f}, {c[1]:+.2f}, {c[2]:+.2f}) | {100 * m['feet_down_share']:.1f} % "
                  f"| {m['mean_abs_dq_rad_s']:.3f} | {m['mean_abs_dtarget_rad']:.4f} | "
                  f"{100 * m['reversal_share']:.1f} % | {100 * m['filter_bind_share']:.1f} % | "
                  f"{100 * m['hf_power_share']:.1f} % | {m['mech_power_w']:.2f} | "
                  f"{100 * r['too_fast_share_raw']:.1f} % / {100 * r['too_fast_share']:.1f} % |")
        sm = summary["smoothness"]
        if sm["zero_command"] is not None:
            print(f"zero command: {_smoothness_line(sm['zero_command'])}")
        print(f"over the grid: max reversals {100 * sm['max_reversal_share']:.1f} %, max filter "
              f"binds {100 * sm['max_filter_bind_share']:.1f} %, max > 8 Hz "
              f"{100 * sm['max_hf_power_share']:.1f} %, too fast raw "
              f"{100 * summary['too_fast_share_raw']:.1f} % (filtered "
              f"{100 * summary['too_fast_share']:.1f} %)")
        print(f"max err xy {summary['max_err_xy_m_s']:.3f} m/s, max err yaw "
              f"{summary['max_err_yaw_rad_s']:.3f} rad/s, falls {summary['falls']}, too fast "
              f"{100 * summary['too_fast_share']:.1f} %, torque sat "
              f"{100 * summary['torque_sat_share']:.2f} %, mean |d target| "
              f"{summary['mean_abs_dtarget_rad']:.4f} rad: "
              f"{'targets met' if summary['targets_met'] else 'targets NOT met'}; smoothness "
              f"targets (issue 26) {'met' if summary['smooth_targets_met'] else 'NOT met'}")
    return out


def segment_means(t_s: np.ndarray, values: np.ndarray, starts_s: np.ndarray, end_s: float,
                  skip_s: float = 1.0) -> np.ndarray:
    """Mean of ``values`` over each segment of a command schedule, its first ``skip_s`` left out.

    Segment ``i`` is ``[starts_s[i] + skip_s, starts_s[i + 1])``, the last one ends at ``end_s``.

    Args:
        t_s: ``(N,)`` time of each sample since the start of the schedule [s].
        values: ``(N, k)`` samples, e.g. body-frame (vx [m/s], vy [m/s], yaw rate [rad/s]).
        starts_s: ``(n,)`` segment start times [s], strictly increasing.
        end_s: End of the last segment [s].
        skip_s: Transition left out at the start of each segment [s].

    Returns:
        ``(n, k)`` float64 means; NaN for a segment without samples (the run ended before it).
    """
    t = np.asarray(t_s, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64).reshape(len(t), -1)
    starts = np.asarray(starts_s, dtype=np.float64)
    ends = np.append(starts[1:], end_s)
    out = np.full((len(starts), v.shape[1]), np.nan)
    for i, (a, b) in enumerate(zip(starts + skip_s, ends, strict=True)):
        sel = (t >= a) & (t < b)
        if sel.any():
            out[i] = v[sel].mean(axis=0)
    return out


def run_schedule(
    policy: Callable[[np.ndarray], np.ndarray],
    env_kwargs: dict,
    t_starts_s: np.ndarray,
    commands: np.ndarray,
    seconds: float,
    seed: int,
    render_every: int = 0,
    size: tuple[int, int] = (320, 240),
) -> dict:
    """One env episode that follows a piecewise-constant command schedule.

    The policy's observation at control step ``k`` carries the schedule's command at ``t = k *
    dt`` (the deploy loop polls its schedule at the time since its policy phase began, the
    same clock); the env gets each command just before the step whose observation must carry
    it (:meth:`~envs.quadruped.QuadrupedEnv.set_command`), the first one through ``reset``.

    Args:
        policy: ``obs (45,) float32 -> action (12,)`` [rad].
        env_kwargs: Env keyword arguments (the command ones are dropped: the schedule sets it).
        t_starts_s: ``(n,)`` row start times [s], strictly increasing.
        commands: ``(n, 3)`` (vx [m/s], vy [m/s], yaw rate [rad/s]) of each row; zero before
            the first row.
        seconds: Episode length [s].
        seed: Reset seed.
        render_every: Keep a frame every this many steps (0: no rendering).
        size: ``(width, height)`` of the frames [px].

    Returns:
        ``t_s`` (N,) step times [s], ``commands`` (N, 3) command of each step, ``vel`` (N, 3)
        body-frame (vx, vy, yaw rate) after each step, ``fell`` (bool), ``frames`` (list of
        ``(height, width, 3)`` uint8).
    """
    from envs.registration import make_env

    dt = _control_period_s(env_kwargs)
    n = int(round(seconds / dt))
    kwargs = {k: v for k, v in env_kwargs.items() if k not in COMMAND_KWARGS}
    if render_every:
        kwargs.update(render_mode="rgb_array", width=size[0], height=size[1])
    env = make_env("robotac/Quadruped-v0", max_episode_steps=n + 1, **kwargs)
    t = np.arange(n) * dt
    starts = np.asarray(t_starts_s, dtype=np.float64)
    idx = np.searchsorted(starts, t + 1e-9, side="right") - 1  # the row in force at each step
    cmds = np.where((idx >= 0)[:, None], np.asarray(commands, dtype=np.float64)[idx], 0.0)
    frames, vel, fell = [], [], False
    try:
        obs, _ = env.reset(seed=seed, options={"command": cmds[0]})
        for k in range(n):
            if render_every and k % render_every == 0:
                frames.append(env.render())
            action = policy(obs)
            if k + 1 < n:
                env.unwrapped.set_command(cmds[k + 1])  # carried by the obs this step returns
            obs, _, terminated, truncated, info = env.step(action)
            vel.append([*info["base_lin_vel_m_s"][:2], info["base_ang_vel_rad_s"][2]])
            if terminated or truncated:
                fell = bool(terminated)
                break
    finally:
        env.close()
    m = len(vel)
    return {"t_s": t[:m], "commands": cmds[:m], "vel": np.asarray(vel, dtype=np.float64),
            "fell": fell, "frames": frames}


def evaluate_schedule(policy, env_kwargs: dict, args: argparse.Namespace) -> dict:
    """``--schedule``: one episode along the schedule, the segment table, the video if asked."""
    from deploy.commands import ScheduleCommand
    from envs.rendering import gl_backend_problem

    schedule = ScheduleCommand(args.schedule)
    end_s = schedule.duration_s + args.schedule_tail_s
    kwargs = {k: v for k, v in env_kwargs.items() if k not in RANDOMIZATION_KWARGS}
    if args.latency_steps:
        kwargs["action_latency_steps"] = (args.latency_steps, args.latency_steps)
    every = 0
    if args.video:
        problem = gl_backend_problem()
        if problem is not None:
            print(f"no video: {problem}")
        else:
            every = 2
    try:
        res = run_schedule(policy, kwargs, schedule.t_s, schedule.commands, end_s, args.seed,
                           render_every=every, size=(args.width, args.height))
    except RuntimeError as exc:  # rendering failed after all: run again without it
        if not every:
            raise
        print(f"no video: {exc}")
        res = run_schedule(policy, kwargs, schedule.t_s, schedule.commands, end_s, args.seed)
    means = segment_means(res["t_s"], res["vel"], schedule.t_s, end_s, args.settle_s)
    rows = [{"t_s": [float(a), float(b)], "command": c.tolist(), "achieved": m.tolist()}
            for a, b, c, m in zip(schedule.t_s, np.append(schedule.t_s[1:], end_s),
                                  schedule.commands, means, strict=True)]
    fell = f"; FELL after {len(res['t_s']) * 0.02:.2f} s" if res["fell"] else ""
    latency = (f", action latency {args.latency_steps} step(s)" if args.latency_steps else "")
    print(f"schedule {args.schedule}: {end_s:g} s, seed {args.seed}, randomization off{latency}, "
          f"first {args.settle_s:g} s of each segment left out{fell}")
    print("| segment [s] | command (vx, vy, yaw) | achieved (vx, vy, yaw) |")
    print("|---|---|---|")
    for r in rows:
        c, m = r["command"], r["achieved"]
        print(f"| {r['t_s'][0]:g}-{r['t_s'][1]:g} | ({c[0]:+.2f}, {c[1]:+.2f}, {c[2]:+.2f}) | "
              f"({m[0]:+.3f}, {m[1]:+.3f}, {m[2]:+.3f}) |")
    out = {"schedule": str(args.schedule), "seconds": end_s, "seed": args.seed,
           "latency_steps": args.latency_steps,
           "settle_s": args.settle_s, "fell": res["fell"], "steps": len(res["t_s"]),
           "segments": rows, "video": None}
    if res["frames"]:
        import imageio.v2 as imageio

        args.video.parent.mkdir(parents=True, exist_ok=True)
        fps = round(1.0 / (0.02 * every))
        imageio.mimsave(args.video, res["frames"], fps=fps)
        out["video"] = str(args.video)
        print(f"video: {args.video} ({len(res['frames'])} frames, {args.width}x{args.height}, "
              f"{fps} fps)")
    return out


def plot_grid(result: dict, path: Path) -> None:
    """Commanded against achieved: (vx, vy) arrows and yaw rate, one colour per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_xy, ax_yaw) = plt.subplots(1, 2, figsize=(11, 4.8))
    for (name, res), color in zip(result["settings"].items(), ("tab:blue", "tab:orange"),
                                  strict=False):
        rows = res["rows"]
        c = np.array([r["command"] for r in rows])
        v = np.array([r["v_xy_m_s"] for r in rows])
        w = np.array([r["yaw_rate_rad_s"] for r in rows])
        ax_xy.scatter(c[:, 0], c[:, 1], marker="x", color="k", zorder=3)
        ax_xy.quiver(c[:, 0], c[:, 1], v[:, 0] - c[:, 0], v[:, 1] - c[:, 1], angles="xy",
                     scale_units="xy", scale=1, color=color, width=0.004,
                     label=f"achieved, randomization {name}")
        ax_yaw.scatter(c[:, 2], w, color=color, label=f"randomization {name}", zorder=3)
    ax_xy.set(xlabel="vx [m/s]", ylabel="vy [m/s]",
              title="commanded (x) -> achieved (arrow tip)")
    ax_xy.legend(fontsize=8)
    ax_xy.set_aspect("equal")
    lim = [-1.1, 1.1]
    ax_yaw.plot(lim, lim, color="0.6", lw=1)
    ax_yaw.fill_between(lim, [lim[0] - 0.2, lim[1] - 0.2], [lim[0] + 0.2, lim[1] + 0.2],
                        color="0.9", label="target +-0.2 rad/s", zorder=0)
    ax_yaw.set(xlabel="commanded yaw rate [rad/s]", ylabel="achieved yaw rate [rad/s]",
               title="yaw rate")
    ax_yaw.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from robotac.checkpoint import which_arg

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="training run directory (torch actor)")
    src.add_argument("--onnx", help="exported .onnx policy (onnxruntime)")
    p.add_argument("--which", type=which_arg, default="best",
                   help="checkpoint: best, latest or step_N (kept with keep_every)")
    p.add_argument("--command", default="0.5,0,0", help="VX,VY,YAW_RATE [m/s, m/s, rad/s]")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=1000, help="seed of the first episode")
    p.add_argument("--tolerance", type=float, default=0.1, help="allowed |mean vx - VX| [m/s]")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    p.add_argument("--grid", action="store_true", help="evaluate the command grid (see above)")
    p.add_argument("--episode-s", type=float, default=10.0, help="--grid: episode length [s]")
    p.add_argument("--settle-s", type=float, default=1.0,
                   help="start left out of the tracking (--grid) and smoothness figures [s]")
    p.add_argument("--servo-speed-rad-s", type=float, default=None,
                   help="--grid: servo no-load speed [rad/s] (default: the policy's robot's "
                        "servo.no_load_speed_rad_s; STS3215: 4.7)")
    p.add_argument("--plot", type=Path, default=None, help="--grid: commanded vs achieved PNG")
    p.add_argument("--schedule", type=Path, default=None,
                   help="follow this command schedule (CSV t_s,vx,vy,yaw_rate; see above)")
    p.add_argument("--schedule-tail-s", type=float, default=4.0,
                   help="--schedule: how long the last row lasts [s]")
    p.add_argument("--latency-steps", type=int, default=0,
                   help="--schedule: a fixed action latency of this many control steps (env "
                        "kwarg action_latency_steps=(N, N); 0-2), the rest of the randomization "
                        "off: what a deploy loop that observes a period-old state sees (N=1)")
    p.add_argument("--video", type=Path, default=None, help="--schedule: write an mp4 here")
    p.add_argument("--width", type=int, default=320, help="--video: width [px]")
    p.add_argument("--height", type=int, default=240, help="--video: height [px]")
    args = p.parse_args(argv)
    if args.video and not args.schedule:
        p.error("--video needs --schedule FILE")
    if args.latency_steps and not args.schedule:
        p.error("--latency-steps needs --schedule FILE")
    if not 0 <= args.latency_steps <= 2:
        p.error(f"--latency-steps must be 0, 1 or 2 control steps, got {args.latency_steps}")
    if args.schedule:
        policy, env_kwargs = load_policy_fn(args)
        result = evaluate_schedule(policy, env_kwargs, args)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1) + "\n")
        return 0
    if args.grid:
        policy, env_kwargs = load_policy_fn(args)
        result = evaluate_grid(policy, env_kwargs, args)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1) + "\n")
        if args.plot:
            plot_grid(result, args.plot)
        return 0 if all(s["summary"]["targets_met"] for s in result["settings"].values()) else 1
    command = tuple(float(x) for x in args.command.split(","))
    if len(command) != 3:
        p.error("--command needs three numbers VX,VY,YAW_RATE")

    policy, env_kwargs = load_policy_fn(args)
    rows = evaluate_gait(policy, env_kwargs, command, args.episodes, args.seed,
                         args.servo_speed_rad_s, args.settle_s)
    for r in rows:
        print(f"episode {r['episode']}: return {r['return']:8.1f}  steps {r['steps']:4d}  "
              f"fell {str(r['fell']):5s}  mean vx {r['mean_vx_body_m_s']:+.3f} m/s  "
              f"world speed {r['world_x_speed_m_s']:+.3f} m/s  "
              f"too fast {100 * r['too_fast_share']:.1f} % (raw policy "
              f"{100 * r['too_fast_share_raw']:.1f} %)  "
              f"torque sat {100 * r['torque_sat_share']:.2f} %")
        print(f"  after {args.settle_s:g} s: {_smoothness_line(r['smoothness'])}")
    mean_vx = float(np.mean([r["mean_vx_body_m_s"] for r in rows]))
    falls = sum(r["fell"] for r in rows)
    ok = abs(mean_vx - command[0]) <= args.tolerance and falls == 0
    summary = {
        "command": command,
        "episodes": args.episodes,
        "mean_vx_body_m_s": mean_vx,
        "mean_world_x_speed_m_s": float(np.mean([r["world_x_speed_m_s"] for r in rows])),
        "falls": falls,
        "mean_return": float(np.mean([r["return"] for r in rows])),
        "too_fast_share": float(np.average([r["too_fast_share"] for r in rows],
                                           weights=[r["steps"] for r in rows])),
        "too_fast_share_raw": float(np.average([r["too_fast_share_raw"] for r in rows],
                                               weights=[r["steps"] for r in rows])),
        "torque_sat_share": float(np.average([r["torque_sat_share"] for r in rows],
                                             weights=[r["steps"] for r in rows])),
        "smoothness": pool_smoothness([r["smoothness"] for r in rows]),
        "criterion_met": ok,
        "episodes_detail": rows,
    }
    print(f"mean forward velocity {mean_vx:+.3f} m/s (command {command[0]:+.2f}), falls "
          f"{falls}/{args.episodes}: {'criterion met' if ok else 'criterion NOT met'}")
    print(f"all episodes after {args.settle_s:g} s: {_smoothness_line(summary['smoothness'])}; "
          f"too fast {100 * summary['too_fast_share']:.1f} % (raw policy "
          f"{100 * summary['too_fast_share_raw']:.1f} %)")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
