#!/usr/bin/env python
"""Deploy benchmarks: inference latency, loop timing against the virtual robot, sim-to-sim.

    python scripts/bench_deploy.py                      # full: 30 s per rate
    python scripts/bench_deploy.py --seconds 5          # shorter loop runs
    python scripts/bench_deploy.py --policy policies/pretrained/quadruped_sac.onnx --run RUN_DIR
    python scripts/bench_deploy.py --json out.json      # also write the figures as JSON

1. Inference, batch 1, one thread each, same process and run: onnxruntime on the exported file
   vs the torch actor (normalizer + ``actor.deterministic``), numpy in and out for both; p50/p99
   and the ratio (target: onnxruntime at least 2x faster at p99).
2. The deploy loop against ``python -m deploy.sim.virtual_robot`` (real-time physics) through a
   pty at 50, 100 and 200 Hz: achieved rate, period p99 jitter ``|period - nominal|``, deadline
   misses (target at 200 Hz: p99 jitter < 1 ms, no misses). The loop runs a standing policy (its
   output is the default pose, slightly observation dependent) so the robot stays up at any
   rate; ``--loop-policy`` runs another.
3. Sim-to-sim (needs a trained policy, ``--policy``): mean body-frame forward velocity over the
   policy phase, deploy loop + virtual robot (stepped and real-time physics) vs the same ONNX
   policy in the Gymnasium env, at ``--command`` (default 0.5,0,0) (target: within 10 %).
   With ``--schedule FILE`` (CSV rows ``t_s,vx,vy,yaw_rate``, e.g.
   ``docs/data/command_schedule_demo.csv``; needs a policy trained on sampled commands) it
   follows that schedule instead (:func:`sim_to_sim_schedule`): the env with the same ONNX
   policy (randomization off, seeds 0-2) vs ``run_deploy`` with the schedule as its command
   source at the deploy defaults (``LoopConfig``/``SafetyConfig``: ramp 2 s, hold 1 s, 15 rad/s,
   command shaping 1 m/s^2, 2 rad/s^2), stepped and real time. Per segment (its first
   ``--settle-s`` left out) the mean body-frame vx, vy and yaw rate; a command component that
   is not zero passes when ``|deploy - env| / max(|env|, 0.05) <= 10 %``. ``--stale-peer``
   adds a real-time run with the loop's ``fresh_state`` off (it then observes the STATE that
   answered the previous COMMAND, a period old), as a same-run peer.

The actor of part 1 is the SAC actor of ``--run`` when given, else a freshly initialised SAC
actor of the trainer's default size (45 -> 256 -> 256 -> 24); inference time does not depend on
the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _pcts(x: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(x, 50)), float(np.percentile(x, 99))


def bench_inference(n: int, run: str | None, tmp: Path) -> dict:
    import torch

    from deploy.policy import OnnxPolicy
    from envs.interface import QUADRUPED_INTERFACE
    from policies.export import export_onnx, make_metadata
    from policies.networks import RunningNorm, SquashedGaussianActor, deterministic_action

    torch.set_num_threads(1)
    if run:
        from robotac.checkpoint import load_policy
        from robotac.export import export_bundle

        bundle = load_policy(run)
        actor, norm = bundle.actor, bundle.obs_norm
        path = export_bundle(bundle, tmp / "bench.onnx")
    else:
        arr = QUADRUPED_INTERFACE.arrays()
        torch.manual_seed(0)
        actor = SquashedGaussianActor(45, arr["action_low_rad"], arr["action_high_rad"]).eval()
        norm = RunningNorm(45)
        norm.update(torch.randn(1000, 45, dtype=torch.float64))
        meta = make_metadata(env_id="robotac/Quadruped-v0", algo="sac", obs_dim=45,
                             action_low=arr["action_low_rad"], action_high=arr["action_high_rad"],
                             interface=QUADRUPED_INTERFACE.to_dict(), robotac_version="bench")
        path = export_onnx(actor, norm, tmp / "bench.onnx", meta)
    ort_policy = OnnxPolicy(path, intra_op_threads=1)
    obs = np.random.default_rng(0).standard_normal((n, 45)).astype(np.float32)

    def torch_call(o: np.ndarray) -> np.ndarray:
        return deterministic_action(actor, norm, o)

    for _ in range(200):  # warm up both
        ort_policy(obs[0])
        torch_call(obs[0])
    t_ort = np.empty(n)
    t_torch = np.empty(n)
    for i in range(n):  # interleaved, so both see the same machine load
        t0 = time.perf_counter()
        ort_policy(obs[i])
        t1 = time.perf_counter()
        torch_call(obs[i])
        t2 = time.perf_counter()
        t_ort[i], t_torch[i] = t1 - t0, t2 - t1
    o50, o99 = _pcts(t_ort * 1e3)
    t50, t99 = _pcts(t_torch * 1e3)
    return {"n": n, "ort_ms_p50": o50, "ort_ms_p99": o99, "torch_ms_p50": t50,
            "torch_ms_p99": t99, "ratio_p50": t50 / o50, "ratio_p99": t99 / o99}


def _start_robot(extra: list[str], report: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "deploy.sim.virtual_robot", "--report",
                             str(report), *extra], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        raise RuntimeError(f"virtual robot did not start: {line!r}")
    return proc, line.split()[1]


def _stop_robot(proc: subprocess.Popen, report: Path) -> dict:
    proc.terminate()
    proc.wait(timeout=10)
    return json.loads(report.read_text())


def policy_phase_records(rec: dict, phase: np.ndarray,
                         keys: tuple[str, ...] = ("vx_body_m_s",)) -> np.ndarray:
    """The robot's records of the loop's policy phase, aligned from the first.

    The virtual robot (and the STS emulator) records one row per accepted position command
    from the ramp's first: first the loop's logged steps (ramp, hold and policy phase, one
    command each), then the stop's (the lowering, ``lower_s`` of them at the loop's rate). The
    last ``n`` records are therefore not the policy phase: taking them shifted every window by
    the lowering's second and mixed the lowering into the run (the sim-to-sim rows measured a
    correct deploy loop 25-40 % off after the lowering came in, 2b11a2e).

    Args:
        rec: The robot's record (its JSON report), one list per key.
        phase: ``(T,)`` the loop log's ``phase`` column (2: the policy phase).
        keys: Record lists to stack, in this column order.

    Returns:
        ``(n, len(keys))`` float64, the records of the policy-phase steps in order; fewer than
        the policy-phase steps only where the robot recorded fewer commands than the loop
        logged (lost commands), cut at the end.
    """
    v = np.column_stack([np.asarray(rec[k], dtype=np.float64) for k in keys])
    phase = np.asarray(phase)
    n = min(len(phase), len(v))
    return v[:n][phase[:n] == 2]


def run_loop(policy_path: Path, rate_hz: float, seconds: float, command, mode: str,
             tmp: Path, safety_kw: dict | None = None, rt_priority: int = 0,
             fresh_state: bool = True) -> tuple[dict, dict, dict]:
    """``run_deploy`` against a fresh virtual robot: ``(summary, robot record, per-step log)``
    (:func:`policy_phase_records` aligns the two)."""
    from deploy.link import SerialLink
    from deploy.loop import LoopConfig, run_deploy
    from deploy.policy import OnnxPolicy
    from deploy.safety import SafetyConfig

    report = tmp / f"robot_{mode}_{rate_hz:g}.json"
    proc, port = _start_robot(["--mode", mode, "--rt-priority", str(max(rt_priority - 1, 0))],
                              report)
    try:
        cfg = LoopConfig(rate_hz=rate_hz, duration_s=seconds, command=tuple(command),
                         safety=SafetyConfig(**(safety_kw or {"ramp_s": 1.0, "hold_s": 0.5})),
                         rt_priority=rt_priority, fresh_state=fresh_state)
        with SerialLink(port) as link:
            res = run_deploy(link, OnnxPolicy(policy_path), cfg)
    finally:
        rec = _stop_robot(proc, report)
    s = dict(res.summary)
    s["n_policy_steps"] = int(np.sum(res.log["phase"] == 2))
    return s, rec, res.log


def standing_policy(tmp: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests" / "deploy"))
    from deploy_test_helpers import make_standing_policy

    return make_standing_policy(tmp / "standing.onnx")


def env_vx(policy_path: Path, seconds: float, command) -> dict:
    """Forward velocity of an exported policy in the gym env: 3 seeded episodes of ``seconds``.

    Returns:
        ``env_vx_m_s`` (mean body-frame vx, the first 20 % of each episode skipped),
        ``env_falls`` and ``env_lengths`` (steps per episode).
    """
    from deploy.policy import OnnxPolicy
    from robotac.env_utils import make_env

    pol = OnnxPolicy(policy_path)
    kwargs = dict(pol.metadata.get("env_kwargs") or {})
    kwargs["fixed_command"] = tuple(command)
    env = make_env(pol.metadata["env_id"], **kwargs)
    steps = int(round(seconds / pol.interface.control_period_s))
    vx, falls, lengths = [], 0, []
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        ep = []
        for _ in range(steps):
            obs, _, terminated, truncated, info = env.step(pol(obs))
            ep.append(float(info["base_lin_vel_m_s"][0]))
            if terminated or truncated:
                falls += int(terminated)
                break
        lengths.append(len(ep))
        vx.append(float(np.mean(ep[len(ep) // 5:])))  # skip the first 20 % (start-up)
    env.close()
    return {"env_vx_m_s": float(np.mean(vx)), "env_falls": falls, "env_lengths": lengths}


def sim_to_sim(policy_path: Path, seconds: float, command, tmp: Path,
               max_rate_rad_s: float) -> dict:
    """Forward velocity: gym env vs deploy loop + virtual robot (stepped and real time)."""
    from deploy.policy import OnnxPolicy

    pol = OnnxPolicy(policy_path)
    out = {"command": list(command), "seconds": seconds, "max_rate_rad_s": max_rate_rad_s,
           **env_vx(policy_path, seconds, command)}
    for mode in ("stepped", "realtime"):
        s, rec, log = run_loop(policy_path, 1.0 / pol.interface.control_period_s, seconds,
                               command, mode, tmp, {"ramp_s": 1.0, "hold_s": 0.5,
                                                    "max_rate_rad_s": max_rate_rad_s})
        v = policy_phase_records(rec, log["phase"])[:, 0]
        v = v[len(v) // 5:]
        out[f"deploy_{mode}_vx_m_s"] = float(np.mean(v)) if len(v) else float("nan")
        out[f"deploy_{mode}_fault"] = s["fault"]
        out[f"deploy_{mode}_clamped_steps"] = s["clamped_steps"]
        out[f"deploy_{mode}_rate_limited_steps"] = s["rate_limited_steps"]
        out[f"deploy_{mode}_rel_diff"] = (abs(out[f"deploy_{mode}_vx_m_s"] - out["env_vx_m_s"])
                                          / max(abs(out["env_vx_m_s"]), 1e-6))
    return out


def compare_segments(commands: np.ndarray, env: np.ndarray, deploy: np.ndarray,
                     tol: float = 0.10, floor: float = 0.05) -> tuple[list[dict], bool]:
    """Judge deploy against env per schedule segment and command component.

    ``rel = |deploy - env| / max(|env|, floor)`` per component; a component whose command is not
    zero passes when ``rel <= tol`` (a NaN, a run that ended before the segment, fails); zero
    components are reported, not judged (a standing segment is not judged at all).

    Args:
        commands: ``(n, 3)`` command of each segment (vx [m/s], vy [m/s], yaw rate [rad/s]).
        env, deploy: ``(n, 3)`` mean body-frame (vx, vy, yaw rate) per segment.
        tol: Largest relative difference that passes.
        floor: Smallest ``|env|`` the difference is divided by (a near-zero env value would
            make any difference huge), in the components' units.

    Returns:
        ``(rows, ok)``: per segment ``{"command", "env", "deploy", "rel_diff", "judged",
        "ok"}`` (``ok`` is ``None`` for a segment without a judged component), and whether
        every judged component passed.
    """
    c = np.asarray(commands, dtype=np.float64).reshape(-1, 3)
    e = np.asarray(env, dtype=np.float64).reshape(c.shape)
    d = np.asarray(deploy, dtype=np.float64).reshape(c.shape)
    rel = np.abs(d - e) / np.maximum(np.abs(e), floor)
    judged = c != 0.0
    passed = np.where(judged, rel <= tol, True)  # NaN <= tol is False
    rows = [{"command": c[i].tolist(), "env": e[i].tolist(), "deploy": d[i].tolist(),
             "rel_diff": rel[i].tolist(), "judged": judged[i].tolist(),
             "ok": bool(passed[i].all()) if judged[i].any() else None} for i in range(len(c))]
    return rows, bool(passed.all())


def run_schedule_loop(policy_path: Path, schedule_path: Path, seconds: float, mode: str,
                      tmp: Path, fresh_state: bool = True) -> tuple[dict, dict, dict]:
    """``run_deploy`` with a schedule as the command source, at the deploy defaults.

    ``LoopConfig`` as ``python -m deploy --command-schedule FILE --duration-s SECONDS`` builds
    it without other options: the policy's rate, ``SafetyConfig()`` and the default command
    shaping (``fresh_state=False``: as with ``--no-fresh-state``). Returns ``(summary, robot
    record, per-step log)``.
    """
    from deploy.commands import ScheduleCommand
    from deploy.link import SerialLink
    from deploy.loop import LoopConfig, run_deploy
    from deploy.policy import OnnxPolicy

    policy = OnnxPolicy(policy_path)
    report = tmp / f"robot_schedule_{mode}_{fresh_state}.json"
    proc, port = _start_robot(["--mode", mode], report)
    try:
        cfg = LoopConfig(rate_hz=1.0 / policy.interface.control_period_s, duration_s=seconds,
                         fresh_state=fresh_state)
        with SerialLink(port) as link:
            res = run_deploy(link, policy, cfg, commands=ScheduleCommand(schedule_path))
    finally:
        rec = _stop_robot(proc, report)
    return dict(res.summary), rec, res.log


def sim_to_sim_schedule(policy_path: Path, schedule_path: Path, tail_s: float, tmp: Path,
                        settle_s: float = 1.0, seeds: tuple[int, ...] = (0, 1, 2),
                        modes: tuple[str, ...] = ("stepped", "realtime")) -> dict:
    """Per-segment body velocities along a command schedule: gym env vs deploy loop + robot.

    Env: :func:`eval_gait.run_schedule` per seed, randomization off (the virtual robot has
    none), the segment means averaged over the seeds that reached the segment. Deploy: one
    :func:`run_schedule_loop` per mode; the loop polls the schedule at ``t - (ramp_s +
    hold_s)``, the time since its policy phase began, so a policy-phase step at ``t_run`` is
    in the same segment as env step ``k = t_run / dt``; the robot's records of the policy phase
    are its last ``n`` (one per accepted COMMAND). The env takes each change at once; the
    loop's command shaper ramps it (1 m/s^2, 2 rad/s^2: at most 0.4 s for the demo schedule),
    inside the ``settle_s`` left out. Mode ``"realtime-stale"`` is real time with
    ``fresh_state=False`` (the loop observes the STATE of the previous COMMAND, a period old),
    a peer shown beside the others but not part of ``ok``.

    Returns:
        A dict: the schedule, ``segments`` (start, end [s]), ``env`` (n, 3) (``env_per_seed``
        (seeds, n, 3), NaN after a fall) and per mode
        ``deploy_<mode>`` with its rows (:func:`compare_segments`), ``ok`` and loop figures;
        ``ok``: every mode passed.
    """
    from deploy.commands import ScheduleCommand
    from deploy.policy import OnnxPolicy
    from deploy.safety import SafetyConfig
    from scripts.eval_gait import RANDOMIZATION_KWARGS, run_schedule, segment_means

    schedule = ScheduleCommand(schedule_path)
    end_s = schedule.duration_s + tail_s
    starts, cmds = schedule.t_s, schedule.commands
    pol = OnnxPolicy(policy_path)
    kwargs = {k: v for k, v in (pol.metadata.get("env_kwargs") or {}).items()
              if k not in RANDOMIZATION_KWARGS}
    per_seed, falls = [], 0
    for seed in seeds:
        r = run_schedule(pol, kwargs, starts, cmds, end_s, seed)
        falls += int(r["fell"])
        per_seed.append(segment_means(r["t_s"], r["vel"], starts, end_s, settle_s))
    stack = np.stack(per_seed)
    seen = np.isfinite(stack).sum(axis=0)
    env = np.where(seen > 0, np.nansum(stack, axis=0) / np.maximum(seen, 1), np.nan)
    out: dict = {"schedule": str(schedule_path), "seconds": end_s, "settle_s": settle_s,
                 "segments": np.column_stack([starts, np.append(starts[1:], end_s)]).tolist(),
                 "commands": cmds.tolist(), "env_seeds": list(seeds), "env_falls": falls,
                 "env_kwargs": kwargs, "env": env.tolist(), "env_per_seed": stack.tolist(),
                 "ok": True}
    hold_end = SafetyConfig().ramp_s + SafetyConfig().hold_s
    for mode in modes:
        robot_mode, _, stale = mode.partition("-")
        s, rec, log = run_schedule_loop(policy_path, schedule_path, end_s, robot_mode, tmp,
                                        fresh_state=stale != "stale")
        run = log["phase"] == 2
        n = int(run.sum())
        vel = policy_phase_records(rec, log["phase"], ("vx_body_m_s", "vy_body_m_s",
                                                       "yaw_rate_body_rad_s"))
        t_run = log["t_s"][run][:len(vel)] - hold_end  # fewer only if COMMANDs were lost
        deploy = segment_means(t_run, vel, starts, end_s, settle_s)
        rows, ok = compare_segments(cmds, env, deploy)
        out[f"deploy_{mode}"] = {
            "rows": rows, "ok": ok, "fault": s["fault"], "stop_reason": s["stop_reason"],
            "policy_steps": n, "deadline_misses": s.get("deadline_misses"),
            "drops": s.get("drops"), "clamped_steps": s["clamped_steps"],
            "rate_limited_steps": s["rate_limited_steps"],
            "command_rate_limited_steps": s["command_rate_limited_steps"],
            "command_clipped_steps": s["command_clipped_steps"],
            "fresh_state": s["fresh_state"], "stale_observations": s["stale_observations"]}
        if stale != "stale":
            out["ok"] = out["ok"] and ok
    return out


def print_schedule_table(res: dict) -> None:
    """The per-segment table of :func:`sim_to_sim_schedule` (markdown)."""
    print(f"sim-to-sim along {res['schedule']} ({res['seconds']:g} s, first {res['settle_s']:g} s "
          f"of each segment left out; env: seeds {res['env_seeds']}, randomization off, falls "
          f"{res['env_falls']})")
    modes = [k for k in res if k.startswith("deploy_")]
    print("| segment [s] | command (vx, vy, yaw) | env (vx, vy, yaw) | "
          + " | ".join(f"{m[7:]} (vx, vy, yaw) | rel diff | pass" for m in modes) + " |")
    print("|---|---|---|" + "---|---|---|" * len(modes))

    def tri(v: list[float], fmt: str = "+.3f") -> str:
        return "(" + ", ".join(format(x, fmt) for x in v) + ")"

    for i, (a, b) in enumerate(res["segments"]):
        cells = [f"{a:g}-{b:g}", tri(res["commands"][i], "+.2f"), tri(res["env"][i])]
        for m in modes:
            r = res[m]["rows"][i]
            rel = ", ".join(f"{100 * x:.0f} %" if j else f"({100 * x:.0f} %)"
                            for x, j in zip(r["rel_diff"], r["judged"], strict=True))
            cells += [tri(r["deploy"]), rel, "-" if r["ok"] is None else
                      ("yes" if r["ok"] else "NO")]
        print("| " + " | ".join(cells) + " |")
    for m in modes:
        d = res[m]
        print(f"{m[7:]}: {'PASS' if d['ok'] else 'FAIL'} (fault {d['fault']}, {d['policy_steps']} "
              f"policy steps, deadline misses {d['deadline_misses']}, joint-limit clamped / rate "
              f"limited steps {d['clamped_steps']} / {d['rate_limited_steps']}, command "
              f"rate-limited steps {d['command_rate_limited_steps']}, stale observations "
              f"{d['stale_observations']})")
    print("rel diff = |deploy - env| / max(|env|, 0.05); judged (target <= 10 %) only where the "
          "command component is not zero, the others in parentheses")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="loop run length per rate [s]")
    ap.add_argument("--rates", default="50,100,200", help="loop rates [Hz], comma separated")
    ap.add_argument("--inference-n", type=int, default=5000, help="inference calls per backend")
    ap.add_argument("--run", default=None, help="training run whose actor part 1 times")
    ap.add_argument("--policy", type=Path, default=None,
                    help="trained ONNX policy for sim-to-sim (default: the pretrained one if "
                         "present)")
    ap.add_argument("--loop-policy", type=Path, default=None,
                    help="ONNX policy of the timing runs (default: a standing policy)")
    ap.add_argument("--sim-seconds", type=float, default=10.0, help="sim-to-sim length [s]")
    ap.add_argument("--command", default="0.5,0,0", help="sim-to-sim command VX,VY,YAW")
    ap.add_argument("--max-rate-rad-s", type=float, default=15.0,
                    help="safety rate limit of the sim-to-sim deploy runs [rad/s] (the deploy "
                         "default); the env has none")
    ap.add_argument("--schedule", type=Path, default=None,
                    help="sim-to-sim along this command schedule (CSV t_s,vx,vy,yaw_rate) "
                         "instead of --command, at the deploy defaults (see above)")
    ap.add_argument("--schedule-tail-s", type=float, default=4.0,
                    help="--schedule: how long its last row lasts [s]")
    ap.add_argument("--settle-s", type=float, default=1.0,
                    help="--schedule: transition left out at the start of each segment [s]")
    ap.add_argument("--stale-peer", action="store_true",
                    help="also run the loop (part 2, each rate) and the real-time sim-to-sim "
                         "along --schedule with the loop's fresh_state off (observing the "
                         "previous COMMAND's STATE, one exchange per period), as a peer")
    ap.add_argument("--skip", default="", help="parts to skip: inference,loop,sim")
    ap.add_argument("--rt-priority", type=int, default=0,
                    help="SCHED_FIFO priority of the loop (the virtual robot gets one less); "
                         "0 = default scheduler")
    ap.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    command = [float(x) for x in args.command.split(",")]
    results: dict = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''} "
                   f"{os.cpu_count()} cores, Linux {platform.release()}, Python "
                   f"{platform.python_version()}",
        "command": "python scripts/bench_deploy.py " + " ".join(argv or sys.argv[1:]),
    }
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        if "inference" not in skip:
            inf = bench_inference(args.inference_n, args.run, tmp)
            results["inference"] = inf
            print(f"inference batch 1, 1 thread: onnxruntime p50 {inf['ort_ms_p50']:.4f} ms, "
                  f"p99 {inf['ort_ms_p99']:.4f} ms | torch p50 {inf['torch_ms_p50']:.4f} ms, "
                  f"p99 {inf['torch_ms_p99']:.4f} ms | ratio p50 {inf['ratio_p50']:.2f}x, "
                  f"p99 {inf['ratio_p99']:.2f}x", flush=True)
        if "loop" not in skip:
            loop_policy = args.loop_policy or standing_policy(tmp)
            results["loop"] = {}
            runs = [(float(r), fresh) for r in args.rates.split(",")
                    for fresh in ((True, False) if args.stale_peer else (True,))]
            for rate, fresh in runs:
                s, rec, _ = run_loop(loop_policy, rate, args.seconds, (0.0, 0.0, 0.0), "realtime",
                                  tmp, rt_priority=args.rt_priority, fresh_state=fresh)
                results["loop"][f"{rate:g}" + ("" if fresh else "-stale")] = s
                print(f"loop {rate:g} Hz{'' if fresh else ' (no fresh state)'} for "
                      f"{args.seconds:g} s: achieved "
                      f"{s['achieved_rate_hz']:.3f} Hz, period p50/p99/max "
                      f"{s['period_ms_p50']:.3f}/{s['period_ms_p99']:.3f}/"
                      f"{s['period_ms_max']:.3f} ms, jitter p99 {s['jitter_ms_p99']:.3f} ms "
                      f"(max {s['jitter_ms_max']:.3f}), deadline misses {s['deadline_misses']}, "
                      f"overruns {s['overruns']}, rtt p50/p99 {s['rtt_ms_p50']:.3f}/"
                      f"{s['rtt_ms_p99']:.3f} ms, inference p99 {s['inference_ms_p99']:.3f} ms, "
                      f"drops {s['drops']}, stale observations {s['stale_observations']}, "
                      f"fault {s['fault']}, robot errors "
                      f"{rec['errors_sent']}, {s['scheduler']}", flush=True)
        if "sim" not in skip:
            from deploy.cli import DEFAULT_POLICY

            policy = args.policy or (DEFAULT_POLICY if DEFAULT_POLICY.is_file() else None)
            if policy is None:
                print("sim-to-sim skipped: no trained policy (give --policy FILE)")
            elif args.schedule is not None:
                from deploy.commands import CommandSourceError, refuse_live_commands
                from deploy.policy import OnnxPolicy

                try:
                    refuse_live_commands(OnnxPolicy(policy).metadata.get("env_kwargs"),
                                         "schedule", str(policy))
                except CommandSourceError as exc:
                    print(f"sim-to-sim along the schedule refused: {exc}", file=sys.stderr)
                    return 1
                modes = ("stepped", "realtime") + (("realtime-stale",) if args.stale_peer
                                                   else ())
                res = sim_to_sim_schedule(policy, args.schedule, args.schedule_tail_s, tmp,
                                          args.settle_s, modes=modes)
                results["sim_to_sim_schedule"] = res
                print_schedule_table(res)
            else:
                res = sim_to_sim(policy, args.sim_seconds, command, tmp, args.max_rate_rad_s)
                results["sim_to_sim"] = res
                print(f"sim-to-sim at {command}: env vx {res['env_vx_m_s']:.3f} m/s | deploy "
                      f"stepped {res['deploy_stepped_vx_m_s']:.3f} m/s "
                      f"({100 * res['deploy_stepped_rel_diff']:.1f} %) | deploy real time "
                      f"{res['deploy_realtime_vx_m_s']:.3f} m/s "
                      f"({100 * res['deploy_realtime_rel_diff']:.1f} %); steps clamped to the "
                      f"joint limits / rate limited (stepped): "
                      f"{res['deploy_stepped_clamped_steps']} / "
                      f"{res['deploy_stepped_rate_limited_steps']}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
