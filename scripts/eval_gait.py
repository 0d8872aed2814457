"""Does a quadruped policy walk? Deterministic episodes at a fixed velocity command.

Runs ``--episodes`` deterministic episodes of ``robotac/Quadruped-v0`` at the command
``--command VX,VY,YAW`` (default 0.5 m/s forward) with either a training run's actor (torch,
``--run DIR``) or an exported ONNX file (onnxruntime, ``--onnx FILE``), and prints per episode and
over all: the mean body-frame forward velocity [m/s] (the quantity the command specifies),
the world-frame forward speed from the displacement [m/s], the episode length, whether the
robot fell (terminated), and the servo figures of the grid (below: too-fast targets, torque
saturation). The issue-5 criterion is: mean forward velocity within 0.1 m/s of the
command and no falls. Exit status 0 when it is met, 1 when not.

With ``--grid`` it evaluates a grid of commands that covers the trained ranges instead (forward,
backward, sideways, turning, standing and combinations; :data:`GRID`), with domain randomization
off and then on (the ranges the policy was trained with), ``--episodes`` episodes of
``--episode-s`` (10) s each, and reports per command and setting:

- tracking: the mean body-frame velocity (vx, vy) and yaw rate after a ``--settle-s`` (1 s) start,
  ``|v_xy - cmd_xy|`` [m/s] and ``|w_z - cmd_yaw|`` [rad/s], and falls;
- servo figures: the share of steps in which some servo target moves faster than the servo's
  no-load speed (``--servo-speed-rad-s``, 4.7 rad/s for the STS3215), the share of servo-steps at
  the torque limit (``|tau| >= 0.98 * limit``), and the mean ``|delta target|`` per step [rad].

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
    """Return ``obs (45,) float32 -> action (12,)`` and the env kwargs the policy was trained on."""
    if args.onnx:
        from deploy.policy import OnnxPolicy

        policy = OnnxPolicy(args.onnx)
        return policy, dict(policy.metadata.get("env_kwargs") or {})
    from robotac.checkpoint import load_policy

    bundle = load_policy(args.run, args.which)
    return bundle.act, dict(bundle.env_kwargs)


#: The env kwargs that choose the command: dropped from a policy's ``env_kwargs`` wherever the
#: evaluation sets the command itself (with ``fixed_command`` the others have no effect).
COMMAND_KWARGS = ("fixed_command", "command_ranges", "command_resample_s", "standing_share")


def _servo_step(info: dict, prev_target: np.ndarray, limit: np.ndarray, dt: float,
                servo_speed_rad_s: float) -> tuple[int, int, np.ndarray]:
    """One step's servo figures: ``(too_fast, saturated, |delta target|)``.

    ``too_fast`` is 1 when some target moved faster than ``servo_speed_rad_s`` since
    ``prev_target`` (``dt`` [s] apart), ``saturated`` counts the servos at 0.98 of their torque
    ``limit`` [N m] or more, and ``|delta target|`` is ``(n_joints,)`` [rad].
    """
    d = np.abs(info["servo_target_rad"] - prev_target)
    too_fast = int(np.any(d / dt > servo_speed_rad_s))
    return too_fast, int(np.sum(np.abs(info["joint_torques_nm"]) >= 0.98 * limit)), d


def evaluate_gait(
    policy: Callable[[np.ndarray], np.ndarray],
    env_kwargs: dict,
    command: tuple[float, float, float],
    episodes: int,
    seed: int,
    servo_speed_rad_s: float = 4.7,
) -> list[dict]:
    """Per-episode gait figures (see the module docstring) at a fixed ``command``.

    Each episode's dict also holds the servo figures of :func:`evaluate_command`:
    ``too_fast_share`` (steps in which some target moves faster than ``servo_speed_rad_s``) and
    ``torque_sat_share`` (servo-steps at 0.98 of the torque limit or more).
    """
    from envs.registration import make_env

    kwargs = {k: v for k, v in env_kwargs.items() if k not in COMMAND_KWARGS}
    env = make_env("robotac/Quadruped-v0", fixed_command=tuple(command), **kwargs)
    sim = env.unwrapped.sim
    dt = sim.control_period_s
    out = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        x0 = sim.data.qpos[0]
        prev_target = sim.ctrl_servo_rad.copy()
        limit = sim.model.actuator_forcerange[sim.actuator_ids, 1].copy()
        vx, steps, ret, fell, too_fast, sat = [], 0, 0.0, False, 0, 0
        while True:
            obs, reward, terminated, truncated, info = env.step(policy(obs))
            vx.append(float(info["base_lin_vel_m_s"][0]))
            fast, n_sat, _ = _servo_step(info, prev_target, limit, dt, servo_speed_rad_s)
            too_fast, sat, prev_target = too_fast + fast, sat + n_sat, info["servo_target_rad"]
            ret += float(reward)
            steps += 1
            if terminated or truncated:
                fell = bool(terminated)
                break
        x1 = sim.data.qpos[0]
        out.append({
            "episode": k,
            "return": ret,
            "steps": steps,
            "fell": fell,
            "mean_vx_body_m_s": float(np.mean(vx)),
            "world_x_speed_m_s": float((x1 - x0) / (steps * dt)),
            "too_fast_share": too_fast / steps,
            "torque_sat_share": sat / (steps * limit.size),
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
        ``settle_s``), ``err_xy_m_s``, ``err_yaw_rad_s``, ``falls``, ``too_fast_share``,
        ``torque_sat_share``, ``mean_abs_dtarget_rad``.
    """
    from envs.interface import QUADRUPED_INTERFACE
    from envs.registration import make_env

    kwargs = {k: v for k, v in env_kwargs.items() if k not in COMMAND_KWARGS}
    env = make_env("robotac/Quadruped-v0", fixed_command=tuple(command),
                   max_episode_steps=round(episode_s / QUADRUPED_INTERFACE.control_period_s),
                   **kwargs)
    sim = env.unwrapped.sim
    dt = sim.control_period_s
    settle = round(settle_s / dt)
    v_sum, w_sum, n_v = np.zeros(2), 0.0, 0
    falls, steps, too_fast, sat, servo_steps, dtarget = 0, 0, 0, 0, 0, 0.0
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        prev_target = sim.ctrl_servo_rad.copy()
        # Torque limits change only at reset (motor-strength randomization): read them once.
        limit = sim.model.actuator_forcerange[sim.actuator_ids, 1].copy()
        t = 0
        while True:
            obs, _, terminated, truncated, info = env.step(policy(obs))
            fast, n_sat, d = _servo_step(info, prev_target, limit, dt, servo_speed_rad_s)
            prev_target = info["servo_target_rad"]
            too_fast += fast
            dtarget += float(d.mean())
            sat += n_sat
            servo_steps += d.size
            steps += 1
            t += 1
            if t > settle:
                v_sum += info["base_lin_vel_m_s"][:2]
                w_sum += float(info["base_ang_vel_rad_s"][2])
                n_v += 1
            if terminated or truncated:
                falls += int(terminated)
                break
    env.close()
    # Episodes that fell before the settle time leave no sample: NaN, and the fall is counted.
    v = v_sum / n_v if n_v else np.full(2, np.nan)
    w = w_sum / n_v if n_v else float("nan")
    return {
        "command": [float(c) for c in command],
        "v_xy_m_s": v.tolist(),
        "yaw_rate_rad_s": w,
        "err_xy_m_s": float(np.hypot(v[0] - command[0], v[1] - command[1])),
        "err_yaw_rad_s": float(abs(w - command[2])),
        "falls": falls,
        "episodes": episodes,
        "steps": steps,
        "too_fast_share": too_fast / steps,
        "torque_sat_share": sat / servo_steps,
        "mean_abs_dtarget_rad": dtarget / steps,
    }


def evaluate_grid(policy, env_kwargs: dict, args: argparse.Namespace) -> dict:
    """:func:`evaluate_command` over :data:`GRID`, randomization off and (if trained) on."""
    settings = {"off": {k: v for k, v in env_kwargs.items() if k not in RANDOMIZATION_KWARGS}}
    if any(env_kwargs.get(k) is not None for k in RANDOMIZATION_KWARGS):
        settings["on"] = dict(env_kwargs)
    out: dict = {"settings": {}}
    for name, kwargs in settings.items():
        rows = [evaluate_command(policy, kwargs, c, args.episodes, args.seed, args.episode_s,
                                 args.settle_s, args.servo_speed_rad_s) for c in GRID]
        steps = [r["steps"] for r in rows]  # shares over all steps of the grid
        summary = {
            "max_err_xy_m_s": float(np.max([r["err_xy_m_s"] for r in rows])),
            "max_err_yaw_rad_s": float(np.max([r["err_yaw_rad_s"] for r in rows])),
            "falls": sum(r["falls"] for r in rows),
            "too_fast_share": float(np.average([r["too_fast_share"] for r in rows],
                                               weights=steps)),
            "torque_sat_share": float(np.average([r["torque_sat_share"] for r in rows],
                                                 weights=steps)),
            "mean_abs_dtarget_rad": float(np.mean([r["mean_abs_dtarget_rad"] for r in rows])),
        }
        summary["targets_met"] = bool(
            summary["max_err_xy_m_s"] <= 0.1 and summary["max_err_yaw_rad_s"] <= 0.2
            and summary["falls"] == 0 and summary["too_fast_share"] <= 0.05
            and summary["torque_sat_share"] <= 0.03
        )
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
        print(f"max err xy {summary['max_err_xy_m_s']:.3f} m/s, max err yaw "
              f"{summary['max_err_yaw_rad_s']:.3f} rad/s, falls {summary['falls']}, too fast "
              f"{100 * summary['too_fast_share']:.1f} %, torque sat "
              f"{100 * summary['torque_sat_share']:.2f} %, mean |d target| "
              f"{summary['mean_abs_dtarget_rad']:.4f} rad: "
              f"{'targets met' if summary['targets_met'] else 'targets NOT met'}")
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
    from envs.interface import QUADRUPED_INTERFACE
    from envs.registration import make_env

    dt = QUADRUPED_INTERFACE.control_period_s
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
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="training run directory (torch actor)")
    src.add_argument("--onnx", help="exported .onnx policy (onnxruntime)")
    p.add_argument("--which", choices=("best", "latest"), default="best")
    p.add_argument("--command", default="0.5,0,0", help="VX,VY,YAW_RATE [m/s, m/s, rad/s]")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=1000, help="seed of the first episode")
    p.add_argument("--tolerance", type=float, default=0.1, help="allowed |mean vx - VX| [m/s]")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    p.add_argument("--grid", action="store_true", help="evaluate the command grid (see above)")
    p.add_argument("--episode-s", type=float, default=10.0, help="--grid: episode length [s]")
    p.add_argument("--settle-s", type=float, default=1.0, help="--grid: ignored start [s]")
    p.add_argument("--servo-speed-rad-s", type=float, default=4.7,
                   help="--grid: servo no-load speed [rad/s] (STS3215: 4.7)")
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
                         args.servo_speed_rad_s)
    for r in rows:
        print(f"episode {r['episode']}: return {r['return']:8.1f}  steps {r['steps']:4d}  "
              f"fell {str(r['fell']):5s}  mean vx {r['mean_vx_body_m_s']:+.3f} m/s  "
              f"world speed {r['world_x_speed_m_s']:+.3f} m/s  "
              f"too fast {100 * r['too_fast_share']:.1f} %  "
              f"torque sat {100 * r['torque_sat_share']:.2f} %")
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
        "torque_sat_share": float(np.average([r["torque_sat_share"] for r in rows],
                                             weights=[r["steps"] for r in rows])),
        "criterion_met": ok,
        "episodes_detail": rows,
    }
    print(f"mean forward velocity {mean_vx:+.3f} m/s (command {command[0]:+.2f}), falls "
          f"{falls}/{args.episodes}: {'criterion met' if ok else 'criterion NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
