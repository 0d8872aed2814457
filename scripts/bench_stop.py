"""How the deploy loop's stop lands the robot: released at once against lowered first.

On the in-process virtual robot (stepped MuJoCo physics, protocol v1), the robot starts as it
rests at power-on (torque off, lying on the floor), ramps up, stands under the policy at a zero
command, and then stops two ways, in the same run:

- ``release``: torque off at once (``lower_s=0``), as for a lost bus or a silent servo;
- ``lower``: the body lowered to the pose it started in over ``lower_s`` (1 s), then released,
  as for the end of a run, a stop signal, a hot servo, a lost IMU or a bad action.

After the release the physics goes on passively for 1.5 s. Printed per way: control periods
from the stop to the release, the body height at the release, the peak body acceleration
(the IMU's specific force minus gravity, so 0 at rest) from the stop to 1.5 s after the release,
and the peak body-down speed. One line each; ``--json`` writes them.

Usage: ``python scripts/bench_stop.py [--policy FILE] [--lower-s 1.0] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's packages, not scripts/

from deploy.cli import DEFAULT_POLICY  # noqa: E402
from deploy.loop import LoopConfig, run_deploy  # noqa: E402
from deploy.policy import OnnxPolicy  # noqa: E402
from deploy.safety import SafetyConfig  # noqa: E402
from deploy.sim.virtual_robot import InProcessLink, VirtualRobot  # noqa: E402

G = np.array([0.0, 0.0, 9.81])


class _Recording(InProcessLink):
    """The in-process link, sampling the body after every COMMAND it carries."""

    def __init__(self, robot: VirtualRobot):
        super().__init__(robot)
        self.samples: list[tuple[float, float, float]] = []  # (|a - g| m/s2, height m, vz m/s)

    def sample(self) -> None:
        sim = self.robot.sim
        sim.forward()
        acc = np.linalg.norm(sim.sensors().accel_m_s2 - G)
        self.samples.append((float(acc), sim.body_height_m, float(sim.base_lin_vel_world_m_s[2])))

    def command(self, target_rad, timeout_s):
        reply = super().command(target_rad, timeout_s)
        self.sample()
        return reply


def run(policy: OnnxPolicy, lower_s: float, stand_s: float) -> dict:
    robot = VirtualRobot(mode="stepped")
    sim = robot.sim
    sim.set_passive(True)
    sim.step_physics(int(1.5 / sim.physics_dt_s))  # power-on: torque off, lying on the floor
    sim.forward()
    h_lying = sim.body_height_m
    link = _Recording(robot)
    cfg = LoopConfig(rate_hz=1.0 / policy.interface.control_period_s, duration_s=stand_s,
                     safety=SafetyConfig(ramp_s=2.0, hold_s=1.0, lower_s=lower_s))
    last_step = {"samples": 0, "height": float("nan")}

    def on_step(k: int, phase: int) -> None:  # after each loop step: what follows is the stop
        last_step["samples"], last_step["height"] = len(link.samples), sim.body_height_m

    res = run_deploy(link, policy, cfg, on_step=on_step)
    h_release = sim.body_height_m
    periods_to_release = len(link.samples) - last_step["samples"]
    for _ in range(int(1.5 / sim.physics_dt_s)):  # torque off: passive physics goes on
        sim.step_physics(1)
        link.sample()
    acc, h, vz = (np.array(c) for c in zip(*link.samples[last_step["samples"]:], strict=True))
    return {
        "way": "lower" if lower_s > 0 else "release",
        "stop": res.summary["lowering"],
        "stopped_with": res.stopped_with,
        "periods_to_release": periods_to_release,
        "body_height_lying_m": round(h_lying, 4),
        "body_height_standing_m": round(last_step["height"], 4),
        "body_height_at_release_m": round(h_release, 4),
        "peak_body_accel_m_s2": round(float(acc.max()), 2),
        "peak_body_accel_g": round(float(acc.max()) / 9.81, 2),
        "peak_down_speed_m_s": round(float(-vz.min()), 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    ap.add_argument("--lower-s", type=float, default=1.0)
    ap.add_argument("--stand-s", type=float, default=2.0, help="policy phase before the stop [s]")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    policy = OnnxPolicy(args.policy)
    rows = [run(policy, 0.0, args.stand_s), run(policy, args.lower_s, args.stand_s)]
    for r in rows:
        print(f"{r['way']:8s} periods to release {r['periods_to_release']:3d}, body height "
              f"standing {r['body_height_standing_m']:.3f} m -> at release "
              f"{r['body_height_at_release_m']:.3f} m (lying {r['body_height_lying_m']:.3f}), "
              f"peak body acceleration {r['peak_body_accel_m_s2']:.1f} m/s^2 "
              f"({r['peak_body_accel_g']:.2f} g), peak down speed {r['peak_down_speed_m_s']:.3f}"
              f" m/s; {r['stop']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
