#!/usr/bin/env python
"""robotac identify against the STS bus emulator: the issue-24 targets, at full length.

    python scripts/bench_identify.py                         # 12 joints, both servo truths
    python scripts/bench_identify.py --joints fr_knee --time-scale 0.3    # quick look
    python scripts/bench_identify.py --json out.json --plots docs/data/identify_2026-12-07

For each servo truth of the emulator (``deploy.sim.sts_emulator.SERVO_TRUTHS``), unknown to the
fit:

- ``pd-away``: the sim's PD form with kp x1.8 (14.4 N m/rad), armature x5 (0.025 kg m^2),
  friction loss 0.06 N m, latency one control period (0.02 s); damping 0.62 N m s/rad and so the
  speed limit 2.9 / 0.62 = 4.68 rad/s unchanged. Target: every fitted parameter within 10 % of
  the truth, position RMS error cut by at least 50 %.
- ``dc-motor``: a servo of another form (DC motor behind a saturating firmware P loop, back-EMF,
  Stribeck friction, latency 0.01 s). Target: RMS cut by at least 50 %; what is left is printed.

Printed per truth: each parameter's truth (pd-away), fit, error and standard error; RMS before
and after per joint; the excitation's length in seconds (the wall time on a real robot, where
the samples come in real time: the sum over the joints plus the ramp); the recording's wall time
against the emulator (stepped physics, faster than real time) and the fit's wall time; the load
average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy.identify import ExcitationConfig  # noqa: E402
from envs.robot_description import load_description  # noqa: E402
from robotac.identify import PARAMS, fit_servo_model, identify_virtual, plot_fit  # noqa: E402

#: The pd-away truth in the fit's parameters (the emulator's SERVO_TRUTHS["pd-away"] applied to
#: the shipped description: kp 8 x 1.8, armature 0.025, friction 0.06, latency 0.02).
PD_AWAY = {"kp_nm_rad": 14.4, "damping_nm_s_rad": 0.62, "armature_kg_m2": 0.025,
           "frictionloss_nm": 0.06, "torque_limit_nm": 2.9, "latency_s": 0.02}


def run(truth: str, joints: list[str] | None, time_scale: float, plots: Path | None
        ) -> dict:
    desc = load_description()
    cfg = ExcitationConfig(time_scale=time_scale,
                           no_load_speed_rad_s=desc.servo.no_load_speed_rad_s)
    t0 = time.perf_counter()
    rec = identify_virtual(cfg, truth, joints)
    t_rec = time.perf_counter() - t0
    fit = fit_servo_model(desc, rec)
    excitation_s = sum(float(j.t_read_s[-1]) for j in rec.joints)
    out = {"truth": truth, "joints": [j.name for j in rec.joints], "time_scale": time_scale,
           "samples": int(sum(len(j.t_goal_s) for j in rec.joints)),
           "rate_hz_sim": rec.rate_hz, "rate_hz_wall": rec.wall_rate_hz,
           "excitation_s": excitation_s, "record_wall_s": t_rec, "fit_wall_s": fit.fit_wall_s,
           "nfev": fit.nfev, "fit": fit.to_json(), "load_avg": os.getloadavg()}
    print(f"\n== servo truth {truth}: {len(rec.joints)} joint(s), {out['samples']} samples at "
          f"{rec.rate_hz:.0f} Hz (simulated; {rec.wall_rate_hz:.0f} per wall second)")
    print(f"{'parameter':20s} {'truth':>9s} {'before':>9s} {'fit':>9s} {'error':>8s} "
          f"{'std err':>9s}")
    errors = {}
    rows = [(p, fit.before[p], fit.after[p]) for p in PARAMS]
    rows.append(("no_load_speed_rad_s", desc.servo.no_load_speed_rad_s, fit.no_load_speed_rad_s))
    for p, b, a in rows:
        t = (PD_AWAY[p] if p in PD_AWAY else PD_AWAY["torque_limit_nm"]
             / PD_AWAY["damping_nm_s_rad"]) if truth == "pd-away" else None
        err = "" if t is None else f"{(a - t) / t:+8.1%}"
        if t is not None:
            errors[p] = (a - t) / t
        std = f"{fit.std[p]:9.2g}" if p in fit.std else ("    fixed" if p in PARAMS else "")
        print(f"{p:20s} {'' if t is None else f'{t:9.4g}':>9s} {b:9.4g} {a:9.4g} {err:>8s} "
              f"{std}")
    out["relative_errors"] = errors
    for name in fit.rms_before_rad:
        print(f"  {name:18s} RMS {fit.rms_before_rad[name] * 1e3:7.2f} -> "
              f"{fit.rms_after_rad[name] * 1e3:6.2f} mrad")
    b = sum(v**2 for v in fit.rms_before_rad.values()) / len(fit.rms_before_rad)
    a = sum(v**2 for v in fit.rms_after_rad.values()) / len(fit.rms_after_rad)
    print(f"RMS over the joints {b**0.5 * 1e3:.2f} -> {a**0.5 * 1e3:.2f} mrad: cut "
          f"{fit.rms_cut:.1%}; refused: {fit.refused}")
    if truth == "pd-away":
        worst = max(errors, key=lambda k: abs(errors[k]))
        print(f"worst parameter error {errors[worst]:+.1%} ({worst}); target |error| <= 10 %: "
              f"{'met' if abs(errors[worst]) <= 0.10 else 'NOT met'}")
    print(f"RMS cut target >= 50 %: {'met' if fit.rms_cut >= 0.5 else 'NOT met'}")
    print(f"excitation {excitation_s:.0f} s (the wall time on the robot, plus the ramp and the "
          f"health reads); recording against the emulator {t_rec:.0f} s wall; fit "
          f"{fit.fit_wall_s:.0f} s wall ({fit.nfev} evaluations); load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if plots is not None:
        plots.mkdir(parents=True, exist_ok=True)
        print(f"plot: {plot_fit(rec, fit, plots / f'fit_{truth}.png')}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--truths", nargs="+", default=["pd-away", "dc-motor"])
    ap.add_argument("--joints", nargs="+", default=None, help="default: all 12")
    ap.add_argument("--time-scale", type=float, default=1.0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plots", type=Path, default=None, help="folder for fit_<truth>.png")
    args = ap.parse_args(argv)
    results = [run(t, args.joints, args.time_scale, args.plots) for t in args.truths]
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
