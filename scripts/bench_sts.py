#!/usr/bin/env python
"""STS servo-bus benchmarks through the bus emulator: round trip, loop timing, rates, sim-to-sim.

    python scripts/bench_sts.py                          # all parts
    python scripts/bench_sts.py --skip sim,rates         # round trip and the 60 s loop only
    python scripts/bench_sts.py --json out.json          # also write the figures as JSON

1. Round trip of one period's bus traffic, ``StsBusLink.command``: one sync write of 12 goal
   positions, then one sync read of 12 servos (position and speed, 4 bytes each; every 10th
   period 8 bytes: plus load, voltage, temperature), through ``python -m deploy.sim.sts_emulator``
   on a pty. With ``--wire-baud 1000000`` the emulator releases each reply no earlier than the
   bytes would take on a half-duplex 8N1 wire at 1 Mbaud; without pacing (``0``) the figure is
   the host + SDK + pty + emulator overhead alone. Compared with the wire-time bound from the
   packet sizes (``deploy.sts.bus_bytes_per_period``).
2. The 50 Hz deploy loop for ``--loop-seconds`` (60) with a standing policy: achieved rate,
   period jitter, deadline misses, drops.
3. Highest sustained rate: back-to-back periods with no loop around them (the bus and the
   emulator alone), then the loop at increasing rates for ``--rate-seconds`` each; sustained =
   no fault, achieved rate within 0.5 %, at most 0.5 % of steps late and at most 1 % of replies
   later than the reply timeout (60 % of the period; the loop stops after 5 in a row).
4. Faults: each injected fault once, in the run phase; the delay from the fault appearing in
   the emulator to Torque_Enable = 0 on every servo, in control periods, and the stop reason.
5. Gyro: the angular velocity from differencing the RVC orientation (what the STS link feeds the
   policy) against the simulation's true body rate, walking (emulator in this process).
6. Sim-to-sim (the shipped policy, ``--command 0.5,0,0``): mean body-frame forward velocity over
   the policy phase (first 20 % skipped), STS backend + emulator (stepped and real-time physics)
   vs the same ONNX policy in ``robotac/Quadruped-v0`` (3 seeds), at the rate limits of the
   protocol-v1 figures of the 2026-11-21 policy (15 and 30 rad/s), in
   ``docs/data/pretrained_2026-11-21/quadruped_sac.sim_to_sim.json``.
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

from bench_deploy import env_vx, standing_policy  # noqa: E402  (scripts/, beside this file)


def start_emulator(tmp: Path, *extra: str) -> tuple[subprocess.Popen, str, str, Path, Path]:
    """``python -m deploy.sim.sts_emulator``; returns ``(proc, bus, imu, calibration, report)``."""
    cal, report = tmp / f"cal_{time.monotonic_ns()}.json", tmp / f"bus_{time.monotonic_ns()}.json"
    proc = subprocess.Popen([sys.executable, "-m", "deploy.sim.sts_emulator", "--write-calibration",
                             str(cal), "--report", str(report), *extra],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    lines = [proc.stdout.readline().split() for _ in range(3)]
    if [k for k, *_ in lines] != ["PORT", "IMU", "CALIBRATION"]:
        raise RuntimeError(f"emulator did not start: {lines}")
    return proc, lines[0][1], lines[1][1], cal, report


def stop_emulator(proc: subprocess.Popen, report: Path) -> dict:
    proc.terminate()
    proc.wait(timeout=10)
    return json.loads(report.read_text())


def _p(x: np.ndarray) -> dict:
    x = np.asarray(x) * 1e3
    return {"n": int(x.size), "p50_ms": float(np.percentile(x, 50)),
            "p99_ms": float(np.percentile(x, 99)), "max_ms": float(x.max())}


def bench_roundtrip(tmp: Path, n: int, wire_baud: int) -> dict:
    from deploy.calibration import Calibration
    from deploy.sts import StsBusLink, bus_bytes_per_period, wire_time_s
    from envs.interface import QUADRUPED_INTERFACE

    proc, bus, imu, cal, report = start_emulator(tmp, "--wire-baud", str(wire_baud))
    default = QUADRUPED_INTERFACE.arrays()["default_pose_rad"].astype(np.float32)
    fast, full, faults = [], [], 0
    try:
        with StsBusLink(bus, Calibration.load(cal), imu, telemetry_every=10) as link:
            link.connect()
            for k in range(n):
                t0 = time.perf_counter()
                reply = link.command(default, 0.02)
                dt = time.perf_counter() - t0
                if type(reply).__name__ != "State":
                    faults += 1
                else:
                    (full if k % 10 == 0 else fast).append(dt)
                time.sleep(max(0.0, 0.005 - dt))
            link.passive(default, 0.05)
    finally:
        stop_emulator(proc, report)
    out = {"wire_baud": wire_baud, "not_state": faults, "fast": _p(np.array(fast)),
           "full": _p(np.array(full))}
    for key, read_len in (("fast", 4), ("full", 8)):
        b = bus_bytes_per_period(12, read_len)
        out[key]["bytes"] = b["total"]
        out[key]["wire_bound_ms"] = wire_time_s(b["total"], 1_000_000) * 1e3
    return out


def bench_throughput(tmp: Path, seconds: float) -> dict:
    """Back-to-back periods (sync write + sync read, every 10th a full read) for ``seconds``,
    wire pacing at 1 Mbaud: the rate the bus and the emulator sustain with no loop around them."""
    from deploy.calibration import Calibration
    from deploy.sts import StsBusLink
    from envs.interface import QUADRUPED_INTERFACE

    proc, bus, imu, cal, report = start_emulator(tmp)
    default = QUADRUPED_INTERFACE.arrays()["default_pose_rad"].astype(np.float32)
    dts, bad = [], 0
    try:
        with StsBusLink(bus, Calibration.load(cal), imu) as link:
            link.connect()
            t_end = time.perf_counter() + seconds
            t_start = time.perf_counter()
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                bad += type(link.command(default, 0.02)).__name__ != "State"
                dts.append(time.perf_counter() - t0)
            elapsed = time.perf_counter() - t_start
            link.passive(default, 0.05)
    finally:
        stop_emulator(proc, report)
    return {"seconds": elapsed, "periods": len(dts), "rate_hz": len(dts) / elapsed,
            "not_state": bad, **_p(np.array(dts))}


def run_loop(tmp: Path, policy_path: Path, rate_hz: float, seconds: float, command,
             mode: str = "realtime", max_rate_rad_s: float = 15.0,
             rt_priority: int = 0) -> tuple[dict, dict, dict]:
    """``run_deploy`` over the STS emulator: ``(summary, emulator record, per-step log)``."""
    from deploy.calibration import Calibration
    from deploy.loop import LoopConfig, run_deploy
    from deploy.policy import OnnxPolicy
    from deploy.safety import SafetyConfig
    from deploy.sts import StsBusLink

    proc, bus, imu, cal, report = start_emulator(
        tmp, "--mode", mode, "--rt-priority", str(max(rt_priority - 1, 0)))
    try:
        cfg = LoopConfig(rate_hz=rate_hz, duration_s=seconds, command=tuple(command),
                         safety=SafetyConfig(ramp_s=1.0, hold_s=0.5,
                                             max_rate_rad_s=max_rate_rad_s),
                         rt_priority=rt_priority)
        with StsBusLink(bus, Calibration.load(cal), imu) as link:
            res = run_deploy(link, OnnxPolicy(policy_path), cfg)
    finally:
        rec = stop_emulator(proc, report)
    s = dict(res.summary)
    s["n_policy_steps"] = int(np.sum(res.log["phase"] == 2))
    return s, rec, res.log


def bench_faults(tmp: Path, policy_path: Path, kinds: list[str], after_s: float = 1.2) -> dict:
    """Each injected fault in the run phase: stop reason and the delay from the fault appearing
    to Torque_Enable = 0 on every servo, in 20 ms control periods (from the emulator's record)."""
    from deploy.calibration import Calibration
    from deploy.loop import LoopConfig, run_deploy
    from deploy.policy import OnnxPolicy
    from deploy.safety import SafetyConfig
    from deploy.sts import StsBusLink

    out = {}
    for kind in kinds:
        proc, bus, imu, cal, report = start_emulator(tmp, "--fault", kind, "--fault-servo", "5",
                                                     "--fault-after-s", str(after_s))
        try:
            cfg = LoopConfig(rate_hz=50.0, duration_s=2.0,
                             safety=SafetyConfig(ramp_s=0.5, hold_s=0.3))
            with StsBusLink(bus, Calibration.load(cal), imu) as link:
                res = run_deploy(link, OnnxPolicy(policy_path), cfg)
        finally:
            rec = stop_emulator(proc, report)
        a, b = rec["fault_active_s"], rec["torque_off_after_fault_s"]
        out[kind] = {"fault": res.fault.name if res.fault else None,
                     "stop_reason": res.stop_reason, "stopped_with": res.stopped_with,
                     "latency_periods": (b - a) / 0.02 if a is not None and b is not None
                     else None, "goals_outside_limits": rec["goals_outside_limits"]}
        lat = out[kind]["latency_periods"]
        print(f"fault {kind}: torque off after "
              f"{'-' if lat is None else f'{lat:.2f}'} periods; {res.stop_reason}; robot left "
              f"{res.stopped_with}", flush=True)
    return out


def bench_gyro(policy_path: Path, steps: int = 300, command=(0.5, 0.0, 0.0)) -> dict:
    """Gyro from differencing the RVC orientation vs the simulation's body rate, walking.

    The emulator runs in this process (stepped physics, no pacing) so the true body angular
    velocity can be read at each period; the first 60 periods (standing) are left out.
    """
    from deploy.loop import policy_robot_interface
    from deploy.policy import OnnxPolicy
    from deploy.sim.sts_emulator import StsBusEmulator
    from deploy.sts import StsBusLink
    from envs.interface import QUADRUPED_INTERFACE as itf
    from envs.interface import gait_phase, quadruped_obs

    arr = itf.arrays()
    emu = StsBusEmulator(mode="stepped", wire_baud=0)
    bus, imu, stop = emu.start_thread()
    pol = OnnxPolicy(policy_path)
    # A policy trained with a gait clock observes its phase too (as deploy.loop computes it).
    gait_hz = (pol.metadata.get("env_kwargs") or {}).get("gait_frequency_hz")
    gait_stands = bool((pol.metadata.get("env_kwargs") or {}).get("gait_clock_stands", False))
    obs_itf = policy_robot_interface(itf, pol.interface, gait_hz, str(policy_path))
    err, true = [], []
    try:
        with StsBusLink(bus, emu.truth.calibration(), imu) as link:
            link.connect()
            st = link.read(0.05)
            prev = arr["default_pose_rad"].copy()
            for k in range(steps):
                a = arr["default_pose_rad"]
                if k >= 50:
                    phase = (None if gait_hz is None
                             else gait_phase(k - 50, gait_hz, itf.control_period_s))
                    obs = quadruped_obs(st.quat_wxyz, st.gyro_rad_s, st.q_rad, st.dq_rad_s, prev,
                                        np.asarray(command), obs_itf, phase,
                                        clock_stands=gait_stands)
                    a = prev = np.clip(pol(obs), arr["joint_low_rad"], arr["joint_high_rad"])
                st = link.command(a.astype(np.float32), 0.05)
                time.sleep(0.005)  # let the emulator thread finish the period
                with emu.lock:
                    w = emu.sim.base_ang_vel_body_rad_s.copy()
                if k >= 60:
                    err.append(st.gyro_rad_s - w)
                    true.append(w)
            link.passive(arr["default_pose_rad"], 0.05)
    finally:
        stop.set()
    e, t = np.asarray(err), np.asarray(true)
    return {"periods": len(e), "err_rms_rad_s": np.sqrt((e ** 2).mean(0)).tolist(),
            "err_max_rad_s": np.abs(e).max(0).tolist(),
            "true_rms_rad_s": np.sqrt((t ** 2).mean(0)).tolist()}


def sts_vx(tmp: Path, policy_path: Path, seconds: float, command, mode: str,
           max_rate_rad_s: float, rt_priority: int = 0) -> dict:
    from scripts.bench_deploy import policy_phase_records

    s, rec, log = run_loop(tmp, policy_path, 50.0, seconds, command, mode, max_rate_rad_s,
                           rt_priority)
    # The emulator records each goal write with the torque on, from the ramp's first.
    v = policy_phase_records(rec, log["phase"])[:, 0]
    v = v[len(v) // 5:]
    return {"vx_m_s": float(np.mean(v)) if len(v) else float("nan"), "fault": s["fault"],
            "steps": s["n_policy_steps"], "rate_limited_steps": s["rate_limited_steps"],
            "clamped_steps": s["clamped_steps"], "goals_outside_limits":
            rec["goals_outside_limits"], "deadline_misses": s["deadline_misses"],
            "drops": s["drops"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--roundtrips", type=int, default=3000, help="round trips per pacing")
    ap.add_argument("--loop-seconds", type=float, default=60.0, help="50 Hz loop length [s]")
    ap.add_argument("--rates", default="100,200,250,300,400", help="rates to try [Hz]")
    ap.add_argument("--rate-seconds", type=float, default=10.0, help="length per rate [s]")
    ap.add_argument("--sim-seconds", type=float, default=20.0, help="sim-to-sim length [s]")
    ap.add_argument("--command", default="0.5,0,0", help="sim-to-sim command VX,VY,YAW")
    ap.add_argument("--max-rates", default="15,30",
                    help="sim-to-sim safety rate limits [rad/s] (those of the v1 figures)")
    ap.add_argument("--throughput-seconds", type=float, default=10.0,
                    help="back-to-back periods for this long [s]")
    ap.add_argument("--skip", default="",
                    help="parts to skip: roundtrip,throughput,loop,rates,sim,faults,gyro")
    ap.add_argument("--faults", default="overheat,undervolt,overload,silent,checksum,imu_silent,"
                                        "power_off,unplug", help="faults to inject, one run each")
    ap.add_argument("--rt-priority", type=int, default=0,
                    help="SCHED_FIFO priority of the loop in parts loop, rates and sim (the "
                         "emulator gets one less); 0 = default scheduler")
    ap.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    command = [float(x) for x in args.command.split(",")]
    results: dict = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Linux "
                   f"{platform.release()}, Python {platform.python_version()}",
        "load_avg_at_start": os.getloadavg(),
        "command": "python scripts/bench_sts.py " + " ".join(argv or sys.argv[1:]),
    }
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        if "roundtrip" not in skip:
            results["roundtrip"] = {}
            for wire in (1_000_000, 0):
                r = bench_roundtrip(tmp, args.roundtrips, wire)
                results["roundtrip"][str(wire)] = r
                for key in ("fast", "full"):
                    f = r[key]
                    print(f"round trip sync write + sync read of 12 ({key}, {f['bytes']} bytes, "
                          f"wire bound {f['wire_bound_ms']:.2f} ms at 1 Mbaud), emulator pacing "
                          f"{wire or 'off'}: p50 {f['p50_ms']:.3f} ms, p99 {f['p99_ms']:.3f} ms, "
                          f"max {f['max_ms']:.3f} ms (n {f['n']}, not STATE {r['not_state']})",
                          flush=True)
        if "throughput" not in skip:
            t = bench_throughput(tmp, args.throughput_seconds)
            results["throughput"] = t
            print(f"back-to-back periods for {t['seconds']:.1f} s (pacing 1 Mbaud): "
                  f"{t['rate_hz']:.0f} periods/s, period p50/p99/max {t['p50_ms']:.3f}/"
                  f"{t['p99_ms']:.3f}/{t['max_ms']:.3f} ms, not STATE {t['not_state']}",
                  flush=True)
        pol_stand = None
        if "loop" not in skip or "rates" not in skip or "faults" not in skip:
            pol_stand = standing_policy(tmp)
        if "loop" not in skip:
            s, rec, _ = run_loop(tmp, pol_stand, 50.0, args.loop_seconds, (0.0, 0.0, 0.0),
                              rt_priority=args.rt_priority)
            results["loop_50hz"] = {**s, "goals_outside_limits": rec["goals_outside_limits"]}
            print(f"loop 50 Hz for {args.loop_seconds:g} s ({s['scheduler']}): achieved "
                  f"{s['achieved_rate_hz']:.3f} Hz, period p50/p99/max "
                  f"{s['period_ms_p50']:.3f}/{s['period_ms_p99']:.3f}/"
                  f"{s['period_ms_max']:.3f} ms, jitter p99 {s['jitter_ms_p99']:.3f} ms, "
                  f"deadline misses {s['deadline_misses']} / {s['steps']}, overruns "
                  f"{s['overruns']}, drops {s['drops']}, rtt p50/p99 {s['rtt_ms_p50']:.3f}/"
                  f"{s['rtt_ms_p99']:.3f} ms, fault {s['fault']}, goals outside limits "
                  f"{rec['goals_outside_limits']}", flush=True)
        if "rates" not in skip:
            results["rates"] = {}
            best = None
            for rate in (float(r) for r in args.rates.split(",")):
                s, _, _ = run_loop(tmp, pol_stand, rate, args.rate_seconds, (0.0, 0.0, 0.0),
                                rt_priority=args.rt_priority)
                ok = (s["fault"] is None and s["drops"] <= 0.01 * s["steps"] and s["steps"] > 0
                      and abs(s["achieved_rate_hz"] - rate) < 0.005 * rate
                      and s["deadline_misses"] <= 0.005 * s["steps"])
                results["rates"][f"{rate:g}"] = {**s, "sustained": ok}
                best = rate if ok else best
                print(f"loop {rate:g} Hz for {args.rate_seconds:g} s: achieved "
                      f"{s['achieved_rate_hz']:.2f} Hz, misses {s['deadline_misses']} / "
                      f"{s['steps']}, drops {s['drops']}, rtt p50/p99 {s['rtt_ms_p50']:.3f}/"
                      f"{s['rtt_ms_p99']:.3f} ms, fault {s['fault']} -> "
                      f"{'sustained' if ok else 'NOT sustained'}", flush=True)
                if not ok:
                    break
            results["max_sustained_rate_hz"] = best
            print(f"highest sustained rate: {best} Hz", flush=True)
        if "faults" not in skip:
            results["faults"] = bench_faults(tmp, pol_stand, args.faults.split(","))
        if "gyro" not in skip:
            from deploy.cli import DEFAULT_POLICY

            g = bench_gyro(DEFAULT_POLICY)
            results["gyro"] = g
            print(f"gyro from differenced RVC orientation vs the body rate, walking at 0.5 m/s "
                  f"({g['periods']} periods): error rms x/y/z "
                  f"{'/'.join(f'{v:.3f}' for v in g['err_rms_rad_s'])} rad/s, max "
                  f"{'/'.join(f'{v:.3f}' for v in g['err_max_rad_s'])} rad/s; true rate rms "
                  f"{'/'.join(f'{v:.3f}' for v in g['true_rms_rad_s'])} rad/s", flush=True)
        if "sim" not in skip:
            from deploy.cli import DEFAULT_POLICY

            e = env_vx(DEFAULT_POLICY, args.sim_seconds, command)
            results["sim_to_sim"] = {"command": command, "seconds": args.sim_seconds, **e}
            print(f"env vx {e['env_vx_m_s']:.3f} m/s at {command} (3 seeds, falls "
                  f"{e['env_falls']})", flush=True)
            for mr in (float(x) for x in args.max_rates.split(",")):
                for mode in ("stepped", "realtime"):
                    r = sts_vx(tmp, DEFAULT_POLICY, args.sim_seconds, command, mode, mr,
                               args.rt_priority)
                    r["rel_diff"] = abs(r["vx_m_s"] - e["env_vx_m_s"]) / abs(e["env_vx_m_s"])
                    results["sim_to_sim"][f"sts_{mode}_max_rate_{mr:g}"] = r
                    print(f"sim-to-sim STS {mode}, rate limit {mr:g} rad/s: vx {r['vx_m_s']:.3f} "
                          f"m/s ({100 * r['rel_diff']:.1f} % from the env), fault {r['fault']}, "
                          f"rate limited {r['rate_limited_steps']} / {r['steps']} steps, misses "
                          f"{r['deadline_misses']}, drops {r['drops']}, goals outside limits "
                          f"{r['goals_outside_limits']}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
